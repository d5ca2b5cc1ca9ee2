/* lib/name: what users type -> one canonical domain name, or a clear reason why not. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "dm/error.h"
#include "dm/name.h"

#include <stdio.h>
#include <string.h>

struct name_ok {
        const char *in;
        const char *ascii;
        const char *unicode;
};

static const struct name_ok valid_names[] = {
    {"example.com", "example.com", "example.com"},
    {"Example.COM", "example.com", "example.com"},
    {"example.com.", "example.com", "example.com"},
    {"www.example.co.uk", "www.example.co.uk", "www.example.co.uk"},
    {"a.b", "a.b", "a.b"},
    {"x1.example", "x1.example", "x1.example"},
    {"123.example.com", "123.example.com", "123.example.com"},
    {"1-2-3.example", "1-2-3.example", "1-2-3.example"},
    {"a-b.example", "a-b.example", "a-b.example"},
    {"ab--cd.example", "ab--cd.example", "ab--cd.example"},
    {"_dmarc.example.com", "_dmarc.example.com", "_dmarc.example.com"},
    {"_443._tcp.example.com", "_443._tcp.example.com", "_443._tcp.example.com"},
    {"_domainkey.Example.com", "_domainkey.example.com", "_domainkey.example.com"},
    {"sel_1._domainkey.example.com", "sel_1._domainkey.example.com",
     "sel_1._domainkey.example.com"},
    {"under_score.example", "under_score.example", "under_score.example"},
    {"bücher.example", "xn--bcher-kva.example", "bücher.example"},
    {"xn--bcher-kva.example", "xn--bcher-kva.example", "bücher.example"},
    {"XN--BCHER-KVA.EXAMPLE", "xn--bcher-kva.example", "bücher.example"},
    {"BÜCHER.example", "xn--bcher-kva.example", "bücher.example"},
    {"bücher.example.", "xn--bcher-kva.example", "bücher.example"},
    {"faß.de", "xn--fa-hia.de", "faß.de"},
    {"münchen.de", "xn--mnchen-3ya.de", "münchen.de"},
    /* "u" followed by a combining diaeresis is NFC-normalized to "ü". */
    {"mu\xcc\x88nchen.de", "xn--mnchen-3ya.de", "münchen.de"},
    {"пример.испытание", "xn--e1afmkfd.xn--80akhbyknj4f", "пример.испытание"},
    {"例え.テスト", "xn--r8jz45g.xn--zckzah", "例え.テスト"},
    {"www.例え.テスト", "www.xn--r8jz45g.xn--zckzah", "www.例え.テスト"},
    {"_dmarc.bücher.example", "_dmarc.xn--bcher-kva.example", "_dmarc.bücher.example"},
    {"xn--mnchen-3ya.de", "xn--mnchen-3ya.de", "münchen.de"},
    /* Full-width letters and the ideographic full stop are mapped by UTS-46. */
    {"ｅｘａｍｐｌｅ.com", "example.com", "example.com"},
    {"example。com", "example.com", "example.com"},
    {"example.com。", "example.com", "example.com"},
    {"com.example", "com.example", "com.example"},
    {"a.xn--p1ai", "a.xn--p1ai", "a.рф"},
    {"_.example", "_.example", "_.example"},
    {"a_.example", "a_.example", "a_.example"},
    {"soft\xc2\xadhyphen.example", "softhyphen.example", "softhyphen.example"},
    {"example.xn--p1ai.", "example.xn--p1ai", "example.рф"},
};

struct name_bad {
        const char *in;
        size_t len;         /* 0: strlen(in) */
        const char *reason; /* substring of the error text */
};

