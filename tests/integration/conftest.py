"""Shared integration-test harness: runs the real `domainmon` binary on a free 127.0.0.1 port
in a fresh temporary folder and talks to it over HTTP (standard library only).

    from conftest import DomainMon

    m = DomainMon(env={"DM_SCAN_INTERVAL": "1", "DM_MIN_INTERVAL": "1"})
    m.start()                      # waits for /healthz; m.admin_key holds the first key
    r = m.request("POST", "/api/v1/domains", {"name": "example.com"})
    status, headers, body = r      # or r.status_code, r.headers, r.json(), r.text
    m.cli("keys", "list")          # the same binary as a command, on the same database
    m.stop()                       # SIGTERM; asserts exit code 0 within 10 s

Store: SQLite in the instance's folder, or PostgreSQL: DomainMon(database="postgres") makes a
fresh database on the server of DM_TEST_PG_URL (scripts/test.sh starts one) and drops it
afterwards; DomainMon(database_url=URL) shares a database between instances; and
DM_IT_DATABASE=postgres runs every instance of the suite on PostgreSQL.

Fixtures: `domainmon` (a started instance with default settings) and `domainmon_factory`
(start instances with your own environment). Every instance started during a test is
stopped when the test ends, also on failure, and a failed test shows the tail of each
instance's stderr.

Environment: DM_BIN (default build/domainmon), DM_KEEP_TMP=1 keeps the temporary folders,
DM_TEST_PG_URL and DM_IT_DATABASE as above.
"""

import atexit
import http.client
import itertools
import json as jsonlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DM_BIN = os.path.abspath(os.environ.get("DM_BIN") or os.path.join(REPO, "build", "domainmon"))
START_TIMEOUT = float(os.environ.get("DM_START_TIMEOUT", "20"))
STOP_TIMEOUT = 10.0

# Only these variables reach the binary from the outer environment: a developer's own
# DATABASE_URL or RABBITMQ_URL must never leak into a test.
PASS_ENV = ("PATH", "LANG", "LC_ALL", "TMPDIR", "ASAN_OPTIONS", "UBSAN_OPTIONS",
            "LSAN_OPTIONS", "TSAN_OPTIONS")

ADMIN_KEY_RE = re.compile(r"admin API key.*?(dmk_[0-9A-Za-z_]+)")

PG_URL = os.environ.get("DM_TEST_PG_URL") or None
IT_DATABASE = os.environ.get("DM_IT_DATABASE") or "sqlite"
PSQL = shutil.which("psql") or "/usr/bin/psql"
_pg_databases = itertools.count()

_DEFAULT = object()
_live = []  # every DomainMon started and not yet stopped
_created = []  # every DomainMon made, for the clean-up of folders at the end


