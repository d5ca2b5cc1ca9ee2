"""The TLS check end to end: the real binary, a Knot on loopback giving the names
127.0.0.1, and TLS servers the tests start with certificates they make (a local CA, a valid
leaf and its renewal, an expired one, one for another name), a port that never speaks and
one that refuses. Everything is checked through the REST API."""

import datetime
import time

import pytest

from dnsfixtures import knot_factory, wait_for  # noqa: F401 - fixtures are used by name
from test_amqp import AMQP_URL, bus_url, busctl
from test_events import EventStream
from tlsfixtures import (  # noqa: F401 - fixtures are used by name
    authority,
    refused_port,
    silent_port,
    tls_server_factory,
)

ZONE = """$ORIGIN tls.test.
$TTL 300
@          SOA   ns1.tls.test. hostmaster.tls.test. 1 3600 900 604800 300
@          NS    ns1.tls.test.
ns1        A     127.0.0.1
good       A     127.0.0.1
renew      A     127.0.0.1
expired    A     127.0.0.1
wrongname  A     127.0.0.1
silent     A     127.0.0.1
refused    A     127.0.0.1
gone       A     127.0.0.1
"""

CERT_FIELDS = {"subject", "sans", "issuer", "serial", "sha256", "key_type", "key_bits",
               "signature_algorithm", "not_before", "not_after", "days_left"}
ENDPOINT_FIELDS = {"port", "address", "status", "error", "protocol", "chain_valid",
                   "chain_error", "certificate"}


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


@pytest.fixture
def tls_knot(knot_factory):
    return knot_factory({"tls.test.": ZONE})


@pytest.fixture
def mon(tls_knot, authority, domainmon_factory):
    """domainmon checking every second, DNS from the test Knot, chains verified against the
    test CA, a TLS check of one endpoint allowed 1.5 s."""
    return domainmon_factory(env={
        "DM_DNS_SERVERS": tls_knot.server(),
        "DM_SCAN_INTERVAL": "1",
        "DM_MIN_INTERVAL": "1",
        "DM_DNS_TIMEOUT": "500ms",
        "DM_DNS_RETRIES": "1",
        "DM_TLS_CA_FILE": authority.ca.cert_path,
        "DM_TLS_TIMEOUT": "1500ms",
    })


def add(mon, name, port, checks=("dns", "tls")):
    r = mon.request("POST", "/api/v1/domains",
                    {"name": name, "checks": list(checks), "tls_ports": [port]})
    assert r.status_code == 201, r.text
    return r.json()


def tls(mon, name):
    r = mon.request("GET", f"/api/v1/domains/{name}/tls")
    assert r.status_code == 200, r.text
    return r.json()


def history(mon, name, **params):
    r = mon.request("GET", f"/api/v1/domains/{name}/tls/history", params=params or None)
    assert r.status_code == 200, r.text
    return r.json()


def endpoint(mon, name, port, pred=lambda e: True, timeout=15, what=None):
    """Waits for the endpoint on `port` to satisfy `pred`; returns it."""
    def check():
        for e in tls(mon, name)["endpoints"]:
            if e["port"] == port and pred(e):
                return e
        return None
    return wait_for(check, timeout=timeout, what=what or f"TLS endpoint {name}:{port}")


def checked_at(mon, name):
    v = tls(mon, name)["checked_at"]
    return parse_time(v) if v else None


def wait_checks(mon, name, n, timeout=20):
    """Waits until the domain's TLS check has been written `n` more times."""
    t = checked_at(mon, name)
    for _ in range(n):
        t = wait_for(lambda: (lambda c: c if c and (t is None or c > t) else None)(
            checked_at(mon, name)), timeout=timeout, what=f"a TLS check of {name} after {t}")
    return t


