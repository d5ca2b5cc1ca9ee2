/* lib/cli: argument parsing, terminal-safe text and tables, the one-line change, the name
 * list / CSV reader, the progress bar and the SSE reader. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "dm/cli.h"
#include "dm/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct dm_cli_opt opts[] = {
    {"--json", 0, false}, {"--since", 0, true}, {"--verbose", 'v', false}, {0}};

static void test_parse(void **state)
{
        struct dm_cli_args a;
        char err[128];
        (void)state;

        char *ok[] = {"a.test", "--since", "1h", "-v", "--json", "b.test", "--", "--c.test"};
        assert_int_equal(dm_cli_parse(8, ok, opts, &a, err, sizeof(err)), 0);
        assert_false(a.help);
        assert_int_equal(a.npositional, 3);
        assert_string_equal(a.positional[0], "a.test");
        assert_string_equal(a.positional[1], "b.test");
        assert_string_equal(a.positional[2], "--c.test");
        assert_string_equal(a.values[1], "1h");
        assert_true(a.present[0] && a.present[2]);

        char *eq[] = {"--since=2d"};
        assert_int_equal(dm_cli_parse(1, eq, opts, &a, err, sizeof(err)), 0);
        assert_string_equal(a.values[1], "2d");

        /* Help wins wherever it is, even after a bad option. */
        char *help[] = {"x", "-h", "--bogus"};
        assert_int_equal(dm_cli_parse(3, help, opts, &a, err, sizeof(err)), 0);
        assert_true(a.help);

        char *unknown[] = {"--bogus"};
        assert_int_equal(dm_cli_parse(1, unknown, opts, &a, err, sizeof(err)), DM_EINVAL);
        assert_non_null(strstr(err, "--bogus"));
        char *missing[] = {"--since"};
        assert_int_equal(dm_cli_parse(1, missing, opts, &a, err, sizeof(err)), DM_EINVAL);
        assert_non_null(strstr(err, "needs a value"));
        char *empty[] = {"--since="};
        assert_int_equal(dm_cli_parse(1, empty, opts, &a, err, sizeof(err)), DM_EINVAL);
        char *flagval[] = {"--json=1"};
        assert_int_equal(dm_cli_parse(1, flagval, opts, &a, err, sizeof(err)), DM_EINVAL);
        char *shortbad[] = {"-x"};
        assert_int_equal(dm_cli_parse(1, shortbad, opts, &a, err, sizeof(err)), DM_EINVAL);
        char *dash[] = {"-"};
        assert_int_equal(dm_cli_parse(1, dash, opts, &a, err, sizeof(err)), 0);
        assert_int_equal(a.npositional, 1);
}

static void test_base_url(void **state)
{
        char b[128];
        (void)state;
        assert_string_equal(dm_cli_base_url("https://x:1", "0.0.0.0:9", b, sizeof(b)),
                            "https://x:1");
        assert_string_equal(dm_cli_base_url(NULL, "127.0.0.1:8080", b, sizeof(b)),
                            "http://127.0.0.1:8080");
        assert_string_equal(dm_cli_base_url(NULL, "0.0.0.0:8081", b, sizeof(b)),
                            "http://127.0.0.1:8081");
        assert_string_equal(dm_cli_base_url("", "[::]:80", b, sizeof(b)), "http://[::1]:80");
        assert_string_equal(dm_cli_base_url(NULL, "[::1]:80", b, sizeof(b)), "http://[::1]:80");
        assert_string_equal(dm_cli_base_url(NULL, NULL, b, sizeof(b)), "http://127.0.0.1:8080");
}

