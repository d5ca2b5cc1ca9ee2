"""What an operator follows: the log lines (changes, a domain entering and leaving `error`,
writes through the API, DM_LOG_FORMAT=json), GET /metrics read with a strict reader of the
Prometheus text format 0.0.4, and the 401 that names a missing Bearer scheme.

DNS comes from a private Knot on loopback; scans run every second, and every wait is a poll
with a deadline."""

import json
import math
import re

import pytest

from conftest import DomainMon  # noqa: F401
from dnsfixtures import FIXTURE_ZONES, knot_factory, wait_for  # noqa: F401

INTERVAL = 1


def dns_env(server, **extra):
    env = {
        "DM_DNS_SERVERS": server,
        "DM_SCAN_INTERVAL": str(INTERVAL),
        "DM_MIN_INTERVAL": "1",
        "DM_DNS_TIMEOUT": "500ms",
        "DM_DNS_RETRIES": "1",
        "DM_DEFAULT_CHECKS": "dns",
    }
    env.update(extra)
    return env


def add(mon, name, **fields):
    r = mon.request("POST", "/api/v1/domains", json={"name": name, **fields})
    assert r.status_code == 201, r.text
    return r.json()


def domain(mon, name):
    r = mon.request("GET", f"/api/v1/domains/{name}")
    assert r.status_code == 200, r.text
    return r.json()


def log_lines(mon):
    return mon.stderr_text().splitlines()


def logfmt(line):
    """One logfmt line as a dict: quoted values unescaped (\\" and \\\\), \\xNN kept."""
    out = {}
    for m in re.finditer(r'([^\s=]+)=("((?:[^"\\]|\\.)*)"|\S*)', line):
        v = m.group(3) if m.group(2).startswith('"') else m.group(2)
        if m.group(2).startswith('"'):
            v = re.sub(r'\\(["\\])', r"\1", v)
        out[m.group(1)] = v
    return out


def find_lines(mon, **want):
    return [d for d in map(logfmt, log_lines(mon))
            if all(d.get(k) == v for k, v in want.items())]


# ---------------------------------------------------------------------------------------
# a strict reader of the Prometheus text exposition format 0.0.4

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class FormatError(AssertionError):
    pass


def parse_value(s, where):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", s):
        raise FormatError(f"{where}: bad value {s!r}")
    return float(s)


def parse_labels(text, pos, where):
    """Labels from text[pos] == '{'; returns (tuple of (name, value)), position after '}'."""
    assert text[pos] == "{"
    pos += 1
    labels = []
    while True:
        if text[pos] == "}":
            return tuple(labels), pos + 1
        m = LABEL_RE.match(text, pos)
        if not m:
            raise FormatError(f"{where}: bad label name at {text[pos:]!r}")
        name = m.group(0)
        pos = m.end()
        if text[pos:pos + 2] != '="':
            raise FormatError(f"{where}: expected =\" after {name}")
        pos += 2
        value = []
        while True:
            if pos >= len(text):
                raise FormatError(f"{where}: unterminated label value")
            c = text[pos]
            if c == "\\":
                nxt = text[pos + 1:pos + 2]
                if nxt not in ('\\', '"', "n"):
                    raise FormatError(f"{where}: bad escape \\{nxt}")
                value.append({"n": "\n"}.get(nxt, nxt))
                pos += 2
                continue
            if c == "\n":
                raise FormatError(f"{where}: raw newline in a label value")
            if c == '"':
                pos += 1
                break
            value.append(c)
            pos += 1
        if name in dict(labels):
            raise FormatError(f"{where}: label {name} twice")
        labels.append((name, "".join(value)))
        if text[pos] == ",":
            pos += 1
        elif text[pos] != "}":
            raise FormatError(f"{where}: expected , or }} after a label")


