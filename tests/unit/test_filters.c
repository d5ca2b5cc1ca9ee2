/* The operator API's parsers: status lists, strict booleans, durations in bodies. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "dm/error.h"
#include "dm/http.h"
#include "dm/json.h"
#include "dm/store.h"

#include <string.h>

static void test_status_mask(void **state)
{
        (void)state;
        unsigned m = 99;
        assert_int_equal(dm_check_status_mask_parse("error", &m), 0);
        assert_int_equal(m, 1u << DM_CHECK_ERROR);
        assert_int_equal(dm_check_status_mask_parse("ok,pending", &m), 0);
        assert_int_equal(m, (1u << DM_CHECK_OK) | (1u << DM_CHECK_PENDING));
        assert_int_equal(dm_check_status_mask_parse("ok,ok", &m), 0);
        assert_int_equal(m, 1u << DM_CHECK_OK);
        m = 7;
        assert_int_equal(dm_check_status_mask_parse("", &m), DM_EINVAL);
        assert_int_equal(dm_check_status_mask_parse("ok,", &m), DM_EINVAL);
        assert_int_equal(dm_check_status_mask_parse(",ok", &m), DM_EINVAL);
        assert_int_equal(dm_check_status_mask_parse("OK", &m), DM_EINVAL);
        assert_int_equal(dm_check_status_mask_parse("errors", &m), DM_EINVAL);
        assert_int_equal(dm_check_status_mask_parse("err", &m), DM_EINVAL);
        assert_int_equal(dm_check_status_mask_parse(NULL, &m), DM_EINVAL);
        assert_int_equal(m, 7); /* untouched on error */
}

static void test_bool(void **state)
{
        (void)state;
        bool b = false;
        assert_int_equal(dm_http_bool_parse("true", &b), 0);
        assert_true(b);
        assert_int_equal(dm_http_bool_parse("false", &b), 0);
        assert_false(b);
        assert_int_equal(dm_http_bool_parse("1", &b), DM_EINVAL);
        assert_int_equal(dm_http_bool_parse("TRUE", &b), DM_EINVAL);
        assert_int_equal(dm_http_bool_parse("", &b), DM_EINVAL);
        assert_int_equal(dm_http_bool_parse(NULL, &b), DM_EINVAL);
}

static void duration_ok(const char *json, int64_t want)
{
        json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
        int64_t s = -1;
        char why[160];
        assert_non_null(v);
        assert_int_equal(dm_json_duration_s(v, &s, why, sizeof(why)), 0);
        assert_int_equal(s, want);
        json_decref(v);
}

static void duration_bad(const char *json, const char *why_part)
{
        json_t *v = json_loads(json, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        int64_t s = -1;
        char why[160] = "";
        assert_non_null(v);
        assert_int_equal(dm_json_duration_s(v, &s, why, sizeof(why)), DM_EINVAL);
        assert_non_null(strstr(why, why_part));
        assert_int_equal(s, -1);
        json_decref(v);
}

static void test_duration(void **state)
{
        (void)state;
        duration_ok("300", 300);
        duration_ok("\"5m\"", 300);
        duration_ok("\"1h\"", 3600);
        duration_ok("\"90s\"", 90);
        duration_ok("\"90\"", 90);
        duration_ok("\"1d\"", 86400);
        duration_ok("\"2000ms\"", 2);
        duration_bad("\"1500ms\"", "whole number of seconds");
        duration_bad("\"5 minutes\"", "is not a duration");
        duration_bad("\"\"", "is not a duration");
        duration_bad("\"5m\\u0000\"", "is not a duration");

        /* The field table accepts an integer or a string, nothing else. */
        struct dm_json_field fields[] = {{"interval", DM_JSON_DURATION, DM_JSON_NULLABLE}, {0}};
        struct dm_json_error err;
        json_t *obj = json_pack("{s:s}", "interval", "5m");
        assert_int_equal(dm_json_check_fields(obj, fields, &err), 0);
        json_decref(obj);
        obj = json_pack("{s:b}", "interval", 1);
        assert_int_equal(dm_json_check_fields(obj, fields, &err), DM_EINVAL);
        assert_string_equal(err.field, "interval");
        assert_non_null(strstr(err.detail, "duration"));
        json_decref(obj);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_status_mask),
            cmocka_unit_test(test_bool),
            cmocka_unit_test(test_duration),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
