"""The monitor against DNS servers that misbehave: referrals and lame replies instead of
answers, a server that drops EDNS queries, one of two servers dead, every server dead with
500 domains, a server that does not echo the name's case (DNS 0x20). In every case what
matters is what is recorded: a reply that is not an answer is a check error, never a
removal, and a server that comes right again causes no spurious change.

Scans run every second with short DNS budgets; every wait is a poll with a generous
deadline, and nothing here asserts on speed."""

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import pytest

from dnsfixtures import knot, shuffle_responder, wait_for  # noqa: F401 - fixtures by name
from hostile import HostileServer, closed_port
from test_dns import Api, real_changes

INTERVAL = 1
SCAN_WAIT = 8 * INTERVAL + 10  # a few scans, on a loaded machine


def env_for(servers, timeout="500ms", retries=1, **extra):
    e = {
        "DM_DNS_SERVERS": servers,
        "DM_SCAN_INTERVAL": str(INTERVAL),
        "DM_MIN_INTERVAL": "1",
        "DM_DNS_TIMEOUT": timeout,
        "DM_DNS_RETRIES": str(retries),
    }
    e.update(extra)
    return e


@pytest.fixture
def hostile():
    s = HostileServer()
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def mon_factory(domainmon_factory):
    def start(env):
        return Api(domainmon_factory(env=env))

    return start


def wait_status(api, name, status, what, pred=None):
    def check():
        d = api.domain(name)
        if d["status"] != status:
            return None
        recs = api.records_by_type(name)
        if pred is not None and not pred(d, recs):
            return None
        return d, recs

    return wait_for(check, timeout=SCAN_WAIT, what=what)


def wait_quiet(api, name, count, what, timeout=SCAN_WAIT * 3):
    """Waits until count() stops growing over a whole scan of the domain. Two scans are
    waited for: the first may have begun before count() was read, the second has not."""

    def quiet():
        before = count()
        api.wait_scans(name, 2)
        return count() == before

    return wait_for(quiet, timeout=timeout, interval=0, what=what)


# ---------------------------------------------------------------------------------------
# the fixtures: what the tests below rely on


def test_fixture_hostile_server_modes(hostile):
    def ask(name="hostile.test.", rtype="A", edns=True):
        q = dns.message.make_query(name, rtype, use_edns=0 if edns else False)
        return dns.query.udp(q, "127.0.0.1", port=hostile.port, timeout=2)

    r = ask()
    assert r.flags & dns.flags.AA and sorted(rd.to_text() for rd in r.answer[0]) == \
        hostile.expected("A")
    assert ask(rtype="AAAA").authority[0].rdtype == dns.rdatatype.SOA
    hostile.set_mode("referral")
    r = ask()
    assert not r.flags & dns.flags.AA and not r.answer
    assert r.authority[0].rdtype == dns.rdatatype.NS
    hostile.set_mode("lame")
    r = ask()
    assert not r.flags & (dns.flags.AA | dns.flags.RA) and not r.answer and not r.authority
    hostile.set_mode("edns-drop")
    assert ask(edns=False).answer
    with pytest.raises(dns.exception.Timeout):
        ask()
    hostile.set_mode("lower-case")
    r = ask("HoStIlE.TeSt.")
    assert r.question[0].name.to_text() == "hostile.test."


def test_fixture_knot_echoes_the_name_case(knot):
    """0x20 is on for Knot and the shuffle responder because they echo the case."""
    q = dns.message.make_query("ExAmPle.TEST.", "A")
    r = dns.query.udp(q, "127.0.0.1", port=knot.port, timeout=2)
    assert r.question[0].name.to_text() == "ExAmPle.TEST."


# ---------------------------------------------------------------------------------------
# replies that are not answers


@pytest.mark.parametrize("mode,reason", [("referral", "referral"), ("lame", "lame")])
def test_reply_without_answer_is_an_error_not_a_removal(hostile, mon_factory, mode, reason):
    api = mon_factory(env_for(hostile.server()))
    name = "hostile.test"
    api.add(name, record_types=["A", "MX", "TXT"])
    wait_status(api, name, "ok", "the first answers",
                lambda d, recs: recs["A"]["values"] == hostile.expected("A"))
    base = api.history_all(name)
    assert real_changes(base) == []

    hostile.set_mode(mode)
    d, recs = wait_status(api, name, "error", f"errors from the {mode} server",
                          lambda d, recs: all(recs[t]["status"] == "error" for t in recs))
    assert reason in d["status_error"], d
    for t in ("A", "MX", "TXT"):
        assert reason in recs[t]["error"], recs[t]
        assert recs[t]["values"] == hostile.expected(t), "a reply without answer removed values"
    api.wait_scans(name, 2)
    assert api.history_all(name) == base, f"a {mode} reply was recorded as a change"

    hostile.set_mode("ok")
    wait_status(api, name, "ok", "answers again",
                lambda d, recs: all(recs[t]["status"] == "ok" for t in recs))
    api.wait_scans(name, 2)
    assert api.history_all(name) == base, "spurious change after the server was fixed"
    recs = api.records_by_type(name)
    for t in ("A", "MX", "TXT"):
        assert recs[t]["values"] == hostile.expected(t)
        assert not recs[t].get("error")


# ---------------------------------------------------------------------------------------
# EDNS


