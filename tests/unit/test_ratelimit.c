/* Rate limiting: policy text, the GCRA arithmetic on a fixed clock, the header values, and
 * the backend contract on memory and, when DM_TEST_REDIS_URL names a server, on Redis (two
 * limiters on one server share one budget; a Redis that goes away degrades to the local
 * limiter and comes back). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dm/error.h"
#include "dm/ratelimit.h"

#define S 1000000LL /* one second in microseconds */

static void test_policy_parse(void **state)
{
        struct dm_rate_policy p;
        (void)state;
        assert_int_equal(dm_rate_policy_parse("600/m", &p), 0);
        assert_int_equal(p.limit, 600);
        assert_int_equal(p.window_ms, 60000);
        assert_int_equal(dm_rate_policy_parse("10/s", &p), 0);
        assert_int_equal(p.window_ms, 1000);
        assert_int_equal(dm_rate_policy_parse("5000/h", &p), 0);
        assert_int_equal(p.window_ms, 3600000);
        assert_int_equal(dm_rate_policy_parse("1/d", &p), 0);
        assert_int_equal(dm_rate_policy_parse("50/10s", &p), 0);
        assert_int_equal(p.limit, 50);
        assert_int_equal(p.window_ms, 10000);
        static const char *const bad[] = {"",      "/m",    "0/m",      "10",    "10/",
                                          "10/x",  "-1/m",  "10/500ms", "10/2d", "99999999999/s",
                                          "1 0/m", "10/m ", NULL};
        for (size_t i = 0; bad[i]; i++) {
                if (dm_rate_policy_parse(bad[i], &p) != DM_EINVAL)
                        print_error("accepted \"%s\"\n", bad[i]);
                assert_int_equal(dm_rate_policy_parse(bad[i], &p), DM_EINVAL);
        }
}

/* A key at rest spends its whole quota at once, then one request per emission interval. */
static void test_gcra_burst_then_rate(void **state)
{
        struct dm_rate_policy p = {.limit = 10, .window_ms = 1000}; /* T = 100 ms */
        struct dm_rate_result r;
        int64_t tat = 0, now = 1000 * S;
        (void)state;

        for (int i = 0; i < 10; i++) {
                assert_true(dm_gcra_step(&p, tat, now, &tat, &r));
                assert_int_equal(r.remaining, 9 - i);
                assert_int_equal(r.limit, 10);
                assert_int_equal(r.window_s, 1);
        }
        int64_t before = tat;
        assert_false(dm_gcra_step(&p, tat, now, &tat, &r));
        assert_int_equal(tat, before); /* a refusal stores nothing */
        assert_int_equal(r.remaining, 0);
        assert_int_equal(r.retry_after_s, 1); /* 100 ms, rounded up to a whole second */

        /* 99 ms later: still refused; at 100 ms: one more. */
        assert_false(dm_gcra_step(&p, tat, now + 99000, &tat, &r));
        assert_true(dm_gcra_step(&p, tat, now + 100000, &tat, &r));
        assert_int_equal(r.remaining, 0);
        assert_false(dm_gcra_step(&p, tat, now + 100000, &tat, &r));

        /* After a full window at rest the whole quota is back. */
        now += 10 * S;
        for (int i = 0; i < 10; i++)
                assert_true(dm_gcra_step(&p, tat, now, &tat, &r));
        assert_false(dm_gcra_step(&p, tat, now, &tat, &r));
}

/* No double burst at a window edge (the flaw of fixed windows): over any window, at most
 * limit + (elapsed / T) requests pass. */
static void test_gcra_no_edge_burst(void **state)
{
        struct dm_rate_policy p = {.limit = 60, .window_ms = 60000}; /* T = 1 s */
        struct dm_rate_result r;
        int64_t tat = 0, now = 5000 * S;
        int passed = 0;
        (void)state;

        for (int t = 0; t < 120; t++) { /* two minutes, 5 requests a second */
                for (int k = 0; k < 5; k++)
                        passed += dm_gcra_step(&p, tat, now + t * S, &tat, &r);
        }
        /* 60 at once, then one a second for the 119 s that follow. */
        assert_int_equal(passed, 60 + 119);
}