static void test_safe_and_width(void **state)
{
        char b[64];
        (void)state;
        assert_string_equal(dm_cli_safe(b, sizeof(b), "a\033[31mb\r\n"), "a?[31mb??");
        assert_string_equal(dm_cli_safe(b, sizeof(b),
                                        "b\xc3\xbc"
                                        "cher"),
                            "b\xc3\xbc"
                            "cher");
        assert_string_equal(dm_cli_safe(b, sizeof(b), "\xff\xc3"), "??");
        assert_string_equal(dm_cli_safe(b, sizeof(b),
                                        "\xc2\x9b"
                                        "x"),
                            "??x");                                            /* C1 CSI */
        assert_string_equal(dm_cli_safe(b, sizeof(b), "\xed\xa0\x80"), "???"); /* surrogate */
        assert_string_equal(dm_cli_safe(b, 4, "b\xc3\xbcz"), "b\xc3\xbc");
        assert_string_equal(dm_cli_safe(b, 3, "b\xc3\xbcz"), "b");
        assert_int_equal(dm_cli_width("b\xc3\xbc"
                                      "cher"),
                         6);
}

static char *capture_table(const struct dm_cli_table *t)
{
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        assert_non_null(f);
        dm_cli_table_print(t, f);
        fclose(f);
        return text;
}

static void test_table(void **state)
{
        struct dm_cli_table t;
        static const char *const head[] = {"NAME", "STATUS", "ERROR"};
        (void)state;
        assert_int_equal(dm_cli_table_init(&t, 3, head), 0);
        for (int i = 0; i < 40; i++) {
                const char *row[] = {i == 0 ? "b\xc3\xbc"
                                              "cher.example"
                                            : "a.test",
                                     i == 1 ? NULL : "ok", i == 2 ? "x\033y" : ""};
                assert_int_equal(dm_cli_table_add(&t, row), 0);
        }
        char *text = capture_table(&t);
        /* Columns line up by characters, not bytes; NULL is "-"; escapes are defused. */
        assert_non_null(strstr(text, "NAME            STATUS  ERROR\n"));
        assert_non_null(strstr(text, "b\xc3\xbc"
                                     "cher.example  ok      \n"));
        assert_non_null(strstr(text, "a.test          -       \n"));
        assert_non_null(strstr(text, "x?y\n"));
        assert_null(strchr(text, '\033'));
        free(text);
        dm_cli_table_done(&t);
        dm_cli_table_done(NULL);
}

static json_t *load(const char *s)
{
        json_t *doc = json_loads(s, 0, NULL);
        assert_non_null(doc);
        return doc;
}

static void test_change_line(void **state)
{
        struct dm_buf b;
        (void)state;
        dm_buf_init(&b, 4096);
        json_t *c = load("{\"id\":7,\"domain\":\"example.test\",\"type\":\"A\",\"status\":\"ok\","
                         "\"observed_at\":\"2026-11-29T17:07:34.120Z\",\"before\":[\"192.0.2.11\"],"
                         "\"after\":[\"192.0.2.12\"],\"added\":[\"192.0.2.12\"],"
                         "\"removed\":[\"192.0.2.11\"]}");
        assert_int_equal(dm_cli_change_line(c, NULL, DM_CLI_UTC, &b), 0);
        assert_string_equal(b.data, "17:07:34 example.test A +192.0.2.12 -192.0.2.11");
        dm_buf_clear(&b);
        assert_int_equal(dm_cli_change_line(c, "other.test", DM_CLI_UTC | DM_CLI_FULLTS, &b), 0);
        assert_string_equal(b.data, "2026-11-29 17:07:34 other.test A +192.0.2.12 -192.0.2.11");
        dm_buf_clear(&b);
        assert_int_equal(dm_cli_change_line(c, NULL, DM_CLI_UTC | DM_CLI_COLOR, &b), 0);
        assert_non_null(strstr(b.data, "\033[32m+192.0.2.12\033[0m"));
        assert_non_null(strstr(b.data, "\033[31m-192.0.2.11\033[0m"));
        json_decref(c);

        /* First observation; NXDOMAIN named; hostile TXT defused. */
        dm_buf_clear(&b);
        c = load("{\"domain\":\"x.test\",\"type\":\"TXT\",\"status\":\"nxdomain\","
                 "\"observed_at\":\"2026-11-29T01:02:03Z\",\"before\":null,\"after\":[],"
                 "\"added\":[\"\\\"\\u001b[2Jhi\\\"\"],\"removed\":[]}");
        assert_int_equal(dm_cli_change_line(c, NULL, DM_CLI_UTC, &b), 0);
        assert_string_equal(b.data, "01:02:03 x.test TXT new +\"?[2Jhi\" (nxdomain)");
        json_decref(c);

        c = load("{\"domain\":\"x.test\"}");
        assert_int_equal(dm_cli_change_line(c, NULL, 0, &b), DM_EINVAL);
        json_decref(c);
        c = load("[1]");
        assert_int_equal(dm_cli_change_line(c, NULL, 0, &b), DM_EINVAL);
        json_decref(c);
        dm_buf_done(&b);
}

