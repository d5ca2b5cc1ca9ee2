"""Expiry alerts end to end: the real binary, a TLS server on loopback serving certificates
the tests make (tlsfixtures), an RDAP server serving fixture JSON (test_registration), and
real receivers (an HTTP receiver checking Standard Webhooks signatures, aiosmtpd). A
certificate or registration expiring in 10 days fires the 14-day threshold once, never again
on the next scans, and a renewal arms it again. Every wait is a poll with a deadline."""

import copy
import datetime
import json

import pytest

from conftest import PG_URL, pg_create_database, pg_drop_database
from dnsfixtures import knot_factory, wait_for  # noqa: F401 - fixtures are used by name
from test_alerts import SECRET, Smtp, create_rule, deliveries, receiver_factory  # noqa: F401
from test_alerts import settle, signature_ok
from test_registration import RDAP_DOC, RdapServer, bootstrap_file, q, reg_env, scan
from tlsfixtures import authority, tls_server_factory  # noqa: F401 - fixtures are used by name

ZONE = """$ORIGIN expiry.test.
$TTL 300
@     SOA   ns1.expiry.test. hostmaster.expiry.test. 1 3600 900 604800 300
@     NS    ns1.expiry.test.
ns1   A     127.0.0.1
soon  A     127.0.0.1
"""