static const struct name_bad invalid_names[] = {
    {"", 0, "empty name"},
    {".", 0, "empty name"},
    {"localhost", 0, "single-label"},
    {"com", 0, "single-label"},
    {"com.", 0, "single-label"},
    {"bücher", 0, "single-label"},
    {"a..b", 0, "empty label"},
    {".a.com", 0, "empty label"},
    {"a.com..", 0, "empty label"},
    {"..", 0, "empty label"},
    {"1.2.3.4", 0, "IP address"},
    {"1.2.3.4.", 0, "IP address"},
    {"192.168.0.1", 0, "IP address"},
    {"[::1]", 0, "IP address"},
    {"::1", 0, "IP address"},
    {"2001:db8::1", 0, "IP address"},
    {"[2001:db8::1]", 0, "IP address"},
    {"example.123", 0, "all numeric"},
    {"1.2.3", 0, "all numeric"},
    {"*.example.com", 0, "wildcard"},
    {"foo.*.example.com", 0, "wildcard"},
    {"-foo.example.com", 0, "hyphen"},
    {"foo-.example.com", 0, "hyphen"},
    {"foo.example-", 0, "hyphen"},
    {"-.example", 0, "hyphen"},
    {"exa mple.com", 0, "spaces"},
    {" example.com", 0, "spaces"},
    {"example.com ", 0, "spaces"},
    {"exa\tmple.com", 0, "control"},
    {"example.com\n", 0, "control"},
    {"exa\x7fmple.com", 0, "control"},
    {"example\0.com", 12, "NUL"},
    {"example.com\0", 12, "NUL"},
    {"https://example.com/", 0, "looks like a URL"},
    {"http://example.com", 0, "looks like a URL"},
    {"example.com/path", 0, "looks like a URL"},
    {"example.com:443", 0, "looks like a URL"},
    {"example.com?q=1", 0, "looks like a URL"},
    {"user@example.com", 0, "email address or URL"},
    {"exa!mple.com", 0, "invalid character '!'"},
    {"exa$mple.com", 0, "invalid character '$'"},
    {"example.com,org", 0, "invalid character ','"},
    {"a\"b.com", 0, "invalid character"},
    {"b\xc3\xbc\xc3.example", 0, "UTF-8"},
    {"\xff.example", 0, "UTF-8"},
    {"\xc0\xae.example", 0, "UTF-8"},
    {"\xed\xa0\x80.example", 0, "UTF-8"},
    {"☃.example", 0, "not allowed"},
    {"💩.example", 0, "not allowed"},
    {"xn--ls8h.example", 0, "xn--"},
    {"xn--a.example", 0, "xn--"},
    /* Decodes to U+2480, which UTS-46 would map to "(13)". */
    {"xn--lsh.example", 0, "xn--"},
    {"xn--bcher-kva-.example", 0, "hyphen"},
    {"xn--.example", 0, "xn--"},
    {"xn--abc-.example", 0, "xn--"},
    {"-bücher.example", 0, "hyphen"},
    {"bücher-.example", 0, "hyphen"},
    {"ümlaut_x.example", 0, "'_' is not allowed in internationalized"},
    {"xn--mlaut_x-m2a.example", 0, "'_' is not allowed in internationalized"},
    {"example._com", 0, "top-level domain"},
    {"a._", 0, "top-level domain"},
    {"‐hyphen.example", 0, "not allowed"},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com", 0, "longer than 63"},
};

static void test_valid_names(void **state)
{
        (void)state;
        for (size_t i = 0; i < sizeof(valid_names) / sizeof(valid_names[0]); i++) {
                const struct name_ok *t = &valid_names[i];
                struct dm_name n;
                char err[128] = "";
                int r = dm_name_parse(t->in, strlen(t->in), err, sizeof(err), &n);
                if (r != 0)
                        fail_msg("\"%s\" rejected: %s", t->in, err);
                if (strcmp(n.ascii, t->ascii) != 0)
                        fail_msg("\"%s\": ascii \"%s\", want \"%s\"", t->in, n.ascii, t->ascii);
                if (strcmp(n.unicode, t->unicode) != 0)
                        fail_msg("\"%s\": unicode \"%s\", want \"%s\"", t->in, n.unicode,
                                 t->unicode);
        }
}

static void test_invalid_names(void **state)
{
        (void)state;
        for (size_t i = 0; i < sizeof(invalid_names) / sizeof(invalid_names[0]); i++) {
                const struct name_bad *t = &invalid_names[i];
                struct dm_name n;
                char err[128] = "";
                memset(&n, 0x5a, sizeof(n));
                size_t len = t->len ? t->len : strlen(t->in);
                int r = dm_name_parse(t->in, len, err, sizeof(err), &n);
                if (r != DM_EBADNAME)
                        fail_msg("\"%s\" accepted (%d) as \"%s\"", t->in, r, r == 0 ? n.ascii : "");
                if (!strstr(err, t->reason))
                        fail_msg("\"%s\": reason \"%s\" does not mention \"%s\"", t->in, err,
                                 t->reason);
                /* ret_name is written only on success. */
                assert_int_equal((unsigned char)n.ascii[0], 0x5a);
        }
}

static void test_same_domain_two_spellings(void **state)
{
        struct dm_name u, a;
        char err[128];
        (void)state;
        const char *in1 = "bücher.example";
        const char *in2 = "xn--bcher-kva.example";
        assert_int_equal(dm_name_parse(in1, strlen(in1), err, sizeof(err), &u), 0);
        assert_int_equal(dm_name_parse(in2, strlen(in2), err, sizeof(err), &a), 0);
        assert_string_equal(u.ascii, a.ascii);
        assert_string_equal(u.unicode, a.unicode);
}

/* Builds "l.l.l...com" from labels of `label_len` 'a's until `total` octets. */
static size_t build_long_name(char *buf, size_t size, size_t label_len, size_t total)
{
        size_t o = 0;
        while (o < total) {
                size_t n = label_len;
                if (o + n > total)
                        n = total - o;
                if (o > 0) {
                        buf[o - 1] = '.';
                }
                memset(buf + o, 'a', n);
                o += n + 1;
                assert_true(o < size);
        }
        buf[total] = '\0';
        return total;
}

