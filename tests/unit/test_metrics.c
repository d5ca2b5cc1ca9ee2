/* lib/metrics: registration rules, series, updates from many threads, the text format. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "dm/error.h"
#include "dm/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *write_all(struct dm_metrics *m)
{
        struct dm_buf b;
        dm_buf_init(&b, 1 << 20);
        assert_int_equal(dm_metrics_write(m, &b), 0);
        char *s = dm_buf_detach(&b);
        assert_non_null(s);
        return s;
}

static void test_register_rules(void **state)
{
        (void)state;
        struct dm_metrics *m;
        struct dm_metric *f;
        const double b[] = {1, 2};
        const double bad[] = {2, 1};
        assert_int_equal(dm_metrics_new(&m), 0);
        assert_int_equal(dm_metrics_counter(m, "a_total", "A.", NULL, &f), 0);
        assert_int_equal(dm_metrics_counter(m, "a_total", "again", NULL, &f), DM_EINVAL);
        assert_int_equal(dm_metrics_counter(m, "1bad", "x", NULL, &f), DM_EINVAL);
        assert_int_equal(dm_metrics_counter(m, "bad-name", "x", NULL, &f), DM_EINVAL);
        assert_int_equal(dm_metrics_gauge(m, "g", "x", (const char *[]){"a:b", NULL}, &f),
                         DM_EINVAL);
        assert_int_equal(dm_metrics_gauge(m, "g", "x", (const char *[]){"__x", NULL}, &f),
                         DM_EINVAL);
        assert_int_equal(dm_metrics_gauge(m, "g", "x", (const char *[]){"a", "a", NULL}, &f),
                         DM_EINVAL);
        assert_int_equal(
            dm_metrics_gauge(m, "g", "x", (const char *[]){"a", "b", "c", "d", "e", NULL}, &f),
            DM_EINVAL);
        assert_int_equal(dm_metrics_histogram(m, "h", "x", (const char *[]){"le", NULL}, b, 2, &f),
                         DM_EINVAL);
        assert_int_equal(dm_metrics_histogram(m, "h", "x", NULL, bad, 2, &f), DM_EINVAL);
        assert_int_equal(dm_metrics_histogram(m, "h", "x", NULL, b, 0, &f), DM_EINVAL);
        assert_int_equal(dm_metrics_histogram(m, "h", "x", NULL, b, 2, &f), 0);
        assert_int_equal(dm_metrics_gauge_fn(m, "fn", "x", NULL, NULL), DM_EINVAL);
        dm_metrics_free(m);
        dm_metrics_free(NULL);
}

static void test_series_and_values(void **state)
{
        (void)state;
        struct dm_metrics *m;
        struct dm_metric *c, *g;
        assert_int_equal(dm_metrics_new(&m), 0);
        assert_int_equal(dm_metrics_counter(m, "scans_total", "Scans.",
                                            (const char *[]){"check", "result", NULL}, &c),
                         0);
        assert_int_equal(dm_metrics_gauge(m, "depth", "Depth.", NULL, &g), 0);
        struct dm_metric_series *ok = dm_metric_series(c, (const char *[]){"dns", "ok"});
        struct dm_metric_series *ok2 = dm_metric_series(c, (const char *[]){"dns", "ok"});
        struct dm_metric_series *err = dm_metric_series(c, (const char *[]){"dns", "error"});
        assert_non_null(ok);
        assert_ptr_equal(ok, ok2);
        assert_ptr_not_equal(ok, err);
        dm_metric_inc(ok, 3);
        dm_metric_inc(err, 1);
        dm_metric_inc(NULL, 1); /* a series that could not be made costs nothing */
        assert_true(dm_metric_value(ok) == 3);
        struct dm_metric_series *d = dm_metric_series(g, NULL);
        dm_metric_set(d, 7);
        dm_metric_add(d, -2.5);
        assert_true(dm_metric_value(d) == 4.5);
        assert_null(dm_metric_series(NULL, NULL));

        char *text = write_all(m);
        assert_string_equal(text, "# HELP scans_total Scans.\n"
                                  "# TYPE scans_total counter\n"
                                  "scans_total{check=\"dns\",result=\"ok\"} 3\n"
                                  "scans_total{check=\"dns\",result=\"error\"} 1\n"
                                  "# HELP depth Depth.\n"
                                  "# TYPE depth gauge\n"
                                  "depth 4.5\n");
        free(text);
        dm_metrics_free(m);
}

static void test_histogram_text(void **state)
{
        (void)state;
        struct dm_metrics *m;
        struct dm_metric *h;
        const double bounds[] = {0.005, 0.1, 1};
        assert_int_equal(dm_metrics_new(&m), 0);
        assert_int_equal(dm_metrics_histogram(m, "dur_seconds", "Time.",
                                              (const char *[]){"route", NULL}, bounds, 3, &h),
                         0);
        struct dm_metric_series *s = dm_metric_series(h, (const char *[]){"/a"});
        dm_metric_observe(s, 0.001);
        dm_metric_observe(s, 0.005); /* on the bound: le is "less or equal" */
        dm_metric_observe(s, 0.5);
        dm_metric_observe(s, 30);
        dm_metric_observe(s, NAN); /* ignored */
        assert_true(dm_metric_value(s) == 4);
        char *text = write_all(m);
        assert_string_equal(text, "# HELP dur_seconds Time.\n"
                                  "# TYPE dur_seconds histogram\n"
                                  "dur_seconds_bucket{route=\"/a\",le=\"0.005\"} 2\n"
                                  "dur_seconds_bucket{route=\"/a\",le=\"0.1\"} 2\n"
                                  "dur_seconds_bucket{route=\"/a\",le=\"1\"} 3\n"
                                  "dur_seconds_bucket{route=\"/a\",le=\"+Inf\"} 4\n"
                                  "dur_seconds_sum{route=\"/a\"} 30.506\n"
                                  "dur_seconds_count{route=\"/a\"} 4\n");
        free(text);
        dm_metrics_free(m);
}

