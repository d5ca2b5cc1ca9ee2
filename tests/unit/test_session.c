/* lib/session: cookie values (form, signature, expiry), the session row behind them (on a
 * fresh SQLite store per test), sign-out, the Cookie header reader, Set-Cookie and the
 * Origin rule for writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dm/apikey.h"
#include "dm/error.h"
#include "dm/session.h"
#include "dm/store.h"

#define NOW 1800000000000LL

struct fixture {
        char dir[64];
        struct dm_store *st;
        struct dm_session_secret secret;
        struct dm_api_key key;
        char key_text[DM_APIKEY_LEN];
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        char url[128], err[256];
        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/dm-test-session-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(url, sizeof(url), "sqlite://%s/s.db", f->dir);
        assert_int_equal(dm_store_open(url, err, sizeof(err), &f->st), 0);
        assert_int_equal(dm_store_migrate(f->st, NULL), 0);
        assert_int_equal(dm_session_secret_derive("test secret", 11, &f->secret), 0);
        assert_int_equal(dm_apikey_create(f->st, "ui", DM_SCOPE_WRITE, f->key_text, &f->key), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        char path[128];
        dm_store_free(f->st);
        static const char *const files[] = {"s.db", "s.db-wal", "s.db-shm"};
        for (size_t i = 0; i < 3; i++) {
                snprintf(path, sizeof(path), "%s/%s", f->dir, files[i]);
                unlink(path);
        }
        rmdir(f->dir);
        free(f);
        return 0;
}

static void test_open_verify_close(void **state)
{
        struct fixture *f = *state;
        char value[DM_SESSION_VALUE_MAX];
        struct dm_session s, v;
        struct dm_api_key k;

        assert_int_equal(dm_session_open(f->st, &f->secret, &f->key, NOW, value, &s), 0);
        assert_int_equal(strncmp(value, "v1.", 3), 0);
        assert_int_equal(s.scope, DM_SCOPE_WRITE);
        assert_int_equal(s.expires_at, NOW + DM_SESSION_TTL_MS);
        /* The store keeps a hash of the token, never the token itself. */
        assert_null(strstr(value, s.id));

        assert_int_equal(dm_session_verify(f->st, &f->secret, value, NOW + 1, &v, &k), 0);
        assert_int_equal(v.scope, DM_SCOPE_WRITE);
        assert_string_equal(k.key_id, f->key.key_id);
        assert_string_equal(k.name, "ui");

        /* Signed out: the very same cookie is refused. */
        assert_int_equal(dm_session_close(f->st, &f->secret, value, NOW + 2), 0);
        assert_int_equal(dm_session_verify(f->st, &f->secret, value, NOW + 3, &v, NULL), DM_EACCES);
        assert_int_equal(dm_session_close(f->st, &f->secret, value, NOW + 4), DM_ENOENT);
}

static void test_expiry_and_revocation(void **state)
{
        struct fixture *f = *state;
        char value[DM_SESSION_VALUE_MAX];
        struct dm_session s, v;

        assert_int_equal(dm_session_open(f->st, &f->secret, &f->key, NOW, value, &s), 0);
        assert_int_equal(
            dm_session_verify(f->st, &f->secret, value, NOW + DM_SESSION_TTL_MS, &v, NULL),
            DM_EACCES);
        assert_int_equal(dm_session_verify(f->st, &f->secret, value, NOW + 10, &v, NULL), 0);
        /* Revoking the key ends its sessions at once. */
        assert_int_equal(dm_store_key_revoke(f->st, f->key.key_id, NOW + 20), 0);
        assert_int_equal(dm_session_verify(f->st, &f->secret, value, NOW + 30, &v, NULL),
                         DM_EACCES);
}