static void test_event_line(void **state)
{
        struct dm_buf b;
        (void)state;
        dm_buf_init(&b, 4096);
        const char *added =
            "{\"id\":3,\"name\":\"new.test\",\"created_at\":\"2026-11-29T10:00:00Z\"}";
        assert_int_equal(dm_cli_event_line("domain.added", added, strlen(added), DM_CLI_UTC, &b),
                         0);
        assert_string_equal(b.data, "10:00:00 new.test added");
        dm_buf_clear(&b);
        const char *rm =
            "{\"id\":3,\"domain\":\"new.test\",\"removed_at\":\"2026-11-29T10:00:01Z\"}";
        assert_int_equal(dm_cli_event_line("domain.removed", rm, strlen(rm), DM_CLI_UTC, &b), 0);
        assert_string_equal(b.data, "10:00:01 new.test removed");
        dm_buf_clear(&b);
        const char *ch = "{\"id\":9,\"domain\":\"a.test\",\"type\":\"MX\",\"status\":\"ok\","
                         "\"observed_at\":\"2026-11-29T10:00:02Z\",\"before\":[],"
                         "\"added\":[\"10 mx.a.test.\"],\"removed\":[]}";
        assert_int_equal(dm_cli_event_line("change.dns.MX", ch, strlen(ch), DM_CLI_UTC, &b), 0);
        assert_string_equal(b.data, "10:00:02 a.test MX +10 mx.a.test.");
        assert_int_equal(dm_cli_event_line("reset", "{}", 2, 0, &b), DM_ENOENT);
        assert_int_equal(dm_cli_event_line("domain.added", "nope", 4, 0, &b), DM_EINVAL);
        assert_int_equal(dm_cli_event_line("domain.added", "{}", 2, 0, &b), DM_EINVAL);
        char when[64];
        assert_string_equal(dm_cli_time("not a time\n", 0, when, sizeof(when)), "not a time?");
        dm_buf_done(&b);
}

struct names {
        char got[16][64];
        size_t lines[16];
        size_t n;
};

static int collect(void *arg, const char *name, size_t len, size_t line)
{
        struct names *x = arg;
        if (x->n == 16)
                return DM_E2BIG;
        snprintf(x->got[x->n], sizeof(x->got[0]), "%.*s", (int)len, name);
        x->lines[x->n++] = line;
        return 0;
}

static int read_names(const char *text, const char *column, struct names *x, char *err)
{
        memset(x, 0, sizeof(*x));
        return dm_cli_names_read(text, strlen(text), column, collect, x, err, 256);
}

