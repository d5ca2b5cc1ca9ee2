"""No alert lost in the embedded mode: `domainmon all` (in-process bus) is killed with SIGKILL
right after a DNS change is recorded, at varied moments, ten times, and restarted on the same
database each time. The outbox relay deletes an event only once the alert service has recorded
its delivery (the in-process bus confirms a publish to a durable queue when its consumer has
acked), so after the last restart every change has exactly one delivery, and the receiver has
seen every change."""

import json
import time

import pytest

from dnsfixtures import Knot, wait_for
from test_alerts import SECRET, create_rule, receiver_factory  # noqa: F401
from test_alerts import signature_ok
from test_dns import Api, dns_env

NAMES = [f"k{i:02d}.kill.test" for i in range(1, 21)]
KILLS = 10
RULES = 20
# Seconds between seeing the first change of a round recorded and the kill: from at once to
# well after, so that kills land before, during and after the events' way to the alert
# service (20 changes a round keep it busy for a while).
DELAYS = [0, 0.01, 0.02, 0.05, 0, 0.1, 0.005, 0.2, 0.03, 0.4]

ZONE = """$ORIGIN kill.test.
$TTL 300
@    SOA ns1.kill.test. hostmaster.kill.test. 1 3600 900 604800 300
@    NS  ns1.kill.test.
ns1  A   127.0.0.1
""" + "".join(f"k{i:02d} A 192.0.2.{i}\n" for i in range(1, 21))


@pytest.fixture(scope="module")
def knot():
    k = Knot({"kill.test.": ZONE})
    try:
        k.start()
        yield k
    finally:
        k.cleanup()


def a_changes(m):
    """Every A change recorded (first observations left out: they alert nobody)."""
    out, cursor = [], None
    while True:
        params = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        r = m.request("GET", "/api/v1/changes", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        out.extend(c for c in page["changes"] if c["type"] == "A" and c["before"] is not None)
        cursor = page["next_cursor"]
        if not cursor:
            return out


def received_ids(hook, path="/hook"):
    """Ids of the change events every message received on `path` carried, with repeats."""
    out = []
    for req in hook.delivered():
        if req["path"] != path:
            continue
        assert signature_ok(SECRET, req["headers"], req["body"]), req["headers"]
        doc = json.loads(req["body"])
        events = doc["data"]["events"] if doc["type"] == "alert.digest" else [doc]
        for ev in events:
            assert ev["type"] == "change.dns.A", ev
            out.append(ev["data"]["id"])
    return out


def all_deliveries(m, rule_id):
    out, cursor = [], None
    while True:
        params = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        r = m.request("GET", f"/api/v1/alerts/{rule_id}/deliveries", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        out.extend(page["deliveries"])
        cursor = page["next_cursor"]
        if not cursor:
            return out


def test_sigkill_right_after_changes_loses_no_alert(knot, domainmon_factory,
                                                    receiver_factory):  # noqa: F811
    hook = receiver_factory()
    env = dns_env(knot.server(), interval=1)
    env.update({
        "DM_DEFAULT_CHECKS": "dns",
        "DM_ALLOW_PRIVATE_TARGETS": "1",
        "DM_ALERT_GROUP_WAIT": "200ms",
        "DM_ALERT_RETRY_MIN": "1s",
        # Events a killed relay had claimed come back this long after the claim.
        "DM_OUTBOX_LEASE": "6s",
    })
    m = domainmon_factory(env=env)
    r = m.request("POST", "/api/v1/domains/import", json={"names": NAMES})
    assert r.status_code == 200, r.text
    api = Api(m)
    for name in NAMES:
        api.wait_checked(name, timeout=30)
    # One rule the receiver checks, and more for every domain: each event is then RULES
    # inserts for the alert service, which keeps the window between a change being recorded
    # and its deliveries being recorded open long enough for kills to land in it.
    rule = create_rule(m, {"name": "hook", "channel": "webhook", "target": hook.url(),
                           "secret": SECRET, "events": ["change.dns.A"]})
    others = [create_rule(m, {"name": f"more {i}", "channel": "webhook",
                              "target": hook.url(f"/more{i}"), "secret": SECRET,
                              "events": ["change.dns.A"]})
              for i in range(1, RULES)]

    for k, delay in enumerate(DELAYS[:KILLS]):
        before = len(a_changes(m))
        knot.update("kill.test", [u for i, name in enumerate(NAMES, 1) for u in (
            f"update delete {name}. A",
            f"update add {name}. 300 A 198.51.{k}.{i}")])
        wait_for(lambda: len(a_changes(m)) > before, timeout=30, interval=0.01,
                 what=f"round {k}: a change recorded")
        time.sleep(delay)
        m.kill()
        m.start()

    # Every name's last value is recorded (the rounds' changes a kill interrupted are scanned
    # again after the restart), and nothing changes any more.
    def settled():
        latest = {}
        for c in a_changes(m):
            latest.setdefault(c["domain"], c)  # newest first
        return all(latest.get(n, {}).get("after") == [f"198.51.{KILLS - 1}.{i}"]
                   for i, n in enumerate(NAMES, 1))

    wait_for(settled, timeout=60, interval=0.2, what="every last change recorded")

    def check(rule_id):
        """Deliveries of the rule against the changes recorded: (missing, extra)."""
        want = {f"change.dns.A:{c['id']}" for c in a_changes(m)}
        ds = all_deliveries(m, rule_id)
        keys = [d["event"] for d in ds]
        assert len(keys) == len(set(keys)), "two deliveries for one change"
        return want - set(keys), set(keys) - want

    # Claims of the killed relays come back after DM_OUTBOX_LEASE, then are matched.
    deadline = time.monotonic() + 60
    while any(check(r["id"]) != (set(), set()) for r in [rule] + others) and \
            time.monotonic() < deadline:
        time.sleep(0.5)
    for r in [rule] + others:
        missing, extra = check(r["id"])
        assert not missing, f"rule {r['id']}: {len(missing)} changes never alerted: {sorted(missing)}"
        assert not extra, f"rule {r['id']}: alerts for changes not recorded: {sorted(extra)}"
    # What was sent reached the receiver. (A delivery whose sender was killed between its claim
    # and its try waits out the claim's 5-minute lease, so some may still be pending; a message
    # cut off by a kill may come twice, with the same webhook-id.)
    sent = {int(d["event"].split(":")[1]) for d in all_deliveries(m, rule["id"])
            if d["status"] == "delivered"}
    assert sent, "nothing sent"
    assert sent <= set(received_ids(hook))
