"""domainmon on PostgreSQL (DATABASE_URL=postgres://...), end to end: start-up migrates a
fresh database, the API serves from it, scans write their history to it, and services
started together against one database share it (one schema, one first admin key).

Needs DM_TEST_PG_URL (scripts/test.sh starts a throwaway server); each test works in a
database of its own. `DM_IT_DATABASE=postgres` runs the rest of the suite on PostgreSQL
as well."""

import concurrent.futures
import glob
import os
import re

import pytest

from conftest import (PG_URL, REPO, DomainMon, pg_create_database, pg_db_name, pg_drop_database,
                      psql)
from dnsfixtures import knot, wait_for  # noqa: F401 - fixtures are used by name

pytestmark = pytest.mark.skipif(not PG_URL, reason="DM_TEST_PG_URL is not set")

KEY_RE = re.compile(r"^dmk_[0-9a-f]{12}_[a-z2-7]{32}$")
# The migrations compiled into the binary: every one is recorded once.
MIGRATIONS = str(len(glob.glob(os.path.join(REPO, "sql", "postgres", "*.sql"))))


@pytest.fixture
def pg_database():
    url = pg_create_database()
    yield url
    pg_drop_database(url)


def test_all_migrates_and_serves_the_api(domainmon_factory):
    m = domainmon_factory(database="postgres")
    assert m.on_postgres
    assert m.admin_key and KEY_RE.match(m.admin_key), m.stdout_lines()
    # /healthz answers before the "started" line is written: wait for the line.
    wait_for(lambda: "store=postgres" in m.stderr_text(), timeout=30, what="the started line")

    r = m.request("POST", "/api/v1/domains", {"name": "example.com", "interval": 300})
    assert r.status_code == 201, r
    r = m.request("POST", "/api/v1/domains/import", {"names": ["b.example", "a.example"]})
    assert r.status_code == 200 and r.json()["added"] == 2, r
    r = m.request("GET", "/api/v1/domains")
    assert r.status_code == 200, r
    assert [d["name"] for d in r.json()["domains"]] == ["a.example", "b.example", "example.com"]
    assert r.json()["domains"][2]["interval"] == 300
    assert m.request("DELETE", "/api/v1/domains/b.example").status_code == 204

    # The schema is there once; a restart keeps the data and the key.
    assert psql("SELECT count(*) FROM schema_migrations", m.database_url) == MIGRATIONS
    p = m.cli("migrate")
    assert p.returncode == 0 and "applied 0 migration(s)" in p.stdout, p
    key = m.admin_key
    m.restart()
    r = m.request("GET", "/api/v1/domains", key=key)
    assert [d["name"] for d in r.json()["domains"]] == ["a.example", "example.com"]
    p = m.cli("keys", "list")
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 2, p  # header and one key


def test_services_started_together_share_one_database(pg_database):
    """Three domain services start at the same moment on one empty database: the
    migrations run once, exactly one of them makes (and prints) the first admin key, and
    every one serves with it."""
    mons = [DomainMon(args=("domain-service",), database_url=pg_database) for _ in range(3)]
    with concurrent.futures.ThreadPoolExecutor(len(mons)) as pool:
        list(pool.map(lambda m: m.start(), mons))
    keys = [m.admin_key for m in mons if m.admin_key]
    assert len(keys) == 1, [m.stdout_lines() for m in mons]
    assert psql("SELECT count(*) FROM api_keys", pg_database) == "1"
    assert psql("SELECT count(*) FROM schema_migrations", pg_database) == MIGRATIONS
    for i, m in enumerate(mons):
        r = m.request("POST", "/api/v1/domains", {"name": f"d{i}.example"}, key=keys[0])
        assert r.status_code == 201, r
    r = mons[0].request("GET", "/api/v1/domains", key=keys[0])
    assert [d["name"] for d in r.json()["domains"]] == ["d0.example", "d1.example",
                                                        "d2.example"]
    for m in mons:
        m.stop()


def test_scans_write_history_to_postgres(knot, domainmon_factory):
    m = domainmon_factory(database="postgres", env={
        "DM_DNS_SERVERS": knot.server(),
        "DM_SCAN_INTERVAL": "1",
        "DM_MIN_INTERVAL": "1",
        "DM_DNS_TIMEOUT": "500ms",
    })
    r = m.request("POST", "/api/v1/domains", {"name": "example.test",
                                              "record_types": ["A", "MX", "TXT"]})
    assert r.status_code == 201, r

    def records():
        r = m.request("GET", "/api/v1/domains/example.test/records").json()
        return {x["type"]: x for x in r["records"]} if len(r["records"]) == 3 else None

    recs = wait_for(records, timeout=20, interval=0.2, what="the first scan's records")
    assert all(x["status"] in ("ok", "nodata") for x in recs.values()), recs
    hist = m.request("GET", "/api/v1/domains/example.test/history").json()["changes"]
    assert {c["type"] for c in hist} == {"A", "MX", "TXT"}
    assert all(c["before"] is None for c in hist)

    # Later scans of an unchanged domain write no history.
    checked = m.request("GET", "/api/v1/domains/example.test").json()["last_checked_at"]
    wait_for(lambda: m.request("GET", "/api/v1/domains/example.test").json()
             ["last_checked_at"] != checked, timeout=10, interval=0.2, what="another scan")
    again = m.request("GET", "/api/v1/domains/example.test/history").json()["changes"]
    assert len(again) == len(hist)
    # Events went through the outbox and it drained.
    wait_for(lambda: psql("SELECT count(*) FROM outbox", m.database_url) == "0", timeout=10,
             interval=0.2, what="an empty outbox")


def test_readyz_names_the_database_while_it_refuses(domainmon_factory):
    """/readyz answers 503 with "down": ["database"] while the database takes no
    connection, and 200 again once it does."""
    m = domainmon_factory(database="postgres")
    assert m.request("GET", "/readyz", key=None).status_code == 200
    db = pg_db_name(m.database_url)
    psql(f"ALTER DATABASE {db} ALLOW_CONNECTIONS false")
    try:
        psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")
        r = wait_for(lambda: (lambda r: r if r.status_code == 503 else None)(
            m.request("GET", "/readyz", key=None)), timeout=20, what="a 503")
        assert r.headers.get("Content-Type", "").startswith("application/problem+json"), r
        assert r.json()["down"] == ["database"], r
        assert "database" in r.json()["detail"], r
    finally:
        psql(f"ALTER DATABASE {db} ALLOW_CONNECTIONS true")
    wait_for(lambda: m.request("GET", "/readyz", key=None).status_code == 200, timeout=20,
             what="ready again")
