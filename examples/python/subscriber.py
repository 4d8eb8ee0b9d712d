#!/usr/bin/python3
"""A Sidestream subscriber in Python: filtered, resumable, reconnecting.

It streams the Stripe events that match a filter from Sidestream's gRPC API
(sidestream.v1.Events/Subscribe) and prints one line per event:

    sequence=42 id=evt_1Q... type=payout.failed account=acct_1N... livemode=true

Replace handle_event() with your own processing. The rest is what every
subscriber needs, in the order a reader meets it:

- Cursor. After each event is handled, its `sequence` is saved to a file,
  with the log's `log_epoch`. On start the subscriber resumes after the saved
  sequence, so it receives every matching event exactly once across
  restarts of either side. A crash between handling an event and saving the
  cursor replays that one event: handle events idempotently (by event id).
- Checkpoints. While no event matches, the server sends a checkpoint (the
  log's head sequence) at least every 5 s; saving it keeps the cursor close
  to the head, so a restart does not re-scan events that never matched.
- Reconnects. UNAVAILABLE (server restarting, network trouble) is retried
  with exponential backoff and jitter, resuming from the cursor; so is a
  stream that stays silent for longer than --idle_timeout (a half-open
  connection). Errors that a retry cannot fix stop the subscriber with a
  message: a cursor of another log (FAILED_PRECONDITION), events removed by
  retention (OUT_OF_RANGE), a bad filter, a bad or insufficient token.
- Access token. With --token_file, every call carries the metadata
  `authorization: Bearer <token>`; the file is read again on each reconnect,
  so a rotated token is picked up without a restart.

Stubs: generate them from proto/ first (see README.md next to this file):
    ./generate_stubs.sh            # writes ./gen
Run with Debian's Python, which has python3-grpcio:
    /usr/bin/python3 subscriber.py --server=127.0.0.1:50051 \\
        --types='payout.*' --origin=connect --cursor_file=billing.cursor
"""
import argparse
import json
import os
import random
import signal
import sys
import threading
import time

# Exit codes: 0 done (--max_events reached, or interrupted), 1 an error a
# retry cannot fix, 2 bad usage.
EXIT_FAILURE = 1
EXIT_USAGE = 2


def parse_args(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(
        description="Subscribe to Sidestream's event stream with a filter and a saved cursor.")
    p.add_argument("--server", default="127.0.0.1:50051", help="gRPC address, HOST:PORT")
    p.add_argument("--types", default="",
                   help="comma list of event types: exact (payout.failed), prefix (account.*) or *")
    p.add_argument("--accounts", default="", help="comma list of connected accounts (acct_...)")
    p.add_argument("--origin", choices=["any", "platform", "connect"], default="any",
                   help="platform events, Connect events, or both")
    p.add_argument("--livemode", choices=["any", "live", "test"], default="any",
                   help="live-mode events, test-mode events, or both")
    p.add_argument("--cursor_file", default="",
                   help="where the cursor is saved and resumed from (none: start every time "
                        "at --start and keep no cursor)")
    p.add_argument("--start", choices=["latest", "oldest"], default="latest",
                   help="where to start when there is no saved cursor")
    p.add_argument("--token_file", default="",
                   help="file holding a bearer token for the server's --grpc_tokens_file")
    p.add_argument("--tls_ca_file", default="",
                   help="PEM CA certificates: connect with TLS and verify the server against them")
    p.add_argument("--tls_cert_file", default="", help="client certificate (mutual TLS)")
    p.add_argument("--tls_key_file", default="", help="client private key (mutual TLS)")
    p.add_argument("--max_events", type=int, default=0,
                   help="exit after this many events (0: run until interrupted)")
    p.add_argument("--idle_timeout", type=float, default=30.0,
                   help="seconds without any message (event or checkpoint) before the stream is "
                        "considered dead and reopened; keep it above the server's "
                        "--checkpoint_interval")
    p.add_argument("--max_backoff", type=float, default=30.0,
                   help="longest wait between reconnection attempts, in seconds")
    p.add_argument("--stubs_dir", default=os.path.join(here, "gen"),
                   help="directory of the Python code generated from proto/")
    p.add_argument("--verbose", action="store_true",
                   help="also report checkpoints on stderr")
    args = p.parse_args(argv)
    if args.cursor_file == "" and args.max_events == 0 and args.start == "oldest":
        print("subscriber: note: without --cursor_file every run starts again at the oldest "
              "event", file=sys.stderr)
    return args


def status(message):
    """Status and errors go to stderr; stdout has only the event lines."""
    print(f"subscriber: {message}", file=sys.stderr, flush=True)


# --- The cursor file -----------------------------------------------------------

class Cursor:
    """The last sequence handled and the log epoch it belongs to.

    Saved as JSON, replaced atomically (write a temporary file, fsync it,
    rename it over the old one, fsync the directory), so a crash leaves
    either the old or the new cursor, never a torn one.
    """

    def __init__(self, path):
        self.path = path
        self.sequence = None  # None: nothing saved yet
        self.epoch = ""       # "": not known yet (learnt from caught_up/checkpoint)
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
            self.sequence = int(saved["sequence"])
            self.epoch = str(saved.get("epoch", ""))

    def advance(self, sequence, epoch=None):
        """Records a new position; saves it when it moved (or the epoch became known)."""
        changed = sequence != self.sequence or (epoch and epoch != self.epoch)
        self.sequence = sequence
        if epoch:
            self.epoch = epoch
        if changed and self.path:
            self._save()

    def _save(self):
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"sequence": self.sequence, "epoch": self.epoch}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        directory = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