def parse_metrics(text):
    """Families {name: {"type", "help", "samples": [(sample_name, labels dict, value)]}}.
    Raises FormatError on anything the format does not allow or the rules below forbid:
    every family has HELP and TYPE before its samples, a family's lines are contiguous,
    samples belong to a declared family under the names its type allows, no series
    appears twice, histogram buckets are cumulative and end in +Inf, with _sum and a
    _count equal to the +Inf bucket."""
    if text and not text.endswith("\n"):
        raise FormatError("the text does not end with a newline")
    families = {}
    current = None
    done = set()
    seen_series = set()
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = f"line {n}"
        if line == "":
            raise FormatError(f"{where}: empty line")
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME_RE.fullmatch(name):
                    raise FormatError(f"{where}: bad family name {name!r}")
                if name != current:
                    if name in done or name in families and name != current:
                        raise FormatError(f"{where}: family {name} is not contiguous")
                    if current:
                        done.add(current)
                    current = name
                fam = families.setdefault(name, {"type": None, "help": None, "samples": []})
                if fam["samples"]:
                    raise FormatError(f"{where}: {parts[1]} of {name} after its samples")
                if parts[1] == "HELP":
                    if fam["help"] is not None:
                        raise FormatError(f"{where}: second HELP for {name}")
                    helptext = parts[3] if len(parts) > 3 else ""
                    if re.search(r"\\[^\\n]", helptext.replace("\\\\", "")):
                        raise FormatError(f"{where}: bad escape in HELP")
                    fam["help"] = helptext
                else:
                    if fam["type"] is not None:
                        raise FormatError(f"{where}: second TYPE for {name}")
                    if len(parts) != 4 or parts[3] not in (
                            "counter", "gauge", "histogram", "summary", "untyped"):
                        raise FormatError(f"{where}: bad TYPE line {line!r}")
                    fam["type"] = parts[3]
            continue
        m = NAME_RE.match(line)
        if not m:
            raise FormatError(f"{where}: bad sample {line!r}")
        sname = m.group(0)
        pos = m.end()
        labels = ()
        if pos < len(line) and line[pos] == "{":
            labels, pos = parse_labels(line, pos, where)
        if pos >= len(line) or line[pos] != " ":
            raise FormatError(f"{where}: expected a space before the value")
        fields = line[pos + 1:].split(" ")
        if len(fields) not in (1, 2) or (len(fields) == 2 and not re.fullmatch(r"-?\d+",
                                                                               fields[1])):
            raise FormatError(f"{where}: bad value/timestamp {line[pos + 1:]!r}")
        value = parse_value(fields[0], where)
        if current is None:
            raise FormatError(f"{where}: sample before any HELP/TYPE")
        fam = families[current]
        if fam["help"] is None or fam["type"] is None:
            raise FormatError(f"{where}: sample of {current} before its HELP and TYPE")
        allowed = {current}
        if fam["type"] == "histogram":
            allowed = {current + "_bucket", current + "_sum", current + "_count"}
        if sname not in allowed:
            raise FormatError(f"{where}: sample {sname} does not belong to {current}")
        if fam["type"] == "counter" and not value >= 0:
            raise FormatError(f"{where}: negative counter")
        key = (sname, tuple(sorted(labels)))
        if key in seen_series:
            raise FormatError(f"{where}: duplicate series {key}")
        seen_series.add(key)
        fam["samples"].append((sname, dict(labels), value))
    for name, fam in families.items():
        if fam["help"] is None or fam["type"] is None:
            raise FormatError(f"family {name} lacks HELP or TYPE")
        if fam["type"] == "histogram":
            check_histogram(name, fam["samples"])
    return families


def check_histogram(name, samples):
    groups = {}
    for sname, labels, value in samples:
        base = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        g = groups.setdefault(base, {"buckets": [], "sum": None, "count": None})
        if sname.endswith("_bucket"):
            if "le" not in labels:
                raise FormatError(f"{name}: bucket without le")
            g["buckets"].append((parse_value(labels["le"], name), value))
        elif sname.endswith("_sum"):
            g["sum"] = value
        else:
            g["count"] = value
    for base, g in groups.items():
        b = g["buckets"]
        if not b or b[-1][0] != math.inf:
            raise FormatError(f"{name}{base}: buckets do not end in +Inf")
        for (le1, c1), (le2, c2) in zip(b, b[1:]):
            if not le2 > le1:
                raise FormatError(f"{name}{base}: bucket bounds not ascending")
            if c2 < c1:
                raise FormatError(f"{name}{base}: buckets not cumulative")
        if g["sum"] is None or g["count"] is None:
            raise FormatError(f"{name}{base}: _sum or _count missing")
        if g["count"] != b[-1][1]:
            raise FormatError(f"{name}{base}: _count differs from the +Inf bucket")


