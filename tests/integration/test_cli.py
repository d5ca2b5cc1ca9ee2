"""The command-line client and the day-one commands, end to end: the real binary as a
service (scanning a loopback Knot) and as a client talking to it; --help touching nothing;
a first start with the port taken; `keys` and `scan` refusing a missing database; backup
of a running service; the README's configuration table matching the binary's."""

import json
import os
import re
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import DM_BIN, REPO, DomainMon
from dnsfixtures import knot, wait_for  # noqa: F401 - fixtures are used by name

DNS_ENV = {"DM_SCAN_INTERVAL": "1", "DM_MIN_INTERVAL": "1", "DM_DNS_TIMEOUT": "500ms",
           "DM_DNS_RETRIES": "1"}

COMMANDS = ["all", "domain-service", "dns-service", "scan", "migrate", "keys", "domains",
            "records", "history", "changes", "watch", "backup", "config", "version", "help"]


def clean_env(**extra):
    e = {k: os.environ[k] for k in ("PATH", "LANG", "ASAN_OPTIONS", "UBSAN_OPTIONS",
                                    "LSAN_OPTIONS") if k in os.environ}
    e.update(extra)
    return e


def run(args, cwd, env=None, timeout=30, input=None):
    return subprocess.run([DM_BIN, *args], cwd=cwd, env=env or clean_env(), capture_output=True,
                          text=True, timeout=timeout, input=input)


@pytest.fixture
def mon(knot, domainmon_factory):
    """A service scanning the module's Knot every second."""
    return domainmon_factory(env={**DNS_ENV, "DM_DNS_SERVERS": knot.server()})


def cli(m, *args, key="admin", **kw):
    """The client against instance m (DM_LISTEN is in its environment)."""
    env = {"DM_API_KEY": m.admin_key if key == "admin" else key}
    return m.cli(*args, env=env, **kw)


def one_line(text):
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


# ---- help ----


@pytest.mark.parametrize("args", [[c, "--help"] for c in COMMANDS] + [
    ["keys", "create", "--help"], ["domains", "add", "-h"], ["scan", "-h"],
    ["all", "--listen", "127.0.0.1:1", "--help"], ["backup", "x.db", "--help"], ["--help"],
    ["help", "keys"]])
def test_help_prints_usage_and_touches_nothing(args):
    with tempfile.TemporaryDirectory() as d:
        # A service listening would be a failure too: nothing may start.
        p = run(args, d, env=clean_env(DM_LISTEN="127.0.0.1:1"), timeout=10)
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith("usage: domainmon"), p.stdout
        assert os.listdir(d) == [], f"{args} created {os.listdir(d)}"


def test_help_is_one_text_from_the_table():
    with tempfile.TemporaryDirectory() as d:
        p = run(["help"], d)
    assert p.returncode == 0
    for c in COMMANDS:
        assert re.search(rf"^  {re.escape(c)} ", p.stdout, re.M), c
    assert p.stdout.count("in order of precedence") == 1
    assert "budget for one lookup, retries included" in p.stdout
    assert "createdb domainmon" in p.stdout  # how to get PostgreSQL, not only its URL


def test_readme_configuration_table_is_the_binary_s():
    with tempfile.TemporaryDirectory() as d:
        p = run(["config", "--markdown"], d)
    assert p.returncode == 0, p.stderr
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    m = re.search(r"<!-- config-table begin -->\n(.*?)<!-- config-table end -->", readme, re.S)
    assert m, "README.md lost its config-table markers"
    assert m.group(1) == p.stdout, "README.md is out of date: run `make readme-config`"


def test_usage_errors_exit_2_and_send_nothing():
    with tempfile.TemporaryDirectory() as d:
        # Port 1 on loopback: nothing listens, so a request would be exit 1, not 2.
        env = clean_env(DM_LISTEN="127.0.0.1:1", DM_API_KEY="k")
        for args in (["domains"], ["domains", "frob"], ["domains", "add"],
                     ["domains", "list", "--status", "broken"], ["domains", "show"],
                     ["domains", "list", "--bogus"], ["records"], ["history"],
                     ["history", "a.test", "--since", "yesterday"], ["changes", "x"],
                     ["changes", "--limit", "0"], ["watch", "x"], ["domains", "import"],
                     ["domains", "import", "missing.txt"], ["backup"], ["config", "--bogus"],
                     ["domains", "add", "a.test", "--interval", "soon"]):
            p = run(args, d, env=env)
            assert p.returncode == 2, (args, p.returncode, p.stderr)
            assert p.stderr.strip() and "\n" not in p.stderr.strip(), (args, p.stderr)
        assert os.listdir(d) == []