def free_port(kind=socket.SOCK_STREAM):
    """A port on 127.0.0.1 that nothing was bound to a moment ago."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- PostgreSQL databases for instances (the server is DM_TEST_PG_URL's) ----


def pg_url_with_db(db):
    """DM_TEST_PG_URL (postgres://user@host:port/db?params) naming another database."""
    head, sep, query = PG_URL.partition("?")
    scheme, _, rest = head.partition("://")
    hostpart = rest.split("/", 1)[0]
    return f"{scheme}://{hostpart}/{db}" + (sep + query if sep else "")


def pg_db_name(url):
    return url.partition("?")[0].rsplit("/", 1)[1]


def psql(sql, url=None):
    """Runs SQL with psql on DM_TEST_PG_URL's server (or `url`); returns the unaligned
    output."""
    p = subprocess.run([PSQL, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                        "-d", url or PG_URL, "-c", sql],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"psql {sql!r} failed: {p.stderr}"
    return p.stdout.strip()


def pg_create_database():
    """A fresh, empty database; returns its URL."""
    if not PG_URL:
        pytest.fail("a PostgreSQL instance needs DM_TEST_PG_URL (scripts/test.sh sets it)")
    name = f"dm_it_{os.getpid()}_{next(_pg_databases)}"
    psql(f"CREATE DATABASE {name}")
    return pg_url_with_db(name)


def pg_drop_database(url):
    psql(f"DROP DATABASE IF EXISTS {pg_db_name(url)} WITH (FORCE)")


class Response:
    """One HTTP answer. Unpacks as (status, headers, body) where body is the parsed JSON
    when the response is JSON, else the text; also offers status_code, headers (case-
    insensitive), content (bytes), text and json()."""

    def __init__(self, status, headers, content):
        self.status_code = status
        self.status = status
        self.headers = headers
        self.content = content
        self.text = content.decode("utf-8", errors="replace")
        ctype = headers.get("Content-Type", "") or ""
        self.body = self.text
        if content and "json" in ctype:
            try:
                self.body = jsonlib.loads(self.text)
            except ValueError:
                self.body = self.text

    def json(self):
        return jsonlib.loads(self.text)

    def __iter__(self):
        return iter((self.status_code, self.headers, self.body))

    def __repr__(self):
        return f"<Response {self.status_code} {self.text[:200]!r}>"


class DomainMon:
    """One `domainmon` process (by default `domainmon all`) in its own temporary folder,
    listening on a free 127.0.0.1 port, with its SQLite database in that folder, or (with
    database="postgres") a fresh PostgreSQL database, or the database at `database_url`."""

    def __init__(self, env=None, args=("all",), binary=None, workdir=None, database=None,
                 database_url=None):
        self.binary = binary or DM_BIN
        self.args = list(args)
        self.own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="domainmon-it-")
        self.port = free_port()
        self.listen = f"127.0.0.1:{self.port}"
        self.base_url = f"http://{self.listen}"
        self.db_path = os.path.join(self.workdir, "domainmon.db")
        self.own_pg_database = False
        if database_url:
            self.database_url = database_url
        elif (database or IT_DATABASE) == "postgres":
            self.database_url = pg_create_database()
            self.own_pg_database = True
        else:
            self.database_url = "sqlite://" + self.db_path
        self.stderr_path = os.path.join(self.workdir, "stderr.log")
        self.stdout_path = os.path.join(self.workdir, "stdout.log")
        self.extra_env = dict(env or {})
        self.proc = None
        self.admin_key = None
        self.returncode = None
        self.connects = 0  # connections opened by request(): keep-alive means few
        self._conn = None
        self._stdout_lines = []
        self._key_seen = threading.Event()
        self._reader = None
        _created.append(self)

    # ---- environment ----

    def env(self, extra=None):
        """The environment the binary runs with: a clean base, this instance's address,
        database, a DNS server nobody answers on (tests never reach the internet) and
        DM_DEFAULT_CHECKS=dns, then the test's variables, then `extra`."""
        e = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
        e.update({
            "DM_LISTEN": self.listen,
            "DATABASE_URL": self.database_url,
            "DM_DNS_SERVERS": f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
            # DNS alone unless a test asks for more: fixture domains point at documentation
            # addresses (192.0.2.x), and no test sends TLS, RDAP or WHOIS queries there.
            "DM_DEFAULT_CHECKS": "dns",
            # Tests poll, import and hold many streams from one address; the tests of the
            # limits themselves (test_edge.py) set their own.
            "DM_RATE_LIMIT": "1000000/m",
            "DM_RATE_LIMIT_EXPENSIVE": "1000000/m",
            "DM_MAX_CONNECTIONS_PER_IP": "100000",
        })
        e.update(self.extra_env)
        e.update(extra or {})
        return {k: v for k, v in e.items() if v is not None}

    # ---- process ----

    def start(self, timeout=START_TIMEOUT):
        """Starts the process and waits until /healthz answers 200. Raises with the stderr
        tail if it exits or does not become healthy in time."""
        assert self.proc is None, "already started"
        self._key_seen.clear()
        self.returncode = None
        err = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [self.binary, *self.args], cwd=self.workdir, env=self.env(),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        finally:
            err.close()
        _live.append(self)
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()

        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self._reap()
                raise RuntimeError(f"domainmon exited with {rc} during start-up:\n"
                                   f"{self.stderr_tail()}")
            if self._healthy():
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"domainmon not healthy after {timeout}s:\n"
                                   f"{self.stderr_tail()}")
            time.sleep(0.05)
        # The key line is printed before the API listens; give the reader a moment.
        if self.admin_key is None:
            self._key_seen.wait(2.0)
        return self

    def _read_stdout(self):
        with open(self.stdout_path, "ab") as out:
            for raw in iter(self.proc.stdout.readline, b""):
                out.write(raw)
                out.flush()
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                self._stdout_lines.append(line)
                m = ADMIN_KEY_RE.search(line)
                if m:
                    self.admin_key = m.group(1)
                    self._key_seen.set()

    def _healthy(self):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            try:
                c.request("GET", "/healthz")
                return c.getresponse().status == 200
            finally:
                c.close()
        except OSError:
            return False

    def _reap(self):
        if self._reader:
            self._reader.join(timeout=2)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        if self in _live:
            _live.remove(self)
        self.proc = None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT, check=True):
        """SIGTERM, then waits. With `check`, asserts that it exited with 0 within
        `timeout` seconds (it is killed either way). Returns the exit code."""
        self.close_connection()
        if self.proc is None:
            return self.returncode
        proc = self.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self._reap()
            self.returncode = None
            if check:
                raise AssertionError(f"domainmon did not exit within {timeout}s of SIGTERM:\n"
                                     f"{self.stderr_tail()}")
            return None
        self.stop_seconds = time.monotonic() - t0
        self.returncode = rc
        self._reap()
        if check:
            assert rc == 0, f"domainmon exited with {rc} after SIGTERM:\n{self.stderr_tail()}"
        return rc

    def restart(self):
        self.stop()
        return self.start()

    def kill(self):
        """Ends the process without asking (cleanup after a failure)."""
        self.close_connection()
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self._reap()

    @property
    def on_postgres(self):
        return self.database_url.startswith(("postgres://", "postgresql://"))

    def cleanup(self):
        self.kill()
        if self.own_pg_database and not os.environ.get("DM_KEEP_TMP"):
            pg_drop_database(self.database_url)
            self.own_pg_database = False
        if self.own_workdir and not os.environ.get("DM_KEEP_TMP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ---- output ----

    def stderr_text(self):
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stderr_tail(self, lines=60):
        return "\n".join(self.stderr_text().splitlines()[-lines:])

    def stdout_lines(self):
        return list(self._stdout_lines)

    # ---- HTTP ----

    def connection(self, timeout=10):
        """A new connection of your own to the server (for raw or keep-alive tests)."""
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def close_connection(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method, path, body=None, *, json=None, params=None, key=_DEFAULT,
                headers=None, timeout=10):
        """Sends one request over a persistent (keep-alive) connection. `body`/`json`: a
        dict or list is sent as JSON, str or bytes as is (Content-Type application/json
        unless `headers` says otherwise; a header set to None is not sent). `params`: a
        dict for the query string. `key`: the API key (default: the admin key; None: no
        Authorization header)."""
        if json is not None:
            body = json
        if params:
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode(params)
        hdrs = {}
        if key is _DEFAULT:
            key = self.admin_key
        if key is not None:
            hdrs["Authorization"] = f"Bearer {key}"
        data = None
        if body is not None:
            if isinstance(body, (dict, list)):
                data = jsonlib.dumps(body).encode()
            elif isinstance(body, str):
                data = body.encode()
            else:
                data = bytes(body)
            hdrs["Content-Type"] = "application/json"
        for k, v in (headers or {}).items():
            for existing in [h for h in hdrs if h.lower() == k.lower()]:
                del hdrs[existing]
            if v is not None:
                hdrs[k] = v

        for attempt in (1, 2):
            fresh = self._conn is None
            if fresh:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                        timeout=timeout)
                self.connects += 1
            self._conn.timeout = timeout
            try:
                self._conn.request(method, path, body=data, headers=hdrs)
                resp = self._conn.getresponse()
                content = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.BadStatusLine):
                # A kept-alive connection the server had already closed: retry once on a
                # new one. A fresh connection failing is a real failure.
                self.close_connection()
                if fresh or attempt == 2:
                    raise
                continue
            if (resp.getheader("Connection", "") or "").lower() == "close" or resp.will_close:
                self.close_connection()
            return Response(resp.status, resp.headers, content)
        raise AssertionError("unreachable")

    # ---- the binary as a command ----

    def cli(self, *args, env=None, timeout=30, input=None):
        """Runs `domainmon ARGS...` in this instance's folder, on its database. Returns the
        CompletedProcess (text mode)."""
        return subprocess.run([self.binary, *args], cwd=self.workdir, env=self.env(env),
                              capture_output=True, text=True, timeout=timeout, input=input)

    def create_key(self, name, scope):
        """A new API key made with `domainmon keys create`."""
        p = self.cli("keys", "create", "--name", name, "--scope", scope)
        assert p.returncode == 0, f"keys create failed ({p.returncode}): {p.stderr}"
        return p.stdout.strip()


