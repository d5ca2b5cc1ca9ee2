"""Nothing is lost and nothing is written twice when the process is killed mid-scan.

The service is killed with SIGKILL (no chance to flush) while it scans 100 domains every
second, restarted on the same database, and the history is checked: every record type of
every domain has exactly one first observation, and a change made around a kill is
recorded exactly once."""

import random
import time

from conftest import psql
from dnsfixtures import BULK_NAMES, knot, wait_for  # noqa: F401 - fixtures are used by name


def env_for(knot):
    return {
        "DM_DNS_SERVERS": knot.server(),
        "DM_SCAN_INTERVAL": "1",
        "DM_MIN_INTERVAL": "1",
        "DM_DNS_TIMEOUT": "500ms",
        "DM_DNS_RETRIES": "1",
    }


def all_changes(mon):
    out, cursor = [], None
    while True:
        params = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        r = mon.request("GET", "/api/v1/changes", params=params)
        assert r.status_code == 200, r
        page = r.json()
        out.extend(page["changes"])
        cursor = page["next_cursor"]
        if not cursor:
            return out


def all_checked(mon):
    seen, cursor = {}, None
    while True:
        params = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = mon.request("GET", "/api/v1/domains", params=params).json()
        for d in page["domains"]:
            seen[d["name"]] = d
        cursor = page["next_cursor"]
        if not cursor:
            break
    return all((seen.get(n) or {}).get("last_checked_at") for n in BULK_NAMES)


def kill_and_restart(mon, times, rng):
    for _ in range(times):
        time.sleep(rng.uniform(0.05, 0.6))
        mon.kill()
        mon.start()


def test_sigkill_mid_scan_loses_nothing_and_writes_nothing_twice(knot, domainmon_factory):
    rng = random.Random(1234)
    mon = domainmon_factory(env=env_for(knot))
    r = mon.request("POST", "/api/v1/domains/import",
                    json={"names": BULK_NAMES, "record_types": ["A", "MX"]})
    assert r.status_code == 200 and r.json()["added"] == 100, r

    kill_and_restart(mon, 4, rng)
    wait_for(lambda: all_checked(mon), timeout=20, interval=0.2,
             what="every domain scanned after the restarts")

    # Let several more scans pass (and kill once more among them): still one entry each.
    kill_and_restart(mon, 1, rng)
    time.sleep(3)
    changes = all_changes(mon)
    per_key = {}
    for c in changes:
        per_key.setdefault((c["domain"], c["type"]), []).append(c)
    assert set(per_key) == {(n, t) for n in BULK_NAMES for t in ("A", "MX")}
    dup = {k: len(v) for k, v in per_key.items() if len(v) != 1}
    assert not dup, f"types with more than one history entry: {dup}"
    assert all(c["before"] is None for c in changes)

    # A change made just before a kill is recorded once, after the restart if need be.
    name = "d050.bulk.test"
    knot.update("bulk.test", [f"update delete {name}. A",
                              f"update add {name}. 300 A 198.51.100.250"])
    try:
        kill_and_restart(mon, 2, rng)

        def new_value_seen():
            r = mon.request("GET", f"/api/v1/domains/{name}/records").json()
            a = [x for x in r["records"] if x["type"] == "A"][0]
            return a["values"] == ["198.51.100.250"]

        wait_for(new_value_seen, timeout=20, interval=0.2, what="the changed A set")
        time.sleep(3)  # more scans: nothing more may be written
        hist = mon.request("GET", f"/api/v1/domains/{name}/history",
                           params={"type": "A"}).json()["changes"]
        real = [c for c in hist if c["before"] is not None]
        assert len(real) == 1, hist
        assert real[0]["before"] == ["198.51.100.50"]
        assert real[0]["added"] == ["198.51.100.250"]
        assert real[0]["removed"] == ["198.51.100.50"]
    finally:
        knot.update("bulk.test", [f"update delete {name}. A",
                                  f"update add {name}. 300 A 198.51.100.50"])


def test_every_change_becomes_an_event_and_the_outbox_drains(knot, domainmon_factory):
    """Each history entry is written with an outbox event in the same transaction (and each
    added domain with its domain.added), and the relay hands every event to the bus and
    removes it."""
    import sqlite3

    mon = domainmon_factory(env=env_for(knot))
    names = BULK_NAMES[:10]
    r = mon.request("POST", "/api/v1/domains/import", json={"names": names})
    assert r.status_code == 200, r
    wait_for(lambda: len(all_changes(mon)) == 10 * 8, timeout=20, interval=0.2,
             what="the first observation of every type of the 10 domains")

    def outbox():
        if mon.on_postgres:
            made, waiting = psql("SELECT (SELECT CASE WHEN is_called THEN last_value ELSE 0 "
                                 "END FROM outbox_id_seq), (SELECT count(*) FROM outbox)",
                                 mon.database_url).split("|")
            return int(made), int(waiting)
        with sqlite3.connect(f"file:{mon.db_path}?mode=ro", uri=True, timeout=5) as db:
            made = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'")
            made = (made.fetchone() or (0,))[0]
            waiting = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        return made, waiting

    wait_for(lambda: outbox()[1] == 0, timeout=10, interval=0.2, what="an empty outbox")
    made, _ = outbox()
    assert made == len(all_changes(mon)) + len(names) == 90
