"""DNS monitoring end to end: the real binary, a real Knot DNS (and a small responder of our
own) on loopback, everything checked through the REST API.

Scans run every second (DM_SCAN_INTERVAL=1) with a short DNS timeout, so every wait below is
a poll with a deadline of a few intervals, never a fixed long sleep."""

import datetime
import json
import re
import sqlite3
import time
import urllib.parse

import dns.flags
import dns.message
import dns.query
import pytest

from conftest import IT_DATABASE, DomainMon, psql
from dnsfixtures import (  # noqa: F401 - fixtures are used by name
    BIG_TXT_VALUES,
    BULK_NAMES,
    knot,
    knot_factory,
    shuffle_responder,
    wait_for,
)

INTERVAL = 1  # seconds between scans of a domain
DEFAULT_TYPES = ["A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA", "CAA"]  # in type order
TYPE_NUMBERS = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28,
                "SRV": 33, "CAA": 257}


def dns_env(server, interval=INTERVAL):
    return {
        "DM_DNS_SERVERS": server,
        "DM_SCAN_INTERVAL": str(interval),
        "DM_MIN_INTERVAL": "1",
        "DM_DNS_TIMEOUT": "500ms",
        "DM_DNS_RETRIES": "1",
    }


def parse_time(s):
    assert isinstance(s, str), s
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def sql_literal(v):
    if isinstance(v, int):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


