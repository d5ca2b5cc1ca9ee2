/* lib/http and lib/json: routing, Allow computation, problem documents, page cursors and
 * the strict JSON reader. No sockets: the server glue is covered by the integration
 * tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dm/error.h"
#include "dm/http.h"
#include "dm/json.h"

static void h_list(struct dm_http_request *req, struct dm_http_response *res)
{
}
static void h_create(struct dm_http_request *req, struct dm_http_response *res)
{
}
static void h_import(struct dm_http_request *req, struct dm_http_response *res)
{
}
static void h_get(struct dm_http_request *req, struct dm_http_response *res)
{
}
static void h_patch(struct dm_http_request *req, struct dm_http_response *res)
{
}
static void h_delete(struct dm_http_request *req, struct dm_http_response *res)
{
}
static void h_records(struct dm_http_request *req, struct dm_http_response *res)
{
}
static void h_root(struct dm_http_request *req, struct dm_http_response *res)
{
}

static const struct dm_http_route domain_routes[] = {
    {DM_HTTP_GET, "/api/v1/domains", h_list, DM_SCOPE_READ, 0},
    {DM_HTTP_POST, "/api/v1/domains", h_create, DM_SCOPE_WRITE, 0},
    {DM_HTTP_POST, "/api/v1/domains/import", h_import, DM_SCOPE_WRITE, 0},
    {DM_HTTP_GET, "/api/v1/domains/{name}", h_get, DM_SCOPE_READ, 0},
    {DM_HTTP_PATCH, "/api/v1/domains/{name}", h_patch, DM_SCOPE_WRITE, 0},
    {DM_HTTP_DELETE, "/api/v1/domains/{name}", h_delete, DM_SCOPE_WRITE, 0},
    {0},
};

/* A second table, as another module would add it. */
static const struct dm_http_route more_routes[] = {
    {DM_HTTP_GET, "/api/v1/domains/{name}/records/{type}", h_records, DM_SCOPE_READ, 0},
    {DM_HTTP_GET, "/", h_root, DM_SCOPE_NONE, DM_HTTP_ROUTE_PUBLIC},
    {0},
};

static int router_setup(void **state)
{
        struct dm_http_router *r;
        if (dm_http_router_new(&r) != 0)
                return -1;
        if (dm_http_router_add(r, domain_routes) != 0 || dm_http_router_add(r, more_routes) != 0) {
                dm_http_router_free(r);
                return -1;
        }
        *state = r;
        return 0;
}

static int router_teardown(void **state)
{
        dm_http_router_free(*state);
        return 0;
}

static struct dm_http_match *match_new(void)
{
        struct dm_http_match *m = calloc(1, sizeof(*m));
        assert_non_null(m);
        return m;
}

static void test_router_literal(void **state)
{
        struct dm_http_match *m = match_new();

        assert_int_equal(dm_http_router_match(*state, DM_HTTP_GET, "/api/v1/domains", m), 0);
        assert_ptr_equal(m->route, &domain_routes[0]);
        assert_int_equal(m->ncaptures, 0);
        assert_int_equal(dm_http_router_match(*state, DM_HTTP_POST, "/api/v1/domains", m), 0);
        assert_ptr_equal(m->route, &domain_routes[1]);
        assert_int_equal(dm_http_router_match(*state, DM_HTTP_GET, "/", m), 0);
        assert_ptr_equal(m->route, &more_routes[1]);
        free(m);
}

static void test_router_captures(void **state)
{
        struct dm_http_match *m = match_new();

        assert_int_equal(
            dm_http_router_match(*state, DM_HTTP_GET, "/api/v1/domains/b%C3%BCcher.example", m), 0);
        assert_ptr_equal(m->route, &domain_routes[3]);
        assert_int_equal(m->ncaptures, 1);
        assert_string_equal(m->captures[0].name, "name");
        assert_string_equal(m->captures[0].value, "b\xc3\xbc"
                                                  "cher.example");
        assert_int_equal(m->captures[0].len, strlen("bücher.example"));

        assert_int_equal(
            dm_http_router_match(*state, DM_HTTP_GET, "/api/v1/domains/example.com/records/MX", m),
            0);
        assert_ptr_equal(m->route, &more_routes[0]);
        assert_int_equal(m->ncaptures, 2);
        assert_string_equal(m->captures[0].value, "example.com");
        assert_string_equal(m->captures[1].name, "type");
        assert_string_equal(m->captures[1].value, "MX");

        /* An encoded slash stays inside its segment. */
        assert_int_equal(dm_http_router_match(*state, DM_HTTP_GET, "/api/v1/domains/a%2Fb", m), 0);
        assert_ptr_equal(m->route, &domain_routes[3]);
        assert_string_equal(m->captures[0].value, "a/b");
        /* '+' is literal in a path. */
        assert_int_equal(dm_http_router_match(*state, DM_HTTP_GET, "/api/v1/domains/a+b", m), 0);
        assert_string_equal(m->captures[0].value, "a+b");
        free(m);
}

