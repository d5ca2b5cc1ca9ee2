/* The cache: the contract every backend passes (memory, and redis when DM_TEST_REDIS_URL
 * names a server), the LRU's byte cap, the generation rule that keeps a value built before
 * an invalidation from being served after it, and which events invalidate what. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dm/cache.h"
#include "dm/error.h"

static struct dm_cache *open_cache(const char *backend, size_t max_bytes)
{
        struct dm_cache_opts o = {.backend = backend, .max_bytes = max_bytes, .ttl_ms = 60000};
        struct dm_cache *c = NULL;
        char err[200];
        if (dm_cache_open(&o, err, sizeof(err), &c) != 0)
                fail_msg("cannot open cache %s: %s", backend, err);
        return c;
}

static bool get_eq(struct dm_cache *c, const char *name, const char *kind, const char *want,
                   uint64_t *ret_token)
{
        char *v = NULL;
        size_t n = 0;
        uint64_t tok = 0;
        int r = dm_cache_get(c, name, kind, &v, &n, &tok);
        if (ret_token)
                *ret_token = tok;
        if (r != 0)
                return false;
        bool eq = want && n == strlen(want) && memcmp(v, want, n) == 0;
        free(v);
        return eq;
}

/* Names unique per run, so a shared server holds nothing from an earlier one. */
static void name_of(char *buf, size_t size, const char *what)
{
        static unsigned n;
        snprintf(buf, size, "%s-%ld-%u.example", what, (long)getpid(), ++n);
}

