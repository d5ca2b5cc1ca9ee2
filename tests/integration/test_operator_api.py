"""The operator's API: domains by status, change filters (domain, type, first observations,
serial-only SOA changes), bulk delete, history that outlives a delete until purged,
durations such as "5m", and status_error grouped by reason. A private Knot on loopback
answers; scans run every second and every wait is a poll with a deadline."""

import urllib.parse

import pytest

from dnsfixtures import knot_factory, wait_for  # noqa: F401

ZONE = """$ORIGIN op.test.
$TTL 300
@     SOA ns1.op.test. hostmaster.op.test. 1 3600 900 604800 300
@     NS  ns1.op.test.
ns1   A   127.0.0.1
one   A   192.0.2.1
two   A   192.0.2.2
three A   192.0.2.3
"""


def env(server):
    return {
        "DM_DNS_SERVERS": server,
        "DM_SCAN_INTERVAL": "1",
        "DM_MIN_INTERVAL": "1",
        "DM_DNS_TIMEOUT": "500ms",
        "DM_DNS_RETRIES": "1",
        "DM_DEFAULT_CHECKS": "dns",
    }


def q(name):
    return urllib.parse.quote(name, safe="")


def ok(r, status=200):
    assert r.status_code == status, f"{r.status_code} {r.text}"
    return r.json() if r.content else None


def add(m, name, **fields):
    return ok(m.request("POST", "/api/v1/domains", json={"name": name, **fields}), 201)


def changes(m, **params):
    return ok(m.request("GET", "/api/v1/changes", params=params))["changes"]


def history(m, name, **params):
    return ok(m.request("GET", f"/api/v1/domains/{q(name)}/history", params=params or None))[
        "changes"]


def names(m, **params):
    return [d["name"] for d in ok(m.request("GET", "/api/v1/domains", params=params))["domains"]]


@pytest.fixture
def setup(knot_factory, domainmon_factory):
    k = knot_factory({"op.test.": ZONE})
    m = domainmon_factory(env=env(k.server()))
    return k, m


def test_domains_by_status(setup):
    k, m = setup
    add(m, "one.op.test", record_types=["A"])
    add(m, "elsewhere.example", record_types=["A", "MX"])  # no zone here: REFUSED
    add(m, "idle.op.test", enabled=False)
    wait_for(lambda: names(m, status="error") == ["elsewhere.example"], timeout=20,
             what="the failing domain in error")
    wait_for(lambda: names(m, status="ok") == ["one.op.test"], timeout=20, what="one ok")
    assert names(m, status="pending") == ["idle.op.test"]
    assert names(m, status="ok,error") == ["elsewhere.example", "one.op.test"]
    assert len(names(m)) == 3
    for bad in ("broken", "", "ok,", "OK"):
        r = m.request("GET", "/api/v1/domains", params={"status": bad})
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "status", r.text
    # The reason is given once for every type that failed with it.
    d = ok(m.request("GET", "/api/v1/domains/elsewhere.example"))
    assert d["status_error"].startswith("A, MX: "), d["status_error"]
    assert ";" not in d["status_error"]
    # ... and names the server that failed it.
    assert d["status_error"].endswith(f" from {k.server()}"), d["status_error"]


def test_change_filters_and_serial_only(setup):
    k, m = setup
    add(m, "op.test", record_types=["SOA"])
    add(m, "one.op.test", record_types=["A"])
    add(m, "two.op.test", record_types=["A"])
    wait_for(lambda: len(changes(m)) == 3, timeout=20, what="three first observations")
    assert changes(m, initial="false") == []
    assert [c["domain"] for c in changes(m, domain="one.op.test")] == ["one.op.test"]
    assert [c["type"] for c in changes(m, type="SOA")] == ["SOA"]
    assert changes(m, domain="One.OP.test.")[0]["domain"] == "one.op.test"  # normalized

    # An edit elsewhere in the zone bumps the SOA serial (Knot's serial-policy increment).
    k.update("op.test", ["update delete two.op.test. A 192.0.2.2",
                         "update add two.op.test. 300 A 192.0.2.22"])
    wait_for(lambda: len(changes(m, initial="false")) == 2, timeout=20,
             what="the A change and the SOA serial change")
    later = changes(m, initial="false")
    soa = [c for c in later if c["type"] == "SOA"]
    a = [c for c in later if c["type"] == "A"]
    assert len(soa) == 1 and soa[0]["serial_only"] is True, later
    assert len(a) == 1 and a[0]["serial_only"] is False and a[0]["domain"] == "two.op.test"
    assert any(c["serial_only"] for c in changes(m))
    hidden = changes(m, initial="false", serial_only="false")
    assert [c["type"] for c in hidden] == ["A"]
    assert [c["type"] for c in history(m, "op.test", serial_only="false")] == ["SOA"]
    assert history(m, "op.test", serial_only="false", initial="false") == []

    for params, field in (({"initial": "no"}, "initial"), ({"serial_only": "0"}, "serial_only"),
                          ({"domain": "bad..name"}, "domain")):
        r = m.request("GET", "/api/v1/changes", params=params)
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == field, r.text
    r = m.request("GET", "/api/v1/domains/op.test/history", params={"domain": "x.test"})
    assert r.status_code == 400


