/* RDATA presentation: every type with a printer, from hand-built bytes, in the one
 * canonical spelling; escaping of character-strings; malformed RDATA refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dm/error.h"
#include "dm/rdata.h"
#include "dm/rrtype.h"
#include "dnspkt.h"

/* Formats p as standalone RDATA of `type` and compares with `want`. */
static void expect(uint16_t type, const struct pk *p, const char *want)
{
        char *text = NULL;
        int ret = dm_rdata_to_text(type, p->b, p->n, 0, p->n, &text);
        if (ret)
                fail_msg("type %u: error %d, wanted \"%s\"", type, ret, want);
        assert_string_equal(text, want);
        free(text);
}

static void expect_bad(uint16_t type, const struct pk *p)
{
        char *text = NULL;
        assert_int_equal(dm_rdata_to_text(type, p->b, p->n, 0, p->n, &text), DM_EPARSE);
        assert_null(text);
}

static void rd(struct pk *p, const void *bytes, size_t n)
{
        pk_init(p);
        pk_bytes(p, bytes, n);
}

static void test_addresses(void **state)
{
        struct pk p;
        rd(&p, "\xc0\x00\x02\x01", 4);
        expect(DM_RR_A, &p, "192.0.2.1");
        rd(&p, "\0\0\0\0", 4);
        expect(DM_RR_A, &p, "0.0.0.0");
        rd(&p, "\xff\x0a\x64\x09", 4);
        expect(DM_RR_A, &p, "255.10.100.9");
        rd(&p, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
        expect(DM_RR_AAAA, &p, "2001:db8::1");
        rd(&p, "\0\0\0\0\0\0\0\0\0\0\xff\xff\xc0\x00\x02\x01", 16);
        expect(DM_RR_AAAA, &p, "::ffff:192.0.2.1");
        rd(&p, "\xc0\x00\x02", 3);
        expect_bad(DM_RR_A, &p);
        rd(&p, "\xc0\x00\x02\x01\x00", 5);
        expect_bad(DM_RR_A, &p);
        rd(&p, "\xc0\x00\x02\x01", 4);
        expect_bad(DM_RR_AAAA, &p);
        pk_init(&p);
        expect_bad(DM_RR_A, &p);
}

static void test_names(void **state)
{
        struct pk p;
        static const uint16_t types[] = {DM_RR_NS, DM_RR_CNAME, DM_RR_DNAME, DM_RR_PTR};
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
                pk_init(&p);
                pk_name(&p, "NS1.Example.COM");
                expect(types[i], &p, "ns1.example.com.");
        }
        pk_init(&p);
        pk_name(&p, "");
        expect(DM_RR_NS, &p, ".");
        /* Special characters in labels. */
        pk_init(&p);
        pk_u8(&p, 5);
        pk_bytes(&p, "a.b\"\x7f", 5);
        pk_u8(&p, 3);
        pk_bytes(&p, "x y", 3);
        pk_u8(&p, 0);
        expect(DM_RR_PTR, &p, "a\\.b\\\"\\127.x\\032y.");
        /* Junk after the name. */
        pk_init(&p);
        pk_name(&p, "example.com");
        pk_u8(&p, 1);
        expect_bad(DM_RR_CNAME, &p);
        /* A name running past the RDATA. */
        rd(&p, "\7example\3co", 11);
        expect_bad(DM_RR_NS, &p);
}

