/* lib/cli/client.c against a real HTTP server of the project's own (lib/http) on a loopback
 * port: requests and their bodies, the key, problem details as one line, escaping, an
 * unreachable server, and the event stream fed to the SSE reader. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "dm/cli_client.h"
#include "dm/error.h"
#include "dm/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct dm_http_router *router;
static struct dm_http_server *server;
static char base[64];

static void h_echo(struct dm_http_request *req, struct dm_http_response *res)
{
        json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
        json_t *doc = json_pack("{s:s, s:s, s:o}", "method", req->method_name, "key",
                                req->principal.key_name, "body", body ? body : json_null());
        dm_http_respond_json(res, 200, doc);
}

static void h_thing(struct dm_http_request *req, struct dm_http_response *res)
{
        const char *name = dm_http_param(req, "name");
        if (strcmp(name, "a b/c") == 0)
                dm_http_respond_json(res, 200, json_pack("{s:s}", "name", name));
        else
                dm_http_problem(res, 404, &dm_problem_not_found, "no thing named %s\n\033[2J",
                                name);
}

struct src {
        int step;
};

static ssize_t stream_read(void *arg, char *buf, size_t max)
{
        struct src *s = arg;
        static const char *const parts[] = {": ok\n\n", "event: change.dns.A\nid: change.dns.A:5\n",
                                            "data: {\"x\":1}\n\n"};
        if (s->step >= 3)
                return DM_HTTP_STREAM_END;
        size_t n = strlen(parts[s->step]);
        if (n > max)
                return DM_HTTP_STREAM_ABORT;
        memcpy(buf, parts[s->step++], n);
        return (ssize_t)n;
}

static void stream_done(void *arg)
{
        free(arg);
}

static void h_events(struct dm_http_request *req, struct dm_http_response *res)
{
        const char *last = dm_http_header(req, "Last-Event-ID");
        if (last && strcmp(last, "refuse") == 0) {
                dm_http_problem(res, 503, &dm_problem_unavailable, "too many streams");
                return;
        }
        struct src *s = calloc(1, sizeof(*s));
        struct dm_http_stream_source src = {.read = stream_read, .done = stream_done, .arg = s};
        dm_http_respond_stream(req, res, 200, "text/event-stream", &src, NULL);
}

static const struct dm_http_route routes[] = {
    {DM_HTTP_POST, "/echo", h_echo, DM_SCOPE_READ, 0},
    {DM_HTTP_GET, "/things/{name}", h_thing, DM_SCOPE_NONE, DM_HTTP_ROUTE_PUBLIC},
    {DM_HTTP_GET, "/events", h_events, DM_SCOPE_NONE, DM_HTTP_ROUTE_PUBLIC},
    {0},
};

static int auth(void *arg, const char *authorization, struct dm_http_principal *ret)
{
        (void)arg;
        if (!authorization || strcmp(authorization, "Bearer good") != 0)
                return DM_EACCES;
        ret->scope = DM_SCOPE_ADMIN;
        ret->key_id = 1;
        snprintf(ret->key_name, sizeof(ret->key_name), "good");
        return 0;
}

static int setup(void **state)
{
        char err[256];
        (void)state;
        if (dm_http_router_new(&router) != 0 || dm_http_router_add(router, routes) != 0)
                return -1;
        struct dm_http_server_opts o = {.listen = "127.0.0.1:0",
                                        .threads = 1,
                                        .max_body = 65536,
                                        .router = router,
                                        .auth = auth};
        if (dm_http_server_start(&o, err, sizeof(err), &server) != 0)
                return -1;
        snprintf(base, sizeof(base), "http://127.0.0.1:%u/", dm_http_server_port(server));
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        dm_http_server_stop(server);
        dm_http_router_free(router);
        return 0;
}

static void test_request(void **state)
{
        struct dm_cli_client *c = NULL;
        struct dm_cli_response res;
        char err[512], line[512];
        (void)state;

        assert_int_equal(dm_cli_client_new("ftp://x", NULL, &c), DM_EINVAL);
        assert_int_equal(dm_cli_client_new(base, "good", &c), 0);
        json_t *body = json_pack("{s:[s]}", "names", "a.test");
        assert_int_equal(dm_cli_request(c, "POST", "/echo", body, &res, err, sizeof(err)), 0);
        assert_int_equal(res.status, 200);
        assert_string_equal(json_string_value(json_object_get(res.doc, "key")), "good");
        assert_true(json_equal(json_object_get(res.doc, "body"), body));
        dm_cli_response_done(&res);

        char esc[64];
        assert_string_equal(dm_cli_escape("a b/c", esc, sizeof(esc)), "a%20b%2Fc");
        assert_null(dm_cli_escape("abc", esc, 3));
        char path[128];
        snprintf(path, sizeof(path), "/things/%s", dm_cli_escape("a b/c", esc, sizeof(esc)));
        assert_int_equal(dm_cli_request(c, "GET", path, NULL, &res, err, sizeof(err)), 0);
        assert_int_equal(res.status, 200);
        dm_cli_response_done(&res);

        /* A refusal: its detail on one line, terminal controls defused. */
        assert_int_equal(dm_cli_request(c, "GET", "/things/zz", NULL, &res, err, sizeof(err)), 0);
        assert_int_equal(res.status, 404);
        dm_cli_problem_line(&res, line, sizeof(line));
        assert_non_null(strstr(line, "no thing named zz"));
        assert_non_null(strstr(line, "(HTTP 404)"));
        assert_null(strchr(line, '\n'));
        assert_null(strchr(line, '\033'));
        dm_cli_response_done(&res);
        dm_cli_client_free(c);

        /* Without the key. */
        assert_int_equal(dm_cli_client_new(base, NULL, &c), 0);
        assert_int_equal(dm_cli_request(c, "POST", "/echo", body, &res, err, sizeof(err)), 0);
        assert_int_equal(res.status, 401);
        dm_cli_response_done(&res);
        dm_cli_client_free(c);
        json_decref(body);

        /* No answer at all: DM_EIO, and the message names the address. */
        assert_int_equal(dm_cli_client_new("http://127.0.0.1:1", "k", &c), 0);
        assert_int_equal(dm_cli_request(c, "GET", "/x", NULL, &res, err, sizeof(err)), DM_EIO);
        assert_non_null(strstr(err, "http://127.0.0.1:1/x"));
        dm_cli_client_free(c);

        struct dm_cli_response bare = {.status = 502};
        assert_string_equal(dm_cli_problem_line(&bare, line, sizeof(line)),
                            "the server answered HTTP 502");
}