def test_history_outlives_delete_until_purged(setup):
    k, m = setup
    add(m, "one.op.test", record_types=["A"])
    wait_for(lambda: history(m, "one.op.test"), timeout=20, what="the first observation")
    before = history(m, "one.op.test")
    ok(m.request("DELETE", "/api/v1/domains/one.op.test"), 204)
    assert m.request("GET", "/api/v1/domains/one.op.test").status_code == 404
    # Gone from the domains, kept in /changes.
    assert "one.op.test" not in names(m)
    assert [c["id"] for c in changes(m, domain="one.op.test")] == [c["id"] for c in before]

    # Added again: its history shows what came before, then its new first observation.
    add(m, "one.op.test", record_types=["A"])
    wait_for(lambda: len(history(m, "one.op.test")) == 2, timeout=20,
             what="the new first observation next to the old one")
    h = history(m, "one.op.test")
    assert h[1]["id"] == before[0]["id"] and h[0]["id"] > before[0]["id"]
    assert history(m, "one.op.test", initial="false") == []

    # Purge: the domain and all of its history go for good.
    ok(m.request("DELETE", "/api/v1/domains/one.op.test", params={"purge": "true"}), 204)
    assert changes(m, domain="one.op.test") == []
    r = m.request("DELETE", "/api/v1/domains/one.op.test", params={"purge": "true"})
    assert r.status_code == 404
    r = m.request("DELETE", "/api/v1/domains/one.op.test", params={"purge": "yes"})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "purge"


def test_bulk_delete(setup):
    k, m = setup
    for n in ("one.op.test", "two.op.test", "three.op.test"):
        add(m, n, record_types=["A"])
    wait_for(lambda: len(changes(m)) == 3, timeout=20, what="three first observations")
    body = {"names": ["one.op.test", "missing.op.test", "bad..name", "TWO.op.test"]}
    r = ok(m.request("POST", "/api/v1/domains/delete", json=body))
    assert [x["status"] for x in r["results"]] == ["deleted", "not_found", "invalid", "deleted"]
    assert r["results"][2]["detail"]
    assert (r["deleted"], r["not_found"], r["invalid"]) == (2, 1, 1)
    assert names(m) == ["three.op.test"]
    assert len(changes(m)) == 3  # history kept

    r = ok(m.request("POST", "/api/v1/domains/delete",
                     json={"names": ["one.op.test", "three.op.test"], "purge": True}))
    assert [x["status"] for x in r["results"]] == ["purged", "purged"]
    assert names(m) == []
    assert [c["domain"] for c in changes(m)] == ["two.op.test"]

    for bad in ({}, {"names": []}, {"names": [1]}, {"names": ["a.test"], "purge": "yes"},
                {"names": ["a.test"], "colour": 1}):
        resp = m.request("POST", "/api/v1/domains/delete", json=bad)
        assert resp.status_code == 400, (bad, resp.text)
    key = m.create_key("reader", "read")
    resp = m.request("POST", "/api/v1/domains/delete", json={"names": ["two.op.test"]}, key=key)
    assert resp.status_code == 403


def test_durations_in_bodies(setup):
    k, m = setup
    assert add(m, "one.op.test", interval="5m")["interval"] == 300
    r = ok(m.request("PATCH", "/api/v1/domains/one.op.test", json={"interval": "1h"}))
    assert r["interval"] == 3600
    assert add(m, "two.op.test", interval=120)["interval"] == 120
    r = ok(m.request("POST", "/api/v1/domains/import",
                     json={"names": ["three.op.test"], "interval": "2h"}))
    assert r["added"] == 1
    assert ok(m.request("GET", "/api/v1/domains/three.op.test"))["interval"] == 7200
    for bad in ("1500ms", "5 minutes", "31d", "0s"):
        resp = m.request("PATCH", "/api/v1/domains/one.op.test", json={"interval": bad})
        assert resp.status_code == 400, (bad, resp.text)
        assert resp.json()["errors"][0]["field"] == "interval"
    assert ok(m.request("GET", "/api/v1/domains/one.op.test"))["interval"] == 3600