def value(families, name, **labels):
    for sname, lab, v in families[name]["samples"]:
        if sname == name and all(lab.get(k) == x for k, x in labels.items()):
            return v
    return None


def scrape(mon, key=None):
    r = mon.request("GET", "/metrics", key=key)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse_metrics(r.content.decode("utf-8"))


# ---------------------------------------------------------------------------------------
# the reader itself must fail on what the format forbids


@pytest.mark.parametrize("text", [
    "x 1\n",                                                     # no HELP/TYPE
    "# TYPE x counter\nx 1\n",                                   # no HELP
    "# HELP x h\n# TYPE x counter\nx 1\nx 2\n",                  # duplicate series
    "# HELP x h\n# TYPE x counter\nx{a=\"1\",a=\"2\"} 1\n",      # label twice
    "# HELP x h\n# TYPE x counter\nx{a=\"\\t\"} 1\n",            # bad escape
    "# HELP x h\n# TYPE x counter\nx{a=1} 1\n",                  # unquoted label
    "# HELP x h\n# TYPE x counter\nx 1",                         # no final newline
    "# HELP x h\n# TYPE x histogram\nx_bucket{le=\"1\"} 2\nx_bucket{le=\"+Inf\"} 1\n"
    "x_sum 1\nx_count 1\n",                                      # not cumulative
    "# HELP x h\n# TYPE x histogram\nx_bucket{le=\"1\"} 1\nx_sum 1\nx_count 1\n",  # no +Inf
    "# HELP x h\n# TYPE x histogram\nx_bucket{le=\"+Inf\"} 2\nx_sum 1\nx_count 1\n",
    "# HELP x h\n# TYPE x counter\n# HELP y h\n# TYPE y gauge\ny 1\nx 1\n",  # wrong family
])
def test_strict_reader_refuses(text):
    with pytest.raises(FormatError):
        parse_metrics(text)


# ---------------------------------------------------------------------------------------
# logs


ZONE = """$ORIGIN ops.test.
$TTL 300
@     SOA ns1.ops.test. hostmaster.ops.test. 1 3600 900 604800 300
@     NS  ns1.ops.test.
ns1   A   127.0.0.1
watch A   192.0.2.11
"""


def test_change_and_error_lines(knot_factory, domainmon_factory):
    k = knot_factory({"ops.test.": ZONE})
    m = domainmon_factory(env=dns_env(k.server()))
    name = "watch.ops.test"
    add(m, name, record_types=["A"])
    # The first observation is a change too, marked first=true.
    wait_for(lambda: find_lines(m, msg="change recorded", domain=name, type="A"),
             timeout=20, what="the first observation's line")
    (first,) = find_lines(m, msg="change recorded", domain=name, type="A")
    assert first["level"] == "info" and first["first"] == "true", first
    assert first["added"] == '["192.0.2.11"]' and first["removed"] == "[]", first

    k.update("ops.test", ["update delete watch.ops.test. A 192.0.2.11",
                          "update add watch.ops.test. 300 A 192.0.2.12"])
    wait_for(lambda: find_lines(m, msg="change recorded", domain=name, first="false"),
             timeout=20, what="the change's line")
    (line,) = find_lines(m, msg="change recorded", domain=name, first="false")
    assert line["added"] == '["192.0.2.12"]' and line["removed"] == '["192.0.2.11"]', line
    assert line["svc"] == "dns" and line["status"] == "ok"

    k.stop()
    wait_for(lambda: find_lines(m, msg="domain in error", domain=name), timeout=20,
             what="the error warning")
    (warn,) = find_lines(m, msg="domain in error", domain=name)
    assert warn["level"] == "warn" and "A: " in warn["error"], warn
    assert domain(m, name)["status"] == "error"
    # Staying in error says nothing more: let two more scans fail first.
    seen = domain(m, name)["last_checked_at"]
    wait_for(lambda: domain(m, name)["last_checked_at"] != seen, timeout=20,
             what="another failed scan")
    k.start()
    wait_for(lambda: find_lines(m, msg="domain recovered", domain=name), timeout=20,
             what="the recovery line")
    assert len(find_lines(m, msg="domain in error", domain=name)) == 1
    assert find_lines(m, msg="domain recovered", domain=name)[0]["level"] == "info"
    # A failed lookup is never a removal: no change line came with the outage.
    assert len(find_lines(m, msg="change recorded", domain=name)) == 2


