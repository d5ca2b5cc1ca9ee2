"""Registration checks end to end: the real binary against an RDAP server and WHOIS
servers that the tests start on 127.0.0.1 (an RDAP bootstrap file pointing the test TLD
at the loopback server through DM_RDAP_BOOTSTRAP; DM_WHOIS_SERVER at a loopback
registry that refers to a loopback registrar). Nothing leaves the machine."""

import copy
import http.server
import json
import os
import socketserver
import tempfile
import threading
import time
import urllib.parse

import pytest

from conftest import PG_URL, free_port, pg_create_database, pg_drop_database
from dnsfixtures import wait_for
from test_events import EventStream

RDAP_DOC = {
    "objectClassName": "domain",
    "ldhName": "EXAMPLE.TEST",
    "status": ["client transfer prohibited", "active"],
    "nameservers": [{"objectClassName": "nameserver", "ldhName": "NS2.Example.NET."},
                    {"objectClassName": "nameserver", "ldhName": "ns1.example.net"}],
    "secureDNS": {"delegationSigned": False},
    "events": [
        {"eventAction": "last update of RDAP database", "eventDate": "2026-11-29T10:00:00Z"},
        {"eventAction": "registration", "eventDate": "1995-08-14T04:00:00Z"},
        {"eventAction": "expiration", "eventDate": "2027-08-13T04:00:00Z"},
        {"eventAction": "last changed", "eventDate": "2026-08-14T07:01:38Z"},
    ],
    "entities": [
        {"objectClassName": "entity", "roles": ["registrar"],
         "vcardArray": ["vcard", [["version", {}, "text", "4.0"],
                                  ["fn", {}, "text", "Example Registrar, Inc."]]]},
        {"objectClassName": "entity", "roles": ["registrant"],
         "vcardArray": ["vcard", [["fn", {}, "text", "Jane Doe"],
                                  ["org", {}, "text", "Example Org"],
                                  ["adr", {"cc": "NL"}, "text", ["", "", "", "", "", "", ""]],
                                  ["email", {}, "text", "jane@example.test"]]]},
    ],
}

REG_FIELDS = {"domain", "registrable_domain", "source", "status", "error", "registrar",
              "created_at", "updated_at", "expires_at", "name_servers", "statuses", "dnssec",
              "registrant", "checked_at"}


