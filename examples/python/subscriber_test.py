#!/usr/bin/python3
"""End-to-end test of examples/python/subscriber.py against the real server.

Starts `sidestream` on ephemeral loopback ports with a temporary data
directory, posts Stripe-signed webhooks, runs the example subscriber as a
subprocess and checks what it printed: exactly the events that match its
filter, in order; after a restart, only the events after its saved cursor;
checkpoints advancing the cursor; reconnection after the server restarts;
and, when the server has --grpc_tokens_file, the bearer token.

Synchronisation is on the processes' output (the server's ready line, the
subscriber's status lines on stderr), each wait bounded by a deadline.

Usage: subscriber_test.py BIN_DIR
"""
import hashlib
import hmac
import json
import os
import queue
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

BIN_DIR = sys.argv[1] if len(sys.argv) > 1 else ""
HERE = os.path.dirname(os.path.abspath(__file__))
SUBSCRIBER = os.path.join(HERE, "subscriber.py")
SECRET = "whsec_example_subscriber_test"
TIMEOUT = 60  # seconds; every wait below is bounded by it


def server_flags():
    """The flags this build of the server has (some are being added)."""
    out = subprocess.run([os.path.join(BIN_DIR, "sidestream"), "--helpfull"],
                         capture_output=True, text=True).stdout
    return set(re.findall(r"^\s+--([a-z0-9_]+) \(", out, re.M))


class Server:
    """The real binary; start() reads its ready line for the addresses."""

    def __init__(self, work_dir, extra_flags=()):
        self.data_dir = os.path.join(work_dir, "data")
        self.log_path = os.path.join(work_dir, "server.log")
        self.extra_flags = list(extra_flags)
        self.http = self.grpc = "127.0.0.1:0"
        self.proc = None

    def start(self):
        """Starts on the previous ports after a stop (port 0 the first time)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIDESTREAM_")}
        env["SIDESTREAM_WEBHOOK_SECRETS"] = f"example={SECRET}"
        flags = [f"--data_dir={self.data_dir}", f"--http_listen={self.http}",
                 f"--grpc_listen={self.grpc}"] + self.extra_flags
        if "admin_listen" in FLAGS:
            flags.append("--admin_listen=127.0.0.1:0")  # never the fixed default port
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([os.path.join(BIN_DIR, "sidestream"), *flags],
                                         stdout=subprocess.PIPE, stderr=log, env=env)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("sidestream ready "):
            self.proc.kill()
            raise AssertionError(f"server did not start: {line!r}\n{self.log()}")
        fields = dict(f.split("=", 1) for f in line.split()[2:] if "=" in f)
        self.http, self.grpc, self.epoch = fields["http"], fields["grpc"], fields["epoch"]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=TIMEOUT)
        if self.proc:
            self.proc.stdout.close()

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def post(self, event):
        """Posts one signed webhook; returns the sequence the log assigned."""
        body = json.dumps(event).encode()
        t = int(time.time())
        sig = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(
            f"http://{self.http}/webhook", data=body, method="POST",
            headers={"Content-Type": "application/json", "Stripe-Signature": f"t={t},v1={sig}"})
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            answer = json.loads(response.read())
        assert response.status == 200 and not answer["duplicate"], answer
        return answer["sequence"]


def stripe_event(n, type_, account, live):
    event = {"id": f"evt_ex{n}", "object": "event", "api_version": "2024-06-20",
             "created": 1700000000 + n, "livemode": live, "pending_webhooks": 1,
             "request": {"id": None, "idempotency_key": None}, "type": type_,
             "data": {"object": {"id": f"po_ex{n}", "object": "payout", "amount": 100 + n,
                                 "currency": "eur"}}}
    if account:
        event["account"] = account
    return event


def expected_line(sequence, event):
    return (f"sequence={sequence} id={event['id']} type={event['type']} "
            f"account={event.get('account') or '-'} "
            f"livemode={'true' if event['livemode'] else 'false'}")


class Subscriber:
    """subscriber.py as a subprocess; its stderr status lines are queued."""

    def __init__(self, test, server, *flags):
        self.test = test
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", SUBSCRIBER, f"--stubs_dir={STUBS}", f"--server={server.grpc}",
             "--max_backoff=1", *flags],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stdout_lines = []
        self.stderr_lines = []
        self.status = queue.Queue()
        self.readers = [threading.Thread(target=self._read, args=(self.proc.stdout, False)),
                        threading.Thread(target=self._read, args=(self.proc.stderr, True))]
        for reader in self.readers:
            reader.start()
        test.addCleanup(self._cleanup)

    def _read(self, pipe, is_status):
        with pipe:
            for line in pipe:
                if is_status:
                    self.stderr_lines.append(line)
                    self.status.put(line.rstrip("\n"))
                else:
                    self.stdout_lines.append(line.rstrip("\n"))

    def _cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for reader in self.readers:
            reader.join()

    def wait_status(self, pattern):
        """Blocks until a status line matches `pattern` (a regex); returns the match."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.test.fail(f"no status line matching {pattern!r} within {TIMEOUT} s:\n"
                               + "".join(self.stderr_lines))
            try:
                line = self.status.get(timeout=remaining)
            except queue.Empty:
                continue
            match = re.search(pattern, line)
            if match:
                return match

    def finish(self, expect_code=0):
        """Waits for the subscriber to exit; returns its stdout lines."""
        try:
            self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.test.fail(f"subscriber did not exit within {TIMEOUT} s; printed "
                           f"{self.stdout_lines!r}\n" + "".join(self.stderr_lines))
        for reader in self.readers:
            reader.join()
        self.test.assertEqual(self.proc.returncode, expect_code, "".join(self.stderr_lines))
        return self.stdout_lines


