/* lib/dns/rrtype.c: record type names, numbers and lists. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "dm/error.h"
#include "dm/rrtype.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static void test_from_name(void **state)
{
        static const struct {
                const char *name;
                uint16_t type;
        } ok[] = {
            {"A", DM_RR_A},
            {"a", DM_RR_A},
            {"AAAA", DM_RR_AAAA},
            {"mx", DM_RR_MX},
            {"Txt", DM_RR_TXT},
            {"NS", DM_RR_NS},
            {"CNAME", DM_RR_CNAME},
            {"SOA", DM_RR_SOA},
            {"CAA", DM_RR_CAA},
            {"PTR", DM_RR_PTR},
            {"HINFO", DM_RR_HINFO},
            {"LOC", DM_RR_LOC},
            {"SRV", DM_RR_SRV},
            {"NAPTR", DM_RR_NAPTR},
            {"DNAME", DM_RR_DNAME},
            {"DS", DM_RR_DS},
            {"SSHFP", DM_RR_SSHFP},
            {"RRSIG", DM_RR_RRSIG},
            {"NSEC", DM_RR_NSEC},
            {"DNSKEY", DM_RR_DNSKEY},
            {"NSEC3PARAM", DM_RR_NSEC3PARAM},
            {"TLSA", DM_RR_TLSA},
            {"SMIMEA", DM_RR_SMIMEA},
            {"CDS", DM_RR_CDS},
            {"CDNSKEY", DM_RR_CDNSKEY},
            {"OPENPGPKEY", DM_RR_OPENPGPKEY},
            {"SVCB", DM_RR_SVCB},
            {"https", DM_RR_HTTPS},
            {"SPF", DM_RR_SPF},
            {"NSEC3", 50},
            {"URI", 256},
            {"nsap-ptr", 23},
            {"TYPE65", DM_RR_HTTPS},
            {"type1", DM_RR_A},
            {"TYPE1234", 1234},
            {"TYPE65534", 65534},
            {"TYPE260", 260},
        };
        (void)state;
        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                uint16_t t = 0;
                if (dm_rrtype_from_name(ok[i].name, &t) != 0)
                        fail_msg("\"%s\" rejected", ok[i].name);
                if (t != ok[i].type)
                        fail_msg("\"%s\" -> %u, want %u", ok[i].name, t, ok[i].type);
        }
}

static void test_from_name_rejects(void **state)
{
        static const char *const bad[] = {
            "",        "B",       "AAAAA",   "OPT",       "ANY",        "any",   "AXFR",
            "IXFR",    "MAILA",   "MAILB",   "TKEY",      "TSIG",       "TYPE0", "TYPE41",
            "TYPE255", "TYPE252", "TYPE128", "TYPE65535", "TYPE65536",  "TYPE",  "TYPE-1",
            "TYPE1x",  "TYPE 1",  " A",      "A ",        "TYPE999999", "*",     "A,MX",
        };
        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                uint16_t t = 77;
                if (dm_rrtype_from_name(bad[i], &t) != DM_EINVAL)
                        fail_msg("\"%s\" accepted", bad[i]);
                assert_int_equal(t, 77);
        }
        uint16_t t;
        assert_int_equal(dm_rrtype_from_name(NULL, &t), DM_EINVAL);
}

static void test_name(void **state)
{
        char buf[16];
        (void)state;
        assert_string_equal(dm_rrtype_name(DM_RR_A, buf), "A");
        assert_string_equal(dm_rrtype_name(DM_RR_CAA, buf), "CAA");
        assert_string_equal(dm_rrtype_name(DM_RR_HTTPS, buf), "HTTPS");
        assert_string_equal(dm_rrtype_name(DM_RR_OPT, buf), "OPT");
        assert_string_equal(dm_rrtype_name(255, buf), "ANY");
        assert_string_equal(dm_rrtype_name(1234, buf), "TYPE1234");
        assert_string_equal(dm_rrtype_name(0, buf), "TYPE0");
        assert_string_equal(dm_rrtype_name(65535, buf), "TYPE65535");
        assert_string_equal(dm_rrtype_name(32769, buf), "DLV");
}

static void test_name_roundtrip(void **state)
{
        char buf[16];
        (void)state;
        for (unsigned t = 1; t <= 65535; t++) {
                uint16_t back = 0;
                const char *name = dm_rrtype_name((uint16_t)t, buf);
                int r = dm_rrtype_from_name(name, &back);
                bool meta = t == 41 || (t >= 128 && t <= 255) || t == 65535;
                if (meta) {
                        assert_int_equal(r, DM_EINVAL);
                        continue;
                }
                if (r != 0 || back != t)
                        fail_msg("type %u -> \"%s\" does not parse back", t, name);
        }
}

static void test_defaults(void **state)
{
        static const uint16_t want[] = {DM_RR_A,  DM_RR_AAAA,  DM_RR_MX,  DM_RR_TXT,
                                        DM_RR_NS, DM_RR_CNAME, DM_RR_SOA, DM_RR_CAA};
        (void)state;
        assert_int_equal(dm_rrtype_ndefaults, 8);
        assert_memory_equal(dm_rrtype_defaults, want, sizeof(want));
}

static void test_parse_list(void **state)
{
        uint16_t types[DM_RRTYPE_MAX_PER_DOMAIN];
        size_t n = 0;
        char err[128];
        (void)state;

        assert_int_equal(dm_rrtype_parse_list("A,MX,TXT", err, sizeof(err), types, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(types[0], DM_RR_A);
        assert_int_equal(types[1], DM_RR_MX);
        assert_int_equal(types[2], DM_RR_TXT);

        assert_int_equal(
            dm_rrtype_parse_list(" aaaa , a,AAAA, mx ,A ", err, sizeof(err), types, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(types[0], DM_RR_AAAA);
        assert_int_equal(types[1], DM_RR_A);
        assert_int_equal(types[2], DM_RR_MX);

        assert_int_equal(dm_rrtype_parse_list("TYPE65", err, sizeof(err), types, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(types[0], DM_RR_HTTPS);
}

static void test_parse_list_errors(void **state)
{
        uint16_t types[DM_RRTYPE_MAX_PER_DOMAIN];
        size_t n = 99;
        char err[128];
        (void)state;

        assert_int_equal(dm_rrtype_parse_list("A,BOGUS,MX", err, sizeof(err), types, &n),
                         DM_EINVAL);
        assert_non_null(strstr(err, "BOGUS"));
        assert_int_equal(n, 99);
        assert_int_equal(dm_rrtype_parse_list("A,ANY", err, sizeof(err), types, &n), DM_EINVAL);
        assert_non_null(strstr(err, "ANY"));
        assert_int_equal(dm_rrtype_parse_list("A,,MX", err, sizeof(err), types, &n), DM_EINVAL);
        assert_int_equal(dm_rrtype_parse_list("A,", err, sizeof(err), types, &n), DM_EINVAL);
        assert_int_equal(dm_rrtype_parse_list("", err, sizeof(err), types, &n), DM_EINVAL);
        assert_int_equal(dm_rrtype_parse_list("  ", err, sizeof(err), types, &n), DM_EINVAL);
        assert_int_equal(dm_rrtype_parse_list(NULL, err, sizeof(err), types, &n), DM_EINVAL);
        assert_int_equal(dm_rrtype_parse_list("A B", err, sizeof(err), types, &n), DM_EINVAL);
        assert_int_equal(
            dm_rrtype_parse_list("AVERYLONGNAMETHATISNOTATYPEATALL", err, sizeof(err), types, &n),
            DM_EINVAL);
        assert_int_equal(dm_rrtype_parse_list("A,BOGUS", NULL, 0, types, &n), DM_EINVAL);
        assert_int_equal(n, 99);
}

static void test_parse_list_max(void **state)
{
        uint16_t types[DM_RRTYPE_MAX_PER_DOMAIN];
        size_t n = 0;
        char err[128];
        char list[1024];
        size_t o = 0;
        (void)state;

        /* Exactly the maximum of distinct types, with duplicates that do not count. */
        for (int i = 0; i < DM_RRTYPE_MAX_PER_DOMAIN; i++)
                o += (size_t)snprintf(list + o, sizeof(list) - o, "%sTYPE%d,TYPE%d", i ? "," : "",
                                      1000 + i, 1000 + i);
        assert_int_equal(dm_rrtype_parse_list(list, err, sizeof(err), types, &n), 0);
        assert_int_equal(n, DM_RRTYPE_MAX_PER_DOMAIN);
        assert_int_equal(types[DM_RRTYPE_MAX_PER_DOMAIN - 1], 1000 + DM_RRTYPE_MAX_PER_DOMAIN - 1);

        snprintf(list + o, sizeof(list) - o, ",A");
        n = 5;
        assert_int_equal(dm_rrtype_parse_list(list, err, sizeof(err), types, &n), DM_E2BIG);
        assert_int_equal(n, 5);
}