def test_no_server_is_exit_1_naming_the_address():
    with tempfile.TemporaryDirectory() as d:
        p = run(["domains", "list"], d, env=clean_env(DM_LISTEN="127.0.0.1:1", DM_API_KEY="k"))
    assert p.returncode == 1
    assert "http://127.0.0.1:1" in one_line(p.stderr)


# ---- safe first start and admin commands ----


def test_keys_and_scan_refuse_a_missing_database():
    with tempfile.TemporaryDirectory() as d:
        for args in (["keys", "list"], ["keys", "create", "--name", "x", "--scope", "read"],
                     ["keys", "revoke", "x"], ["scan"]):
            p = run(args, d, env=clean_env(DM_DNS_SERVERS="127.0.0.1:1"))
            assert p.returncode == 1, (args, p.stdout, p.stderr)
            line = one_line(p.stderr)
            assert os.path.join(os.path.realpath(d), "domainmon.db") in line, line
            assert "DATABASE_URL" in line and "--database-url" in line, line
            assert "dmk_" not in p.stdout
            assert os.listdir(d) == [], f"{args} created {os.listdir(d)}"


def test_port_taken_at_first_start_keeps_the_key_for_the_good_start():
    m = DomainMon(env={"DM_DNS_SERVERS": "127.0.0.1:1"})
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", m.port))
    blocker.listen()
    try:
        p = subprocess.run([m.binary, "all"], cwd=m.workdir, env=m.env(), capture_output=True,
                           text=True, timeout=30)
    finally:
        blocker.close()
    assert p.returncode != 0
    assert "dmk_" not in p.stdout, "a key was shown by a start that failed"
    assert f"cannot listen on 127.0.0.1:{m.port}: Address already in use" in p.stderr, p.stderr
    assert "port 0" not in p.stderr and "input/output error" not in p.stderr, p.stderr

    m.start()
    try:
        assert m.admin_key, f"the good start printed no key:\n{m.stdout_lines()}"
        assert len([x for x in m.stdout_lines() if "dmk_" in x]) == 1
        assert m.request("GET", "/api/v1/domains").status_code == 200
        m.restart()
        assert not [x for x in m.stdout_lines() if "dmk_" in x][1:], "the key was shown twice"
    finally:
        m.stop()


def test_start_log_names_database_and_settings_that_do_nothing(domainmon_factory):
    m = domainmon_factory(env={"SECRET_KEY": "x"})
    # /healthz answers before the "started" line is written: wait for the line.
    started = wait_for(lambda: [line for line in m.stderr_text().splitlines()
                                if 'msg="started"' in line], timeout=20, what="the start line")
    log = m.stderr_text()
    assert started and f'database="sqlite {os.path.realpath(m.db_path)}"' in started[0], log
    assert "bus=inproc" in started[0] and "bus_url=in-process" in started[0]
    assert "is set but this build does not use it" not in log  # every setting acts
    assert "SECRET_KEY is set but" not in log  # it signs web UI sessions


# ---- the client's verbs ----


def test_domains_add_list_show_rm(mon):
    p = cli(mon, "domains", "add", "example.test", "www.example.test", "bad..name")
    assert p.returncode == 1, p.stderr  # one name refused
    assert "added example.test" in p.stdout and "added www.example.test" in p.stdout
    assert "bad..name" in one_line(p.stderr)
    p = cli(mon, "domains", "add", "example.test")
    assert p.returncode == 0 and "exists example.test" in p.stdout

    p = cli(mon, "domains", "list")
    assert p.returncode == 0, p.stderr
    head, *rows = p.stdout.splitlines()
    assert head.split() == ["NAME", "STATUS", "INTERVAL", "LAST_CHECKED", "LAST_CHANGED",
                            "ERROR"]
    assert [r.split()[0] for r in rows] == ["example.test", "www.example.test"]

    def both_ok():
        p = cli(mon, "domains", "list", "--status", "ok", "--json")
        assert p.returncode == 0, p.stderr
        return sorted(d["name"] for d in json.loads(p.stdout)) == [
            "example.test", "www.example.test"]

    wait_for(both_ok, timeout=20, what="both domains ok")
    p = cli(mon, "domains", "list", "--status", "error")
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 1  # the header alone

    p = cli(mon, "domains", "show", "example.test")
    assert p.returncode == 0
    assert re.search(r"^name +example\.test$", p.stdout, re.M), p.stdout
    assert re.search(r"^status +ok$", p.stdout, re.M), p.stdout
    p = cli(mon, "domains", "show", "example.test", "--json")
    assert json.loads(p.stdout)["name"] == "example.test"
    p = cli(mon, "domains", "show", "nothere.test")
    assert p.returncode == 1 and "404" in one_line(p.stderr)

    p = cli(mon, "domains", "rm", "www.example.test", "nothere.test")
    assert p.returncode == 1
    assert "removed www.example.test" in p.stdout
    assert "nothere.test" in one_line(p.stderr)
    assert mon.request("GET", "/api/v1/domains/www.example.test").status_code == 404

    # A key without write scope, and a bad key: the detail on one line, exit 1.
    ro = mon.create_key("ro", "read")
    p = cli(mon, "domains", "add", "x.example.test", key=ro)
    assert p.returncode == 1 and "403" in one_line(p.stderr)
    p = cli(mon, "domains", "list", key="dmk_nope")
    assert p.returncode == 1 and "DM_API_KEY" in one_line(p.stderr)


