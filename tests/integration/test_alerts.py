"""Alerts end to end: the real binary, a loopback Knot whose zone changes under it, and real
receivers on loopback: an SMTP server (aiosmtpd, storing mail in a Maildir), an HTTP receiver
that checks Standard Webhooks signatures and can fail the first N requests, and an SMS gateway
stand-in taking Twilio-style form posts. Every wait is a poll with a deadline."""

import base64
import email
import email.policy
import hashlib
import hmac
import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

import pytest

from conftest import DomainMon, free_port
from dnsfixtures import Knot, wait_for
from test_dns import Api, dns_env

PY = "/usr/bin/python3"
SECRET = "whsec_" + base64.b64encode(b"alert-test-secret-0123456789").decode()
SMS_USER, SMS_PASSWORD = "AC0123", "tok-secret"
DIGEST_NAMES = [f"d{i:02d}.alerts.test" for i in range(1, 51)]

ALERTS_ZONE = (
    """$ORIGIN alerts.test.
$TTL 300
@    SOA ns1.alerts.test. hostmaster.alerts.test. 1 3600 900 604800 300
@    NS  ns1.alerts.test.
ns1  A   127.0.0.1
"""
    + "".join(f"w{i} A 192.0.2.{i}\n" for i in range(1, 10))
    + "".join(f"d{i:02d} A 198.51.100.{i}\n" for i in range(1, 51))
)


@pytest.fixture(scope="module")
def knot():
    k = Knot({"alerts.test.": ALERTS_ZONE})
    try:
        k.start()
        yield k
    finally:
        k.cleanup()


# ---------------------------------------------------------------------------------------
# receivers


def signature_ok(secret, headers, body):
    """The Standard Webhooks check, as a receiver writes it."""
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, s) for s in headers["webhook-signature"].split())