def db_rows(mon, sql, params=()):
    """The rows of a read-only query on the instance's database, SQLite or PostgreSQL.
    `sql` takes "?" for int and str parameters. PostgreSQL is read through psql: integers
    come back as int, anything else as its text (NULL as "")."""
    if not mon.on_postgres:
        with sqlite3.connect(f"file:{mon.db_path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute(sql, params).fetchall()
    parts = sql.split("?")
    assert len(parts) == len(params) + 1, sql
    text = parts[0] + "".join(sql_literal(p) + rest for p, rest in zip(params, parts[1:]))
    out = psql(text, mon.database_url)
    return [tuple(int(f) if re.fullmatch(r"-?[0-9]+", f) else f for f in line.split("|"))
            for line in out.splitlines()]


# ---------------------------------------------------------------------------------------
# a small client over the running instance


class Api:
    def __init__(self, mon):
        self.mon = mon

    def get(self, path, params=None, expect=200):
        r = self.mon.request("GET", path, params=params)
        assert r.status_code == expect, f"GET {path} {params}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def post(self, path, body=None, expect=(200, 201, 202)):
        r = self.mon.request("POST", path, json=body)
        expect = expect if isinstance(expect, tuple) else (expect,)
        assert r.status_code in expect, f"POST {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    # domains
    def add(self, name, **fields):
        return self.post("/api/v1/domains", {"name": name, **fields}, expect=201)

    def domain(self, name):
        return self.get(f"/api/v1/domains/{quote(name)}")

    def records(self, name):
        return self.get(f"/api/v1/domains/{quote(name)}/records")

    def records_by_type(self, name):
        return {r["type"]: r for r in self.records(name)["records"]}

    def history(self, name, **params):
        return self.get(f"/api/v1/domains/{quote(name)}/history", params=params or None)

    def history_all(self, name, **params):
        """Every entry, following cursors."""
        out = []
        cursor = None
        while True:
            p = dict(params)
            if cursor:
                p["cursor"] = cursor
            page = self.history(name, **p)
            out.extend(page["changes"])
            cursor = page["next_cursor"]
            if not cursor:
                return out

    # waiting on scans
    def checked_at(self, name):
        v = self.domain(name).get("last_checked_at")
        return parse_time(v) if v else None

    def wait_checked(self, name, after=None, timeout=10.0):
        """Waits until the domain has been checked (after `after`, when given); returns the
        new last_checked_at."""

        def check():
            t = self.checked_at(name)
            return t if t is not None and (after is None or t > after) else None

        return wait_for(check, timeout=timeout, interval=0.1,
                        what=f"a scan of {name} after {after}")

    def wait_scans(self, name, n, timeout=None):
        """Waits until `n` more scans of the domain have been written."""
        t = self.checked_at(name)
        for _ in range(n):
            t = self.wait_checked(name, after=t, timeout=timeout or 4 * INTERVAL + 5)
        return t


def quote(name):
    return urllib.parse.quote(name, safe="")


def changes_of(entries, rtype):
    return [c for c in entries if c["type"] == rtype]


def real_changes(entries):
    """Entries other than the first observation of a type."""
    return [c for c in entries if c["before"] is not None]


@pytest.fixture
def mon_factory(domainmon_factory):
    """Starts `domainmon all` with the given environment and returns an Api on it; every
    instance is stopped when the test ends, also on failure."""

    def start(env):
        return Api(domainmon_factory(env=env))

    return start


@pytest.fixture
def api(knot, mon_factory):
    """domainmon scanning the module's Knot every second."""
    return mon_factory(dns_env(knot.server()))


# ---------------------------------------------------------------------------------------
# the fixtures themselves: what the tests below rely on


def test_fixture_big_txt_needs_tcp(knot):
    q = dns.message.make_query("big.example.test.", "TXT", use_edns=True, payload=1232)
    r = dns.query.udp(q, "127.0.0.1", port=knot.port, timeout=2)
    assert r.flags & dns.flags.TC, "the 4 KB TXT set fits in UDP: the TCP path goes untested"
    r = dns.query.tcp(q, "127.0.0.1", port=knot.port, timeout=2)
    assert sorted(rd.to_text() for rd in r.answer[0]) == BIG_TXT_VALUES


def test_fixture_shuffle_responder_varies_its_answers(shuffle_responder):
    orders, owners = set(), set()
    for _ in range(10):
        q = dns.message.make_query("shuffle.test.", "A")
        r = dns.query.udp(q, "127.0.0.1", port=shuffle_responder.port, timeout=2)
        orders.add(tuple(rd.to_text() for rd in r.answer[0]))
        owners.add(r.answer[0].name.to_text())
    assert len(orders) > 1 and len(owners) > 1


# ---------------------------------------------------------------------------------------
# which checks run


def test_dns_check_runs_only_where_checks_name_it(api):
    """A domain whose checks leave out dns is never looked up for its records: nothing is
    stored for it while a DNS-checked domain next to it is scanned again and again. (Its
    name does not exist, so no other check has an address to reach either.)"""
    api.add("absent-tls-only.example.test", checks=["tls"])
    api.add("a-only.example.test")
    api.wait_scans("a-only.example.test", 2)
    d = api.domain("absent-tls-only.example.test")
    assert d["checks"] == ["tls"]
    assert d["last_checked_at"] is None and d["status"] == "pending"
    assert api.records("absent-tls-only.example.test")["records"] == []
    assert api.history("absent-tls-only.example.test")["changes"] == []


# ---------------------------------------------------------------------------------------
# records


def test_records_appear_with_canonical_values(api):
    api.add("example.test")
    api.add("a-only.example.test")
    api.add("www.example.test")
    for name in ("example.test", "a-only.example.test", "www.example.test"):
        api.wait_checked(name)

    doc = api.records("example.test")
    dom = api.domain("example.test")
    assert doc["domain"] == "example.test"
    assert doc["checked_at"] == dom["last_checked_at"]
    types = [r["type"] for r in doc["records"]]
    assert types == sorted(types, key=lambda t: TYPE_NUMBERS[t]), "records are not in type order"
    assert set(types) == set(DEFAULT_TYPES)
    recs = {r["type"]: r for r in doc["records"]}
    for r in doc["records"]:
        assert set(r) >= {"type", "ttl", "values", "status", "checked_at", "changed_at"}, r
        assert r["checked_at"] == dom["last_checked_at"], r
        assert r["changed_at"] is None or parse_time(r["changed_at"])

    assert recs["A"]["status"] == "ok"
    assert recs["A"]["values"] == ["192.0.2.1", "192.0.2.2"]
    assert recs["A"]["ttl"] == 300
    assert recs["AAAA"]["values"] == ["2001:db8::1"]
    assert recs["MX"]["values"] == ["10 mail.example.test.", "20 mail2.example.test."]
    # TXT: quoted, case kept, sorted by bytes
    assert recs["TXT"]["values"] == ['"Hello World" "second String"', '"v=spf1 -all"']
    assert recs["NS"]["values"] == ["ns1.example.test.", "ns2.example.test."]
    assert recs["CAA"]["values"] == ['0 issue "letsencrypt.org"']
    assert len(recs["SOA"]["values"]) == 1
    soa = recs["SOA"]["values"][0].split()
    assert soa[:2] == ["ns1.example.test.", "hostmaster.example.test."]
    assert soa[3:] == ["3600", "900", "604800", "300"]
    assert recs["CNAME"]["status"] == "nodata" and recs["CNAME"]["values"] == []
    for t in ("A", "AAAA", "MX", "TXT", "NS", "SOA", "CAA"):
        assert recs[t]["status"] == "ok", recs[t]
        assert "error" not in recs[t] or recs[t]["error"] is None

    # A name with an A record only: every other type is NODATA, an answer, not an error.
    recs = api.records_by_type("a-only.example.test")
    assert recs["A"] == {**recs["A"], "status": "ok", "values": ["192.0.2.10"]}
    for t in ("AAAA", "MX", "TXT", "NS", "SOA", "CAA", "CNAME"):
        assert recs[t]["status"] == "nodata", recs[t]
        assert recs[t]["values"] == []
    assert api.domain("a-only.example.test")["status"] == "ok"

    # An alias: the CNAME itself, and the target's records for the other types.
    recs = api.records_by_type("www.example.test")
    assert recs["CNAME"]["status"] == "ok"
    assert recs["CNAME"]["values"] == ["example.test."]
    assert recs["A"]["values"] == ["192.0.2.1", "192.0.2.2"]
    assert recs["MX"]["values"] == ["10 mail.example.test.", "20 mail2.example.test."]


def test_domain_object_shows_check_state(api):
    before = datetime.datetime.now(datetime.timezone.utc)
    api.add("a-only.example.test")
    checked = api.wait_checked("a-only.example.test")
    d = api.domain("a-only.example.test")
    for key in ("last_checked_at", "next_check_at", "status", "last_changed_at"):
        assert key in d, key
    assert d["status"] == "ok"
    assert checked >= before - datetime.timedelta(seconds=1)
    assert parse_time(d["next_check_at"]) > parse_time(d["last_checked_at"])
    # The first observation is the domain's first known state.
    assert d["last_changed_at"] is None or parse_time(d["last_changed_at"]) <= checked


def test_custom_record_types_are_honoured(api):
    d = api.add("srv.example.test", record_types=["SRV"])
    assert d["record_types"] == ["SRV"]
    api.wait_checked("srv.example.test")
    doc = api.records("srv.example.test")
    assert [r["type"] for r in doc["records"]] == ["SRV"]
    assert doc["records"][0]["status"] == "ok"
    assert doc["records"][0]["values"] == ["10 5 5060 sip.example.test."]
    # The name has an A record too, but A was not asked for.
    for c in api.history_all("srv.example.test"):
        assert c["type"] == "SRV"


def test_big_txt_set_arrives_whole_over_tcp(api):
    api.add("big.example.test", record_types=["TXT"])
    api.wait_checked("big.example.test")
    rec = api.records_by_type("big.example.test")["TXT"]
    assert rec["status"] == "ok", rec
    assert sum(len(v) for v in rec["values"]) > 4000
    assert rec["values"] == BIG_TXT_VALUES


def test_idn_domain_has_both_forms(api):
    d = api.add("bücher.example.test")
    assert d["name"] == "xn--bcher-kva.example.test"
    assert d["unicode_name"] == "bücher.example.test"
    api.wait_checked("xn--bcher-kva.example.test")
    for key in ("xn--bcher-kva.example.test", "bücher.example.test"):
        d = api.domain(key)
        assert d["name"] == "xn--bcher-kva.example.test"
        assert d["unicode_name"] == "bücher.example.test"
        doc = api.records(key)
        assert doc["domain"] == "xn--bcher-kva.example.test"
        recs = {r["type"]: r for r in doc["records"]}
        assert recs["A"]["values"] == ["192.0.2.80"]
        # non-ASCII bytes in TXT data are shown as \DDD escapes
        assert recs["TXT"]["values"] == ['"B\\195\\188cher"']
    h = api.history("bücher.example.test")
    assert all(c["domain"] == "xn--bcher-kva.example.test" for c in h["changes"])


# ---------------------------------------------------------------------------------------
# change detection


def test_changed_sets_give_one_history_entry_each(api, knot):
    name = "chg.example.test"
    api.add(name)
    api.wait_checked(name)
    api.wait_scans(name, 1)
    base = api.history_all(name)
    assert real_changes(base) == [], "changes recorded while nothing changed"
    first_ids = {c["id"] for c in base}

    knot.update("example.test", [
        "update delete chg.example.test. A 192.0.2.101",
        "update add chg.example.test. 300 A 192.0.2.102",
        "update add chg.example.test. 300 MX 20 MX2.Example.Test.",
        "update delete chg.example.test. TXT",
        'update add chg.example.test. 300 TXT "Version=2"',
    ])

    def new_entries():
        got = [c for c in api.history_all(name) if c["id"] not in first_ids]
        return got if {c["type"] for c in got} >= {"A", "MX", "TXT"} else None

    wait_for(new_entries, timeout=6 * INTERVAL + 5, what="A, MX and TXT changes")
    api.wait_scans(name, 3)
    new = [c for c in api.history_all(name) if c["id"] not in first_ids]
    assert sorted(c["type"] for c in new) == ["A", "MX", "TXT"], new

    by_type = {c["type"]: c for c in new}
    a = by_type["A"]
    assert a["domain"] == name and a["status"] == "ok"
    assert a["before"] == ["192.0.2.100", "192.0.2.101"]
    assert a["after"] == ["192.0.2.100", "192.0.2.102"]
    assert a["added"] == ["192.0.2.102"]
    assert a["removed"] == ["192.0.2.101"]
    mx = by_type["MX"]
    assert mx["before"] == ["10 mx1.example.test."]
    assert mx["after"] == ["10 mx1.example.test.", "20 mx2.example.test."]
    assert mx["added"] == ["20 mx2.example.test."]
    assert mx["removed"] == []
    txt = by_type["TXT"]
    assert txt["before"] == ['"version=1"']
    assert txt["after"] == ['"Version=2"']
    assert txt["added"] == ['"Version=2"']
    assert txt["removed"] == ['"version=1"']
    for c in new:
        parse_time(c["observed_at"])

    recs = api.records_by_type(name)
    assert recs["A"]["values"] == ["192.0.2.100", "192.0.2.102"]
    assert recs["TXT"]["values"] == ['"Version=2"']
    assert parse_time(recs["A"]["changed_at"]) == parse_time(a["observed_at"])
    d = api.domain(name)
    assert parse_time(d["last_changed_at"]) >= parse_time(a["observed_at"])


def test_ttl_changed_in_the_zone_shows_at_once_without_history(api, knot):
    """Knot answers with AA: its TTL is the zone's own. A TTL-only change is no history
    entry, but /records shows the new TTL within an interval or two."""
    name = "ttl.example.test"
    api.add(name, record_types=["A"])
    api.wait_checked(name)
    base = api.history_all(name)
    changed_at = api.records_by_type(name)["A"]["changed_at"]
    assert api.records_by_type(name)["A"]["ttl"] == 300
    for ttl in (3600, 60):
        knot.update("example.test", [
            "update delete ttl.example.test. A",
            f"update add ttl.example.test. {ttl} A 192.0.2.110",
        ])
        assert knot.query(name, "A") == ["192.0.2.110"]
        wait_for(lambda: api.records_by_type(name)["A"]["ttl"] == ttl,
                 timeout=3 * INTERVAL + 5, what=f"TTL {ttl} in /records")
    api.wait_scans(name, 2)
    assert api.history_all(name) == base
    rec = api.records_by_type(name)["A"]
    assert rec["values"] == ["192.0.2.110"] and rec["status"] == "ok"
    assert rec["ttl"] == 60
    assert rec["changed_at"] == changed_at, "a TTL alone moved the change time"


def test_resolver_ttl_countdown_costs_no_write(shuffle_responder, mon_factory):
    """A resolver's cache counts its TTL down between scans: no history, and the current
    rows and fingerprint are not written again."""
    api = mon_factory(dns_env(shuffle_responder.server()))
    name = "shuffle.test"
    api.add(name, record_types=["A", "MX"])
    api.wait_checked(name)

    def stored():
        fp = db_rows(api.mon, "SELECT dns_fp FROM domains WHERE name = ?", (name,))
        rows = db_rows(api.mon, "SELECT type, ttl, checked_at FROM dns_current, domains "
                       "WHERE domains.id = domain_id AND name = ? ORDER BY type", (name,))
        return fp, rows

    before = stored()
    ttl = api.records_by_type(name)["A"]["ttl"]
    time.sleep(2.2)  # the TTL the responder sends is now at least two seconds lower
    api.wait_scans(name, 3)
    assert stored() == before, "a countdown TTL rewrote the current rows"
    assert api.records_by_type(name)["A"]["ttl"] == ttl
    assert real_changes(api.history_all(name)) == []


def test_nxdomain_is_recorded_once(api, knot):
    gone, missing = "gone.example.test", "missing.example.test"
    api.add(gone, record_types=["A"])
    api.add(missing)
    api.wait_checked(gone)
    api.wait_checked(missing)
    base = api.history_all(gone)
    assert real_changes(base) == []

    knot.update("example.test", ["update delete gone.example.test. A"])

    wait_for(lambda: real_changes(api.history_all(gone)), timeout=6 * INTERVAL + 5,
             what="the NXDOMAIN change")
    api.wait_scans(gone, 3)
    entries = real_changes(api.history_all(gone))
    assert len(entries) == 1, entries
    c = entries[0]
    assert c["type"] == "A" and c["status"] == "nxdomain"
    assert c["before"] == ["192.0.2.120"]
    assert c["after"] == [] and c["added"] == [] and c["removed"] == ["192.0.2.120"]
    rec = api.records_by_type(gone)["A"]
    assert rec["status"] == "nxdomain" and rec["values"] == []
    assert api.domain(gone)["status"] == "ok", "NXDOMAIN is an answer, not a check error"

    # A name that never existed: NXDOMAIN for every type, and at most its first observation
    # in the history, never repeated.
    recs = api.records_by_type(missing)
    assert {r["status"] for r in recs.values()} == {"nxdomain"}, recs
    hist = api.history_all(missing)
    assert real_changes(hist) == []
    for t in DEFAULT_TYPES:
        entries = changes_of(hist, t)
        assert len(entries) <= 1, entries
        for e in entries:
            assert e["after"] == [] and e["status"] == "nxdomain"


def test_stopped_server_gives_errors_and_keeps_values(knot_factory, mon_factory):
    k = knot_factory()
    api = mon_factory(dns_env(k.server()))
    name = "a-only.example.test"
    api.add(name, record_types=["A", "MX"])
    api.wait_checked(name)
    api.wait_scans(name, 1)
    base = api.history_all(name)
    assert api.domain(name)["status"] == "ok"

    k.stop()

    def errored():
        d = api.domain(name)
        recs = api.records_by_type(name)
        statuses = (d["status"], recs["A"]["status"], recs["MX"]["status"])
        if statuses == ("error", "error", "error"):
            return d, recs
        return None

    d, recs = wait_for(errored, timeout=8 * INTERVAL + 5, what="check errors while Knot is down")
    assert d.get("status_error"), d
    assert recs["A"]["values"] == ["192.0.2.10"], "a failed lookup must keep the last values"
    assert recs["A"].get("error"), recs["A"]
    assert recs["MX"]["values"] == []
    assert api.history_all(name) == base, "a failed lookup was recorded as a change"
    api.wait_scans(name, 2)
    assert api.history_all(name) == base

    k.start()

    def healthy():
        d = api.domain(name)
        recs = api.records_by_type(name)
        return (d["status"], recs["A"]["status"], recs["MX"]["status"]) == ("ok", "ok", "nodata")

    wait_for(healthy, timeout=8 * INTERVAL + 5, what="status ok after Knot is back")
    api.wait_scans(name, 2)
    assert api.history_all(name) == base, "spurious history after the server came back"
    recs = api.records_by_type(name)
    assert recs["A"]["values"] == ["192.0.2.10"]
    assert not recs["A"].get("error")


def test_first_answer_after_failed_lookups_is_a_first_observation(shuffle_responder,
                                                                    mon_factory):
    """A domain whose first lookups all fail has no history; its first real answer starts
    the history with `before: null`, not as a change from an empty set."""
    shuffle_responder.set_mode("servfail")
    api = mon_factory(dns_env(shuffle_responder.server()))
    name = "shuffle.test"
    api.add(name, record_types=["A", "MX"])
    api.wait_checked(name)
    api.wait_scans(name, 2)
    d = api.domain(name)
    assert d["status"] == "error" and d["status_error"], d
    recs = api.records_by_type(name)
    for t in ("A", "MX"):
        assert recs[t]["status"] == "error" and recs[t]["values"] == [], recs[t]
        assert recs[t]["changed_at"] is None, "a type never answered has not changed"
    assert api.history_all(name) == []

    shuffle_responder.set_mode("ok")
    wait_for(lambda: api.domain(name)["status"] == "ok", timeout=8 * INTERVAL + 5,
             what="the first real answer")
    api.wait_scans(name, 2)
    hist = api.history_all(name)
    assert sorted(c["type"] for c in hist) == ["A", "MX"], hist
    for c in hist:
        assert c["before"] is None, c
        assert c["after"] == shuffle_responder.expected(c["type"])
        assert c["added"] == c["after"] and c["removed"] == [], c
    recs = api.records_by_type(name)
    assert recs["A"]["changed_at"] is not None


# ---------------------------------------------------------------------------------------
# a responder that shuffles, mixes case and counts TTLs down


def test_shuffled_mixed_case_answers_give_no_change(shuffle_responder, mon_factory):
    api = mon_factory(dns_env(shuffle_responder.server()))
    name = "shuffle.test"
    api.add(name)
    api.wait_checked(name)
    first = api.history_all(name)
    assert real_changes(first) == []
    api.wait_scans(name, 15, timeout=4 * INTERVAL + 5)
    hist = api.history_all(name)
    assert real_changes(hist) == [], "answer order, name case or TTL was taken for a change"
    assert hist == first
    recs = api.records_by_type(name)
    for t in ("A", "AAAA", "MX", "TXT", "NS", "SOA", "CAA"):
        assert recs[t]["status"] == "ok", recs[t]
        assert recs[t]["values"] == shuffle_responder.expected(t), t
    assert recs["CNAME"]["status"] == "nodata"
    # names lower-cased, text kept as it was
    assert recs["MX"]["values"] == ["10 mx1.shuffle.test.", "20 mx2.shuffle.test.",
                                    "30 mx3.shuffle.test."]
    assert '"Case Kept"' in recs["TXT"]["values"]
    assert shuffle_responder.queries >= 15 * 8


def test_servfail_and_silence_are_errors_not_removals(shuffle_responder, mon_factory):
    api = mon_factory(dns_env(shuffle_responder.server()))
    name = "shuffle.test"
    api.add(name, record_types=["A", "MX"])
    api.wait_checked(name)
    base = api.history_all(name)
    for mode in ("servfail", "silent"):
        shuffle_responder.set_mode(mode)
        t = api.checked_at(name)

        def errored():
            recs = api.records_by_type(name)
            ok = api.domain(name)["status"] == "error" and recs["A"]["status"] == "error"
            return recs if ok and api.checked_at(name) > t else None

        recs = wait_for(errored, timeout=8 * INTERVAL + 5, what=f"errors on {mode}")
        assert recs["A"]["values"] == shuffle_responder.expected("A")
        assert recs["A"].get("error")
        assert api.history_all(name) == base
        shuffle_responder.set_mode("ok")
        wait_for(lambda: api.domain(name)["status"] == "ok", timeout=8 * INTERVAL + 5,
                 what="ok again")
    api.wait_scans(name, 2)
    assert api.history_all(name) == base


# ---------------------------------------------------------------------------------------
# many domains, manual scans


def test_bulk_import_is_scanned_within_one_interval(api):
    r = api.post("/api/v1/domains/import", {"names": BULK_NAMES}, expect=200)
    assert r["added"] == 100, r
    # The first scan of a new domain is due at once; every one of the 100 must be checked
    # within the first scan window plus one interval.
    deadline = time.monotonic() + 2 * INTERVAL + 5

    def all_checked():
        seen = {}
        cursor = None
        while True:
            params = {"limit": 100}
            if cursor:
                params["cursor"] = cursor
            page = api.get("/api/v1/domains", params=params)
            for d in page["domains"]:
                seen[d["name"]] = d
            cursor = page.get("next_cursor")
            if not cursor:
                break
        missing = [n for n in BULK_NAMES if not (seen.get(n) or {}).get("last_checked_at")]
        return seen if not missing else None

    wait_for(all_checked, timeout=max(1.0, deadline - time.monotonic()),
             what="all 100 imported domains checked")
    for i in (1, 37, 100):
        rec = api.records_by_type(f"d{i:03d}.bulk.test")["A"]
        assert rec["values"] == [f"198.51.100.{i}"]


def unchecked_due_later(mon, when_ms):
    """Enabled domains never scanned whose next check lies after `when_ms` (unix ms): a
    claim moved them to their next slot and no scan ever came."""
    return [r[0] for r in db_rows(mon, "SELECT name FROM domains WHERE enabled AND "
                                  "last_checked_at IS NULL AND next_check_at > ?", (when_ms,))]


def test_graceful_stop_leaves_every_claimed_domain_due(knot, mon_factory):
    """Many domains, few queries in flight: at the stop most claimed domains are still
    queued (in task messages, in the loop's intake, behind the resolver's window). Every
    enabled domain must come out scanned or due by the stop: none may be pushed to its next
    slot (an hour away here) unscanned."""
    names = [f"s{i:04d}.stop.test" for i in range(2000)]
    env = {
        # The harness's default DNS server never answers: nothing finishes before the stop.
        "DM_SCAN_INTERVAL": "3600s",
        "DM_MIN_INTERVAL": "3600s",
        "DM_DNS_TIMEOUT": "30s",
        "DM_DNS_LOOPS": "1",
        "DM_DNS_CONCURRENCY": "5",
    }
    api = mon_factory(env)
    mon = api.mon
    r = api.post("/api/v1/domains/import", {"names": names, "record_types": ["A"]}, expect=200)
    assert r["added"] == len(names), r
    # Stop at once (the scheduler is still publishing), then again after it has claimed
    # all it may: both must leave everything due.
    for pause in (0.0, 1.5):
        time.sleep(pause)
        mon.stop()
        stopped_ms = int(time.time() * 1000)
        left = unchecked_due_later(mon, stopped_ms)
        assert not left, f"{len(left)} claimed domains were pushed to their next slot: {left[:5]}"
        mon.start()

    mon.stop()
    mon.extra_env.update(dns_env(knot.server(), interval=3600))
    mon.extra_env["DM_MIN_INTERVAL"] = "3600s"
    mon.start()

    def unchecked():
        left, cursor = [], None
        while True:
            params = {"limit": 1000}
            if cursor:
                params["cursor"] = cursor
            page = api.get("/api/v1/domains", params=params)
            left += [d["name"] for d in page["domains"] if not d.get("last_checked_at")]
            cursor = page.get("next_cursor")
            if not cursor:
                return left

    wait_for(lambda: not unchecked(), timeout=30, interval=0.2,
             what="every domain scanned after the graceful stop")


@pytest.mark.skipif(IT_DATABASE == "postgres",
                    reason="the outage is an SQLite write lock; on PostgreSQL a lock makes a "
                    "commit wait instead of failing (test_store_pg covers server restarts)")
def test_store_outage_backs_off_without_resolving_again(shuffle_responder, mon_factory):
    """The database is locked while scan results wait to be written: the results are kept
    and written once it is free again. No task is resolved a second time meanwhile, the
    outage and the recovery are logged once each, and nothing is lost or doubled."""
    shuffle_responder.delay = 1.0  # the answers arrive after the lock is taken
    shuffle_responder.wildcard = True  # one query per lookup
    env = dns_env(shuffle_responder.server(), interval=3600)
    env.update({"DM_MIN_INTERVAL": "3600s", "DM_DNS_TIMEOUT": "10s", "DM_DNS_RETRIES": "0"})
    api = mon_factory(env)
    mon = api.mon
    names = [f"o{i:02d}.shuffle.test" for i in range(30)]
    api.post("/api/v1/domains/import", {"names": names, "record_types": ["A"]}, expect=200)
    wait_for(lambda: shuffle_responder.queries >= len(names), timeout=5,
             what="the first lookups")

    db = sqlite3.connect(mon.db_path, timeout=10, isolation_level=None)
    try:
        db.execute("BEGIN EXCLUSIVE")
        time.sleep(12)  # two commit attempts wait out the busy timeout and fail
        during = shuffle_responder.queries
        db.execute("COMMIT")
    finally:
        db.close()
    assert during == len(names), f"{during - len(names)} lookups repeated during the outage"

    def landed():
        hist = {}
        cursor = None
        while True:
            params = {"limit": 1000}
            if cursor:
                params["cursor"] = cursor
            page = api.get("/api/v1/changes", params=params)
            for c in page["changes"]:
                hist.setdefault(c["domain"], []).append(c)
            cursor = page["next_cursor"]
            if not cursor:
                break
        return hist if set(hist) == set(names) else None

    hist = wait_for(landed, timeout=40, interval=0.2, what="the results after the outage")
    time.sleep(1)
    hist = landed()
    for name in names:
        entries = hist[name]
        assert len(entries) == 1, entries
        assert entries[0]["before"] is None and entries[0]["status"] == "ok"
        assert api.domain(name)["last_checked_at"]
    assert max(shuffle_responder.counts.values()) == 1, "a name was resolved twice"
    assert shuffle_responder.queries == len(names)
    log = mon.stderr_text()
    assert log.count("store unavailable") == 1, log[-3000:]
    assert log.count("store reachable again") == 1, log[-3000:]


def test_history_retention_prunes_old_entries(knot, mon_factory):
    """DM_HISTORY_RETENTION removes history entries older than the retention, in batches,
    and keeps the newer ones and the current records."""
    api = mon_factory(dns_env(knot.server(), interval=3600))
    mon = api.mon
    for n in BULK_NAMES[:3]:
        api.add(n, record_types=["A", "MX"])
    for n in BULK_NAMES[:3]:
        api.wait_checked(n)
    mon.stop()
    # Age the entries of the first domain by two hours, and add 2,500 old entries to the
    # second, more than two batches.
    old_ms = int(time.time() * 1000) - 2 * 3600 * 1000
    ids = {name: db_rows(mon, "SELECT id FROM domains WHERE name = ?", (name,))[0][0]
           for name in BULK_NAMES[:3]}
    if mon.on_postgres:
        psql(f"UPDATE dns_changes SET observed_at = {old_ms} "
             f"WHERE domain_id = {ids[BULK_NAMES[0]]}; "
             "INSERT INTO dns_changes (domain_id, type, status, observed_at, before, after, "
             f"added, removed) SELECT {ids[BULK_NAMES[1]]}, 1, 0, {old_ms} - i, '[]', '[]', "
             "'[]', '[]' FROM generate_series(0, 2499) AS i", mon.database_url)
    else:
        with sqlite3.connect(mon.db_path, timeout=10) as db:
            db.execute("UPDATE dns_changes SET observed_at = ? WHERE domain_id = ?",
                       (old_ms, ids[BULK_NAMES[0]]))
            db.executemany(
                "INSERT INTO dns_changes (domain_id, type, status, observed_at, before, "
                "after, added, removed) VALUES (?, 1, 0, ?, '[]', '[]', '[]', '[]')",
                [(ids[BULK_NAMES[1]], old_ms - i) for i in range(2500)])
    mon.extra_env["DM_HISTORY_RETENTION"] = "1h"
    mon.start()

    def counts():
        return {name: db_rows(mon, "SELECT count(*) FROM dns_changes WHERE domain_id = ?",
                              (i,))[0][0] for name, i in ids.items()}

    wait_for(lambda: counts() == {BULK_NAMES[0]: 0, BULK_NAMES[1]: 2, BULK_NAMES[2]: 2},
             timeout=20, interval=0.2, what="old history pruned, recent history kept")
    recs = api.records_by_type(BULK_NAMES[0])
    assert recs["A"]["values"] == ["198.51.100.1"]
    assert "pruned history" in mon.stderr_text()


def test_manual_scan_is_queued_and_runs(knot, mon_factory):
    # A day between scans: only the manual scan can explain a second one.
    api = mon_factory(dns_env(knot.server(), interval=86400))
    name = "a-only.example.test"
    api.add(name)
    first = api.wait_checked(name)  # a new domain is due at once
    # The next slot lies somewhere in the coming day (each domain has its own phase). In the
    # rare case that it is close, let that scan pass first: the slot after it is a day on.
    next_at = parse_time(api.domain(name)["next_check_at"])
    if next_at < first + datetime.timedelta(seconds=30):
        first = api.wait_checked(name, after=first, timeout=40)
        next_at = parse_time(api.domain(name)["next_check_at"])
    assert next_at > first + datetime.timedelta(seconds=30), "long interval not applied"
    time.sleep(0.2)
    assert api.checked_at(name) == first

    r = api.mon.request("POST", f"/api/v1/domains/{name}/scan")
    assert r.status_code == 202, r.text
    assert r.json() == {"status": "queued"}
    api.wait_checked(name, after=first, timeout=5)

    r = api.mon.request("POST", "/api/v1/domains/nope.example.test/scan")
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("application/problem+json")

    # reading needs the read scope, asking for a scan the write scope
    reader = api.mon.create_key("reader", "read")
    r = api.mon.request("POST", f"/api/v1/domains/{name}/scan", key=reader)
    assert r.status_code == 403, r.text
    for path in (f"/api/v1/domains/{name}/records", f"/api/v1/domains/{name}/history",
                 "/api/v1/changes"):
        assert api.mon.request("GET", path, key=reader).status_code == 200, path
        assert api.mon.request("GET", path, key=None).status_code == 401, path


def test_openapi_document_lists_dns_routes(domainmon):
    doc = domainmon.request("GET", "/openapi.json", key=None).json()
    paths = doc["paths"]
    assert {"get"} <= set(paths["/api/v1/domains/{name}/records"])
    assert {"get"} <= set(paths["/api/v1/domains/{name}/history"])
    assert {"post"} <= set(paths["/api/v1/domains/{name}/scan"])
    assert {"get"} <= set(paths["/api/v1/changes"])
    for schema in ("Records", "RecordSet", "Change", "ChangeList"):
        assert schema in doc["components"]["schemas"], schema


# ---------------------------------------------------------------------------------------
# history queries


@pytest.fixture(scope="module")
def history_setup(knot):
    """One instance with three domains whose A sets change one after the other:
    hist1 first, hist3 last. Yields (api, {name: the change entry})."""
    m = DomainMon(env=dns_env(knot.server()))
    try:
        m.start()
        api = Api(m)
        names = [f"hist{i}.example.test" for i in range(1, 4)]
        for n in names:
            api.add(n, record_types=["A"])
        for n in names:
            api.wait_checked(n)
        changes = {}
        for i, n in enumerate(names, start=1):
            knot.update("example.test", [f"update add {n}. 300 A 198.18.0.{i}"])

            def changed(n=n):
                real = real_changes(api.history_all(n))
                return real[0] if real else None

            changes[n] = wait_for(changed, timeout=6 * INTERVAL + 5, what=f"change of {n}")
        yield api, changes
        m.stop()
    finally:
        m.cleanup()


def test_changes_across_domains_newest_first_with_paging(history_setup):
    api, changes = history_setup
    everything = api.get("/api/v1/changes", params={"limit": 1000})
    assert everything["next_cursor"] is None
    ids = [c["id"] for c in everything["changes"]]
    assert ids == sorted(ids, reverse=True), "not newest first"
    assert len(set(ids)) == len(ids)
    times = [parse_time(c["observed_at"]) for c in everything["changes"]]
    assert times == sorted(times, reverse=True)
    real = [c for c in everything["changes"] if c["before"] is not None]
    assert [c["domain"] for c in real] == ["hist3.example.test", "hist2.example.test",
                                            "hist1.example.test"]
    for c in real:
        assert c == changes[c["domain"]]

    # pages of 2 give the same list, each entry once
    paged = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/api/v1/changes", params=params)
        assert len(page["changes"]) <= 2
        paged.extend(page["changes"])
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
        assert pages < 100
    assert [c["id"] for c in paged] == ids
    assert pages >= 3

    # filters across domains
    only_a = api.get("/api/v1/changes", params={"type": "A"})
    assert {c["type"] for c in only_a["changes"]} == {"A"}
    assert api.get("/api/v1/changes", params={"type": "MX"})["changes"] == []
    since = changes["hist2.example.test"]["observed_at"]
    got = api.get("/api/v1/changes", params={"since": since})["changes"]
    assert [c["domain"] for c in real_changes(got)] == ["hist3.example.test", "hist2.example.test"]


def test_history_filters(history_setup):
    api, changes = history_setup
    name = "hist2.example.test"
    change = changes[name]
    full = api.history(name)
    assert full["next_cursor"] is None
    entries = full["changes"]
    assert entries[0] == change, "newest first"
    assert change["before"] == ["192.0.2.132"]
    assert change["after"] == ["192.0.2.132", "198.18.0.2"]
    assert change["added"] == ["198.18.0.2"] and change["removed"] == []
    assert all(c["domain"] == name for c in entries)

    assert api.history(name, type="A")["changes"] == entries
    assert api.history(name, type="a")["changes"] == entries
    assert api.history(name, type="MX")["changes"] == []

    t = change["observed_at"]
    assert api.history(name, since=t)["changes"] == [change]
    older = api.history(name, until=t)["changes"]
    assert change not in older and len(older) == len(entries) - 1
    later = (parse_time(t) + datetime.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert api.history(name, since=later)["changes"] == []
    assert api.history(name, since="2000-01-01")["changes"] == entries

    page = api.history(name, limit=1)
    assert page["changes"] == [entries[0]]
    if len(entries) > 1:
        assert page["next_cursor"]
        page2 = api.history(name, limit=1, cursor=page["next_cursor"])
        assert page2["changes"] == [entries[1]]
    assert api.history_all(name, limit=1) == entries

    # bad parameters: 400 problems that name the parameter
    for params, field in (
        ({"type": "BOGUS"}, "type"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-45"}, "until"),
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "!!!"}, "cursor"),
        ({"colour": "blue"}, "colour"),
    ):
        for path in (f"/api/v1/domains/{name}/history", "/api/v1/changes"):
            r = api.mon.request("GET", path, params=params)
            assert r.status_code == 400, (path, params, r.text)
            assert r.headers["Content-Type"].startswith("application/problem+json")
            assert field in json.dumps(r.json()), (params, r.text)

    r = api.mon.request("GET", "/api/v1/domains/nope.example.test/history")
    assert r.status_code == 404
    r = api.mon.request("GET", "/api/v1/domains/nope.example.test/records")
    assert r.status_code == 404
