"""REST API v1 and the command line, end to end: the real binary on loopback, driven over
HTTP with the standard library. Every route and every documented error is exercised, and
after each rejected request the test checks that nothing changed."""

import json
import re
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

from conftest import DomainMon

PROBLEM = "application/problem+json"
PROBLEM_BASE = "https://domainmon.dev/problems/"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
KEY_RE = re.compile(r"^dmk_[0-9a-f]{12}_[a-z2-7]{32}$")
DEFAULT_TYPES = {"A", "AAAA", "MX", "TXT", "NS", "CNAME", "SOA", "CAA"}
DOMAIN_FIELDS = {"name", "unicode_name", "enabled", "interval", "record_types", "checks",
                 "tls_ports", "tls_expires_at", "created_at",
                 "updated_at", "last_checked_at", "next_check_at", "last_changed_at", "status",
                 "status_error", "registration_expires_at"}
MIB = 1024 * 1024


def q(name):
    return urllib.parse.quote(name, safe="")


def assert_problem(r, status, type_slug=None, mentions=None):
    """r is a problem document with this status (and type, and a detail mentioning each
    of `mentions`)."""
    assert r.status_code == status, r
    assert r.headers["Content-Type"].startswith(PROBLEM), r.headers["Content-Type"]
    p = r.json()
    assert p["status"] == status
    assert isinstance(p["title"], str) and p["title"]
    if type_slug is None:
        assert p["type"] == "about:blank", p
    else:
        assert p["type"] == PROBLEM_BASE + type_slug, p
    for word in ([mentions] if isinstance(mentions, str) else mentions or []):
        assert word in json.dumps(p), (word, p)
    return p


