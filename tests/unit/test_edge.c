/* The HTTP edge's decisions: entity tags and If-None-Match, CORS origins, the route table's
 * zero value, the headers on every response, and secret masking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm/error.h"
#include "dm/http.h"
#include "dm/secret.h"

static void test_etag(void **state)
{
        char a[DM_HTTP_ETAG_LEN], b[DM_HTTP_ETAG_LEN], c[DM_HTTP_ETAG_LEN];
        (void)state;
        dm_http_etag("{\"a\":1}", 7, a);
        dm_http_etag("{\"a\":1}", 7, b);
        dm_http_etag("{\"a\":2}", 7, c);
        assert_int_equal(strlen(a), 34);
        assert_int_equal(a[0], '"');
        assert_int_equal(a[33], '"');
        assert_string_equal(a, b);
        assert_string_not_equal(a, c);
        /* SHA-256 of the empty string begins e3b0c442 98fc1c14 9afbf4c8 996fb924. */
        dm_http_etag("", 0, a);
        assert_string_equal(a, "\"e3b0c44298fc1c149afbf4c8996fb924\"");
}

static void test_etag_match(void **state)
{
        const char *t = "\"e3b0c44298fc1c149afbf4c8996fb924\"";
        (void)state;
        assert_true(dm_http_etag_match(t, t));
        assert_true(dm_http_etag_match("*", t));
        assert_true(dm_http_etag_match(" * ", t));
        assert_true(dm_http_etag_match("W/\"e3b0c44298fc1c149afbf4c8996fb924\"", t));
        assert_true(dm_http_etag_match("\"x\", \"e3b0c44298fc1c149afbf4c8996fb924\"", t));
        assert_true(dm_http_etag_match("\"x\",W/\"e3b0c44298fc1c149afbf4c8996fb924\"", t));
        assert_false(dm_http_etag_match(NULL, t));
        assert_false(dm_http_etag_match("", t));
        assert_false(dm_http_etag_match("\"x\"", t));
        assert_false(dm_http_etag_match("e3b0c44298fc1c149afbf4c8996fb924", t));   /* unquoted */
        assert_false(dm_http_etag_match("\"e3b0c44298fc1c149afbf4c8996fb924", t)); /* open */
        assert_false(dm_http_etag_match("*x", t));
        assert_false(dm_http_etag_match("\"e3b0c44298fc1c149afbf4c8996fb92\"", t)); /* short */
}

static void test_cors(void **state)
{
        struct dm_http_cors *c = NULL;
        char err[200];
        (void)state;

        assert_int_equal(dm_http_cors_parse(NULL, err, sizeof(err), &c), 0);
        assert_false(dm_http_cors_enabled(c));
        assert_null(dm_http_cors_allow(c, "https://app.example.com"));
        dm_http_cors_free(c);

        assert_int_equal(dm_http_cors_parse("https://app.example.com, http://localhost:3000", err,
                                            sizeof(err), &c),
                         0);
        assert_true(dm_http_cors_enabled(c));
        assert_string_equal(dm_http_cors_allow(c, "https://app.example.com"),
                            "https://app.example.com");
        assert_string_equal(dm_http_cors_allow(c, "http://localhost:3000"),
                            "http://localhost:3000");
        assert_null(dm_http_cors_allow(c, "https://evil.example.com"));
        assert_null(dm_http_cors_allow(c, "https://app.example.com.evil.example"));
        assert_null(dm_http_cors_allow(c, "http://app.example.com"));
        assert_null(dm_http_cors_allow(c, "null"));
        assert_null(dm_http_cors_allow(c, NULL));
        dm_http_cors_free(c);

        assert_int_equal(dm_http_cors_parse("*", err, sizeof(err), &c), 0);
        assert_string_equal(dm_http_cors_allow(c, "https://any.example"), "*");
        dm_http_cors_free(c);

        static const char *const bad[] = {"app.example.com",
                                          "https://app.example.com/",
                                          "https://APP.example.com",
                                          "ftp://x",
                                          "https://",
                                          "https://a.example,",
                                          NULL};
        for (size_t i = 0; bad[i]; i++) {
                c = NULL;
                if (dm_http_cors_parse(bad[i], err, sizeof(err), &c) != DM_EINVAL)
                        print_error("accepted \"%s\"\n", bad[i]);
                assert_null(c);
                assert_non_null(strstr(err, "DM_CORS_ORIGINS"));
        }
        dm_http_cors_free(NULL);
}