# --- Handling an event -----------------------------------------------------------

def handle_event(event):
    """Your processing goes here. This example prints one line per event."""
    print(f"sequence={event.sequence} id={event.id} type={event.type} "
          f"account={event.account or '-'} livemode={'true' if event.livemode else 'false'}",
          flush=True)


# --- The subscription loop ------------------------------------------------------

class Watchdog:
    """Cancels the current stream when no message arrived for `timeout` seconds.

    The server sends a checkpoint at least every --checkpoint_interval (5 s by
    default) even when nothing matches, so a long silence means the
    connection is gone without the client having been told (a half-open TCP
    connection, a dropped NAT entry). Cancelling makes the blocked read
    return, and the loop reconnects.
    """

    def __init__(self, timeout):
        self.timeout = timeout
        self.fired = False
        self._timer = None
        self._lock = threading.Lock()

    def arm(self, stream):
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.timeout, self._fire, args=(stream,))
            self._timer.daemon = True
            self._timer.start()

    def disarm(self):
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _fire(self, stream):
        self.fired = True
        stream.cancel()


def build_request(args, cursor, pb, event_pb):
    request = pb.SubscribeRequest()
    # Up to 256 events per message while catching up: several times faster
    # over a long history; the loop below unpacks them.
    request.max_batch_events = 256
    f = request.filter
    f.types.extend(t for t in args.types.split(",") if t)
    f.accounts.extend(a for a in args.accounts.split(",") if a)
    f.origin = {"any": event_pb.ORIGIN_ANY, "platform": event_pb.ORIGIN_PLATFORM,
                "connect": event_pb.ORIGIN_CONNECT}[args.origin]
    f.livemode = {"any": event_pb.LIVEMODE_ANY, "live": event_pb.LIVEMODE_LIVE,
                  "test": event_pb.LIVEMODE_TEST}[args.livemode]
    if cursor.sequence is not None:
        # Resume: events after the saved sequence. With the epoch, the server
        # refuses (FAILED_PRECONDITION) a cursor of another log instead of
        # resuming at a sequence that means something else there.
        request.after_sequence = cursor.sequence
        request.log_epoch = cursor.epoch
    else:
        request.position = (pb.START_POSITION_OLDEST if args.start == "oldest"
                            else pb.START_POSITION_LATEST)
    return request


def make_channel(args, grpc):
    # The channel reconnects on its own too, with a backoff of up to 120 s by
    # default; bound it by ours so that a restarted server is found quickly.
    backoff_ms = max(200, int(args.max_backoff * 1000))
    options = [("grpc.initial_reconnect_backoff_ms", 200),
               ("grpc.min_reconnect_backoff_ms", 200),
               ("grpc.max_reconnect_backoff_ms", backoff_ms)]
    if not args.tls_ca_file:
        return grpc.insecure_channel(args.server, options=options)

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(args.tls_ca_file),
        private_key=read(args.tls_key_file) if args.tls_key_file else None,
        certificate_chain=read(args.tls_cert_file) if args.tls_cert_file else None)
    return grpc.secure_channel(args.server, credentials, options=options)


def call_metadata(args):
    if not args.token_file:
        return None
    with open(args.token_file, encoding="utf-8") as f:
        token = f.read().strip()
    return (("authorization", f"Bearer {token}"),)