static void test_escaping(void **state)
{
        (void)state;
        struct dm_metrics *m;
        struct dm_metric *c;
        assert_int_equal(dm_metrics_new(&m), 0);
        assert_int_equal(dm_metrics_counter(m, "x_total", "Back\\slash and\nnewline \"q\".",
                                            (const char *[]){"v", NULL}, &c),
                         0);
        dm_metric_inc(dm_metric_series(c, (const char *[]){"a\"b\\c\nd"}), 1);
        dm_metric_inc(dm_metric_series(c, (const char *[]){NULL}), 2);
        char *text = write_all(m);
        assert_string_equal(text, "# HELP x_total Back\\\\slash and\\nnewline \"q\".\n"
                                  "# TYPE x_total counter\n"
                                  "x_total{v=\"a\\\"b\\\\c\\nd\"} 1\n"
                                  "x_total{v=\"\"} 2\n");
        free(text);
        dm_metrics_free(m);
}

static double fn_value;
static double gauge_fn(void *arg)
{
        (void)arg;
        return fn_value;
}

static void test_gauge_fn(void **state)
{
        (void)state;
        struct dm_metrics *m;
        assert_int_equal(dm_metrics_new(&m), 0);
        assert_int_equal(dm_metrics_gauge_fn(m, "up", "Up.", gauge_fn, NULL), 0);
        fn_value = 1;
        char *text = write_all(m);
        assert_string_equal(text, "# HELP up Up.\n# TYPE up gauge\nup 1\n");
        free(text);
        fn_value = NAN; /* left out, the family still announced */
        text = write_all(m);
        assert_string_equal(text, "# HELP up Up.\n# TYPE up gauge\n");
        free(text);
        dm_metrics_free(m);
}

static void test_format_value(void **state)
{
        (void)state;
        char b[32];
        assert_string_equal(dm_metric_format_value(0, b, sizeof(b)), "0");
        assert_string_equal(dm_metric_format_value(-3, b, sizeof(b)), "-3");
        assert_string_equal(dm_metric_format_value(0.1, b, sizeof(b)), "0.1");
        assert_string_equal(dm_metric_format_value(0.0025, b, sizeof(b)), "0.0025");
        assert_string_equal(dm_metric_format_value(INFINITY, b, sizeof(b)), "+Inf");
        assert_string_equal(dm_metric_format_value(-INFINITY, b, sizeof(b)), "-Inf");
        assert_string_equal(dm_metric_format_value(NAN, b, sizeof(b)), "NaN");
        assert_true(strtod(dm_metric_format_value(1.0 / 3, b, sizeof(b)), NULL) == 1.0 / 3);
}

static void test_series_cap(void **state)
{
        (void)state;
        struct dm_metrics *m;
        struct dm_metric *c;
        char v[16];
        assert_int_equal(dm_metrics_new(&m), 0);
        assert_int_equal(dm_metrics_counter(m, "c_total", "C.", (const char *[]){"k", NULL}, &c),
                         0);
        for (int i = 0; i < DM_METRIC_SERIES_MAX; i++) {
                snprintf(v, sizeof(v), "%d", i);
                assert_non_null(dm_metric_series(c, (const char *[]){v}));
        }
        assert_null(dm_metric_series(c, (const char *[]){"one more"}));
        assert_non_null(dm_metric_series(c, (const char *[]){"0"})); /* known ones still found */
        dm_metrics_free(m);
}

#define THREADS 4
#define ROUNDS 20000

static void *hammer(void *arg)
{
        struct dm_metric **fam = arg;
        struct dm_metric_series *c = dm_metric_series(fam[0], (const char *[]){"x"});
        struct dm_metric_series *h = dm_metric_series(fam[1], NULL);
        for (int i = 0; i < ROUNDS; i++) {
                dm_metric_inc(c, 1);
                dm_metric_observe(h, 0.5);
        }
        return NULL;
}

static void test_threads(void **state)
{
        (void)state;
        struct dm_metrics *m;
        struct dm_metric *fam[2];
        const double b[] = {1};
        pthread_t t[THREADS];
        assert_int_equal(dm_metrics_new(&m), 0);
        assert_int_equal(
            dm_metrics_counter(m, "n_total", "N.", (const char *[]){"k", NULL}, &fam[0]), 0);
        assert_int_equal(dm_metrics_histogram(m, "h_seconds", "H.", NULL, b, 1, &fam[1]), 0);
        for (int i = 0; i < THREADS; i++)
                assert_int_equal(pthread_create(&t[i], NULL, hammer, fam), 0);
        for (int i = 0; i < THREADS; i++)
                pthread_join(t[i], NULL);
        assert_true(dm_metric_value(dm_metric_series(fam[0], (const char *[]){"x"})) ==
                    THREADS * ROUNDS);
        char *text = write_all(m);
        char want[128];
        snprintf(want, sizeof(want), "h_seconds_sum %d\nh_seconds_count %d\n", THREADS * ROUNDS / 2,
                 THREADS * ROUNDS);
        assert_non_null(strstr(text, want));
        free(text);
        dm_metrics_free(m);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_register_rules), cmocka_unit_test(test_series_and_values),
            cmocka_unit_test(test_histogram_text), cmocka_unit_test(test_escaping),
            cmocka_unit_test(test_gauge_fn),       cmocka_unit_test(test_format_value),
            cmocka_unit_test(test_series_cap),     cmocka_unit_test(test_threads),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
