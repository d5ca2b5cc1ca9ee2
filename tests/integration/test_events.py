"""The live event stream, GET /api/v1/events (Server-Sent Events), end to end: the real binary,
a loopback Knot whose zones change under it, and plain sockets as clients.

In `domainmon all` the DNS service's change events reach the stream through the in-process
bus; one test runs the domain service and the DNS service as two processes on RabbitMQ
(skipped without DM_TEST_AMQP_URL). Every wait is a poll with a deadline."""

import collections
import json
import os
import socket
import subprocess
import time
import urllib.parse

import pytest

from conftest import DomainMon
from dnsfixtures import (  # noqa: F401 - fixtures are used by name
    BIG_TXT_RECORDS,
    BULK_NAMES,
    FIXTURE_ZONES,
    Knot,
    txt_presentation,
    wait_for,
)
from test_dns import Api, dns_env

PROBLEM = "application/problem+json"
AMQP_URL = os.environ.get("DM_TEST_AMQP_URL")


@pytest.fixture
def fresh_task_queue():
    """The DNS service's task queue is shared by every test on the broker: start clean."""
    from test_amqp import busctl

    p = busctl(AMQP_URL, "delete", "dns.scan", "delete", "dns.scan.dead")
    assert p.returncode == 0, p.stderr

# 120 names, each with an A record and a TXT set of about 4 KB: their first scans make about
# 1 MB of change events.
BIG_NAMES = [f"t{i:03d}.bigbulk.test" for i in range(1, 121)]
BIGBULK_ZONE = (
    """$ORIGIN bigbulk.test.
$TTL 300
@   SOA ns1.bigbulk.test. hostmaster.bigbulk.test. 1 3600 900 604800 300
@   NS  ns1.bigbulk.test.
ns1 A   127.0.0.1
"""
    + "".join(f"t{i:03d} A 198.51.100.{i}\n" for i in range(1, 121))
    + "".join(f"t{i:03d} TXT {txt_presentation(r)}\n"
              for i in range(1, 121) for r in BIG_TXT_RECORDS)
)


@pytest.fixture(scope="module")
def knot():
    """This module's Knot: the shared fixture zones plus bigbulk.test."""
    k = Knot({**FIXTURE_ZONES, "bigbulk.test.": BIGBULK_ZONE})
    try:
        k.start()
        yield k
    finally:
        k.cleanup()


# ---------------------------------------------------------------------------------------
# a small SSE client


