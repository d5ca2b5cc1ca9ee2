"""The services over RabbitMQ: the broker in DM_TEST_AMQP_URL (scripts/test.sh starts a
throwaway one), a loopback Knot, the real binary. A domain added through the API is scanned
through the broker's task queue, in one process (`domainmon all`) and with the API and the
scanner in two processes sharing the database. A malformed task is dead-lettered, domain
events leave through the outbox relay once each (also with two relays on one PostgreSQL
database), and /readyz follows the broker through a restart. Skipped when DM_TEST_AMQP_URL
is unset. tests/tools/dm_busctl.c (build/dm-busctl) puts messages on the broker and takes
them off for the tests.

The broker is shared with other tests: each test publishes to an exchange of its own
(`?exchange=`). The task queue's name is fixed by the DNS service, and it is a work queue
whose dead-letter exchange is named after the exchange, so each test deletes it (and its
dead-letter queue) first: a queue left by an earlier test would be refused as another kind
of queue, and its tasks would reach this test."""

import json
import os
import subprocess
import threading
import time

import pytest

from conftest import DM_BIN, PG_URL, pg_create_database, pg_drop_database
from dnsfixtures import knot, wait_for  # noqa: F401 - fixtures are used by name
from test_dns import Api, dns_env

AMQP_URL = os.environ.get("DM_TEST_AMQP_URL")

pytestmark = pytest.mark.skipif(not AMQP_URL, reason="DM_TEST_AMQP_URL is not set")


BUSCTL = os.path.join(os.path.dirname(DM_BIN), "dm-busctl")


def bus_url(tag):
    sep = "&" if "?" in AMQP_URL else "?"
    return f"{AMQP_URL}{sep}exchange=dmtest.it.{os.getpid()}.{tag}.{time.monotonic_ns()}"


def busctl(url, *steps, timeout=60):
    """Runs dm-busctl URL STEPS... (tests/tools/dm_busctl.c); returns the CompletedProcess.
    `take` prints one "KEY<TAB>BODY" line per message."""
    return subprocess.run([BUSCTL, url, *map(str, steps)], capture_output=True, text=True,
                          timeout=timeout)


def taken(p):
    """The (routing key, body) pairs a `take` step printed."""
    return [tuple(line.split("\t", 1)) for line in p.stdout.splitlines()]


def unique_queue(tag):
    return f"dmtest.it.{os.getpid()}.{tag}.{time.monotonic_ns()}"


@pytest.fixture(autouse=True)
def fresh_task_queue():
    if AMQP_URL:
        p = busctl(AMQP_URL, "delete", "dns.scan", "delete", "dns.scan.dead")
        assert p.returncode == 0, p.stderr


def test_all_scans_through_rabbitmq(knot, domainmon_factory):
    m = domainmon_factory(env={**dns_env(knot.server()), "RABBITMQ_URL": bus_url("all")})
    api = Api(m)
    # The API answers before the DNS service has started and the start line is written.
    wait_for(lambda: "bus=amqp" in m.stderr_text(), timeout=20, what="the start line")
    api.add("example.test")
    api.wait_checked("example.test", timeout=30)
    recs = api.records_by_type("example.test")
    assert recs["A"]["values"] == ["192.0.2.1", "192.0.2.2"]
    # Scanned again on the interval: tasks keep flowing.
    api.wait_scans("example.test", 2, timeout=30)


def test_separate_services_share_the_broker(knot, domainmon_factory):
    url = bus_url("split")
    env = {**dns_env(knot.server()), "RABBITMQ_URL": url}
    api_proc = domainmon_factory(env=env, args=("domain-service",))
    api = Api(api_proc)
    # The scanner works on the same database through its own connection; it has no API,
    # only /healthz and /readyz on its own address, which start() polls.
    scanner = domainmon_factory(env=env, args=("dns-service",),
                                database_url=api_proc.database_url)
    wait_for(lambda: "bus=amqp" in scanner.stderr_text(), timeout=20, what="the start line")
    assert scanner.request("GET", "/readyz", key=None).status_code == 200
    assert scanner.request("GET", "/api/v1/domains").status_code == 404
    api.add("a-only.example.test")
    api.wait_checked("a-only.example.test", timeout=30)
    recs = api.records_by_type("a-only.example.test")
    assert recs["A"]["values"] == ["192.0.2.10"]
    # The scanner's /metrics counts the scan and the change; both see the broker up.
    from test_ops import scrape, value
    fams = scrape(scanner)
    assert value(fams, "dm_bus_up") == 1 and value(fams, "dm_store_up") == 1
    assert value(fams, "dm_scans_total", check="dns", result="ok") >= 1
    assert value(fams, "dm_changes_total", check="dns", type="A") == 1
    assert value(fams, "dm_task_queue_depth") is not None
    api_fams = scrape(api_proc)
    assert value(api_fams, "dm_bus_up") == 1
    assert value(api_fams, "dm_http_requests_total", route="/api/v1/domains",
                 method="POST", status="201") == 1