class Receiver:
    """An HTTP server on a thread that records every POST (headers, body, form, auth) and
    answers 500 to the first `fail_first` of them, 200 after."""

    def __init__(self, fail_first=0):
        self.fail_first = fail_first
        self.requests = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with outer.lock:
                    failing = len(outer.requests) < outer.fail_first
                    outer.requests.append({
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                        "status": 500 if failing else 200,
                    })
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"no" if failing else b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hook"):
        return f"http://127.0.0.1:{self.port}{path}"

    def snapshot(self):
        with self.lock:
            return list(self.requests)

    def delivered(self):
        return [r for r in self.snapshot() if r["status"] == 200]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Smtp:
    """aiosmtpd on a free port, storing every mail in a Maildir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="dm-smtp-")
        self.maildir = os.path.join(self.dir, "mail")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(self.maildir, sub))
        self.port = free_port()
        self.log = open(os.path.join(self.dir, "smtpd.log"), "wb")
        self.proc = subprocess.Popen(
            [PY, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}", "-c",
             "aiosmtpd.handlers.Mailbox", self.maildir],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

        def listening():
            assert self.proc.poll() is None, "aiosmtpd exited"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_for(listening, timeout=20, what="aiosmtpd listening")

    @property
    def url(self):
        return f"smtp://127.0.0.1:{self.port}"

    def messages(self):
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.maildir, sub)
            for name in sorted(os.listdir(d)):
                with open(os.path.join(d, name), "rb") as f:
                    out.append(email.message_from_bytes(f.read(), policy=email.policy.default))
        return out

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def receiver_factory():
    made = []

    def make(fail_first=0):
        r = Receiver(fail_first)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


@pytest.fixture
def smtp():
    s = Smtp()
    try:
        yield s
    finally:
        s.close()


def alert_env(knot, **extra):
    env = dns_env(knot.server(), interval=1)
    env.update({
        "DM_DEFAULT_CHECKS": "dns",
        "DM_ALLOW_PRIVATE_TARGETS": "1",
        "DM_ALERT_GROUP_WAIT": "1s",
        "DM_ALERT_RETRY_MIN": "1s",
    })
    env.update(extra)
    return env


def create_rule(mon, body, expect=201):
    r = mon.request("POST", "/api/v1/alerts", json=body)
    assert r.status_code == expect, r.text
    return r.json()


def deliveries(mon, rule_id):
    r = mon.request("GET", f"/api/v1/alerts/{rule_id}/deliveries")
    assert r.status_code == 200, r.text
    return r.json()["deliveries"]


def change_a(knot, name, old, new):
    knot.update("alerts.test", [f"update delete {name}. A {old}",
                                f"update add {name}. 300 A {new}"])


def settle(seconds):
    """Waits out a window in which nothing more may arrive (a test of "exactly once")."""
    time.sleep(seconds)


# ---------------------------------------------------------------------------------------
# tests


def test_dns_change_gives_one_email_one_sms_one_signed_webhook(domainmon_factory, knot, smtp,
                                                             receiver_factory):
    hook, gateway = receiver_factory(), receiver_factory()
    m = domainmon_factory(env=alert_env(
        knot, DM_SMTP_URL=smtp.url, DM_SMTP_FROM="domainmon@example.test",
        DM_SMS_URL=gateway.url("/2010-04-01/Accounts/AC0123/Messages.json"),
        DM_SMS_USER=SMS_USER, DM_SMS_PASSWORD=SMS_PASSWORD, DM_SMS_FROM="+15550001111"))
    api = Api(m)
    name = "w1.alerts.test"
    api.add(name)
    api.wait_checked(name)

    common = {"events": ["change.dns.A"], "domains": [name]}
    web = create_rule(m, {"name": "hook", "channel": "webhook", "target": hook.url(),
                          "secret": SECRET, **common})
    assert web["secret"] == SECRET
    mail = create_rule(m, {"name": "mail", "channel": "email", "target": "ops@example.test",
                           **common})
    sms = create_rule(m, {"name": "sms", "channel": "sms", "target": "+14155550100", **common})
    # Rules for other names or types see nothing of it.
    other = create_rule(m, {"name": "other", "channel": "webhook", "target": hook.url("/other"),
                            "events": ["change.dns.MX"]})

    change_a(knot, name, "192.0.2.1", "192.0.2.201")

    wait_for(lambda: hook.delivered() and smtp.messages() and gateway.delivered(), timeout=30,
             what="a webhook, an email and an SMS")
    settle(3)  # a second scan and the group window: nothing more may come

    (req,) = hook.snapshot()
    assert req["path"] == "/hook"
    h = req["headers"]
    assert signature_ok(SECRET, h, req["body"]), h
    assert abs(int(h["webhook-timestamp"]) - time.time()) < 60
    doc = json.loads(req["body"])
    assert doc["type"] == "change.dns.A"
    data = doc["data"]
    assert data["domain"] == name
    assert data["before"] == ["192.0.2.1"] and data["after"] == ["192.0.2.201"]
    assert data["added"] == ["192.0.2.201"] and data["removed"] == ["192.0.2.1"]
    # A tampered body fails the same check.
    assert not signature_ok(SECRET, h, req["body"].replace(b"201", b"202"))

    (msg,) = smtp.messages()
    assert msg["To"] == "ops@example.test"
    assert msg["From"] == "domainmon@example.test"
    assert name in msg["Subject"] and "DNS A changed" in msg["Subject"]
    assert msg["Message-ID"].endswith("@domainmon>")
    text = msg.get_content()
    assert "- 192.0.2.1" in text and "+ 192.0.2.201" in text

    (sent,) = gateway.snapshot()
    assert sent["path"] == "/2010-04-01/Accounts/AC0123/Messages.json"
    auth = base64.b64decode(sent["headers"]["authorization"].split()[1]).decode()
    assert auth == f"{SMS_USER}:{SMS_PASSWORD}"
    form = urllib.parse.parse_qs(sent["body"].decode())
    assert form["To"] == ["+14155550100"] and form["From"] == ["+15550001111"]
    (body,) = form["Body"]
    assert name in body and "+192.0.2.201" in body and len(body) <= 160

    for rule in (web, mail, sms):
        (d,) = deliveries(m, rule["id"])
        assert d["status"] == "delivered" and d["attempts"] == 1, d
        assert d["event"] == f"change.dns.A:{data['id']}"
        assert d["delivered_at"] and d["last_error"] is None
    assert deliveries(m, other["id"]) == []


def test_failing_receiver_gets_retries_then_one_delivery(domainmon_factory, knot,
                                                         receiver_factory):
    hook = receiver_factory(fail_first=2)
    m = domainmon_factory(env=alert_env(knot))
    api = Api(m)
    name = "w2.alerts.test"
    api.add(name)
    api.wait_checked(name)
    rule = create_rule(m, {"name": "hook", "channel": "webhook", "target": hook.url(),
                           "secret": SECRET, "events": ["change.dns"], "domains": [name]})
    change_a(knot, name, "192.0.2.2", "192.0.2.202")

    wait_for(hook.delivered, timeout=40, what="a delivery after two failures")
    settle(3)
    reqs = hook.snapshot()
    assert [r["status"] for r in reqs] == [500, 500, 200]
    # One delivery: the same webhook-id on every try, each one signed.
    assert len({r["headers"]["webhook-id"] for r in reqs}) == 1
    assert all(signature_ok(SECRET, r["headers"], r["body"]) for r in reqs)
    (d,) = deliveries(m, rule["id"])
    assert d["status"] == "delivered" and d["attempts"] == 3


def test_kill_9_mid_retry_still_delivers_exactly_once(domainmon_factory, knot, receiver_factory):
    hook = receiver_factory(fail_first=1)
    # Retries wait 3 s at least: time to kill the service between the tries.
    m = domainmon_factory(env=alert_env(knot, DM_ALERT_RETRY_MIN="3s"))
    api = Api(m)
    name = "w3.alerts.test"
    api.add(name)
    api.wait_checked(name)
    rule = create_rule(m, {"name": "hook", "channel": "webhook", "target": hook.url(),
                           "secret": SECRET, "events": ["change.dns.A"], "domains": [name]})
    change_a(knot, name, "192.0.2.3", "192.0.2.203")

    wait_for(lambda: len(hook.snapshot()) == 1, timeout=30, what="the first, failed try")
    # The receiver has the request before the sender has its answer and records the try.
    (d,) = wait_for(lambda: (lambda ds: ds if ds and ds[0]["attempts"] == 1 else None)(
        deliveries(m, rule["id"])), timeout=30, what="the failed try recorded")
    assert d["status"] == "pending" and d["attempts"] == 1 and "500" in d["last_error"]
    m.kill()  # SIGKILL: no clean stop
    assert len(hook.snapshot()) == 1
    m.start()

    wait_for(hook.delivered, timeout=40, what="the retry after the restart")
    settle(4)
    reqs = hook.snapshot()
    assert [r["status"] for r in reqs] == [500, 200]
    assert reqs[0]["headers"]["webhook-id"] == reqs[1]["headers"]["webhook-id"]
    (d,) = deliveries(m, rule["id"])
    assert d["status"] == "delivered" and d["attempts"] == 2


def test_private_targets_refused_by_default(domainmon_factory, knot, receiver_factory):
    hook = receiver_factory()
    m = domainmon_factory(env=alert_env(knot, DM_ALLOW_PRIVATE_TARGETS="0"))
    for url in (hook.url(), "http://10.0.0.5/x", "http://[::1]:8080/", "http://localhost/",
                "http://169.254.169.254/latest/meta-data", "http://127.1/"):
        r = m.request("POST", "/api/v1/alerts", json={
            "name": "p", "channel": "webhook", "target": url, "events": ["change.dns"]})
        assert r.status_code == 422, (url, r.text)
        assert r.headers["Content-Type"] == "application/problem+json"
        assert r.json()["errors"][0]["field"] == "target"
    assert m.request("GET", "/api/v1/alerts").json()["alerts"] == []
    m.stop()

    # A rule made while private targets were allowed is refused at delivery, on the address
    # the connection would go to.
    allowed = DomainMon(env=alert_env(knot), workdir=m.workdir, database_url=m.database_url)
    try:
        allowed.start()
        allowed.admin_key = m.admin_key  # the same database, whose key m was shown
        rule = create_rule(allowed, {"name": "p", "channel": "webhook", "target": hook.url(),
                                     "events": ["change.dns"]})
        allowed.stop()
    finally:
        allowed.cleanup()
    m.start()
    r = m.request("POST", f"/api/v1/alerts/{rule['id']}/test")
    assert r.status_code == 202, r.text

    def refused():
        (d,) = deliveries(m, rule["id"])
        return d if d["attempts"] >= 1 else None

    d = wait_for(refused, timeout=20, what="a refused try")
    assert "private" in d["last_error"], d
    assert hook.snapshot() == []


def test_rules_api_validates_every_field(domainmon_factory, knot):
    m = domainmon_factory(env=alert_env(knot))
    base = {"name": "n", "channel": "email", "target": "ops@example.test",
            "events": ["change.dns"]}
    bad = [
        ({"channel": "pager"}, "channel"),
        ({"target": "not-an-address"}, "target"),
        ({"events": ["change.dns.BOGUS"]}, "events"),
        ({"events": []}, "events"),
        ({"domains": ["exa mple.test"]}, "domains"),
        ({"expiry_days": [0]}, "expiry_days"),
        ({"failing_scans": 0}, "failing_scans"),
        ({"quiet_period": "soon"}, "quiet_period"),
        ({"secret": "whsec_x"}, "secret"),
        ({"colour": "red"}, "colour"),
        ({"name": ""}, "name"),
    ]
    for change, field in bad:
        r = m.request("POST", "/api/v1/alerts", json={**base, **change})
        assert r.status_code == 400, (change, r.text)
        assert r.headers["Content-Type"] == "application/problem+json"
        assert r.json()["errors"][0]["field"] == field, (change, r.text)
    assert m.request("GET", "/api/v1/alerts").json()["alerts"] == []

    rule = create_rule(m, {**base, "domains": ["B\u00fccher.alerts.test"], "quiet_period": 600})
    assert rule["domains"] == ["xn--bcher-kva.alerts.test"]
    assert rule["expiry_days"] == [30, 14, 7, 1] and rule["failing_scans"] == 3
    assert rule["quiet_period"] == 600 and "secret" not in rule
    r = m.request("PATCH", f"/api/v1/alerts/{rule['id']}", json={"failing_scans": -1})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "failing_scans"
    r = m.request("PATCH", f"/api/v1/alerts/{rule['id']}", json={"failing_scans": 5})
    assert r.status_code == 200 and r.json()["failing_scans"] == 5
    got = m.request("GET", f"/api/v1/alerts/{rule['id']}").json()
    assert got["failing_scans"] == 5 and got["quiet_period"] == 600
    assert m.request("DELETE", f"/api/v1/alerts/{rule['id']}").status_code == 204
    assert m.request("GET", f"/api/v1/alerts/{rule['id']}").status_code == 404
    assert m.request("GET", "/api/v1/alerts/abc").status_code == 404
    # Reading needs a key; writing needs the write scope.
    assert m.request("GET", "/api/v1/alerts", key=None).status_code == 401
    reader = m.create_key("reader", "read")
    assert m.request("POST", "/api/v1/alerts", json=base, key=reader).status_code == 403


def test_digest_when_50_domains_change_in_one_cycle(domainmon_factory, knot, receiver_factory):
    hook = receiver_factory()
    m = domainmon_factory(env=alert_env(knot, DM_ALERT_GROUP_WAIT="5s"))
    api = Api(m)
    api.post("/api/v1/domains/import", {"names": DIGEST_NAMES}, expect=(200, 201))
    for n in DIGEST_NAMES:
        api.wait_checked(n, timeout=30)
    rule = create_rule(m, {"name": "digest", "channel": "webhook", "target": hook.url(),
                           "secret": SECRET, "events": ["change.dns.A"]})

    lines = []
    for i, n in enumerate(DIGEST_NAMES, start=1):
        lines += [f"update delete {n}. A 198.51.100.{i}", f"update add {n}. 300 A 203.0.113.{i}"]
    knot.update("alerts.test", lines)

    wait_for(hook.delivered, timeout=40, what="a digest")
    settle(7)  # past another group window: nothing else may come
    (req,) = hook.snapshot()
    assert signature_ok(SECRET, req["headers"], req["body"])
    doc = json.loads(req["body"])
    assert doc["type"] == "alert.digest"
    assert sorted(doc["data"]["domains"]) == sorted(DIGEST_NAMES)
    assert len(doc["data"]["events"]) == 50
    assert {e["type"] for e in doc["data"]["events"]} == {"change.dns.A"}
    ds = deliveries(m, rule["id"])
    assert len(ds) == 50 and all(d["status"] == "delivered" for d in ds)


def test_openapi_documents_the_alert_routes(domainmon_factory, knot):
    m = domainmon_factory(env=alert_env(knot))
    doc = m.request("GET", "/openapi.json", key=None).json()
    paths = doc["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/alerts"])
    assert {"get", "patch", "delete"} <= set(paths["/api/v1/alerts/{id}"])
    assert "get" in paths["/api/v1/alerts/{id}/deliveries"]
    assert "post" in paths["/api/v1/alerts/{id}/test"]
    schemas = doc["components"]["schemas"]
    assert set(schemas["AlertCreate"]["properties"]) == {
        "name", "channel", "target", "events", "domains", "expiry_days", "failing_scans",
        "quiet_period", "secret"}
    assert set(schemas["Delivery"]["properties"]) == {
        "id", "event", "status", "attempts", "last_error", "next_attempt_at", "delivered_at"}


def test_test_message(domainmon_factory, knot, smtp):
    m = domainmon_factory(env=alert_env(knot, DM_SMTP_URL=smtp.url,
                                        DM_SMTP_FROM="domainmon@example.test"))
    rule = create_rule(m, {"name": "mail", "channel": "email", "target": "ops@example.test",
                           "events": ["change.dns"]})
    r = m.request("POST", f"/api/v1/alerts/{rule['id']}/test")
    assert r.status_code == 202 and r.json()["status"] == "pending"
    wait_for(smtp.messages, timeout=20, what="the test mail")
    (msg,) = smtp.messages()
    assert "test message" in msg["Subject"]
    assert m.request("POST", "/api/v1/alerts/999/test").status_code == 404


def test_check_failing_after_n_failed_scans_and_once_on_recovery(domainmon_factory,
                                                                 receiver_factory):
    # A Knot of this test's own: stopping it makes every scan fail.
    k = Knot({"alerts.test.": ALERTS_ZONE})
    try:
        k.start()
        hook = receiver_factory()
        m = domainmon_factory(env=alert_env(k))
        api = Api(m)
        name = "w4.alerts.test"
        api.add(name)
        api.wait_checked(name)
        rule = create_rule(m, {"name": "failing", "channel": "webhook", "target": hook.url(),
                               "secret": SECRET, "events": ["check.failing"], "failing_scans": 3,
                               "domains": [name]})
        k.stop()

        wait_for(lambda: api.domain(name)["status"] == "error", timeout=30,
                 what="a failed scan")
        wait_for(hook.delivered, timeout=40, what="check.failing after three failed scans")
        # Further failures say nothing more.
        api.wait_scans(name, 2, timeout=30)
        settle(2)
        (first,) = hook.snapshot()
        doc = json.loads(first["body"])
        assert signature_ok(SECRET, first["headers"], first["body"])
        assert doc["type"] == "check.failing"
        assert doc["data"]["domain"] == name and doc["data"]["state"] == "failing"
        assert doc["data"]["failed_scans"] == 3 and doc["data"]["error"]

        k.start()
        wait_for(lambda: len(hook.delivered()) == 2, timeout=40, what="the recovery")
        settle(3)
        reqs = hook.snapshot()
        assert len(reqs) == 2
        rec = json.loads(reqs[1]["body"])
        assert rec["type"] == "check.failing" and rec["data"]["state"] == "recovered"
        assert rec["data"]["failed_scans"] >= 3
        ds = deliveries(m, rule["id"])
        assert len(ds) == 2 and all(d["status"] == "delivered" for d in ds)
    finally:
        k.cleanup()


AMQP_URL = os.environ.get("DM_TEST_AMQP_URL")


@pytest.mark.skipif(not AMQP_URL or not os.environ.get("DM_TEST_PG_URL"),
                    reason="DM_TEST_AMQP_URL and DM_TEST_PG_URL are not both set")
def test_two_alert_services_on_postgres_and_rabbitmq_send_each_alert_once(
        domainmon_factory, knot, receiver_factory):
    from test_amqp import bus_url, busctl

    # The alert queue's name is fixed; a previous test's exchange may still be bound to it.
    p = busctl(AMQP_URL, "delete", "dns.scan", "delete", "dns.scan.dead",
               "delete", "domainmon.alerts")
    assert p.returncode == 0, p.stderr
    hook = receiver_factory(fail_first=1)
    env = {**alert_env(knot), "RABBITMQ_URL": bus_url("alerts")}
    m = domainmon_factory(env=env, args=("domain-service",), database="postgres")
    api = Api(m)
    scanner = domainmon_factory(env=env, args=("dns-service",), database_url=m.database_url)
    senders = [domainmon_factory(env=env, args=("alert-service",), database_url=m.database_url)
               for _ in range(2)]
    for s in (scanner, *senders):
        wait_for(lambda s=s: "bus=amqp" in s.stderr_text(), timeout=20, what="the start line")
    names = ["w5.alerts.test", "w6.alerts.test"]
    for n in names:
        api.add(n)
    for n in names:
        api.wait_checked(n, timeout=30)
    rule = create_rule(m, {"name": "hook", "channel": "webhook", "target": hook.url(),
                           "secret": SECRET, "events": ["change.dns.A"], "domains": names})

    change_a(knot, names[0], "192.0.2.5", "192.0.2.205")
    wait_for(lambda: len(hook.delivered()) == 1, timeout=40, what="the first alert")
    change_a(knot, names[1], "192.0.2.6", "192.0.2.206")
    wait_for(lambda: len(hook.delivered()) == 2, timeout=40, what="the second alert")
    settle(4)
    reqs = hook.snapshot()
    assert [r["status"] for r in reqs] == [500, 200, 200]
    assert reqs[0]["headers"]["webhook-id"] == reqs[1]["headers"]["webhook-id"]
    domains = [json.loads(r["body"])["data"]["domain"] for r in reqs[1:]]
    assert domains == names
    assert all(signature_ok(SECRET, r["headers"], r["body"]) for r in reqs)
    ds = deliveries(m, rule["id"])
    assert sorted(d["attempts"] for d in ds) == [1, 2]
    assert all(d["status"] == "delivered" for d in ds)