class EventStream:
    """One GET /api/v1/events on a socket of its own, read with plain recv() (a timed-out
    read must not spoil the stream, as it does a socket file). `status` and header(name) are
    the response's; next_event() parses the chunked text/event-stream body as a browser
    does."""

    def __init__(self, mon, topics=None, last_event_id=None, key="admin", timeout=10):
        path = "/api/v1/events"
        if topics is not None:
            path += "?" + urllib.parse.urlencode({"topics": topics})
        if key == "admin":
            key = mon.admin_key
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream"]
        if key:
            lines.append(f"Authorization: Bearer {key}")
        if last_event_id is not None:
            lines.append(f"Last-Event-ID: {last_event_id}")
        self.sock = socket.create_connection(("127.0.0.1", mon.port), timeout=timeout)
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.raw = b""  # received, not yet decoded
        self.body = b""  # decoded, not yet a whole line
        self.lines = collections.deque()  # whole lines, not yet parsed
        self.eof = False  # the connection ended
        self.ended = False  # the body ended (last chunk)
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.raw:
            assert self._recv(deadline), f"no response head: {self.raw!r}"
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        status_line, *fields = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for f in fields:
            k, _, v = f.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self.comments = []
        self.last_event_id = last_event_id

    def header(self, name):
        return self.headers.get(name.lower())

    def _recv(self, deadline):
        """More bytes into self.raw; False on timeout or when the connection ended."""
        left = deadline - time.monotonic()
        if left <= 0 or self.eof:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.raw += chunk
        return True

    def _decode(self):
        """Moves whole chunks from raw to body, and whole lines from body to lines."""
        if not self.chunked:
            self.body += self.raw
            self.raw = b""
        pos = 0
        while self.chunked and not self.ended:
            eol = self.raw.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(self.raw[pos:eol].split(b";")[0], 16)
            if len(self.raw) < eol + 2 + size + 2:
                break
            assert self.raw[eol + 2 + size:eol + 4 + size] == b"\r\n"
            self.body += self.raw[eol + 2:eol + 2 + size]
            pos = eol + 4 + size
            if size == 0:
                self.ended = True
        self.raw = self.raw[pos:]
        if b"\n" in self.body:
            *whole, self.body = self.body.split(b"\n")
            self.lines.extend(line.decode("utf-8").rstrip("\r") for line in whole)

    def read_body(self, timeout=10.0):
        """The whole body of a response that is not a stream (a refusal)."""
        deadline = time.monotonic() + timeout
        length = int(self.headers.get("content-length", "-1"))
        body = self.raw
        while len(body) < length:
            assert self._recv(deadline), "the body did not arrive"
            body = self.raw
        return body[:length]

    def body_json(self):
        return json.loads(self.read_body())

    def _line(self, deadline):
        while True:
            if self.lines:
                return self.lines.popleft()
            self._decode()
            if self.lines:
                continue
            if self.ended or self.eof:
                raise EOFError("the stream ended" if self.ended else "the connection ended")
            if not self._recv(deadline):
                if self.eof:
                    continue
                raise TimeoutError

    def next_event(self, timeout=10.0):
        """The next event as {"event", "id", "data"} (data parsed as JSON when it is), or
        None when none came within `timeout`. Comment lines go to self.comments."""
        deadline = time.monotonic() + timeout
        event, data, eid = None, [], None
        while True:
            try:
                line = self._line(deadline)
            except TimeoutError:
                return None
            if line == "":
                if not data:
                    event, eid = None, None
                    continue
                if eid is not None:
                    self.last_event_id = eid
                text = "\n".join(data)
                try:
                    parsed = json.loads(text)
                except ValueError:
                    parsed = text
                return {"event": event or "message", "id": eid, "data": parsed}
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                eid = value

    def wait_open(self, timeout=10.0):
        """Waits for the opening comment: from then on the stream sees every new event."""
        assert self.status == 200, (self.status, self.read_body())
        deadline = time.monotonic() + timeout
        while "ok" not in self.comments:
            try:
                line = self._line(deadline)
            except TimeoutError:
                raise AssertionError("no opening comment") from None
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
        return self

    def events(self, n, timeout=30.0, pred=None):
        """The next `n` events (matching `pred`), failing after `timeout`."""
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            left = deadline - time.monotonic()
            assert left > 0, f"{len(out)} of {n} events within {timeout}s: {out[-3:]}"
            ev = self.next_event(timeout=left)
            if ev is not None and (pred is None or pred(ev)):
                out.append(ev)
        return out

    def close(self):
        self.sock.close()


def thread_count(mon):
    with open(f"/proc/{mon.proc.pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no Threads line")


def rss_kib(mon):
    with open(f"/proc/{mon.proc.pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS line")


def sanitized(mon):
    with open(f"/proc/{mon.proc.pid}/maps", encoding="ascii", errors="replace") as f:
        return "libasan" in f.read()


def assert_problem(r, status, field=None):
    assert r.status_code == status, r
    assert r.headers["Content-Type"].startswith(PROBLEM), r.headers["Content-Type"]
    p = r.json()
    assert p["status"] == status
    if field:
        assert [e["field"] for e in p.get("errors", [])] == [field], p
    return p


def event_stable_id(ev):
    return f"{ev['event']}:{ev['data']['id']}"


def bulk_import(api, names):
    r = api.post("/api/v1/domains/import", {"names": names}, expect=200)
    assert r["added"] == len(names), r


@pytest.fixture
def api(knot, domainmon_factory):
    """`domainmon all` scanning this module's Knot every second."""
    return Api(domainmon_factory(env=dns_env(knot.server())))


# ---------------------------------------------------------------------------------------
# what the stream sends