static void test_router_bad_encoding(void **state)
{
        struct dm_http_match *m = match_new();

        m->ncaptures = 99;
        assert_int_equal(dm_http_router_match(*state, DM_HTTP_GET, "/api/v1/domains/a%zz", m),
                         DM_EINVAL);
        assert_int_equal(m->ncaptures, 99); /* untouched on failure */
        assert_int_equal(dm_http_router_match(*state, DM_HTTP_GET, "/api/v1/domains/a%2", m),
                         DM_EINVAL);
        assert_int_equal(dm_http_router_match(*state, DM_HTTP_GET, "/api/v1/domains/a%00b", m),
                         DM_EINVAL);
        free(m);
}

static void test_router_specific_wins(void **state)
{
        struct dm_http_match *m = match_new();

        /* The literal "import" beats {name} for POST... */
        assert_int_equal(dm_http_router_match(*state, DM_HTTP_POST, "/api/v1/domains/import", m),
                         0);
        assert_ptr_equal(m->route, &domain_routes[2]);
        /* ...while GET there goes to the capture route, which does have GET. */
        assert_int_equal(dm_http_router_match(*state, DM_HTTP_GET, "/api/v1/domains/import", m), 0);
        assert_ptr_equal(m->route, &domain_routes[3]);
        assert_string_equal(m->captures[0].value, "import");
        free(m);
}

static void test_router_404(void **state)
{
        struct dm_http_match *m = match_new();
        const char *paths[] = {
            "/nope",
            "/api/v1/domains/",   /* trailing slash: empty segment */
            "/api/v1/domains//x", /* empty segment */
            "/api/v1/Domains",    /* literals are case-sensitive */
            "/api/v1/%64omains",  /* and compared undecoded */
            "/api/v1/domains/a/b",
            "api/v1/domains",
            "",
            "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s",
        };

        for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
                assert_int_equal(dm_http_router_match(*state, DM_HTTP_GET, paths[i], m), 0);
                assert_null(m->route);
                assert_int_equal(m->allow, 0);
        }
        free(m);
}

static void test_router_405_allow(void **state)
{
        struct dm_http_match *m = match_new();
        char allow[96];

        assert_int_equal(dm_http_router_match(*state, DM_HTTP_PUT, "/api/v1/domains/x.com", m), 0);
        assert_null(m->route);
        assert_string_equal(dm_http_allow_format(m->allow, allow, sizeof(allow)),
                            "GET, HEAD, PATCH, DELETE");

        assert_int_equal(dm_http_router_match(*state, DM_HTTP_DELETE, "/api/v1/domains", m), 0);
        assert_null(m->route);
        assert_string_equal(dm_http_allow_format(m->allow, allow, sizeof(allow)),
                            "GET, HEAD, POST");

        /* Every route whose pattern matches the path contributes. */
        assert_int_equal(dm_http_router_match(*state, DM_HTTP_PUT, "/api/v1/domains/import", m), 0);
        assert_string_equal(dm_http_allow_format(m->allow, allow, sizeof(allow)),
                            "GET, HEAD, POST, PATCH, DELETE");

        /* An unknown method is a 405 too, not a 404. */
        assert_int_equal(dm_http_router_match(*state, 0, "/api/v1/domains", m), 0);
        assert_null(m->route);
        assert_int_not_equal(m->allow, 0);

        /* HEAD is served by GET routes. */
        assert_int_equal(dm_http_router_match(*state, DM_HTTP_HEAD, "/api/v1/domains", m), 0);
        assert_ptr_equal(m->route, &domain_routes[0]);
        free(m);
}

