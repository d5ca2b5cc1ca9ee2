"""The web UI: its pages and assets, the session API behind its sign-in (cookie attributes,
Origin rule, sign-out on the server, a secret that survives a restart), and the browser test
(tests/browser/ui.test.mjs: Debian's chromium driven by playwright-core) against a real
`domainmon all` and a loopback Knot. The browser test saves its screenshots in
docs/screenshots/."""

import http.client
import json
import os
import re
import shutil
import subprocess
import urllib.parse

import pytest

from conftest import REPO
from dnsfixtures import knot_factory  # noqa: F401 - a fixture, used by name

NODE = shutil.which("node") or "/usr/bin/node"
BROWSER_DIR = os.path.join(REPO, "tests", "browser")
# The committed screenshots in docs/screenshots are refreshed only on request
# (DM_UPDATE_SCREENSHOTS=1), so a test run leaves the working tree as it found it.
SHOTS = (os.path.join(REPO, "docs", "screenshots") if os.environ.get("DM_UPDATE_SCREENSHOTS")
         else os.path.join(os.environ.get("TMPDIR", "/tmp"), "dm-ui-screenshots"))

UI_ZONE = r"""$ORIGIN ui.test.
$TTL 300
@     SOA   ns1.ui.test. hostmaster.ui.test. 1 3600 900 604800 300
@     NS    ns1.ui.test.
ns1   A     127.0.0.1
@     A     192.0.2.1
@     MX    10 mail.ui.test.
@     TXT   "v=spf1 -all"
@     TXT   "<script>window.__xss=1</script>"
@     TXT   "<img src=x onerror=\"window.__xss=2\">"
www   A     192.0.2.3
"""


def dns_env(server):
    return {
        "DM_DNS_SERVERS": server,
        "DM_SCAN_INTERVAL": "2",
        "DM_MIN_INTERVAL": "1",
        "DM_DNS_TIMEOUT": "500ms",
        "DM_DNS_RETRIES": "1",
        "DM_DEFAULT_CHECKS": "dns",
        # The alert rule the browser makes points at a loopback receiver.
        "DM_ALLOW_PRIVATE_TARGETS": "1",
    }


def sign_in(m, key=None, origin=True, headers=None):
    """POST /api/v1/session; returns (status, Set-Cookie header, body)."""
    h = {"Origin": m.base_url} if origin else {}
    h.update(headers or {})
    r = m.request("POST", "/api/v1/session", {"key": key or m.admin_key}, key=None, headers=h)
    return r.status, r.headers.get("Set-Cookie"), r.body


def cookie_of(set_cookie):
    return set_cookie.split(";", 1)[0]


def with_cookie(m, method, path, cookie, body=None, origin=None, extra=None):
    h = {"Cookie": cookie}
    if origin:
        h["Origin"] = origin
    h.update(extra or {})
    return m.request(method, path, body, key=None, headers=h)


# ---- pages and assets ----


def test_pages_and_assets(domainmon):
    m = domainmon
    for path in ("/", "/domains/example.com", "/alerts"):
        r = m.request("GET", path, key=None)
        assert r.status == 200, path
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp and "frame-ancestors 'none'" in csp
        assert r.headers["X-Frame-Options"] == "DENY"
        # The page loads its one script from a file; nothing inline.
        assert re.findall(r"<script[^>]*>", r.text) == ['<script src="/ui/app.js" defer>']
        assert not re.search(r"\son[a-z]+=", r.text)  # no inline handlers either
    js = m.request("GET", "/ui/app.js", key=None)
    assert js.status == 200 and js.headers["Content-Type"].startswith("text/javascript")
    # Data goes into the page as text only.
    code = "\n".join(line for line in js.text.splitlines() if not line.strip().startswith("//"))
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in code, sink
    css = m.request("GET", "/ui/style.css", key=None)
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")
    for bad in ("/ui/nope.js", "/ui/..%2Findex.html", "/ui/.hidden"):
        assert m.request("GET", bad, key=None).status in (400, 404), bad
    # The API is untouched: still JSON and still behind a key.
    assert m.request("GET", "/api/v1/domains", key=None).status == 401