static void test_names(void **state)
{
        struct names x;
        char err[256];
        (void)state;

        assert_int_equal(read_names("\xef\xbb\xbf"
                                    "a.test\r\n# note\n\n  b.test  \nc.test",
                                    NULL, &x, err),
                         0);
        assert_int_equal(x.n, 3);
        assert_string_equal(x.got[1], "b.test");
        assert_int_equal(x.lines[1], 4);
        assert_int_equal(x.lines[2], 5);

        /* CSV with a header naming the column, quotes with commas, doubled quotes. */
        assert_int_equal(read_names("owner,Domain,note\r\n\"Smith, J\",a.test,x\n"
                                    "bob,\"b.test\",\"say \"\"hi\"\"\"\nann,,empty\n",
                                    NULL, &x, err),
                         0);
        assert_int_equal(x.n, 2);
        assert_string_equal(x.got[0], "a.test");
        assert_string_equal(x.got[1], "b.test");
        assert_int_equal(x.lines[1], 3);

        /* No header: the first column; --column by number or name. */
        assert_int_equal(read_names("a.test,1\nb.test,2\n", NULL, &x, err), 0);
        assert_int_equal(x.n, 2);
        assert_int_equal(read_names("x,a.test\ny,b.test\n", "2", &x, err), 0);
        assert_string_equal(x.got[0], "a.test");
        assert_int_equal(read_names("id,host\n1,a.test\n", "HOST", &x, err), 0);
        assert_int_equal(x.n, 1);
        assert_string_equal(x.got[0], "a.test");

        /* A quoted field over two lines counts both lines. */
        assert_int_equal(read_names("name,n\n\"a.test\",\"two\nlines\"\nb.test,x\n", NULL, &x, err),
                         0);
        assert_int_equal(x.n, 2);
        assert_int_equal(x.lines[1], 4);

        assert_int_equal(read_names("id,host\n1,a.test\n", "name", &x, err), DM_EINVAL);
        assert_non_null(strstr(err, "no column named 'name'"));
        assert_int_equal(read_names("a,b\nc\n", "2", &x, err), DM_EINVAL);
        assert_non_null(strstr(err, "line 2: no column 2"));
        assert_int_equal(read_names("name\n\"a.test\n", NULL, &x, err), 0); /* one-column list */
        assert_int_equal(read_names("name,x\n\"a.test,x\n", NULL, &x, err), DM_EINVAL);
        assert_int_equal(read_names("a.test\n", "2", &x, err), DM_EINVAL);
        assert_int_equal(read_names("x,a\"b\n", "2", &x, err), DM_EINVAL);
        char big[1500];
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        assert_int_equal(read_names(big, NULL, &x, err), DM_EINVAL);
        assert_non_null(strstr(err, "line 1"));
        memset(&x, 0, sizeof(x));
        assert_int_equal(dm_cli_names_read("a.test\nb\0c\n", 11, NULL, collect, &x, err, 256),
                         DM_EINVAL);
        assert_non_null(strstr(err, "line 2: holds a NUL byte"));
        assert_int_equal(read_names("", NULL, &x, err), 0);
        assert_int_equal(x.n, 0);
}

static void test_scan_line(void **state)
{
        char b[256];
        (void)state;
        assert_string_equal(dm_cli_scan_line("a.test", "ok", 2, NULL, b, sizeof(b)),
                            "a.test ok changes=2");
        assert_string_equal(dm_cli_scan_line("b.test", "error", 0,
                                             "A: timed out; MX: DNS server failure (SERVFAIL)", b,
                                             sizeof(b)),
                            "b.test error changes=0 first_error=\"A: timed out\"");
        assert_string_equal(dm_cli_scan_line("c.test", "error", 1, "TXT: \"x\"\n", b, sizeof(b)),
                            "c.test error changes=1 first_error=\"TXT: 'x'?\"");
}

static void test_progress(void **state)
{
        char b[128];
        (void)state;
        assert_string_equal(dm_cli_progress(5, 10, 24, b, sizeof(b)), "[#####     ]  5/10  50%");
        assert_string_equal(dm_cli_progress(20, 10, 26, b, sizeof(b)), "[##########]  10/10  100%");
        assert_string_equal(dm_cli_progress(0, 0, 8, b, sizeof(b)), "[##########]  0/0  100%");
        assert_string_equal(dm_cli_progress(1, 2, 80, b, 16), "1/2  50%");
}

