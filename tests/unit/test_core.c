/* lib/core: errors, logging, buffers and cursors, time, embedded files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "dm/buf.h"
#include "dm/embed.h"
#include "dm/error.h"
#include "dm/hex.h"
#include "dm/url.h"
#include "dm/log.h"
#include "dm/time.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_strerror(void **state)
{
        (void)state;
        assert_string_equal(dm_strerror(DM_OK), "success");
        assert_string_equal(dm_strerror(DM_ENOMEM), "out of memory");
        assert_string_equal(dm_strerror(DM_EBADNAME), "invalid domain name");
        assert_string_equal(dm_strerror(DM_ESHUTDOWN), "shutting down");
        assert_string_equal(dm_strerror(-99999), "unknown error");
        assert_int_equal(DM_ENOENT, -ENOENT);
        assert_int_equal(DM_ECONFIG, -1006);
}

static void test_errname(void **state)
{
        (void)state;
        assert_string_equal(dm_errname(DM_OK), "OK");
        assert_string_equal(dm_errname(DM_ENOENT), "ENOENT");
        assert_string_equal(dm_errname(DM_ECONFLICT), "ECONFLICT");
        assert_string_equal(dm_errname(DM_ESERVFAIL), "ESERVFAIL");
        assert_null(dm_errname(-99999));
        assert_null(dm_errname(1));
}

static void test_log_level_parse(void **state)
{
        enum dm_log_level l = DM_LOG_ERROR;
        (void)state;
        assert_int_equal(dm_log_level_parse("debug", &l), 0);
        assert_int_equal(l, DM_LOG_DEBUG);
        assert_int_equal(dm_log_level_parse("warn", &l), 0);
        assert_int_equal(l, DM_LOG_WARN);
        assert_int_equal(dm_log_level_parse("error", &l), 0);
        assert_int_equal(l, DM_LOG_ERROR);
        assert_int_equal(dm_log_level_parse("info", &l), 0);
        assert_int_equal(l, DM_LOG_INFO);
        assert_int_equal(dm_log_level_parse("verbose", &l), DM_EINVAL);
        assert_int_equal(dm_log_level_parse("", &l), DM_EINVAL);
        assert_int_equal(dm_log_level_parse(NULL, &l), DM_EINVAL);
        assert_int_equal(l, DM_LOG_INFO);
}

static void test_log_quote(void **state)
{
        char buf[64];
        (void)state;
        assert_string_equal(dm_log_quote(buf, sizeof(buf), "plain"), "plain");
        assert_string_equal(dm_log_quote(buf, sizeof(buf), ""), "\"\"");
        assert_string_equal(dm_log_quote(buf, sizeof(buf), NULL), "\"\"");
        assert_string_equal(dm_log_quote(buf, sizeof(buf), "two words"), "\"two words\"");
        assert_string_equal(dm_log_quote(buf, sizeof(buf), "a=b"), "\"a=b\"");
        assert_string_equal(dm_log_quote(buf, sizeof(buf), "say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_string_equal(dm_log_quote(buf, sizeof(buf), "back\\slash"), "\"back\\\\slash\"");
        assert_string_equal(dm_log_quote(buf, sizeof(buf), "line\nbreak"), "\"line\\x0abreak\"");
        assert_string_equal(dm_log_quote(buf, sizeof(buf), "b\xc3\xbc"), "\"b\\xc3\\xbc\"");
        assert_string_equal(dm_log_quote(buf, sizeof(buf), "\x7f"), "\"\\x7f\"");
}

static void test_log_quote_truncates(void **state)
{
        char buf[8];
        (void)state;
        assert_string_equal(dm_log_quote(buf, sizeof(buf), "abcdefghijkl"), "abcdefg");
        assert_string_equal(dm_log_quote(buf, sizeof(buf), "a bcdefghijkl"), "\"a bcd\"");
        /* An escape is never cut in half. */
        assert_string_equal(dm_log_quote(buf, sizeof(buf), "a\n\n"), "\"a\\x0a\"");
        assert_string_equal(dm_log_quote(buf, 3, "x y"), "\"\"");
        assert_string_equal(dm_log_quote(buf, 1, "xyz"), "");
        assert_string_equal(dm_log_quote(buf, 2, "xyz"), "x");
}