def test_certificate_renewal_and_history(mon, authority, tls_server_factory):
    first = authority.leaf(["renew.tls.test", "www.renew.tls.test"])
    server = tls_server_factory({"renew.tls.test": first})
    add(mon, "renew.tls.test", server.port)

    e = endpoint(mon, "renew.tls.test", server.port, lambda e: e["status"] == "ok")
    assert set(e) == ENDPOINT_FIELDS
    assert e["address"] == "127.0.0.1" and e["error"] is None
    assert e["protocol"] == "TLSv1.3"
    assert e["chain_valid"] is True and e["chain_error"] is None
    c = e["certificate"]
    assert set(c) == CERT_FIELDS
    assert c["sha256"] == first.sha256
    assert c["serial"] == first.serial_hex
    assert c["subject"] == "CN=renew.tls.test"
    assert c["issuer"] == "O=Test,CN=Domain Monitor Test CA"
    assert c["sans"] == ["renew.tls.test", "www.renew.tls.test"]
    assert c["key_type"] == "EC" and c["key_bits"] == 256
    assert c["signature_algorithm"] == "ecdsa-with-SHA256"
    assert parse_time(c["not_after"]) == first.not_after
    assert c["days_left"] in (88, 89)

    d = mon.request("GET", "/api/v1/domains/renew.tls.test").json()
    assert parse_time(d["tls_expires_at"]) == first.not_after
    h = history(mon, "renew.tls.test")
    assert len(h["changes"]) == 1 and h["next_cursor"] is None
    assert h["changes"][0]["before"] is None
    assert h["changes"][0]["after"]["sha256"] == first.sha256
    assert h["changes"][0]["port"] == server.port

    # Unchanged scans write no history.
    wait_checks(mon, "renew.tls.test", 2)
    assert len(history(mon, "renew.tls.test")["changes"]) == 1

    # The renewal: recorded once, with the old and the new certificate.
    second = authority.leaf(["renew.tls.test"], days_after=200, rsa_bits=2048)
    server.set("renew.tls.test", second)
    e = endpoint(mon, "renew.tls.test", server.port,
                 lambda e: e["certificate"]["sha256"] == second.sha256, what="the renewal")
    assert e["certificate"]["key_type"] == "RSA" and e["certificate"]["key_bits"] == 2048
    assert e["certificate"]["signature_algorithm"] == "ecdsa-with-SHA256"
    wait_checks(mon, "renew.tls.test", 2)
    h = history(mon, "renew.tls.test")["changes"]
    assert len(h) == 2, h
    assert h[0]["before"]["sha256"] == first.sha256
    assert h[0]["after"]["sha256"] == second.sha256
    assert h[0]["id"] > h[1]["id"]
    d = mon.request("GET", "/api/v1/domains/renew.tls.test").json()
    assert parse_time(d["tls_expires_at"]) == second.not_after

    # Paging: one entry a page, the cursor leads to the other.
    p1 = history(mon, "renew.tls.test", limit=1)
    assert len(p1["changes"]) == 1 and p1["next_cursor"]
    p2 = history(mon, "renew.tls.test", limit=1, cursor=p1["next_cursor"])
    assert [x["id"] for x in p1["changes"] + p2["changes"]] == [x["id"] for x in h]
    assert p2["next_cursor"] is None

    # The server goes away: an error with its reason, the last certificate kept, no change.
    server.stop()
    e = endpoint(mon, "renew.tls.test", server.port, lambda e: e["status"] == "error",
                 what="the refused endpoint")
    assert "refused" in e["error"], e
    assert e["certificate"]["sha256"] == second.sha256 and e["chain_valid"] is True
    assert len(history(mon, "renew.tls.test")["changes"]) == 2


def test_expired_and_wrong_name_chains(mon, authority, tls_server_factory):
    expired = authority.leaf(["expired.tls.test"], days_before=60, days_after=-2)
    other = authority.leaf(["other.example"])
    server = tls_server_factory({"expired.tls.test": expired, "wrongname.tls.test": other})
    add(mon, "expired.tls.test", server.port)
    add(mon, "wrongname.tls.test", server.port)

    e = endpoint(mon, "expired.tls.test", server.port, lambda e: e["status"] == "ok")
    assert e["chain_valid"] is False and "expired" in e["chain_error"], e
    assert e["certificate"]["sha256"] == expired.sha256
    assert e["certificate"]["days_left"] < 0
    e = endpoint(mon, "wrongname.tls.test", server.port, lambda e: e["status"] == "ok")
    assert e["chain_valid"] is False and "hostname mismatch" in e["chain_error"], e
    assert e["certificate"]["sans"] == ["other.example"]
    h = history(mon, "wrongname.tls.test")["changes"]
    assert len(h) == 1 and h[0]["chain_valid"] is False

    # The right certificate comes: the chain's validity changes, one entry.
    right = authority.leaf(["wrongname.tls.test"])
    server.set("wrongname.tls.test", right)
    endpoint(mon, "wrongname.tls.test", server.port, lambda e: e["chain_valid"] is True,
             what="a valid chain")
    h = history(mon, "wrongname.tls.test")["changes"]
    assert len(h) == 2 and h[0]["chain_valid"] is True
    assert h[0]["before"]["sha256"] == other.sha256 and h[0]["after"]["sha256"] == right.sha256


