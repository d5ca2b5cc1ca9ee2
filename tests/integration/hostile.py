"""DNS servers that misbehave, for the resolver's failure tests: one small authoritative
server for one zone, in a thread of the test process, whose behaviour a test switches at
any time. Listens on 127.0.0.1 only (UDP and TCP on one free port) and is stopped by its
fixture or context manager even when a test fails.

Modes:
    ok         authoritative answers (AA); NODATA and NXDOMAIN carry the zone's SOA
    referral   NOERROR, not authoritative, no answer: the zone's NS records in the
               authority section and their addresses as glue (what a parent zone's server
               says, and what a server that is not the zone's own may say)
    lame       NOERROR, not authoritative, not recursive, nothing at all
    edns-drop  answers only queries without EDNS (a firewall that drops EDNS queries)
    lower-case answers, but echoes the question in lower case (no 0x20 echo)
    silent     drops everything

Counters (`stats()`): queries, queries with EDNS, queries whose name mixes upper and lower
case, and probes (". SOA", what the resolver sends to a server it marked down).

    from hostile import HostileServer
    with HostileServer() as s:
        s.set_mode("referral")
        s.server()   # "127.0.0.1:PORT" for DM_DNS_SERVERS
"""

import socket
import struct
import threading

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from dnsfixtures import free_port

MODES = ("ok", "referral", "lame", "edns-drop", "lower-case", "silent")


class HostileServer:
    ZONE = "hostile.test."
    # name (relative to the zone, "@" for the apex) -> type -> values
    RECORDS = {
        "@": {
            "SOA": ["ns1.hostile.test. hostmaster.hostile.test. 1 3600 900 604800 300"],
            "NS": ["ns1.hostile.test.", "ns2.hostile.test."],
            "A": ["192.0.2.10", "192.0.2.11"],
            "MX": ["10 mail.hostile.test."],
            "TXT": ['"v=spf1 -all"'],
        },
        "www": {"A": ["192.0.2.20"]},
        "ns1": {"A": ["127.0.0.1"]},
        "ns2": {"A": ["127.0.0.2"]},
    }

    def __init__(self, mode="ok"):
        assert mode in MODES, mode
        self.mode = mode
        self.zone = dns.name.from_text(self.ZONE)
        self.port = None
        self._udp = None
        self._tcp = None
        self._threads = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stats = {"queries": 0, "edns": 0, "mixed_case": 0, "probes": 0}

    # ---- control ----

    def set_mode(self, mode):
        assert mode in MODES, mode
        self.mode = mode

    def server(self):
        """The DM_DNS_SERVERS entry for this server."""
        return f"127.0.0.1:{self.port}"

    def stats(self):
        with self._lock:
            return dict(self._stats)

    def expected(self, rtype, name="@"):
        """The canonical values the monitor should store (sorted, names lower-cased)."""
        return sorted(v.lower() if rtype in ("NS", "MX", "SOA") else v
                      for v in self.RECORDS.get(name, {}).get(rtype, []))

    # ---- answers ----

    def _rrset(self, owner, rtype, values):
        return dns.rrset.from_text_list(owner, 300, dns.rdataclass.IN, rtype, values)

    def _soa(self):
        return self._rrset(self.zone, "SOA", self.RECORDS["@"]["SOA"])

    def _count(self, q):
        qname = q.question[0].name if q.question else None
        text = qname.to_text() if qname is not None else ""
        with self._lock:
            self._stats["queries"] += 1
            if q.edns >= 0:
                self._stats["edns"] += 1
            if any(c.isupper() for c in text) and any(c.islower() for c in text):
                self._stats["mixed_case"] += 1
            if qname == dns.name.root and q.question[0].rdtype == dns.rdatatype.SOA:
                self._stats["probes"] += 1

    def answer(self, wire):
        """The reply to one query (a dns.message.Message), or None to stay silent."""
        try:
            q = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        self._count(q)
        mode = self.mode
        if mode == "silent" or (mode == "edns-drop" and q.edns >= 0):
            return None
        r = dns.message.make_response(q)
        r.flags &= ~dns.flags.RA
        if not q.question:
            r.set_rcode(dns.rcode.FORMERR)
            return r
        qname = q.question[0].name
        rtype = dns.rdatatype.to_text(q.question[0].rdtype)
        if mode == "lower-case":
            r.question = [dns.rrset.RRset(qname.canonicalize(), dns.rdataclass.IN,
                                          q.question[0].rdtype)]
        if not qname.is_subdomain(self.zone):
            r.set_rcode(dns.rcode.REFUSED)
            return r
        if mode == "referral":
            # Not authoritative: "ask the zone's servers", with glue.
            ns = self.RECORDS["@"]["NS"]
            r.authority.append(self._rrset(self.zone, "NS", ns))
            for target in ns:
                rel = dns.name.from_text(target).relativize(self.zone).to_text()
                r.additional.append(self._rrset(target, "A", self.RECORDS[rel]["A"]))
            return r
        if mode == "lame":
            return r
        r.flags |= dns.flags.AA
        rel = "@" if qname == self.zone else qname.relativize(self.zone).to_text().lower()
        node = self.RECORDS.get(rel)
        if node is None:
            r.set_rcode(dns.rcode.NXDOMAIN)
            r.authority.append(self._soa())
        elif rtype in node:
            owner = r.question[0].name
            r.answer.append(self._rrset(owner, rtype, node[rtype]))
        else:
            r.authority.append(self._soa())
        return r

    # ---- serving ----

    def _serve_udp(self):
        while not self._stop.is_set():
            try:
                wire, addr = self._udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            resp = self.answer(wire)
            if resp is None:
                continue
            payload = max(512, resp.request_payload or 512)
            try:
                out = resp.to_wire(max_size=payload)
            except dns.exception.TooBig:
                resp.answer, resp.authority, resp.additional = [], [], []
                resp.flags |= dns.flags.TC
                out = resp.to_wire(max_size=payload)
            try:
                self._udp.sendto(out, addr)
            except OSError:
                pass

    def _serve_tcp(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._tcp.accept()
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
                        wire = _recv_exact(conn, struct.unpack("!H", hdr)[0])
                        if not wire:
                            break
                        resp = self.answer(wire)
                        if resp is None:
                            continue
                        out = resp.to_wire(max_size=65535)
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
            raise RuntimeError("no free port for the hostile server")
        for fn in (self._serve_udp, self._serve_tcp):
            th = threading.Thread(target=fn, daemon=True, name="hostile-dns")
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
            return None
        buf += chunk
    return buf


def closed_port():
    """A UDP port on 127.0.0.1 with nothing behind it: a dead server."""
    return free_port()