def test_dns_change_reaches_the_stream_within_seconds(api, knot):
    m = api.mon
    name = "chg.example.test"
    api.add(name)
    api.wait_checked(name)
    s = EventStream(m).wait_open()
    assert s.status == 200
    assert s.header("Content-Type") == "text/event-stream"
    assert s.header("Cache-Control") == "no-cache"
    mx_only = EventStream(m, topics="change.dns.MX").wait_open()

    t0 = time.monotonic()
    knot.update("example.test", [
        "update delete chg.example.test. A 192.0.2.101",
        "update add chg.example.test. 300 A 192.0.2.102",
    ])
    (ev,) = s.events(1, timeout=15, pred=lambda e: e["event"] == "change.dns.A"
                     and e["data"]["domain"] == name and e["data"]["before"] is not None)
    assert time.monotonic() - t0 < 10
    data = ev["data"]
    assert data["before"] == ["192.0.2.100", "192.0.2.101"]
    assert data["after"] == ["192.0.2.100", "192.0.2.102"]
    assert data["added"] == ["192.0.2.102"] and data["removed"] == ["192.0.2.101"]
    # The stable id, and the body is the history entry (with "domain").
    assert ev["id"] == f"change.dns.A:{data['id']}"
    entry = [c for c in api.history_all(name) if c["id"] == data["id"]]
    assert entry == [data]

    # A filtered stream saw nothing of it: only MX changes pass.
    assert mx_only.next_event(timeout=1.0) is None
    knot.update("example.test", ["update add chg.example.test. 300 MX 30 mx3.example.test."])
    (mx,) = mx_only.events(1, timeout=15)
    assert mx["event"] == "change.dns.MX" and mx["data"]["domain"] == name
    assert mx["data"]["added"] == ["30 mx3.example.test."]
    s.close()
    mx_only.close()


def test_last_event_id_replays_exactly_what_was_missed(api):
    m = api.mon
    # DNS changes only: the imports' domain.added events are not counted here.
    reference = EventStream(m, topics="change.dns.#").wait_open()  # reads throughout
    client = EventStream(m, topics="change.dns.#").wait_open()

    # First scans of new domains: 8 first observations each.
    bulk_import(api, BULK_NAMES[:3])
    seen = client.events(5, timeout=30)
    last = seen[-1]["id"]
    assert last == event_stable_id(seen[-1])
    client.close()

    # While the client is away, more happens.
    bulk_import(api, BULK_NAMES[3:6])
    everything = reference.events(48, timeout=30)
    assert reference.next_event(timeout=2.0) is None, "more events than 6 first scans make"
    ids = [e["id"] for e in everything]
    assert len(set(ids)) == len(ids), "a repeated event"
    missed = everything[ids.index(last) + 1:]
    assert len(missed) == 48 - 5

    back = EventStream(m, topics="change.dns.#", last_event_id=last).wait_open()
    replay = back.events(len(missed), timeout=10)
    assert [e["id"] for e in replay] == [e["id"] for e in missed]
    assert [e["data"] for e in replay] == [e["data"] for e in missed]
    assert back.next_event(timeout=1.0) is None, "more than the missed events"
    # And live events follow.
    bulk_import(api, BULK_NAMES[6:7])
    live = back.events(8, timeout=30)
    assert {e["data"]["domain"] for e in live} == {BULK_NAMES[6]}
    back.close()

    # The newest id: nothing missed, nothing replayed.
    newest = reference.events(8, timeout=30)[-1]["id"]
    up_to_date = EventStream(m, topics="change.dns.#", last_event_id=newest).wait_open()
    assert up_to_date.next_event(timeout=1.0) is None
    up_to_date.close()

    # An id the service does not hold: told so, with the newest id to resume from.
    lost = EventStream(m, topics="change.dns.#",
                       last_event_id="change.dns.A:999999999").wait_open()
    reset = lost.next_event(timeout=5)
    assert reset["event"] == "reset", reset
    assert reset["data"]["reason"] == "unknown_last_event_id"
    assert reset["id"] == newest
    assert lost.next_event(timeout=1.0) is None
    lost.close()
    reference.close()


def test_stream_errors(domainmon):
    m = domainmon
    r = m.request("GET", "/api/v1/events", key=None)
    assert_problem(r, 401)
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert_problem(m.request("GET", "/api/v1/events", key="dmk_000000000000_" + "a" * 32), 401)
    for bad in ("", "a*", "change..dns", "change.dns.#,", "a b", ",".join(["x"] * 17),
                "x" * 256):
        assert_problem(m.request("GET", "/api/v1/events", params={"topics": bad}), 400,
                       field="topics")
    assert_problem(m.request("GET", "/api/v1/events?topic=change.%23"), 400, field="topic")
    assert_problem(m.request("GET", "/api/v1/events?topics=a&topics=b"), 400, field="topics")
    # A read key is enough.
    reader = m.create_key("reader", "read")
    s = EventStream(m, key=reader, topics="change.dns.#,domain.*").wait_open()
    assert s.status == 200
    s.close()
    # Errors come before the stream: a refused stream is an ordinary problem response.
    s = EventStream(m, topics="nope*")
    assert s.status == 400 and s.header("Content-Type").startswith(PROBLEM)
    assert s.body_json()["errors"][0]["field"] == "topics"
    s.close()