static void test_router_rejects_bad_tables(void **state)
{
        struct dm_http_router *r;
        static const struct dm_http_route dup[] = {
            {DM_HTTP_GET, "/api/v1/domains/{other}", h_get, DM_SCOPE_READ, 0},
            {0},
        };
        static const struct dm_http_route bad_pattern[] = {
            {DM_HTTP_GET, "/ok", h_get, DM_SCOPE_NONE, 0},
            {DM_HTTP_GET, "no-slash", h_get, DM_SCOPE_NONE, 0},
            {0},
        };
        static const struct dm_http_route two_methods[] = {
            {DM_HTTP_GET | DM_HTTP_POST, "/x", h_get, DM_SCOPE_NONE, 0},
            {0},
        };
        static const struct dm_http_route empty_seg[] = {
            {DM_HTTP_GET, "/x//y", h_get, DM_SCOPE_NONE, 0},
            {0},
        };
        static const struct dm_http_route bad_capture[] = {
            {DM_HTTP_GET, "/x/{}", h_get, DM_SCOPE_NONE, 0},
            {0},
        };
        static const struct dm_http_route no_handler[] = {
            {DM_HTTP_GET, "/x", NULL, DM_SCOPE_NONE, 0},
            {0},
        };
        struct dm_http_match *m = match_new();

        assert_int_equal(dm_http_router_new(&r), 0);
        assert_int_equal(dm_http_router_add(r, domain_routes), 0);
        assert_int_equal(dm_http_router_add(r, dup), DM_EINVAL);
        assert_int_equal(dm_http_router_add(r, bad_pattern), DM_EINVAL);
        /* A rejected table adds nothing, not even its good routes. */
        assert_int_equal(dm_http_router_match(r, DM_HTTP_GET, "/ok", m), 0);
        assert_null(m->route);
        assert_int_equal(dm_http_router_add(r, two_methods), DM_EINVAL);
        assert_int_equal(dm_http_router_add(r, empty_seg), DM_EINVAL);
        assert_int_equal(dm_http_router_add(r, bad_capture), DM_EINVAL);
        assert_int_equal(dm_http_router_add(r, no_handler), DM_EINVAL);
        dm_http_router_free(r);
        dm_http_router_free(NULL);
        free(m);
        (void)state;
}

static void test_method_parse(void **state)
{
        assert_int_equal(dm_http_method_parse("GET"), DM_HTTP_GET);
        assert_int_equal(dm_http_method_parse("PATCH"), DM_HTTP_PATCH);
        assert_int_equal(dm_http_method_parse("get"), 0);
        assert_int_equal(dm_http_method_parse("BREW"), 0);
        assert_int_equal(dm_http_method_parse(NULL), 0);
        (void)state;
}

static void test_pct_decode(void **state)
{
        char out[8];

        assert_int_equal(dm_http_pct_decode("a%41b", 5, out, sizeof(out)), 3);
        assert_string_equal(out, "aAb");
        assert_int_equal(dm_http_pct_decode("%e2%82%ac", 9, out, sizeof(out)), 3);
        assert_string_equal(out, "\xe2\x82\xac");
        assert_int_equal(dm_http_pct_decode("%4", 2, out, sizeof(out)), -1);
        assert_int_equal(dm_http_pct_decode("%g0", 3, out, sizeof(out)), -1);
        assert_int_equal(dm_http_pct_decode("%00", 3, out, sizeof(out)), -1);
        assert_int_equal(dm_http_pct_decode("12345678", 8, out, sizeof(out)), -1);
        assert_int_equal(dm_http_pct_decode("1234567", 7, out, sizeof(out)), 7);
        (void)state;
}

/* ---- problems ---- */

static json_t *body_json(const struct dm_http_response *res)
{
        json_error_t e;
        json_t *j = json_loadb(res->body, res->body_len, 0, &e);
        assert_non_null(j);
        return j;
}

static void test_problem_render(void **state)
{
        static const struct dm_http_problem_type exists = {"domain-exists",
                                                           "Domain already exists"};
        struct dm_http_response res = {0};

        assert_int_equal(dm_http_problem(&res, 409, &exists, "%s is taken", "example.com"), 0);
        assert_int_equal(res.status, 409);
        assert_string_equal(res.content_type, "application/problem+json");
        json_t *j = body_json(&res);
        assert_string_equal(json_string_value(json_object_get(j, "type")),
                            "https://domainmon.dev/problems/domain-exists");
        assert_string_equal(json_string_value(json_object_get(j, "title")),
                            "Domain already exists");
        assert_int_equal(json_integer_value(json_object_get(j, "status")), 409);
        assert_string_equal(json_string_value(json_object_get(j, "detail")),
                            "example.com is taken");
        assert_null(json_object_get(j, "errors"));
        json_decref(j);
        /* Compact: no spaces after separators. */
        assert_null(strstr(res.body, ": "));
        dm_http_response_done(&res);

        assert_int_equal(dm_http_problem(&res, 404, NULL, NULL), 0);
        j = body_json(&res);
        assert_string_equal(json_string_value(json_object_get(j, "type")), "about:blank");
        assert_string_equal(json_string_value(json_object_get(j, "title")), "Not Found");
        assert_null(json_object_get(j, "detail"));
        json_decref(j);
        dm_http_response_done(&res);
        (void)state;
}

