"""Faults in the distributed set-up: `domain-service` and `dns-service` processes on one
PostgreSQL database and one RabbitMQ broker (the servers of DM_TEST_PG_URL and
DM_TEST_AMQP_URL, which scripts/test.sh starts), a loopback Knot serving a zone of a few
dozen names, and the real binary. Skipped unless both URLs are set.

Each test starts from an empty database of its own and a clean task queue, scans every
DM_SCAN_INTERVAL (3 s), injects one fault (a scanner killed with SIGKILL, a broker restart,
a database restart, or five services started at the same moment on an empty database),
then checks through the API that:

- every domain is scanned again after the fault;
- one real change made in the zone after the fault (the A record of three names) is in the
  history of each of those names exactly once, and each type's first observation is there
  exactly once for every name;
- the change's event reaches the live stream (`GET /api/v1/events`) of a domain service
  exactly once, counted on the raw stream (no de-duplication by the test).

Every wait is a poll with a generous deadline; nothing asserts on speed. The time from the
end of a fault to the first scan of each domain after it is printed (`pytest -s`)."""

import concurrent.futures
import datetime
import glob
import os
import socket
import subprocess
import threading
import time

import pytest

from conftest import (PG_URL, REPO, DomainMon, pg_create_database, pg_drop_database, psql)
from dnsfixtures import Knot, wait_for
from test_dns import Api
from test_events import EventStream

AMQP_URL = os.environ.get("DM_TEST_AMQP_URL")
AMQP_RESTART = os.environ.get("DM_TEST_AMQP_RESTART")
PG_DIR = os.environ.get("DM_TEST_PG_DIR")
PG_SCRIPT = os.environ.get("DM_PG_SCRIPT")

pytestmark = [
    pytest.mark.skipif(not PG_URL, reason="DM_TEST_PG_URL is not set"),
    pytest.mark.skipif(not AMQP_URL, reason="DM_TEST_AMQP_URL is not set"),
]

INTERVAL = 3  # seconds between scans of a domain
TYPES = ["A", "TXT"]
COUNT = 36
NAMES = [f"h{i:02d}.fault.test" for i in range(COUNT)]
CHANGED = NAMES[:3]
MIGRATIONS = str(len(glob.glob(os.path.join(REPO, "sql", "postgres", "*.sql"))))
WAIT = 90  # seconds: the deadline of every wait on the services (a busy, shared machine)

FAULT_ZONE = (
    """$ORIGIN fault.test.
$TTL 300
@   SOA ns1.fault.test. hostmaster.fault.test. 1 3600 900 604800 300
@   NS  ns1.fault.test.
ns1 A   127.0.0.1
"""
    + "".join(f"h{i:02d} A 198.51.100.{i + 1}\n" for i in range(COUNT))
    + "".join(f'h{i:02d} TXT "id={i}"\n' for i in range(COUNT))
)


def new_address(name):
    return f"203.0.113.{NAMES.index(name) + 1}"


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


# ---------------------------------------------------------------------------------------
# a forwarder that holds every query a moment: scans are in flight most of the time