def test_bad_broker_account_is_a_startup_error(tmp_path):
    """A wrong password stops start-up with a message naming the broker and the user, and
    without the password."""
    host = AMQP_URL.split("@", 1)[1].split("/", 1)[0]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "RABBITMQ_HOST": host,
           "RABBITMQ_USER": "dmtest", "RABBITMQ_PASSWORD": "not-the-password",
           "DATABASE_URL": f"sqlite://{tmp_path}/x.db", "DM_LISTEN": "127.0.0.1:1"}
    p = subprocess.run([DM_BIN, "all"], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "ACCESS_REFUSED" in p.stderr, p.stderr
    assert "dmtest" in p.stderr
    assert "not-the-password" not in p.stderr


def test_scanning_resumes_after_a_broker_restart(knot, domainmon_factory):
    restart = os.environ.get("DM_TEST_AMQP_RESTART")
    if not restart:
        pytest.skip("DM_TEST_AMQP_RESTART is not set")
    m = domainmon_factory(env={**dns_env(knot.server()), "RABBITMQ_URL": bus_url("restart")})
    api = Api(m)
    api.add("example.test")
    api.wait_checked("example.test", timeout=30)
    subprocess.run(restart, shell=True, check=True, timeout=180)
    after = api.checked_at("example.test")
    # The scheduler's tasks flow again once the bus has reconnected.
    api.wait_scans("example.test", 2, timeout=60)
    assert api.checked_at("example.test") > after
    text = m.stderr_text()
    assert "lost the broker" in text and "reconnected to the broker" in text


def test_poison_task_is_dead_lettered(knot, domainmon_factory):
    """A malformed message on the task routing key goes to dns.scan.dead at once (the task
    queue is a work queue with a dead-letter queue), and good tasks keep being scanned."""
    url = bus_url("poison")
    m = domainmon_factory(env={**dns_env(knot.server()), "RABBITMQ_URL": url})
    api = Api(m)
    wait_for(lambda: "bus=amqp" in m.stderr_text(), timeout=20, what="the start line")
    api.add("example.test")
    api.wait_checked("example.test", timeout=30)

    poison = json.dumps({"poison": f"{os.getpid()}.{time.monotonic_ns()}"})
    # The same declaration as the DNS service's, then the message, then the dead letters.
    p = busctl(url, "work", "dns.scan", "task.dns", 5, "dns.scan.dead",
               "publish", "task.dns", poison, "take", "dns.scan.dead", 1, 30)
    assert p.returncode == 0, p.stderr
    assert taken(p) == [("task.dns", poison)]
    wait_for(lambda: "rejected a malformed scan task" in m.stderr_text(), timeout=10,
             what="the rejection in the log")
    api.wait_scans("example.test", 2, timeout=30)


def test_domain_events_reach_the_broker(domainmon_factory):
    """The domain service alone runs the outbox relay: domain.added (the domain as the API
    shows it, with its id) for an add and each added name of an import, and domain.removed
    for a delete, each once."""
    url = bus_url("events")
    q = unique_queue("events")
    p = busctl(url, "queue", q, "domain.#")
    assert p.returncode == 0, p.stderr
    m = domainmon_factory(env={"RABBITMQ_URL": url}, args=("domain-service",))
    r = m.request("POST", "/api/v1/domains", {"name": "example.com", "interval": 300})
    assert r.status_code == 201, r
    shown = m.request("GET", "/api/v1/domains/example.com").json()
    r = m.request("POST", "/api/v1/domains/import",
                  {"names": ["b.example", "example.com", "a.example"]})
    assert r.status_code == 200 and r.json()["added"] == 2, r
    assert m.request("DELETE", "/api/v1/domains/b.example").status_code == 204

    p = busctl(url, "queue", q, "domain.#", "take", q, 4, 30)
    assert p.returncode == 0, p.stderr
    events = [(k, json.loads(b)) for k, b in taken(p)]
    assert [k for k, _ in events] == ["domain.added"] * 3 + ["domain.removed"]
    added = events[0][1]
    assert isinstance(added["id"], int) and added["id"] > 0
    assert {k: v for k, v in added.items() if k != "id"} == shown
    assert [e["name"] for _, e in events[1:3]] == ["b.example", "a.example"]
    removed = events[3][1]
    assert set(removed) == {"id", "domain", "removed_at"}
    assert removed["domain"] == "b.example" and removed["id"] == events[1][1]["id"]
    # Nothing more: every event went once.
    p = busctl(url, "queue", q, "domain.#", "take", q, 1, 2)
    assert p.returncode == 1 and taken(p) == [], p.stdout


@pytest.mark.skipif(not PG_URL, reason="DM_TEST_PG_URL is not set")
def test_relays_of_two_processes_publish_each_event_once(domainmon_factory):
    """Two domain services on one PostgreSQL database and one broker: both relays claim from
    the same outbox, and every event arrives once."""
    url = bus_url("twice")
    q = unique_queue("twice")
    assert busctl(url, "queue", q, "domain.added").returncode == 0
    db = pg_create_database()
    try:
        env = {"RABBITMQ_URL": url}
        a = domainmon_factory(env=env, args=("domain-service",), database_url=db)
        b = domainmon_factory(env=env, args=("domain-service",), database_url=db)
        key = a.admin_key or b.admin_key
        names = [f"n{i:03d}.example" for i in range(300)]
        done = []

        def add(m, part):
            for i in range(0, len(part), 25):
                r = m.request("POST", "/api/v1/domains/import", {"names": part[i:i + 25]},
                              key=key)
                done.append(r.status_code)

        threads = [threading.Thread(target=add, args=(a, names[0::2])),
                   threading.Thread(target=add, args=(b, names[1::2]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert done == [200] * len(done) and len(done) == 12, done
        p = busctl(url, "queue", q, "domain.added", "take", q, len(names), 60)
        assert p.returncode == 0, p.stderr
        got = sorted(json.loads(body)["name"] for _, body in taken(p))
        assert got == sorted(names)
        p = busctl(url, "queue", q, "domain.added", "take", q, 1, 3)
        assert p.returncode == 1 and taken(p) == [], p.stdout
        a.stop()
        b.stop()
    finally:
        pg_drop_database(db)


def test_readyz_follows_the_broker(domainmon_factory):
    """/readyz of `all` and of a lone dns-service answers 503 naming the bus while the
    broker restarts, and 200 again once every link has reconnected."""
    restart = os.environ.get("DM_TEST_AMQP_RESTART")
    if not restart:
        pytest.skip("DM_TEST_AMQP_RESTART is not set")
    env = {"RABBITMQ_URL": bus_url("ready")}
    m = domainmon_factory(env=env)
    scanner = domainmon_factory(env=env, args=("dns-service",), database_url=m.database_url)
    mons = (m, scanner)
    for x in mons:
        r = x.request("GET", "/readyz", key=None)
        assert r.status_code == 200 and r.json() == {"status": "ready"}, r

    seen = {id(x): [] for x in mons}
    box = {}
    t = threading.Thread(target=lambda: box.setdefault(
        "rc", subprocess.run(restart, shell=True, timeout=180).returncode))
    t.start()
    while t.is_alive():
        for x in mons:
            try:
                r = x.request("GET", "/readyz", key=None, timeout=5)
            except OSError:
                continue
            if r.status_code == 503:
                seen[id(x)].append(r)
        time.sleep(0.1)
    t.join()
    assert box.get("rc") == 0
    for x in mons:
        assert seen[id(x)], f"{x.args}: /readyz never said the broker was gone"
        r = seen[id(x)][0]
        assert r.headers.get("Content-Type", "").startswith("application/problem+json"), r
        assert r.json()["status"] == 503 and r.json()["down"] == ["bus"], r
        assert "bus" in r.json()["detail"], r
        wait_for(lambda: x.request("GET", "/readyz", key=None).status_code == 200,
                 timeout=60, interval=0.2, what=f"{x.args} ready again")
    assert 'msg="not ready"' in m.stderr_text() and 'msg="ready again"' in m.stderr_text()