struct seen {
        char log[512];
};

static int on_event(void *arg, const char *event, const char *id, const char *data, size_t len)
{
        struct seen *s = arg;
        size_t used = strlen(s->log);
        snprintf(s->log + used, sizeof(s->log) - used, "[%s|%s|%.*s]", event, id ? id : "-",
                 (int)len, data);
        return 0;
}

static void test_stream(void **state)
{
        struct dm_cli_client *c = NULL;
        struct dm_sse_reader r;
        struct seen s = {{0}};
        char err[512];
        (void)state;

        assert_int_equal(dm_cli_client_new(base, NULL, &c), 0);
        dm_sse_reader_init(&r, 4096, 65536, on_event, &s);
        assert_int_equal(dm_cli_stream(c, "/events", "change.dns.A:1", &r, err, sizeof(err)), 0);
        assert_string_equal(s.log, "[change.dns.A|change.dns.A:5|{\"x\":1}]");
        assert_string_equal(r.last_id, "change.dns.A:5");
        dm_sse_reader_done(&r);

        dm_sse_reader_init(&r, 4096, 65536, on_event, &s);
        assert_int_equal(dm_cli_stream(c, "/events", "refuse", &r, err, sizeof(err)), DM_EINVAL);
        assert_non_null(strstr(err, "too many streams (HTTP 503)"));
        dm_sse_reader_done(&r);
        dm_cli_client_free(c);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_request),
            cmocka_unit_test(test_stream),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