def run(args):
    sys.path.insert(0, args.stubs_dir)
    try:
        import grpc
        from sidestream.v1 import event_pb2 as event_pb
        from sidestream.v1 import events_service_pb2 as pb
        from sidestream.v1 import events_service_pb2_grpc as pb_grpc
    except ImportError as e:
        status(f"cannot import gRPC or the generated stubs ({e}); run generate_stubs.sh and use "
               "a Python with grpcio (Debian: /usr/bin/python3 with python3-grpcio)")
        return EXIT_FAILURE

    # Codes a reconnect can fix (the server restarting or shedding load, the
    # network). CANCELLED is among them because this program cancels a stream
    # only to stop (--max_events) or when the watchdog fires: any other
    # CANCELLED came from the server, e.g. a call that arrived while it was
    # shutting down. Everything else needs a person: a retry would repeat it.
    retryable = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED,
                 grpc.StatusCode.ABORTED, grpc.StatusCode.CANCELLED}
    advice = {
        grpc.StatusCode.FAILED_PRECONDITION:
            "the saved cursor does not belong to this log (it was replaced or restored); "
            "decide where to start and remove the cursor file",
        grpc.StatusCode.OUT_OF_RANGE:
            "events after the saved cursor were removed by retention; the message names the "
            "oldest available sequence",
        grpc.StatusCode.INVALID_ARGUMENT: "the filter is invalid",
        grpc.StatusCode.UNAUTHENTICATED: "the token is missing or unknown",
        grpc.StatusCode.PERMISSION_DENIED: "the filter asks for more than the token may see",
    }

    cursor = Cursor(args.cursor_file)
    stub = pb_grpc.EventsStub(make_channel(args, grpc))
    watchdog = Watchdog(args.idle_timeout)
    handled = 0
    backoff_initial = min(0.2, args.max_backoff)
    backoff = backoff_initial
    while True:
        request = build_request(args, cursor, pb, event_pb)
        if cursor.sequence is not None:
            status(f"subscribing to {args.server} after sequence {cursor.sequence} "
                   f"(epoch {cursor.epoch or 'unknown'})")
        else:
            status(f"subscribing to {args.server} from {args.start}")
        stream = stub.Subscribe(request, metadata=call_metadata(args))
        watchdog.fired = False
        watchdog.arm(stream)
        try:
            for item in stream:
                watchdog.arm(stream)
                backoff = backoff_initial  # the server answered: the next failure starts over
                kind = item.WhichOneof("item")
                if kind in ("event", "batch"):
                    # A batch is consecutive events, handled as if they came one by one.
                    for event in [item.event] if kind == "event" else item.batch.events:
                        handle_event(event)
                        cursor.advance(event.sequence)
                        handled += 1
                        if args.max_events and handled >= args.max_events:
                            stream.cancel()
                            return 0
                elif kind == "checkpoint":
                    cursor.advance(item.checkpoint.head_sequence, item.checkpoint.log_epoch)
                    if args.verbose:
                        status(f"checkpoint at sequence {item.checkpoint.head_sequence}")
                elif kind == "caught_up":
                    cursor.advance(item.caught_up.head_sequence, item.caught_up.log_epoch)
                    status(f"caught up at sequence {item.caught_up.head_sequence} "
                           f"(epoch {item.caught_up.log_epoch})")
            # The server never ends a healthy stream with OK; treat it like UNAVAILABLE.
            code, details = grpc.StatusCode.UNAVAILABLE, "stream ended"
        except grpc.RpcError as e:
            code, details = e.code(), e.details()
            if code == grpc.StatusCode.CANCELLED and watchdog.fired:
                code, details = grpc.StatusCode.UNAVAILABLE, (
                    f"no message for {args.idle_timeout:g} s")
        finally:
            watchdog.disarm()

        if code not in retryable:
            status(f"{code.name}: {details}")
            if code in advice:
                status(advice[code])
            return EXIT_FAILURE
        # Full jitter: many subscribers of a restarted server do not all
        # come back in the same instant.
        delay = random.uniform(0, backoff)
        status(f"{code.name}: {details}; reconnecting in {delay:.1f} s")
        time.sleep(delay)
        backoff = min(backoff * 2, args.max_backoff)


def main(argv):
    args = parse_args(argv)
    # SIGTERM (docker stop, Kubernetes) ends the run like Ctrl-C; the cursor
    # is already saved after every event.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        return run(args)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