class SlowForwarder:
    """UDP on 127.0.0.1: forwards each query to `upstream` (host, port) after `delay`
    seconds and relays the answer. `pending` holds the client ports of queries not yet
    answered, so a test can tell which process has a lookup in flight."""

    def __init__(self, upstream, delay):
        self.upstream = upstream
        self.delay = delay
        self.pending = {}  # client port -> count
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def server(self):
        return f"127.0.0.1:{self.port}"

    def _serve(self):
        while not self._stop.is_set():
            try:
                wire, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.pending[addr[1]] = self.pending.get(addr[1], 0) + 1
            threading.Thread(target=self._forward, args=(wire, addr), daemon=True).start()

    def _forward(self, wire, addr):
        try:
            time.sleep(self.delay)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
                up.settimeout(2)
                up.sendto(wire, self.upstream)
                answer, _ = up.recvfrom(65535)
            if not self._stop.is_set():
                self.sock.sendto(answer, addr)
        except OSError:
            pass
        finally:
            with self.lock:
                n = self.pending.get(addr[1], 0) - 1
                if n > 0:
                    self.pending[addr[1]] = n
                else:
                    self.pending.pop(addr[1], None)

    def in_flight_ports(self):
        with self.lock:
            return set(self.pending)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def udp_ports_of(pid):
    """The local ports of the UDP sockets process `pid` holds (IPv4)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    with open(f"/proc/{pid}/net/udp", encoding="ascii") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].split(":")[1], 16))
    return ports


# ---------------------------------------------------------------------------------------
# the set-up of one test


class Cluster:
    """The processes of one test on its own database and its own exchange."""

    def __init__(self, knot, db, tag, dns_server=None, dns_timeout="500ms"):
        from test_amqp import bus_url

        self.knot = knot
        self.db = db
        self.env = {
            "DM_DNS_SERVERS": dns_server or knot.server(),
            "DM_SCAN_INTERVAL": str(INTERVAL),
            "DM_MIN_INTERVAL": str(INTERVAL),
            "DM_DNS_TIMEOUT": dns_timeout,
            "DM_DNS_RETRIES": "1",
            "RABBITMQ_URL": bus_url(tag),
        }
        self.mons = []
        self.key = None
        self.stream = None
        self.events = []  # every event the stream delivered, raw, in order
        self._stop = threading.Event()
        self._reader = None

    def make(self, kind):
        m = DomainMon(env=self.env, args=(kind,), database_url=self.db)
        self.mons.append(m)
        return m

    def start(self, kind):
        m = self.make(kind).start()
        if m.admin_key:
            self.key = m.admin_key
        return m

    def api(self, m):
        if m.admin_key is None:
            m.admin_key = self.key
        return Api(m)

    def services(self):
        return [m for m in self.mons if m.running]

    # the live stream of a domain service, read by a thread of its own

    def open_stream(self, m):
        self.stream = EventStream(m, topics="change.dns.#,domain.added", key=self.key)
        self.stream.wait_open()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        while not self._stop.is_set():
            try:
                ev = self.stream.next_event(timeout=0.5)
            except (EOFError, OSError):
                return
            if ev is not None:
                self.events.append(ev)

    def close(self):
        self._stop.set()
        if self._reader:
            self._reader.join(timeout=5)
        if self.stream:
            self.stream.close()

    # domains

    def add_all(self, apis):
        for i, name in enumerate(NAMES):
            apis[i % len(apis)].add(name, record_types=TYPES)

    def wait_all_checked(self, api, after=None):
        """Waits until every domain has been checked (after `after`); returns the earliest
        last_checked_at seen after `after` for each."""
        seen = {}

        def check():
            for name in NAMES:
                if name in seen:
                    continue
                t = api.checked_at(name)
                if t is not None and (after is None or t > after):
                    seen[name] = t
            return len(seen) == len(NAMES)

        wait_for(check, timeout=WAIT, interval=0.3,
                 what=f"a scan of every domain after {after} "
                      f"(missing: {sorted(set(NAMES) - set(seen))[:5]})")
        return seen

    def scanning(self, api):
        """Waits until scans are under way: some domain's last_checked_at moves."""
        before = {n: api.checked_at(n) for n in NAMES[-6:]}
        wait_for(lambda: any(api.checked_at(n) != t for n, t in before.items()),
                 timeout=WAIT, interval=0.1, what="a scan in progress")

    def wait_ready(self, mons=None):
        for m in mons or self.services():
            wait_for(lambda m=m: m.request("GET", "/readyz", key=None).status_code == 200,
                     timeout=WAIT, interval=0.2, what=f"{m.args} ready")

    def stop_all(self):
        self.close()
        errors = []
        for m in self.mons:
            if m.running:
                try:
                    m.stop(timeout=30)
                except AssertionError as e:
                    errors.append(str(e))
        assert not errors, "\n".join(errors)

    def cleanup(self):
        self.close()
        for m in self.mons:
            m.cleanup()


@pytest.fixture
def fault_setup(request):
    """(knot, database URL) for one test: a private Knot serving fault.test, an empty
    PostgreSQL database, and no task queue left by an earlier test. Processes made with
    Cluster are killed, then the database dropped, when the test ends."""
    from test_amqp import busctl

    p = busctl(AMQP_URL, "delete", "dns.scan", "delete", "dns.scan.dead")
    assert p.returncode == 0, p.stderr
    knot = Knot({"fault.test.": FAULT_ZONE})
    knot.start()
    db = pg_create_database()
    clusters = []

    def make(tag, **kw):
        c = Cluster(knot, db, tag, **kw)
        clusters.append(c)
        return c

    try:
        yield make
    finally:
        failed = getattr(request.node, "rep_call", None)
        for c in clusters:
            if failed is not None and failed.failed:
                for m in c.mons:
                    print(f"\n---- {m.args} stderr ----\n{m.stderr_tail(80)}")
            c.cleanup()
        knot.cleanup()
        pg_drop_database(db)


