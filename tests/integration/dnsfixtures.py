"""DNS servers for integration tests: a throwaway Knot DNS instance serving fixture zones,
and a small responder of our own that answers in random order, with mixed-case names and
TTLs that count down (what real resolvers do, and what Knot will not do for us).

Everything listens on 127.0.0.1 only, on free ports, in temporary folders, and is stopped
by the fixture finalizers even when a test fails.

Import from a test module:

    from dnsfixtures import knot, shuffle_responder, Knot, ShuffleResponder, wait_for
"""

import collections
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.renderer
import dns.rrset
import pytest

KNOTD = shutil.which("knotd") or "/usr/sbin/knotd"
KDIG = shutil.which("kdig") or "/usr/bin/kdig"
KNSUPDATE = shutil.which("knsupdate") or "/usr/bin/knsupdate"


# ---------------------------------------------------------------------------------------
# helpers


def wait_for(fn, timeout=10.0, interval=0.1, what="condition"):
    """Calls fn() until it returns something truthy; returns that value. Raises
    AssertionError naming `what` (and the last value or exception) after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    last_exc = None
    while True:
        try:
            last = fn()
            last_exc = None
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - reported below if it never succeeds
            last_exc = e
        if time.monotonic() >= deadline:
            detail = f"last exception: {last_exc!r}" if last_exc else f"last value: {last!r}"
            raise AssertionError(f"timed out after {timeout}s waiting for {what} ({detail})")
        time.sleep(interval)


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1 (DNS servers need both)."""
    for _ in range(100):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
            finally:
                u.close()
            return port
        finally:
            t.close()
    raise RuntimeError("no free port on 127.0.0.1")


# ---------------------------------------------------------------------------------------
# fixture zones

# A TXT set of about 4 KB: too big for a UDP answer (512 bytes, or the client's EDNS
# buffer), so it arrives with TC set and must be fetched over TCP. Strings of mixed case
# and a few characters that need quoting in presentation format.
BIG_TXT_STRINGS = [f"chunk-{i:03d} Mixed Case payload " + ("x" * 40) for i in range(60)]
BIG_TXT_RECORDS = [
    # three records of 20 strings each (every record ~1.4 KB of RDATA)
    BIG_TXT_STRINGS[0:20],
    BIG_TXT_STRINGS[20:40],
    BIG_TXT_STRINGS[40:60],
]


def txt_presentation(strings):
    """Canonical presentation of one TXT record: each string quoted, separated by spaces."""
    out = []
    for s in strings:
        esc = s.replace("\\", "\\\\").replace('"', '\\"')
        out.append(f'"{esc}"')
    return " ".join(out)


BIG_TXT_VALUES = sorted(txt_presentation(r) for r in BIG_TXT_RECORDS)

EXAMPLE_ZONE = (
    """$ORIGIN example.test.
$TTL 300
@               SOA   ns1.example.test. hostmaster.example.test. 1 3600 900 604800 300
@               NS    ns1.example.test.
@               NS    ns2.example.test.
ns1             A     127.0.0.1
ns2             A     127.0.0.2
@               A     192.0.2.1
@               A     192.0.2.2
@               AAAA  2001:db8::1
@               MX    10 mail.example.test.
@               MX    20 mail2.example.test.
@               TXT   "v=spf1 -all"
@               TXT   "Hello World" "second String"
@               CAA   0 issue "letsencrypt.org"
mail            A     192.0.2.25
mail2           A     192.0.2.26
www             CNAME example.test.
; only an A record: every other default type is NODATA
a-only          A     192.0.2.10
; a custom type
srv             SRV   10 5 5060 sip.example.test.
srv             A     192.0.2.33
; IDN: bücher.example.test
xn--bcher-kva   A     192.0.2.80
xn--bcher-kva   TXT   "B\\195\\188cher"
; sets that tests change with dynamic updates
chg             A     192.0.2.100
chg             A     192.0.2.101
chg             MX    10 mx1.example.test.
chg             TXT   "version=1"
ttl             A     192.0.2.110
gone            A     192.0.2.120
"""
    + "".join(f"big TXT {txt_presentation(r)}\n" for r in BIG_TXT_RECORDS)
    + "".join(f"hist{i} A 192.0.2.{130 + i}\n" for i in range(1, 4))
)

BULK_ZONE = (
    """$ORIGIN bulk.test.
$TTL 300
@   SOA ns1.bulk.test. hostmaster.bulk.test. 1 3600 900 604800 300
@   NS  ns1.bulk.test.
ns1 A   127.0.0.1
"""
    + "".join(f"d{i:03d} A 198.51.100.{i}\n" for i in range(1, 101))
)