static void test_problem_field_errors(void **state)
{
        struct dm_http_response res = {0};

        assert_int_equal(dm_http_problem_field(&res, 400, &dm_problem_invalid_body, "interval",
                                               "must be an integer"),
                         0);
        json_t *j = body_json(&res);
        assert_string_equal(json_string_value(json_object_get(j, "detail")),
                            "interval: must be an integer");
        json_t *errors = json_object_get(j, "errors");
        assert_int_equal(json_array_size(errors), 1);
        assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 0), "field")),
                            "interval");
        assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 0), "detail")),
                            "must be an integer");
        json_decref(j);
        dm_http_response_done(&res);

        /* Hostile detail text: invalid UTF-8 and control characters still give valid JSON. */
        assert_int_equal(dm_http_problem(&res, 400, NULL, "bad \xff\xfe name\n\x01"), 0);
        j = body_json(&res);
        assert_string_equal(json_string_value(json_object_get(j, "detail")), "bad ?? name??");
        json_decref(j);
        dm_http_response_done(&res);

        json_t *p = dm_http_problem_new(422, NULL, "x");
        assert_int_equal(dm_http_problem_add_error(p, "a", "one"), 0);
        assert_int_equal(dm_http_problem_add_error(p, "b", "two"), 0);
        assert_int_equal(json_array_size(json_object_get(p, "errors")), 2);
        assert_int_equal(dm_http_respond_problem_json(&res, p), 0);
        assert_int_equal(res.status, 422);
        dm_http_response_done(&res);

        /* A problem that could not be built still answers: 500. */
        dm_http_respond_problem_json(&res, NULL);
        assert_int_equal(res.status, 500);
        dm_http_response_done(&res);
        (void)state;
}

static void test_response_headers(void **state)
{
        struct dm_http_response res = {0};
        char name[16];

        for (int i = 0; i < DM_HTTP_MAX_HEADERS; i++) {
                snprintf(name, sizeof(name), "X-H%d", i);
                assert_int_equal(dm_http_response_header(&res, name, "v"), 0);
        }
        assert_int_equal(dm_http_response_header(&res, "X-Over", "v"), DM_E2BIG);
        assert_int_equal(dm_http_respond_json(&res, 200, json_pack("{s:i}", "a", 1)), 0);
        assert_string_equal(res.body, "{\"a\":1}");
        assert_string_equal(res.content_type, "application/json");
        dm_http_respond_empty(&res, 204);
        assert_null(res.body);
        assert_null(res.content_type);
        dm_http_response_done(&res);
        dm_http_response_done(NULL);
        assert_int_equal(dm_http_respond_json(&res, 200, NULL), DM_ENOMEM);
        assert_int_equal(res.status, 500);
        dm_http_response_done(&res);
        assert_string_equal(dm_http_reason(413), "Content Too Large");
        assert_string_equal(dm_http_reason(299), "Unknown");
        (void)state;
}

/* ---- cursors ---- */

static void test_cursor_roundtrip(void **state)
{
        const char *keys[] = {"a",   "ab", "abc", "abcd", "example.com", "xn--bcher-kva.example",
                              "z.zz"};
        char enc[128], dec[128];

        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
                assert_int_equal(dm_http_cursor_encode(keys[i], enc, sizeof(enc)), 0);
                assert_null(strpbrk(enc, "+/="));
                assert_int_equal(dm_http_cursor_decode(enc, dec, sizeof(dec)), 0);
                assert_string_equal(dec, keys[i]);
        }
        assert_int_equal(dm_http_cursor_encode("example.com", enc, sizeof(enc)), 0);
        assert_string_equal(enc, "ZXhhbXBsZS5jb20");
        /* 11 bytes need 15 characters and the NUL. */
        assert_int_equal(dm_http_cursor_encode("example.com", enc, 15), DM_E2BIG);
        assert_int_equal(dm_http_cursor_encode("example.com", enc, 16), 0);
        (void)state;
}

