"""The services over RabbitMQ: the broker in DM_TEST_AMQP_URL (scripts/test.sh starts a
throwaway one), a loopback Knot, the real binary. A domain added through the API is scanned
through the broker's task queue, in one process (`domainmon all`) and with the API and the
scanner in two processes sharing the database. Skipped when DM_TEST_AMQP_URL is unset.

The broker is shared with other tests: each test publishes to an exchange of its own
(`?exchange=`). The task queue's name is fixed by the DNS service, so tasks left in it by an
earlier test may reach a later one; they name domains by id and fingerprint, and a stale
one is written as a harmless compare-and-swap conflict."""

import os
import subprocess
import time

import pytest

from conftest import DM_BIN
from dnsfixtures import knot, wait_for  # noqa: F401 - fixtures are used by name
from test_dns import Api, dns_env

AMQP_URL = os.environ.get("DM_TEST_AMQP_URL")

pytestmark = pytest.mark.skipif(not AMQP_URL, reason="DM_TEST_AMQP_URL is not set")


def bus_url(tag):
    sep = "&" if "?" in AMQP_URL else "?"
    return f"{AMQP_URL}{sep}exchange=dmtest.it.{os.getpid()}.{tag}.{time.monotonic_ns()}"


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


def start_scanner(env, workdir):
    """`domainmon dns-service`: it has no HTTP endpoint to poll, so start-up is its log line."""
    log = open(os.path.join(workdir, "scanner.log"), "w+", encoding="utf-8")
    base = {k: os.environ[k] for k in ("PATH", "LANG", "ASAN_OPTIONS", "UBSAN_OPTIONS")
            if k in os.environ}
    proc = subprocess.Popen([DM_BIN, "dns-service"], env={**base, **env}, cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=log)

    def started():
        log.seek(0)
        text = log.read()
        assert proc.poll() is None, f"dns-service exited with {proc.returncode}:\n{text}"
        return 'msg="started"' in text and text

    return proc, log, wait_for(started, timeout=20, what="dns-service start-up")


def test_separate_services_share_the_broker(knot, domainmon_factory, tmp_path):
    url = bus_url("split")
    env = {**dns_env(knot.server()), "RABBITMQ_URL": url}
    api_proc = domainmon_factory(env=env, args=("domain-service",))
    api = Api(api_proc)
    # The scanner works on the same database through its own connection.
    proc, log, text = start_scanner({**env, "DATABASE_URL": api_proc.database_url}, tmp_path)
    try:
        assert "bus=amqp" in text
        api.add("a-only.example.test")
        api.wait_checked("a-only.example.test", timeout=30)
        recs = api.records_by_type("a-only.example.test")
        assert recs["A"]["values"] == ["192.0.2.10"]
    finally:
        proc.terminate()
        rc = proc.wait(timeout=15)
        log.seek(0)
        tail = log.read()[-3000:]
        log.close()
    assert rc == 0, tail


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