# ---------------------------------------------------------------------------------------
# the checks every test makes after its fault


def report_lags(what, t0, seen):
    lags = sorted((t - t0).total_seconds() for t in seen.values())
    print(f"\n{what}: every domain scanned again; seconds from the end of the fault to "
          f"each domain's first scan after it: min {lags[0]:.1f}, max {lags[-1]:.1f}")


def change_and_check(c, api):
    """Makes one real change (the A record of CHANGED) and checks that the history has it
    once per domain, every first observation once, and that the stream delivered each
    change's event once."""
    c.knot.update("fault.test", [line for name in CHANGED for line in (
        f"update delete {name}. A",
        f"update add {name}. 300 A {new_address(name)}")])

    def changed():
        out = {}
        for name in CHANGED:
            got = [e for e in api.history_all(name) if e["type"] == "A"
                   and e["before"] is not None]
            if not got:
                return None
            out[name] = got
        return out

    wait_for(changed, timeout=WAIT, interval=0.3, what="the A change of every changed name")
    # Two more scans of each changed name: a task run twice (redelivered, or scanned by two
    # services) would have written its entry by then.
    for name in CHANGED:
        api.wait_scans(name, 2, timeout=WAIT)

    change_ids = {}
    for name in NAMES:
        hist = api.history_all(name)
        firsts = sorted(e["type"] for e in hist if e["before"] is None)
        assert firsts == TYPES, (name, hist)
        real = [e for e in hist if e["before"] is not None]
        if name in CHANGED:
            i = NAMES.index(name)
            assert len(real) == 1, (name, real)
            (e,) = real
            assert e["type"] == "A" and e["before"] == [f"198.51.100.{i + 1}"], e
            assert e["after"] == [new_address(name)], e
            change_ids[name] = e["id"]
        else:
            assert real == [], (name, real)

    # The stream: every change's event once. Wait until the outbox is empty (a relay that
    # was killed holding claims leaves them to expire, and another relay publishes those
    # events again), then add a marker domain: its domain.added event is published after
    # everything the outbox held, so once it has arrived nothing earlier is still on its way.
    wanted = {f"change.dns.A:{i}" for i in change_ids.values()}
    wait_for(lambda: wanted <= {ev["id"] for ev in c.events}, timeout=WAIT, interval=0.2,
             what="the change events on the stream")
    wait_for(lambda: psql("SELECT count(*) FROM outbox", c.db) == "0", timeout=WAIT + 60,
             interval=0.5, what="an empty outbox")
    marker = f"marker{time.monotonic_ns()}.example"
    api.add(marker, record_types=["A"])
    wait_for(lambda: any(ev["event"] == "domain.added" and ev["data"].get("name") == marker
                         for ev in c.events), timeout=WAIT, interval=0.2, what="the marker")
    ids = [ev["id"] for ev in c.events]
    for name, hid in change_ids.items():
        got = [ev for ev in c.events if ev["id"] == f"change.dns.A:{hid}"]
        assert len(got) == 1, (name, got)
        assert got[0]["event"] == "change.dns.A" and got[0]["data"]["domain"] == name, got
        assert got[0]["data"]["after"] == [new_address(name)], got
    repeats = sorted({i for i in ids if ids.count(i) > 1})
    assert not repeats, f"events delivered more than once: {repeats[:10]}"


def start_cluster(c, scanners=2):
    """A domain service with a stream open, `scanners` DNS services, every domain added and
    scanned once. Returns (domain service, its Api)."""
    d = c.start("domain-service")
    api = c.api(d)
    c.open_stream(d)
    for _ in range(scanners):
        s = c.start("dns-service")
        s.admin_key = c.key
        wait_for(lambda s=s: "bus=amqp" in s.stderr_text(), timeout=WAIT,
                 what="the scanner's start line")
    c.add_all([api])
    c.wait_all_checked(api)
    return d, api


# ---------------------------------------------------------------------------------------
# 1. a scanner killed in the middle of a scan cycle


def test_scanner_killed_mid_scan(fault_setup, request):
    """Lookups go through a forwarder that holds each query 0.2 s, so a scanner has
    lookups in flight most of the time; it is killed while one of its queries is pending."""
    c = fault_setup("kill", dns_timeout="2s")
    fwd = SlowForwarder(("127.0.0.1", c.knot.port), 0.2)
    request.addfinalizer(fwd.stop)
    c.env["DM_DNS_SERVERS"] = fwd.server()
    d, api = start_cluster(c)
    victim, survivor = [m for m in c.mons if m.args == ["dns-service"]]
    c.scanning(api)
    wait_for(lambda: udp_ports_of(victim.proc.pid) & fwd.in_flight_ports(), timeout=WAIT,
             interval=0.01, what="a lookup of the victim in flight")
    victim.kill()  # SIGKILL: no stop, no nack, no outbox flush
    t0 = now_utc()
    seen = c.wait_all_checked(api, after=t0)
    report_lags("scanner killed", t0, seen)
    assert survivor.running and d.running
    change_and_check(c, api)
    c.stop_all()


