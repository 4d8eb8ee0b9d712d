#!/usr/bin/env python3
"""End-to-end check with a client in another language.

Generates Python stubs from proto/ with protoc and grpc_python_plugin
(Debian's protobuf-compiler-grpc), starts the real server on ephemeral
loopback ports, posts Stripe-signed webhooks with Python's own HMAC, and
reads them back through the generated stubs: Subscribe (with filters and
raw JSON), GetEvent, ListEvents and Admin.GetStats. This proves the wire
format (events are sent as pre-serialized slices) is valid protobuf for
other implementations, not just for the C++ one.

Usage: client_e2e_test.py BIN_DIR PROTO_DIR
"""
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

BIN_DIR, PROTO_DIR = sys.argv[1], sys.argv[2]
SECRET = "whsec_python_test_secret"


def generate_stubs(out_dir):
    protos = [os.path.join("sidestream/v1", f)
              for f in ("event.proto", "events_service.proto", "admin_service.proto")]
    subprocess.run(
        ["protoc", f"-I{PROTO_DIR}", f"--python_out={out_dir}", f"--grpc_out={out_dir}",
         "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin", *protos],
        check=True)
    sys.path.insert(0, out_dir)


class Server:
    def __init__(self, data_dir):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIDESTREAM_")}
        env["SIDESTREAM_WEBHOOK_SECRETS"] = f"py={SECRET}"
        self.stderr = open(os.path.join(data_dir, "server.log"), "wb")
        self.proc = subprocess.Popen(
            [os.path.join(BIN_DIR, "sidestream"), f"--data_dir={data_dir}/log",
             "--http_listen=127.0.0.1:0", "--grpc_listen=127.0.0.1:0",
             "--admin_listen=127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=self.stderr, env=env)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("sidestream ready "):
            raise RuntimeError(f"server did not start: {line!r}")
        fields = dict(f.split("=", 1) for f in line.split()[2:])
        self.http, self.grpc, self.epoch = fields["http"], fields["grpc"], fields["epoch"]
        self.admin = fields["admin"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.stderr.close()


def post_event(server, event, secret=SECRET):
    body = json.dumps(event).encode()
    t = int(time.time())
    sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    req = urllib.request.Request(
        f"http://{server.http}/webhook", data=body, method="POST",
        headers={"Content-Type": "application/json; charset=utf-8",
                 "Stripe-Signature": f"t={t},v1={sig}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, json.loads(resp.read()), body


def stripe_event(i, type_, account, live):
    e = {"id": f"evt_py{i}", "object": "event", "api_version": "2024-06-20",
         "created": 1700000000 + i, "livemode": live, "pending_webhooks": 1,
         "request": {"id": f"req_py{i}", "idempotency_key": None}, "type": type_,
         "data": {"object": {"id": f"po_py{i}", "object": "payout", "amount": 1000 + i,
                             "currency": "usd", "metadata": {"note": "caf\u00e9 \u2713"}}}}
    if account:
        e["account"] = account
    return e


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        generate_stubs(cls.tmp.name)
        global grpc, pb, pb_grpc, admin, admin_grpc
        import grpc
        from sidestream.v1 import events_service_pb2 as pb
        from sidestream.v1 import events_service_pb2_grpc as pb_grpc
        from sidestream.v1 import admin_service_pb2 as admin
        from sidestream.v1 import admin_service_pb2_grpc as admin_grpc
        cls.server = Server(cls.tmp.name)
        cls.channel = grpc.insecure_channel(cls.server.grpc)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.server.stop()
        cls.tmp.cleanup()

    def test_subscribe_get_list_stats(self):
        events = pb_grpc.EventsStub(self.channel)
        request = pb.SubscribeRequest(include_raw_json=True)
        request.filter.types.append("payout.*")
        request.filter.origin = 3  # ORIGIN_CONNECT
        stream = events.Subscribe(request, timeout=60)
        first = next(stream)
        self.assertTrue(first.HasField("caught_up"))
        self.assertEqual(first.caught_up.log_epoch, self.server.epoch)

        sent = {}
        for i, (type_, account) in enumerate([("payout.failed", "acct_1PyA"),
                                              ("account.updated", "acct_1PyA"),
                                              ("payout.paid", ""),
                                              ("payout.paid", "acct_1PyB")]):
            status, answer, body = post_event(self.server, stripe_event(i, type_, account, i % 2 == 0))
            self.assertEqual(status, 200)
            self.assertFalse(answer["duplicate"])
            sent[f"evt_py{i}"] = body

        got = []
        for item in stream:
            if item.HasField("event"):
                got.append(item.event)
            if len(got) == 2:
                break
        stream.cancel()
        self.assertEqual([e.id for e in got], ["evt_py0", "evt_py3"])
        self.assertLess(got[0].sequence, got[1].sequence)
        e = got[0]
        self.assertEqual(e.raw_json, sent["evt_py0"])
        self.assertEqual(e.type, "payout.failed")
        self.assertEqual(e.account, "acct_1PyA")
        self.assertTrue(e.livemode)
        self.assertEqual(e.object_type, "payout")
        self.assertEqual(e.object_id, "po_py0")
        self.assertEqual(e.request.id, "req_py0")
        self.assertEqual(e.create_time.seconds, 1700000000)
        self.assertEqual(e.data_object["amount"], 1000)
        self.assertEqual(e.data_object["metadata"]["note"], "caf\u00e9 \u2713")
        self.assertEqual(e.secret_label, "py")

        one = events.GetEvent(pb.GetEventRequest(id="evt_py1"), timeout=30)
        self.assertEqual(one.event.type, "account.updated")
        self.assertEqual(one.event.raw_json, b"")

        page = events.ListEvents(pb.ListEventsRequest(page_size=2), timeout=30)
        self.assertEqual([x.id for x in page.events], ["evt_py0", "evt_py1"])
        self.assertTrue(page.next_page_token)
        rest = events.ListEvents(pb.ListEventsRequest(page_size=10, page_token=page.next_page_token),
                                 timeout=30)
        self.assertEqual([x.id for x in rest.events], ["evt_py2", "evt_py3"])

        stats = admin_grpc.AdminStub(self.channel).GetStats(admin.GetStatsRequest(), timeout=30)
        self.assertEqual(stats.ingress.accepted, 4)
        self.assertEqual(stats.log.event_count, 4)
        self.assertEqual(stats.log.log_epoch, self.server.epoch)

    def test_invalid_filter_is_invalid_argument(self):
        events = pb_grpc.EventsStub(self.channel)
        request = pb.SubscribeRequest()
        request.filter.types.append("not a type")
        with self.assertRaises(grpc.RpcError) as ctx:
            next(events.Subscribe(request, timeout=30))
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)


def http_get(url, headers=None):
    """(status, content type, body text) of a GET; HTTP errors included."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


class MetricsTest(unittest.TestCase):
    """The admin listener: probes, and /metrics read by Prometheus's own
    Python client parser (python3-prometheus-client), not by our code."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        generate_stubs(cls.tmp.name)
        global grpc, admin, admin_grpc
        import grpc
        from sidestream.v1 import admin_service_pb2 as admin
        from sidestream.v1 import admin_service_pb2_grpc as admin_grpc
        cls.server = Server(cls.tmp.name)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.tmp.cleanup()

    def scrape(self):
        from prometheus_client.parser import text_string_to_metric_families
        status, content_type, text = http_get(f"http://{self.server.admin}/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(content_type.startswith("text/plain; version=0.0.4"), content_type)
        samples = {}
        families = {}
        for family in text_string_to_metric_families(text):
            families[family.name] = family.type
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return families, samples

    def test_probes(self):
        self.assertEqual(http_get(f"http://{self.server.admin}/healthz")[0], 200)
        status, _, body = http_get(f"http://{self.server.admin}/readyz")
        self.assertEqual((status, body), (200, "ready\n"))
        self.assertEqual(http_get(f"http://{self.server.admin}/nope")[0], 404)

    def test_metrics_parse_and_move_as_events_flow(self):
        families, before = self.scrape()
        self.assertEqual(families["sidestream_webhooks"], "counter")
        self.assertEqual(families["sidestream_webhook_append_duration_seconds"], "histogram")
        self.assertEqual(families["sidestream_log_last_sequence"], "gauge")
        self.assertEqual(families["process_resident_memory_bytes"], "gauge")
        self.assertGreater(before[("process_resident_memory_bytes", ())], 1 << 20)

        def count(samples, name, **labels):
            return samples.get((name, tuple(sorted(labels.items()))), 0)

        event = stripe_event(100, "payout.paid", "acct_1Metrics", True)
        self.assertEqual(post_event(self.server, event)[0], 200)
        self.assertEqual(post_event(self.server, event)[0], 200)  # a duplicate
        with self.assertRaises(urllib.error.HTTPError) as ctx:
            post_event(self.server, stripe_event(101, "payout.paid", "", True), secret="whsec_wrong")
        self.assertEqual(ctx.exception.code, 400)

        _, after = self.scrape()
        delta = lambda name, **labels: count(after, name, **labels) - count(before, name, **labels)
        self.assertEqual(delta("sidestream_webhooks_total", outcome="accepted"), 1)
        self.assertEqual(delta("sidestream_webhooks_total", outcome="duplicate"), 1)
        self.assertEqual(delta("sidestream_webhooks_total", outcome="rejected"), 1)
        self.assertEqual(delta("sidestream_webhooks_rejected_total", reason="signature_mismatch"), 1)
        self.assertEqual(delta("sidestream_webhook_append_duration_seconds_count"), 2)
        self.assertEqual(delta("sidestream_webhook_verify_duration_seconds_count"), 3)
        self.assertEqual(delta("sidestream_log_last_sequence"), 1)
        self.assertGreaterEqual(delta("sidestream_log_commits_total"), 1)
        self.assertGreaterEqual(delta("sidestream_log_committed_appends_total"),
                                delta("sidestream_log_commits_total"))
        self.assertEqual(count(after, "sidestream_ready"), 1)

        # Admin.GetStats shows the same picture.
        with grpc.insecure_channel(self.server.grpc) as channel:
            stats = admin_grpc.AdminStub(channel).GetStats(admin.GetStatsRequest(), timeout=30)
        self.assertEqual(stats.ingress.accepted,
                         count(after, "sidestream_webhooks_total", outcome="accepted"))
        self.assertEqual(stats.log.last_sequence, count(after, "sidestream_log_last_sequence"))
        self.assertEqual(stats.ingress.append_latency.count,
                         count(after, "sidestream_webhook_append_duration_seconds_count"))
        self.assertTrue(stats.ready)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