def test_openapi_documents_the_stream(domainmon):
    doc = domainmon.request("GET", "/openapi.json", key=None).json()
    op = doc["paths"]["/api/v1/events"]["get"]
    assert "text/event-stream" in op["responses"]["200"]["content"]
    assert {"400", "401", "503"} <= set(op["responses"])
    params = {p["$ref"].rsplit("/", 1)[1] for p in op["parameters"]}
    assert params == {"Topics", "LastEventID"}
    assert doc["components"]["parameters"]["LastEventID"]["in"] == "header"
    assert "Reset" in doc["components"]["schemas"]


def test_heartbeats_and_a_clean_end_on_shutdown(domainmon_factory):
    m = domainmon_factory(env={"DM_EVENTS_HEARTBEAT": "1s"})
    s = EventStream(m).wait_open()
    wait_for(lambda: s.next_event(timeout=0.5) is None and s.comments.count("ping") >= 2,
             timeout=6, what="two heartbeats")
    m.stop()
    assert m.stop_seconds < 5, m.stop_seconds
    # The chunked body was ended properly: end of stream, not a broken connection.
    with pytest.raises(EOFError):
        s.next_event(timeout=5)
    s.close()


# ---------------------------------------------------------------------------------------
# many streams, slow streams


@pytest.mark.parametrize("http_threads", ["1", "4"])  # MHD's one polling thread, or a pool
def test_many_idle_streams_hold_no_thread_each(knot, domainmon_factory, http_threads):
    m = domainmon_factory(env={**dns_env(knot.server()), "DM_EVENTS_MAX_STREAMS": "200",
                               "DM_EVENTS_HEARTBEAT": "2s", "DM_HTTP_THREADS": http_threads})
    api = Api(m)
    wait_for(lambda: 'msg="started"' in m.stderr_text(), timeout=20, what="the start line")
    before = thread_count(m)
    streams = [EventStream(m).wait_open() for _ in range(200)]
    assert thread_count(m) <= before + 1, (before, thread_count(m))

    # The API answers at once with 200 streams open.
    t0 = time.monotonic()
    assert m.request("GET", "/api/v1/domains").status_code == 200
    assert m.request("GET", "/healthz", key=None).status_code == 200
    assert time.monotonic() - t0 < 1.0

    # One more is refused: problem+json, and when to try again.
    r = m.request("GET", "/api/v1/events")
    p = assert_problem(r, 503)
    assert p["type"].endswith("/too-many-streams"), p
    assert r.headers["Retry-After"] == "5"

    # Every parked stream is woken by an event.
    api.add("a-only.example.test")
    for s in streams:
        (ev,) = s.events(1, timeout=15, pred=lambda e: e["event"] == "change.dns.A")
        assert ev["data"]["domain"] == "a-only.example.test"
    assert thread_count(m) <= before + 1

    # Closed streams make room again: found gone at their next heartbeat.
    for s in streams[:10]:
        s.close()
    wait_for(lambda: EventStream(m).status == 200, timeout=20, what="room for a stream")
    for s in streams[10:]:
        s.close()