static void test_mx_compressed(void **state)
{
        /* A message where the MX target points back at the owner. */
        struct pk p;
        pk_init(&p);
        pk_bytes(&p, "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
        pk_name(&p, "Example.COM"); /* 12 */
        size_t rdoff = p.n;
        pk_u16(&p, 10);
        pk_labels(&p, "MAIL");
        pk_ptr(&p, 12);
        char *text = NULL;
        assert_int_equal(dm_rdata_to_text(DM_RR_MX, p.b, p.n, rdoff, p.n - rdoff, &text), 0);
        assert_string_equal(text, "10 mail.example.com.");
        free(text);
        /* The same pointer is refused where compression is not allowed (SVCB target). */
        pk_init(&p);
        pk_bytes(&p, "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
        pk_name(&p, "example.com");
        rdoff = p.n;
        pk_u16(&p, 1);
        pk_ptr(&p, 12);
        assert_int_equal(dm_rdata_to_text(DM_RR_HTTPS, p.b, p.n, rdoff, p.n - rdoff, &text),
                         DM_EPARSE);
        /* Offsets outside the message. */
        assert_int_equal(dm_rdata_to_text(DM_RR_MX, p.b, p.n, p.n, 1, &text), DM_EINVAL);
        assert_int_equal(dm_rdata_to_text(DM_RR_MX, p.b, p.n, p.n + 1, 0, &text), DM_EINVAL);

        pk_init(&p);
        pk_u16(&p, 0);
        pk_name(&p, "");
        expect(DM_RR_MX, &p, "0 ."); /* null MX, RFC 7505 */
        rd(&p, "\0", 1);
        expect_bad(DM_RR_MX, &p);
}

static void cstr(struct pk *p, const char *s, size_t n)
{
        pk_u8(p, (uint8_t)n);
        pk_bytes(p, s, n);
}

static void test_txt(void **state)
{
        struct pk p;
        pk_init(&p);
        cstr(&p, "v=spf1 -all", 11);
        expect(DM_RR_TXT, &p, "\"v=spf1 -all\"");
        expect(DM_RR_SPF, &p, "\"v=spf1 -all\"");

        pk_init(&p);
        cstr(&p, "first", 5);
        cstr(&p, "", 0);
        cstr(&p, "Third Part", 10);
        expect(DM_RR_TXT, &p, "\"first\" \"\" \"Third Part\"");

        /* Quotes and backslashes are escaped, case is kept. */
        pk_init(&p);
        cstr(&p, "say \"hi\" \\ OK", 13);
        expect(DM_RR_TXT, &p, "\"say \\\"hi\\\" \\\\ OK\"");

        /* Control characters, DEL and high bytes as \DDD. */
        pk_init(&p);
        cstr(&p, "a\0b\n\x1b[31m\x7f\x80\xff", 12);
        expect(DM_RR_TXT, &p, "\"a\\000b\\010\\027[31m\\127\\128\\255\"");

        /* HTML stays as it is (printable); it is the presentation layer's to escape. */
        pk_init(&p);
        cstr(&p, "<script>alert('x')</script>;@$()", 32);
        expect(DM_RR_TXT, &p, "\"<script>alert('x')</script>;@$()\"");

        /* A 255-byte string of every escaped kind. */
        pk_init(&p);
        char all[255];
        for (int i = 0; i < 255; i++)
                all[i] = (char)(i + 1);
        cstr(&p, all, 255);
        char *text = NULL;
        assert_int_equal(dm_rdata_to_text(DM_RR_TXT, p.b, p.n, 0, p.n, &text), 0);
        assert_non_null(strstr(text, "\\001\\002"));
        assert_non_null(strstr(text, " !\\\"#"));
        assert_non_null(strstr(text, "[\\\\]"));
        assert_non_null(strstr(text, "}~\\127\\128"));
        assert_int_equal(text[strlen(text) - 1], '"');
        free(text);

        pk_init(&p);
        expect_bad(DM_RR_TXT, &p); /* no string at all */
        rd(&p, "\5abc", 4);
        expect_bad(DM_RR_TXT, &p); /* length past the end */
}

static void test_soa(void **state)
{
        struct pk p;
        pk_init(&p);
        pk_name(&p, "NS1.example.com");
        pk_name(&p, "Hostmaster.example.com");
        pk_u32(&p, 2024010101);
        pk_u32(&p, 7200);
        pk_u32(&p, 3600);
        pk_u32(&p, 1209600);
        pk_u32(&p, 4294967295u);
        expect(DM_RR_SOA, &p,
               "ns1.example.com. hostmaster.example.com. 2024010101 7200 3600 1209600 4294967295");
        p.n -= 1;
        expect_bad(DM_RR_SOA, &p);
}

static void test_hinfo_caa(void **state)
{
        struct pk p;
        pk_init(&p);
        cstr(&p, "INTEL-386", 9);
        cstr(&p, "Linux", 5);
        expect(DM_RR_HINFO, &p, "\"INTEL-386\" \"Linux\"");
        pk_init(&p);
        cstr(&p, "x", 1);
        expect_bad(DM_RR_HINFO, &p);

        pk_init(&p);
        pk_u8(&p, 0);
        cstr(&p, "issue", 5);
        pk_bytes(&p, "letsencrypt.org", 15);
        expect(DM_RR_CAA, &p, "0 issue \"letsencrypt.org\"");
        pk_init(&p);
        pk_u8(&p, 128);
        cstr(&p, "IODEF", 5);
        pk_bytes(&p, "mailto:\"sec\"@example.com", 24);
        expect(DM_RR_CAA, &p, "128 iodef \"mailto:\\\"sec\\\"@example.com\"");
        pk_init(&p);
        pk_u8(&p, 0);
        cstr(&p, "issuewild", 9);
        expect(DM_RR_CAA, &p, "0 issuewild \"\"");
        pk_init(&p);
        pk_u8(&p, 0);
        cstr(&p, "", 0);
        expect_bad(DM_RR_CAA, &p);
        pk_init(&p);
        pk_u8(&p, 0);
        cstr(&p, "is sue", 6);
        expect_bad(DM_RR_CAA, &p);
}

static void test_srv_naptr(void **state)
{
        struct pk p;
        pk_init(&p);
        pk_u16(&p, 10);
        pk_u16(&p, 60);
        pk_u16(&p, 5060);
        pk_name(&p, "SIP.example.com");
        expect(DM_RR_SRV, &p, "10 60 5060 sip.example.com.");

        pk_init(&p);
        pk_u16(&p, 100);
        pk_u16(&p, 10);
        cstr(&p, "U", 1);
        cstr(&p, "E2U+sip", 7);
        cstr(&p, "!^.*$!sip:info@example.com!", 27);
        pk_name(&p, "");
        expect(DM_RR_NAPTR, &p, "100 10 \"U\" \"E2U+sip\" \"!^.*$!sip:info@example.com!\" .");
        p.n -= 1;
        expect_bad(DM_RR_NAPTR, &p);
}

static void test_dnssec_and_keys(void **state)
{
        struct pk p;
        pk_init(&p);
        pk_u16(&p, 12345);
        pk_u8(&p, 8);
        pk_u8(&p, 2);
        pk_bytes(&p, "\x01\x23\x45\x67\x89\xab\xcd\xef", 8);
        expect(DM_RR_DS, &p, "12345 8 2 0123456789abcdef");
        expect(DM_RR_CDS, &p, "12345 8 2 0123456789abcdef");
        pk_init(&p);
        pk_u16(&p, 1);
        pk_u8(&p, 8);
        pk_u8(&p, 2);
        expect_bad(DM_RR_DS, &p); /* no digest */

        /* Base64 of 1, 2, 3 and 4 bytes: padding. */
        static const struct {
                const char *key;
                size_t n;
                const char *b64;
        } keys[] = {
            {"\xff", 1, "/w=="},
            {"\xff\xee", 2, "/+4="},
            {"\x03\x01\x00", 3, "AwEA"},
            {"\x03\x01\x00\x01", 4, "AwEAAQ=="},
        };
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
                pk_init(&p);
                pk_u16(&p, 257);
                pk_u8(&p, 3);
                pk_u8(&p, 13);
                pk_bytes(&p, keys[i].key, keys[i].n);
                char want[64];
                snprintf(want, sizeof(want), "257 3 13 %s", keys[i].b64);
                expect(DM_RR_DNSKEY, &p, want);
                expect(DM_RR_CDNSKEY, &p, want);
        }

        pk_init(&p);
        pk_u8(&p, 3);
        pk_u8(&p, 1);
        pk_u8(&p, 1);
        pk_bytes(&p, "\xde\xad\xbe\xef", 4);
        expect(DM_RR_TLSA, &p, "3 1 1 deadbeef");
        expect(DM_RR_SMIMEA, &p, "3 1 1 deadbeef");
        pk_init(&p);
        pk_u8(&p, 3);
        pk_u8(&p, 1);
        expect_bad(DM_RR_TLSA, &p);

        pk_init(&p);
        pk_u8(&p, 4);
        pk_u8(&p, 2);
        pk_bytes(&p, "\x00\xff\x10", 3);
        expect(DM_RR_SSHFP, &p, "4 2 00ff10");
        pk_init(&p);
        pk_u8(&p, 4);
        pk_u8(&p, 2);
        expect_bad(DM_RR_SSHFP, &p);
}

static void svc(struct pk *p, uint16_t key, const void *v, size_t n)
{
        pk_u16(p, key);
        pk_u16(p, (uint16_t)n);
        pk_bytes(p, v, n);
}

static void test_svcb(void **state)
{
        struct pk p;

        /* AliasMode. */
        pk_init(&p);
        pk_u16(&p, 0);
        pk_name(&p, "Pool.svc.example");
        expect(DM_RR_HTTPS, &p, "0 pool.svc.example.");

        /* ServiceMode with every known key. */
        pk_init(&p);
        pk_u16(&p, 1);
        pk_name(&p, "");
        svc(&p, 0, "\x00\x01\x00\x04", 4);
        svc(&p, 1, "\x02h2\x02h3", 6);
        svc(&p, 2, "", 0);
        svc(&p, 3, "\x01\xbb", 2);
        svc(&p, 4, "\xc0\x00\x02\x01\xc0\x00\x02\x02", 8);
        svc(&p, 5, "\x00\x01\x02", 3);
        svc(&p, 6, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
        svc(&p, 7, "/dns-query{?dns}", 16);
        svc(&p, 65000, "x\x01\"", 3);
        svc(&p, 65001, "", 0);
        expect(DM_RR_HTTPS, &p,
               "1 . mandatory=alpn,ipv4hint alpn=\"h2,h3\" no-default-alpn port=443 "
               "ipv4hint=192.0.2.1,192.0.2.2 ech=AAEC ipv6hint=2001:db8::1 "
               "dohpath=\"/dns-query{?dns}\" key65000=\"x\\001\\\"\" key65001");
        expect(DM_RR_SVCB, &p,
               "1 . mandatory=alpn,ipv4hint alpn=\"h2,h3\" no-default-alpn port=443 "
               "ipv4hint=192.0.2.1,192.0.2.2 ech=AAEC ipv6hint=2001:db8::1 "
               "dohpath=\"/dns-query{?dns}\" key65000=\"x\\001\\\"\" key65001");

        /* An ALPN id with a comma and a backslash (RFC 9460 appendix A.1). */
        pk_init(&p);
        pk_u16(&p, 2);
        pk_name(&p, "svc.example");
        svc(&p, 1,
            "\x03"
            "a,b\x02"
            "c\\",
            7);
        expect(DM_RR_SVCB, &p, "2 svc.example. alpn=\"a\\\\,b,c\\\\\\\\\"");

        /* Keys out of order, repeated, the reserved key, and bad lengths. */
        pk_init(&p);
        pk_u16(&p, 1);
        pk_name(&p, "");
        svc(&p, 3, "\x01\xbb", 2);
        svc(&p, 1, "\x02h2", 3);
        expect_bad(DM_RR_HTTPS, &p);
        pk_init(&p);
        pk_u16(&p, 1);
        pk_name(&p, "");
        svc(&p, 3, "\x01\xbb", 2);
        svc(&p, 3, "\x01\xbb", 2);
        expect_bad(DM_RR_HTTPS, &p);
        pk_init(&p);
        pk_u16(&p, 1);
        pk_name(&p, "");
        svc(&p, 65535, "", 0);
        expect_bad(DM_RR_HTTPS, &p);
        static const struct {
                uint16_t key;
                const char *v;
                size_t n;
        } bad[] = {
            {0, "\x00", 1},   {0, "", 0},  {1, "", 0},         {1, "\x00", 1},
            {1, "\x05h2", 3}, {2, "x", 1}, {3, "\x01", 1},     {4, "\1\2\3", 3},
            {4, "", 0},       {5, "", 0},  {6, "\1\2\3\4", 4},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                pk_init(&p);
                pk_u16(&p, 1);
                pk_name(&p, "");
                svc(&p, bad[i].key, bad[i].v, bad[i].n);
                expect_bad(DM_RR_SVCB, &p);
        }
        /* A parameter whose length runs past the end. */
        pk_init(&p);
        pk_u16(&p, 1);
        pk_name(&p, "");
        pk_u16(&p, 3);
        pk_u16(&p, 9);
        pk_u16(&p, 443);
        expect_bad(DM_RR_SVCB, &p);
}

static void test_generic(void **state)
{
        struct pk p;
        rd(&p, "\x01\x02\xab", 3);
        expect(65280, &p, "\\# 3 0102ab");
        pk_init(&p);
        expect(65280, &p, "\\# 0");
        /* LOC has no printer of its own. */
        rd(&p, "\x00\x12\x16\x13\x89\x17\x2d\xd0\x70\xbe\x15\xf0\x00\x98\x8d\x20", 16);
        expect(DM_RR_LOC, &p, "\\# 16 0012161389172dd070be15f000988d20");
}

static void test_buffer_restored(void **state)
{
        struct dm_buf b;
        struct pk p;
        dm_buf_init(&b, 1024);
        assert_int_equal(dm_buf_addstr(&b, "keep"), 0);
        pk_init(&p);
        cstr(&p, "abc", 3);
        pk_u8(&p, 9); /* a second string that is cut off */
        assert_int_equal(dm_rdata_format(DM_RR_TXT, p.b, p.n, 0, p.n, &b), DM_EPARSE);
        assert_string_equal(b.data, "keep");
        assert_int_equal(b.len, 4);
        /* Too small a buffer is the buffer's error, not a parse error. */
        struct dm_buf small;
        dm_buf_init(&small, 4);
        pk_init(&p);
        cstr(&p, "abcdef", 6);
        assert_int_equal(dm_rdata_format(DM_RR_TXT, p.b, p.n, 0, p.n, &small), DM_E2BIG);
        dm_buf_done(&small);
        dm_buf_done(&b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_addresses),
            cmocka_unit_test(test_names),
            cmocka_unit_test(test_mx_compressed),
            cmocka_unit_test(test_txt),
            cmocka_unit_test(test_soa),
            cmocka_unit_test(test_hinfo_caa),
            cmocka_unit_test(test_srv_naptr),
            cmocka_unit_test(test_dnssec_and_keys),
            cmocka_unit_test(test_svcb),
            cmocka_unit_test(test_generic),
            cmocka_unit_test(test_buffer_restored),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