static void contract(struct dm_cache *c)
{
        char a[64], b[64];
        uint64_t tok, tok2;

        name_of(a, sizeof(a), "a");
        name_of(b, sizeof(b), "b");
        /* Miss, put, hit. */
        assert_false(get_eq(c, a, "records", NULL, &tok));
        assert_true(tok != 0);
        assert_int_equal(dm_cache_put(c, a, "records", tok, "{\"r\":1}", 7), 0);
        assert_true(get_eq(c, a, "records", "{\"r\":1}", NULL));
        /* Kinds and names are apart. */
        assert_false(get_eq(c, a, "domain", NULL, &tok2));
        assert_false(get_eq(c, b, "records", NULL, NULL));
        assert_int_equal(dm_cache_put(c, a, "domain", tok2, "{\"d\":1}", 7), 0);
        /* Invalidation drops every kind of the name, and nothing of another. */
        assert_false(get_eq(c, b, "records", NULL, &tok));
        assert_int_equal(dm_cache_put(c, b, "records", tok, "B", 1), 0);
        assert_int_equal(dm_cache_invalidate(c, a), 0);
        assert_false(get_eq(c, a, "records", NULL, NULL));
        assert_false(get_eq(c, a, "domain", NULL, NULL));
        assert_true(get_eq(c, b, "records", "B", NULL));

        /* The race: a reader misses (token), the domain changes and is invalidated, then
         * the reader stores what it read before the change. It must never be served. */
        assert_false(get_eq(c, a, "records", NULL, &tok));
        assert_int_equal(dm_cache_invalidate(c, a), 0);
        assert_int_equal(dm_cache_put(c, a, "records", tok, "stale", 5), 0);
        assert_false(get_eq(c, a, "records", NULL, &tok));
        assert_int_equal(dm_cache_put(c, a, "records", tok, "fresh", 5), 0);
        assert_true(get_eq(c, a, "records", "fresh", NULL));

        /* Binary-safe values, an empty value. */
        assert_int_equal(dm_cache_invalidate(c, b), 0);
        assert_false(get_eq(c, b, "records", NULL, &tok));
        assert_int_equal(dm_cache_put(c, b, "records", tok, "a\0b\nc", 5), 0);
        char *v = NULL;
        size_t n = 0;
        assert_int_equal(dm_cache_get(c, b, "records", &v, &n, &tok), 0);
        assert_int_equal(n, 5);
        assert_memory_equal(v, "a\0b\nc", 5);
        free(v);

        /* A token of 0 and over-long names store nothing. */
        char longname[300];
        memset(longname, 'x', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        assert_false(get_eq(c, longname, "records", NULL, &tok));
        assert_int_equal(tok, 0);
        assert_int_equal(dm_cache_put(c, longname, "records", tok, "x", 1), 0);
        assert_false(get_eq(c, longname, "records", NULL, NULL));
        assert_int_equal(dm_cache_invalidate(c, longname), 0);
        assert_false(dm_cache_degraded(c));
}

/* An answer stored under one version of its source is not served under another. */
static void test_versions(void **state)
{
        (void)state;
        struct dm_cache *c = open_cache("memory", 1 << 20);
        char *v = NULL;
        size_t n = 0;
        uint64_t tok;

        assert_int_equal(dm_cache_get_version(c, "v.example", "records", "1:10", &v, &n, &tok),
                         DM_ENOENT);
        assert_int_equal(dm_cache_put_version(c, "v.example", "records", tok, "1:10", "A", 1), 0);
        assert_int_equal(dm_cache_get_version(c, "v.example", "records", "1:10", &v, &n, &tok), 0);
        assert_int_equal(n, 1);
        assert_memory_equal(v, "A", 1);
        free(v);
        /* The row moved on (a scan): a miss, and the new answer replaces the old. */
        assert_int_equal(dm_cache_get_version(c, "v.example", "records", "1:11", &v, &n, &tok),
                         DM_ENOENT);
        assert_int_equal(dm_cache_put_version(c, "v.example", "records", tok, "1:11", "B", 1), 0);
        assert_int_equal(dm_cache_get_version(c, "v.example", "records", "1:10", &v, &n, &tok),
                         DM_ENOENT);
        assert_int_equal(dm_cache_get_version(c, "v.example", "records", "1:11", &v, &n, &tok), 0);
        assert_memory_equal(v, "B", 1);
        free(v);
        /* A version that is a prefix of another is not it. */
        assert_int_equal(dm_cache_get_version(c, "v.example", "records", "1:1", &v, &n, &tok),
                         DM_ENOENT);
        /* Versions with a newline or too long never store. */
        assert_int_equal(dm_cache_put_version(c, "w.example", "records", tok, "a\nb", "C", 1), 0);
        assert_int_equal(dm_cache_get_version(c, "w.example", "records", "a\nb", &v, &n, &tok),
                         DM_ENOENT);
        dm_cache_free(c);
}

static void test_memory_contract(void **state)
{
        (void)state;
        struct dm_cache *c = open_cache("memory", 1 << 20);
        assert_string_equal(dm_cache_backend(c), "memory");
        contract(c);
        struct dm_cache_stats st;
        dm_cache_stats(c, &st);
        assert_true(st.hits >= 4);
        assert_true(st.misses >= 4);
        dm_cache_free(c);
        dm_cache_free(NULL);
}

/* The byte cap: the least recently used answers go first, and one answer may take at most
 * an eighth of the cache. */
static void test_memory_lru(void **state)
{
        (void)state;
        struct dm_cache *c = open_cache("memory", 8192);
        char body[600], name[32];
        uint64_t tok;
        memset(body, 'v', sizeof(body));

        for (int i = 0; i < 20; i++) {
                snprintf(name, sizeof(name), "n%d.example", i);
                assert_false(get_eq(c, name, "records", NULL, &tok));
                assert_int_equal(dm_cache_put(c, name, "records", tok, body, sizeof(body)), 0);
                /* n0 is read after every put: it stays the most recently used. */
                char *v = NULL;
                size_t n;
                if (dm_cache_get(c, "n0.example", "records", &v, &n, &tok) == 0)
                        free(v);
        }
        struct dm_cache_stats st;
        dm_cache_stats(c, &st);
        assert_true(st.bytes <= 8192);
        assert_true(st.entries < 20);
        char *v = NULL;
        size_t n;
        assert_int_equal(dm_cache_get(c, "n0.example", "records", &v, &n, &tok), 0);
        free(v);
        assert_int_equal(dm_cache_get(c, "n1.example", "records", &v, &n, &tok), DM_ENOENT);
        assert_int_equal(dm_cache_get(c, "n19.example", "records", &v, &n, &tok), 0);
        free(v);

        /* Too large for the cache: not kept, no error. */
        char big[2000];
        memset(big, 'b', sizeof(big));
        assert_int_equal(dm_cache_get(c, "big.example", "records", &v, &n, &tok), DM_ENOENT);
        assert_int_equal(dm_cache_put(c, "big.example", "records", tok, big, sizeof(big)), 0);
        assert_int_equal(dm_cache_get(c, "big.example", "records", &v, &n, &tok), DM_ENOENT);
        dm_cache_free(c);
}

static void test_none(void **state)
{
        (void)state;
        struct dm_cache *c = open_cache("none", 0);
        uint64_t tok;
        assert_string_equal(dm_cache_backend(c), "none");
        assert_false(get_eq(c, "a.example", "records", NULL, &tok));
        assert_int_equal(dm_cache_put(c, "a.example", "records", 1, "x", 1), 0);
        assert_false(get_eq(c, "a.example", "records", NULL, &tok));
        assert_int_equal(dm_cache_invalidate(c, "a.example"), 0);
        dm_cache_free(c);
}

static void test_bad_backends(void **state)
{
        (void)state;
        struct dm_cache_opts o = {.backend = "disk"};
        struct dm_cache *c = NULL;
        char err[200];
        assert_int_equal(dm_cache_open(&o, err, sizeof(err), &c), DM_EINVAL);
        assert_non_null(strstr(err, "DM_CACHE"));
}

static void test_event_domain(void **state)
{
        char name[DM_CACHE_NAME_MAX];
        (void)state;
        const char *change = "{\"id\":7,\"domain\":\"example.com\",\"type\":\"A\"}";
        assert_int_equal(dm_cache_event_domain(change, strlen(change), name, sizeof(name)), 0);
        assert_string_equal(name, "example.com");
        const char *added = "{\"id\":8,\"name\":\"example.org\",\"enabled\":true}";
        assert_int_equal(dm_cache_event_domain(added, strlen(added), name, sizeof(name)), 0);
        assert_string_equal(name, "example.org");
        const char *none = "{\"id\":9}";
        assert_int_equal(dm_cache_event_domain(none, strlen(none), name, sizeof(name)), DM_ENOENT);
        const char *nul = "{\"domain\":\"a\\u0000b\"}";
        assert_int_equal(dm_cache_event_domain(nul, strlen(nul), name, sizeof(name)), DM_EINVAL);
        assert_int_equal(dm_cache_event_domain("[1]", 3, name, sizeof(name)), DM_EINVAL);
        assert_int_equal(dm_cache_event_domain("{", 1, name, sizeof(name)), DM_EINVAL);

        /* An event invalidates what the cache holds about its domain. */
        struct dm_cache *c = open_cache("memory", 1 << 20);
        uint64_t tok;
        assert_false(get_eq(c, "example.com", "records", NULL, &tok));
        assert_int_equal(dm_cache_put(c, "example.com", "records", tok, "old", 3), 0);
        assert_true(get_eq(c, "example.com", "records", "old", NULL));
        assert_int_equal(dm_cache_invalidate_event(c, "change.dns.A", change, strlen(change)), 0);
        assert_false(get_eq(c, "example.com", "records", NULL, NULL));
        assert_int_equal(dm_cache_invalidate_event(NULL, "change.dns.A", change, strlen(change)),
                         0);
        dm_cache_free(c);
}

#ifdef DM_HAVE_HIREDIS
static void test_redis_contract(void **state)
{
        const char *url = getenv("DM_TEST_REDIS_URL");
        (void)state;
        if (!url) {
                print_message("DM_TEST_REDIS_URL not set: the Redis contract is not run\n");
                skip();
        }
        struct dm_cache *c = open_cache(url, 1 << 20);
        assert_string_equal(dm_cache_backend(c), "redis");
        contract(c);

        /* Two processes on one server: an invalidation by one is seen by the other. */
        struct dm_cache *d = open_cache(url, 1 << 20);
        char name[64];
        uint64_t tok;
        name_of(name, sizeof(name), "shared");
        assert_false(get_eq(c, name, "records", NULL, &tok));
        assert_int_equal(dm_cache_put(c, name, "records", tok, "v1", 2), 0);
        assert_true(get_eq(d, name, "records", "v1", NULL));
        assert_int_equal(dm_cache_invalidate(d, name), 0);
        assert_false(get_eq(c, name, "records", NULL, NULL));
        dm_cache_free(d);
        dm_cache_free(c);
}

static void test_redis_down(void **state)
{
        (void)state;
        struct dm_cache *c = open_cache("redis://127.0.0.1:1/0", 1 << 20);
        uint64_t tok;
        assert_true(dm_cache_degraded(c));
        assert_false(get_eq(c, "a.example", "records", NULL, &tok));
        assert_int_equal(tok, 0); /* nothing will be stored */
        assert_int_equal(dm_cache_put(c, "a.example", "records", tok, "x", 1), 0);
        assert_int_equal(dm_cache_invalidate(c, "a.example"), DM_EIO);
        dm_cache_free(c);
}
#endif

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_memory_contract), cmocka_unit_test(test_memory_lru),
            cmocka_unit_test(test_versions),        cmocka_unit_test(test_none),
            cmocka_unit_test(test_bad_backends),    cmocka_unit_test(test_event_domain),
#ifdef DM_HAVE_HIREDIS
            cmocka_unit_test(test_redis_contract),  cmocka_unit_test(test_redis_down),
#endif
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
