/* lib/check/check.c: check names, sets and TLS port lists. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "dm/check.h"
#include "dm/error.h"

static void test_names(void **state)
{
        (void)state;
        unsigned bit = 0;
        assert_int_equal(dm_check_from_name("dns", 3, &bit), 0);
        assert_int_equal(bit, DM_CHECKS_DNS);
        assert_int_equal(dm_check_from_name("TLS", 3, &bit), 0);
        assert_int_equal(bit, DM_CHECKS_TLS);
        assert_int_equal(dm_check_from_name("registration", 12, &bit), 0);
        assert_int_equal(bit, DM_CHECKS_REGISTRATION);
        assert_int_equal(dm_check_from_name("dnsx", 4, &bit), DM_EINVAL);
        assert_int_equal(dm_check_from_name("dn", 2, &bit), DM_EINVAL);
        assert_int_equal(dm_check_from_name("whois", 5, &bit), DM_EINVAL);
        assert_string_equal(dm_check_name(DM_CHECKS_TLS), "tls");
        assert_null(dm_check_name(DM_CHECKS_DNS | DM_CHECKS_TLS));
        assert_null(dm_check_name(0));
}

static void test_parse(void **state)
{
        (void)state;
        unsigned c = 99;
        char why[128];
        assert_int_equal(dm_checks_parse("dns,tls,registration", why, sizeof(why), &c), 0);
        assert_int_equal(c, DM_CHECKS_ALL);
        assert_int_equal(dm_checks_parse(" tls , dns ,tls", why, sizeof(why), &c), 0);
        assert_int_equal(c, DM_CHECKS_DNS | DM_CHECKS_TLS);
        assert_int_equal(dm_checks_parse(DM_CHECKS_DEFAULT_TEXT, why, sizeof(why), &c), 0);
        assert_int_equal(c, DM_CHECKS_ALL);

        c = 99;
        assert_int_equal(dm_checks_parse("", why, sizeof(why), &c), DM_EINVAL);
        assert_int_equal(c, 99); /* nothing written on failure */
        assert_int_equal(dm_checks_parse("dns,", why, sizeof(why), &c), DM_EINVAL);
        assert_non_null(strstr(why, "empty"));
        assert_int_equal(dm_checks_parse("dns,smtp", why, sizeof(why), &c), DM_EINVAL);
        assert_non_null(strstr(why, "smtp"));
        assert_int_equal(c, 99);
}

static void test_format(void **state)
{
        (void)state;
        char buf[DM_CHECKS_TEXT_MAX];
        assert_int_equal(dm_checks_format(DM_CHECKS_ALL, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "dns,tls,registration");
        assert_int_equal(dm_checks_format(DM_CHECKS_REGISTRATION | DM_CHECKS_DNS, buf, sizeof(buf)),
                         0);
        assert_string_equal(buf, "dns,registration");
        assert_int_equal(dm_checks_format(0, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "");
        assert_int_equal(dm_checks_format(DM_CHECKS_ALL, buf, 5), DM_E2BIG);
        /* Round trip of every set. */
        for (unsigned s = 1; s <= DM_CHECKS_ALL; s++) {
                unsigned back = 0;
                assert_int_equal(dm_checks_format(s, buf, sizeof(buf)), 0);
                assert_int_equal(dm_checks_parse(buf, NULL, 0, &back), 0);
                assert_int_equal(back, s);
        }
}

static void test_ports(void **state)
{
        (void)state;
        uint16_t p[DM_TLS_PORTS_MAX];
        size_t n = 99;
        char buf[DM_TLS_PORTS_TEXT_MAX];
        assert_int_equal(dm_tls_ports_parse("", p, &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(dm_tls_ports_parse("443", p, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(p[0], 443);
        assert_int_equal(dm_tls_ports_parse("8443,443,1,65535", p, &n), 0);
        assert_int_equal(n, 4);
        assert_int_equal(p[0], 8443);
        assert_int_equal(p[3], 65535);
        assert_int_equal(dm_tls_ports_format(p, n, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "8443,443,1,65535");
        assert_int_equal(dm_tls_ports_parse("1,2,3,4,5,6,7,8", p, &n), 0);
        assert_int_equal(n, 8);
        assert_int_equal(dm_tls_ports_format(p, n, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "1,2,3,4,5,6,7,8");

        n = 99;
        static const char *const bad[] = {"0",      "65536", "443,443", "1,2,3,4,5,6,7,8,9",
                                          "443,",   ",443",  "44 3",    "-1",
                                          "999999", "443x",  "0443443"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (dm_tls_ports_parse(bad[i], p, &n) != DM_EINVAL)
                        fail_msg("accepted \"%s\"", bad[i]);
        }
        assert_int_equal(n, 99);
        assert_int_equal(dm_tls_ports_format(p, 2, buf, 3), DM_E2BIG);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_names),
            cmocka_unit_test(test_parse),
            cmocka_unit_test(test_format),
            cmocka_unit_test(test_ports),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