static void test_headers(void **state)
{
        struct dm_rate_policy p = {.limit = 600, .window_ms = 60000};
        struct dm_rate_result r;
        char policy[96], st[96];
        int64_t tat = 0;
        (void)state;

        assert_true(dm_gcra_step(&p, tat, 77 * S, &tat, &r));
        dm_rate_headers("default", &r, policy, sizeof(policy), st, sizeof(st));
        assert_string_equal(policy, "\"default\";q=600;w=60");
        assert_string_equal(st, "\"default\";r=599;t=1");
        dm_gcra_result(&p, false, 60 * S, 2500000, &r);
        dm_rate_headers("default", &r, policy, sizeof(policy), st, sizeof(st));
        assert_string_equal(st, "\"default\";r=0;t=3");
        assert_int_equal(r.retry_after_s, 3);
}

/* ---- the backend contract ---- */

static void contract_burst(struct dm_ratelimit *rl, const char *key)
{
        struct dm_rate_policy p = {.limit = 5, .window_ms = 60000};
        struct dm_rate_result r;

        for (int i = 0; i < 5; i++) {
                assert_int_equal(dm_ratelimit_check(rl, key, &p, &r), 0);
                assert_true(r.allowed);
                assert_int_equal(r.remaining, 4 - i);
        }
        assert_int_equal(dm_ratelimit_check(rl, key, &p, &r), 0);
        assert_false(r.allowed);
        assert_true(r.retry_after_s >= 11 && r.retry_after_s <= 13); /* T = 12 s */
}

static void unique_key(char *buf, size_t size, const char *what)
{
        static unsigned n;
        snprintf(buf, size, "test:%s:%ld:%u", what, (long)getpid(), ++n);
}

static void test_memory_contract(void **state)
{
        struct dm_ratelimit *rl;
        struct dm_rate_policy p = {.limit = 5, .window_ms = 60000};
        struct dm_rate_result r;
        char err[128];
        (void)state;

        assert_int_equal(dm_ratelimit_open(NULL, err, sizeof(err), &rl), 0);
        assert_string_equal(dm_ratelimit_backend(rl), "memory");
        assert_false(dm_ratelimit_degraded(rl));
        contract_burst(rl, "a");
        /* Keys are apart. */
        assert_int_equal(dm_ratelimit_check(rl, "b", &p, &r), 0);
        assert_true(r.allowed);
        /* A key longer than the maximum is cut, not refused. */
        char longkey[400];
        memset(longkey, 'k', sizeof(longkey) - 1);
        longkey[sizeof(longkey) - 1] = '\0';
        assert_int_equal(dm_ratelimit_check(rl, longkey, &p, &r), 0);
        assert_true(r.allowed);
        /* Another policy keeps its own state for the same key. */
        struct dm_rate_policy other = {.limit = 1, .window_ms = 3600000};
        assert_int_equal(dm_ratelimit_check(rl, "a", &other, &r), 0);
        assert_true(r.allowed);
        assert_int_equal(dm_ratelimit_check(rl, "a", &other, &r), 0);
        assert_false(r.allowed);
        /* A bad policy is the caller's error. */
        struct dm_rate_policy zero = {0};
        assert_int_equal(dm_ratelimit_check(rl, "c", &zero, &r), DM_EINVAL);
        dm_ratelimit_free(rl);
        dm_ratelimit_free(NULL);
}

/* The memory backend on a fixed clock: recovery after the interval. */
static void test_memory_recovers(void **state)
{
        struct dm_ratelimit *rl;
        struct dm_rate_policy p = {.limit = 2, .window_ms = 1000};
        struct dm_rate_result r;
        char err[128];
        (void)state;

        assert_int_equal(dm_ratelimit_open(NULL, err, sizeof(err), &rl), 0);
        dm_ratelimit_set_clock(rl, 100 * S);
        assert_int_equal(dm_ratelimit_check(rl, "k", &p, &r), 0);
        assert_true(r.allowed);
        assert_int_equal(dm_ratelimit_check(rl, "k", &p, &r), 0);
        assert_true(r.allowed);
        assert_int_equal(dm_ratelimit_check(rl, "k", &p, &r), 0);
        assert_false(r.allowed);
        dm_ratelimit_set_clock(rl, 100 * S + 500000);
        assert_int_equal(dm_ratelimit_check(rl, "k", &p, &r), 0);
        assert_true(r.allowed);
        dm_ratelimit_free(rl);
}

