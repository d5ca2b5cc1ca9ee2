/* lib/domain/input.c: a domain's name and settings from an API body. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "dm/check.h"
#include "dm/domain_input.h"
#include "dm/rrtype.h"

#define MIN_MS 60000

static json_t *body(const char *text)
{
        json_error_t err;
        json_t *obj = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
        if (!obj)
                fail_msg("bad test body %s: %s", text, err.text);
        return obj;
}

/* Applies the settings of `text` to d; returns the number of refusals. */
static size_t apply(const char *text, struct dm_field_errors *fe, struct dm_domain *d)
{
        json_t *obj = body(text);
        memset(fe, 0, sizeof(*fe));
        dm_domain_input_settings(obj, MIN_MS, fe, d);
        json_decref(obj);
        return fe->n;
}

static void test_name(void **state)
{
        (void)state;
        struct dm_field_errors fe = {0};
        struct dm_domain d = {0};
        json_t *v = json_string("Bücher.Example.");
        dm_domain_input_name(v, &fe, &d);
        json_decref(v);
        assert_int_equal(fe.n, 0);
        assert_string_equal(d.name, "xn--bcher-kva.example");
        assert_string_equal(d.unicode_name, "bücher.example");

        v = json_string("no spaces.example");
        dm_domain_input_name(v, &fe, &d);
        json_decref(v);
        assert_int_equal(fe.n, 1);
        assert_string_equal(fe.e[0].field, "name");
        assert_true(fe.e[0].msg[0] != '\0');
        assert_string_equal(d.name, "xn--bcher-kva.example"); /* untouched */

        v = json_integer(7);
        dm_domain_input_name(v, &fe, &d);
        json_decref(v);
        assert_int_equal(fe.n, 2);
        assert_string_equal(fe.e[1].msg, "must be a string, not integer");
}

static void test_interval(void **state)
{
        (void)state;
        struct dm_field_errors fe;
        struct dm_domain d = {.interval_ms = 5};
        assert_int_equal(apply("{\"interval\": 300}", &fe, &d), 0);
        assert_int_equal(d.interval_ms, 300000);
        assert_int_equal(apply("{\"interval\": \"2h\"}", &fe, &d), 0);
        assert_int_equal(d.interval_ms, 7200000);
        assert_int_equal(apply("{\"interval\": null}", &fe, &d), 0);
        assert_int_equal(d.interval_ms, 0);
        assert_int_equal(apply("{\"interval\": 60}", &fe, &d), 0); /* the minimum itself */

        d.interval_ms = 42;
        assert_int_equal(apply("{\"interval\": 59}", &fe, &d), 1);
        assert_string_equal(fe.e[0].field, "interval");
        assert_string_equal(fe.e[0].msg, "must be between 60 and 2592000 seconds");
        assert_int_equal(apply("{\"interval\": \"31d\"}", &fe, &d), 1);
        assert_int_equal(apply("{\"interval\": \"soon\"}", &fe, &d), 1);
        assert_int_equal(apply("{\"interval\": -5}", &fe, &d), 1);
        assert_int_equal(d.interval_ms, 42);

        /* A minimum of part of a second is rounded up, and never below one second. */
        json_t *obj = body("{\"interval\": 1}");
        memset(&fe, 0, sizeof(fe));
        dm_domain_input_settings(obj, 0, &fe, &d);
        assert_int_equal(fe.n, 0);
        assert_int_equal(d.interval_ms, 1000);
        dm_domain_input_settings(obj, 1500, &fe, &d);
        assert_int_equal(fe.n, 1);
        assert_string_equal(fe.e[0].msg, "must be between 2 and 2592000 seconds");
        json_decref(obj);
}

static void test_record_types(void **state)
{
        (void)state;
        struct dm_field_errors fe;
        struct dm_domain d = {0};
        assert_int_equal(apply("{\"record_types\": [\"a\", \"MX\", \"A\", \"TXT\"]}", &fe, &d), 0);
        assert_int_equal(d.nrecord_types, 3); /* A named twice counts once */
        uint16_t a, mx, txt;
        assert_int_equal(dm_rrtype_from_name("A", &a), 0);
        assert_int_equal(dm_rrtype_from_name("MX", &mx), 0);
        assert_int_equal(dm_rrtype_from_name("TXT", &txt), 0);
        assert_int_equal(d.record_types[0], a);
        assert_int_equal(d.record_types[1], mx);
        assert_int_equal(d.record_types[2], txt);

        assert_int_equal(apply("{\"record_types\": []}", &fe, &d), 1);
        assert_string_equal(fe.e[0].field, "record_types");
        assert_int_equal(apply("{\"record_types\": [\"A\", \"BOGUS\"]}", &fe, &d), 1);
        assert_string_equal(fe.e[0].field, "record_types[1]");
        assert_string_equal(fe.e[0].msg, "unknown or unsupported record type \"BOGUS\"");
        assert_int_equal(apply("{\"record_types\": [\"A\", 1]}", &fe, &d), 1);
        assert_string_equal(fe.e[0].msg, "must be a string, not integer");
        assert_int_equal(apply("{\"record_types\": \"A\"}", &fe, &d), 1);
        assert_int_equal(apply("{\"record_types\": [\"A\\u0000MX\"]}", &fe, &d), 1);
        assert_int_equal(d.nrecord_types, 3); /* refusals left it as it was */

        char many[1024] = "{\"record_types\": [";
        for (int i = 0; i <= DM_RRTYPE_MAX_PER_DOMAIN; i++)
                strcat(many, i ? ", \"A\"" : "\"A\"");
        strcat(many, "]}");
        assert_int_equal(apply(many, &fe, &d), 1);
        assert_string_equal(fe.e[0].msg, "at most 32 record types");

        assert_int_equal(apply("{\"record_types\": null}", &fe, &d), 0);
        assert_int_equal(d.nrecord_types, 0);
}