def test_api_writes_are_logged_with_the_key(domainmon_factory):
    m = domainmon_factory(env={"DM_DNS_SERVERS": "127.0.0.1:9", "DM_DEFAULT_CHECKS": "dns"})
    key = m.create_key("ci-writer", "write")
    r = m.request("POST", "/api/v1/domains", json={"name": "logged.example"}, key=key)
    assert r.status_code == 201, r.text
    r = m.request("PATCH", "/api/v1/domains/logged.example", json={"enabled": False}, key=key)
    assert r.status_code == 200, r.text
    r = m.request("PATCH", "/api/v1/domains/logged.example",
                  json={"tls_ports": [8443], "checks": ["dns", "tls"]}, key=key)
    assert r.status_code == 200, r.text
    r = m.request("DELETE", "/api/v1/domains/logged.example", key=key)
    assert r.status_code == 204, r.text
    wait_for(lambda: find_lines(m, msg="domain deleted"), timeout=5, what="the delete line")
    for msg in ("domain added", "domain updated", "domain deleted"):
        lines = find_lines(m, msg=msg, domain="logged.example")
        assert len(lines) == (2 if msg == "domain updated" else 1), lines
        for line in lines:
            assert line["key_name"] == "ci-writer" and int(line["key_id"]) > 0, line
    patches = find_lines(m, msg="domain updated")
    assert [p["fields"] for p in patches] == ["enabled", "checks,tls_ports"]


def test_json_log_format(knot_factory, domainmon_factory):
    k = knot_factory({"ops.test.": ZONE})
    m = domainmon_factory(env=dns_env(k.server(), DM_LOG_FORMAT="json"))
    add(m, "watch.ops.test", record_types=["A"])

    def change_objects():
        objs = [json.loads(line) for line in log_lines(m)]
        return [o for o in objs if o.get("msg") == "change recorded"]

    wait_for(change_objects, timeout=20, what="a change line in JSON")
    # Every line is one JSON object, fields in the logfmt order.
    objs = [json.loads(line) for line in log_lines(m)]
    assert all(list(o)[:4] == ["ts", "level", "svc", "msg"] for o in objs), objs[:3]
    (ch,) = change_objects()
    assert ch["domain"] == "watch.ops.test" and ch["type"] == "A" and ch["first"] is True
    assert json.loads(ch["added"]) == ["192.0.2.11"]
    requests = [o for o in objs if o.get("msg") == "request"]
    assert requests and isinstance(requests[0]["status"], int)


def test_bad_log_format_is_refused():
    m = DomainMon(env={"DM_LOG_FORMAT": "xml"})
    p = m.cli("all")
    m.cleanup()
    assert p.returncode == 2 and "DM_LOG_FORMAT" in p.stderr, p.stderr


# ---------------------------------------------------------------------------------------
# metrics