static void test_bad_urls(void **state)
{
        struct dm_ratelimit *rl = NULL;
        char err[200];
        (void)state;
        assert_int_equal(dm_ratelimit_open("memcached://x", err, sizeof(err), &rl), DM_EINVAL);
        assert_non_null(strstr(err, "REDIS_URL"));
#ifdef DM_HAVE_HIREDIS
        assert_int_equal(dm_ratelimit_open("redis://:secretpw@", err, sizeof(err), &rl), DM_EINVAL);
        assert_null(strstr(err, "secretpw"));
        assert_int_equal(dm_ratelimit_open("redis://h:99999/0", err, sizeof(err), &rl), DM_EINVAL);
#endif
}

#ifdef DM_HAVE_HIREDIS
static void test_redis_contract(void **state)
{
        const char *url = getenv("DM_TEST_REDIS_URL");
        struct dm_ratelimit *a, *b;
        struct dm_rate_policy p = {.limit = 5, .window_ms = 60000};
        struct dm_rate_result r;
        char err[200], key[64];
        (void)state;

        if (!url) {
                print_message("DM_TEST_REDIS_URL not set: the Redis contract is not run\n");
                skip();
        }
        assert_int_equal(dm_ratelimit_open(url, err, sizeof(err), &a), 0);
        assert_int_equal(dm_ratelimit_open(url, err, sizeof(err), &b), 0);
        assert_string_equal(dm_ratelimit_backend(a), "redis");
        assert_false(dm_ratelimit_degraded(a));
        unique_key(key, sizeof(key), "burst");
        contract_burst(a, key);
        /* Two limiters (two processes) on one server share one budget. */
        unique_key(key, sizeof(key), "shared");
        for (int i = 0; i < 5; i++) {
                assert_int_equal(dm_ratelimit_check(i % 2 ? a : b, key, &p, &r), 0);
                assert_true(r.allowed);
        }
        assert_int_equal(dm_ratelimit_check(a, key, &p, &r), 0);
        assert_false(r.allowed);
        assert_int_equal(dm_ratelimit_check(b, key, &p, &r), 0);
        assert_false(r.allowed);
        assert_false(dm_ratelimit_degraded(a));
        dm_ratelimit_free(a);
        dm_ratelimit_free(b);
}

/* A Redis that does not answer: the local limiter enforces the budget, and the limiter says
 * it is degraded. */
static void test_redis_down(void **state)
{
        struct dm_ratelimit *rl;
        struct dm_rate_policy p = {.limit = 3, .window_ms = 60000};
        struct dm_rate_result r;
        char err[200];
        (void)state;

        /* Port 1 on loopback: nothing listens, the connection is refused at once. */
        assert_int_equal(dm_ratelimit_open("redis://127.0.0.1:1/0", err, sizeof(err), &rl), 0);
        assert_true(dm_ratelimit_degraded(rl));
        for (int i = 0; i < 3; i++) {
                assert_int_equal(dm_ratelimit_check(rl, "k", &p, &r), 0);
                assert_true(r.allowed);
        }
        assert_int_equal(dm_ratelimit_check(rl, "k", &p, &r), 0);
        assert_false(r.allowed); /* never open: the local limiter counts */
        assert_true(dm_ratelimit_degraded(rl));
        dm_ratelimit_free(rl);
}
#endif

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_policy_parse),       cmocka_unit_test(test_gcra_burst_then_rate),
            cmocka_unit_test(test_gcra_no_edge_burst), cmocka_unit_test(test_headers),
            cmocka_unit_test(test_memory_contract),    cmocka_unit_test(test_memory_recovers),
            cmocka_unit_test(test_bad_urls),
#ifdef DM_HAVE_HIREDIS
            cmocka_unit_test(test_redis_contract),     cmocka_unit_test(test_redis_down),
#endif
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