static void test_cursor_malformed(void **state)
{
        char dec[64];

        assert_int_equal(dm_http_cursor_decode("", dec, sizeof(dec)), DM_EINVAL);
        assert_int_equal(dm_http_cursor_decode("Z", dec, sizeof(dec)), DM_EINVAL);
        assert_int_equal(dm_http_cursor_decode("ZXhh!", dec, sizeof(dec)), DM_EINVAL);
        assert_int_equal(dm_http_cursor_decode("ZXhhbQ==", dec, sizeof(dec)), DM_EINVAL);
        assert_int_equal(dm_http_cursor_decode("ZX+h", dec, sizeof(dec)), DM_EINVAL);
        assert_int_equal(dm_http_cursor_decode("ZX/h", dec, sizeof(dec)), DM_EINVAL);
        /* "YR" has unused bits set: "YQ" is the one encoding of "a". */
        assert_int_equal(dm_http_cursor_decode("YQ", dec, sizeof(dec)), 0);
        assert_string_equal(dec, "a");
        assert_int_equal(dm_http_cursor_decode("YR", dec, sizeof(dec)), DM_EINVAL);
        /* Control bytes: "\n" encodes as "Cg". */
        assert_int_equal(dm_http_cursor_decode("Cg", dec, sizeof(dec)), DM_EINVAL);
        assert_int_equal(dm_http_cursor_decode("ZXhhbXBsZS5jb20", dec, 5), DM_E2BIG);
        (void)state;
}

/* ---- strict JSON reader ---- */

static const struct dm_json_field fields[] = {
    {"name", DM_JSON_STRING, DM_JSON_REQUIRED},
    {"interval", DM_JSON_INTEGER, DM_JSON_NULLABLE},
    {"record_types", DM_JSON_ARRAY, 0},
    {"enabled", DM_JSON_BOOL, 0},
    {0},
};

static int parse_check(const char *text, struct dm_json_error *err)
{
        json_t *obj = NULL;
        int r = dm_json_parse_object(text, strlen(text), err, &obj);
        if (r < 0) {
                assert_null(obj);
                return r;
        }
        r = dm_json_check_fields(obj, fields, err);
        json_decref(obj);
        return r;
}

static void test_json_ok(void **state)
{
        struct dm_json_error err;

        assert_int_equal(parse_check("{\"name\":\"example.com\"}", &err), 0);
        assert_int_equal(parse_check("{\"name\":\"a.b\",\"interval\":60,\"record_types\":[\"A\"],"
                                     "\"enabled\":false}",
                                     &err),
                         0);
        assert_int_equal(parse_check(" {\"name\":\"a.b\",\"interval\":null} \n", &err), 0);
        (void)state;
}

static void test_json_malformed(void **state)
{
        struct dm_json_error err;

        assert_int_equal(parse_check("{\"name\":", &err), DM_EPARSE);
        assert_string_equal(err.field, "");
        assert_non_null(strstr(err.detail, "line 1"));
        assert_int_equal(parse_check("", &err), DM_EPARSE);
        assert_non_null(strstr(err.detail, "empty"));
        assert_int_equal(parse_check("{\"name\":\"a.b\"} trailing", &err), DM_EPARSE);
        assert_int_equal(parse_check("{\"name\":\"a.b\",\"name\":\"c.d\"}", &err), DM_EPARSE);
        assert_int_equal(parse_check("{\"name\":\"a\\u0000b\"}", &err), DM_EPARSE);
        assert_int_equal(parse_check("{\"name\":\"\xff\"}", &err), DM_EPARSE);
        assert_int_equal(parse_check("[1,2]", &err), DM_EINVAL);
        assert_non_null(strstr(err.detail, "must be a JSON object"));
        assert_int_equal(parse_check("\"str\"", &err), DM_EINVAL);
        assert_int_equal(parse_check("42", &err), DM_EINVAL);
        assert_int_equal(parse_check("null", &err), DM_EINVAL);
        (void)state;
}