/* Any byte changed, another secret, another scope claimed: refused. */
static void test_tampering(void **state)
{
        struct fixture *f = *state;
        char value[DM_SESSION_VALUE_MAX], t[DM_SESSION_VALUE_MAX];
        struct dm_session s, v;
        struct dm_session_claims c;
        struct dm_session_secret other;

        assert_int_equal(dm_session_open(f->st, &f->secret, &f->key, NOW, value, &s), 0);
        assert_int_equal(dm_session_claims_check(&f->secret, value, NOW, &c), 0);
        assert_string_equal(c.key_id, f->key.key_id);
        assert_int_equal(c.scope, DM_SCOPE_WRITE);

        for (size_t i = 0; value[i]; i++) {
                memcpy(t, value, sizeof(t));
                t[i] = t[i] == '0' ? '1' : (t[i] == 'a' ? 'b' : '0');
                assert_int_equal(dm_session_claims_check(&f->secret, t, NOW, &c), DM_EACCES);
        }
        assert_int_equal(dm_session_secret_derive("another", 7, &other), 0);
        assert_int_equal(dm_session_claims_check(&other, value, NOW, &c), DM_EACCES);
        assert_int_equal(dm_session_verify(f->st, &other, value, NOW, &v, NULL), DM_EACCES);

        /* "write" -> "admin" in place: the signature no longer matches. */
        memcpy(t, value, sizeof(t));
        char *sc = strstr(t, ".write.");
        assert_non_null(sc);
        memcpy(sc + 1, "admin", 5);
        assert_int_equal(dm_session_claims_check(&f->secret, t, NOW, &c), DM_EACCES);

        static const char *const junk[] = {"",
                                           "v1",
                                           "v1.....",
                                           "v2.a.b.c.d.e",
                                           "x.y.z",
                                           "v1.a.b.write.1.",
                                           "........................................"};
        for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
                assert_int_equal(dm_session_claims_check(&f->secret, junk[i], NOW, &c), DM_EACCES);
        /* Longer than any real value. */
        char big[DM_SESSION_VALUE_MAX + 10];
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        assert_int_equal(dm_session_claims_check(&f->secret, big, NOW, &c), DM_EACCES);
        assert_int_equal(dm_session_claims_check(&f->secret, NULL, NOW, &c), DM_EACCES);
}

/* A session whose row names another key than the cookie, or whose scope differs, is
 * refused even with a good signature (the row is the authority). */
static void test_row_must_match(void **state)
{
        struct fixture *f = *state;
        char value[DM_SESSION_VALUE_MAX];
        struct dm_session s, v;
        struct dm_api_key other;
        char other_text[DM_APIKEY_LEN];

        assert_int_equal(dm_apikey_create(f->st, "other", DM_SCOPE_READ, other_text, &other), 0);
        assert_int_equal(dm_session_open(f->st, &f->secret, &other, NOW, value, &s), 0);
        assert_int_equal(dm_session_verify(f->st, &f->secret, value, NOW, &v, NULL), 0);
        assert_int_equal(v.scope, DM_SCOPE_READ);
        /* Rewrite the row to point at the write key: the cookie no longer matches it. */
        assert_int_equal(dm_store_session_delete(f->st, s.id), 0);
        memcpy(s.key_id, f->key.key_id, sizeof(s.key_id));
        assert_int_equal(dm_store_session_insert(f->st, &s), 0);
        assert_int_equal(dm_session_verify(f->st, &f->secret, value, NOW, &v, NULL), DM_EACCES);
}

static void test_secret_load(void **state)
{
        struct fixture *f = *state;
        struct dm_session_secret a, b, c;
        bool gen = true;

        assert_int_equal(dm_session_secret_load(f->st, "configured", &a, &gen), 0);
        assert_false(gen);
        assert_int_equal(dm_session_secret_derive("configured", 10, &b), 0);
        assert_memory_equal(a.key, b.key, sizeof(a.key));
        /* Unset: made once and kept, so a second load (a restart) gets the same key. */
        assert_int_equal(dm_session_secret_load(f->st, NULL, &b, &gen), 0);
        assert_true(gen);
        assert_int_equal(dm_session_secret_load(f->st, "", &c, &gen), 0);
        assert_true(gen);
        assert_memory_equal(b.key, c.key, sizeof(b.key));
        assert_memory_not_equal(a.key, b.key, sizeof(a.key));
        assert_int_equal(dm_session_secret_derive("", 0, &c), DM_EINVAL);
}