static void test_length_limits(void **state)
{
        char buf[600];
        char err[128];
        struct dm_name n;
        (void)state;

        /* 63-octet label is fine, 64 is not. */
        char l63[80];
        memset(l63, 'a', 63);
        memcpy(l63 + 63, ".com", 5);
        assert_int_equal(dm_name_parse(l63, strlen(l63), err, sizeof(err), &n), 0);
        assert_int_equal(strlen(n.ascii), 67);

        /* 253 octets total is the maximum; 254 is one too many. */
        size_t len = build_long_name(buf, sizeof(buf), 63, 253);
        assert_int_equal(strlen(buf), 253);
        assert_int_equal(dm_name_parse(buf, len, err, sizeof(err), &n), 0);
        assert_int_equal(strlen(n.ascii), 253);

        /* With the trailing dot it is still 253. */
        buf[253] = '.';
        buf[254] = '\0';
        assert_int_equal(dm_name_parse(buf, 254, err, sizeof(err), &n), 0);

        len = build_long_name(buf, sizeof(buf), 63, 254);
        assert_int_equal(dm_name_parse(buf, len, err, sizeof(err), &n), DM_EBADNAME);
        assert_non_null(strstr(err, "longer than 253"));

        /* The limit applies to the A-label form: 40 "ü" labels expand past 253. */
        char ubuf[600];
        size_t o = 0;
        for (int i = 0; i < 40; i++) {
                memcpy(ubuf + o, "\xc3\xbc\xc3\xbc.", 5);
                o += 5;
        }
        memcpy(ubuf + o, "com", 4);
        o += 3;
        assert_int_equal(dm_name_parse(ubuf, o, err, sizeof(err), &n), DM_EBADNAME);
        assert_non_null(strstr(err, "longer than 253"));

        /* A U-label whose A-label is over 63 octets. */
        o = 0;
        for (int i = 0; i < 60; i++) {
                memcpy(ubuf + o, "\xc3\xbc", 2);
                o += 2;
        }
        memcpy(ubuf + o, ".com", 5);
        o += 4;
        assert_int_equal(dm_name_parse(ubuf, o, err, sizeof(err), &n), DM_EBADNAME);
        assert_non_null(strstr(err, "63"));

        /* Huge input is refused before any work. */
        char huge[5000];
        memset(huge, 'a', sizeof(huge));
        assert_int_equal(dm_name_parse(huge, sizeof(huge), err, sizeof(err), &n), DM_EBADNAME);
}

static void test_not_nul_terminated(void **state)
{
        struct dm_name n;
        char err[128];
        (void)state;
        /* Only `len` bytes are read. */
        const char *s = "example.comXYZ";
        assert_int_equal(dm_name_parse(s, 11, err, sizeof(err), &n), 0);
        assert_string_equal(n.ascii, "example.com");
        assert_int_equal(dm_name_parse("example.org", 7, err, sizeof(err), &n), DM_EBADNAME);
}

static void test_err_buffer_edge_cases(void **state)
{
        struct dm_name n;
        char err[8];
        (void)state;
        assert_int_equal(dm_name_parse("", 0, NULL, 0, &n), DM_EBADNAME);
        assert_int_equal(dm_name_parse("a..b", 4, NULL, 0, &n), DM_EBADNAME);
        assert_int_equal(dm_name_parse("a..b", 4, err, sizeof(err), &n), DM_EBADNAME);
        assert_int_equal(strlen(err), sizeof(err) - 1);
        assert_int_equal(dm_name_parse(NULL, 0, err, sizeof(err), &n), DM_EBADNAME);
        assert_int_equal(dm_name_parse("ok.example", 10, err, sizeof(err), &n), 0);
}

static void test_reparse_is_stable(void **state)
{
        (void)state;
        for (size_t i = 0; i < sizeof(valid_names) / sizeof(valid_names[0]); i++) {
                struct dm_name a, b, c;
                char err[128];
                const char *in = valid_names[i].in;
                assert_int_equal(dm_name_parse(in, strlen(in), err, sizeof(err), &a), 0);
                assert_int_equal(dm_name_parse(a.ascii, strlen(a.ascii), err, sizeof(err), &b), 0);
                assert_string_equal(a.ascii, b.ascii);
                assert_string_equal(a.unicode, b.unicode);
                assert_int_equal(dm_name_parse(a.unicode, strlen(a.unicode), err, sizeof(err), &c),
                                 0);
                assert_string_equal(a.ascii, c.ascii);
        }
}

static void test_stored_form(void **state)
{
        (void)state;
        const char *good[] = {"example.com", "_dmarc.example.com", "xn--bcher-kva.example",
                              "a-b.c0"};
        const char *bad[] = {"",       "com",    "Example.com", "a..com",  ".a.com",  "a.com.",
                             "-a.com", "a-.com", "a.com-",      "a b.com", "a.c\x01m"};
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
                assert_true(dm_name_is_stored_form(good[i]));
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (dm_name_is_stored_form(bad[i]))
                        fail_msg("accepted \"%s\"", bad[i]);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_valid_names),
            cmocka_unit_test(test_invalid_names),
            cmocka_unit_test(test_same_domain_two_spellings),
            cmocka_unit_test(test_length_limits),
            cmocka_unit_test(test_not_nul_terminated),
            cmocka_unit_test(test_err_buffer_edge_cases),
            cmocka_unit_test(test_reparse_is_stable),
            cmocka_unit_test(test_stored_form),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