static void test_json_fields(void **state)
{
        struct dm_json_error err;

        assert_int_equal(parse_check("{\"name\":\"a.b\",\"colour\":1}", &err), DM_EINVAL);
        assert_string_equal(err.field, "colour");
        assert_string_equal(err.detail, "unknown field");

        assert_int_equal(parse_check("{\"name\":\"a.b\",\"interval\":\"60\"}", &err), DM_EINVAL);
        assert_string_equal(err.field, "interval");
        assert_string_equal(err.detail, "must be an integer or null, not string");

        assert_int_equal(parse_check("{\"name\":\"a.b\",\"interval\":60.5}", &err), DM_EINVAL);
        assert_string_equal(err.field, "interval");

        assert_int_equal(parse_check("{\"name\":\"a.b\",\"enabled\":null}", &err), DM_EINVAL);
        assert_string_equal(err.field, "enabled");
        assert_string_equal(err.detail, "must be a boolean, not null");

        assert_int_equal(parse_check("{\"name\":1}", &err), DM_EINVAL);
        assert_string_equal(err.field, "name");
        assert_string_equal(err.detail, "must be a string, not integer");

        assert_int_equal(parse_check("{\"enabled\":true}", &err), DM_EINVAL);
        assert_string_equal(err.field, "name");
        assert_string_equal(err.detail, "is required");

        /* The first problem in document order is the one reported. */
        assert_int_equal(parse_check("{\"zzz\":1,\"name\":2}", &err), DM_EINVAL);
        assert_string_equal(err.field, "zzz");
        (void)state;
}

static void test_json_safe_text(void **state)
{
        char buf[8];

        assert_string_equal(dm_json_safe_text(buf, sizeof(buf), "abc", 3), "abc");
        /* Cut before a character that does not fit, never inside it. */
        assert_string_equal(dm_json_safe_text(buf, sizeof(buf), "abcdef\xc3\xbc", 8), "abcdef");
        assert_string_equal(dm_json_safe_text(buf, sizeof(buf), "abcd\xc3\xbc", 6), "abcd\xc3\xbc");
        assert_string_equal(dm_json_safe_text(buf, sizeof(buf), "a\tb\xc0\x80", 5), "a?b??");
        /* Surrogates encoded in UTF-8 are not valid. */
        assert_string_equal(dm_json_safe_text(buf, sizeof(buf), "\xed\xa0\x80", 3), "???");

        json_t *s = dm_json_string_lossy("ok\xff");
        assert_non_null(s);
        assert_string_equal(json_string_value(s), "ok?");
        json_decref(s);
        (void)state;
}

static void test_json_dump(void **state)
{
        size_t len;
        json_t *j = json_pack("{s:[i,i], s:s}", "a", 1, 2, "b", "x");
        char *s = dm_json_dump(j, &len);

        assert_string_equal(s, "{\"a\":[1,2],\"b\":\"x\"}");
        assert_int_equal(len, strlen(s));
        free(s);
        json_decref(j);
        (void)state;
}

static void test_auth_problem(void **state)
{
        (void)state;
        assert_non_null(strstr(dm_http_auth_problem(NULL), "an API key is required"));
        assert_non_null(strstr(dm_http_auth_problem("dmk_abc_def"), "lacks the 'Bearer ' scheme"));
        assert_non_null(strstr(dm_http_auth_problem("Basic dXNlcjpwYXNz"), "'Bearer '"));
        assert_string_equal(dm_http_auth_problem("Bearer dmk_abc_def"), "the API key is not valid");
        assert_string_equal(dm_http_auth_problem("bearer dmk_abc_def"), "the API key is not valid");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_auth_problem),
            cmocka_unit_test_setup_teardown(test_router_literal, router_setup, router_teardown),
            cmocka_unit_test_setup_teardown(test_router_captures, router_setup, router_teardown),
            cmocka_unit_test_setup_teardown(test_router_bad_encoding, router_setup,
                                            router_teardown),
            cmocka_unit_test_setup_teardown(test_router_specific_wins, router_setup,
                                            router_teardown),
            cmocka_unit_test_setup_teardown(test_router_404, router_setup, router_teardown),
            cmocka_unit_test_setup_teardown(test_router_405_allow, router_setup, router_teardown),
            cmocka_unit_test(test_router_rejects_bad_tables),
            cmocka_unit_test(test_method_parse),
            cmocka_unit_test(test_pct_decode),
            cmocka_unit_test(test_problem_render),
            cmocka_unit_test(test_problem_field_errors),
            cmocka_unit_test(test_response_headers),
            cmocka_unit_test(test_cursor_roundtrip),
            cmocka_unit_test(test_cursor_malformed),
            cmocka_unit_test(test_json_ok),
            cmocka_unit_test(test_json_malformed),
            cmocka_unit_test(test_json_fields),
            cmocka_unit_test(test_json_safe_text),
            cmocka_unit_test(test_json_dump),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