static void test_format_list(void **state)
{
        static const uint16_t types[] = {DM_RR_A, DM_RR_MX, 1234, DM_RR_CAA};
        char buf[64];
        (void)state;
        assert_int_equal(dm_rrtype_format_list(types, 4, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "A,MX,TYPE1234,CAA");
        assert_int_equal(dm_rrtype_format_list(types, 0, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "");
        assert_int_equal(dm_rrtype_format_list(types, 2, buf, 5), 0);
        assert_string_equal(buf, "A,MX");
        assert_int_equal(dm_rrtype_format_list(types, 2, buf, 4), DM_E2BIG);
        assert_int_equal(dm_rrtype_format_list(types, 1, buf, 0), DM_E2BIG);

        uint16_t back[DM_RRTYPE_MAX_PER_DOMAIN];
        size_t n = 0;
        char err[64];
        assert_int_equal(
            dm_rrtype_format_list(dm_rrtype_defaults, dm_rrtype_ndefaults, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "A,AAAA,MX,TXT,NS,CNAME,SOA,CAA");
        assert_int_equal(dm_rrtype_parse_list(buf, err, sizeof(err), back, &n), 0);
        assert_int_equal(n, dm_rrtype_ndefaults);
        assert_memory_equal(back, dm_rrtype_defaults, n * sizeof(back[0]));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_from_name),
            cmocka_unit_test(test_from_name_rejects),
            cmocka_unit_test(test_name),
            cmocka_unit_test(test_name_roundtrip),
            cmocka_unit_test(test_defaults),
            cmocka_unit_test(test_parse_list),
            cmocka_unit_test(test_parse_list_errors),
            cmocka_unit_test(test_parse_list_max),
            cmocka_unit_test(test_format_list),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