def test_metrics_format_and_values(knot_factory, domainmon_factory):
    k = knot_factory({"ops.test.": ZONE})
    m = domainmon_factory(env=dns_env(k.server()))
    fams = scrape(m, key=None)  # public, like the probes
    for name in ("dm_scans_total", "dm_scan_duration_seconds", "dm_dns_queries_in_flight",
                 "dm_task_queue_depth", "dm_task_redeliveries_total", "dm_changes_total",
                 "dm_http_requests_total", "dm_http_request_duration_seconds", "dm_store_up",
                 "dm_bus_up"):
        assert name in fams, name
    assert value(fams, "dm_store_up") == 1 and value(fams, "dm_bus_up") == 1
    assert fams["dm_scan_duration_seconds"]["type"] == "histogram"

    name = "watch.ops.test"
    add(m, name, record_types=["A"])
    for _ in range(3):
        assert m.request("GET", f"/api/v1/domains/{name}").status_code == 200
    assert m.request("GET", "/api/v1/domains/missing.example").status_code == 404

    def scanned():
        f = scrape(m)
        return f if (value(f, "dm_scans_total", check="dns", result="ok") or 0) >= 2 else None

    fams = wait_for(scanned, timeout=20, what="two scans counted")
    assert value(fams, "dm_changes_total", check="dns", type="A") == 1
    # Routes are counted by pattern, never by the raw path.
    assert value(fams, "dm_http_requests_total", route="/api/v1/domains/{name}",
                 method="GET", status="200") == 3
    assert value(fams, "dm_http_requests_total", route="/api/v1/domains/{name}",
                 method="GET", status="404") == 1
    assert value(fams, "dm_http_requests_total", route="/api/v1/domains", method="POST",
                 status="201") == 1
    assert not any(name in lab.get("route", "") for _, lab, _ in
                   fams["dm_http_requests_total"]["samples"])
    count = [v for s, lab, v in fams["dm_http_request_duration_seconds"]["samples"]
             if s.endswith("_count") and lab["route"] == "/api/v1/domains/{name}"]
    assert count == [4]
    scans = [v for s, lab, v in fams["dm_scan_duration_seconds"]["samples"]
             if s.endswith("_count")]
    assert scans and scans[0] >= 2
    # A made-up method and an unknown path stay bounded labels.
    r = m.request("BREW", "/no/such/path")
    assert r.status_code in (404, 405, 501), r.status_code

    k.update("ops.test", ["update delete watch.ops.test. A 192.0.2.11",
                          "update add watch.ops.test. 300 A 192.0.2.13"])
    fams = wait_for(lambda: (lambda f: f if value(f, "dm_changes_total", check="dns",
                                                   type="A") == 2 else None)(scrape(m)),
                    timeout=20, what="the change counted")
    k.stop()
    fams = wait_for(lambda: (lambda f: f if (value(f, "dm_scans_total", check="dns",
                                                    result="error") or 0) >= 1 else None)(
        scrape(m)), timeout=20, what="a failed scan counted")
    assert value(fams, "dm_changes_total", check="dns", type="A") == 2
    methods = {lab.get("method") for _, lab, _ in fams["dm_http_requests_total"]["samples"]}
    assert "BREW" not in methods, methods


def test_metrics_on_the_dns_service_probe(domainmon_factory):
    m = domainmon_factory(env={"DM_DNS_SERVERS": "127.0.0.1:9", "DM_DEFAULT_CHECKS": "dns"},
                          args=("dns-service",))
    fams = scrape(m)
    assert value(fams, "dm_store_up") == 1
    assert "dm_scans_total" in fams and "dm_task_queue_depth" in fams
    fams = scrape(m)
    assert value(fams, "dm_http_requests_total", route="/metrics", method="GET",
                 status="200") >= 1


def test_missing_bearer_is_named(domainmon_factory):
    m = domainmon_factory(env={"DM_DNS_SERVERS": "127.0.0.1:9", "DM_DEFAULT_CHECKS": "dns"})
    r = m.request("GET", "/api/v1/domains", key=None,
                  headers={"Authorization": m.admin_key})
    assert r.status_code == 401
    assert "Bearer" in r.json()["detail"] and "lacks" in r.json()["detail"], r.text
    r = m.request("GET", "/api/v1/domains", key="dmk_000000000000_nothing")
    assert r.status_code == 401 and r.json()["detail"] == "the API key is not valid"
    r = m.request("GET", "/api/v1/domains", key=None)
    assert r.status_code == 401 and "required" in r.json()["detail"]