ALERT_ENV = {
    "DM_ALLOW_PRIVATE_TARGETS": "1",
    "DM_ALERT_GROUP_WAIT": "1s",
    "DM_ALERT_RETRY_MIN": "1s",
    "DM_ALERT_EXPIRY_INTERVAL": "500ms",
}


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def rfc3339(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def expiry_knot(knot_factory):  # noqa: F811
    return knot_factory({"expiry.test.": ZONE})


@pytest.fixture
def pg_database():
    url = pg_create_database()
    yield url
    pg_drop_database(url)


@pytest.fixture
def smtp():
    s = Smtp()
    try:
        yield s
    finally:
        s.close()


def tls_env(knot, authority, **extra):  # noqa: F811
    env = {
        "DM_DNS_SERVERS": knot.server(),
        "DM_SCAN_INTERVAL": "1",
        "DM_MIN_INTERVAL": "1",
        "DM_DNS_TIMEOUT": "500ms",
        "DM_DNS_RETRIES": "1",
        "DM_TLS_CA_FILE": authority.ca.cert_path,
        "DM_TLS_TIMEOUT": "1500ms",
        **ALERT_ENV,
    }
    env.update(extra)
    return env


def add_tls_domain(m, name, port):
    r = m.request("POST", "/api/v1/domains",
                  json={"name": name, "checks": ["dns", "tls"], "tls_ports": [port]})
    assert r.status_code == 201, r.text


def tls_checks(m, name):
    r = m.request("GET", f"/api/v1/domains/{name}/tls")
    assert r.status_code == 200, r.text
    return r.json()["checked_at"]


def wait_tls_checks(m, name, n):
    """Waits until the TLS check of `name` has been written `n` more times."""
    t = tls_checks(m, name)
    for _ in range(n):
        t = wait_for(lambda: (lambda c: c if c and c != t else None)(tls_checks(m, name)),
                     timeout=20, what=f"a TLS check of {name}")


def webhook_data(req):
    assert signature_ok(SECRET, req["headers"], req["body"]), req["headers"]
    doc = json.loads(req["body"])
    return doc["type"], doc["data"]


def test_certificate_expiring_fires_the_nearest_threshold_once_and_renewal_rearms(
        expiry_knot, authority, tls_server_factory, receiver_factory, smtp,  # noqa: F811
        domainmon_factory):
    hook = receiver_factory()
    m = domainmon_factory(env=tls_env(expiry_knot, authority, DM_SMTP_URL=smtp.url,
                                      DM_SMTP_FROM="domainmon@example.test"))
    name = "soon.expiry.test"
    # The default thresholds [30, 14, 7, 1]: at 10 days both 30 and 14 are crossed at first
    # sight, and only the nearest, 14, fires.
    web = create_rule(m, {"name": "hook", "channel": "webhook", "target": hook.url(),
                          "secret": SECRET, "events": ["tls.expiring"]})
    mail = create_rule(m, {"name": "mail", "channel": "email", "target": "ops@example.test",
                           "events": ["tls.expiring", "registration.expiring"],
                           "domains": [name]})
    other = create_rule(m, {"name": "reg only", "channel": "webhook",
                            "target": hook.url("/reg"), "secret": SECRET,
                            "events": ["registration.expiring"]})
    first = authority.leaf([name], days_after=10)
    server = tls_server_factory({name: first})
    add_tls_domain(m, name, server.port)

    wait_for(lambda: hook.delivered() and smtp.messages(), timeout=30,
             what="an expiry webhook and an email")
    wait_tls_checks(m, name, 3)  # scans and expiry rounds go on: nothing more may come
    settle(2)
    (req,) = hook.snapshot()
    assert req["path"] == "/hook"
    kind, data = webhook_data(req)
    assert kind == "tls.expiring"
    assert data["domain"] == name and data["kind"] == "tls"
    assert parse_time(data["expires_at"]) == first.not_after
    assert data["days_left"] == 10 and data["threshold"] == 14
    (msg,) = smtp.messages()
    assert msg["Subject"] == f"[domainmon] {name}: certificate expires in 10 days"
    text = msg.get_content()
    assert f"{name}: certificate expires in 10 days" in text
    assert f"expires at: {data['expires_at']}" in text
    assert "threshold crossed: 14 days" in text
    (d,) = deliveries(m, web["id"])
    assert d["status"] == "delivered" and d["event"] == f"tls.expiring:{data['id']}"
    assert len(deliveries(m, mail["id"])) == 1
    assert deliveries(m, other["id"]) == []

    # A renewal to a later date still within 14 days arms the threshold again: one more alert,
    # for the new date.
    second = authority.leaf([name], days_after=12)
    server.set(name, second)
    wait_for(lambda: len(hook.delivered()) == 2, timeout=30, what="the re-armed alert")
    wait_tls_checks(m, name, 3)
    settle(2)
    reqs = hook.snapshot()
    assert len(reqs) == 2
    _, data2 = webhook_data(reqs[1])
    assert parse_time(data2["expires_at"]) == second.not_after
    assert data2["days_left"] == 12 and data2["threshold"] == 14
    assert data2["id"] != data["id"]
    assert len(smtp.messages()) == 2

    # A renewal beyond every threshold: nothing.
    third = authority.leaf([name], days_after=200)
    server.set(name, third)
    wait_for(lambda: parse_time(m.request("GET", f"/api/v1/domains/{name}").json()[
        "tls_expires_at"]) == third.not_after, timeout=20, what="the long renewal")
    wait_tls_checks(m, name, 2)
    settle(2)
    assert len(hook.snapshot()) == 2


def test_registration_expiring_fires_once_and_renewal_rearms(receiver_factory, smtp,  # noqa: F811
                                                             domainmon_factory, tmp_path):
    rdap = RdapServer()
    path = bootstrap_file(tmp_path, rdap.port)
    try:
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        doc = copy.deepcopy(RDAP_DOC)
        doc["events"][2]["eventDate"] = rfc3339(now + datetime.timedelta(days=10))
        rdap.docs["example.test"] = doc
        hook = receiver_factory()
        m = domainmon_factory(env=reg_env(path, DM_SMTP_URL=smtp.url,
                                          DM_SMTP_FROM="domainmon@example.test", **ALERT_ENV))
        name = "www.example.test"
        # Thresholds 30, 14, 7 and 1 written in any order; 10 days left fires 14 alone.
        create_rule(m, {"name": "hook", "channel": "webhook", "target": hook.url(),
                        "secret": SECRET, "events": ["registration.expiring"],
                        "expiry_days": [1, 30, 7, 14]})
        create_rule(m, {"name": "mail", "channel": "email", "target": "ops@example.test",
                        "events": ["registration.expiring"]})
        r = m.request("POST", "/api/v1/domains", json={"name": name})
        assert r.status_code == 201, r.text

        wait_for(lambda: hook.delivered() and smtp.messages(), timeout=30,
                 what="a registration expiry webhook and an email")
        # More lookups, the same answer: no more alerts.
        for _ in range(2):
            n = len(rdap.requests)
            scan(m, name)
            wait_for(lambda: len(rdap.requests) > n, timeout=20, what="another lookup")
        settle(3)
        (req,) = hook.snapshot()
        kind, data = webhook_data(req)
        assert kind == "registration.expiring"
        assert data["domain"] == name and data["kind"] == "registration"
        assert parse_time(data["expires_at"]) == now + datetime.timedelta(days=10)
        assert data["days_left"] == 10 and data["threshold"] == 14
        (msg,) = smtp.messages()
        assert msg["Subject"] == f"[domainmon] {name}: registration expires in 10 days"

        # Renewed to a later date, still within 14 days: armed again for the new date.
        doc["events"][2]["eventDate"] = rfc3339(now + datetime.timedelta(days=13))
        scan(m, name)
        wait_for(lambda: len(hook.delivered()) == 2, timeout=30, what="the re-armed alert")
        n = len(rdap.requests)
        scan(m, name)
        wait_for(lambda: len(rdap.requests) > n, timeout=20, what="another lookup")
        settle(3)
        reqs = hook.snapshot()
        assert len(reqs) == 2
        _, data2 = webhook_data(reqs[1])
        assert parse_time(data2["expires_at"]) == now + datetime.timedelta(days=13)
        assert data2["days_left"] == 13 and data2["threshold"] == 14
        d = m.request("GET", f"/api/v1/domains/{q(name)}").json()
        assert parse_time(d["registration_expires_at"]) == now + datetime.timedelta(days=13)
    finally:
        rdap.close()


@pytest.mark.skipif(not PG_URL, reason="DM_TEST_PG_URL not set")
def test_three_alert_services_on_postgresql_alert_once(expiry_knot, authority,  # noqa: F811
                                                       tls_server_factory,  # noqa: F811
                                                       receiver_factory,  # noqa: F811
                                                       pg_database, domainmon_factory):
    """`all` and two more alert services on one PostgreSQL database all hold the same expiry
    date against the same rule: the store's unique key lets one of them record it, and one
    message goes."""
    hook = receiver_factory()
    env = tls_env(expiry_knot, authority)
    m = domainmon_factory(env=env, database_url=pg_database)
    for _ in range(2):
        domainmon_factory(env=env, args=("alert-service",), database_url=pg_database)
    name = "soon.expiry.test"
    create_rule(m, {"name": "hook", "channel": "webhook", "target": hook.url(),
                    "secret": SECRET, "events": ["tls.expiring"]})
    cert = authority.leaf([name], days_after=6)
    server = tls_server_factory({name: cert})
    add_tls_domain(m, name, server.port)
    wait_for(hook.delivered, timeout=30, what="the expiry webhook")
    wait_tls_checks(m, name, 3)
    settle(3)
    (req,) = hook.snapshot()
    _, data = webhook_data(req)
    assert data["days_left"] == 6 and data["threshold"] == 7