def test_records_history_changes(mon, knot):
    p = cli(mon, "domains", "add", "example.test", "--types", "A,MX")
    assert p.returncode == 0, p.stderr

    def records():
        p = cli(mon, "records", "example.test")
        return p.stdout if p.returncode == 0 and "192.0.2.1" in p.stdout else None

    out = wait_for(records, timeout=20, what="records of example.test")
    assert re.search(r"^A +300 +ok +192\.0\.2\.1$", out, re.M), out
    assert re.search(r"^MX +300 +ok +10 mail\.example\.test\.$", out, re.M), out
    assert re.search(r"^ +20 mail2\.example\.test\.$", out, re.M), out
    p = cli(mon, "records", "example.test", "--json")
    assert {r["type"] for r in json.loads(p.stdout)["records"]} == {"A", "MX"}

    p = cli(mon, "history", "example.test")
    assert p.returncode == 0, p.stderr
    ts = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    assert re.search(rf"^{ts} example\.test A new \+192\.0\.2\.1 \+192\.0\.2\.2$", p.stdout,
                     re.M), p.stdout
    assert re.search(rf"^{ts} example\.test MX new \+10 mail\.example\.test\. "
                     r"\+20 mail2\.example\.test\.$", p.stdout, re.M), p.stdout

    p = cli(mon, "changes", "--since", "1h")
    assert p.returncode == 0 and "example.test A new +192.0.2.1 +192.0.2.2" in p.stdout, p.stdout
    p = cli(mon, "changes", "--since", "2000-01-01", "--domain", "example.test", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    entries = doc.get("changes", doc.get("history"))
    assert entries and {c["type"] for c in entries} == {"A", "MX"}
    p = cli(mon, "changes", "--domain", "nothere.test")
    assert p.returncode in (0, 1)  # empty list, or the fallback's 404: never a crash
    p = cli(mon, "history", "nothere.test")
    assert p.returncode == 1 and "404" in one_line(p.stderr)


def test_import_list_and_csv(mon, tmp_path):
    (tmp_path / "names.txt").write_text("# mine\na.example.test\n\nb.example.test\n")
    p = cli(mon, "domains", "import", str(tmp_path / "names.txt"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "2 names: 2 added, 0 already present, 0 invalid"

    (tmp_path / "export.csv").write_text(
        'owner,Domain,note\n"Smith, J",a.example.test,x\nann,c.example.test,\nbob,"bad..x",y\n')
    p = cli(mon, "domains", "import", str(tmp_path / "export.csv"))
    assert p.returncode == 1  # one invalid name
    assert p.stdout.strip().splitlines()[-1] == "3 names: 1 added, 1 already present, 1 invalid"
    assert "line 4: bad..x" in one_line(p.stderr)

    p = cli(mon, "domains", "import", "-", "--column", "2", "--json",
            input="x,d.example.test\ny,e.example.test\n")
    assert p.returncode == 0, p.stderr
    assert [r["status"] for r in json.loads(p.stdout)] == ["added", "added"]
    p = cli(mon, "domains", "list", "--json")
    assert sorted(d["name"] for d in json.loads(p.stdout)) == [
        "a.example.test", "b.example.test", "c.example.test", "d.example.test",
        "e.example.test"]

    p = cli(mon, "domains", "import", str(tmp_path / "export.csv"), "--column", "nope")
    assert p.returncode == 2 and "nope" in one_line(p.stderr)


def test_watch_prints_a_change_as_one_line(mon, knot):
    knot.update("example.test", ["update add watch.example.test. 300 A 192.0.2.200"])
    assert cli(mon, "domains", "add", "watch.example.test", "--types", "A").returncode == 0
    wait_for(lambda: "192.0.2.200" in cli(mon, "records", "watch.example.test").stdout,
             timeout=20, what="first scan of watch.example.test")

    env = mon.env({"DM_API_KEY": mon.admin_key})
    w = subprocess.Popen([DM_BIN, "watch"], cwd=mon.workdir, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, bufsize=1)
    lines = []

    def reader():
        for line in w.stdout:
            lines.append(line.rstrip("\n"))

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    n = [0]

    def sentinel_seen():
        """A domain added now shows up once the stream is open (a change made before that
        would not be sent); each call adds a new one."""
        n[0] += 1
        name = f"s{n[0]}.example.test"
        assert cli(mon, "domains", "add", name, "--types", "A").returncode == 0
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            if any(line.endswith(f" {name} added") for line in lines):
                return True
            time.sleep(0.05)
        return False

    def change_to(new, old):
        knot.update("example.test", [
            f"update delete watch.example.test. A {old}",
            f"update add watch.example.test. 300 A {new}",
        ])
        want = re.compile(rf"^\d\d:\d\d:\d\d watch\.example\.test A \+{re.escape(new)} "
                          rf"-{re.escape(old)}$")
        wait_for(lambda: any(want.match(line) for line in lines), timeout=20,
                 what=f"the change line to {new} (seen: {lines})")

    try:
        wait_for(sentinel_seen, timeout=30, interval=0, what="watch connected")
        change_to("192.0.2.201", "192.0.2.200")
        assert not any("\033[" in line for line in lines), "colour into a pipe"
        # A restart of the service ends the stream: watch reconnects and goes on.
        mon.restart()
        wait_for(sentinel_seen, timeout=40, interval=0, what="watch connected again")
        change_to("192.0.2.202", "192.0.2.201")
        assert w.poll() is None
    finally:
        w.terminate()
        w.wait(timeout=10)
        t.join(timeout=5)


def test_scan_verbose_prints_a_line_per_domain(knot, domainmon_factory):
    # The running service asks a closed port, so whatever it scans before it stops records
    # nothing, and the one-off scan below sees example.test's records for the first time.
    m = domainmon_factory(env={**DNS_ENV, "DM_DNS_SERVERS": "127.0.0.1:9",
                               "DM_SCAN_INTERVAL": "1h"})
    assert cli(m, "domains", "add", "example.test", "x.unserved.test",
               "--types", "A,MX").returncode == 0
    m.stop()
    p = m.cli("scan", "-v", env={**DNS_ENV, "DM_DNS_SERVERS": knot.server()})
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out[0].startswith("domains=2 "), out
    assert "example.test ok changes=2" in out
    bad = [line for line in out if line.startswith("x.unserved.test error changes=0 ")]
    assert bad and re.search(r'first_error="(A|MX)(, (A|MX))*: [^;"]+"$', bad[0]), out


# ---- backup ----


def test_backup_of_a_running_service_restores(mon, tmp_path):
    assert cli(mon, "domains", "add", "example.test", "--types", "A,MX").returncode == 0
    wait_for(lambda: len(mon.request("GET", "/api/v1/domains/example.test/history")
                         .json()["changes"]) == 2, timeout=20, what="history of example.test")
    copy = tmp_path / "copy.db"
    p = mon.cli("backup", str(copy))
    assert p.returncode == 0, p.stderr
    assert mon.running

    db = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    try:
        assert [r[0] for r in db.execute("SELECT name FROM domains")] == ["example.test"]
        assert db.execute("SELECT count(*) FROM dns_changes").fetchone()[0] == 2
    finally:
        db.close()
    assert not os.path.exists(f"{copy}-wal")

    # Refusals: an existing file is never overwritten; PostgreSQL is pg_dump's job.
    p = mon.cli("backup", str(copy))
    assert p.returncode == 1 and "already exists" in one_line(p.stderr)
    p = mon.cli("backup", str(tmp_path / "pg.db"),
                env={"DATABASE_URL": "postgres://u:secret@127.0.0.1:1/x"})
    assert p.returncode == 1 and "pg_dump" in one_line(p.stderr)
    assert "secret" not in p.stderr and not (tmp_path / "pg.db").exists()

    # The copy is a working store: a service on it serves the domain and its history.
    restored = DomainMon(env={"DM_DNS_SERVERS": "127.0.0.1:1", "DM_SCAN_INTERVAL": "1h"},
                         database_url=f"sqlite://{copy}")
    restored.start()
    try:
        assert restored.admin_key is None  # the copied keys are there: no new one
        r = restored.request("GET", "/api/v1/domains/example.test/history", key=mon.admin_key)
        assert r.status_code == 200 and {c["type"] for c in r.json()["changes"]} == {"A", "MX"}
    finally:
        restored.stop()


@pytest.mark.skipif(not os.environ.get("DM_TEST_PG_URL"), reason="needs DM_TEST_PG_URL")
def test_start_log_names_a_postgres_database_and_backup_points_to_pg_dump(domainmon_factory):
    m = domainmon_factory(database="postgres")
    started = wait_for(lambda: [line for line in m.stderr_text().splitlines()
                                if 'msg="started"' in line], timeout=20, what="the start line")
    db = m.database_url.partition("?")[0]
    assert started and 'database="postgres ' in started[0], started
    assert db.rsplit("/", 1)[1] in started[0]
    p = m.cli("backup", os.path.join(m.workdir, "x.db"))
    assert p.returncode == 1 and "pg_dump" in one_line(p.stderr)