def test_server_dropping_edns_queries(hostile, mon_factory):
    hostile.set_mode("edns-drop")
    # One scanner loop: one resolver learns about the server (each loop learns on its own).
    api = mon_factory(env_for(hostile.server(), timeout="2s", retries=3, DM_DNS_LOOPS="1"))
    name = "hostile.test"
    api.add(name)
    d, recs = wait_status(api, name, "ok", "answers without EDNS")
    for t in ("A", "MX", "TXT", "NS", "SOA"):
        assert recs[t]["values"] == hostile.expected(t), recs[t]
    assert recs["AAAA"]["status"] == "nodata"
    # The server is learnt: a whole scan goes out without a single query with EDNS (before,
    # the first try of every lookup carries it).
    wait_quiet(api, name, lambda: hostile.stats()["edns"], "no more queries with EDNS")
    assert api.domain(name)["status"] == "ok"
    assert real_changes(api.history_all(name)) == []


# ---------------------------------------------------------------------------------------
# dead servers


@pytest.mark.parametrize("dead", ["closed-port", "silent"])
def test_one_of_two_servers_dead(hostile, mon_factory, dead):
    silent = None
    if dead == "silent":
        silent = HostileServer(mode="silent").start()
        first = silent.server()
    else:
        first = f"127.0.0.1:{closed_port()}"
    try:
        api = mon_factory(env_for(f"{first},{hostile.server()}", timeout="2s", retries=2,
                                  DM_DNS_LOOPS="1"))
        name = "hostile.test"
        api.add(name)
        d, recs = wait_status(api, name, "ok", "answers from the live server")
        assert recs["A"]["values"] == hostile.expected("A")
        base = api.history_all(name)
        if silent is not None:
            # Marked down, it is probed, and gets nothing else from then on.
            wait_for(lambda: silent.stats()["probes"] > 0, timeout=SCAN_WAIT * 2,
                     what="probes of the dead server")
            st = silent.stats()
            api.wait_scans(name, 2)
            assert silent.stats()["queries"] - silent.stats()["probes"] == \
                st["queries"] - st["probes"], "lookups sent to a server marked down"
            # The log says which server went down, once.
            wait_for(lambda: f"server={first}" in api.mon.stderr_text(), timeout=10,
                     what="a log line naming the dead server")
            log = api.mon.stderr_text()
            assert log.count("DNS server marked down") == 1, log[-3000:]
        api.wait_scans(name, 3)
        assert api.domain(name)["status"] == "ok"
        assert api.history_all(name) == base
    finally:
        if silent is not None:
            silent.stop()


def test_all_servers_dead_500_domains(mon_factory):
    silent = HostileServer(mode="silent").start()
    try:
        api = mon_factory(env_for(f"127.0.0.1:{closed_port()},{silent.server()}"))
        names = [f"d{i:03d}.dead.test" for i in range(500)]
        r = api.post("/api/v1/domains/import", {"names": names}, expect=200)
        assert r["added"] == 500, r

        def domains():
            out, cursor = {}, None
            while True:
                params = {"limit": 1000}
                if cursor:
                    params["cursor"] = cursor
                page = api.get("/api/v1/domains", params=params)
                out.update({d["name"]: d for d in page["domains"]})
                cursor = page.get("next_cursor")
                if not cursor:
                    return out

        def all_failed():
            ds = domains()
            bad = [n for n in names if ds[n]["status"] != "error"]
            return ds if not bad else None

        # One interval plus the lookup budget on a quiet machine; generous here.
        ds = wait_for(all_failed, timeout=60, interval=0.5, what="every domain in error")
        assert all(ds[n].get("status_error") for n in names)
        # Lookups fail at once once both servers are marked down.
        wait_for(lambda: any("every DNS server is down" in (d.get("status_error") or "")
                             for d in domains().values()),
                 timeout=SCAN_WAIT * 2, what="lookups failing fast")
        # Nothing recorded: no history, no values, nothing removed.
        assert api.get("/api/v1/changes", params={"limit": 1000})["changes"] == []
        for n in names[:: 50]:
            for rec in api.records(n)["records"]:
                assert rec["status"] == "error" and rec["values"] == [], rec
    finally:
        silent.stop()


# ---------------------------------------------------------------------------------------
# 0x20


def test_server_not_echoing_case(hostile, mon_factory):
    hostile.set_mode("lower-case")
    api = mon_factory(env_for(hostile.server(), timeout="2s", retries=2, DM_DNS_LOOPS="1"))
    name = "hostile.test"
    api.add(name, record_types=["A", "MX", "TXT"])
    d, recs = wait_status(api, name, "ok", "answers despite the lower-cased echo")
    for t in ("A", "MX", "TXT"):
        assert recs[t]["values"] == hostile.expected(t)
    assert hostile.stats()["mixed_case"] > 0, "0x20 was never tried"
    # The server is learnt: names go out in lower case, and every scan succeeds.
    wait_quiet(api, name, lambda: hostile.stats()["mixed_case"], "no more mixed-case names")
    api.wait_scans(name, 2)
    assert api.domain(name)["status"] == "ok"
    assert real_changes(api.history_all(name)) == []


def test_shuffled_answers_with_0x20(shuffle_responder, mon_factory):
    """A server that echoes the case but spells owners in random case: 0x20 stays on and
    nothing looks like a change."""
    api = mon_factory(env_for(shuffle_responder.server()))
    name = "shuffle.test"
    api.add(name, record_types=["A", "MX"])
    wait_status(api, name, "ok", "answers")
    api.wait_scans(name, 3)
    assert real_changes(api.history_all(name)) == []
    assert api.records_by_type(name)["A"]["values"] == shuffle_responder.expected("A")
