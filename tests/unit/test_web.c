/* lib/web: embedded UI assets and their content types. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "dm/web.h"

static void test_assets(void **state)
{
        const struct dm_embed_file *f = dm_web_asset(DM_WEB_INDEX);
        assert_non_null(f);
        assert_true(f->len > 0);
        assert_non_null(strstr((const char *)f->data, "<!doctype html>"));
        /* The page loads its script from a file: no inline script for the CSP to allow. */
        assert_null(strstr((const char *)f->data, "<script>"));
        assert_non_null(dm_web_asset("app.js"));
        assert_non_null(dm_web_asset("style.css"));
        assert_null(dm_web_asset("nope.js"));
        assert_null(dm_web_asset("../index.html"));
        assert_null(dm_web_asset(".hidden"));
        assert_null(dm_web_asset(""));
        assert_null(dm_web_asset(NULL));
        assert_null(strstr(DM_WEB_CSP, "unsafe-inline"));
        assert_null(strstr(DM_WEB_CSP, "unsafe-eval"));
}

static void test_content_types(void **state)
{
        assert_string_equal(dm_web_content_type("index.html"), "text/html; charset=utf-8");
        assert_string_equal(dm_web_content_type("app.js"), "text/javascript; charset=utf-8");
        assert_string_equal(dm_web_content_type("style.CSS"), "text/css; charset=utf-8");
        assert_string_equal(dm_web_content_type("icon.svg"), "image/svg+xml");
        assert_string_equal(dm_web_content_type("x"), "application/octet-stream");
        assert_string_equal(dm_web_content_type(NULL), "application/octet-stream");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_assets),
            cmocka_unit_test(test_content_types),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