def read_cursor(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class ExampleSubscriberTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        global FLAGS, STUBS
        FLAGS = server_flags()
        cls.stubs_tmp = tempfile.TemporaryDirectory()
        STUBS = cls.stubs_tmp.name
        # The script the README tells users to run.
        subprocess.run([os.path.join(HERE, "generate_stubs.sh"), STUBS], check=True,
                       stdout=subprocess.DEVNULL)

    @classmethod
    def tearDownClass(cls):
        cls.stubs_tmp.cleanup()

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.cursor = os.path.join(self.dir, "subscriber.cursor")

    def start_server(self, *flags):
        server = Server(self.dir, flags)
        server.start()
        self.addCleanup(server.stop)
        return server

    def test_prints_filtered_events_in_order_and_resumes_without_duplicate(self):
        server = self.start_server()
        filter_flags = ["--types=payout.*", "--accounts=acct_1ExA", "--livemode=live",
                        f"--cursor_file={self.cursor}"]
        events = [  # (event, matches the filter)
            (stripe_event(0, "payout.failed", "acct_1ExA", True), True),
            (stripe_event(1, "account.updated", "acct_1ExA", True), False),   # type
            (stripe_event(2, "payout.paid", "acct_1ExB", True), False),       # account
            (stripe_event(3, "payout.paid", "acct_1ExA", False), False),      # test mode
            (stripe_event(4, "payout.paid", "", True), False),                # platform
            (stripe_event(5, "payout.created", "acct_1ExA", True), True),
            (stripe_event(6, "payout.failed", "acct_1ExA", True), True),
        ]
        sequences = [server.post(e) for e, _ in events]
        want = [expected_line(s, e) for s, (e, match) in zip(sequences, events) if match]

        # History: from the oldest event, exit after the three that match.
        first = Subscriber(self, server, "--start=oldest", "--max_events=3", *filter_flags)
        self.assertEqual(first.finish(), want)
        self.assertEqual(read_cursor(self.cursor)["sequence"], sequences[6])

        # Restart with --start=latest: only the saved cursor can bring back
        # the events posted while no subscriber ran (a fresh start would miss
        # them, a start from the oldest would repeat the first three).
        more = [(stripe_event(7, "payout.paid", "acct_1ExA", True), True),
                (stripe_event(8, "charge.succeeded", "acct_1ExA", True), False)]
        more_sequences = [server.post(e) for e, _ in more]
        second = Subscriber(self, server, "--start=latest", "--max_events=2", *filter_flags)
        second.wait_status(rf"subscribing to \S+ after sequence {sequences[6]} ")
        second.wait_status(rf"caught up at sequence {more_sequences[1]} ")
        # Live events, after the stream caught up.
        live = [(stripe_event(9, "payout.paid", "acct_1ExA", False), False),
                (stripe_event(10, "payout.canceled", "acct_1ExA", True), True)]
        live_sequences = [server.post(e) for e, _ in live]
        self.assertEqual(second.finish(), [expected_line(more_sequences[0], more[0][0]),
                                           expected_line(live_sequences[1], live[1][0])])
        self.assertEqual(read_cursor(self.cursor),
                         {"sequence": live_sequences[1], "epoch": server.epoch})

    def test_checkpoints_move_the_cursor_and_it_reconnects_after_a_server_restart(self):
        server = self.start_server("--checkpoint_interval=500ms")
        sub = Subscriber(self, server, "--types=payout.failed", f"--cursor_file={self.cursor}",
                         "--max_events=1", "--verbose")
        sub.wait_status(r"caught up at sequence 0 ")
        # Nothing here matches: only checkpoints can move the cursor.
        for n in range(3):
            head = server.post(stripe_event(n, "payout.paid", "acct_1ExA", True))
        sub.wait_status(rf"checkpoint at sequence {head}$")
        self.assertEqual(read_cursor(self.cursor), {"sequence": head, "epoch": server.epoch})

        # The server goes away (streams end with UNAVAILABLE) and comes back
        # on the same ports and data directory; the subscriber resumes.
        server.stop()
        sub.wait_status(r"UNAVAILABLE: .*; reconnecting in ")
        server.start()
        sub.wait_status(rf"subscribing to \S+ after sequence {head} ")
        sub.wait_status(rf"caught up at sequence {head} ")
        event = stripe_event(3, "payout.failed", "", True)
        sequence = server.post(event)
        self.assertEqual(sub.finish(), [expected_line(sequence, event)])

    def test_bearer_token_from_a_file(self):
        if "grpc_tokens_file" not in FLAGS:
            self.skipTest("this server build has no --grpc_tokens_file yet")
        token = secrets.token_hex(32)
        tokens = os.path.join(self.dir, "grpc-tokens")
        with open(tokens, "w", encoding="utf-8") as f:
            f.write(f"name=example token={token} types=payout.*\n")
        token_file = os.path.join(self.dir, "token")
        with open(token_file, "w", encoding="utf-8") as f:
            f.write(token + "\n")
        server = self.start_server(f"--grpc_tokens_file={tokens}")

        no_token = Subscriber(self, server, "--types=payout.*")
        no_token.finish(expect_code=1)
        self.assertIn("UNAUTHENTICATED", "".join(no_token.stderr_lines))
        too_wide = Subscriber(self, server, "--types=*", f"--token_file={token_file}")
        too_wide.finish(expect_code=1)
        self.assertIn("PERMISSION_DENIED", "".join(too_wide.stderr_lines))

        sub = Subscriber(self, server, "--types=payout.*", f"--token_file={token_file}",
                         "--max_events=1")
        sub.wait_status(r"caught up at sequence 0 ")
        event = stripe_event(0, "payout.paid", "acct_1ExA", True)
        sequence = server.post(event)
        self.assertEqual(sub.finish(), [expected_line(sequence, event)])


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
