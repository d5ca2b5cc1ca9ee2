"""Lookups through a bad path: dm-relay (tests/tools/dm_relay.c, built next to the binary)
between `domainmon scan` and a loopback Knot DNS, with 10 ms of delay each way and either
random loss or a cap on answers per second. With the default retry settings no lookup may
fail, and every record stored must be the zone's.

No assertion is about time: a slow machine takes longer, and every wait has a generous
deadline. The relay's seed is fixed, so a run loses the same datagrams for the same sends."""

import ipaddress
import os
import re
import signal
import subprocess
import threading
import time

import pytest

from conftest import DM_BIN, DomainMon
from dnsfixtures import Knot, free_port

RELAY_BIN = os.path.join(os.path.dirname(DM_BIN), "dm-relay")
ZONE = "lossy.test"
NAMES = 1000  # x 4 types: 4,000 lookups a scan
TYPES = ["A", "AAAA", "MX", "TXT"]
SCAN_TIMEOUT = 600  # seconds; a scan here takes a few


def name(i):
    return f"n{i:04d}.{ZONE}"


def zone_text():
    lines = [
        f"$ORIGIN {ZONE}.",
        "$TTL 300",
        f"@ SOA ns1.{ZONE}. hostmaster.{ZONE}. 1 3600 900 604800 300",
        f"@ NS ns1.{ZONE}.",
        "ns1 A 127.0.0.1",
    ]
    for i in range(1, NAMES + 1):
        label = f"n{i:04d}"
        lines.append(f"{label} A 10.0.{i // 256}.{i % 256}")
        lines.append(f"{label} AAAA 2001:db8::{i:x}")
        lines.append(f"{label} MX 10 mx{i % 7}.{ZONE}.")
        lines.append(f'{label} TXT "v=lossy {i}"')
    return "\n".join(lines) + "\n"


def expected(i):
    """The canonical values the monitor must store for name(i)."""
    return {
        "A": [f"10.0.{i // 256}.{i % 256}"],
        "AAAA": [ipaddress.IPv6Address(f"2001:db8::{i:x}").compressed],
        "MX": [f"10 mx{i % 7}.{ZONE}."],
        "TXT": [f'"v=lossy {i}"'],
    }


class Relay:
    """dm-relay between 127.0.0.1:port and an upstream port, in its own session; stop()
    returns its counters."""

    def __init__(self, upstream_port, *args):
        self.port = free_port()
        self.args = [RELAY_BIN, "--listen", f"127.0.0.1:{self.port}", "--upstream",
                     f"127.0.0.1:{upstream_port}", *args]
        self.proc = None
        self.lines = []
        self._ready = threading.Event()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("dm-relay ready"):
                self._ready.set()

    def start(self, timeout=10):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(timeout):
            self.proc.kill()
            raise RuntimeError(f"dm-relay did not start: {self.proc.stderr.read()}")
        return self

    def server(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        """SIGTERM; returns the counters of its last line as a dict."""
        if self.proc is None:
            return {}
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
                line.startswith("dm-relay up_") for line in self.lines):
            time.sleep(0.05)
        counters = [line for line in self.lines if line.startswith("dm-relay up_")]
        if not counters:
            return {}
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counters[-1])}


@pytest.fixture(scope="module")
def lossy_knot():
    k = Knot({f"{ZONE}.": zone_text()})
    try:
        k.start()
        yield k
    finally:
        k.cleanup()


@pytest.fixture
def relay_factory():
    made = []

    def make(upstream_port, *args):
        r = Relay(upstream_port, *args)
        made.append(r)
        return r.start()

    try:
        yield make
    finally:
        for r in made:
            r.stop()


@pytest.fixture
def store():
    """A domainmon folder whose database holds every name with the four types; the
    process that imported them is stopped again."""
    m = DomainMon(args=("domain-service",))
    m.start()
    names = [name(i) for i in range(1, NAMES + 1)]
    r = m.request("POST", "/api/v1/domains/import", json={"names": names, "record_types": TYPES},
                  timeout=120)
    assert r.status_code == 200, r
    assert r.json()["added"] == NAMES, r.json()
    m.stop()
    return m


def scan(mon, server, extra_env=None):
    """`domainmon scan` on the store through `server`; returns its summary figures."""
    env = {"DM_DNS_SERVERS": server, "DM_LOG_LEVEL": "warn", **(extra_env or {})}
    p = mon.cli("scan", env=env, timeout=SCAN_TIMEOUT)
    assert p.returncode == 0, f"scan failed ({p.returncode}):\n{p.stderr[-3000:]}"
    lines = [line for line in p.stdout.splitlines() if re.search(r"(^| )domains=\d+", line)]
    assert lines, f"no summary line:\n{p.stdout}\n{p.stderr[-3000:]}"
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", lines[-1])}


def check_records(mon):
    """Every stored set is the zone's, with status ok."""
    mon.start()
    try:
        wrong = []
        for i in range(1, NAMES + 1):
            r = mon.request("GET", f"/api/v1/domains/{name(i)}/records")
            assert r.status_code == 200, r
            got = {rec["type"]: rec for rec in r.json()["records"]}
            for rtype, values in expected(i).items():
                rec = got.get(rtype)
                if not rec or rec.get("status") != "ok" or rec.get("values") != values:
                    wrong.append((name(i), rtype, rec))
        assert not wrong, f"{len(wrong)} sets wrong, the first: {wrong[:5]}"
    finally:
        mon.stop()


def test_three_percent_loss_each_way_loses_no_lookup(lossy_knot, relay_factory, store):
    relay = relay_factory(lossy_knot.port, "--delay", "10", "--loss", "0.03", "--seed", "7")
    figures = scan(store, relay.server())
    counters = relay.stop()
    # The relay did drop datagrams, both ways, at about the rate asked for.
    assert counters["up_lost"] > 0.01 * counters["up_received"], counters
    assert counters["down_lost"] > 0.01 * counters["down_received"], counters
    assert figures["lookups"] == NAMES * len(TYPES), figures
    assert figures["failed"] == 0, figures
    check_records(store)


def test_rate_capped_server_loses_no_lookup(lossy_knot, relay_factory, store):
    # 2,000 answers a second over 50 ms round trips: about 100 queries in flight fit under
    # the cap. Two scanner loops, each with a window of its own: with one loop per core on
    # a machine with many cores, their smallest windows together would exceed the cap
    # (DM_DNS_QPS is the setting for that).
    relay = relay_factory(lossy_knot.port, "--delay", "25", "--rate-cap", "2000")
    figures = scan(store, relay.server(), {"DM_DNS_LOOPS": "2"})
    counters = relay.stop()
    assert counters["down_capped"] > 0, counters  # the cap was reached
    assert figures["lookups"] == NAMES * len(TYPES), figures
    assert figures["failed"] == 0, figures
    check_records(store)