static void test_cookie_find(void **state)
{
        char v[64];

        assert_int_equal(dm_session_cookie_find("dm_session=abc", v, sizeof(v)), 0);
        assert_string_equal(v, "abc");
        assert_int_equal(dm_session_cookie_find("a=1; dm_session=x.y; b=2", v, sizeof(v)), 0);
        assert_string_equal(v, "x.y");
        assert_int_equal(dm_session_cookie_find("a=1;dm_session = \"q\" ;b", v, sizeof(v)), 0);
        assert_string_equal(v, "q");
        assert_int_equal(
            dm_session_cookie_find("dm_session=first; dm_session=second", v, sizeof(v)), 0);
        assert_string_equal(v, "first");
        assert_int_equal(dm_session_cookie_find("xdm_session=1; dm_sessionx=2", v, sizeof(v)),
                         DM_ENOENT);
        assert_int_equal(dm_session_cookie_find("", v, sizeof(v)), DM_ENOENT);
        assert_int_equal(dm_session_cookie_find(";;;", v, sizeof(v)), DM_ENOENT);
        assert_int_equal(dm_session_cookie_find("dm_session", v, sizeof(v)), DM_ENOENT);
        assert_int_equal(dm_session_cookie_find(NULL, v, sizeof(v)), DM_ENOENT);
        assert_int_equal(dm_session_cookie_find("dm_session=", v, sizeof(v)), 0);
        assert_string_equal(v, "");
        assert_int_equal(dm_session_cookie_find("dm_session=0123456789", v, 5), DM_E2BIG);
}

static void test_set_cookie(void **state)
{
        char h[DM_SESSION_SET_COOKIE_MAX];

        assert_int_equal(dm_session_set_cookie("v", 60, false, h, sizeof(h)), 0);
        assert_string_equal(h, "dm_session=v; Path=/; Max-Age=60; HttpOnly; SameSite=Strict");
        assert_int_equal(dm_session_set_cookie("v", 60, true, h, sizeof(h)), 0);
        assert_non_null(strstr(h, "; Secure"));
        assert_int_equal(dm_session_set_cookie(NULL, 60, false, h, sizeof(h)), 0);
        assert_string_equal(h, "dm_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
        assert_int_equal(dm_session_set_cookie("v", 60, false, h, 10), DM_E2BIG);
}

static void test_origin(void **state)
{
        const char *host = "127.0.0.1:8080";

        assert_int_equal(dm_session_origin_check("GET", "https://evil.example", host, NULL), 0);
        assert_int_equal(dm_session_origin_check("HEAD", NULL, host, NULL), 0);
        assert_int_equal(dm_session_origin_check("POST", "http://127.0.0.1:8080", host, NULL), 0);
        assert_int_equal(dm_session_origin_check("DELETE", "https://127.0.0.1:8080", host, NULL),
                         0);
        assert_int_equal(
            dm_session_origin_check("PATCH", "HTTP://Mon.Example", "mon.example", NULL), 0);
        assert_int_equal(dm_session_origin_check("POST", "http://evil.example", host, NULL),
                         DM_EPERM);
        assert_int_equal(dm_session_origin_check("POST", "http://127.0.0.1:9090", host, NULL),
                         DM_EPERM);
        assert_int_equal(dm_session_origin_check("POST", "http://127.0.0.1", host, NULL), DM_EPERM);
        assert_int_equal(dm_session_origin_check("POST", "null", host, NULL), DM_EPERM);
        assert_int_equal(dm_session_origin_check("POST", "ftp://127.0.0.1:8080", host, NULL),
                         DM_EPERM);
        assert_int_equal(dm_session_origin_check("POST", "http://127.0.0.1:8080/x", host, NULL),
                         DM_EPERM);
        assert_int_equal(dm_session_origin_check("POST", "http://127.0.0.1:8080", NULL, NULL),
                         DM_EPERM);
        /* No Origin: only a browser's own same-origin marker lets a write through. */
        assert_int_equal(dm_session_origin_check("POST", NULL, host, NULL), DM_EPERM);
        assert_int_equal(dm_session_origin_check("POST", NULL, host, "cross-site"), DM_EPERM);
        assert_int_equal(dm_session_origin_check("POST", NULL, host, "same-site"), DM_EPERM);
        assert_int_equal(dm_session_origin_check("POST", NULL, host, "same-origin"), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_open_verify_close, setup, teardown),
            cmocka_unit_test_setup_teardown(test_expiry_and_revocation, setup, teardown),
            cmocka_unit_test_setup_teardown(test_tampering, setup, teardown),
            cmocka_unit_test_setup_teardown(test_row_must_match, setup, teardown),
            cmocka_unit_test_setup_teardown(test_secret_load, setup, teardown),
            cmocka_unit_test(test_cookie_find),
            cmocka_unit_test(test_set_cookie),
            cmocka_unit_test(test_origin),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