# ---------------------------------------------------------------------------------------
# 2. the broker restarted in the middle of a scan cycle


@pytest.mark.skipif(not AMQP_RESTART, reason="DM_TEST_AMQP_RESTART is not set")
def test_broker_restart_mid_scan(fault_setup):
    c = fault_setup("brestart")
    d, api = start_cluster(c)
    c.scanning(api)
    subprocess.run(AMQP_RESTART, shell=True, check=True, timeout=180)
    t0 = now_utc()
    # The stream's queue is transient: wait for its consumer to be back before the change.
    wait_for(lambda: any("reconnected to the broker" in line and "queue=domainmon.events." in line
                         for line in d.stderr_text().splitlines()),
             timeout=WAIT, what="the domain service's events consumer back")
    c.wait_ready()
    seen = c.wait_all_checked(api, after=t0)
    report_lags("broker restarted", t0, seen)
    for m in c.services():
        assert "lost the broker" in m.stderr_text(), m.args
    change_and_check(c, api)
    c.stop_all()


# ---------------------------------------------------------------------------------------
# 3. the database restarted in the middle of a scan cycle


@pytest.mark.skipif(not (PG_DIR and PG_SCRIPT), reason="DM_TEST_PG_DIR/DM_PG_SCRIPT not set")
def test_database_restart_mid_scan(fault_setup):
    c = fault_setup("pgrestart")
    d, api = start_cluster(c)
    mons = c.services()
    c.scanning(api)
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("rc", subprocess.run(
        [PG_SCRIPT, "restart", PG_DIR], capture_output=True, text=True, timeout=180)))
    t.start()
    answers = {id(m): [] for m in mons}
    while t.is_alive():
        for m in mons:
            try:
                r = m.request("GET", "/readyz", key=None, timeout=5)
            except OSError:
                continue
            answers[id(m)].append(r)
        time.sleep(0.05)
    t.join()
    p = box["rc"]
    assert p.returncode == 0, p.stderr
    t0 = now_utc()
    for m in mons:
        for r in answers[id(m)]:
            assert r.status_code in (200, 503), (m.args, r)
            if r.status_code == 503:
                assert r.json()["down"] == ["database"], (m.args, r)
        n503 = sum(r.status_code == 503 for r in answers[id(m)])
        print(f"\n{m.args}: /readyz answered 503 {n503} time(s) of "
              f"{len(answers[id(m)])} while the database restarted")
    c.wait_ready(mons)
    seen = c.wait_all_checked(api, after=t0)
    report_lags("database restarted", t0, seen)
    change_and_check(c, api)
    c.stop_all()


# ---------------------------------------------------------------------------------------
# 4. five services started at the same moment on an empty database


def test_services_started_together_on_an_empty_database(fault_setup):
    c = fault_setup("together")
    mons = [c.make("domain-service") for _ in range(2)] + \
        [c.make("dns-service") for _ in range(3)]
    with concurrent.futures.ThreadPoolExecutor(len(mons)) as pool:
        list(pool.map(lambda m: m.start(timeout=60), mons))
    printed = [(m.args[0], m.admin_key) for m in mons if m.admin_key]
    assert len(printed) == 1, [m.stdout_lines() for m in mons]
    assert printed[0][0] == "domain-service", printed
    c.key = printed[0][1]
    assert psql("SELECT count(*) FROM api_keys", c.db) == "1"
    assert psql("SELECT count(*) FROM schema_migrations", c.db) == MIGRATIONS
    domain_services = mons[:2]
    apis = [c.api(m) for m in domain_services]
    c.open_stream(domain_services[0])
    for m in mons[2:]:
        wait_for(lambda m=m: "bus=amqp" in m.stderr_text(), timeout=WAIT,
                 what="the scanner's start line")
    c.add_all(apis)  # alternately through either API
    t0 = now_utc()
    seen = c.wait_all_checked(apis[1])
    report_lags("started together", t0, seen)
    change_and_check(c, apis[0])
    c.stop_all()