/* Runs dm_log with stderr sent to a temporary file and returns what was written. */
static char *capture_log(enum dm_log_level level, const char *svc, const char *msg)
{
        char path[] = "/tmp/dm_test_log_XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        unlink(path);
        fflush(stderr);
        int saved = dup(STDERR_FILENO);
        assert_true(saved >= 0);
        assert_true(dup2(fd, STDERR_FILENO) >= 0);
        dm_log(level, svc, "msg=%s n=%d", msg, 42);
        assert_true(dup2(saved, STDERR_FILENO) >= 0);
        close(saved);

        off_t size = lseek(fd, 0, SEEK_END);
        char *out = calloc(1, (size_t)size + 1);
        assert_non_null(out);
        assert_int_equal(pread(fd, out, (size_t)size, 0), size);
        close(fd);
        return out;
}

static void test_log_line(void **state)
{
        (void)state;
        dm_log_set_level(DM_LOG_INFO);
        char *line = capture_log(DM_LOG_WARN, "dns", "\"timeout\"");
        /* ts=2026-11-25T23:55:24.123Z is 27 characters. */
        assert_true(strlen(line) > 28);
        assert_memory_equal(line, "ts=", 3);
        assert_int_equal(line[13], 'T');
        assert_int_equal(line[26], 'Z');
        assert_string_equal(line + 27, " level=warn svc=dns msg=\"timeout\" n=42\n");
        int64_t t;
        char ts[32];
        memcpy(ts, line + 3, 24);
        ts[24] = '\0';
        assert_int_equal(dm_time_parse(ts, &t), 0);
        assert_true(t > 1700000000000LL);
        free(line);
}

static void test_log_filter(void **state)
{
        (void)state;
        dm_log_set_level(DM_LOG_WARN);
        char *line = capture_log(DM_LOG_INFO, "http", "dropped");
        assert_string_equal(line, "");
        free(line);
        line = capture_log(DM_LOG_ERROR, "http", "kept");
        assert_non_null(strstr(line, " level=error svc=http msg=kept n=42\n"));
        free(line);
        dm_log_set_level(DM_LOG_DEBUG);
        line = capture_log(DM_LOG_DEBUG, "x", "dbg");
        assert_non_null(strstr(line, " level=debug svc=x msg=dbg"));
        free(line);
        dm_log_set_level(DM_LOG_INFO);
}

static void test_log_long_line(void **state)
{
        (void)state;
        size_t n = 20000;
        char *big = malloc(n + 1);
        assert_non_null(big);
        memset(big, 'x', n);
        big[n] = '\0';
        char *line = capture_log(DM_LOG_ERROR, "t", big);
        size_t len = strlen(line);
        assert_true(len < n);
        assert_int_equal(line[len - 1], '\n');
        assert_ptr_equal(strchr(line, '\n'), line + len - 1);
        free(line);
        free(big);
}

static void test_buf_basic(void **state)
{
        struct dm_buf b;
        (void)state;
        dm_buf_init(&b, 100);
        assert_int_equal(b.len, 0);
        assert_int_equal(dm_buf_addstr(&b, "hello"), 0);
        assert_int_equal(dm_buf_addc(&b, ' '), 0);
        assert_int_equal(dm_buf_add(&b, "world!!", 5), 0);
        assert_string_equal(b.data, "hello world");
        assert_int_equal(b.len, 11);
        assert_int_equal(dm_buf_addf(&b, " %d-%s", 7, "x"), 0);
        assert_string_equal(b.data, "hello world 7-x");
        dm_buf_clear(&b);
        assert_int_equal(b.len, 0);
        assert_string_equal(b.data, "");
        assert_int_equal(dm_buf_addstr(&b, "again"), 0);
        assert_string_equal(b.data, "again");
        dm_buf_done(&b);
        assert_null(b.data);
        dm_buf_done(NULL);
}

static void test_buf_cap(void **state)
{
        struct dm_buf b;
        (void)state;
        dm_buf_init(&b, 10);
        assert_int_equal(dm_buf_addstr(&b, "0123456789"), 0);
        assert_int_equal(b.len, 10);
        assert_int_equal(dm_buf_addc(&b, 'x'), DM_E2BIG);
        assert_int_equal(dm_buf_addf(&b, "%s", "y"), DM_E2BIG);
        assert_int_equal(b.len, 10);
        assert_string_equal(b.data, "0123456789");
        dm_buf_clear(&b);
        assert_int_equal(dm_buf_addstr(&b, "01234567890"), DM_E2BIG);
        assert_int_equal(b.len, 0);
        dm_buf_done(&b);

        dm_buf_init(&b, 0);
        assert_int_equal(dm_buf_addc(&b, 'x'), DM_E2BIG);
        assert_int_equal(dm_buf_add(&b, "", 0), 0);
        assert_string_equal(b.data, "");
        dm_buf_done(&b);
}