def test_silent_and_refused_ports_fail_within_the_deadline(mon, authority, tls_server_factory,
                                                           silent_port):
    good = authority.leaf(["good.tls.test"])
    server = tls_server_factory({"good.tls.test": good})
    closed = refused_port()
    add(mon, "good.tls.test", server.port)
    t0 = time.monotonic()
    add(mon, "silent.tls.test", silent_port.port)
    add(mon, "refused.tls.test", closed)

    e = endpoint(mon, "refused.tls.test", closed, lambda e: e["status"] == "error")
    assert "refused" in e["error"], e
    assert e["certificate"] is None and e["chain_valid"] is None
    e = endpoint(mon, "silent.tls.test", silent_port.port, lambda e: e["status"] == "error",
                 timeout=10)
    # DM_TLS_TIMEOUT is 1.5 s: the first check ends well within a few seconds.
    assert time.monotonic() - t0 < 8
    assert "timed out" in e["error"], e
    assert history(mon, "silent.tls.test")["changes"] == []
    assert history(mon, "refused.tls.test")["changes"] == []

    # The silent port holds nothing up: the good domain keeps being checked meanwhile.
    before = checked_at(mon, "good.tls.test")
    wait_checks(mon, "good.tls.test", 3)
    assert checked_at(mon, "good.tls.test") > before
    e = endpoint(mon, "good.tls.test", server.port, lambda e: e["status"] == "ok")
    assert e["certificate"]["sha256"] == good.sha256


def test_name_without_address_and_dns_left_out(mon, authority, tls_server_factory):
    """A name without A or AAAA gets an error endpoint and sends nothing; a domain whose
    checks leave out dns still has its TLS checked (its addresses are looked up for it),
    and its DNS records stay empty."""
    good = authority.leaf(["good.tls.test"])
    server = tls_server_factory({"good.tls.test": good})
    add(mon, "nothing.tls.test", server.port)
    e = endpoint(mon, "nothing.tls.test", server.port, lambda e: e["status"] == "error")
    assert e["address"] is None and "no A or AAAA" in e["error"]
    add(mon, "good.tls.test", server.port, checks=("tls",))
    e = endpoint(mon, "good.tls.test", server.port, lambda e: e["status"] == "ok")
    assert e["certificate"]["sha256"] == good.sha256
    assert mon.request("GET", "/api/v1/domains/good.tls.test/records").json()["records"] == []


def test_change_tls_event_on_the_stream(mon, authority, tls_server_factory):
    """change.tls reaches the live stream through the outbox, with the history entry."""
    cert = authority.leaf(["good.tls.test"])
    server = tls_server_factory({"good.tls.test": cert})
    stream = EventStream(mon, topics="change.tls")
    assert stream.status == 200
    add(mon, "good.tls.test", server.port)
    ev = stream.next_event(timeout=20)
    assert ev is not None, "no change.tls event"
    assert ev["event"] == "change.tls"
    body = ev["data"]
    assert body["domain"] == "good.tls.test" and body["port"] == server.port
    assert body["before"] is None and body["after"]["sha256"] == cert.sha256
    h = history(mon, "good.tls.test")["changes"]
    assert [body["id"]] == [c["id"] for c in h]


@pytest.mark.skipif(not AMQP_URL, reason="DM_TEST_AMQP_URL is not set")
def test_distributed_over_rabbitmq(tls_knot, authority, tls_server_factory, domainmon_factory):
    """The API and the scanner in two processes on one database and RabbitMQ: the task
    carries the checks, the ports and the TLS fingerprint, and change.tls reaches the API's
    live stream through the scanner's outbox and the broker."""
    p = busctl(AMQP_URL, "delete", "dns.scan", "delete", "dns.scan.dead")
    assert p.returncode == 0, p.stderr
    cert = authority.leaf(["good.tls.test"])
    server = tls_server_factory({"good.tls.test": cert})
    env = {"DM_DNS_SERVERS": tls_knot.server(), "DM_SCAN_INTERVAL": "1", "DM_MIN_INTERVAL": "1",
           "DM_TLS_CA_FILE": authority.ca.cert_path, "DM_TLS_TIMEOUT": "1500ms",
           "RABBITMQ_URL": bus_url("tls")}
    api = domainmon_factory(env=env, args=("domain-service",))
    domainmon_factory(env=env, args=("dns-service",), database_url=api.database_url)
    stream = EventStream(api, topics="change.tls")
    assert stream.status == 200
    add(api, "good.tls.test", server.port)
    e = endpoint(api, "good.tls.test", server.port, lambda e: e["status"] == "ok", timeout=30)
    assert e["certificate"]["sha256"] == cert.sha256 and e["chain_valid"] is True
    ev = stream.next_event(timeout=30)
    assert ev is not None and ev["event"] == "change.tls"
    assert ev["data"]["after"]["sha256"] == cert.sha256
    wait_checks(api, "good.tls.test", 2, timeout=30)
    assert len(history(api, "good.tls.test")["changes"]) == 1