# Zones served by the `knot` fixture, by name (with trailing dot).
FIXTURE_ZONES = {
    "example.test.": EXAMPLE_ZONE,
    "bulk.test.": BULK_ZONE,
}
BULK_NAMES = [f"d{i:03d}.bulk.test" for i in range(1, 101)]


# ---------------------------------------------------------------------------------------
# Knot DNS


class Knot:
    """A knotd in the foreground with its own config, zone files, journal and run folder.

    zones: {"example.test.": "zone file text", ...}. Dynamic updates from 127.0.0.0/8 are
    allowed; the zone files are never rewritten (zonefile-sync -1) and the journal keeps
    changes, so stop() then start() serves the updated zones again on the same port."""

    def __init__(self, zones, port=None, tmpdir=None):
        self.zones = dict(zones)
        self.port = port or free_port()
        self._own_dir = tmpdir is None
        self.dir = tmpdir or tempfile.mkdtemp(prefix="dm-knot-")
        self.conf = os.path.join(self.dir, "knot.conf")
        self.proc = None
        self._log = None
        self._write_files()

    def _write_files(self):
        zdir = os.path.join(self.dir, "zones")
        for sub in ("zones", "db", "run"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        for zone, text in self.zones.items():
            name = zone.rstrip(".")
            with open(os.path.join(zdir, f"{name}.zone"), "w", encoding="utf-8") as f:
                f.write(text)
        zone_lines = "".join(f"  - domain: {z.rstrip('.')}.\n" for z in self.zones)
        conf = f"""server:
    listen: 127.0.0.1@{self.port}
    rundir: "{self.dir}/run"
    udp-workers: 2
    tcp-workers: 2
    background-workers: 1

log:
  - target: stderr
    any: warning

database:
    storage: "{self.dir}/db"

acl:
  - id: local_update
    address: 127.0.0.0/8
    action: update

template:
  - id: default
    storage: "{zdir}"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: changes
    serial-policy: increment
    semantic-checks: off
    acl: local_update

zone:
{zone_lines}"""
        with open(self.conf, "w", encoding="utf-8") as f:
            f.write(conf)

    def start(self, timeout=10.0):
        """Starts knotd and waits until every zone answers SOA."""
        if self.proc is not None:
            return
        self._log = open(os.path.join(self.dir, "knotd.log"), "ab")
        self.proc = subprocess.Popen(
            [KNOTD, "-c", self.conf],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        pending = [z.rstrip(".") for z in self.zones]
        while pending:
            if self.proc.poll() is not None:
                raise RuntimeError(f"knotd exited with {self.proc.returncode}:\n{self.log_text()}")
            if self._soa_answers(pending[0]):
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"knotd not answering SOA for {pending[0]}:\n{self.log_text()}")
            time.sleep(0.05)

    def _soa_answers(self, zone):
        q = dns.message.make_query(zone + ".", dns.rdatatype.SOA)
        try:
            r = dns.query.udp(q, "127.0.0.1", port=self.port, timeout=0.2)
        except (dns.exception.Timeout, OSError):
            return False
        return r.rcode() == dns.rcode.NOERROR and len(r.answer) > 0

    def stop(self):
        """Stops knotd (SIGTERM, then SIGKILL). Zone state is kept for start()."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log:
            self._log.close()
            self._log = None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self):
        try:
            with open(os.path.join(self.dir, "knotd.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def server(self):
        """The DM_DNS_SERVERS value for this server."""
        return f"127.0.0.1:{self.port}"

    def update(self, zone, lines, timeout=10.0):
        """Applies one dynamic update with knsupdate. `lines` are knsupdate commands such as
        "update delete x.example.test. A" or "update add x.example.test. 300 A 192.0.2.1"."""
        zone = zone if zone.endswith(".") else zone + "."
        script = f"server 127.0.0.1 {self.port}\nzone {zone}\norigin {zone}\n"
        script += "".join(line.rstrip("\n") + "\n" for line in lines)
        script += "send\nanswer\nquit\n"
        r = subprocess.run(
            [KNSUPDATE, "-t", "3"], input=script, capture_output=True, text=True, timeout=timeout
        )
        if r.returncode != 0 or "status: NOERROR" not in r.stdout:
            raise RuntimeError(
                f"knsupdate failed ({r.returncode}):\n{script}\n{r.stdout}\n{r.stderr}")

    def query(self, name, rtype, tcp=False):
        """kdig +short lines (for checking the fixture itself)."""
        args = [KDIG, "@127.0.0.1", "-p", str(self.port), "+short", "+retry=0", "+timeout=2"]
        if tcp:
            args.append("+tcp")
        r = subprocess.run(args + [name, rtype], capture_output=True, text=True, timeout=10)
        return [line for line in r.stdout.splitlines() if line.strip()]

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.cleanup()


@pytest.fixture(scope="module")
def knot():
    """One Knot per test module serving FIXTURE_ZONES. Tests that stop it or change shared
    names should use their own Knot (or their own names) instead."""
    k = Knot(FIXTURE_ZONES)
    try:
        k.start()
        yield k
    finally:
        k.cleanup()


@pytest.fixture
def knot_factory():
    """Makes private Knot instances (started) that are all stopped when the test ends."""
    made = []

    def make(zones=None):
        k = Knot(zones or FIXTURE_ZONES)
        made.append(k)
        k.start()
        return k

    try:
        yield make
    finally:
        for k in made:
            k.cleanup()


# ---------------------------------------------------------------------------------------
# ShuffleResponder


class _NoCompression(dict):
    """A compression table that never remembers a name: every name goes out spelled in
    full, so the random case of each owner and target name reaches the client (with
    compression, names would take the case of the question they point back to)."""

    def get(self, key, default=None):
        return None

    def __setitem__(self, key, value):
        pass


def _to_wire_uncompressed(msg, max_size):
    """msg.to_wire() without name compression. Raises dns.exception.TooBig."""
    r = dns.renderer.Renderer(msg.id, msg.flags, max_size)
    r.compress = _NoCompression()
    opt_reserve = msg._compute_opt_reserve()
    r.reserve(opt_reserve)
    for rrset in msg.question:
        r.add_question(rrset.name, rrset.rdtype, rrset.rdclass)
    for rrset in msg.answer:
        r.add_rrset(dns.renderer.ANSWER, rrset)
    for rrset in msg.authority:
        r.add_rrset(dns.renderer.AUTHORITY, rrset)
    r.release_reserved()
    if msg.opt is not None:
        r.add_opt(msg.opt, msg.pad, opt_reserve, 0)
    r.write_header()
    return r.get_wire()


def _mixed_case(text, rng):
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in text)


class ShuffleResponder:
    """A tiny server for one zone, in a thread of the test process, that answers the way a
    caching resolver does: recursion available, not authoritative, and a TTL of
    `ttl - seconds since start` (a cache counting down). With authoritative=True it sets
    AA instead and keeps the TTL fixed, as the zone's own server would.

    Every answer lists the records in a new random order and spells owner and target names
    in random mixed case. mode: "ok" (default), "servfail", or "silent" (drops queries).
    `delay` (seconds) holds every answer back that long. With `wildcard` set, every name
    under the zone has the zone's records (one query per lookup: no NXDOMAIN to re-check). `queries` counts the queries
    received, `counts` the queries per (lower-case name without the dot, type name).

    `records` maps a type name to presentation-format RDATA with lower-case names in them;
    EXPECTED gives the canonical values the monitor should store (lower-cased, sorted)."""

    ZONE = "shuffle.test."
    RECORDS = {
        "SOA": ["ns1.shuffle.test. hostmaster.shuffle.test. 7 3600 900 604800 300"],
        "NS": ["ns1.shuffle.test.", "ns2.shuffle.test."],
        "A": [f"192.0.2.{i}" for i in range(1, 9)],
        "AAAA": ["2001:db8::1", "2001:db8::2", "2001:db8::3"],
        "MX": ["10 mx1.shuffle.test.", "20 mx2.shuffle.test.", "30 mx3.shuffle.test."],
        "TXT": ['"Case Kept"', '"v=spf1 include:Shuffle.Test -all"', '"third"'],
        "CAA": ['0 issue "ca.example"', '0 iodef "mailto:Sec@shuffle.test"'],
    }

    def __init__(self, records=None, ttl=300, authoritative=False):
        self.records = dict(records or self.RECORDS)
        self.base_ttl = ttl
        self.authoritative = authoritative
        self.mode = "ok"
        self.delay = 0.0
        self.wildcard = False
        self.queries = 0
        self.counts = collections.Counter()
        self.started = time.monotonic()
        self._rng = random.Random()
        self._lock = threading.Lock()
        self.port = None
        self._udp = None
        self._tcp = None
        self._threads = []
        self._stop = threading.Event()

    # what the monitor should store for each type
    def expected(self, rtype):
        vals = []
        for v in self.records.get(rtype, []):
            rd = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), v)
            vals.append(rd.to_text())
        if rtype in ("NS", "MX", "SOA", "CNAME"):
            vals = [v.lower() for v in vals]
        return sorted(set(vals))

    def set_mode(self, mode):
        assert mode in ("ok", "servfail", "silent")
        self.mode = mode

    def server(self):
        return f"127.0.0.1:{self.port}"

    def _ttl(self):
        if self.authoritative:
            return self.base_ttl
        return max(0, self.base_ttl - int(time.monotonic() - self.started))

    def _answer(self, wire):
        try:
            q = dns.message.from_wire(wire)
        except Exception:  # noqa: BLE001 - garbage in, nothing out
            return None
        with self._lock:
            self.queries += 1
            if q.question:
                key = (q.question[0].name.to_text().rstrip(".").lower(),
                       dns.rdatatype.to_text(q.question[0].rdtype))
                self.counts[key] += 1
            rng = random.Random(self._rng.random())
        if self.mode == "silent":
            return None
        r = dns.message.make_response(q)
        if self.authoritative:
            r.flags |= dns.flags.AA
            r.flags &= ~dns.flags.RA
        else:
            r.flags |= dns.flags.RA
            r.flags &= ~dns.flags.AA
        if self.mode == "servfail":
            r.set_rcode(dns.rcode.SERVFAIL)
            return r
        if not q.question:
            r.set_rcode(dns.rcode.FORMERR)
            return r
        qname = q.question[0].name
        qtype = q.question[0].rdtype
        zone = dns.name.from_text(self.ZONE)
        if qname != zone and not (self.wildcard and qname.is_subdomain(zone)):
            r.set_rcode(dns.rcode.NXDOMAIN if qname.is_subdomain(zone) else dns.rcode.REFUSED)
            if qname.is_subdomain(zone):
                r.authority.append(self._rrset("SOA", rng, self.base_ttl))
            return r
        tname = dns.rdatatype.to_text(qtype)
        if tname in self.records:
            r.answer.append(self._rrset(tname, rng, self._ttl(), owner=qname.to_text()))
        else:
            r.authority.append(self._rrset("SOA", rng, self.base_ttl))
        return r

    def _rrset(self, tname, rng, ttl, owner=None):
        owner = dns.name.from_text(_mixed_case(owner or self.ZONE, rng))
        rtype = dns.rdatatype.from_text(tname)
        values = list(self.records[tname])
        rng.shuffle(values)
        rrs = dns.rrset.RRset(owner, dns.rdataclass.IN, rtype)
        for v in values:
            if tname in ("NS", "MX", "SOA", "CNAME"):
                v = _mixed_case(v, rng)
            rrs.add(dns.rdata.from_text(dns.rdataclass.IN, rtype, v), ttl)
        # RRset.add keeps insertion order; shuffle again to be sure nothing sorts it
        items = list(rrs)
        rng.shuffle(items)
        out = dns.rrset.RRset(owner, dns.rdataclass.IN, rtype)
        for it in items:
            out.add(it, ttl)
        return out

    def _serve_udp(self):
        sock = self._udp
        while not self._stop.is_set():
            try:
                wire, addr = sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            resp = self._answer(wire)
            if resp is None:
                continue
            payload = max(512, min(resp.request_payload or 512, 65535))
            try:
                out = _to_wire_uncompressed(resp, payload)
            except dns.exception.TooBig:
                resp.answer = []
                resp.authority = []
                resp.flags |= dns.flags.TC
                out = _to_wire_uncompressed(resp, payload)
            if self.delay > 0:
                t = threading.Timer(self.delay, self._send, (sock, out, addr))
                t.daemon = True
                t.start()
            else:
                self._send(sock, out, addr)

    def _send(self, sock, out, addr):
        if self._stop.is_set():
            return
        try:
            sock.sendto(out, addr)
        except OSError:
            pass

    def _serve_tcp(self):
        srv = self._tcp
        while not self._stop.is_set():
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    while True:
                        hdr = _recv_exact(conn, 2)
                        if not hdr:
                            break
                        (n,) = struct.unpack("!H", hdr)
                        wire = _recv_exact(conn, n)
                        if wire is None:
                            break
                        resp = self._answer(wire)
                        if resp is None:
                            continue
                        out = _to_wire_uncompressed(resp, 65535)
                        conn.sendall(struct.pack("!H", len(out)) + out)
                except OSError:
                    pass

    def start(self):
        for _ in range(50):
            port = free_port()
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                u.bind(("127.0.0.1", port))
                t.bind(("127.0.0.1", port))
            except OSError:
                u.close()
                t.close()
                continue
            t.listen(16)
            u.settimeout(0.2)
            t.settimeout(0.2)
            self._udp, self._tcp, self.port = u, t, port
            break
        else:
            raise RuntimeError("no free port for the responder")
        self.started = time.monotonic()
        for fn in (self._serve_udp, self._serve_tcp):
            th = threading.Thread(target=fn, daemon=True, name="shuffle-responder")
            th.start()
            self._threads.append(th)
        return self

    def stop(self):
        self._stop.set()
        for th in self._threads:
            th.join(timeout=5)
        self._threads = []
        for s in (self._udp, self._tcp):
            if s is not None:
                s.close()
        self._udp = self._tcp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None if buf else b""
        buf += chunk
    return buf


@pytest.fixture
def shuffle_responder():
    r = ShuffleResponder()
    r.start()
    try:
        yield r
    finally:
        r.stop()