static void test_buf_grow_and_addf_large(void **state)
{
        struct dm_buf b;
        (void)state;
        dm_buf_init(&b, 1 << 20);
        for (int i = 0; i < 10000; i++)
                assert_int_equal(dm_buf_addf(&b, "%04d,", i % 10000), 0);
        assert_int_equal(b.len, 50000);
        assert_memory_equal(b.data + 49995, "9999,", 5);

        char big[1000];
        memset(big, 'z', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        dm_buf_clear(&b);
        assert_int_equal(dm_buf_addf(&b, "<%s>", big), 0);
        assert_int_equal(b.len, 1001);
        assert_int_equal(b.data[1000], '>');
        dm_buf_done(&b);

        dm_buf_init(&b, 500);
        assert_int_equal(dm_buf_addstr(&b, "keep"), 0);
        assert_int_equal(dm_buf_addf(&b, "%s", big), DM_E2BIG);
        assert_string_equal(b.data, "keep");
        dm_buf_done(&b);
}

static void test_buf_detach(void **state)
{
        struct dm_buf b;
        (void)state;
        dm_buf_init(&b, 64);
        char *s = dm_buf_detach(&b);
        assert_non_null(s);
        assert_string_equal(s, "");
        free(s);
        assert_int_equal(dm_buf_addstr(&b, "abc"), 0);
        s = dm_buf_detach(&b);
        assert_string_equal(s, "abc");
        assert_null(b.data);
        assert_int_equal(b.len, 0);
        free(s);
        dm_buf_done(&b);
}

static void test_cursor(void **state)
{
        static const uint8_t data[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09};
        struct dm_cursor c;
        uint8_t u8 = 0;
        uint16_t u16 = 0;
        uint32_t u32 = 0;
        const uint8_t *p = NULL;
        (void)state;

        dm_cursor_init(&c, data, sizeof(data));
        assert_int_equal(dm_cursor_left(&c), 9);
        assert_int_equal(dm_cursor_u8(&c, &u8), 0);
        assert_int_equal(u8, 1);
        assert_int_equal(dm_cursor_u16(&c, &u16), 0);
        assert_int_equal(u16, 0x0203);
        assert_int_equal(dm_cursor_u32(&c, &u32), 0);
        assert_int_equal(u32, 0x04050607);
        assert_int_equal(dm_cursor_left(&c), 2);
        assert_int_equal(dm_cursor_u32(&c, &u32), DM_ETRUNC);
        assert_int_equal(u32, 0x04050607);
        assert_int_equal(dm_cursor_left(&c), 2);
        assert_int_equal(dm_cursor_bytes(&c, 3, &p), DM_ETRUNC);
        assert_int_equal(dm_cursor_bytes(&c, 2, &p), 0);
        assert_ptr_equal(p, data + 7);
        assert_int_equal(dm_cursor_u8(&c, &u8), DM_ETRUNC);
        assert_int_equal(dm_cursor_u16(&c, &u16), DM_ETRUNC);
        assert_int_equal(dm_cursor_seek(&c, 10), DM_ETRUNC);
        assert_int_equal(dm_cursor_seek(&c, 9), 0);
        assert_int_equal(dm_cursor_seek(&c, 1), 0);
        assert_int_equal(dm_cursor_skip(&c, 8), 0);
        assert_int_equal(dm_cursor_skip(&c, 1), DM_ETRUNC);
        assert_int_equal(dm_cursor_seek(&c, 0), 0);
        assert_int_equal(dm_cursor_skip(&c, SIZE_MAX), DM_ETRUNC);
        assert_int_equal(dm_cursor_bytes(&c, SIZE_MAX, &p), DM_ETRUNC);
        assert_int_equal(c.pos, 0);

        dm_cursor_init(&c, NULL, 0);
        assert_int_equal(dm_cursor_left(&c), 0);
        assert_int_equal(dm_cursor_u8(&c, &u8), DM_ETRUNC);
        assert_int_equal(dm_cursor_bytes(&c, 0, &p), 0);
}

static void test_clocks(void **state)
{
        (void)state;
        int64_t now = dm_now_ms();
        assert_true(now > 1700000000000LL);
        int64_t m1 = dm_mono_ms();
        int64_t m2 = dm_mono_ms();
        assert_true(m2 >= m1);
}

static void test_time_format(void **state)
{
        char buf[DM_RFC3339_LEN];
        (void)state;
        assert_string_equal(dm_time_format(0, buf), "1970-01-01T00:00:00.000Z");
        assert_string_equal(dm_time_format(1795650924123LL, buf), "2026-11-25T23:55:24.123Z");
        assert_string_equal(dm_time_format(951782400000LL, buf), "2000-02-29T00:00:00.000Z");
        assert_string_equal(dm_time_format(-1, buf), "1969-12-31T23:59:59.999Z");
        assert_string_equal(dm_time_format(253402300799999LL, buf), "9999-12-31T23:59:59.999Z");
}

static void test_time_parse(void **state)
{
        int64_t t = 0;
        (void)state;
        assert_int_equal(dm_time_parse("2026-11-25T23:55:24.123Z", &t), 0);
        assert_int_equal(t, 1795650924123LL);
        assert_int_equal(dm_time_parse("2026-11-25T23:55:24Z", &t), 0);
        assert_int_equal(t, 1795650924000LL);
        assert_int_equal(dm_time_parse("2026-11-25t23:55:24z", &t), 0);
        assert_int_equal(t, 1795650924000LL);
        assert_int_equal(dm_time_parse("2026-11-25 23:55:24Z", &t), 0);
        assert_int_equal(t, 1795650924000LL);
        assert_int_equal(dm_time_parse("2026-11-26T01:55:24.123+02:00", &t), 0);
        assert_int_equal(t, 1795650924123LL);
        assert_int_equal(dm_time_parse("2026-11-25T18:25:24.123-05:30", &t), 0);
        assert_int_equal(t, 1795650924123LL);
        assert_int_equal(dm_time_parse("2026-11-25T23:55:24.1Z", &t), 0);
        assert_int_equal(t, 1795650924100LL);
        assert_int_equal(dm_time_parse("2026-11-25T23:55:24.123456789Z", &t), 0);
        assert_int_equal(t, 1795650924123LL);
        assert_int_equal(dm_time_parse("2026-11-25", &t), 0);
        assert_int_equal(t, 1795564800000LL);
        assert_int_equal(dm_time_parse("1970-01-01T00:00:00Z", &t), 0);
        assert_int_equal(t, 0);
        assert_int_equal(dm_time_parse("2024-02-29", &t), 0);
        assert_int_equal(dm_time_parse("1969-12-31T23:59:59.999Z", &t), 0);
        assert_int_equal(t, -1);
}

static void test_time_parse_bad(void **state)
{
        static const char *const bad[] = {
            "",
            "2026",
            "2026-11",
            "2026-13-01",
            "2026-00-01",
            "2026-11-31",
            "2023-02-29",
            "2026-11-25T",
            "2026-11-25T24:00:00Z",
            "2026-11-25T23:60:00Z",
            "2026-11-25T23:55:61Z",
            "2026-11-25T23:55:24",
            "2026-11-25T23:55:24.Z",
            "2026-11-25T23:55:24+0200",
            "2026-11-25T23:55:24+24:00",
            "2026-11-25T23:55:24Zjunk",
            "2026-11-25x",
            "26-11-25",
            "2026/11/25",
            " 2026-11-25",
            "2026-11-25T1:2:3Z",
        };
        int64_t t = 42;
        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (dm_time_parse(bad[i], &t) != DM_EINVAL)
                        fail_msg("accepted \"%s\"", bad[i]);
        }
        assert_int_equal(dm_time_parse(NULL, &t), DM_EINVAL);
        assert_int_equal(t, 42);
}