# ---- the session API ----


def test_sign_in_cookie_and_sign_out(domainmon):
    m = domainmon
    status, sc, body = sign_in(m)
    assert status == 200, body
    assert body["scope"] == "admin" and body["key_name"] == "admin"
    assert body["expires_at"].endswith("Z")
    attrs = [a.strip() for a in sc.split(";")]
    assert attrs[0].startswith("dm_session=v1.")
    assert "HttpOnly" in attrs and "SameSite=Strict" in attrs and "Path=/" in attrs
    assert "Secure" not in attrs  # plain HTTP here
    cookie = cookie_of(sc)

    r = with_cookie(m, "GET", "/api/v1/session", cookie)
    assert r.status == 200 and r.body["scope"] == "admin"
    assert with_cookie(m, "GET", "/api/v1/domains", cookie).status == 200

    # The live stream opens with the cookie.
    conn = http.client.HTTPConnection("127.0.0.1", m.port, timeout=10)
    conn.request("GET", "/api/v1/events", headers={"Cookie": cookie})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "text/event-stream"
    conn.close()

    # Sign-out ends it on the server: the same cookie is refused from then on.
    r = with_cookie(m, "DELETE", "/api/v1/session", cookie, origin=m.base_url)
    assert r.status == 204
    assert "Max-Age=0" in r.headers["Set-Cookie"]
    assert with_cookie(m, "GET", "/api/v1/domains", cookie).status == 401
    assert with_cookie(m, "GET", "/api/v1/session", cookie).status == 401
    conn = http.client.HTTPConnection("127.0.0.1", m.port, timeout=10)
    conn.request("GET", "/api/v1/events", headers={"Cookie": cookie})
    assert conn.getresponse().status == 401
    conn.close()


def test_writes_need_our_own_origin(domainmon):
    m = domainmon
    _, sc, _ = sign_in(m)
    cookie = cookie_of(sc)
    body = {"name": "csrf.example"}
    for origin, extra in (("http://evil.example", None),
                          ("null", None),
                          (None, None),  # no Origin, no Sec-Fetch-Site
                          (None, {"Sec-Fetch-Site": "cross-site"}),
                          (m.base_url.replace("127.0.0.1", "localhost"), None)):
        r = with_cookie(m, "POST", "/api/v1/domains", cookie, body, origin=origin, extra=extra)
        assert r.status == 403, (origin, extra, r)
        assert r.headers["Content-Type"] == "application/problem+json"
        assert "Origin" in r.body["detail"]
    assert m.request("GET", "/api/v1/domains/csrf.example").status == 404  # nothing stored
    r = with_cookie(m, "DELETE", "/api/v1/session", cookie, origin="http://evil.example")
    assert r.status == 403
    assert with_cookie(m, "GET", "/api/v1/domains", cookie).status == 200  # still signed in

    r = with_cookie(m, "POST", "/api/v1/domains", cookie, body, origin=m.base_url)
    assert r.status == 201, r
    r = with_cookie(m, "POST", "/api/v1/domains", cookie, {"name": "b.example"},
                    extra={"Sec-Fetch-Site": "same-origin"})
    assert r.status == 201, r
    # A key in the Authorization header needs no Origin: scripts and curl go on as before.
    assert m.request("POST", "/api/v1/domains", {"name": "c.example"}).status == 201
    # Sign-in itself is refused from another site's page.
    status, sc2, _ = sign_in(m, headers={"Origin": "http://evil.example"})
    assert status == 403 and sc2 is None