static void h(struct dm_http_request *req, struct dm_http_response *res)
{
}

/* Forgetting the scope locks a route up; only the PUBLIC flag opens one. */
static void test_route_scope_zero_value(void **state)
{
        (void)state;
        struct dm_http_route zero = {.method = DM_HTTP_GET, .pattern = "/x", .handler = h};
        assert_int_equal(dm_http_route_scope(&zero), DM_SCOPE_ADMIN);
        struct dm_http_route pub = {DM_HTTP_GET, "/x", h, DM_SCOPE_NONE, DM_HTTP_ROUTE_PUBLIC};
        assert_int_equal(dm_http_route_scope(&pub), DM_SCOPE_NONE);
        struct dm_http_route rd = {DM_HTTP_GET, "/x", h, DM_SCOPE_READ, 0};
        assert_int_equal(dm_http_route_scope(&rd), DM_SCOPE_READ);
        struct dm_http_route wr = {DM_HTTP_GET, "/x", h, DM_SCOPE_WRITE, DM_HTTP_ROUTE_EXPENSIVE};
        assert_int_equal(dm_http_route_scope(&wr), DM_SCOPE_WRITE);
}

static void test_security_headers(void **state)
{
        (void)state;
        static const char *const want[] = {"X-Content-Type-Options",
                                           "X-Frame-Options",
                                           "Referrer-Policy",
                                           "Content-Security-Policy",
                                           "Cross-Origin-Resource-Policy",
                                           NULL};
        for (size_t i = 0; want[i]; i++) {
                bool found = false;
                for (const struct dm_http_static_header *hd = dm_http_security_headers; hd->name;
                     hd++)
                        found |= strcmp(hd->name, want[i]) == 0;
                assert_true(found);
        }
}

static const char *mask(const char *in)
{
        static char out[512];
        return dm_secret_mask(in, out, sizeof(out));
}

static void test_secret_mask(void **state)
{
        (void)state;
        /* Userinfo passwords, in any URL in the text. */
        assert_string_equal(mask("postgres://app:pw1@db:5432/x"), "postgres://app:****@db:5432/x");
        assert_string_equal(mask("connect to amqp://u:p%40ss@mq/ failed"),
                            "connect to amqp://u:****@mq/ failed");
        assert_string_equal(mask("redis://:pw3@cache:6379/0"), "redis://:****@cache:6379/0");
        assert_string_equal(mask("a redis://:x@h and b amqp://u:y@h2"),
                            "a redis://:****@h and b amqp://u:****@h2");
        /* A password holding '@' and ':' (unencoded): up to the last '@'. */
        assert_string_equal(mask("postgres://u:p@ss:w@db/x"), "postgres://u:****@db/x");
        /* No password: unchanged. */
        assert_string_equal(mask("postgres://app@db/x"), "postgres://app@db/x");
        assert_string_equal(mask("http://example.com/a@b"), "http://example.com/a@b");
        /* Parameters in queries and libpq conninfo. */
        assert_string_equal(mask("postgres://db/x?sslmode=require&password=qpw"),
                            "postgres://db/x?sslmode=require&password=****");
        assert_string_equal(mask("redis://h/0?password=qpw2"), "redis://h/0?password=****");
        assert_string_equal(mask("host=db password=s3cr3t dbname=x"),
                            "host=db password=**** dbname=x");
        assert_string_equal(mask("?PassWord=a&token=b&api_key=c&x=d"),
                            "?PassWord=****&token=****&api_key=****&x=d");
        assert_string_equal(mask("err=\"bad password=abc\""), "err=\"bad password=****\"");
        /* Not secrets: other names, and names that merely end like one. */
        assert_string_equal(mask("key=12 domain=example.com"), "key=12 domain=example.com");
        assert_string_equal(mask("mypassword=x"), "mypassword=x");
        assert_string_equal(mask("password="), "password=");
        /* Output is cut, never overrun. */
        char small[8];
        dm_secret_mask("postgres://u:pw@h", small, sizeof(small));
        assert_int_equal(strlen(small), 7);
        dm_secret_mask("x", small, 0);
        assert_string_equal(mask(NULL), "");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_etag),
            cmocka_unit_test(test_etag_match),
            cmocka_unit_test(test_cors),
            cmocka_unit_test(test_route_scope_zero_value),
            cmocka_unit_test(test_security_headers),
            cmocka_unit_test(test_secret_mask),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