static void test_time_roundtrip(void **state)
{
        char buf[DM_RFC3339_LEN];
        (void)state;
        for (int64_t ms = -86400000LL * 365; ms < 4102444800000LL; ms += 7777777777LL) {
                int64_t back = 0;
                assert_int_equal(dm_time_parse(dm_time_format(ms, buf), &back), 0);
                assert_int_equal(back, ms);
        }
}

static void test_duration(void **state)
{
        int64_t ms = -1;
        (void)state;
        assert_int_equal(dm_duration_parse("90", &ms), 0);
        assert_int_equal(ms, 90000);
        assert_int_equal(dm_duration_parse("90s", &ms), 0);
        assert_int_equal(ms, 90000);
        assert_int_equal(dm_duration_parse("1500ms", &ms), 0);
        assert_int_equal(ms, 1500);
        assert_int_equal(dm_duration_parse("10m", &ms), 0);
        assert_int_equal(ms, 600000);
        assert_int_equal(dm_duration_parse("2h", &ms), 0);
        assert_int_equal(ms, 7200000);
        assert_int_equal(dm_duration_parse("1d", &ms), 0);
        assert_int_equal(ms, 86400000);
        assert_int_equal(dm_duration_parse("0", &ms), 0);
        assert_int_equal(ms, 0);

        ms = 7;
        static const char *const bad[] = {"",     "s",  "-5s", "+5s",  "5 s", " 5s", "5sec",
                                          "1.5s", "5S", "5w",  "10mm", "abc", "5s ", "0x10"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (dm_duration_parse(bad[i], &ms) != DM_EINVAL)
                        fail_msg("accepted \"%s\"", bad[i]);
        }
        assert_int_equal(dm_duration_parse(NULL, &ms), DM_EINVAL);
        assert_int_equal(dm_duration_parse("99999999999999999999", &ms), DM_ERANGE);
        assert_int_equal(dm_duration_parse("9223372036854775807d", &ms), DM_ERANGE);
        assert_int_equal(dm_duration_parse("9223372036854775807ms", &ms), 0);
        assert_int_equal(ms, INT64_MAX);
}