def test_a_client_that_never_reads_is_dropped(knot, domainmon_factory):
    # The ring (16 MiB) holds everything here: what drops the stuck stream is its backlog,
    # above 64 KiB for 5 s, not an event it owed leaving the ring.
    m = domainmon_factory(env={**dns_env(knot.server()), "DM_EVENTS_BACKLOG": "65536"})
    api = Api(m)
    wait_for(lambda: 'msg="started"' in m.stderr_text(), timeout=20, what="the start line")
    rss_before = rss_kib(m)

    # A client with a tiny receive window that reads the response head and then nothing.
    stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", m.port))
    stuck.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Authorization: Bearer " + m.admin_key.encode() + b"\r\n\r\n")
    stuck.settimeout(10)
    head = b""
    while b": ok\n\n" not in head:
        chunk = stuck.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head

    # One that reads along gets everything: about 1 MB of first observations.
    reader = EventStream(m, topics="change.dns.#").wait_open()
    t_burst = time.monotonic()
    bulk_import(api, BIG_NAMES)
    got = reader.events(len(BIG_NAMES) * 8, timeout=60)
    assert {e["data"]["domain"] for e in got} == set(BIG_NAMES)
    total = sum(len(json.dumps(e["data"])) for e in got)
    assert total > 800_000, total
    wait_for(lambda: m.stderr_text().count('msg="dropped an event stream that fell behind"'),
             timeout=15, what="the stuck stream dropped")
    assert time.monotonic() - t_burst > 4.5, "dropped before its 5 s of grace were over"
    assert m.stderr_text().count("fell behind") == 1

    # The server ended the stuck connection: once it reads, it finds the end of it after
    # at most what the socket buffers held, not the megabyte that went by.
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    received = 0
    while True:
        try:
            chunk = stuck.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += len(chunk)
    stuck.close()
    assert received < 512 * 1024, received
    # Nothing held the megabyte on its behalf: the ring holds events once for all streams.
    # (Under AddressSanitizer freed memory sits in quarantine: RSS says nothing there.)
    growth = rss_kib(m) - rss_before
    print(f"RSS grew by {growth} KiB while about {total // 1024} KiB of events went by")
    if not sanitized(m):
        assert growth < 16 * 1024, f"RSS grew by {growth} KiB"
    reader.close()
    assert m.request("GET", "/healthz", key=None).status_code == 200
    s = EventStream(m).wait_open()
    s.close()


# ---------------------------------------------------------------------------------------
# RabbitMQ: the stream of a domain service whose DNS service runs elsewhere


@pytest.mark.skipif(not AMQP_URL, reason="DM_TEST_AMQP_URL is not set")
def test_stream_of_a_separate_domain_service_on_rabbitmq(knot, domainmon_factory,
                                                        fresh_task_queue):
    from test_amqp import bus_url

    env = {**dns_env(knot.server()), "RABBITMQ_URL": bus_url("events")}
    m = domainmon_factory(env=env, args=("domain-service",))
    api = Api(m)
    s = EventStream(m).wait_open()
    scanner = domainmon_factory(env=env, args=("dns-service",), database_url=m.database_url)
    try:
        wait_for(lambda: "bus=amqp" in scanner.stderr_text(), timeout=20, what="the start line")
        name = "a-only.example.test"
        api.add(name)
        (ev,) = s.events(1, timeout=30, pred=lambda e: e["event"] == "change.dns.A")
        assert ev["data"]["domain"] == name
        assert ev["data"]["after"] == ["192.0.2.10"]
        assert ev["id"] == f"change.dns.A:{ev['data']['id']}"
        entry = [c for c in api.history_all(name) if c["id"] == ev["data"]["id"]]
        assert entry == [ev["data"]]
    finally:
        s.close()
    scanner.stop()


@pytest.mark.skipif(not AMQP_URL, reason="DM_TEST_AMQP_URL is not set")
def test_stream_goes_on_after_a_broker_restart(knot, domainmon_factory, fresh_task_queue):
    """The queue is not durable: the broker loses it in a restart, and the consumer declares
    it again when it reconnects. The stream itself stays open throughout."""
    restart = os.environ.get("DM_TEST_AMQP_RESTART")
    if not restart:
        pytest.skip("DM_TEST_AMQP_RESTART is not set")
    from test_amqp import bus_url

    m = domainmon_factory(env={**dns_env(knot.server()), "RABBITMQ_URL": bus_url("ev-restart")})
    api = Api(m)
    s = EventStream(m, topics="change.dns.#").wait_open()
    api.add("a-only.example.test")
    s.events(1, timeout=30, pred=lambda e: e["data"]["domain"] == "a-only.example.test")
    subprocess.run(restart, shell=True, check=True, timeout=180)
    wait_for(lambda: any("reconnected to the broker" in line and "queue=domainmon.events." in line
                         for line in m.stderr_text().splitlines()),
             timeout=60, what="the events consumer back")
    # Events published from now on reach the open stream.
    deadline = time.monotonic() + 60
    api.add("www.example.test")
    (ev,) = s.events(1, timeout=max(1, deadline - time.monotonic()),
                     pred=lambda e: e["data"]["domain"] == "www.example.test")
    assert ev["event"].startswith("change.dns.")
    s.close()