static void test_checks_and_ports(void **state)
{
        (void)state;
        struct dm_field_errors fe;
        struct dm_domain d = {0};
        assert_int_equal(apply("{\"checks\": [\"dns\", \"TLS\", \"dns\"]}", &fe, &d), 0);
        assert_int_equal(d.checks, DM_CHECKS_DNS | DM_CHECKS_TLS);
        assert_int_equal(apply("{\"checks\": []}", &fe, &d), 1);
        assert_int_equal(apply("{\"checks\": [\"whois\"]}", &fe, &d), 1);
        assert_string_equal(fe.e[0].field, "checks[0]");
        assert_int_equal(d.checks, DM_CHECKS_DNS | DM_CHECKS_TLS);
        assert_int_equal(apply("{\"checks\": null}", &fe, &d), 0);
        assert_int_equal(d.checks, 0);

        assert_int_equal(apply("{\"tls_ports\": [443, 8443]}", &fe, &d), 0);
        assert_int_equal(d.ntls_ports, 2);
        assert_int_equal(d.tls_ports[1], 8443);
        assert_int_equal(apply("{\"tls_ports\": [443, 443]}", &fe, &d), 1);
        assert_string_equal(fe.e[0].field, "tls_ports[1]");
        assert_string_equal(fe.e[0].msg, "repeats port 443");
        assert_int_equal(apply("{\"tls_ports\": [0]}", &fe, &d), 1);
        assert_int_equal(apply("{\"tls_ports\": [65536]}", &fe, &d), 1);
        assert_int_equal(apply("{\"tls_ports\": [\"443\"]}", &fe, &d), 1);
        assert_int_equal(apply("{\"tls_ports\": []}", &fe, &d), 1);
        assert_int_equal(apply("{\"tls_ports\": [1,2,3,4,5,6,7,8,9]}", &fe, &d), 1);
        assert_int_equal(d.ntls_ports, 2);
        assert_int_equal(apply("{\"tls_ports\": null}", &fe, &d), 0);
        assert_int_equal(d.ntls_ports, 0);
}

static void test_every_refusal_at_once(void **state)
{
        (void)state;
        struct dm_field_errors fe;
        struct dm_domain d = {.enabled = true, .interval_ms = 600000};
        assert_int_equal(apply("{\"interval\": 1, \"record_types\": [\"NOPE\"], \"checks\": [1], "
                               "\"tls_ports\": [0], \"enabled\": \"yes\"}",
                               &fe, &d),
                         5);
        assert_string_equal(fe.e[0].field, "interval");
        assert_string_equal(fe.e[1].field, "record_types[0]");
        assert_string_equal(fe.e[2].field, "checks[0]");
        assert_string_equal(fe.e[3].field, "tls_ports[0]");
        assert_string_equal(fe.e[4].field, "enabled");
        assert_true(d.enabled);
        assert_int_equal(d.interval_ms, 600000);

        /* Absent fields leave the domain alone; enabled is set as given. */
        assert_int_equal(apply("{\"enabled\": false}", &fe, &d), 0);
        assert_false(d.enabled);
        assert_int_equal(d.interval_ms, 600000);

        /* Past what is kept, refusals are still counted. */
        memset(&fe, 0, sizeof(fe));
        for (int i = 0; i < DM_FIELD_ERRORS_MAX + 3; i++)
                dm_field_error(&fe, "f", "refusal %d", i);
        assert_int_equal(fe.n, DM_FIELD_ERRORS_MAX + 3);
        assert_string_equal(fe.e[DM_FIELD_ERRORS_MAX - 1].msg, "refusal 7");
}

static void test_fields(void **state)
{
        (void)state;
        char buf[64];
        json_t *obj = body("{\"checks\": null, \"tls_ports\": [443], \"name\": \"x.example\"}");
        unsigned f = dm_domain_input_fields(obj);
        json_decref(obj);
        assert_int_equal(f, DM_DOMAIN_CHECKS | DM_DOMAIN_TLS_PORTS);
        assert_string_equal(dm_domain_fields_names(f, buf, sizeof(buf)), "checks,tls_ports");
        assert_string_equal(dm_domain_fields_names(0, buf, sizeof(buf)), "");
        assert_string_equal(dm_domain_fields_names(DM_DOMAIN_SETTINGS, buf, sizeof(buf)),
                            "enabled,interval,record_types,checks,tls_ports");
        /* Too small a buffer keeps whole names only. */
        assert_string_equal(dm_domain_fields_names(DM_DOMAIN_SETTINGS, buf, 20),
                            "enabled,interval");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_name),
            cmocka_unit_test(test_interval),
            cmocka_unit_test(test_record_types),
            cmocka_unit_test(test_checks_and_ports),
            cmocka_unit_test(test_every_refusal_at_once),
            cmocka_unit_test(test_fields),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