static const unsigned char embed_a[] = "alpha";
static const unsigned char embed_b[] = "beta";

static void test_embed(void **state)
{
        static const struct dm_embed_file table[] = {
            {"a.txt", embed_a, 5},
            {"b.txt", embed_b, 4},
            {NULL, NULL, 0},
        };
        (void)state;
        const struct dm_embed_file *f = dm_embed_find(table, "b.txt");
        assert_non_null(f);
        assert_int_equal(f->len, 4);
        assert_string_equal((const char *)f->data, "beta");
        assert_null(dm_embed_find(table, "c.txt"));
        assert_null(dm_embed_find(table, "b.tx"));
        assert_null(dm_embed_find(table, NULL));
        assert_null(dm_embed_find(NULL, "a.txt"));

        f = dm_embed_find(dm_embed_docs, "openapi.json");
        assert_non_null(f);
        assert_int_equal(f->data[f->len], '\0');
        assert_int_equal(strlen((const char *)f->data), f->len);
}

static void test_hex(void **state)
{
        (void)state;
        const uint8_t in[] = {0x00, 0x9f, 0xa0, 0xff};
        char out[9];
        uint8_t back[4];

        dm_hex_encode(in, sizeof(in), out);
        assert_string_equal(out, "009fa0ff");
        assert_int_equal(dm_hex_decode(out, 8, back, 4), 0);
        assert_memory_equal(back, in, 4);
        assert_int_equal(dm_hex_decode("009FA0FF", 8, back, 4), 0);
        assert_memory_equal(back, in, 4);
        assert_int_equal(dm_hex_decode("009fa0f", 7, back, 4), DM_EINVAL);
        assert_int_equal(dm_hex_decode("009fa0fg", 8, back, 4), DM_EINVAL);
        assert_int_equal(dm_hex_digit('z'), -1);
}

static void test_errorf(void **state)
{
        (void)state;
        char err[16];

        assert_int_equal(dm_errorf(DM_ECONFIG, err, sizeof(err), "bad %s", "value"), DM_ECONFIG);
        assert_string_equal(err, "bad value");
        assert_int_equal(dm_errorf(DM_EINVAL, err, sizeof(err), "%s", "a very long message here"),
                         DM_EINVAL);
        assert_int_equal(strlen(err), sizeof(err) - 1);
        assert_int_equal(dm_errorf(DM_EINVAL, NULL, 0, "ignored"), DM_EINVAL);
}