def _cleanup_all():
    for m in list(_created):
        m.cleanup()


atexit.register(_cleanup_all)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(autouse=True)
def _domainmon_guard(request):
    """After each test: shows the stderr of every instance made during it when the test
    failed, then kills what is still running and removes their folders. Instances of
    wider-scoped fixtures are left to those fixtures."""
    before = set(map(id, _created))
    yield
    failed = any(getattr(request.node, "rep_" + w, None) is not None and
                 getattr(request.node, "rep_" + w).failed for w in ("setup", "call"))
    made = [m for m in list(_created) if id(m) not in before]
    for m in made:
        if failed:
            print(f"\n---- domainmon stderr ({m.stderr_path}) ----\n{m.stderr_tail()}")
        m.cleanup()
        _created.remove(m)


@pytest.fixture
def domainmon_factory(_domainmon_guard):
    """start(env=None, args=("all",), database=None, database_url=None) -> a started
    DomainMon. Each is stopped with SIGTERM when the test ends and must exit with 0 within
    10 s; its folder (and its own PostgreSQL database) is then removed."""
    started = []

    def start(env=None, args=("all",), database=None, database_url=None):
        m = DomainMon(env=env, args=args, database=database, database_url=database_url)
        started.append(m)
        m.start()
        return m

    yield start
    errors = []
    for m in started:
        try:
            m.stop()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


@pytest.fixture
def domainmon(domainmon_factory):
    """A started `domainmon all` with default settings; m.admin_key is its admin key."""
    return domainmon_factory()