class RdapServer:
    """Serves /rdap/domain/<name> from self.docs (name -> dict), or self.status with
    self.headers when set; logs (time, path) of every request."""

    def __init__(self):
        self.docs = {}
        self.status = None
        self.headers = {}
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                outer.requests.append((time.monotonic(), self.path))
                name = self.path.rsplit("/", 1)[-1]
                if outer.status:
                    self.send_response(outer.status)
                    for k, v in outer.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                doc = outer.docs.get(name)
                body = json.dumps(doc).encode() if doc else b'{"errorCode":404}'
                self.send_response(200 if doc else 404)
                self.send_header("Content-Type", "application/rdap+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class WhoisServer:
    """A WHOIS server on (host, port): answers each query with self.answer(query) (bytes),
    or, while self.silent, accepts and never answers."""

    def __init__(self, host, port, answer):
        self.answer = answer
        self.silent = False
        self.silent_seconds = 3
        self.queries = []
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                data = b""
                while not data.endswith(b"\r\n"):
                    chunk = self.request.recv(1024)
                    if not chunk:
                        return
                    data += chunk
                q = data.decode().strip()
                outer.queries.append(q)
                if outer.silent:
                    time.sleep(outer.silent_seconds)
                    return
                self.request.sendall(outer.answer(q))

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def rdap():
    s = RdapServer()
    yield s
    s.close()


def bootstrap_file(directory, rdap_port, tld="test"):
    """Writes an RDAP bootstrap file naming the test server into the test's own folder,
    which outlives the processes that read it."""
    fd, path = tempfile.mkstemp(prefix="dm-rdap-", suffix=".json", dir=directory)
    with os.fdopen(fd, "w") as f:
        json.dump({"description": "test", "publication": "2026-11-29T00:00:00Z",
                   "services": [[[tld], [f"http://127.0.0.1:{rdap_port}/rdap/"]]]}, f)
    return path


def reg_env(bootstrap, **extra):
    env = {
        "DM_DEFAULT_CHECKS": "registration",
        "DM_RDAP_BOOTSTRAP": bootstrap,
        # Every TLD without RDAP goes here unless a test names a server: a port nobody
        # listens on, so nothing is ever asked beyond loopback.
        "DM_WHOIS_ROOT": f"127.0.0.1:{free_port()}",
        "DM_REGISTRATION_TIMEOUT": "1s",
        "DM_REGISTRATION_RATE": "0",
    }
    env.update(extra)
    return env


def q(name):
    return urllib.parse.quote(name, safe="")


def registration(m, name):
    r = m.request("GET", f"/api/v1/domains/{q(name)}/registration")
    assert r.status_code == 200, r
    return r.json()


def history(m, name, **params):
    r = m.request("GET", f"/api/v1/domains/{q(name)}/registration/history", params=params)
    assert r.status_code == 200, r
    return r.json()


def add(m, name, **fields):
    r = m.request("POST", "/api/v1/domains", json={"name": name, **fields})
    assert r.status_code == 201, r


def scan(m, name):
    assert m.request("POST", f"/api/v1/domains/{q(name)}/scan").status_code == 202


def test_rdap_registration_history_and_event(rdap, domainmon_factory, tmp_path):
    rdap.docs["example.test"] = copy.deepcopy(RDAP_DOC)
    path = bootstrap_file(tmp_path, rdap.port)
    m = domainmon_factory(env=reg_env(path))
    name = "www.example.test"
    add(m, name)
    reg = wait_for(lambda: (lambda x: x if x["status"] == "ok" else None)(
        registration(m, name)), timeout=20, what="first registration check")
    assert set(reg) == REG_FIELDS
    assert reg["domain"] == name
    assert reg["registrable_domain"] == "example.test"
    assert reg["source"] == "rdap" and reg["error"] is None
    assert reg["registrar"] == "Example Registrar, Inc."
    assert reg["created_at"] == "1995-08-14T04:00:00.000Z"
    assert reg["expires_at"] == "2027-08-13T04:00:00.000Z"
    assert reg["updated_at"] == "2026-08-14T07:01:38.000Z"  # never the database update
    assert reg["name_servers"] == ["ns1.example.net", "ns2.example.net"]
    assert reg["statuses"] == ["active", "client transfer prohibited"]
    assert reg["dnssec"] is False
    assert reg["registrant"] == {"name": "Jane Doe", "organization": "Example Org",
                                 "email": "jane@example.test", "country": "NL"}
    assert ("/rdap/domain/example.test" in [p for _, p in rdap.requests])
    d = m.request("GET", f"/api/v1/domains/{q(name)}").json()
    assert d["registration_expires_at"] == "2027-08-13T04:00:00.000Z"

    h = history(m, name)
    assert len(h["changes"]) == 1 and h["next_cursor"] is None
    first = h["changes"][0]
    assert first["fields"]["registrar"] == {"before": None,
                                            "after": "Example Registrar, Inc."}

    # The same answer again, in another order: no change.
    doc = rdap.docs["example.test"]
    doc["nameservers"].reverse()
    doc["events"][0]["eventDate"] = "2026-11-29T11:00:00Z"
    n = len(rdap.requests)
    scan(m, name)
    wait_for(lambda: len(rdap.requests) > n and registration(m, name)["checked_at"]
             != reg["checked_at"], timeout=20, what="second check")
    assert len(history(m, name)["changes"]) == 1

    # Renewed, with a new name server: one change of those two fields, and its event.
    stream = EventStream(m, topics="change.registration").wait_open()
    doc["events"][2]["eventDate"] = "2028-08-13T04:00:00Z"
    doc["nameservers"].append({"objectClassName": "nameserver", "ldhName": "NS3.example.NET"})
    scan(m, name)
    h = wait_for(lambda: (lambda x: x if len(x["changes"]) == 2 else None)(
        history(m, name)), timeout=20, what="renewal recorded")
    change = h["changes"][0]
    assert set(change) == {"id", "observed_at", "fields"}
    assert change["fields"] == {
        "expires_at": {"before": "2027-08-13T04:00:00.000Z",
                       "after": "2028-08-13T04:00:00.000Z"},
        "name_servers": {"before": ["ns1.example.net", "ns2.example.net"],
                         "after": ["ns1.example.net", "ns2.example.net",
                                   "ns3.example.net"]},
    }
    (ev,) = stream.events(1, timeout=15)
    assert ev["event"] == "change.registration"
    assert ev["id"] == f"change.registration:{change['id']}"
    assert ev["data"] == {**change, "domain": name}
    stream.close()
    d = m.request("GET", f"/api/v1/domains/{q(name)}").json()
    assert d["registration_expires_at"] == "2028-08-13T04:00:00.000Z"

    # Paging: newest first, a cursor to the next page, none after the last.
    p1 = history(m, name, limit=1)
    assert [c["id"] for c in p1["changes"]] == [change["id"]] and p1["next_cursor"]
    p2 = history(m, name, limit=1, cursor=p1["next_cursor"])
    assert [c["id"] for c in p2["changes"]] == [first["id"]] and p2["next_cursor"] is None
    bad = m.request("GET", f"/api/v1/domains/{q(name)}/registration/history",
                    params={"cursor": "nope"})
    assert bad.status_code == 400
    assert [e["field"] for e in bad.json()["errors"]] == ["cursor"]

    # A failing server: an error with its reason, the last data kept, no change.
    rdap.status = 500
    scan(m, name)
    reg = wait_for(lambda: (lambda x: x if x["status"] == "error" else None)(
        registration(m, name)), timeout=20, what="failed check")
    assert "HTTP 500" in reg["error"]
    assert reg["expires_at"] == "2028-08-13T04:00:00.000Z"
    assert reg["name_servers"][-1] == "ns3.example.net"
    assert len(history(m, name)["changes"]) == 2

    # Unknown domains and a domain not yet checked.
    assert m.request("GET", "/api/v1/domains/nope.test/registration").status_code == 404


def test_checks_without_registration_send_nothing(rdap, domainmon_factory, tmp_path):
    rdap.docs["quiet.test"] = copy.deepcopy(RDAP_DOC)
    path = bootstrap_file(tmp_path, rdap.port)
    m = domainmon_factory(env=reg_env(path))
    add(m, "quiet.test", checks=["dns"])
    add(m, "loud.test")
    wait_for(lambda: registration(m, "loud.test")["status"] != "pending", timeout=20,
             what="loud.test checked")
    assert registration(m, "quiet.test")["status"] == "pending"
    assert [p for _, p in rdap.requests if "quiet" in p] == []


def registry_answer(query):
    return ("   Domain Name: " + query.upper() + "\r\n"
            "   Registrar WHOIS Server: 127.0.0.2\r\n"
            "   Updated Date: 2024-08-14T07:01:38Z\r\n"
            "   Creation Date: 1995-08-14T04:00:00Z\r\n"
            "   Registry Expiry Date: 2027-08-13T04:00:00Z\r\n"
            "   Registrar: Example Registrar\r\n"
            "   Domain Status: clientTransferProhibited "
            "https://icann.org/epp#clientTransferProhibited\r\n"
            "   Domain Status: serverHold https://icann.org/epp#serverHold\r\n"
            "   Name Server: NS1.EXAMPLE.NET\r\n"
            "   Name Server: ns2.example.net.\r\n"
            "   DNSSEC: signedDelegation\r\n"
            ">>> Last update of whois database: 2026-11-29T10:00:00Z <<<\r\n").encode()


def registrar_answer(query):
    return ("Domain Name: " + query + "\n"
            "Registrar: Example Registrar\n"
            "Registrant Name: Jane \x1b[31mDoe\x07\n"
            "Registrant Organization: ").encode() + b"Evil\xff\xfe Org\x00\n" + (
            "Registrant Country: NL\n").encode()


@pytest.fixture
def whois_pair():
    port = free_port()
    registry = WhoisServer("127.0.0.1", port, registry_answer)
    registrar = WhoisServer("127.0.0.2", port, registrar_answer)
    yield port, registry, registrar
    registry.close()
    registrar.close()


def test_whois_registry_and_registrar_referral(rdap, whois_pair, domainmon_factory, tmp_path):
    port, registry, registrar = whois_pair
    path = bootstrap_file(tmp_path, rdap.port)  # .test has RDAP; .example does not
    m = domainmon_factory(env=reg_env(path, DM_WHOIS_SERVER=f"127.0.0.1:{port}"))
    name = "shop.acme.example"
    add(m, name)
    reg = wait_for(lambda: (lambda x: x if x["status"] != "pending" else None)(
        registration(m, name)), timeout=20, what="WHOIS check")
    assert reg["status"] == "ok", reg
    assert reg["source"] == "whois"
    assert reg["registrable_domain"] == "acme.example"
    assert registry.queries[0] == "acme.example"
    assert registrar.queries[0] == "acme.example"
    assert reg["registrar"] == "Example Registrar"
    assert reg["expires_at"] == "2027-08-13T04:00:00.000Z"
    assert reg["created_at"] == "1995-08-14T04:00:00.000Z"
    assert reg["updated_at"] == "2024-08-14T07:01:38.000Z"
    assert reg["name_servers"] == ["ns1.example.net", "ns2.example.net"]
    assert reg["statuses"] == ["client transfer prohibited", "server hold"]
    assert reg["dnssec"] is True
    # The registrar's answer gave the registrant, cleaned of control characters and
    # invalid UTF-8.
    assert reg["registrant"] == {"name": "Jane [31mDoe", "email": None, "country": "NL",
                                 "organization": "Evil\ufffd\ufffd Org"}
    assert len(history(m, name)["changes"]) == 1
    assert rdap.requests == []

    # The raw text is kept, cleaned as well (read from the SQLite file directly).
    if not m.on_postgres:
        import sqlite3
        db = sqlite3.connect(m.db_path)
        (text,) = db.execute("SELECT raw FROM registration_current").fetchone()
        db.close()
        assert "Registry Expiry Date: 2027-08-13T04:00:00Z" in text
        assert "Registrant Country: NL" in text
        assert "\x1b" not in text and "\x00" not in text and "\r" not in text

    # A silent registry: an error with the reason, the last data kept.
    registry.silent = True
    scan(m, name)
    reg = wait_for(lambda: (lambda x: x if x["status"] == "error" else None)(
        registration(m, name)), timeout=20, what="silent server reported")
    assert "no answer" in reg["error"] and "127.0.0.1" in reg["error"]
    assert reg["registrar"] == "Example Registrar"
    assert reg["expires_at"] == "2027-08-13T04:00:00.000Z"
    assert len(history(m, name)["changes"]) == 1

    # A dead one (refused): an error again, still no change recorded.
    registry.close()
    scan(m, name)
    wait_for(lambda: "refused" in (registration(m, name)["error"] or ""), timeout=20,
             what="refused connection reported")
    assert len(history(m, name)["changes"]) == 1


def test_unsupported_tld_is_a_state_not_an_error(rdap, domainmon_factory, tmp_path):
    # The root WHOIS server (standing in for whois.iana.org) names no server for .nowhere.
    root_port = free_port()
    root = WhoisServer("127.0.0.1", root_port,
                       lambda q: b"% IANA WHOIS server\n\ndomain: " + q.upper().encode() +
                       b"\nstatus: ACTIVE\n")
    path = bootstrap_file(tmp_path, rdap.port)
    try:
        m = domainmon_factory(env=reg_env(path, DM_WHOIS_ROOT=f"127.0.0.1:{root_port}"))
        for name in ("a.nowhere", "b.nowhere"):
            add(m, name)
        for name in ("a.nowhere", "b.nowhere"):
            reg = wait_for(lambda: (lambda x: x if x["status"] != "pending" else None)(
                registration(m, name)), timeout=20, what=f"{name} checked")
            assert reg["status"] == "unsupported"
            assert ".nowhere" in reg["error"]
            assert reg["registrar"] is None and reg["name_servers"] == []
        # The root's answer is remembered: asked once for the TLD, not per domain.
        assert root.queries == ["nowhere"]
        assert "level=error" not in m.stderr_text()
    finally:
        root.close()


def test_rate_limit_spacing_and_backoff(rdap, domainmon_factory, tmp_path):
    for n in ("a", "b", "c"):
        rdap.docs[f"{n}.test"] = copy.deepcopy(RDAP_DOC)
    path = bootstrap_file(tmp_path, rdap.port)
    m = domainmon_factory(env=reg_env(path, DM_REGISTRATION_RATE="700ms",
                                      DM_REGISTRATION_WORKERS="3"))
    for n in ("a", "b", "c"):
        add(m, f"{n}.test")
    wait_for(lambda: len(rdap.requests) >= 3, timeout=20, what="three lookups")
    times = sorted(t for t, _ in rdap.requests[:3])
    gaps = [b - a for a, b in zip(times, times[1:])]
    # Three workers, one server: one request per 700 ms all the same.
    assert min(gaps) >= 0.6, gaps

    # The server says 429, come back in an hour: the failing domain records why, and
    # the others wait for the server instead of knocking (no request is sent).
    rdap.status = 429
    rdap.headers = {"Retry-After": "3600"}
    n0 = len(rdap.requests)
    scan(m, "a.test")
    reg = wait_for(lambda: (lambda x: x if x["status"] == "error" else None)(
        registration(m, "a.test")), timeout=20, what="429 reported")
    assert "rate limited" in reg["error"]
    assert len(rdap.requests) == n0 + 1
    before = registration(m, "b.test")
    scan(m, "b.test")
    scan(m, "c.test")
    time.sleep(3)  # several idle rounds of the workers: none may reach the server
    assert len(rdap.requests) == n0 + 1
    after = registration(m, "b.test")
    assert after["status"] == "ok" and after["checked_at"] == before["checked_at"]


def test_rdap_bootstrap_update_command(rdap, domainmon_factory, tmp_path):
    path = bootstrap_file(tmp_path, rdap.port)
    m = domainmon_factory(env=reg_env(path))
    good = tmp_path / "new.json"
    good.write_text(json.dumps({"publication": "2026-12-01T00:00:00Z",
                                "services": [[["test", "example"],
                                              [f"http://127.0.0.1:{rdap.port}/v2/"]]]}))
    p = m.cli("rdap-bootstrap", "update", str(good))
    assert p.returncode == 0, p.stderr
    assert "2 TLDs" in p.stdout
    with open(path) as f:
        assert json.load(f)["publication"] == "2026-12-01T00:00:00Z"
    bad = tmp_path / "bad.json"
    bad.write_text('{"services": [[["not a label"], ["https://x/"]]]}')
    p = m.cli("rdap-bootstrap", "update", str(bad))
    assert p.returncode == 1 and "label" in p.stderr
    with open(path) as f:
        assert json.load(f)["publication"] == "2026-12-01T00:00:00Z"  # unchanged
    p = m.cli("rdap-bootstrap", "update", f"http://127.0.0.1:{rdap.port}/missing")
    assert p.returncode == 1 and "HTTP 404" in p.stderr
    p = m.cli("rdap-bootstrap", "frobnicate")
    assert p.returncode == 2


def test_stop_cancels_a_lookup_in_flight(rdap, whois_pair, domainmon_factory, tmp_path):
    port, registry, registrar = whois_pair
    registry.silent = True
    registry.silent_seconds = 30
    path = bootstrap_file(tmp_path, rdap.port)
    m = domainmon_factory(env=reg_env(path, DM_WHOIS_SERVER=f"127.0.0.1:{port}",
                                      DM_REGISTRATION_TIMEOUT="60s"))
    name = "slow.example"
    add(m, name)
    wait_for(lambda: registry.queries, timeout=20, what="query sent to the silent server")
    m.stop()
    # A lookup that would wait a minute ends with the service, and records nothing.
    assert m.stop_seconds < 2, m.stop_seconds
    registry.silent = False
    m.start()
    reg = wait_for(lambda: (lambda x: x if x["status"] != "pending" else None)(
        registration(m, name)), timeout=20, what="checked after the restart")
    assert reg["status"] == "ok" and reg["registrar"] == "Example Registrar"
    assert len(history(m, name)["changes"]) == 1


@pytest.fixture
def pg_database():
    url = pg_create_database()
    yield url
    pg_drop_database(url)


@pytest.mark.skipif(not PG_URL, reason="DM_TEST_PG_URL is not set")
def test_distributed_services_on_postgres(rdap, pg_database, domainmon_factory, tmp_path):
    """The API in a domain service, registration checks in two DNS services, one
    PostgreSQL database: each domain is looked up once (the store's claim shares the work)
    and the API shows what the DNS services wrote."""
    names = [f"d{i}.test" for i in range(6)]
    for n in names:
        rdap.docs[n] = copy.deepcopy(RDAP_DOC)
    path = bootstrap_file(tmp_path, rdap.port)
    url = pg_database
    api = domainmon_factory(env=reg_env(path), args=("domain-service",), database_url=url)
    for n in names:
        add(api, n)
    for _ in range(2):
        domainmon_factory(env=reg_env(path), args=("dns-service",), database_url=url)
    for n in names:
        reg = wait_for(lambda: (lambda x: x if x["status"] == "ok" else None)(
            registration(api, n)), timeout=30, what=f"{n} checked")
        assert reg["expires_at"] == "2027-08-13T04:00:00.000Z"
    paths = sorted(p for _, p in rdap.requests)
    assert paths == sorted(f"/rdap/domain/{n}" for n in names)