def test_sign_in_errors(domainmon):
    m = domainmon
    status, sc, body = sign_in(m, key="dmk_000000000000_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
    assert status == 401 and sc is None
    assert body["errors"][0]["field"] == "key"
    r = m.request("POST", "/api/v1/session", {"api_key": "x"}, key=None,
                  headers={"Origin": m.base_url})
    assert r.status == 400 and r.body["errors"][0]["field"] in ("api_key", "key")
    r = m.request("POST", "/api/v1/session", "not json", key=None, headers={"Origin": m.base_url})
    assert r.status == 400
    # A forged or altered cookie is a 401, like a bad key.
    _, sc, _ = sign_in(m)
    cookie = cookie_of(sc)
    forged = cookie.replace(".admin.", ".write.")
    assert with_cookie(m, "GET", "/api/v1/domains", forged).status == 401
    assert with_cookie(m, "GET", "/api/v1/domains", cookie[:-1] + ("0" if cookie[-1] != "0" else "1")).status == 401
    assert with_cookie(m, "GET", "/api/v1/domains", "dm_session=garbage").status == 401


def test_scope_and_revocation(domainmon):
    m = domainmon
    key = m.cli("keys", "create", "--name", "viewer", "--scope", "read").stdout.strip()
    status, sc, body = sign_in(m, key=key)
    assert status == 200 and body["scope"] == "read"
    cookie = cookie_of(sc)
    assert with_cookie(m, "GET", "/api/v1/domains", cookie).status == 200
    r = with_cookie(m, "POST", "/api/v1/domains", cookie, {"name": "x.example"}, origin=m.base_url)
    assert r.status == 403 and "scope" in r.body["detail"]
    m.cli("keys", "revoke", "viewer")
    assert with_cookie(m, "GET", "/api/v1/domains", cookie).status == 401


def test_secure_behind_tls_proxy(domainmon):
    _, sc, _ = sign_in(domainmon, headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in [a.strip() for a in sc.split(";")]


def test_generated_secret_survives_a_restart(domainmon_factory):
    m = domainmon_factory()
    _, sc, _ = sign_in(m)
    cookie = cookie_of(sc)
    m.restart()
    assert with_cookie(m, "GET", "/api/v1/domains", cookie).status == 200
    assert "SECRET_KEY is not set" in open(m.stderr_path).read()


def test_secret_key_signs_the_cookies(domainmon_factory):
    m = domainmon_factory(env={"SECRET_KEY": "first secret"})
    _, sc, _ = sign_in(m)
    cookie = cookie_of(sc)
    m.restart()
    assert with_cookie(m, "GET", "/api/v1/domains", cookie).status == 200
    m.stop()
    m.extra_env["SECRET_KEY"] = "another secret"
    m.start()
    assert with_cookie(m, "GET", "/api/v1/domains", cookie).status == 401


# ---- the browser ----


@pytest.fixture
def ui_knot(knot_factory):
    return knot_factory({"ui.test.": UI_ZONE})


def test_browser(ui_knot, domainmon_factory):
    """Sign in, add domains, records, a live change, alerts, keyboard, phone width, the XSS
    case, sign-out: tests/browser/ui.test.mjs in Debian's chromium."""
    assert os.path.exists("/usr/bin/chromium"), "chromium is missing: run scripts/deps.sh"
    assert os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")), \
        "playwright-core is missing: run `npm ci` in tests/browser (scripts/test.sh does)"
    m = domainmon_factory(env=dns_env(ui_knot.server()))
    alerts = m.request("GET", "/api/v1/alerts").status != 404
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DM_URL": m.base_url,
        "DM_KEY": m.admin_key,
        "DM_KNOT_PORT": str(ui_knot.port),
        "DM_ZONE": "ui.test",
        "DM_SHOTS": os.environ.get("DM_SHOTS", SHOTS),
        "DM_ALERTS_API": "1" if alerts else "0",
    }
    p = subprocess.run([NODE, os.path.join(BROWSER_DIR, "ui.test.mjs")], cwd=BROWSER_DIR,
                       env=env, capture_output=True, text=True, timeout=300)
    print(p.stdout)
    assert p.returncode == 0, f"browser test failed:\n{p.stdout}\n{p.stderr}"
    assert re.search(r"# \d+ passed, 0 failed", p.stdout), p.stdout