static void test_url_scheme(void **state)
{
        (void)state;
        char buf[16];

        assert_int_equal(dm_url_scheme("SQLite:///x.db", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "sqlite");
        assert_int_equal(dm_url_scheme("inproc:", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "inproc");
        assert_int_equal(dm_url_scheme("no-colon", buf, sizeof(buf)), DM_EINVAL);
        assert_int_equal(dm_url_scheme(":x", buf, sizeof(buf)), DM_EINVAL);
        assert_int_equal(dm_url_scheme("averyveryverylongscheme://", buf, sizeof(buf)), DM_EINVAL);
        assert_int_equal(dm_url_scheme(NULL, buf, sizeof(buf)), DM_EINVAL);
}

static void test_log_format_parse(void **state)
{
        enum dm_log_format f = DM_LOG_JSON;
        (void)state;
        assert_int_equal(dm_log_format_parse("logfmt", &f), 0);
        assert_int_equal(f, DM_LOG_LOGFMT);
        assert_int_equal(dm_log_format_parse("json", &f), 0);
        assert_int_equal(f, DM_LOG_JSON);
        assert_int_equal(dm_log_format_parse("JSON", &f), DM_EINVAL);
        assert_int_equal(dm_log_format_parse(NULL, &f), DM_EINVAL);
}

static void json_of(const char *line, const char *want)
{
        char out[512];
        size_t n = dm_log_logfmt_to_json(line, strlen(line), out, sizeof(out));
        assert_int_equal(n, strlen(out));
        assert_string_equal(out, want);
}

static void test_log_logfmt_to_json(void **state)
{
        (void)state;
        json_of("ts=2026-11-29T20:00:00.000Z level=info svc=dns msg=\"change recorded\" "
                "domain=example.test type=A first=false",
                "{\"ts\":\"2026-11-29T20:00:00.000Z\",\"level\":\"info\",\"svc\":\"dns\","
                "\"msg\":\"change recorded\",\"domain\":\"example.test\",\"type\":\"A\","
                "\"first\":false}");
        /* Numbers stay numbers; a leading zero or a long run of digits does not. */
        json_of("n=42 neg=-7 z=0 lead=007 big=12345678901234567890 ms=1.5",
                "{\"n\":42,\"neg\":-7,\"z\":0,\"lead\":\"007\",\"big\":"
                "\"12345678901234567890\",\"ms\":\"1.5\"}");
        /* Quoted values: \" and \\ undone and escaped again for JSON; \xNN kept as text. */
        char q[128], line[256];
        dm_log_quote(q, sizeof(q), "[\"192.0.2.1\"] a\\b\n");
        snprintf(line, sizeof(line), "added=%s", q);
        json_of(line, "{\"added\":\"[\\\"192.0.2.1\\\"] a\\\\b\\\\x0a\"}");
        /* An empty quoted value, a word without '=', an unquoted value with a quote. */
        json_of("a=\"\" word b=x\"y", "{\"a\":\"\",\"word\":\"\",\"b\":\"x\\\"y\"}");
        json_of("", "{}");
        /* Every line the JSON form takes apart the way logfmt puts it together. */
        dm_log_quote(q, sizeof(q), "say \"hi\" = ok");
        snprintf(line, sizeof(line), "msg=%s key=v", q);
        json_of(line, "{\"msg\":\"say \\\"hi\\\" = ok\",\"key\":\"v\"}");
}

static void test_log_json_cut(void **state)
{
        (void)state;
        char out[24];
        /* Cut at the last whole member, the object still closed. */
        size_t n = dm_log_logfmt_to_json("a=1 b=2 c=3456789", 17, out, sizeof(out));
        assert_string_equal(out, "{\"a\":1,\"b\":2}");
        assert_int_equal(n, strlen(out));
        n = dm_log_logfmt_to_json("verylongkey=verylongvalue", 25, out, 4);
        assert_string_equal(out, "{}");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_strerror),
            cmocka_unit_test(test_errname),
            cmocka_unit_test(test_log_level_parse),
            cmocka_unit_test(test_log_format_parse),
            cmocka_unit_test(test_log_logfmt_to_json),
            cmocka_unit_test(test_log_json_cut),
            cmocka_unit_test(test_log_quote),
            cmocka_unit_test(test_log_quote_truncates),
            cmocka_unit_test(test_log_line),
            cmocka_unit_test(test_log_filter),
            cmocka_unit_test(test_log_long_line),
            cmocka_unit_test(test_buf_basic),
            cmocka_unit_test(test_buf_cap),
            cmocka_unit_test(test_buf_grow_and_addf_large),
            cmocka_unit_test(test_buf_detach),
            cmocka_unit_test(test_cursor),
            cmocka_unit_test(test_clocks),
            cmocka_unit_test(test_time_format),
            cmocka_unit_test(test_time_parse),
            cmocka_unit_test(test_time_parse_bad),
            cmocka_unit_test(test_time_roundtrip),
            cmocka_unit_test(test_duration),
            cmocka_unit_test(test_embed),
            cmocka_unit_test(test_hex),
            cmocka_unit_test(test_errorf),
            cmocka_unit_test(test_url_scheme),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