def names(m, **params):
    """Every domain name, following cursors."""
    out, cursor = [], None
    while True:
        p = dict(params)
        if cursor:
            p["cursor"] = cursor
        r = m.request("GET", "/api/v1/domains", params=p)
        assert r.status_code == 200, r
        out += [d["name"] for d in r.json()["domains"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return out


def add(m, name, **fields):
    r = m.request("POST", "/api/v1/domains", {"name": name, **fields})
    assert r.status_code == 201, r
    return r.json()


@pytest.fixture
def m(domainmon):
    assert domainmon.admin_key and KEY_RE.match(domainmon.admin_key), domainmon.stdout_lines()
    return domainmon


# ---------------------------------------------------------------------------------------
# service routes


def test_healthz_readyz_without_key(m):
    r = m.request("GET", "/healthz", key=None)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {"status": "ok"}
    r = m.request("GET", "/readyz", key=None)
    assert r.status_code == 200, r
    assert r.json()["status"] == "ready"
    r = m.request("HEAD", "/healthz", key=None)
    assert r.status_code == 200 and r.content == b""


def test_openapi_document_lists_every_route(m):
    r = m.request("GET", "/openapi.json", key=None)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    expected = {
        "/healthz": {"get"},
        "/readyz": {"get"},
        "/openapi.json": {"get"},
        "/api/v1/domains": {"get", "post"},
        "/api/v1/domains/import": {"post"},
        "/api/v1/domains/{name}": {"get", "patch", "delete"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
    schemes = doc["components"]["securitySchemes"]
    assert any(s.get("scheme") == "bearer" for s in schemes.values())
    for schema in ("Domain", "Problem", "DomainList", "ImportResponse"):
        assert schema in doc["components"]["schemas"], schema
    limit = doc["components"]["parameters"]["Limit"]["schema"]
    assert limit["default"] == 100 and limit["maximum"] == 1000


def test_access_log_line_per_request(m):
    m.request("GET", "/healthz?probe=1", key=None)
    m.request("GET", "/nope", key=None)

    def logged():
        text = m.stderr_text()
        return ('msg="request" method=GET path=/healthz status=200' in text and
                'msg="request" method=GET path=/nope status=404' in text)

    deadline = time.monotonic() + 5
    while not logged():
        assert time.monotonic() < deadline, m.stderr_tail()
        time.sleep(0.05)
    line = [ln for ln in m.stderr_text().splitlines() if "path=/nope" in ln][0]
    assert re.search(r"svc=http .* dur_ms=\d+ bytes=\d+", line), line
    assert 'msg="listening" addr=' + m.listen in m.stderr_text()


# ---------------------------------------------------------------------------------------
# domains: create, get, list, patch, delete


def test_create_get_delete(m):
    r = m.request("POST", "/api/v1/domains", {"name": "example.com"})
    assert r.status_code == 201, r
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["Location"] == "/api/v1/domains/example.com"
    d = r.json()
    assert set(d) == DOMAIN_FIELDS
    assert d["name"] == "example.com" and d["unicode_name"] == "example.com"
    assert d["enabled"] is True
    assert d["interval"] == 600  # DM_SCAN_INTERVAL default
    assert set(d["record_types"]) == DEFAULT_TYPES and len(d["record_types"]) == 8
    assert RFC3339.match(d["created_at"]) and RFC3339.match(d["updated_at"])
    assert d["last_checked_at"] is None and d["last_changed_at"] is None
    assert d["next_check_at"] is None or RFC3339.match(d["next_check_at"])
    assert d["status"] == "pending" and d["status_error"] is None

    r = m.request("GET", "/api/v1/domains/example.com")
    assert r.status_code == 200
    got = r.json()
    assert got["name"] == "example.com" and got["created_at"] == d["created_at"]
    assert got["status"] in ("pending", "ok", "error")

    r = m.request("DELETE", "/api/v1/domains/example.com")
    assert r.status_code == 204
    assert r.content == b""
    assert_problem(m.request("GET", "/api/v1/domains/example.com"), 404, "not-found")
    assert_problem(m.request("DELETE", "/api/v1/domains/example.com"), 404, "not-found")
    assert names(m) == []


def test_create_with_settings(m):
    d = add(m, "Settings.Example.", interval=120, record_types=["a", "mx", "MX", "TYPE65"],
            enabled=False)
    assert d["name"] == "settings.example"
    assert d["interval"] == 120
    assert d["record_types"] == ["A", "MX", "HTTPS"]
    assert d["enabled"] is False
    d = add(m, "nulls.example", interval=None, record_types=None)
    assert d["interval"] == 600 and set(d["record_types"]) == DEFAULT_TYPES
    d = add(m, "limits.example", interval=30 * 86400)
    assert d["interval"] == 30 * 86400


def test_checks_and_tls_ports(m):
    """checks default to DM_DEFAULT_CHECKS (the harness sets dns), tls_ports to [443]; both
    are set on create, import and PATCH, and null goes back to the default."""
    d = add(m, "plain.example")
    assert d["checks"] == ["dns"] and d["tls_ports"] == [443]
    d = add(m, "tls.example", checks=["TLS", "dns", "tls"], tls_ports=[8443, 443])
    assert d["checks"] == ["dns", "tls"] and d["tls_ports"] == [8443, 443]
    d = m.request("PATCH", "/api/v1/domains/tls.example", {"checks": ["registration"]}).json()
    assert d["checks"] == ["registration"] and d["tls_ports"] == [8443, 443]
    d = m.request("PATCH", "/api/v1/domains/tls.example",
                  {"tls_ports": None, "checks": None}).json()
    assert d["checks"] == ["dns"] and d["tls_ports"] == [443]
    r = m.request("POST", "/api/v1/domains/import",
                  {"names": ["i1.example"], "checks": ["dns", "tls", "registration"],
                   "tls_ports": [993]})
    assert r.status_code == 200 and r.json()["added"] == 1, r
    d = m.request("GET", "/api/v1/domains/i1.example").json()
    assert d["checks"] == ["dns", "tls", "registration"] and d["tls_ports"] == [993]


def test_default_checks_follow_the_setting(domainmon_factory):
    mon = domainmon_factory(env={"DM_DEFAULT_CHECKS": "tls,registration"})
    d = add(mon, "dflt.example")
    assert d["checks"] == ["tls", "registration"]


@pytest.mark.parametrize("body,mentions", [
    ({"checks": []}, "checks"),
    ({"checks": "dns"}, "checks"),
    ({"checks": ["dns", "whois"]}, "checks[1]"),
    ({"checks": [1]}, "checks[0]"),
    ({"tls_ports": []}, "tls_ports"),
    ({"tls_ports": [0]}, "tls_ports[0]"),
    ({"tls_ports": [443, 65536]}, "tls_ports[1]"),
    ({"tls_ports": [443, 443]}, "tls_ports[1]"),
    ({"tls_ports": ["443"]}, "tls_ports[0]"),
    ({"tls_ports": [1.5]}, "tls_ports[0]"),
    ({"tls_ports": list(range(1, 10))}, "tls_ports"),
])
def test_checks_rejected_changes_nothing(m, body, mentions):
    before = add(m, "rej.example", checks=["dns", "tls"], tls_ports=[443])
    assert_problem(m.request("PATCH", "/api/v1/domains/rej.example", body), 400, "invalid-body",
                   mentions)
    assert_problem(m.request("POST", "/api/v1/domains", {"name": "new.example", **body}), 400,
                   "invalid-body", mentions)
    assert_problem(m.request("POST", "/api/v1/domains/import",
                             {"names": ["new.example"], **body}), 400, "invalid-body", mentions)
    after = m.request("GET", "/api/v1/domains/rej.example").json()
    for k in ("checks", "tls_ports", "interval", "enabled", "record_types", "updated_at"):
        assert after[k] == before[k], k
    assert names(m) == ["rej.example"]


def test_unicode_and_alabel_are_one_domain(m):
    r = m.request("POST", "/api/v1/domains", {"name": "bücher.example"})
    assert r.status_code == 201, r
    d = r.json()
    assert d["name"] == "xn--bcher-kva.example"
    assert d["unicode_name"] == "bücher.example"
    assert r.headers["Location"] == "/api/v1/domains/xn--bcher-kva.example"

    for path_name in ("bücher.example", "xn--bcher-kva.example", "BÜCHER.example",
                      "XN--BCHER-KVA.EXAMPLE."):
        r = m.request("GET", "/api/v1/domains/" + q(path_name))
        assert r.status_code == 200, (path_name, r)
        assert r.json()["name"] == "xn--bcher-kva.example"

    for other in ("xn--bcher-kva.example", "Bücher.Example.", "BÜCHER.EXAMPLE"):
        assert_problem(m.request("POST", "/api/v1/domains", {"name": other}), 409,
                       "domain-exists", "xn--bcher-kva.example")

    r = m.request("PATCH", "/api/v1/domains/" + q("bücher.example"), {"interval": 300})
    assert r.status_code == 200 and r.json()["interval"] == 300
    assert m.request("DELETE", "/api/v1/domains/xn--bcher-kva.example").status_code == 204
    assert names(m) == []


def test_conflict_changes_nothing(m):
    first = add(m, "dup.example", interval=120)
    p = assert_problem(m.request("POST", "/api/v1/domains", {"name": "dup.example",
                                                             "interval": 300}),
                       409, "domain-exists", "dup.example")
    assert p["title"] == "Domain already exists"
    now = m.request("GET", "/api/v1/domains/dup.example").json()
    assert now["interval"] == 120 and now["updated_at"] == first["updated_at"]


def test_patch(m):
    created = add(m, "patch.example")
    time.sleep(0.01)
    r = m.request("PATCH", "/api/v1/domains/patch.example", {"interval": 300})
    assert r.status_code == 200, r
    d = r.json()
    assert d["interval"] == 300 and d["enabled"] is True
    assert set(d["record_types"]) == DEFAULT_TYPES
    assert d["updated_at"] > created["updated_at"]
    assert d["created_at"] == created["created_at"]

    d = m.request("PATCH", "/api/v1/domains/patch.example",
                  {"record_types": ["TXT", "caa"], "enabled": False}).json()
    assert d["record_types"] == ["TXT", "CAA"] and d["enabled"] is False and d["interval"] == 300

    d = m.request("PATCH", "/api/v1/domains/patch.example",
                  {"record_types": None, "interval": None}).json()
    assert set(d["record_types"]) == DEFAULT_TYPES and d["interval"] == 600
    assert d["enabled"] is False
    # A GET sees what the PATCH answered.
    got = m.request("GET", "/api/v1/domains/patch.example").json()
    assert got["interval"] == 600 and got["enabled"] is False


@pytest.mark.parametrize("body,mentions", [
    ({}, "at least one"),
    ({"name": "other.example"}, "name"),
    ({"name": "patch.example", "interval": 300}, "name"),
    ({"interval": "5 minutes"}, "interval"),
    ({"interval": 1}, "interval"),
    ({"enabled": "yes"}, "enabled"),
    ({"record_types": []}, "record_types"),
    ({"record_types": ["NOPE"]}, "NOPE"),
    ({"colour": "blue"}, "colour"),
])
def test_patch_rejected_changes_nothing(m, body, mentions):
    before = add(m, "patch.example", interval=120, enabled=True)
    r = m.request("PATCH", "/api/v1/domains/patch.example", body)
    assert_problem(r, 400, "invalid-body", mentions)
    after = m.request("GET", "/api/v1/domains/patch.example").json()
    for k in ("interval", "enabled", "record_types", "updated_at"):
        assert after[k] == before[k], k


def test_patch_delete_get_errors(m):
    assert_problem(m.request("PATCH", "/api/v1/domains/absent.example", {"enabled": False}),
                   404, "not-found", "absent.example")
    assert_problem(m.request("GET", "/api/v1/domains/absent.example"), 404, "not-found")
    for bad in ("localhost", "exa mple.com", "-x.example", "a..b", "x" * 64 + ".com",
                "http://example.com/", "1.2.3.4", "*.example.com"):
        for method, body in (("GET", None), ("PATCH", {"enabled": False}),
                             ("DELETE", None)):
            r = m.request(method, "/api/v1/domains/" + q(bad), body)
            assert_problem(r, 400, "invalid-name", "name")
    # Malformed percent-encoding in the path.
    assert_problem(m.request("GET", "/api/v1/domains/a%zz.example"), 400, "invalid-parameter")


# ---------------------------------------------------------------------------------------
# validation: every rejected request is a 400 naming the problem, and changes nothing


@pytest.mark.parametrize("body,type_slug,mentions", [
    ('{"name": "a.example"', "invalid-json", "malformed JSON"),
    ("", "invalid-json", "empty"),
    ("not json", "invalid-json", None),
    ('{"name": "a.example"} extra', "invalid-json", None),
    ('{"name": "a.example", "name": "b.example"}', "invalid-json", None),
    ('["a.example"]', "invalid-body", "JSON object"),
    ('"a.example"', "invalid-body", "JSON object"),
    ({"name": "a.example", "colour": "blue"}, "invalid-body", "colour"),
    ({"interval": 60}, "invalid-body", "name"),
    ({"name": 42}, "invalid-body", "name"),
    ({"name": None}, "invalid-body", "name"),
    ({"name": "a.example", "interval": "soon"}, "invalid-body", "interval"),
    ({"name": "a.example", "interval": 60.5}, "invalid-body", "interval"),
    ({"name": "a.example", "interval": 59}, "invalid-body", "interval"),
    ({"name": "a.example", "interval": 0}, "invalid-body", "interval"),
    ({"name": "a.example", "interval": -60}, "invalid-body", "interval"),
    ({"name": "a.example", "interval": 30 * 86400 + 1}, "invalid-body", "interval"),
    ({"name": "a.example", "interval": 2 ** 70}, "invalid-json", None),
    ({"name": "a.example", "enabled": "true"}, "invalid-body", "enabled"),
    ({"name": "a.example", "enabled": None}, "invalid-body", "enabled"),
    ({"name": "a.example", "record_types": "A"}, "invalid-body", "record_types"),
    ({"name": "a.example", "record_types": []}, "invalid-body", "record_types"),
    ({"name": "a.example", "record_types": ["A", "BOGUS"]}, "invalid-body", "BOGUS"),
    ({"name": "a.example", "record_types": ["ANY"]}, "invalid-body", "ANY"),
    ({"name": "a.example", "record_types": ["AXFR"]}, "invalid-body", "AXFR"),
    ({"name": "a.example", "record_types": [1]}, "invalid-body", "record_types[0]"),
    ({"name": "a.example", "record_types": ["A"] * 33}, "invalid-body", "record_types"),
    ({"name": "localhost"}, "invalid-body", "name"),
    ({"name": "exa mple.com"}, "invalid-body", "name"),
    ({"name": "https://example.com/"}, "invalid-body", "URL"),
    ({"name": "a" * 64 + ".example"}, "invalid-body", "63"),
    ({"name": ".".join(["abcdefghi"] * 26) + ".com"}, "invalid-body", "name"),
    ({"name": "192.0.2.1"}, "invalid-body", "name"),
    ({"name": ""}, "invalid-body", "name"),
])
def test_create_rejected(m, body, type_slug, mentions):
    r = m.request("POST", "/api/v1/domains", body)
    p = assert_problem(r, 400, type_slug, mentions)
    if type_slug == "invalid-body" and isinstance(body, dict):
        assert p.get("errors"), p
        assert all({"field", "detail"} <= set(e) for e in p["errors"])
    assert names(m) == []


def test_unknown_query_parameters_are_refused(m):
    add(m, "qp.example")
    for method, path, body in (("POST", "/api/v1/domains?dry_run=1", {"name": "qp2.example"}),
                               ("POST", "/api/v1/domains/import?x=1", {"names": ["qp3.example"]}),
                               ("GET", "/api/v1/domains/qp.example?expand=all", None),
                               ("PATCH", "/api/v1/domains/qp.example?x", {"enabled": False}),
                               ("DELETE", "/api/v1/domains/qp.example?force=1", None)):
        p = assert_problem(m.request(method, path, body), 400, "invalid-parameter")
        assert p["errors"][0]["field"] in ("dry_run", "x", "expand", "force"), p
    assert names(m) == ["qp.example"]
    assert m.request("GET", "/api/v1/domains/qp.example").json()["enabled"] is True


def test_several_field_errors_reported_together(m):
    r = m.request("POST", "/api/v1/domains",
                  {"name": "bad name", "interval": 5, "record_types": ["NOPE"]})
    p = assert_problem(r, 400, "invalid-body")
    fields = {e["field"] for e in p["errors"]}
    assert {"name", "interval", "record_types[0]"} <= fields, p
    assert names(m) == []


def test_content_type_must_be_json(m):
    r = m.request("POST", "/api/v1/domains", '{"name": "ct.example"}',
                  headers={"Content-Type": "text/plain"})
    assert_problem(r, 415, "unsupported-media-type")
    # Parameters are fine, and so is no Content-Type at all.
    r = m.request("POST", "/api/v1/domains", '{"name": "ct.example"}',
                  headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 201, r
    r = m.request("POST", "/api/v1/domains", '{"name": "ct2.example"}',
                  headers={"Content-Type": None})
    assert r.status_code == 201, r
    assert names(m) == ["ct.example", "ct2.example"]


# ---------------------------------------------------------------------------------------
# import


def test_import_mixed_results(m):
    add(m, "existing.example")
    inputs = ["a.example", "B.Example", "not a name", "existing.example", "a.example",
              "bücher.example", "xn--bcher-kva.example", "A.EXAMPLE.", "localhost"]
    r = m.request("POST", "/api/v1/domains/import", {"names": inputs})
    assert r.status_code == 200, r
    out = r.json()
    assert [x["name"] for x in out["results"]] == inputs  # as given, in order
    statuses = [x["status"] for x in out["results"]]
    assert statuses == ["added", "added", "invalid", "exists", "exists", "added", "exists",
                        "exists", "invalid"]
    assert out["added"] == 3 and out["exists"] == 4 and out["invalid"] == 2
    for x in out["results"]:
        if x["status"] == "invalid":
            assert isinstance(x["detail"], str) and x["detail"]
        else:
            assert "detail" not in x
    assert names(m) == ["a.example", "b.example", "existing.example", "xn--bcher-kva.example"]
    # Imported domains get the defaults.
    d = m.request("GET", "/api/v1/domains/b.example").json()
    assert d["enabled"] is True and d["interval"] == 600


@pytest.mark.parametrize("body,status,type_slug,mentions", [
    ({"names": []}, 400, "invalid-body", "names"),
    ({"names": "a.example"}, 400, "invalid-body", "names"),
    ({"names": ["a.example", 7]}, 400, "invalid-body", "names[1]"),
    ({"names": ["a.example"], "interval": 5}, 400, "invalid-body", "interval"),
    ({"names": ["a.example"], "record_types": ["BOGUS"]}, 400, "invalid-body", "record_types"),
    ({"names": ["a.example"], "owner": "me"}, 400, "invalid-body", "owner"),
    ({}, 400, "invalid-body", "names"),
    ('{"names": ["a.example",]}', 400, "invalid-json", None),
    ({"names": [f"n{i}.example" for i in range(10001)]}, 413, "too-many-names", "10000"),
])
def test_import_rejected_changes_nothing(m, body, status, type_slug, mentions):
    r = m.request("POST", "/api/v1/domains/import", body)
    assert_problem(r, status, type_slug, mentions)
    assert names(m) == []


def test_import_applies_settings_to_every_name(m):
    r = m.request("POST", "/api/v1/domains/import",
                  {"names": ["s1.example", "s2.example"], "interval": 3600,
                   "record_types": ["a", "MX"], "enabled": False})
    assert r.status_code == 200, r
    assert r.json()["added"] == 2
    for n in ("s1.example", "s2.example"):
        d = m.request("GET", f"/api/v1/domains/{n}").json()
        assert d["interval"] == 3600 and d["record_types"] == ["A", "MX"]
        assert d["enabled"] is False


def test_import_ten_thousand(m):
    batch = [f"host{i:05d}.example" for i in range(10000)]
    r = m.request("POST", "/api/v1/domains/import", {"names": batch}, timeout=60)
    assert r.status_code == 200, r
    assert r.json()["added"] == 10000
    r = m.request("POST", "/api/v1/domains/import", {"names": batch[:10] + ["new.example"]})
    assert r.json()["exists"] == 10 and r.json()["added"] == 1


# ---------------------------------------------------------------------------------------
# listing and paging


def test_list_pages_in_name_order(m):
    batch = [f"p{i:02d}.example" for i in range(25)]
    r = m.request("POST", "/api/v1/domains/import", {"names": list(reversed(batch))})
    assert r.json()["added"] == 25

    r = m.request("GET", "/api/v1/domains")
    body = r.json()
    assert [d["name"] for d in body["domains"]] == batch
    assert body["next_cursor"] is None
    assert all(set(d) == DOMAIN_FIELDS for d in body["domains"])

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        page = m.request("GET", "/api/v1/domains", params=params).json()
        pages += 1
        assert len(page["domains"]) <= 10
        seen += [d["name"] for d in page["domains"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
    assert seen == batch and pages == 3

    # A domain added behind the cursor does not shift later pages.
    first = m.request("GET", "/api/v1/domains", params={"limit": 5}).json()
    add(m, "a0.example")
    second = m.request("GET", "/api/v1/domains",
                       params={"limit": 5, "cursor": first["next_cursor"]}).json()
    assert [d["name"] for d in second["domains"]] == batch[5:10]


def test_list_limit_default_and_clamp(m):
    batch = [f"c{i:04d}.example" for i in range(1005)]
    r = m.request("POST", "/api/v1/domains/import", {"names": batch}, timeout=60)
    assert r.json()["added"] == 1005
    page = m.request("GET", "/api/v1/domains").json()
    assert len(page["domains"]) == 100 and page["next_cursor"]
    page = m.request("GET", "/api/v1/domains", params={"limit": 5000}).json()
    assert len(page["domains"]) == 1000 and page["next_cursor"]
    rest = m.request("GET", "/api/v1/domains",
                     params={"limit": 1000, "cursor": page["next_cursor"]}).json()
    assert [d["name"] for d in rest["domains"]] == batch[1000:]
    assert rest["next_cursor"] is None


def test_list_filter(m):
    for n in ("alpha.example", "beta.example", "bücher.example", "gamma.test"):
        add(m, n)
    assert names(m, q="example") == ["alpha.example", "beta.example", "xn--bcher-kva.example"]
    assert names(m, q="BETA") == ["beta.example"]
    assert names(m, q="bücher") == ["xn--bcher-kva.example"]
    assert names(m, q="xn--bcher") == ["xn--bcher-kva.example"]
    assert names(m, q="nothing") == []
    assert names(m, q=".test", limit=1) == ["gamma.test"]


@pytest.mark.parametrize("query,field", [
    ("limit=0", "limit"),
    ("limit=-1", "limit"),
    ("limit=abc", "limit"),
    ("limit=1.5", "limit"),
    ("limit=", "limit"),
    ("limit=10&limit=20", "limit"),
    ("cursor=!!!", "cursor"),
    ("cursor=Zm9v", "cursor"),          # base64url of "foo": not a name this server made
    ("cursor=ZXhhbXBsZS5jb20=", "cursor"),  # padding is not part of the format
    ("cursor=RVhBTVBMRS5DT00", "cursor"),   # "EXAMPLE.COM": not canonical
    ("q=" + "x" * 300, "q"),
    ("sort=name", "sort"),
])
def test_list_bad_query(m, query, field):
    r = m.request("GET", "/api/v1/domains?" + query)
    p = assert_problem(r, 400, "invalid-parameter", field)
    assert p["errors"][0]["field"] == field


# ---------------------------------------------------------------------------------------
# authentication and scopes


def test_missing_wrong_malformed_keys_are_401(m):
    unknown = "dmk_000000000000_" + "a" * 32
    wrong_secret = m.admin_key[:-4] + ("aaaa" if not m.admin_key.endswith("aaaa") else "bbbb")
    cases = [
        {},  # no header
        {"Authorization": f"Bearer {unknown}"},
        {"Authorization": f"Bearer {wrong_secret}"},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {m.admin_key}x"},
        {"Authorization": f"Basic {m.admin_key}"},
        {"Authorization": m.admin_key},
    ]
    routes = [("GET", "/api/v1/domains", None), ("POST", "/api/v1/domains",
                                                 {"name": "x.example"}),
              ("GET", "/api/v1/domains/x.example", None),
              ("PATCH", "/api/v1/domains/x.example", {"enabled": False}),
              ("DELETE", "/api/v1/domains/x.example", None),
              ("POST", "/api/v1/domains/import", {"names": ["x.example"]})]
    for headers in cases:
        for method, path, body in routes:
            r = m.request(method, path, body, key=None, headers=headers)
            assert_problem(r, 401, "unauthorized")
            assert r.headers["WWW-Authenticate"].startswith("Bearer"), r.headers
    assert names(m) == []
    # The same key, well formed, works (and scheme case does not matter).
    r = m.request("GET", "/api/v1/domains", key=None,
                  headers={"Authorization": f"bearer {m.admin_key}"})
    assert r.status_code == 200


def test_scopes(m):
    read = m.create_key("reader", "read")
    write = m.create_key("writer", "write")
    assert KEY_RE.match(read) and KEY_RE.match(write)
    add(m, "scoped.example")

    assert m.request("GET", "/api/v1/domains", key=read).status_code == 200
    assert m.request("GET", "/api/v1/domains/scoped.example", key=read).status_code == 200
    for method, path, body in (("POST", "/api/v1/domains", {"name": "r.example"}),
                               ("POST", "/api/v1/domains/import", {"names": ["r.example"]}),
                               ("PATCH", "/api/v1/domains/scoped.example", {"enabled": False}),
                               ("DELETE", "/api/v1/domains/scoped.example", None)):
        r = m.request(method, path, body, key=read)
        assert_problem(r, 403, "forbidden", ["read", "write"])
    assert names(m) == ["scoped.example"]
    assert m.request("GET", "/api/v1/domains/scoped.example").json()["enabled"] is True

    r = m.request("POST", "/api/v1/domains", {"name": "w.example"}, key=write)
    assert r.status_code == 201
    r = m.request("PATCH", "/api/v1/domains/w.example", {"enabled": False}, key=write)
    assert r.status_code == 200
    assert m.request("DELETE", "/api/v1/domains/w.example", key=write).status_code == 204
    # Service routes need no key, and ignore a bad one.
    assert m.request("GET", "/healthz", key="garbage").status_code == 200


def test_revoked_key_stops_working(m):
    key = m.create_key("temp", "write")
    assert m.request("GET", "/api/v1/domains", key=key).status_code == 200
    p = m.cli("keys", "revoke", "temp")
    assert p.returncode == 0, p.stderr
    r = m.request("GET", "/api/v1/domains", key=key)
    assert_problem(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    # Other keys are untouched.
    assert m.request("GET", "/api/v1/domains").status_code == 200


# ---------------------------------------------------------------------------------------
# HTTP layer: sizes, methods, routes, connections


def raw_exchange(m, head, body=b"", read_timeout=5.0):
    """Sends raw bytes from a second thread (the server may stop reading and close) while
    reading the answer; returns (seconds until the first response byte, response bytes)."""
    s = socket.create_connection(("127.0.0.1", m.port), timeout=read_timeout)

    def send():
        try:
            s.sendall(head + body)
        except OSError:
            pass  # the server answered and hung up: expected for refused bodies

    sender = threading.Thread(target=send, daemon=True)
    try:
        t0 = time.monotonic()
        sender.start()
        data = s.recv(65536)
        first = time.monotonic() - t0
        try:
            while True:
                hdr, sep, rest = data.partition(b"\r\n\r\n")
                cl = re.search(rb"Content-Length: (\d+)", hdr)
                if sep and cl and len(rest) >= int(cl.group(1)):
                    break
                more = s.recv(65536)
                if not more:
                    break
                data += more
        except (socket.timeout, ConnectionResetError):
            pass
        return first, data
    finally:
        s.close()
        sender.join(timeout=5)


def test_oversized_body_is_refused_without_being_read(m):
    head = (f"POST /api/v1/domains HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {m.admin_key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {2 * MIB}\r\n\r\n").encode()
    # Only 1 KiB of the announced 2 MiB is ever sent: the answer must come anyway.
    first, data = raw_exchange(m, head, b'{"name": "' + b"a" * 1000)
    assert first < 2.0
    status_line, _, rest = data.partition(b"\r\n")
    assert b" 413 " in status_line, data[:300]
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"application/problem+json" in headers
    p = json.loads(body)
    assert p["status"] == 413 and p["type"] == PROBLEM_BASE + "body-too-large"
    assert names(m) == []


def test_oversized_bodies(m):
    # A whole 2 MiB body, sent as fast as the server will take it.
    body = json.dumps({"names": ["x" * 60 + ".example"] * (2 * MIB // 70)}).encode()
    assert len(body) > 2 * MIB - 100000
    head = (f"POST /api/v1/domains/import HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {m.admin_key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    first, data = raw_exchange(m, head, body)
    assert b" 413 " in data.partition(b"\r\n")[0], data[:300]
    assert first < 2.0
    # Just under the limit is read and judged on its content.
    pad = " " * (MIB - 100)
    r = m.request("POST", "/api/v1/domains", '{"name": "big.example"}' + pad)
    assert r.status_code == 201, r
    assert names(m) == ["big.example"]


def test_refusals_before_the_body(m):
    # A wrong key with a large body: refused at once, body unread.
    head = (f"POST /api/v1/domains HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer dmk_000000000000_{'a' * 32}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {2 * MIB}\r\n\r\n").encode()
    first, data = raw_exchange(m, head, b"{")
    assert first < 2.0 and b" 401 " in data.partition(b"\r\n")[0], data[:300]
    # A refused small body leaves the connection usable.
    conn = m.connection()
    try:
        conn.request("POST", "/api/v1/domains", body=b'{"name": "x.example"}',
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        assert r.status == 401 and not r.will_close
        port = conn.sock.getsockname()[1]
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        r.read()
        assert r.status == 200 and conn.sock.getsockname()[1] == port
    finally:
        conn.close()
    assert names(m) == []


def test_chunked_body_over_cap_is_413(m):
    head = (f"POST /api/v1/domains HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {m.admin_key}\r\nContent-Type: application/json\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n").encode()
    chunk = b"a" * 65536
    body = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(20)) + b"0\r\n\r\n"
    _, data = raw_exchange(m, head, body)
    assert b" 413 " in data.partition(b"\r\n")[0], data[:300]
    assert names(m) == []
    # A small chunked body is fine.
    small = b'{"name": "chunked.example"}'
    _, data = raw_exchange(m, head, b"%x\r\n" % len(small) + small + b"\r\n0\r\n\r\n")
    assert b" 201 " in data.partition(b"\r\n")[0], data[:300]


@pytest.mark.parametrize("framing,status,mentions", [
    # Two readings of the body's length are how requests get smuggled past a proxy.
    (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400, "Transfer-Encoding"),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400, "Transfer-Encoding"),
    (b"Content-Length: 27\r\nContent-Length: 3\r\n", 400, "more than once"),
    # A coding the server cannot undo: no waiting for the end of the connection.
    (b"Transfer-Encoding: gzip\r\n", 501, "chunked"),
    (b"Transfer-Encoding: gzip, chunked\r\n", 501, "chunked"),
])
def test_ambiguous_body_framing_is_refused(m, framing, status, mentions):
    small = b'{"name": "smuggled.example"}'
    head = (f"POST /api/v1/domains HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {m.admin_key}\r\n"
            f"Content-Type: application/json\r\n").encode() + framing + b"\r\n"
    first, data = raw_exchange(m, head, b"%x\r\n" % len(small) + small + b"\r\n0\r\n\r\n")
    assert first < 2.0
    status_line, _, rest = data.partition(b"\r\n")
    assert b" %d " % status in status_line, data[:300]
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"application/problem+json" in headers and b"Connection: close" in headers
    p = json.loads(body)
    assert p["status"] == status and mentions in p["detail"]
    assert names(m) == []


@pytest.mark.parametrize("path,field", [
    ("/api/v1/domains?q=nul%00.example", "q"),
    ("/api/v1/domains?limit=1%00junk", "limit"),
    ("/api/v1/domains?limit%00junk=1", "limit"),
    ("/api/v1/domains?cursor=YS5leGFtcGxl%00junk", "cursor"),
    ("/api/v1/changes?type=A%00junk", "type"),
    ("/api/v1/domains/a.example?x=%00", "x"),
])
def test_query_nul_byte_is_refused(m, path, field):
    # Handlers read values as C strings: "limit=1%00junk" must not pass as "limit=1".
    add(m, "a.example")
    r = m.request("GET", path)
    p = assert_problem(r, 400, "invalid-parameter", "NUL")
    assert p["errors"][0]["field"] == field


def test_bearer_key_with_trailing_whitespace(m):
    r = m.request("GET", "/api/v1/domains", key=None,
                  headers={"Authorization": f"Bearer  {m.admin_key} \t"})
    assert r.status_code == 200, r


@pytest.mark.parametrize("method,path,allow", [
    ("PUT", "/api/v1/domains", "GET, HEAD, POST"),
    ("DELETE", "/api/v1/domains", "GET, HEAD, POST"),
    ("POST", "/api/v1/domains/x.example", "GET, HEAD, PATCH, DELETE"),
    ("PUT", "/api/v1/domains/x.example", "GET, HEAD, PATCH, DELETE"),
    ("POST", "/healthz", "GET, HEAD"),
    ("DELETE", "/openapi.json", "GET, HEAD"),
    ("BREW", "/readyz", "GET, HEAD"),
])
def test_wrong_method_is_405_with_allow(m, method, path, allow):
    r = m.request(method, path, key=None)
    assert_problem(r, 405, None)
    assert r.headers["Allow"] == allow


# "/" is the web UI's page (test_ui.py).
@pytest.mark.parametrize("path", ["/nope", "/api/v1", "/api/v1/domains/",
                                  "/api/v1/domains/x.example/extra/deep", "/api/v2/domains",
                                  "/API/v1/domains", "/healthz/"])
def test_unknown_route_is_404(m, path):
    r = m.request("GET", path, key=None)
    assert_problem(r, 404, None)


def test_overlong_path_is_414(m):
    r = m.request("GET", "/api/v1/domains/" + "a" * 3000, key=None)
    assert_problem(r, 414, "uri-too-long")


def test_keep_alive_reuses_one_connection(m):
    conn = m.connection()
    try:
        ports = set()
        for i in range(6):
            method, path, body = [("GET", "/healthz", None), ("GET", "/api/v1/domains", None),
                                  ("POST", "/api/v1/domains",
                                   json.dumps({"name": f"ka{i}.example"})),
                                  ("GET", "/nope", None)][i % 4]
            conn.request(method, path, body=body,
                         headers={"Authorization": f"Bearer {m.admin_key}",
                                  "Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            assert r.status in (200, 201, 404)
            assert not r.will_close
            ports.add(conn.sock.getsockname()[1])
        assert len(ports) == 1
    finally:
        conn.close()
    # The harness' own client keeps its connection too.
    before = m.connects
    for _ in range(5):
        assert m.request("GET", "/healthz").status_code == 200
    assert m.connects - before <= 1


# ---------------------------------------------------------------------------------------
# command line


def test_keys_cli(m):
    p = m.cli("keys", "create", "--name", "ci-bot", "--scope", "write")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 1 and KEY_RE.match(lines[0]), p.stdout
    key = lines[0]
    key_id = key.split("_")[1]
    assert m.request("POST", "/api/v1/domains", {"name": "cli.example"},
                     key=key).status_code == 201

    p = m.cli("keys", "create", "--name=reader", "--scope=read")
    assert p.returncode == 0 and KEY_RE.match(p.stdout.strip())

    p = m.cli("keys", "list")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "KEY_ID" in out.splitlines()[0]
    row = [ln for ln in out.splitlines() if key_id in ln]
    assert len(row) == 1 and "ci-bot" in row[0] and "write" in row[0]
    assert re.search(r"\d{4}-\d\d-\d\dT", row[0])
    assert "admin" in out and "reader" in out
    # Secrets never appear.
    assert key.split("_")[2] not in out and m.admin_key.split("_")[2] not in out
    assert "dmk_" not in out

    p = m.cli("keys", "revoke", key_id)
    assert p.returncode == 0, p.stderr
    assert_problem(m.request("GET", "/api/v1/domains", key=key), 401, "unauthorized")
    row = [ln for ln in m.cli("keys", "list").stdout.splitlines() if key_id in ln][0]
    assert re.search(r"\d{4}-\d\d-\d\dT\S+Z\s*$", row), row  # revoked time shown

    p = m.cli("keys", "revoke", key_id)
    assert p.returncode == 1 and p.stderr.strip()
    p = m.cli("keys", "revoke", "no-such-key")
    assert p.returncode == 1 and p.stderr.strip()


@pytest.mark.parametrize("args", [
    ("keys",),
    ("keys", "bogus"),
    ("keys", "create"),
    ("keys", "create", "--name"),
    ("keys", "create", "--name", "x", "--scope", "root"),
    ("keys", "create", "--name", "x", "--colour", "red"),
    ("keys", "list", "extra"),
    ("keys", "revoke"),
    ("keys", "revoke", "a", "b"),
])
def test_keys_cli_usage_errors(m, args):
    p = m.cli(*args)
    assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert p.stdout == ""


def test_keys_cli_on_explicit_database_url(m, tmp_path):
    """The CLI, run from anywhere, acts on the database DATABASE_URL names."""
    p = subprocess.run([m.binary, "keys", "create", "--name", "elsewhere", "--scope", "read"],
                       cwd=tmp_path, env=m.env({"DATABASE_URL": m.database_url}),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert m.request("GET", "/api/v1/domains", key=p.stdout.strip()).status_code == 200
    assert not (tmp_path / "domainmon.db").exists()


def cli_usage_error(args):
    """Exit code 2 and one line saying what is wrong (log lines, `ts=...`, aside)."""
    p = DomainMon().cli(*args)
    assert p.returncode == 2, (args, p.returncode, p.stderr)
    message = [ln for ln in p.stderr.splitlines() if ln.strip() and not ln.startswith("ts=")]
    assert len(message) == 1, (args, p.stderr)
    assert p.stdout == "", (args, p.stdout)


@pytest.mark.parametrize("args", [(), ("bogus",), ("--bogus",)])
def test_cli_unknown_command(args):
    cli_usage_error(args)


@pytest.mark.parametrize("args", [("all", "--bogus"), ("domain-service", "--listen-port", "1"),
                                  ("config", "--no-such-flag"), ("config", "extra")])
def test_cli_unknown_flag(args):
    cli_usage_error(args)


def test_cli_config_masks_secrets():
    mon = DomainMon()
    p = mon.cli("config", env={"SECRET_KEY": "s3cr3t-value-123",
                               "DATABASE_URL": "postgres://dm:hunter2pass@127.0.0.1:5432/dm"})
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "SECRET_KEY" in out and "DATABASE_URL" in out
    assert "s3cr3t-value-123" not in out
    assert "hunter2pass" not in out
    assert "postgres://dm:" in out and "127.0.0.1:5432/dm" in out


@pytest.mark.parametrize("value", ["abc", "-5", "0", "10x", "99999d"])
def test_bad_scan_interval_stops_startup(value):
    mon = DomainMon(env={"DM_SCAN_INTERVAL": value})
    p = mon.cli("all", timeout=15)
    assert p.returncode != 0
    assert "DM_SCAN_INTERVAL" in p.stderr, p.stderr
    assert not mon._healthy()


# ---------------------------------------------------------------------------------------
# life cycle


def test_sigterm_exits_cleanly_and_data_survives(domainmon_factory):
    mon = domainmon_factory()
    key = mon.admin_key
    add(mon, "persist.example", interval=120)
    rc = mon.stop()
    assert rc == 0 and mon.stop_seconds < 10
    assert 'msg="stopped"' in mon.stderr_text() or "stopping" in mon.stderr_text()
    mon.start()
    assert mon.admin_key == key  # not printed again: the old key still works
    d = mon.request("GET", "/api/v1/domains/persist.example").json()
    assert d["interval"] == 120


def test_sigterm_while_clients_keep_connections_open(domainmon_factory):
    mon = domainmon_factory()
    idle = [mon.connection() for _ in range(3)]
    for c in idle:
        c.request("GET", "/healthz")
        c.getresponse().read()
    try:
        assert mon.stop() == 0
    finally:
        for c in idle:
            c.close()