struct events {
        char log[2048];
        size_t n;
        int fail_at;
};

static int on_event(void *arg, const char *event, const char *id, const char *data, size_t len)
{
        struct events *e = arg;
        size_t used = strlen(e->log);
        snprintf(e->log + used, sizeof(e->log) - used, "[%s|%s|%.*s]", event, id ? id : "-",
                 (int)len, data);
        e->n++;
        return e->fail_at && (int)e->n == e->fail_at ? DM_ECANCELED : 0;
}

static void feed_bytewise(struct dm_sse_reader *r, const char *s)
{
        for (size_t i = 0; s[i]; i++)
                assert_int_equal(dm_sse_reader_feed(r, s + i, 1), 0);
}

static void test_sse(void **state)
{
        struct dm_sse_reader r;
        struct events e = {0};
        const char *stream = "\xef\xbb\xbf: ok\n\nevent: change.dns.A\nid: change.dns.A:1\n"
                             "data: {\"a\":1}\n\n"
                             ": ping\r\n\r\n"
                             "data: one\r\ndata:two\rretry: 5\nbogus\n\n"
                             "event: reset\nid\ndata: x\n\n"
                             "data: unterminated";
        (void)state;

        dm_sse_reader_init(&r, 1024, 4096, on_event, &e);
        feed_bytewise(&r, stream);
        assert_string_equal(e.log, "[change.dns.A|change.dns.A:1|{\"a\":1}]"
                                   "[message|-|one\ntwo]"
                                   "[reset||x]");
        assert_string_equal(r.last_id, "");
        dm_sse_reader_done(&r);

        /* The same in one piece. */
        memset(&e, 0, sizeof(e));
        dm_sse_reader_init(&r, 1024, 4096, on_event, &e);
        assert_int_equal(dm_sse_reader_feed(&r, stream, strlen(stream)), 0);
        assert_int_equal(e.n, 3);
        dm_sse_reader_done(&r);

        /* Not a BOM: the bytes are text. */
        memset(&e, 0, sizeof(e));
        dm_sse_reader_init(&r, 1024, 4096, on_event, &e);
        feed_bytewise(&r, "\xef"
                          "data: x\n\n");
        assert_int_equal(e.n, 0); /* "\xef" "data" is an unknown field */
        feed_bytewise(&r, "data: y\n\n");
        assert_string_equal(e.log, "[message|-|y]");
        dm_sse_reader_done(&r);

        /* Caps and a callback's refusal. */
        memset(&e, 0, sizeof(e));
        dm_sse_reader_init(&r, 16, 4096, on_event, &e);
        assert_int_equal(dm_sse_reader_feed(&r, "data: 0123456789abcdef\n", 23), DM_E2BIG);
        dm_sse_reader_done(&r);
        dm_sse_reader_init(&r, 64, 8, on_event, &e);
        assert_int_equal(dm_sse_reader_feed(&r, "data: 12345\ndata: 6789\n", 23), DM_E2BIG);
        dm_sse_reader_done(&r);
        memset(&e, 0, sizeof(e));
        e.fail_at = 1;
        dm_sse_reader_init(&r, 64, 64, on_event, &e);
        assert_int_equal(dm_sse_reader_feed(&r, "data: a\n\ndata: b\n\n", 18), DM_ECANCELED);
        dm_sse_reader_done(&r);
        dm_sse_reader_done(NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse),          cmocka_unit_test(test_base_url),
            cmocka_unit_test(test_safe_and_width), cmocka_unit_test(test_table),
            cmocka_unit_test(test_change_line),    cmocka_unit_test(test_event_line),
            cmocka_unit_test(test_names),          cmocka_unit_test(test_progress),
            cmocka_unit_test(test_scan_line),      cmocka_unit_test(test_sse),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
