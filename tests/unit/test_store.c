/* The store contract: every test runs against every backend built into this binary, from a
 * table of URLs made at start-up: a fresh SQLite file in its own temporary directory per
 * test, and the PostgreSQL database named by DM_TEST_PG_URL when that is set (emptied
 * before each test). A backend passes when it passes these unchanged. URL handling and the
 * name functions of store.c are tested once, outside the contract group. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dm/embed.h"
#include "dm/error.h"
#include "dm/store.h"
#include "dm/time.h"
#include "store/store_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIN_MS 60000
#define TEN_MIN_MS 600000

struct backend {
        const char *label;
        const char *url; /* NULL: a fresh SQLite file per test */
};

static struct backend backends[2];
static size_t nbackends;
static const struct backend *cur_backend;

struct fixture {
        char dir[64]; /* the test's temporary directory; empty for a server backend */
        char url[128];
        struct dm_store *st;
};

static void remove_dir(const char *dir)
{
        static const char *const files[] = {"store.db",     "store.db-wal",     "store.db-shm",
                                            "domainmon.db", "domainmon.db-wal", "domainmon.db-shm",
                                            "rel.db",       "rel.db-wal",       "rel.db-shm",
                                            "dot.db",       "dot.db-wal",       "dot.db-shm"};
        char path[128];
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
                snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
                unlink(path);
        }
        rmdir(dir);
}

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        char err[256] = "";
        int applied = -1;
        assert_non_null(f);
        if (cur_backend->url) {
                snprintf(f->url, sizeof(f->url), "%s", cur_backend->url);
        } else {
                snprintf(f->dir, sizeof(f->dir), "/tmp/dm-test-store-XXXXXX");
                assert_non_null(mkdtemp(f->dir));
                snprintf(f->url, sizeof(f->url), "sqlite://%s/store.db", f->dir);
        }
        assert_int_equal(dm_store_open(f->url, err, sizeof(err), &f->st), 0);
        assert_int_equal(dm_store_migrate(f->st, &applied), 0);
        if (cur_backend->url)
                assert_int_equal(dm_store_wipe(f->st), 0);
        else
                assert_true(applied >= 1);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        dm_store_free(f->st);
        if (f->dir[0])
                remove_dir(f->dir);
        free(f);
        return 0;
}

/* ---- builders ---- */

static struct dm_domain make_domain(const char *name, int64_t interval_ms)
{
        struct dm_domain d;
        memset(&d, 0, sizeof(d));
        snprintf(d.name, sizeof(d.name), "%s", name);
        snprintf(d.unicode_name, sizeof(d.unicode_name), "%s", name);
        d.enabled = true;
        d.interval_ms = interval_ms;
        return d;
}

static int64_t add_domain(struct dm_store *st, const char *name, int64_t interval_ms)
{
        struct dm_domain d = make_domain(name, interval_ms);
        assert_int_equal(dm_store_domain_insert(st, &d, NULL, NULL), 0);
        assert_true(d.id > 0);
        return d.id;
}

/* Inserts n domains PREFIX000.example, PREFIX001.example, ... (digits: at least `width`)
 * in one batch, with the given interval and checks; every one must be new. */
static void add_domains(struct dm_store *st, const char *prefix, int width, size_t n,
                        int64_t interval_ms, unsigned checks)
{
        struct dm_domain *ds = calloc(n, sizeof(*ds));
        int *res = calloc(n, sizeof(*res));
        assert_non_null(ds);
        assert_non_null(res);
        for (size_t i = 0; i < n; i++) {
                char name[64];
                snprintf(name, sizeof(name), "%s%0*zu.example", prefix, width, i);
                ds[i] = make_domain(name, interval_ms);
                ds[i].checks = checks;
        }
        assert_int_equal(dm_store_domain_insert_many(st, ds, n, NULL, NULL, res), 0);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(res[i], 0);
        free(res);
        free(ds);
}

static struct dm_domain get_domain(struct dm_store *st, const char *name)
{
        struct dm_domain d;
        assert_int_equal(dm_store_domain_get(st, name, &d), 0);
        return d;
}

static void fp_set(uint8_t fp[DM_FP_LEN], uint8_t v)
{
        memset(fp, v, DM_FP_LEN);
}

static struct dm_rrset_row make_row(uint16_t type, const char *values)
{
        struct dm_rrset_row r;
        memset(&r, 0, sizeof(r));
        r.type = type;
        r.status = DM_RRS_OK;
        r.ttl = 300;
        r.values = (char *)values;
        return r;
}

static struct dm_change make_change(uint16_t type, const char *before, const char *after,
                                    int64_t at)
{
        struct dm_change c;
        memset(&c, 0, sizeof(c));
        c.type = type;
        c.status = DM_RRS_OK;
        c.observed_at = at;
        c.before = (char *)before;
        c.after = (char *)after;
        c.added = (char *)after;
        c.removed = (char *)(before ? before : "[]");
        return c;
}

static struct dm_dns_commit make_commit(int64_t domain_id, int64_t at, uint8_t old_v, uint8_t new_v)
{
        struct dm_dns_commit it;
        memset(&it, 0, sizeof(it));
        it.domain_id = domain_id;
        it.checked_at = at;
        fp_set(it.old_fp, old_v);
        fp_set(it.new_fp, new_v);
        it.status = DM_CHECK_OK;
        it.result = 12345; /* must be overwritten */
        return it;
}

static int event_calls;

static char *test_event(const struct dm_change *ch, void *arg)
{
        int *calls = arg;
        char *body = malloc(320);
        if (!body)
                return NULL;
        if (calls)
                (*calls)++;
        snprintf(body, 320, "{\"id\":%lld,\"domain\":\"%s\",\"type\":%u}", (long long)ch->id,
                 ch->domain, (unsigned)ch->type);
        return body;
}

static size_t count_changes(struct dm_store *st, int64_t domain_id)
{
        struct dm_change_query q = {.domain_id = domain_id, .limit = 100000};
        struct dm_change *cs = NULL;
        size_t n = 0;
        assert_int_equal(dm_store_change_list(st, &q, &cs, &n), 0);
        dm_changes_free(cs, n);
        return n;
}

static int cmp_id(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return (x > y) - (x < y);
}

static size_t count_outbox(struct dm_store *st)
{
        size_t n = 0;
        assert_int_equal(dm_store_outbox_count(st, &n), 0);
        return n;
}

/* Relays' owner tokens in the outbox tests. */
#define OWNER_A 101
#define OWNER_B 202
#define OWNER_C 303
#define LEASE_MS 60000

/* Claims up to `limit` events for `owner` now, with a lease that outlasts the test. */
static struct dm_outbox_event *claim(struct dm_store *st, int64_t owner, size_t limit,
                                     size_t *ret_n)
{
        struct dm_outbox_event *ev = NULL;
        assert_int_equal(dm_store_outbox_claim(st, owner, LEASE_MS, limit, dm_now_ms(), &ev, ret_n),
                         0);
        return ev;
}

static size_t count_current(struct dm_store *st, int64_t domain_id)
{
        struct dm_rrset_row *rows = NULL;
        size_t n = 0;
        assert_int_equal(dm_store_dns_current(st, domain_id, &rows, &n), 0);
        dm_rrset_rows_free(rows, n);
        return n;
}

/* Writes a first state (A and MX, two changes) for the domain. */
static void commit_first_state(struct dm_store *st, int64_t id, int64_t at, uint8_t fp)
{
        struct dm_rrset_row rows[2] = {make_row(DM_RR_MX, "[\"10 mx.example.\"]"),
                                       make_row(DM_RR_A, "[\"192.0.2.1\"]")};
        struct dm_change ch[2] = {make_change(DM_RR_A, NULL, "[\"192.0.2.1\"]", at),
                                  make_change(DM_RR_MX, NULL, "[\"10 mx.example.\"]", at)};
        struct dm_dns_commit it = make_commit(id, at, 0, fp);
        it.rows = rows;
        it.nrows = 2;
        it.changes = ch;
        it.nchanges = 2;
        assert_int_equal(dm_store_dns_commit(st, &it, 1, test_event, &event_calls), 0);
        assert_int_equal(it.result, 0);
        assert_true(ch[0].id > 0);
        assert_true(ch[1].id > ch[0].id);
}

/* ---- open, migrate, ping ---- */

static void test_open_migrate_ping(void **state)
{
        struct fixture *f = *state;
        int applied = -1;
        assert_int_equal(dm_store_migrate(f->st, &applied), 0);
        assert_int_equal(applied, 0);
        assert_int_equal(dm_store_migrate(f->st, NULL), 0);
        assert_int_equal(dm_store_ping(f->st), 0);
        assert_non_null(dm_store_backend(f->st));

        /* A second handle on the same database sees the schema as applied. */
        struct dm_store *st2 = NULL;
        char err[256];
        assert_int_equal(dm_store_open(f->url, err, sizeof(err), &st2), 0);
        applied = -1;
        assert_int_equal(dm_store_migrate(st2, &applied), 0);
        assert_int_equal(applied, 0);
        assert_int_equal(dm_store_ping(st2), 0);
        dm_store_free(st2);
}

/* ---- domains ---- */

static void test_domain_crud(void **state)
{
        struct fixture *f = *state;
        int64_t before = dm_now_ms();
        struct dm_domain d = make_domain("example.com", 0);
        snprintf(d.unicode_name, sizeof(d.unicode_name), "example.com");
        d.record_types[0] = DM_RR_A;
        d.record_types[1] = DM_RR_MX;
        d.nrecord_types = 2;
        assert_int_equal(dm_store_domain_insert(f->st, &d, NULL, NULL), 0);
        assert_true(d.id > 0);
        assert_in_range(d.created_at, before, dm_now_ms());
        assert_int_equal(d.updated_at, d.created_at);
        assert_int_equal(d.next_check_at, d.created_at);

        struct dm_domain g = get_domain(f->st, "example.com");
        assert_int_equal(g.id, d.id);
        assert_string_equal(g.name, "example.com");
        assert_string_equal(g.unicode_name, "example.com");
        assert_true(g.enabled);
        assert_int_equal(g.interval_ms, 0);
        assert_int_equal(g.nrecord_types, 2);
        assert_int_equal(g.record_types[0], DM_RR_A);
        assert_int_equal(g.record_types[1], DM_RR_MX);
        assert_int_equal(g.created_at, d.created_at);
        assert_int_equal(g.next_check_at, d.created_at);
        assert_int_equal(g.last_checked_at, 0);
        assert_int_equal(g.last_changed_at, 0);
        assert_int_equal(g.status, DM_CHECK_PENDING);
        uint8_t zero[DM_FP_LEN] = {0};
        assert_memory_equal(g.dns_fp, zero, DM_FP_LEN);

        struct dm_domain dup = make_domain("example.com", 0);
        assert_int_equal(dm_store_domain_insert(f->st, &dup, NULL, NULL), DM_EEXIST);
        assert_int_equal(dup.id, 0);

        struct dm_domain u = g;
        u.enabled = false;
        u.interval_ms = 5 * MIN_MS;
        u.nrecord_types = 1;
        u.record_types[0] = DM_RR_TXT;
        u.updated_at = 1; /* a stale copy must not move it back */
        assert_int_equal(dm_store_domain_update(f->st, &u, DM_DOMAIN_SETTINGS), 0);
        g = get_domain(f->st, "example.com");
        assert_false(g.enabled);
        assert_int_equal(g.interval_ms, 5 * MIN_MS);
        assert_int_equal(g.nrecord_types, 1);
        assert_int_equal(g.record_types[0], DM_RR_TXT);
        assert_true(g.updated_at >= d.created_at);

        /* Back to the default set, at a time the caller chose. */
        u.nrecord_types = 0;
        u.updated_at = g.updated_at + 5000;
        assert_int_equal(dm_store_domain_update(f->st, &u, DM_DOMAIN_SETTINGS), 0);
        g = get_domain(f->st, "example.com");
        assert_int_equal(g.nrecord_types, 0);
        assert_int_equal(g.updated_at, u.updated_at);

        /* Only the named fields are written: two writers holding copies read at the same
         * time, each changing one field, keep both changes. */
        struct dm_domain w1 = g, w2 = g;
        w1.enabled = true;
        w2.interval_ms = 7 * MIN_MS;
        w2.enabled = false; /* stale: not named below */
        assert_int_equal(dm_store_domain_update(f->st, &w1, DM_DOMAIN_ENABLED), 0);
        assert_int_equal(dm_store_domain_update(f->st, &w2, DM_DOMAIN_INTERVAL), 0);
        g = get_domain(f->st, "example.com");
        assert_true(g.enabled);
        assert_int_equal(g.interval_ms, 7 * MIN_MS);
        assert_int_equal(g.nrecord_types, 0);
        assert_int_equal(dm_store_domain_update(f->st, &w1, 0), DM_EINVAL);
        assert_int_equal(dm_store_domain_update(f->st, &w1, 1u << 7), DM_EINVAL);

        struct dm_domain missing = make_domain("missing.example", 0);
        assert_int_equal(dm_store_domain_update(f->st, &missing, DM_DOMAIN_SETTINGS), DM_ENOENT);
        assert_int_equal(dm_store_domain_get(f->st, "missing.example", &g), DM_ENOENT);
        assert_int_equal(dm_store_domain_delete(f->st, "missing.example", NULL, NULL), DM_ENOENT);

        size_t n = 99;
        assert_int_equal(dm_store_domain_count(f->st, &n), 0);
        assert_int_equal(n, 1);
}

static char *domain_event_body(const struct dm_domain *d, int64_t at, void *arg);

static size_t count_name(struct dm_store *st, const char *name)
{
        struct dm_change_query q = {.domain = name, .limit = 100000};
        struct dm_change *cs = NULL;
        size_t n = 0;
        assert_int_equal(dm_store_change_list(st, &q, &cs, &n), 0);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(cs[i].domain, name);
        dm_changes_free(cs, n);
        return n;
}

/* Deleting a domain stops it and drops its current state; its history stays, under its
 * name, and shows again when the name comes back. */
static void test_domain_delete_cascade(void **state)
{
        struct fixture *f = *state;
        int64_t id = add_domain(f->st, "gone.example", 0);
        int64_t keep = add_domain(f->st, "kept.example", 0);
        int64_t now = dm_now_ms();
        commit_first_state(f->st, id, now, 0x11);
        commit_first_state(f->st, keep, now, 0x22);
        assert_int_equal(count_current(f->st, id), 2);
        assert_int_equal(count_changes(f->st, id), 2);

        assert_int_equal(dm_store_domain_delete(f->st, "gone.example", NULL, NULL), 0);
        struct dm_domain g;
        assert_int_equal(dm_store_domain_get(f->st, "gone.example", &g), DM_ENOENT);
        assert_int_equal(count_current(f->st, id), 0);
        assert_int_equal(count_current(f->st, keep), 2);
        /* The history stays, in the list of all changes and under its name. */
        assert_int_equal(count_changes(f->st, 0), 4);
        assert_int_equal(count_name(f->st, "gone.example"), 2);
        assert_int_equal(dm_store_domain_delete(f->st, "gone.example", NULL, NULL), DM_ENOENT);
        /* Not scanned any more: a late result for it lands nowhere. */
        struct dm_dns_commit late = make_commit(id, now + 1, 0x11, 0x12);
        assert_int_equal(dm_store_dns_commit(f->st, &late, 1, NULL, NULL), 0);
        assert_int_equal(late.result, DM_ENOENT);

        /* A name added again is a new domain, with a new id, and its name's history shows
         * what came before. */
        int64_t again = add_domain(f->st, "gone.example", 0);
        assert_true(again != id);
        assert_int_equal(count_changes(f->st, again), 0);
        assert_int_equal(count_name(f->st, "gone.example"), 2);
        commit_first_state(f->st, again, now + 2, 0x33);
        assert_int_equal(count_name(f->st, "gone.example"), 4);
        assert_int_equal(count_name(f->st, "kept.example"), 2);
        assert_int_equal(count_name(f->st, "never.example"), 0);
}

/* Purge: the domain and its name's whole history go; a name with history alone can be
 * purged too. Bulk deletes report per name, in one transaction, one event each. */
static void test_domain_delete_many_purge(void **state)
{
        struct fixture *f = *state;
        int64_t now = dm_now_ms();
        int64_t a = add_domain(f->st, "a.example", 0);
        int64_t b = add_domain(f->st, "b.example", 0);
        add_domain(f->st, "c.example", 0);
        commit_first_state(f->st, a, now, 0x41);
        commit_first_state(f->st, b, now, 0x42);
        size_t outbox = count_outbox(f->st);

        const char *names[] = {"a.example", "missing.example", "c.example"};
        int results[3] = {1, 1, 1};
        int calls = 0;
        assert_int_equal(
            dm_store_domain_delete_many(f->st, names, 3, 0, domain_event_body, &calls, results), 0);
        assert_int_equal(results[0], 0);
        assert_int_equal(results[1], DM_ENOENT);
        assert_int_equal(results[2], 0);
        assert_int_equal(calls, 2);
        assert_int_equal(count_outbox(f->st), outbox + 2);
        assert_int_equal(count_name(f->st, "a.example"), 2);
        size_t n = 0;
        assert_int_equal(dm_store_domain_count(f->st, &n), 0);
        assert_int_equal(n, 1);

        /* Purge of a name with history only, of a live domain, and of nothing at all. */
        const char *purge[] = {"a.example", "b.example", "none.example"};
        assert_int_equal(
            dm_store_domain_delete_many(f->st, purge, 3, DM_DELETE_PURGE, NULL, NULL, results), 0);
        assert_int_equal(results[0], 0);
        assert_int_equal(results[1], 0);
        assert_int_equal(results[2], DM_ENOENT);
        assert_int_equal(count_name(f->st, "a.example"), 0);
        assert_int_equal(count_name(f->st, "b.example"), 0);
        assert_int_equal(count_changes(f->st, 0), 0);
        assert_int_equal(dm_store_domain_count(f->st, &n), 0);
        assert_int_equal(n, 0);

        assert_int_equal(dm_store_domain_delete_many(f->st, purge, 0, 0, NULL, NULL, NULL), 0);
        assert_int_equal(dm_store_domain_delete_many(f->st, purge, 1, 1u << 5, NULL, NULL, results),
                         DM_EINVAL);
}

/* The history filters: first observations and serial-only entries can be left out. */
static void test_change_filters(void **state)
{
        struct fixture *f = *state;
        int64_t now = dm_now_ms();
        int64_t id = add_domain(f->st, "filters.example", 0);
        commit_first_state(f->st, id, now, 0x51);
        struct dm_rrset_row rows[1] = {make_row(DM_RR_A, "[\"192.0.2.9\"]")};
        struct dm_change ch[2] = {
            make_change(DM_RR_A, "[\"192.0.2.1\"]", "[\"192.0.2.9\"]", now),
            make_change(DM_RR_SOA, "[\"a. b. 1 2 3 4 5\"]", "[\"a. b. 2 2 3 4 5\"]", now)};
        ch[1].serial_only = true;
        struct dm_dns_commit it = make_commit(id, now + 1, 0x51, 0x52);
        it.rows = rows;
        it.nrows = 1;
        it.changes = ch;
        it.nchanges = 2;
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, NULL, NULL), 0);
        assert_int_equal(it.result, 0);

        struct dm_change_query q = {.domain = "filters.example", .limit = 100};
        struct dm_change *cs = NULL;
        size_t n = 0;
        assert_int_equal(dm_store_change_list(f->st, &q, &cs, &n), 0);
        assert_int_equal(n, 4);
        assert_true(cs[0].serial_only); /* newest first */
        assert_false(cs[1].serial_only);
        dm_changes_free(cs, n);

        q.hide_first = true;
        assert_int_equal(dm_store_change_list(f->st, &q, &cs, &n), 0);
        assert_int_equal(n, 2);
        dm_changes_free(cs, n);
        q.hide_serial_only = true;
        assert_int_equal(dm_store_change_list(f->st, &q, &cs, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(cs[0].type, DM_RR_A);
        assert_non_null(cs[0].before);
        dm_changes_free(cs, n);
        /* The same filters over every domain, with a type. */
        q.domain = NULL;
        q.hide_first = false;
        q.type = DM_RR_SOA;
        assert_int_equal(dm_store_change_list(f->st, &q, &cs, &n), 0);
        assert_int_equal(n, 0);
        dm_changes_free(cs, n);
        q.hide_serial_only = false;
        assert_int_equal(dm_store_change_list(f->st, &q, &cs, &n), 0);
        assert_int_equal(n, 1);
        dm_changes_free(cs, n);
}

/* The domain list by status. */
static void test_domain_list_status(void **state)
{
        struct fixture *f = *state;
        int64_t now = dm_now_ms();
        int64_t ok = add_domain(f->st, "ok.example", 0);
        int64_t bad = add_domain(f->st, "bad.example", 0);
        add_domain(f->st, "new.example", 0);
        commit_first_state(f->st, ok, now, 0x61);
        struct dm_dns_commit it = make_commit(bad, now, 0, 0x62);
        it.status = DM_CHECK_ERROR;
        it.status_error = "A: timed out";
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, NULL, NULL), 0);
        assert_int_equal(it.result, 0);

        struct dm_domain ds[4];
        size_t n = 0;
        struct dm_domain_query q = {.limit = 4, .statuses = 1u << DM_CHECK_ERROR};
        assert_int_equal(dm_store_domain_list(f->st, &q, ds, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(ds[0].name, "bad.example");
        q.statuses = 1u << DM_CHECK_PENDING;
        assert_int_equal(dm_store_domain_list(f->st, &q, ds, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(ds[0].name, "new.example");
        q.statuses = (1u << DM_CHECK_OK) | (1u << DM_CHECK_ERROR);
        assert_int_equal(dm_store_domain_list(f->st, &q, ds, &n), 0);
        assert_int_equal(n, 2);
        q.statuses = 0;
        assert_int_equal(dm_store_domain_list(f->st, &q, ds, &n), 0);
        assert_int_equal(n, 3);
}

static void test_domain_list(void **state)
{
        struct fixture *f = *state;
        enum { N = 250 };
        struct dm_domain *ds = calloc(N, sizeof(*ds));
        int *res = calloc(N, sizeof(*res));
        assert_non_null(ds);
        assert_non_null(res);
        /* Inserted out of order: the list order is the store's. */
        for (size_t i = 0; i < N; i++) {
                char name[64];
                snprintf(name, sizeof(name), "d%03zu.example", (i * 7) % N);
                ds[i] = make_domain(name, 0);
        }
        assert_int_equal(dm_store_domain_insert_many(f->st, ds, N, NULL, NULL, res), 0);
        for (size_t i = 0; i < N; i++)
                assert_int_equal(res[i], 0);

        struct dm_domain *page = calloc(100, sizeof(*page));
        assert_non_null(page);
        char after[DM_NAME_MAX + 1] = "";
        size_t total = 0, pages = 0;
        for (;;) {
                struct dm_domain_query q = {.after = total ? after : NULL, .limit = 100};
                size_t n = 999;
                assert_int_equal(dm_store_domain_list(f->st, &q, page, &n), 0);
                if (n == 0)
                        break;
                pages++;
                for (size_t i = 0; i < n; i++) {
                        char want[64];
                        snprintf(want, sizeof(want), "d%03zu.example", total + i);
                        assert_string_equal(page[i].name, want);
                }
                total += n;
                snprintf(after, sizeof(after), "%s", page[n - 1].name);
        }
        assert_int_equal(total, N);
        assert_int_equal(pages, 3);

        /* Substring, case-insensitive. */
        struct dm_domain_query q = {.q = "D01", .limit = 100};
        size_t n = 0;
        assert_int_equal(dm_store_domain_list(f->st, &q, page, &n), 0);
        assert_int_equal(n, 10);
        assert_string_equal(page[0].name, "d010.example");
        assert_string_equal(page[9].name, "d019.example");

        /* LIKE wildcards in q are plain characters. */
        add_domain(f->st, "x_y.example", 0);
        add_domain(f->st, "xzy.example", 0);
        q.q = "x_y";
        assert_int_equal(dm_store_domain_list(f->st, &q, page, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(page[0].name, "x_y.example");
        q.q = "_";
        assert_int_equal(dm_store_domain_list(f->st, &q, page, &n), 0);
        assert_int_equal(n, 1);
        q.q = "%";
        assert_int_equal(dm_store_domain_list(f->st, &q, page, &n), 0);
        assert_int_equal(n, 0);
        q.q = "d0%";
        assert_int_equal(dm_store_domain_list(f->st, &q, page, &n), 0);
        assert_int_equal(n, 0);
        q.q = "\\";
        assert_int_equal(dm_store_domain_list(f->st, &q, page, &n), 0);
        assert_int_equal(n, 0);

        /* The U-label form is searched too. */
        struct dm_domain b = make_domain("xn--bcher-kva.example", 0);
        snprintf(b.unicode_name, sizeof(b.unicode_name),
                 "b\xc3\xbc"
                 "cher.example");
        assert_int_equal(dm_store_domain_insert(f->st, &b, NULL, NULL), 0);
        q.q = "b\xc3\xbc"
              "cher";
        assert_int_equal(dm_store_domain_list(f->st, &q, page, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(page[0].name, "xn--bcher-kva.example");

        /* Cursor and filter together, and a limit below the matches. */
        q.q = "d1";
        q.after = "d150.example";
        q.limit = 5;
        assert_int_equal(dm_store_domain_list(f->st, &q, page, &n), 0);
        assert_int_equal(n, 5);
        assert_string_equal(page[0].name, "d151.example");
        assert_string_equal(page[4].name, "d155.example");

        free(page);
        free(res);
        free(ds);
}

static void test_domain_insert_many(void **state)
{
        struct fixture *f = *state;
        add_domain(f->st, "b.example", 0);
        struct dm_domain ds[5] = {make_domain("a.example", 0), make_domain("b.example", 0),
                                  make_domain("a.example", 0), make_domain("c.example", 0),
                                  make_domain("c.example", 0)};
        int res[5] = {7, 7, 7, 7, 7};
        assert_int_equal(dm_store_domain_insert_many(f->st, ds, 5, NULL, NULL, res), 0);
        assert_int_equal(res[0], 0);
        assert_int_equal(res[1], DM_EEXIST);
        assert_int_equal(res[2], DM_EEXIST);
        assert_int_equal(res[3], 0);
        assert_int_equal(res[4], DM_EEXIST);
        assert_true(ds[0].id > 0);
        assert_true(ds[3].id > 0);
        assert_true(ds[0].id != ds[3].id);
        assert_int_equal(ds[1].id, 0);
        assert_int_equal(ds[2].id, 0);
        assert_int_equal(get_domain(f->st, "a.example").id, ds[0].id);
        assert_int_equal(get_domain(f->st, "c.example").id, ds[3].id);
        size_t n = 0;
        assert_int_equal(dm_store_domain_count(f->st, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(dm_store_domain_insert_many(f->st, NULL, 0, NULL, NULL, NULL), 0);
}

/* ---- keys ---- */

static struct dm_api_key make_key(const char *key_id, const char *name, enum dm_scope scope,
                                  int64_t created_at)
{
        struct dm_api_key k;
        memset(&k, 0, sizeof(k));
        snprintf(k.key_id, sizeof(k.key_id), "%s", key_id);
        snprintf(k.name, sizeof(k.name), "%s", name);
        k.scope = scope;
        memset(k.hash, key_id[0], sizeof(k.hash));
        k.created_at = created_at;
        return k;
}

static void test_keys(void **state)
{
        struct fixture *f = *state;
        struct dm_api_key k1 = make_key("k1aaaa", "ci", DM_SCOPE_READ, 1000);
        struct dm_api_key k2 = make_key("k2bbbb", "ops", DM_SCOPE_ADMIN, 2000);
        struct dm_api_key k3 = make_key("k3cccc", "deploy", DM_SCOPE_WRITE, 0);
        assert_int_equal(dm_store_key_insert(f->st, &k1), 0);
        assert_int_equal(dm_store_key_insert(f->st, &k2), 0);
        assert_int_equal(dm_store_key_insert(f->st, &k3), 0);
        assert_true(k1.id > 0 && k2.id > 0 && k3.id > 0);
        assert_int_equal(k1.created_at, 1000);
        assert_true(k3.created_at > 2000); /* filled with the current time */
        struct dm_api_key dup = make_key("k1aaaa", "other", DM_SCOPE_READ, 0);
        assert_int_equal(dm_store_key_insert(f->st, &dup), DM_EEXIST);

        struct dm_api_key g;
        assert_int_equal(dm_store_key_get(f->st, "k2bbbb", &g), 0);
        assert_int_equal(g.id, k2.id);
        assert_string_equal(g.name, "ops");
        assert_int_equal(g.scope, DM_SCOPE_ADMIN);
        assert_memory_equal(g.hash, k2.hash, sizeof(g.hash));
        assert_int_equal(g.created_at, 2000);
        assert_int_equal(g.last_used_at, 0);
        assert_int_equal(g.revoked_at, 0);
        assert_int_equal(dm_store_key_get(f->st, "nope", &g), DM_ENOENT);

        struct dm_api_key *keys = NULL;
        size_t n = 0;
        assert_int_equal(dm_store_key_list(f->st, &keys, &n), 0);
        assert_int_equal(n, 3);
        assert_string_equal(keys[0].key_id, "k3cccc");
        assert_string_equal(keys[1].key_id, "k2bbbb");
        assert_string_equal(keys[2].key_id, "k1aaaa");
        free(keys);

        assert_int_equal(dm_store_key_touch(f->st, k1.id, 5000), 0);
        assert_int_equal(dm_store_key_get(f->st, "k1aaaa", &g), 0);
        assert_int_equal(g.last_used_at, 5000);

        assert_int_equal(dm_store_key_count_active(f->st, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(dm_store_key_revoke(f->st, "ops", 6000), 0); /* by name */
        assert_int_equal(dm_store_key_revoke(f->st, "ops", 6001), DM_ENOENT);
        assert_int_equal(dm_store_key_revoke(f->st, "k2bbbb", 6002), DM_ENOENT);
        assert_int_equal(dm_store_key_revoke(f->st, "k1aaaa", 7000), 0); /* by key_id */
        assert_int_equal(dm_store_key_revoke(f->st, "nobody", 7000), DM_ENOENT);
        assert_int_equal(dm_store_key_count_active(f->st, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(dm_store_key_get(f->st, "k2bbbb", &g), 0);
        assert_int_equal(g.revoked_at, 6000);

        /* A name shared by an active and a revoked key: only the active one is revoked. */
        struct dm_api_key k4 = make_key("k4dddd", "ci", DM_SCOPE_READ, 0);
        assert_int_equal(dm_store_key_insert(f->st, &k4), 0);
        assert_int_equal(dm_store_key_revoke(f->st, "ci", 8000), 0);
        assert_int_equal(dm_store_key_get(f->st, "k1aaaa", &g), 0);
        assert_int_equal(g.revoked_at, 7000);
        assert_int_equal(dm_store_key_get(f->st, "k4dddd", &g), 0);
        assert_int_equal(g.revoked_at, 8000);
}

/* Sessions: insert, get, delete; an id is taken once; expired ones go at the next insert. */
static void test_sessions(void **state)
{
        struct fixture *f = *state;
        struct dm_session a = {
            .key_id = "k1aaaa", .scope = DM_SCOPE_WRITE, .created_at = 1000, .expires_at = 5000};
        struct dm_session b = {
            .key_id = "k2bbbb", .scope = DM_SCOPE_READ, .created_at = 2000, .expires_at = 9000};
        struct dm_session g;
        memset(a.id, 'a', DM_SESSION_ID_HEX);
        memset(b.id, 'b', DM_SESSION_ID_HEX);

        assert_int_equal(dm_store_session_insert(f->st, &a), 0);
        assert_int_equal(dm_store_session_insert(f->st, &a), DM_EEXIST);
        assert_int_equal(dm_store_session_get(f->st, a.id, &g), 0);
        assert_string_equal(g.id, a.id);
        assert_string_equal(g.key_id, "k1aaaa");
        assert_int_equal(g.scope, DM_SCOPE_WRITE);
        assert_int_equal(g.created_at, 1000);
        assert_int_equal(g.expires_at, 5000);
        assert_int_equal(dm_store_session_get(f->st, "nope", &g), DM_ENOENT);

        /* b is created after a expired: a is pruned on the way. */
        b.created_at = 6000;
        assert_int_equal(dm_store_session_insert(f->st, &b), 0);
        assert_int_equal(dm_store_session_get(f->st, a.id, &g), DM_ENOENT);
        assert_int_equal(dm_store_session_get(f->st, b.id, &g), 0);
        assert_int_equal(g.scope, DM_SCOPE_READ);

        assert_int_equal(dm_store_session_delete(f->st, b.id), 0);
        assert_int_equal(dm_store_session_delete(f->st, b.id), DM_ENOENT);
        assert_int_equal(dm_store_session_get(f->st, b.id, &g), DM_ENOENT);

        struct dm_session bad = b;
        bad.scope = DM_SCOPE_NONE;
        assert_int_equal(dm_store_session_insert(f->st, &bad), DM_EINVAL);
        bad = b;
        bad.id[0] = '\0';
        assert_int_equal(dm_store_session_insert(f->st, &bad), DM_EINVAL);
}

/* A setting is written once: the first value stays, every later caller reads it. */
static void test_settings(void **state)
{
        struct fixture *f = *state;
        char v[64], tiny[4];

        assert_int_equal(dm_store_setting_init(f->st, "s", "first", v, sizeof(v)), 0);
        assert_string_equal(v, "first");
        assert_int_equal(dm_store_setting_init(f->st, "s", "second", v, sizeof(v)), 0);
        assert_string_equal(v, "first");
        assert_int_equal(dm_store_setting_init(f->st, "t", "other", v, sizeof(v)), 0);
        assert_string_equal(v, "other");
        assert_int_equal(dm_store_setting_init(f->st, "s", "x", tiny, sizeof(tiny)), DM_E2BIG);
        assert_int_equal(dm_store_setting_init(f->st, "", "x", v, sizeof(v)), DM_EINVAL);
        assert_int_equal(dm_store_setting_init(f->st, "u", "", v, sizeof(v)), DM_EINVAL);
}

/* The first key, alone and raced by several handles on one database (as by processes
 * starting at once): one wins, the others see it. */
struct first_key_racer {
        pthread_t thread;
        const char *url;
        pthread_barrier_t *start;
        char key_id[32];
        int ret;
};

static void *first_key_racer_main(void *arg)
{
        struct first_key_racer *r = arg;
        struct dm_store *st = NULL;
        char err[256];
        r->ret = dm_store_open(r->url, err, sizeof(err), &st);
        pthread_barrier_wait(r->start);
        if (r->ret == 0) {
                struct dm_api_key k = make_key(r->key_id, "admin", DM_SCOPE_ADMIN, 0);
                r->ret = dm_store_key_insert_first(st, &k);
        }
        dm_store_free(st);
        return NULL;
}

static void test_key_insert_first(void **state)
{
        struct fixture *f = *state;
        struct dm_api_key k1 = make_key("f1aaaa", "admin", DM_SCOPE_ADMIN, 1000);
        assert_int_equal(dm_store_key_insert_first(f->st, &k1), 0);
        assert_true(k1.id > 0);
        assert_int_equal(k1.created_at, 1000);
        struct dm_api_key k2 = make_key("f2bbbb", "admin", DM_SCOPE_ADMIN, 0);
        assert_int_equal(dm_store_key_insert_first(f->st, &k2), DM_EEXIST);
        assert_int_equal(k2.id, 0);
        assert_int_equal(dm_store_key_get(f->st, "f2bbbb", &k2), DM_ENOENT);

        /* Every key revoked: a first key again; a revoked key's key_id is still taken. */
        assert_int_equal(dm_store_key_revoke(f->st, "f1aaaa", 2000), 0);
        struct dm_api_key again = make_key("f1aaaa", "admin", DM_SCOPE_ADMIN, 0);
        assert_int_equal(dm_store_key_insert_first(f->st, &again), DM_ECONFLICT);
        struct dm_api_key k3 = make_key("f3cccc", "admin", DM_SCOPE_ADMIN, 0);
        assert_int_equal(dm_store_key_insert_first(f->st, &k3), 0);
        assert_true(k3.id > k1.id);
        assert_int_equal(dm_store_key_revoke(f->st, "f3cccc", 3000), 0);

        enum { RACERS = 4 };
        struct first_key_racer r[RACERS];
        pthread_barrier_t start;
        memset(r, 0, sizeof(r));
        assert_int_equal(pthread_barrier_init(&start, NULL, RACERS), 0);
        for (int i = 0; i < RACERS; i++) {
                r[i].url = f->url;
                r[i].start = &start;
                snprintf(r[i].key_id, sizeof(r[i].key_id), "r%dxxxx", i);
                assert_int_equal(pthread_create(&r[i].thread, NULL, first_key_racer_main, &r[i]),
                                 0);
        }
        int won = 0;
        for (int i = 0; i < RACERS; i++) {
                pthread_join(r[i].thread, NULL);
                if (r[i].ret == 0)
                        won++;
                else
                        assert_int_equal(r[i].ret, DM_EEXIST);
        }
        pthread_barrier_destroy(&start);
        assert_int_equal(won, 1);
        size_t n = 0;
        assert_int_equal(dm_store_key_count_active(f->st, &n), 0);
        assert_int_equal(n, 1);
}

/* checks and tls_ports: stored, read, updated field by field, imported and carried by the
 * claim; 0 / none stay "the default". */
static void test_domain_checks(void **state)
{
        struct fixture *f = *state;
        struct dm_domain d = make_domain("checks.example", 0);
        d.checks = DM_CHECKS_DNS | DM_CHECKS_TLS;
        d.tls_ports[0] = 8443;
        d.tls_ports[1] = 443;
        d.ntls_ports = 2;
        assert_int_equal(dm_store_domain_insert(f->st, &d, NULL, NULL), 0);
        struct dm_domain g = get_domain(f->st, "checks.example");
        assert_int_equal(g.checks, DM_CHECKS_DNS | DM_CHECKS_TLS);
        assert_int_equal(g.ntls_ports, 2);
        assert_int_equal(g.tls_ports[0], 8443);
        assert_int_equal(g.tls_ports[1], 443);

        struct dm_domain plain = make_domain("plain.example", 0);
        assert_int_equal(dm_store_domain_insert(f->st, &plain, NULL, NULL), 0);
        g = get_domain(f->st, "plain.example");
        assert_int_equal(g.checks, 0);
        assert_int_equal(g.ntls_ports, 0);

        /* Only the named field is written. */
        struct dm_domain u = get_domain(f->st, "checks.example");
        u.checks = DM_CHECKS_REGISTRATION;
        u.ntls_ports = 0;
        assert_int_equal(dm_store_domain_update(f->st, &u, DM_DOMAIN_CHECKS), 0);
        g = get_domain(f->st, "checks.example");
        assert_int_equal(g.checks, DM_CHECKS_REGISTRATION);
        assert_int_equal(g.ntls_ports, 2);
        u.checks = DM_CHECKS_ALL;
        u.tls_ports[0] = 993;
        u.ntls_ports = 1;
        assert_int_equal(dm_store_domain_update(f->st, &u, DM_DOMAIN_TLS_PORTS), 0);
        g = get_domain(f->st, "checks.example");
        assert_int_equal(g.checks, DM_CHECKS_REGISTRATION);
        assert_int_equal(g.ntls_ports, 1);
        assert_int_equal(g.tls_ports[0], 993);
        u.checks = 0;
        assert_int_equal(dm_store_domain_update(f->st, &u, DM_DOMAIN_CHECKS), 0);
        g = get_domain(f->st, "checks.example");
        assert_int_equal(g.checks, 0);

        /* Bad values are refused before the backend. */
        u.checks = 1u << 9;
        assert_int_equal(dm_store_domain_update(f->st, &u, DM_DOMAIN_CHECKS), DM_EINVAL);
        struct dm_domain bad = make_domain("bad.example", 0);
        bad.ntls_ports = DM_TLS_PORTS_MAX + 1;
        assert_int_equal(dm_store_domain_insert(f->st, &bad, NULL, NULL), DM_EINVAL);

        struct dm_domain many[2] = {make_domain("m1.example", 0), make_domain("m2.example", 0)};
        int results[2];
        many[0].checks = DM_CHECKS_TLS;
        many[0].tls_ports[0] = 465;
        many[0].ntls_ports = 1;
        assert_int_equal(dm_store_domain_insert_many(f->st, many, 2, NULL, NULL, results), 0);
        g = get_domain(f->st, "m1.example");
        assert_int_equal(g.checks, DM_CHECKS_TLS);
        assert_int_equal(g.ntls_ports, 1);
        assert_int_equal(g.tls_ports[0], 465);
        g = get_domain(f->st, "m2.example");
        assert_int_equal(g.checks, 0);
        assert_int_equal(g.ntls_ports, 0);

        struct dm_claim_opts opts = {.now = dm_now_ms() + 1000,
                                     .limit = 8,
                                     .default_interval_ms = TEN_MIN_MS,
                                     .min_interval_ms = MIN_MS};
        struct dm_scan_task tasks[8];
        size_t n = 0;
        assert_int_equal(dm_store_claim_due(f->st, &opts, tasks, &n), 0);
        assert_int_equal(n, 4);
        for (size_t i = 0; i < n; i++) {
                if (strcmp(tasks[i].name, "m1.example") == 0) {
                        assert_int_equal(tasks[i].checks, DM_CHECKS_TLS);
                        assert_int_equal(tasks[i].ntls_ports, 1);
                        assert_int_equal(tasks[i].tls_ports[0], 465);
                } else if (strcmp(tasks[i].name, "checks.example") == 0) {
                        assert_int_equal(tasks[i].checks, 0);
                        assert_int_equal(tasks[i].ntls_ports, 1);
                        assert_int_equal(tasks[i].tls_ports[0], 993);
                } else {
                        assert_int_equal(tasks[i].checks, 0);
                        assert_int_equal(tasks[i].ntls_ports, 0);
                }
        }
}

/* ---- TLS ---- */

static char *tls_event_body(const struct dm_tls_change *c, void *arg)
{
        (void)arg;
        char *s = NULL;
        if (asprintf(&s, "{\"id\":%lld,\"domain\":\"%s\",\"port\":%u}", (long long)c->id, c->domain,
                     (unsigned)c->port) < 0)
                return NULL;
        return s;
}

static void tls_endpoint(struct dm_tls_endpoint *e, uint16_t port, const char *addr,
                         const char *cert, int64_t not_after)
{
        memset(e, 0, sizeof(*e));
        e->port = port;
        snprintf(e->address, sizeof(e->address), "%s", addr);
        e->status = DM_TLS_OK;
        snprintf(e->protocol, sizeof(e->protocol), "TLSv1.3");
        e->chain_valid = true;
        snprintf(e->sha256, sizeof(e->sha256), "%064d", (int)not_after);
        e->not_after = not_after;
        e->cert = (char *)cert;
        e->changed_at = 1000;
}

/* The TLS state: compare-and-swap on tls_fp, endpoints replaced, history with ids and one
 * outbox event each, check time never back, a deleted domain's rows gone. */
static void test_tls_commit(void **state)
{
        struct fixture *f = *state;
        struct dm_domain d = make_domain("tls.example", 0);
        assert_int_equal(dm_store_domain_insert(f->st, &d, NULL, NULL), 0);
        size_t before_events = 0, n = 0;
        assert_int_equal(dm_store_outbox_count(f->st, &before_events), 0);

        struct dm_tls_endpoint eps[2];
        tls_endpoint(&eps[0], 443, "192.0.2.1", "{\"sha256\":\"a\"}", 9000);
        tls_endpoint(&eps[1], 443, "2001:db8::1", "{\"sha256\":\"b\"}", 7000);
        eps[1].status = DM_TLS_ERROR;
        snprintf(eps[1].error, sizeof(eps[1].error), "connect: Connection refused");
        struct dm_tls_change ch = {
            .port = 443, .chain_valid = true, .observed_at = 1000, .after = "{\"sha256\":\"a\"}"};
        snprintf(ch.address, sizeof(ch.address), "192.0.2.1");
        struct dm_tls_commit it = {.domain_id = d.id,
                                   .checked_at = 1000,
                                   .endpoints = eps,
                                   .nendpoints = 2,
                                   .changes = &ch,
                                   .nchanges = 1,
                                   .expires_at = 7000};
        memset(it.new_fp, 0xaa, DM_FP_LEN);
        assert_int_equal(dm_store_tls_commit(f->st, &it, 1, tls_event_body, NULL), 0);
        assert_int_equal(it.result, 0);
        assert_true(ch.id > 0);
        assert_string_equal(ch.domain, "tls.example");
        int64_t first_id = ch.id;

        struct dm_domain g = get_domain(f->st, "tls.example");
        assert_memory_equal(g.tls_fp, it.new_fp, DM_FP_LEN);
        assert_int_equal(g.tls_checked_at, 1000);
        assert_int_equal(g.tls_expires_at, 7000);
        assert_memory_equal(g.dns_fp, (uint8_t[DM_FP_LEN]){0}, DM_FP_LEN);

        struct dm_tls_endpoint *cur = NULL;
        assert_int_equal(dm_store_tls_current(f->st, d.id, &cur, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(cur[0].address, "192.0.2.1");
        assert_int_equal(cur[0].status, DM_TLS_OK);
        assert_string_equal(cur[0].cert, "{\"sha256\":\"a\"}");
        assert_string_equal(cur[0].protocol, "TLSv1.3");
        assert_true(cur[0].chain_valid);
        assert_int_equal(cur[0].not_after, 9000);
        assert_int_equal(cur[0].changed_at, 1000);
        assert_string_equal(cur[1].address, "2001:db8::1");
        assert_int_equal(cur[1].status, DM_TLS_ERROR);
        assert_string_equal(cur[1].error, "connect: Connection refused");
        dm_tls_endpoints_free(cur, n);

        struct dm_tls_change *chs = NULL;
        assert_int_equal(dm_store_tls_change_list(f->st, d.id, 0, 10, &chs, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(chs[0].id, ch.id);
        assert_string_equal(chs[0].domain, "tls.example");
        assert_string_equal(chs[0].address, "192.0.2.1");
        assert_null(chs[0].before);
        assert_string_equal(chs[0].after, "{\"sha256\":\"a\"}");
        assert_int_equal(chs[0].observed_at, 1000);
        dm_tls_changes_free(chs, n);
        size_t events = 0;
        assert_int_equal(dm_store_outbox_count(f->st, &events), 0);
        assert_int_equal(events, before_events + 1);

        /* Replayed (the stored fingerprint moved on): nothing written. */
        ch.id = 0;
        it.checked_at = 5000;
        assert_int_equal(dm_store_tls_commit(f->st, &it, 1, tls_event_body, NULL), 0);
        assert_int_equal(it.result, DM_ECONFLICT);
        assert_int_equal(get_domain(f->st, "tls.example").tls_checked_at, 1000);

        /* Unchanged: the check time alone, never back. */
        struct dm_tls_commit same = {.domain_id = d.id, .checked_at = 3000};
        memset(same.old_fp, 0xaa, DM_FP_LEN);
        memset(same.new_fp, 0xaa, DM_FP_LEN);
        assert_int_equal(dm_store_tls_commit(f->st, &same, 1, tls_event_body, NULL), 0);
        assert_int_equal(same.result, 0);
        assert_int_equal(get_domain(f->st, "tls.example").tls_checked_at, 3000);
        same.checked_at = 2000;
        assert_int_equal(dm_store_tls_commit(f->st, &same, 1, tls_event_body, NULL), 0);
        assert_int_equal(get_domain(f->st, "tls.example").tls_checked_at, 3000);

        /* A renewal: one endpoint left, the second entry, newest first, paged by id. */
        struct dm_tls_endpoint one;
        tls_endpoint(&one, 443, "192.0.2.1", "{\"sha256\":\"c\"}", 20000);
        struct dm_tls_change ch2 = {.port = 443,
                                    .chain_valid = true,
                                    .observed_at = 4000,
                                    .before = "{\"sha256\":\"a\"}",
                                    .after = "{\"sha256\":\"c\"}"};
        snprintf(ch2.address, sizeof(ch2.address), "192.0.2.1");
        struct dm_tls_commit it2 = {.domain_id = d.id,
                                    .checked_at = 4000,
                                    .endpoints = &one,
                                    .nendpoints = 1,
                                    .changes = &ch2,
                                    .nchanges = 1,
                                    .expires_at = 20000};
        memset(it2.old_fp, 0xaa, DM_FP_LEN);
        memset(it2.new_fp, 0xbb, DM_FP_LEN);
        assert_int_equal(dm_store_tls_commit(f->st, &it2, 1, tls_event_body, NULL), 0);
        assert_int_equal(it2.result, 0);
        assert_true(ch2.id > 0);
        assert_int_equal(dm_store_tls_current(f->st, d.id, &cur, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(cur[0].cert, "{\"sha256\":\"c\"}");
        dm_tls_endpoints_free(cur, n);
        assert_int_equal(get_domain(f->st, "tls.example").tls_expires_at, 20000);
        assert_int_equal(dm_store_tls_change_list(f->st, d.id, 0, 1, &chs, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(chs[0].id, ch2.id);
        assert_string_equal(chs[0].before, "{\"sha256\":\"a\"}");
        int64_t last = chs[0].id;
        dm_tls_changes_free(chs, n);
        assert_int_equal(dm_store_tls_change_list(f->st, d.id, last, 10, &chs, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(chs[0].id, first_id);
        dm_tls_changes_free(chs, n);

        /* The claim carries the TLS fingerprint. */
        struct dm_claim_opts opts = {.now = dm_now_ms() + 1000,
                                     .limit = 4,
                                     .default_interval_ms = TEN_MIN_MS,
                                     .min_interval_ms = MIN_MS};
        struct dm_scan_task tasks[4];
        assert_int_equal(dm_store_claim_due(f->st, &opts, tasks, &n), 0);
        assert_int_equal(n, 1);
        assert_memory_equal(tasks[0].tls_fp, it2.new_fp, DM_FP_LEN);

        /* Too large a certificate: refused, nothing written. */
        char *big = malloc(DM_TLS_CERT_JSON_MAX + 2);
        assert_non_null(big);
        memset(big, 'x', DM_TLS_CERT_JSON_MAX + 1);
        big[DM_TLS_CERT_JSON_MAX + 1] = '\0';
        one.cert = big;
        memset(it2.old_fp, 0xbb, DM_FP_LEN);
        memset(it2.new_fp, 0xcc, DM_FP_LEN);
        it2.nchanges = 0;
        assert_int_equal(dm_store_tls_commit(f->st, &it2, 1, tls_event_body, NULL), 0);
        assert_int_equal(it2.result, DM_E2BIG);
        free(big);
        g = get_domain(f->st, "tls.example");
        assert_int_equal(g.tls_fp[0], 0xbb);

        /* Deleted: the commit finds no domain, and its rows went with it. */
        assert_int_equal(dm_store_domain_delete(f->st, "tls.example", NULL, NULL), 0);
        assert_int_equal(dm_store_tls_commit(f->st, &same, 1, tls_event_body, NULL), 0);
        assert_int_equal(same.result, DM_ENOENT);
        assert_int_equal(dm_store_tls_current(f->st, d.id, &cur, &n), 0);
        assert_int_equal(n, 0);
        dm_tls_endpoints_free(cur, n);
        assert_int_equal(dm_store_tls_change_list(f->st, d.id, 0, 10, &chs, &n), 0);
        assert_int_equal(n, 0);
        dm_tls_changes_free(chs, n);
        assert_int_equal(dm_store_tls_change_list(f->st, 0, 0, 10, &chs, &n), DM_EINVAL);
}

/* ---- scheduling ---- */

static void test_claim_due(void **state)
{
        struct fixture *f = *state;
        struct dm_domain dflt = make_domain("default.example", 0);
        dflt.record_types[0] = DM_RR_AAAA;
        dflt.record_types[1] = DM_RR_CAA;
        dflt.nrecord_types = 2;
        assert_int_equal(dm_store_domain_insert(f->st, &dflt, NULL, NULL), 0);
        add_domain(f->st, "two-min.example", 2 * MIN_MS);
        add_domain(f->st, "too-short.example", 1000);
        struct dm_domain off = make_domain("disabled.example", 0);
        off.enabled = false;
        assert_int_equal(dm_store_domain_insert(f->st, &off, NULL, NULL), 0);

        int64_t now = dm_now_ms() + 1000;
        struct dm_claim_opts opts = {
            .now = now, .limit = 2, .default_interval_ms = TEN_MIN_MS, .min_interval_ms = MIN_MS};
        struct dm_scan_task tasks[8];
        size_t n = 0, n2 = 0;
        assert_int_equal(dm_store_claim_due(f->st, &opts, tasks, &n), 0);
        assert_int_equal(n, 2); /* the limit */
        opts.limit = 8;
        assert_int_equal(dm_store_claim_due(f->st, &opts, tasks + n, &n2), 0);
        assert_int_equal(n2, 1); /* the rest of the enabled ones */
        n += n2;
        bool seen_default = false;
        for (size_t i = 0; i < n; i++) {
                assert_string_not_equal(tasks[i].name, "disabled.example");
                for (size_t j = 0; j < i; j++)
                        assert_int_not_equal(tasks[i].domain_id, tasks[j].domain_id);
                uint8_t zero[DM_FP_LEN] = {0};
                assert_memory_equal(tasks[i].dns_fp, zero, DM_FP_LEN);
                if (strcmp(tasks[i].name, "default.example") != 0) {
                        assert_int_equal(tasks[i].nrecord_types, 0);
                        continue;
                }
                seen_default = true;
                assert_int_equal(tasks[i].domain_id, dflt.id);
                assert_int_equal(tasks[i].nrecord_types, 2);
                assert_int_equal(tasks[i].record_types[0], DM_RR_AAAA);
                assert_int_equal(tasks[i].record_types[1], DM_RR_CAA);
        }
        assert_true(seen_default);

        /* Same instant again: nothing is due any more. */
        assert_int_equal(dm_store_claim_due(f->st, &opts, tasks, &n), 0);
        assert_int_equal(n, 0);

        struct dm_domain g = get_domain(f->st, "default.example");
        assert_true(g.next_check_at > now + TEN_MIN_MS / 2 &&
                    g.next_check_at <= now + TEN_MIN_MS * 3 / 2);
        g = get_domain(f->st, "two-min.example");
        assert_true(g.next_check_at > now + MIN_MS && g.next_check_at <= now + 3 * MIN_MS);
        g = get_domain(f->st, "too-short.example");
        assert_true(g.next_check_at > now + MIN_MS / 2 && g.next_check_at <= now + MIN_MS * 3 / 2);
        g = get_domain(f->st, "disabled.example");
        assert_true(g.next_check_at <= now);

        /* One interval later each is due again, and moves on by one interval: the phase is
         * kept. */
        int64_t slot = get_domain(f->st, "two-min.example").next_check_at;
        opts.now = slot;
        assert_int_equal(dm_store_claim_due(f->st, &opts, tasks, &n), 0);
        bool found = false;
        for (size_t i = 0; i < n; i++)
                found |= strcmp(tasks[i].name, "two-min.example") == 0;
        assert_true(found);
        assert_int_equal(get_domain(f->st, "two-min.example").next_check_at, slot + 2 * MIN_MS);

        /* Re-enabled: due at once (at `now` every other domain is in its next slot). */
        off.enabled = true;
        assert_int_equal(dm_store_domain_update(f->st, &off, DM_DOMAIN_ENABLED), 0);
        opts.now = now;
        assert_int_equal(dm_store_claim_due(f->st, &opts, tasks, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(tasks[0].name, "disabled.example");
}

/* Claims that come back full, one after the other, the way a scheduler drains a backlog:
 * a domain made due behind the rows already taken (here: at an earlier instant) is still
 * taken within the pass, and no domain is taken twice. */
static void test_claim_pass_takes_every_due(void **state)
{
        struct fixture *f = *state;
        enum { N = 25, LIMIT = 10 };
        add_domains(f->st, "pass", 3, N, 0, DM_CHECKS_DNS);
        int64_t now = dm_now_ms() + 1000;
        struct dm_claim_opts opts = {.now = now,
                                     .limit = LIMIT,
                                     .default_interval_ms = TEN_MIN_MS,
                                     .min_interval_ms = MIN_MS};
        struct dm_scan_task tasks[LIMIT];
        int seen[N + 1] = {0};
        size_t n = 0, total = 0, rounds = 0;
        char again[sizeof(tasks[0].name)] = "";
        for (;;) {
                assert_int_equal(dm_store_claim_due(f->st, &opts, tasks, &n), 0);
                rounds++;
                for (size_t i = 0; i < n; i++) {
                        int k = atoi(tasks[i].name + 4);
                        assert_true(k >= 0 && k < N);
                        seen[k]++;
                }
                total += n;
                if (rounds == 1) {
                        /* The first domain taken, due again before every other one. */
                        assert_int_equal(n, LIMIT);
                        snprintf(again, sizeof(again), "%s", tasks[0].name);
                        struct dm_domain d = get_domain(f->st, again);
                        assert_int_equal(
                            dm_store_domain_request_scan(f->st, again, d.created_at - 5000), 0);
                }
                if (n < LIMIT)
                        break;
        }
        assert_int_equal(total, N + 1);
        int k0 = atoi(again + 4);
        for (int k = 0; k < N; k++)
                assert_int_equal(seen[k], k == k0 ? 2 : 1);
        assert_int_equal(dm_store_claim_due(f->st, &opts, tasks, &n), 0);
        assert_int_equal(n, 0);
}

static void test_claim_spread(void **state)
{
        struct fixture *f = *state;
        enum { N = 1000, BUCKETS = 10 };
        struct dm_domain *ds = calloc(N, sizeof(*ds));
        int *res = calloc(N, sizeof(*res));
        struct dm_scan_task *tasks = calloc(N, sizeof(*tasks));
        assert_non_null(ds);
        assert_non_null(res);
        assert_non_null(tasks);
        for (size_t i = 0; i < N; i++) {
                char name[64];
                snprintf(name, sizeof(name), "host%zu.example.net", i);
                ds[i] = make_domain(name, TEN_MIN_MS);
        }
        assert_int_equal(dm_store_domain_insert_many(f->st, ds, N, NULL, NULL, res), 0);

        int64_t now = dm_now_ms() + 1000;
        struct dm_claim_opts opts = {
            .now = now, .limit = N, .default_interval_ms = TEN_MIN_MS, .min_interval_ms = MIN_MS};
        size_t n = 0;
        assert_int_equal(dm_store_claim_due(f->st, &opts, tasks, &n), 0);
        assert_int_equal(n, N);

        size_t bucket[BUCKETS] = {0};
        int64_t lo = INT64_MAX, hi = INT64_MIN;
        struct dm_domain_query q = {.limit = N};
        assert_int_equal(dm_store_domain_list(f->st, &q, ds, &n), 0);
        assert_int_equal(n, N);
        for (size_t i = 0; i < N; i++) {
                /* Off its slot, a domain is not due again before half an interval. */
                int64_t off = ds[i].next_check_at - now - TEN_MIN_MS / 2;
                assert_true(off > 0 && off <= TEN_MIN_MS);
                lo = off < lo ? off : lo;
                hi = off > hi ? off : hi;
                bucket[(off - 1) * BUCKETS / TEN_MIN_MS]++;
        }
        assert_true(lo < hi);
        assert_true(lo < TEN_MIN_MS / 20);
        assert_true(hi > TEN_MIN_MS - TEN_MIN_MS / 20);
        for (size_t i = 0; i < BUCKETS; i++)
                assert_in_range(bucket[i], N / BUCKETS / 2, N / BUCKETS * 3 / 2);
        free(tasks);
        free(res);
        free(ds);
}

static void test_request_scan(void **state)
{
        struct fixture *f = *state;
        add_domain(f->st, "soon.example", 0);
        int64_t now = dm_now_ms() + 1000;
        struct dm_claim_opts opts = {
            .now = now, .limit = 4, .default_interval_ms = TEN_MIN_MS, .min_interval_ms = MIN_MS};
        struct dm_scan_task tasks[4];
        size_t n = 0;
        assert_int_equal(dm_store_claim_due(f->st, &opts, tasks, &n), 0);
        assert_int_equal(n, 1);
        assert_true(get_domain(f->st, "soon.example").next_check_at > now);

        assert_int_equal(dm_store_domain_request_scan(f->st, "soon.example", now + 5), 0);
        assert_int_equal(get_domain(f->st, "soon.example").next_check_at, now + 5);
        assert_int_equal(dm_store_domain_request_scan(f->st, "nope.example", now), DM_ENOENT);
        opts.now = now + 5;
        assert_int_equal(dm_store_claim_due(f->st, &opts, tasks, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(tasks[0].name, "soon.example");

        /* All at once: every enabled domain, an earlier due time kept, disabled ones not. */
        add_domain(f->st, "early.example", 0); /* due since its insert */
        struct dm_domain off = make_domain("off.example", 0);
        off.enabled = false;
        assert_int_equal(dm_store_domain_insert(f->st, &off, NULL, NULL), 0);
        int64_t early = get_domain(f->st, "early.example").next_check_at;
        n = 0;
        assert_int_equal(dm_store_domain_request_scan_all(f->st, now + 100, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(get_domain(f->st, "soon.example").next_check_at, now + 100);
        assert_int_equal(get_domain(f->st, "early.example").next_check_at, early);
        assert_int_equal(get_domain(f->st, "off.example").next_check_at, off.next_check_at);
        assert_int_equal(dm_store_domain_request_scan_all(f->st, now + 100, NULL), 0);
        opts.now = now + 100;
        assert_int_equal(dm_store_claim_due(f->st, &opts, tasks, &n), 0);
        assert_int_equal(n, 2);
}

/* ---- DNS state ---- */

static void test_dns_commit_first_and_unchanged(void **state)
{
        struct fixture *f = *state;
        int64_t id = add_domain(f->st, "state.example", 0);
        int64_t t1 = dm_now_ms();
        event_calls = 0;
        commit_first_state(f->st, id, t1, 0x11);
        assert_int_equal(event_calls, 2);

        struct dm_domain g = get_domain(f->st, "state.example");
        uint8_t fp[DM_FP_LEN];
        fp_set(fp, 0x11);
        assert_memory_equal(g.dns_fp, fp, DM_FP_LEN);
        assert_int_equal(g.last_checked_at, t1);
        assert_int_equal(g.last_changed_at, t1);
        assert_int_equal(g.status, DM_CHECK_OK);

        struct dm_rrset_row *rows = NULL;
        size_t n = 0;
        assert_int_equal(dm_store_dns_current(f->st, id, &rows, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(rows[0].type, DM_RR_A); /* type order */
        assert_string_equal(rows[0].values, "[\"192.0.2.1\"]");
        assert_int_equal(rows[0].ttl, 300);
        assert_int_equal(rows[0].status, DM_RRS_OK);
        assert_null(rows[0].error);
        assert_int_equal(rows[0].checked_at, t1);
        assert_int_equal(rows[0].changed_at, t1);
        assert_int_equal(rows[1].type, DM_RR_MX);
        dm_rrset_rows_free(rows, n);

        struct dm_outbox_event *ev = claim(f->st, OWNER_A, 10, &n);
        assert_int_equal(n, 2);
        assert_string_equal(ev[0].routing_key, "change.dns.A");
        assert_string_equal(ev[1].routing_key, "change.dns.MX");
        assert_non_null(strstr(ev[0].body, "\"domain\":\"state.example\""));
        assert_true(ev[0].id < ev[1].id);
        assert_true(ev[0].created_at > 0);
        struct dm_change *cs = NULL;
        size_t nc = 0;
        struct dm_change_query q = {.domain_id = id, .limit = 10};
        assert_int_equal(dm_store_change_list(f->st, &q, &cs, &nc), 0);
        assert_int_equal(nc, 2);
        char want[128];
        snprintf(want, sizeof(want), "{\"id\":%lld,", (long long)cs[1].id);
        assert_non_null(strstr(ev[0].body, want)); /* the body saw the assigned id */
        assert_string_equal(cs[1].domain, "state.example");
        assert_null(cs[1].before);
        assert_string_equal(cs[1].after, "[\"192.0.2.1\"]");
        dm_changes_free(cs, nc);
        dm_outbox_events_free(ev, n);

        /* Unchanged fingerprint: only the check time and status move. */
        int64_t t2 = t1 + 600000;
        struct dm_dns_commit it = make_commit(id, t2, 0x11, 0x11);
        event_calls = 0;
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, test_event, &event_calls), 0);
        assert_int_equal(it.result, 0);
        assert_int_equal(event_calls, 0);
        g = get_domain(f->st, "state.example");
        assert_int_equal(g.last_checked_at, t2);
        assert_int_equal(g.last_changed_at, t1);
        assert_memory_equal(g.dns_fp, fp, DM_FP_LEN);
        assert_int_equal(count_current(f->st, id), 2);
        assert_int_equal(count_changes(f->st, id), 2);
        assert_int_equal(count_outbox(f->st), 2);

        /* A failed check is visible, and clears again. */
        it = make_commit(id, t2 + 1, 0x11, 0x11);
        it.status = DM_CHECK_ERROR;
        it.status_error = "timeout";
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, test_event, NULL), 0);
        g = get_domain(f->st, "state.example");
        assert_int_equal(g.status, DM_CHECK_ERROR);
        assert_string_equal(g.status_error, "timeout");
        it = make_commit(id, t2 + 2, 0x11, 0x11);
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, test_event, NULL), 0);
        g = get_domain(f->st, "state.example");
        assert_int_equal(g.status, DM_CHECK_OK);
        assert_string_equal(g.status_error, "");
}

static void test_dns_commit_conflict_and_replay(void **state)
{
        struct fixture *f = *state;
        int64_t id = add_domain(f->st, "cas.example", 0);
        int64_t t1 = dm_now_ms();
        commit_first_state(f->st, id, t1, 0x11);

        /* The same commit again (a redelivered task): the stored fp is no longer zero. */
        struct dm_rrset_row rows[1] = {make_row(DM_RR_A, "[\"192.0.2.1\"]")};
        struct dm_change ch[1] = {make_change(DM_RR_A, NULL, "[\"192.0.2.1\"]", t1)};
        struct dm_dns_commit it = make_commit(id, t1, 0, 0x11);
        it.rows = rows;
        it.nrows = 1;
        it.changes = ch;
        it.nchanges = 1;
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, test_event, NULL), 0);
        assert_int_equal(it.result, DM_ECONFLICT);

        /* A stale old_fp writes nothing. */
        it = make_commit(id, t1 + 10, 0x55, 0x66);
        it.rows = rows;
        it.nrows = 1;
        it.changes = ch;
        it.nchanges = 1;
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, test_event, NULL), 0);
        assert_int_equal(it.result, DM_ECONFLICT);
        struct dm_domain g = get_domain(f->st, "cas.example");
        uint8_t fp[DM_FP_LEN];
        fp_set(fp, 0x11);
        assert_memory_equal(g.dns_fp, fp, DM_FP_LEN);
        assert_int_equal(g.last_checked_at, t1);
        assert_int_equal(count_changes(f->st, id), 2);
        assert_int_equal(count_current(f->st, id), 2);
        assert_int_equal(count_outbox(f->st), 2);

        /* Gone domains, with and without a state change. */
        it = make_commit(id + 1000, t1, 0, 0x11);
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, test_event, NULL), 0);
        assert_int_equal(it.result, DM_ENOENT);
        it = make_commit(id + 1000, t1, 0x11, 0x11);
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, test_event, NULL), 0);
        assert_int_equal(it.result, DM_ENOENT);

        /* One batch, three outcomes; the good item is written. */
        int64_t id2 = add_domain(f->st, "cas2.example", 0);
        struct dm_change ch2[1] = {make_change(DM_RR_A, NULL, "[\"192.0.2.9\"]", t1 + 20)};
        struct dm_dns_commit batch[3] = {make_commit(id, t1 + 20, 0x77, 0x78),
                                         make_commit(id2, t1 + 20, 0, 0x21),
                                         make_commit(id + 1000, t1 + 20, 0x01, 0x02)};
        batch[1].rows = rows;
        batch[1].nrows = 1;
        batch[1].changes = ch2;
        batch[1].nchanges = 1;
        assert_int_equal(dm_store_dns_commit(f->st, batch, 3, test_event, NULL), 0);
        assert_int_equal(batch[0].result, DM_ECONFLICT);
        assert_int_equal(batch[1].result, 0);
        assert_int_equal(batch[2].result, DM_ENOENT);
        assert_true(ch2[0].id > 0);
        assert_int_equal(count_changes(f->st, id2), 1);
        assert_int_equal(count_outbox(f->st), 3);

        /* Replaying that batch writes nothing more. */
        for (size_t i = 0; i < 3; i++)
                batch[i].result = 12345;
        assert_int_equal(dm_store_dns_commit(f->st, batch, 3, test_event, NULL), 0);
        assert_int_equal(batch[1].result, DM_ECONFLICT);
        assert_int_equal(count_changes(f->st, id2), 1);
        assert_int_equal(count_outbox(f->st), 3);
}

/* An unchanged item is a compare-and-swap too: a result another scan overtook writes
 * nothing, and no result moves the check time back. */
static void test_dns_commit_unchanged_cas(void **state)
{
        struct fixture *f = *state;
        int64_t id = add_domain(f->st, "seen.example", 0);
        int64_t t1 = dm_now_ms();
        commit_first_state(f->st, id, t1, 0x11);
        uint8_t fp[DM_FP_LEN];
        fp_set(fp, 0x11);

        /* A stale fingerprint: DM_ECONFLICT, status and check time untouched. */
        struct dm_dns_commit it = make_commit(id, t1 + 1000, 0x22, 0x22);
        it.status = DM_CHECK_ERROR;
        it.status_error = "timeout";
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, test_event, NULL), 0);
        assert_int_equal(it.result, DM_ECONFLICT);
        struct dm_domain g = get_domain(f->st, "seen.example");
        assert_int_equal(g.status, DM_CHECK_OK);
        assert_string_equal(g.status_error, "");
        assert_int_equal(g.last_checked_at, t1);
        assert_int_equal(g.last_changed_at, t1);
        assert_memory_equal(g.dns_fp, fp, DM_FP_LEN);

        /* "No state yet" is a fingerprint like any other: stale once a state is stored. */
        it = make_commit(id, t1 + 1000, 0, 0);
        it.status = DM_CHECK_ERROR;
        it.status_error = "timeout";
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, test_event, NULL), 0);
        assert_int_equal(it.result, DM_ECONFLICT);
        g = get_domain(f->st, "seen.example");
        assert_int_equal(g.status, DM_CHECK_OK);
        assert_int_equal(g.last_checked_at, t1);

        /* The right fingerprint is written. */
        int64_t t2 = t1 + 2000;
        it = make_commit(id, t2, 0x11, 0x11);
        it.status = DM_CHECK_ERROR;
        it.status_error = "servfail";
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, test_event, NULL), 0);
        assert_int_equal(it.result, 0);
        g = get_domain(f->st, "seen.example");
        assert_int_equal(g.status, DM_CHECK_ERROR);
        assert_string_equal(g.status_error, "servfail");
        assert_int_equal(g.last_checked_at, t2);
        assert_int_equal(g.last_changed_at, t1);

        /* An older check time, unchanged or changed, never moves last_checked_at back. */
        it = make_commit(id, t1 + 500, 0x11, 0x11);
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, test_event, NULL), 0);
        assert_int_equal(it.result, 0);
        g = get_domain(f->st, "seen.example");
        assert_int_equal(g.last_checked_at, t2);
        struct dm_rrset_row rows[1] = {make_row(DM_RR_A, "[\"192.0.2.7\"]")};
        it = make_commit(id, t1 + 600, 0x11, 0x33);
        it.rows = rows;
        it.nrows = 1;
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, test_event, NULL), 0);
        assert_int_equal(it.result, 0);
        g = get_domain(f->st, "seen.example");
        assert_int_equal(g.last_checked_at, t2);
        fp_set(fp, 0x33);
        assert_memory_equal(g.dns_fp, fp, DM_FP_LEN);

        /* In one batch an item sees the fingerprint the one before it left. */
        int64_t t3 = t2 + 1000;
        struct dm_dns_commit batch[4] = {
            make_commit(id, t3, 0x33, 0x44), make_commit(id, t3 + 1, 0x33, 0x33),
            make_commit(id, t3 + 2, 0x44, 0x44), make_commit(id, t3 + 3, 0x44, 0x44)};
        batch[0].rows = rows;
        batch[0].nrows = 1;
        batch[1].status = DM_CHECK_ERROR;
        batch[1].status_error = "stale";
        batch[3].status = DM_CHECK_ERROR;
        batch[3].status_error = "refused";
        assert_int_equal(dm_store_dns_commit(f->st, batch, 4, test_event, NULL), 0);
        assert_int_equal(batch[0].result, 0);
        assert_int_equal(batch[1].result, DM_ECONFLICT);
        assert_int_equal(batch[2].result, 0);
        assert_int_equal(batch[3].result, 0);
        g = get_domain(f->st, "seen.example");
        assert_int_equal(g.status, DM_CHECK_ERROR);
        assert_string_equal(g.status_error, "refused");
        assert_int_equal(g.last_checked_at, t3 + 3);

        /* A domain never scanned takes an unchanged "no state" result. */
        int64_t id2 = add_domain(f->st, "seen2.example", 0);
        it = make_commit(id2, t1, 0x11, 0x11);
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, test_event, NULL), 0);
        assert_int_equal(it.result, DM_ECONFLICT);
        it = make_commit(id2, t1, 0, 0);
        it.status = DM_CHECK_ERROR;
        it.status_error = "timeout";
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, test_event, NULL), 0);
        assert_int_equal(it.result, 0);
        g = get_domain(f->st, "seen2.example");
        assert_int_equal(g.status, DM_CHECK_ERROR);
        assert_int_equal(g.last_checked_at, t1);
        assert_int_equal(count_changes(f->st, id), 2);
}

static void test_dns_commit_removed_types(void **state)
{
        struct fixture *f = *state;
        int64_t id = add_domain(f->st, "shrink.example", 0);
        int64_t t1 = dm_now_ms();
        commit_first_state(f->st, id, t1, 0x11);

        int64_t t2 = t1 + 1000;
        struct dm_rrset_row rows[1] = {make_row(DM_RR_A, "[\"192.0.2.2\"]")};
        struct dm_change ch[2] = {make_change(DM_RR_A, "[\"192.0.2.1\"]", "[\"192.0.2.2\"]", t2),
                                  make_change(DM_RR_MX, "[\"10 mx.example.\"]", "[]", t2)};
        struct dm_dns_commit it = make_commit(id, t2, 0x11, 0x22);
        it.rows = rows;
        it.nrows = 1;
        it.changes = ch;
        it.nchanges = 2;
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, NULL, NULL), 0);
        assert_int_equal(it.result, 0);
        assert_true(ch[0].id > 0 && ch[1].id > ch[0].id);

        struct dm_rrset_row *cur = NULL;
        size_t n = 0;
        assert_int_equal(dm_store_dns_current(f->st, id, &cur, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(cur[0].type, DM_RR_A);
        assert_string_equal(cur[0].values, "[\"192.0.2.2\"]");
        assert_int_equal(cur[0].changed_at, t2);
        dm_rrset_rows_free(cur, n);
        assert_int_equal(count_changes(f->st, id), 4);
        /* No event function: no events. */
        assert_int_equal(count_outbox(f->st), 2);
        assert_int_equal(get_domain(f->st, "shrink.example").last_changed_at, t2);

        /* A state change with no history entry (say, a TTL-only change) keeps
         * last_changed_at; an unchanged row keeps its changed_at. */
        int64_t t3 = t2 + 1000;
        struct dm_rrset_row rows3[1] = {make_row(DM_RR_A, "[\"192.0.2.2\"]")};
        rows3[0].ttl = 60;
        it = make_commit(id, t3, 0x22, 0x33);
        it.rows = rows3;
        it.nrows = 1;
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, NULL, NULL), 0);
        assert_int_equal(it.result, 0);
        assert_int_equal(get_domain(f->st, "shrink.example").last_changed_at, t2);
        assert_int_equal(dm_store_dns_current(f->st, id, &cur, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(cur[0].ttl, 60);
        assert_int_equal(cur[0].checked_at, t3);
        assert_int_equal(cur[0].changed_at, t2);
        dm_rrset_rows_free(cur, n);

        /* A failed lookup row keeps its reason. */
        struct dm_rrset_row rows4[1] = {make_row(DM_RR_A, "[]")};
        rows4[0].status = DM_RRS_ERROR;
        rows4[0].error = (char *)"SERVFAIL";
        it = make_commit(id, t3 + 1, 0x33, 0x44);
        it.rows = rows4;
        it.nrows = 1;
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, NULL, NULL), 0);
        assert_int_equal(dm_store_dns_current(f->st, id, &cur, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(cur[0].status, DM_RRS_ERROR);
        assert_string_equal(cur[0].error, "SERVFAIL");
        dm_rrset_rows_free(cur, n);
}

/* A failed lookup keeps the class of the last real answer beside its values, so that
 * NODATA, errors, then NXDOMAIN (an empty set each time) can still be told apart. */
static void test_dns_answer_status_survives_errors(void **state)
{
        struct fixture *f = *state;
        int64_t id = add_domain(f->st, "vanish.example", 0);
        int64_t t = dm_now_ms();
        uint8_t fp = 0;
        struct dm_rrset_row *cur = NULL;
        size_t n = 0;
        const enum dm_rr_status steps[] = {DM_RRS_NODATA, DM_RRS_ERROR, DM_RRS_ERROR,
                                           DM_RRS_NXDOMAIN, DM_RRS_ERROR};
        const enum dm_rr_status want[] = {DM_RRS_NODATA, DM_RRS_NODATA, DM_RRS_NODATA,
                                          DM_RRS_NXDOMAIN, DM_RRS_NXDOMAIN};

        for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
                struct dm_rrset_row row = make_row(DM_RR_MX, "[]");
                row.status = steps[i];
                /* Whatever the writer says is ignored: the store derives it. */
                row.answer_status = DM_RRS_OK;
                row.error = steps[i] == DM_RRS_ERROR ? (char *)"timed out" : NULL;
                struct dm_dns_commit it = make_commit(id, t + (int64_t)i, fp, (uint8_t)(fp + 1));
                fp++;
                it.rows = &row;
                it.nrows = 1;
                assert_int_equal(dm_store_dns_commit(f->st, &it, 1, NULL, NULL), 0);
                assert_int_equal(it.result, 0);
                assert_int_equal(dm_store_dns_current(f->st, id, &cur, &n), 0);
                assert_int_equal(n, 1);
                assert_int_equal(cur[0].status, steps[i]);
                assert_int_equal(cur[0].answer_status, want[i]);
                dm_rrset_rows_free(cur, n);
        }
}

/* What is written is what is read: value arrays, errors and event bodies come back byte
 * for byte (no JSON normalization, no re-encoding), and an absent `before` stays absent. */
static void test_values_round_trip(void **state)
{
        struct fixture *f = *state;
        static const char *const odd[] = {
            "[ \"a\" ,\"\\u00e9\",\"b\\\\c\"]",
            ("[\"b\xc3\xbc"
             "cher\",\"\\\"quoted\\\" 10 mx.\"]"),
            "[]",
        };
        int64_t id = add_domain(f->st, "exact.example", 0);
        int64_t t = dm_now_ms();
        struct dm_rrset_row rows[3] = {make_row(DM_RR_A, odd[0]), make_row(DM_RR_TXT, odd[1]),
                                       make_row(DM_RR_MX, odd[2])};
        rows[2].status = DM_RRS_ERROR;
        rows[2].error = (char *)"line one\nline \"two\" \xc3\xa9";
        struct dm_change ch[2] = {make_change(DM_RR_A, NULL, odd[0], t),
                                  make_change(DM_RR_TXT, odd[2], odd[1], t)};
        ch[1].removed = (char *)odd[0];
        struct dm_dns_commit it = make_commit(id, t, 0, 0x31);
        it.rows = rows;
        it.nrows = 3;
        it.changes = ch;
        it.nchanges = 2;
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, NULL, NULL), 0);
        assert_int_equal(it.result, 0);

        struct dm_rrset_row *cur = NULL;
        size_t n = 0;
        assert_int_equal(dm_store_dns_current(f->st, id, &cur, &n), 0);
        assert_int_equal(n, 3);
        assert_string_equal(cur[0].values, odd[0]); /* A */
        assert_string_equal(cur[1].values, odd[2]); /* MX */
        assert_string_equal(cur[1].error, rows[2].error);
        assert_string_equal(cur[2].values, odd[1]); /* TXT */
        assert_null(cur[2].error);
        dm_rrset_rows_free(cur, n);

        struct dm_change *cs = NULL;
        struct dm_change_query q = {.domain_id = id, .limit = 10};
        assert_int_equal(dm_store_change_list(f->st, &q, &cs, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(cs[0].before, odd[2]);
        assert_string_equal(cs[0].after, odd[1]);
        assert_string_equal(cs[0].added, odd[1]);
        assert_string_equal(cs[0].removed, odd[0]);
        assert_null(cs[1].before);
        assert_string_equal(cs[1].after, odd[0]);
        dm_changes_free(cs, n);

        const char *body = "{\"k\":\"\xe2\x9c\x93\",\"n\":[1, 2 ,3]}";
        assert_int_equal(dm_store_outbox_add(f->st, "domain.added", body), 0);
        struct dm_outbox_event *ev = claim(f->st, OWNER_A, 10, &n);
        assert_int_equal(n, 1);
        assert_string_equal(ev[0].body, body);
        dm_outbox_events_free(ev, n);
}

static void test_outbox(void **state)
{
        struct fixture *f = *state;
        assert_int_equal(dm_store_outbox_add(f->st, "domain.added", "{\"n\":1}"), 0);
        assert_int_equal(dm_store_outbox_add(f->st, "domain.added", "{\"n\":2}"), 0);
        assert_int_equal(dm_store_outbox_add(f->st, "domain.removed", "{\"n\":3}"), 0);
        assert_int_equal(count_outbox(f->st), 3);

        size_t n = 0, deleted = 99;
        struct dm_outbox_event *ev = claim(f->st, OWNER_A, 2, &n);
        assert_int_equal(n, 2);
        assert_string_equal(ev[0].body, "{\"n\":1}");
        assert_string_equal(ev[1].body, "{\"n\":2}");
        assert_true(ev[0].id < ev[1].id);
        int64_t ids[2] = {ev[0].id, ev[1].id};
        dm_outbox_events_free(ev, n);
        assert_int_equal(dm_store_outbox_delete(f->st, OWNER_A, ids, 2, &deleted), 0);
        assert_int_equal(deleted, 2);

        ev = claim(f->st, OWNER_A, 10, &n);
        assert_int_equal(n, 1);
        assert_string_equal(ev[0].routing_key, "domain.removed");
        assert_string_equal(ev[0].body, "{\"n\":3}");
        ids[0] = ev[0].id;
        dm_outbox_events_free(ev, n);
        /* Deleting what is already gone is fine: relays whose leases ran out may race. */
        assert_int_equal(dm_store_outbox_delete(f->st, OWNER_A, ids, 1, NULL), 0);
        assert_int_equal(dm_store_outbox_delete(f->st, OWNER_A, ids, 1, &deleted), 0);
        assert_int_equal(deleted, 0);
        assert_int_equal(count_outbox(f->st), 0);
        ev = claim(f->st, OWNER_A, 10, &n);
        assert_int_equal(n, 0);
        dm_outbox_events_free(ev, n);

        assert_int_equal(dm_store_outbox_claim(f->st, 0, LEASE_MS, 1, 1, &ev, &n), DM_EINVAL);
        assert_int_equal(dm_store_outbox_claim(f->st, OWNER_A, 0, 1, 1, &ev, &n), DM_EINVAL);
        assert_int_equal(dm_store_outbox_claim(f->st, OWNER_A, LEASE_MS, 0, 1, &ev, &n), DM_EINVAL);
        assert_int_equal(dm_store_outbox_delete(f->st, 0, ids, 1, NULL), DM_EINVAL);
        assert_int_equal(dm_store_outbox_delete(f->st, OWNER_A, NULL, 0, &deleted), 0);
        assert_int_equal(deleted, 0);
}

/* A claim holds an event for its owner until the lease ends: other owners skip it, the
 * owner itself takes it back at once, anyone takes it once the lease is over, and a delete
 * removes only what the deleting owner holds. */
static void test_outbox_claim_lease(void **state)
{
        struct fixture *f = *state;
        const int64_t t = 1700000000000;
        struct dm_outbox_event *ev = NULL;
        size_t n = 0, deleted = 0;
        for (int i = 1; i <= 3; i++) {
                char body[32];
                snprintf(body, sizeof(body), "{\"n\":%d}", i);
                assert_int_equal(dm_store_outbox_add(f->st, "domain.added", body), 0);
        }

        assert_int_equal(dm_store_outbox_claim(f->st, OWNER_A, 1000, 2, t, &ev, &n), 0);
        assert_int_equal(n, 2);
        int64_t e1 = ev[0].id, e2 = ev[1].id;
        dm_outbox_events_free(ev, n);

        /* B gets only what A does not hold, until A's lease ends. */
        assert_int_equal(dm_store_outbox_claim(f->st, OWNER_B, 5000, 10, t + 999, &ev, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(ev[0].body, "{\"n\":3}");
        int64_t e3 = ev[0].id;
        assert_true(e3 > e2);
        dm_outbox_events_free(ev, n);
        assert_int_equal(dm_store_outbox_claim(f->st, OWNER_C, 1000, 10, t + 999, &ev, &n), 0);
        assert_int_equal(n, 0);
        dm_outbox_events_free(ev, n);

        /* An owner takes back what it holds (a relay that could not publish tries again). */
        assert_int_equal(dm_store_outbox_claim(f->st, OWNER_A, 1000, 10, t + 500, &ev, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(ev[0].id, e1);
        assert_int_equal(ev[1].id, e2);
        dm_outbox_events_free(ev, n);

        /* A's second claim runs to t + 1500; at that instant the lease is over and C takes
         * both, oldest first; B's lease (to t + 5999) still holds e3. */
        assert_int_equal(dm_store_outbox_claim(f->st, OWNER_C, 1000, 10, t + 1499, &ev, &n), 0);
        assert_int_equal(n, 0);
        dm_outbox_events_free(ev, n);
        assert_int_equal(dm_store_outbox_claim(f->st, OWNER_C, 1000, 10, t + 1500, &ev, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(ev[0].id, e1);
        assert_int_equal(ev[1].id, e2);
        dm_outbox_events_free(ev, n);

        /* A lost them: its delete (after a late publish) leaves them to C. */
        int64_t ids[3] = {e1, e2, e3};
        assert_int_equal(dm_store_outbox_delete(f->st, OWNER_A, ids, 3, &deleted), 0);
        assert_int_equal(deleted, 0);
        assert_int_equal(count_outbox(f->st), 3);
        assert_int_equal(dm_store_outbox_delete(f->st, OWNER_C, ids, 3, &deleted), 0);
        assert_int_equal(deleted, 2); /* e3 is B's */
        assert_int_equal(count_outbox(f->st), 1);

        /* An event nobody claimed is not deleted either. */
        assert_int_equal(dm_store_outbox_add(f->st, "domain.added", "{\"n\":4}"), 0);
        assert_int_equal(dm_store_outbox_claim(f->st, OWNER_C, 1000, 10, t + 2000, &ev, &n), 0);
        assert_int_equal(n, 1);
        int64_t e4 = ev[0].id;
        dm_outbox_events_free(ev, n);
        int64_t mine[1] = {e4};
        assert_int_equal(dm_store_outbox_delete(f->st, OWNER_B, mine, 1, &deleted), 0);
        assert_int_equal(deleted, 0);
        assert_int_equal(dm_store_outbox_delete(f->st, OWNER_B, &e3, 1, &deleted), 0);
        assert_int_equal(deleted, 1);
        assert_int_equal(dm_store_outbox_delete(f->st, OWNER_C, mine, 1, &deleted), 0);
        assert_int_equal(deleted, 1);
        assert_int_equal(count_outbox(f->st), 0);
}

/* The domain writes add their events in their own transactions. */
static char *domain_event_body(const struct dm_domain *d, int64_t at, void *arg)
{
        int *calls = arg;
        char *body = malloc(512);
        if (!body)
                return NULL;
        (*calls)++;
        snprintf(body, 512,
                 "{\"id\":%lld,\"name\":\"%s\",\"at\":%lld,\"created\":%lld,"
                 "\"interval\":%lld,\"types\":%zu}",
                 (long long)d->id, d->name, (long long)at, (long long)d->created_at,
                 (long long)d->interval_ms, d->nrecord_types);
        return body;
}

static char *domain_event_nomem(const struct dm_domain *d, int64_t at, void *arg)
{
        (void)d;
        (void)at;
        (void)arg;
        return NULL;
}

static void test_domain_events(void **state)
{
        struct fixture *f = *state;
        struct dm_outbox_event *ev = NULL;
        size_t n = 0;
        int calls = 0;
        char want[256];

        struct dm_domain d = make_domain("ev.example", 120000);
        d.record_types[0] = DM_RR_A;
        d.nrecord_types = 1;
        assert_int_equal(dm_store_domain_insert(f->st, &d, domain_event_body, &calls), 0);
        assert_int_equal(calls, 1);
        ev = claim(f->st, OWNER_A, 10, &n);
        assert_int_equal(n, 1);
        assert_string_equal(ev[0].routing_key, DM_EVENT_DOMAIN_ADDED);
        snprintf(want, sizeof(want),
                 "{\"id\":%lld,\"name\":\"ev.example\",\"at\":%lld,\"created\":%lld,"
                 "\"interval\":120000,\"types\":1}",
                 (long long)d.id, (long long)d.created_at, (long long)d.created_at);
        assert_string_equal(ev[0].body, want); /* the domain as stored, with its id */
        int64_t first = ev[0].id;
        dm_outbox_events_free(ev, n);

        /* A name that is taken writes no event; a builder that fails writes nothing. */
        struct dm_domain dup = make_domain("ev.example", 0);
        assert_int_equal(dm_store_domain_insert(f->st, &dup, domain_event_body, &calls), DM_EEXIST);
        struct dm_domain lost = make_domain("lost.example", 0);
        assert_int_equal(dm_store_domain_insert(f->st, &lost, domain_event_nomem, NULL), DM_ENOMEM);
        assert_int_equal(dm_store_domain_get(f->st, "lost.example", &lost), DM_ENOENT);
        assert_int_equal(count_outbox(f->st), 1);

        /* An import: one event per added name, in batch order, none for the others. */
        struct dm_domain ds[4] = {make_domain("z.example", 0), make_domain("ev.example", 0),
                                  make_domain("a.example", 0), make_domain("z.example", 0)};
        int res[4];
        calls = 0;
        assert_int_equal(dm_store_domain_insert_many(f->st, ds, 4, domain_event_body, &calls, res),
                         0);
        assert_int_equal(res[0], 0);
        assert_int_equal(res[1], DM_EEXIST);
        assert_int_equal(res[2], 0);
        assert_int_equal(res[3], DM_EEXIST);
        assert_int_equal(calls, 2);
        ev = claim(f->st, OWNER_B, 10, &n);
        assert_int_equal(n, 2);
        assert_true(ev[0].id > first);
        snprintf(want, sizeof(want), "{\"id\":%lld,\"name\":\"z.example\",", (long long)ds[0].id);
        assert_true(strncmp(ev[0].body, want, strlen(want)) == 0);
        snprintf(want, sizeof(want), "{\"id\":%lld,\"name\":\"a.example\",", (long long)ds[2].id);
        assert_true(strncmp(ev[1].body, want, strlen(want)) == 0);
        assert_string_equal(ev[1].routing_key, DM_EVENT_DOMAIN_ADDED);
        dm_outbox_events_free(ev, n);
        struct dm_domain more[2] = {make_domain("m1.example", 0), make_domain("m2.example", 0)};
        assert_int_equal(dm_store_domain_insert_many(f->st, more, 2, domain_event_nomem, NULL, res),
                         DM_ENOMEM);
        assert_int_equal(dm_store_domain_get(f->st, "m1.example", &lost), DM_ENOENT);
        assert_int_equal(count_outbox(f->st), 3);

        /* A delete: the domain as it was and when it went. */
        int64_t before = dm_now_ms();
        calls = 0;
        assert_int_equal(dm_store_domain_delete(f->st, "ev.example", domain_event_body, &calls), 0);
        assert_int_equal(calls, 1);
        assert_int_equal(dm_store_domain_delete(f->st, "ev.example", domain_event_body, &calls),
                         DM_ENOENT);
        assert_int_equal(calls, 1);
        ev = claim(f->st, OWNER_C, 10, &n);
        assert_int_equal(n, 1);
        assert_string_equal(ev[0].routing_key, DM_EVENT_DOMAIN_REMOVED);
        snprintf(want, sizeof(want),
                 "{\"id\":%lld,\"name\":\"ev.example\",\"at\":", (long long)d.id);
        assert_true(strncmp(ev[0].body, want, strlen(want)) == 0);
        long long at = strtoll(ev[0].body + strlen(want), NULL, 10);
        assert_true(at >= before && at <= dm_now_ms());
        dm_outbox_events_free(ev, n);
        assert_int_equal(dm_store_domain_delete(f->st, "a.example", domain_event_nomem, NULL),
                         DM_ENOMEM);
        assert_int_equal(dm_store_domain_get(f->st, "a.example", &lost), 0); /* still there */
        assert_int_equal(count_outbox(f->st), 4);
}

/* Relays claiming at once, each deleting what it claimed: every event goes to exactly one
 * of them. */
struct relay_worker {
        pthread_t thread;
        struct dm_store *st;
        int64_t owner;
        int64_t ids[600];
        size_t n;
        int err;
};

static void *relay_worker_main(void *arg)
{
        struct relay_worker *w = arg;
        for (;;) {
                struct dm_outbox_event *ev = NULL;
                size_t n = 0, deleted = 0;
                int r = dm_store_outbox_claim(w->st, w->owner, LEASE_MS, 7, dm_now_ms(), &ev, &n);
                if (r < 0) {
                        w->err = r;
                        return NULL;
                }
                int64_t ids[7];
                for (size_t i = 0; i < n; i++) {
                        ids[i] = ev[i].id;
                        if (w->n < 600)
                                w->ids[w->n++] = ev[i].id;
                }
                dm_outbox_events_free(ev, n);
                if (n == 0)
                        return NULL;
                r = dm_store_outbox_delete(w->st, w->owner, ids, n, &deleted);
                if (r == 0 && deleted != n)
                        r = DM_ECONFLICT;
                if (r < 0) {
                        w->err = r;
                        return NULL;
                }
        }
}

static void test_outbox_claim_concurrent(void **state)
{
        struct fixture *f = *state;
        enum { N = 500, RELAYS = 4 };
        struct dm_store *stores[2] = {f->st, NULL};
        char err[256];
        assert_int_equal(dm_store_open(f->url, err, sizeof(err), &stores[1]), 0);
        for (int i = 0; i < N; i++)
                assert_int_equal(dm_store_outbox_add(f->st, "domain.added", "{}"), 0);

        struct relay_worker *w = calloc(RELAYS, sizeof(*w));
        int64_t *all = calloc(N * RELAYS, sizeof(*all));
        assert_non_null(w);
        assert_non_null(all);
        for (int i = 0; i < RELAYS; i++) {
                w[i].st = stores[i % 2]; /* two processes' worth of handles */
                w[i].owner = 1000 + i;
                assert_int_equal(pthread_create(&w[i].thread, NULL, relay_worker_main, &w[i]), 0);
        }
        size_t total = 0;
        for (int i = 0; i < RELAYS; i++)
                pthread_join(w[i].thread, NULL);
        for (int i = 0; i < RELAYS; i++) {
                assert_int_equal(w[i].err, 0);
                memcpy(all + total, w[i].ids, w[i].n * sizeof(*all));
                total += w[i].n;
        }
        assert_int_equal(total, N);
        qsort(all, total, sizeof(*all), cmp_id);
        for (size_t i = 1; i < total; i++)
                assert_true(all[i] != all[i - 1]);
        assert_int_equal(count_outbox(f->st), 0);
        free(all);
        free(w);
        dm_store_free(stores[1]);
}

static void test_change_list_filters(void **state)
{
        struct fixture *f = *state;
        int64_t a = add_domain(f->st, "a.example", 0);
        int64_t b = add_domain(f->st, "b.example", 0);
        const int64_t base = 1700000000000;
        /* 20 changes: domain a then b alternating, type A or TXT, one second apart. */
        uint8_t fp_a = 0, fp_b = 0;
        int64_t ids[20];
        for (int i = 0; i < 20; i++) {
                bool on_a = i % 2 == 0;
                uint16_t type = i % 4 < 2 ? DM_RR_A : DM_RR_TXT;
                struct dm_change ch = make_change(type, "[]", "[\"x\"]", base + i * 1000);
                uint8_t *fp = on_a ? &fp_a : &fp_b;
                struct dm_dns_commit it =
                    make_commit(on_a ? a : b, base + i * 1000, *fp, (uint8_t)(*fp + 1));
                it.changes = &ch;
                it.nchanges = 1;
                assert_int_equal(dm_store_dns_commit(f->st, &it, 1, NULL, NULL), 0);
                assert_int_equal(it.result, 0);
                (*fp)++;
                ids[i] = ch.id;
        }

        struct dm_change *cs = NULL;
        size_t n = 0;
        struct dm_change_query q = {.limit = 100};
        assert_int_equal(dm_store_change_list(f->st, &q, &cs, &n), 0);
        assert_int_equal(n, 20);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(cs[i].id, ids[19 - i]); /* newest first */
        assert_string_equal(cs[0].domain, "b.example");
        assert_string_equal(cs[1].domain, "a.example");
        assert_int_equal(cs[0].observed_at, base + 19000);
        assert_string_equal(cs[0].after, "[\"x\"]");
        dm_changes_free(cs, n);

        q.domain_id = a;
        assert_int_equal(dm_store_change_list(f->st, &q, &cs, &n), 0);
        assert_int_equal(n, 10);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(cs[i].domain_id, a);
        dm_changes_free(cs, n);

        q.type = DM_RR_TXT; /* on a: i = 2, 6, 10, 14, 18 */
        assert_int_equal(dm_store_change_list(f->st, &q, &cs, &n), 0);
        assert_int_equal(n, 5);
        assert_int_equal(cs[0].id, ids[18]);
        assert_int_equal(cs[4].id, ids[2]);
        dm_changes_free(cs, n);

        q.domain_id = 0;
        q.type = 0;
        q.since = base + 5000;
        q.until = base + 9000; /* i = 5..8 */
        assert_int_equal(dm_store_change_list(f->st, &q, &cs, &n), 0);
        assert_int_equal(n, 4);
        assert_int_equal(cs[0].id, ids[8]);
        assert_int_equal(cs[3].id, ids[5]);
        dm_changes_free(cs, n);

        /* Paging down with before_id. */
        memset(&q, 0, sizeof(q));
        q.limit = 7;
        size_t seen = 0;
        for (;;) {
                assert_int_equal(dm_store_change_list(f->st, &q, &cs, &n), 0);
                for (size_t i = 0; i < n; i++)
                        assert_int_equal(cs[i].id, ids[19 - seen - i]);
                seen += n;
                if (n)
                        q.before_id = cs[n - 1].id;
                dm_changes_free(cs, n);
                if (n < q.limit)
                        break;
        }
        assert_int_equal(seen, 20);

        q.before_id = ids[10];
        q.domain_id = b;
        q.limit = 2;
        assert_int_equal(dm_store_change_list(f->st, &q, &cs, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(cs[0].id, ids[9]);
        assert_int_equal(cs[1].id, ids[7]);
        dm_changes_free(cs, n);
}

/* A type whose lookups have only ever failed never held an answer: its row keeps
 * changed_at 0 through further failures, so that its first real answer is a first
 * observation. A failed lookup never moves changed_at of a type that did answer. */
static void test_dns_never_answered_row(void **state)
{
        struct fixture *f = *state;
        int64_t id = add_domain(f->st, "late.example", 0);
        int64_t t = dm_now_ms();
        struct dm_rrset_row *cur = NULL;
        size_t n = 0;

        for (int i = 0; i < 2; i++) {
                struct dm_rrset_row row = make_row(DM_RR_A, "[]");
                row.status = DM_RRS_ERROR;
                row.error = (char *)"DNS server failure (SERVFAIL)";
                struct dm_dns_commit it = make_commit(id, t + i, (uint8_t)i, (uint8_t)(i + 1));
                it.rows = &row;
                it.nrows = 1;
                it.status = DM_CHECK_ERROR;
                it.status_error = (char *)"A: DNS server failure (SERVFAIL)";
                assert_int_equal(dm_store_dns_commit(f->st, &it, 1, NULL, NULL), 0);
                assert_int_equal(it.result, 0);
                assert_int_equal(dm_store_dns_current(f->st, id, &cur, &n), 0);
                assert_int_equal(n, 1);
                assert_int_equal(cur[0].status, DM_RRS_ERROR);
                assert_int_equal(cur[0].changed_at, 0);
                assert_string_equal(cur[0].values, "[]");
                dm_rrset_rows_free(cur, n);
        }

        /* The first answer sets it... */
        struct dm_rrset_row ok = make_row(DM_RR_A, "[\"192.0.2.7\"]");
        ok.changed_at = t + 10;
        struct dm_dns_commit it = make_commit(id, t + 10, 2, 3);
        it.rows = &ok;
        it.nrows = 1;
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, NULL, NULL), 0);
        assert_int_equal(dm_store_dns_current(f->st, id, &cur, &n), 0);
        assert_int_equal(cur[0].changed_at, t + 10);
        dm_rrset_rows_free(cur, n);

        /* ...and a later failure, even one that names no change time, keeps it. */
        struct dm_rrset_row bad = make_row(DM_RR_A, "[\"192.0.2.7\"]");
        bad.status = DM_RRS_ERROR;
        bad.error = (char *)"timed out";
        it = make_commit(id, t + 20, 3, 4);
        it.rows = &bad;
        it.nrows = 1;
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, NULL, NULL), 0);
        assert_int_equal(dm_store_dns_current(f->st, id, &cur, &n), 0);
        assert_int_equal(cur[0].status, DM_RRS_ERROR);
        assert_int_equal(cur[0].changed_at, t + 10);
        assert_int_equal(cur[0].answer_status, DM_RRS_OK);
        dm_rrset_rows_free(cur, n);
}

/* A row or a change above DM_RRSET_JSON_MAX is refused with the item's result; nothing of
 * that item is written, and the rest of the batch is. */
static void test_dns_commit_refuses_oversized_rows(void **state)
{
        struct fixture *f = *state;
        int64_t big = add_domain(f->st, "big.example", 0);
        int64_t fine = add_domain(f->st, "fine.example", 0);
        int64_t t = dm_now_ms();
        size_t len = DM_RRSET_JSON_MAX + 1;
        char *huge = malloc(len + 1);
        assert_non_null(huge);
        memset(huge, 'x', len);
        memcpy(huge, "[\"", 2);
        memcpy(huge + len - 2, "\"]", 2);
        huge[len] = '\0';

        struct dm_rrset_row rows_big[1] = {make_row(DM_RR_TXT, huge)};
        struct dm_rrset_row rows_fine[1] = {make_row(DM_RR_TXT, "[\"\\\"ok\\\"\"]")};
        struct dm_change ch_fine[1] = {make_change(DM_RR_TXT, NULL, "[\"\\\"ok\\\"\"]", t)};
        struct dm_dns_commit batch[2] = {make_commit(big, t, 0, 0x31),
                                         make_commit(fine, t, 0, 0x32)};
        batch[0].rows = rows_big;
        batch[0].nrows = 1;
        batch[1].rows = rows_fine;
        batch[1].nrows = 1;
        batch[1].changes = ch_fine;
        batch[1].nchanges = 1;
        assert_int_equal(dm_store_dns_commit(f->st, batch, 2, test_event, NULL), 0);
        assert_int_equal(batch[0].result, DM_E2BIG);
        assert_int_equal(batch[1].result, 0);
        assert_int_equal(count_current(f->st, big), 0);
        assert_true(dm_store_fp_is_zero(get_domain(f->st, "big.example").dns_fp));
        assert_int_equal(count_current(f->st, fine), 1);
        assert_int_equal(count_changes(f->st, fine), 1);

        /* A change's set counts the same as a row. */
        struct dm_rrset_row small[1] = {make_row(DM_RR_TXT, "[]")};
        struct dm_change ch_big[1] = {make_change(DM_RR_TXT, NULL, huge, t)};
        struct dm_dns_commit it = make_commit(big, t, 0, 0x33);
        it.rows = small;
        it.nrows = 1;
        it.changes = ch_big;
        it.nchanges = 1;
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, test_event, NULL), 0);
        assert_int_equal(it.result, DM_E2BIG);
        assert_int_equal(count_changes(f->st, big), 0);
        assert_int_equal(count_outbox(f->st), 1); /* fine.example's only */

        /* At the cap exactly, it fits. */
        huge[DM_RRSET_JSON_MAX - 2] = '"';
        huge[DM_RRSET_JSON_MAX - 1] = ']';
        huge[DM_RRSET_JSON_MAX] = '\0';
        it = make_commit(big, t, 0, 0x34);
        rows_big[0].values = huge;
        it.rows = rows_big;
        it.nrows = 1;
        assert_int_equal(dm_store_dns_commit(f->st, &it, 1, NULL, NULL), 0);
        assert_int_equal(it.result, 0);
        assert_int_equal(count_current(f->st, big), 1);
        free(huge);
}

/* 12 changes of known sizes: a byte bound stops the read after the entry that passes it. */
static void test_change_list_max_bytes(void **state)
{
        struct fixture *f = *state;
        int64_t id = add_domain(f->st, "pages.example", 0);
        const int64_t base = 1700000000000;
        /* before "[]" (2) + after (13) + added (13) + removed "[]" (2): 30 bytes each. */
        for (int i = 0; i < 12; i++) {
                struct dm_change ch = make_change(DM_RR_A, "[]", "[\"192.0.2.1\"]", base + i);
                ch.removed = (char *)"[]";
                struct dm_dns_commit it = make_commit(id, base + i, (uint8_t)i, (uint8_t)(i + 1));
                it.changes = &ch;
                it.nchanges = 1;
                assert_int_equal(dm_store_dns_commit(f->st, &it, 1, NULL, NULL), 0);
                assert_int_equal(dm_change_size(&ch), 30);
        }
        struct dm_change *cs = NULL;
        size_t n = 0;
        struct dm_change_query q = {.domain_id = id, .limit = 100, .max_bytes = 100};
        assert_int_equal(dm_store_change_list(f->st, &q, &cs, &n), 0);
        assert_int_equal(n, 4); /* 120 bytes: the fourth passes 100 */
        dm_changes_free(cs, n);
        q.max_bytes = 120; /* reached, not passed: one more */
        assert_int_equal(dm_store_change_list(f->st, &q, &cs, &n), 0);
        assert_int_equal(n, 5);
        dm_changes_free(cs, n);
        q.max_bytes = 1; /* at least one */
        assert_int_equal(dm_store_change_list(f->st, &q, &cs, &n), 0);
        assert_int_equal(n, 1);
        dm_changes_free(cs, n);
        q.max_bytes = 0; /* no bound */
        q.limit = 3;
        assert_int_equal(dm_store_change_list(f->st, &q, &cs, &n), 0);
        assert_int_equal(n, 3);
        dm_changes_free(cs, n);
}

/* Retention deletes the oldest entries before the cutoff, at most `limit` a call, and
 * nothing else. */
static void test_history_prune(void **state)
{
        struct fixture *f = *state;
        int64_t a = add_domain(f->st, "old.example", 0);
        int64_t b = add_domain(f->st, "new.example", 0);
        const int64_t base = 1700000000000;
        uint8_t fp_a = 0, fp_b = 0;
        /* 10 entries: i = 0..9 at base + i s, domain a for even i, b for odd. */
        for (int i = 0; i < 10; i++) {
                bool on_a = i % 2 == 0;
                uint8_t *fp = on_a ? &fp_a : &fp_b;
                struct dm_rrset_row row = make_row(DM_RR_A, "[\"192.0.2.1\"]");
                struct dm_change ch =
                    make_change(DM_RR_A, NULL, "[\"192.0.2.1\"]", base + i * 1000);
                struct dm_dns_commit it =
                    make_commit(on_a ? a : b, base + i * 1000, *fp, (uint8_t)(*fp + 1));
                it.rows = &row;
                it.nrows = 1;
                it.changes = &ch;
                it.nchanges = 1;
                assert_int_equal(dm_store_dns_commit(f->st, &it, 1, NULL, NULL), 0);
                (*fp)++;
        }
        size_t n = 99;
        assert_int_equal(dm_store_history_prune(f->st, base, 10, &n), 0);
        assert_int_equal(n, 0); /* nothing before the first */
        /* Before base + 7 s: i = 0..6, seven entries, in batches of 3. */
        assert_int_equal(dm_store_history_prune(f->st, base + 7000, 3, &n), 0);
        assert_int_equal(n, 3);
        struct dm_change *cs = NULL;
        size_t nc = 0;
        struct dm_change_query q = {.limit = 100};
        assert_int_equal(dm_store_change_list(f->st, &q, &cs, &nc), 0);
        assert_int_equal(nc, 7);
        assert_int_equal(cs[nc - 1].observed_at, base + 3000); /* the oldest went first */
        dm_changes_free(cs, nc);
        assert_int_equal(dm_store_history_prune(f->st, base + 7000, 3, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(dm_store_history_prune(f->st, base + 7000, 3, NULL), 0);
        assert_int_equal(dm_store_history_prune(f->st, base + 7000, 3, &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(count_changes(f->st, a), 1); /* i = 8 */
        assert_int_equal(count_changes(f->st, b), 2); /* i = 7, 9 */
        /* The current state is not history. */
        assert_int_equal(count_current(f->st, a), 1);
        assert_int_equal(count_current(f->st, b), 1);

        /* TLS history goes by the same rule. */
        struct dm_tls_change old = {.port = 443, .observed_at = base + 1000, .after = "{}"},
                             recent = {.port = 443, .observed_at = base + 9000, .after = "{}"};
        struct dm_tls_commit t1 = {
            .domain_id = a, .checked_at = base + 1000, .changes = &old, .nchanges = 1};
        memset(t1.new_fp, 1, DM_FP_LEN);
        assert_int_equal(dm_store_tls_commit(f->st, &t1, 1, NULL, NULL), 0);
        assert_int_equal(t1.result, 0);
        struct dm_tls_commit t2 = {
            .domain_id = a, .checked_at = base + 9000, .changes = &recent, .nchanges = 1};
        memset(t2.old_fp, 1, DM_FP_LEN);
        memset(t2.new_fp, 2, DM_FP_LEN);
        assert_int_equal(dm_store_tls_commit(f->st, &t2, 1, NULL, NULL), 0);
        assert_int_equal(t2.result, 0);
        assert_int_equal(dm_store_history_prune(f->st, base + 7000, 3, &n), 0);
        assert_int_equal(n, 1);
        struct dm_tls_change *tcs = NULL;
        assert_int_equal(dm_store_tls_change_list(f->st, a, 0, 10, &tcs, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(tcs[0].id, recent.id);
        dm_tls_changes_free(tcs, n);
        assert_int_equal(dm_store_history_prune(f->st, base, 0, &n), DM_EINVAL);

        /* Registration history goes too, after the DNS history, within the same limit. */
        int64_t cid = 0, changed = 0;
        for (int i = 0; i < 3; i++) {
                struct dm_reg_commit rc = {.domain_id = a,
                                           .checked_at = base + i * 1000 + 1,
                                           .old_changed_at = changed,
                                           .status = 1,
                                           .source = 1,
                                           .data = "{}",
                                           .fields = "{}"};
                assert_int_equal(dm_store_reg_commit(f->st, &rc, NULL, NULL, &cid), 0);
                changed = rc.checked_at;
        }
        /* Before base + 8.5 s: DNS i = 7, 8 and the three registration entries. */
        assert_int_equal(dm_store_history_prune(f->st, base + 8500, 3, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(count_changes(f->st, a) + count_changes(f->st, b), 1);
        struct dm_reg_change *rch = NULL;
        size_t nr = 0;
        assert_int_equal(dm_store_reg_changes(f->st, a, 0, 10, &rch, &nr), 0);
        assert_int_equal(nr, 2);
        assert_int_equal(rch[1].observed_at, base + 1001); /* the oldest went first */
        dm_reg_changes_free(rch, nr);
        assert_int_equal(dm_store_history_prune(f->st, base + 8500, 3, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(dm_store_history_prune(f->st, base + 8500, 3, &n), 0);
        assert_int_equal(n, 0);
        struct dm_reg_state rs;
        assert_int_equal(dm_store_reg_get(f->st, a, &rs), 0); /* the state is not history */
        dm_reg_state_done(&rs);
}

/* The page a history response shows, from what a bounded read returned. */
static void test_changes_page(void **state)
{
        (void)state;
        struct dm_change cs[5];
        memset(cs, 0, sizeof(cs));
        for (size_t i = 0; i < 5; i++)
                cs[i].after = (char *)"[\"0123456\"]"; /* 11 bytes */
        bool more = false;

        assert_int_equal(dm_changes_page(cs, 0, 10, 0, &more), 0);
        assert_false(more);
        /* Fewer than the page, no bound: all, nothing more. */
        assert_int_equal(dm_changes_page(cs, 3, 10, 0, &more), 3);
        assert_false(more);
        /* One more than the page was read: there is a next page. */
        assert_int_equal(dm_changes_page(cs, 5, 4, 0, &more), 4);
        assert_true(more);
        /* The byte bound: no entry that takes the page past it. */
        assert_int_equal(dm_changes_page(cs, 5, 10, 40, &more), 3);
        assert_true(more);
        assert_int_equal(dm_changes_page(cs, 3, 10, 33, &more), 3);
        assert_false(more);
        /* A read that stopped on the bound ends with the entry that passed it. */
        assert_int_equal(dm_changes_page(cs, 4, 10, 40, &more), 3);
        assert_true(more);
        /* One entry larger than the bound is shown alone, and more may follow. */
        assert_int_equal(dm_changes_page(cs, 1, 10, 5, &more), 1);
        assert_true(more);
        assert_int_equal(dm_changes_page(cs, 5, 10, 5, NULL), 1);
        assert_int_equal(dm_change_size(&cs[0]), 11);
}

/* ---- concurrency ---- */

enum { WORKER_CLAIM, WORKER_READ, WORKER_WRITE };

struct worker {
        pthread_t thread;
        struct dm_store *st;
        int role;
        int64_t base;
        int seed;
        int err; /* first unexpected return code */
        char what[64];
        size_t claimed, committed, conflicts;
};

static void worker_fail(struct worker *w, const char *what, int err)
{
        if (w->err == 0) {
                w->err = err ? err : -1;
                snprintf(w->what, sizeof(w->what), "%s", what);
        }
}

static void worker_claim(struct worker *w)
{
        struct dm_scan_task tasks[25];
        struct dm_dns_commit items[25];
        struct dm_rrset_row rows[25];
        struct dm_change changes[25];
        char vals[25][32];
        for (int round = 0; round < 40 && !w->err; round++) {
                struct dm_claim_opts opts = {.now = w->base + round * 500,
                                             .limit = 25,
                                             .default_interval_ms = 1000,
                                             .min_interval_ms = 1000};
                size_t n = 0;
                int r = dm_store_claim_due(w->st, &opts, tasks, &n);
                if (r < 0) {
                        worker_fail(w, "claim", r);
                        return;
                }
                w->claimed += n;
                for (size_t i = 0; i < n; i++) {
                        snprintf(vals[i], sizeof(vals[i]), "[\"192.0.2.%d\"]", round);
                        rows[i] = make_row(DM_RR_A, vals[i]);
                        changes[i] = make_change(DM_RR_A, NULL, vals[i], opts.now);
                        items[i] = make_commit(tasks[i].domain_id, opts.now, 0, 0);
                        memcpy(items[i].old_fp, tasks[i].dns_fp, DM_FP_LEN);
                        fp_set(items[i].new_fp, (uint8_t)(w->seed * 64 + round + 1));
                        items[i].rows = &rows[i];
                        items[i].nrows = 1;
                        items[i].changes = &changes[i];
                        items[i].nchanges = 1;
                }
                r = dm_store_dns_commit(w->st, items, n, test_event, NULL);
                if (r < 0) {
                        worker_fail(w, "commit", r);
                        return;
                }
                for (size_t i = 0; i < n; i++) {
                        if (items[i].result == 0)
                                w->committed++;
                        else if (items[i].result == DM_ECONFLICT)
                                w->conflicts++;
                        else
                                worker_fail(w, "commit item", items[i].result);
                }
        }
}

static void worker_read(struct worker *w)
{
        struct dm_domain page[20];
        for (int i = 0; i < 150 && !w->err; i++) {
                struct dm_domain_query q = {.limit = 20};
                size_t n = 0;
                int r = dm_store_domain_list(w->st, &q, page, &n);
                if (r < 0 || n == 0) {
                        worker_fail(w, "domain list", r);
                        return;
                }
                struct dm_domain d;
                r = dm_store_domain_get(w->st, page[i % n].name, &d);
                if (r < 0) {
                        worker_fail(w, "domain get", r);
                        return;
                }
                struct dm_rrset_row *rows = NULL;
                r = dm_store_dns_current(w->st, d.id, &rows, &n);
                dm_rrset_rows_free(rows, r == 0 ? n : 0);
                if (r < 0) {
                        worker_fail(w, "dns current", r);
                        return;
                }
                struct dm_change_query cq = {.limit = 50};
                struct dm_change *cs = NULL;
                r = dm_store_change_list(w->st, &cq, &cs, &n);
                dm_changes_free(cs, r == 0 ? n : 0);
                if (r < 0) {
                        worker_fail(w, "change list", r);
                        return;
                }
                if (dm_store_domain_count(w->st, &n) < 0 || dm_store_ping(w->st) < 0) {
                        worker_fail(w, "count", DM_ESTORE);
                        return;
                }
        }
}

static void worker_write(struct worker *w)
{
        for (int i = 0; i < 100 && !w->err; i++) {
                char name[64];
                snprintf(name, sizeof(name), "new%d.example", i);
                struct dm_domain d = make_domain(name, 1000);
                int r = dm_store_domain_insert(w->st, &d, NULL, NULL);
                if (r < 0) {
                        worker_fail(w, "insert", r);
                        return;
                }
                snprintf(name, sizeof(name), "c%03d.example", i % 50);
                r = dm_store_domain_request_scan(w->st, name, w->base);
                if (r < 0) {
                        worker_fail(w, "request scan", r);
                        return;
                }
                struct dm_outbox_event *ev = NULL;
                size_t n = 0;
                r = dm_store_outbox_claim(w->st, OWNER_A, LEASE_MS, 10, dm_now_ms(), &ev, &n);
                if (r < 0) {
                        worker_fail(w, "outbox claim", r);
                        return;
                }
                int64_t ids[10];
                for (size_t j = 0; j < n; j++)
                        ids[j] = ev[j].id;
                dm_outbox_events_free(ev, n);
                r = dm_store_outbox_delete(w->st, OWNER_A, ids, n, NULL);
                if (r < 0) {
                        worker_fail(w, "outbox delete", r);
                        return;
                }
        }
}

static void *worker_main(void *arg)
{
        struct worker *w = arg;
        if (w->role == WORKER_CLAIM)
                worker_claim(w);
        else if (w->role == WORKER_READ)
                worker_read(w);
        else
                worker_write(w);
        return NULL;
}

static void test_concurrency(void **state)
{
        struct fixture *f = *state;
        enum { N = 200, WORKERS = 4 };
        add_domains(f->st, "c", 3, N, 1000, 0);

        int64_t base = dm_now_ms() + 1000;
        struct worker w[WORKERS];
        memset(w, 0, sizeof(w));
        const int roles[WORKERS] = {WORKER_CLAIM, WORKER_CLAIM, WORKER_READ, WORKER_WRITE};
        for (int i = 0; i < WORKERS; i++) {
                w[i].st = f->st;
                w[i].role = roles[i];
                w[i].base = base;
                w[i].seed = i;
                assert_int_equal(pthread_create(&w[i].thread, NULL, worker_main, &w[i]), 0);
        }
        size_t claimed = 0, committed = 0;
        for (int i = 0; i < WORKERS; i++) {
                pthread_join(w[i].thread, NULL);
                if (w[i].err)
                        print_error("worker %d: %s failed: %d\n", i, w[i].what, w[i].err);
                claimed += w[i].claimed;
                committed += w[i].committed;
        }
        for (int i = 0; i < WORKERS; i++)
                assert_int_equal(w[i].err, 0);
        assert_true(claimed >= N);
        assert_true(committed > 0);
        assert_int_equal(count_changes(f->st, 0), committed);
}

/* Schedulers claiming the same instant at once: every due domain exactly once. */
struct claimer {
        pthread_t thread;
        struct dm_store *st;
        int64_t now;
        int64_t ids[500];
        size_t n;
        int err;
};

static void *claimer_main(void *arg)
{
        struct claimer *c = arg;
        struct dm_claim_opts opts = {.now = c->now,
                                     .limit = 7,
                                     .default_interval_ms = TEN_MIN_MS,
                                     .min_interval_ms = MIN_MS};
        for (;;) {
                struct dm_scan_task tasks[7];
                size_t n = 0;
                int r = dm_store_claim_due(c->st, &opts, tasks, &n);
                if (r < 0) {
                        c->err = r;
                        return NULL;
                }
                if (n == 0)
                        return NULL;
                for (size_t i = 0; i < n && c->n < 500; i++)
                        c->ids[c->n++] = tasks[i].domain_id;
        }
}

/* Claims the N domains named s000.example... with CLAIMERS threads on the given store
 * handles (claimer i uses stores[i % nstores]) and checks each was claimed exactly once. */
static void claim_race(struct dm_store *st, struct dm_store **stores, size_t nstores)
{
        enum { N = 500, CLAIMERS = 4 };
        struct dm_domain *ds = calloc(N, sizeof(*ds));
        int *res = calloc(N, sizeof(*res));
        struct claimer *c = calloc(CLAIMERS, sizeof(*c));
        int64_t *all = calloc(N * CLAIMERS, sizeof(*all));
        assert_non_null(ds);
        assert_non_null(res);
        assert_non_null(c);
        assert_non_null(all);
        for (size_t i = 0; i < N; i++) {
                char name[64];
                snprintf(name, sizeof(name), "s%03zu.example", i);
                ds[i] = make_domain(name, 0);
        }
        assert_int_equal(dm_store_domain_insert_many(st, ds, N, NULL, NULL, res), 0);

        int64_t now = dm_now_ms() + 1000;
        for (int i = 0; i < CLAIMERS; i++) {
                c[i].st = stores[(size_t)i % nstores];
                c[i].now = now;
                assert_int_equal(pthread_create(&c[i].thread, NULL, claimer_main, &c[i]), 0);
        }
        size_t total = 0;
        for (int i = 0; i < CLAIMERS; i++)
                pthread_join(c[i].thread, NULL);
        for (int i = 0; i < CLAIMERS; i++) {
                assert_int_equal(c[i].err, 0);
                memcpy(all + total, c[i].ids, c[i].n * sizeof(*all));
                total += c[i].n;
        }
        assert_int_equal(total, N);
        qsort(all, total, sizeof(*all), cmp_id);
        for (size_t i = 1; i < total; i++)
                assert_true(all[i] != all[i - 1]);
        free(all);
        free(c);
        free(res);
        free(ds);
}

static void test_claim_concurrent(void **state)
{
        struct fixture *f = *state;
        claim_race(f->st, &f->st, 1);
}

/* Two handles on one database, as two scheduler processes have: still exactly once. */
static void test_claim_two_stores(void **state)
{
        struct fixture *f = *state;
        struct dm_store *stores[2] = {f->st, NULL};
        char err[256];
        assert_int_equal(dm_store_open(f->url, err, sizeof(err), &stores[1]), 0);
        claim_race(f->st, stores, 2);
        dm_store_free(stores[1]);
}

/* ---- store.c: URLs and names (not per backend) ---- */

static void test_open_urls(void **state)
{
        (void)state;
        struct dm_store *st = NULL;
        char err[256] = "";
        assert_int_equal(dm_store_open("mysql://h/db", err, sizeof(err), &st), DM_EINVAL);
        assert_non_null(strstr(err, "mysql"));
        assert_int_equal(dm_store_open("no-scheme.db", err, sizeof(err), &st), DM_EINVAL);
        assert_int_equal(dm_store_open("sqlite:relative.db", err, sizeof(err), &st), DM_EINVAL);
        assert_int_equal(dm_store_open("sqlite://", err, sizeof(err), &st), DM_EINVAL);
        assert_null(st);
#ifndef DM_HAVE_PQ
        err[0] = '\0';
        assert_int_equal(dm_store_open("postgres://u:secret@h/db", err, sizeof(err), &st),
                         DM_ENOBACKEND);
        assert_string_equal(err, "DATABASE_URL: postgres backend is not built into this binary");
        assert_int_equal(dm_store_open("PostgreSQL://h/db", err, sizeof(err), &st), DM_ENOBACKEND);
        assert_null(strstr(err, "secret"));
#else
        /* Nothing listens on port 1: refused at once, and the reason keeps the password. */
        int64_t t0 = dm_mono_ms();
        err[0] = '\0';
        assert_int_equal(dm_store_open("PostgreSQL://u:secret@127.0.0.1:1/db?connect_timeout=5",
                                       err, sizeof(err), &st),
                         DM_ESTORE);
        assert_true(dm_mono_ms() - t0 < 10000);
        assert_non_null(strstr(err, "cannot connect"));
        assert_null(strstr(err, "secret"));
        assert_int_equal(
            dm_store_open("postgres://u:secret@h/db?no_such_option=1", err, sizeof(err), &st),
            DM_EINVAL);
        assert_null(strstr(err, "secret"));
        assert_null(st);
#endif
        assert_int_equal(dm_store_open("sqlite:///nonexistent-dir/x/y.db", err, sizeof(err), &st),
                         DM_ESTORE);
        assert_non_null(strstr(err, "/nonexistent-dir/x/y.db"));
        assert_null(st);

        /* In memory: the whole store works, through one connection. */
        assert_int_equal(dm_store_open("sqlite::memory:", err, sizeof(err), &st), 0);
        assert_string_equal(dm_store_backend(st), "sqlite");
        int applied = 0;
        assert_int_equal(dm_store_migrate(st, &applied), 0);
        assert_true(applied >= 1);
        int64_t id = add_domain(st, "mem.example", 0);
        commit_first_state(st, id, dm_now_ms(), 0x11);
        assert_int_equal(count_current(st, id), 2);
        assert_int_equal(get_domain(st, "mem.example").id, id);
        dm_store_free(st);
        dm_store_free(NULL);

        /* Relative paths and the default are relative to the working directory. */
        char dir[64] = "/tmp/dm-test-store-XXXXXX";
        char cwd[4096];
        assert_non_null(mkdtemp(dir));
        assert_non_null(getcwd(cwd, sizeof(cwd)));
        assert_int_equal(chdir(dir), 0);
        const char *urls[] = {NULL, "sqlite://rel.db", "sqlite:///./dot.db"};
        const char *files[] = {"domainmon.db", "rel.db", "dot.db"};
        for (size_t i = 0; i < 3; i++) {
                st = NULL;
                assert_int_equal(dm_store_open(urls[i], err, sizeof(err), &st), 0);
                assert_int_equal(dm_store_migrate(st, NULL), 0);
                assert_int_equal(dm_store_ping(st), 0);
                dm_store_free(st);
                assert_int_equal(access(files[i], F_OK), 0);
        }
        assert_int_equal(chdir(cwd), 0);
        remove_dir(dir);
}

static void test_names(void **state)
{
        (void)state;
        enum dm_scope s = DM_SCOPE_NONE;
        assert_string_equal(dm_scope_name(DM_SCOPE_READ), "read");
        assert_string_equal(dm_scope_name(DM_SCOPE_WRITE), "write");
        assert_string_equal(dm_scope_name(DM_SCOPE_ADMIN), "admin");
        assert_int_equal(dm_scope_parse("write", &s), 0);
        assert_int_equal(s, DM_SCOPE_WRITE);
        assert_int_equal(dm_scope_parse("root", &s), DM_EINVAL);
        assert_int_equal(dm_scope_parse("", &s), DM_EINVAL);
        assert_int_equal(s, DM_SCOPE_WRITE);
        assert_string_equal(dm_check_status_name(DM_CHECK_PENDING), "pending");
        assert_string_equal(dm_check_status_name(DM_CHECK_OK), "ok");
        assert_string_equal(dm_check_status_name(DM_CHECK_ERROR), "error");
        assert_string_equal(dm_rr_status_name(DM_RRS_OK), "ok");
        assert_string_equal(dm_rr_status_name(DM_RRS_NXDOMAIN), "nxdomain");
        assert_string_equal(dm_rr_status_name(DM_RRS_NODATA), "nodata");
        assert_string_equal(dm_rr_status_name(DM_RRS_ERROR), "error");

        char key[DM_STORE_ROUTING_KEY_MAX];
        assert_string_equal(dm_store_routing_key(DM_RR_CAA, key), "change.dns.CAA");
        assert_string_equal(dm_store_routing_key(65280, key), "change.dns.TYPE65280");
        for (int i = 0; i < 100; i++) {
                char name[32];
                snprintf(name, sizeof(name), "n%d.example", i);
                int64_t p = dm_store_phase(name);
                assert_true(p >= 0 && p < ((int64_t)1 << 31));
                assert_int_equal(p, dm_store_phase(name));
        }
}

/* store.c's page-by-page request_scan_all, for backends that leave the op out. */
static void test_request_scan_all_fallback(void **state)
{
        (void)state;
        struct dm_store *st = NULL;
        char err[128];
        assert_int_equal(dm_store_open("sqlite::memory:", err, sizeof(err), &st), 0);
        assert_int_equal(dm_store_migrate(st, NULL), 0);
        enum { N = 2100 }; /* more than one page */
        struct dm_domain *ds = calloc(N, sizeof(*ds));
        int *res = calloc(N, sizeof(*res));
        assert_non_null(ds);
        assert_non_null(res);
        for (size_t i = 0; i < N; i++) {
                char name[64];
                snprintf(name, sizeof(name), "f%04zu.example", i);
                ds[i] = make_domain(name, 0);
                ds[i].enabled = i % 3 != 0;
        }
        assert_int_equal(dm_store_domain_insert_many(st, ds, N, NULL, NULL, res), 0);
        int64_t now = dm_now_ms() + 1000;
        struct dm_claim_opts opts = {
            .now = now, .limit = N, .default_interval_ms = TEN_MIN_MS, .min_interval_ms = MIN_MS};
        struct dm_scan_task *tasks = calloc(N, sizeof(*tasks));
        assert_non_null(tasks);
        size_t n = 0;
        assert_int_equal(dm_store_claim_due(st, &opts, tasks, &n), 0);
        assert_int_equal(n, N - N / 3);

        struct dm_store_ops ops = *st->ops;
        const struct dm_store_ops *saved = st->ops;
        ops.domain_request_scan_all = NULL;
        st->ops = &ops;
        assert_int_equal(dm_store_domain_request_scan_all(st, now + 5, &n), 0);
        st->ops = saved;
        assert_int_equal(n, N - N / 3);
        opts.now = now + 5;
        assert_int_equal(dm_store_claim_due(st, &opts, tasks, &n), 0);
        assert_int_equal(n, N - N / 3);
        free(tasks);
        free(res);
        free(ds);
        dm_store_free(st);
}

/* Processes starting at once migrate one fresh database together: each migration runs
 * once. (tests/unit/test_store_pg.c does the same on PostgreSQL.) */
struct migrator {
        pthread_t thread;
        const char *url;
        pthread_barrier_t *start;
        int ret;
        int applied;
};

static void *migrator_main(void *arg)
{
        struct migrator *m = arg;
        struct dm_store *st = NULL;
        char err[256];
        m->ret = dm_store_open(m->url, err, sizeof(err), &st);
        pthread_barrier_wait(m->start);
        if (m->ret == 0)
                m->ret = dm_store_migrate(st, &m->applied);
        dm_store_free(st);
        return NULL;
}

static void test_migrate_concurrent(void **state)
{
        (void)state;
        enum { MIGRATORS = 4 };
        char dir[64] = "/tmp/dm-test-store-XXXXXX", url[128];
        struct migrator m[MIGRATORS];
        pthread_barrier_t start;
        int files = 0;
        for (const struct dm_embed_file *e = dm_embed_sql_sqlite; e->name; e++)
                files++;
        assert_non_null(mkdtemp(dir));
        snprintf(url, sizeof(url), "sqlite://%s/store.db", dir);
        memset(m, 0, sizeof(m));
        assert_int_equal(pthread_barrier_init(&start, NULL, MIGRATORS), 0);
        for (int i = 0; i < MIGRATORS; i++) {
                m[i].url = url;
                m[i].start = &start;
                assert_int_equal(pthread_create(&m[i].thread, NULL, migrator_main, &m[i]), 0);
        }
        int applied = 0;
        for (int i = 0; i < MIGRATORS; i++) {
                pthread_join(m[i].thread, NULL);
                assert_int_equal(m[i].ret, 0);
                applied += m[i].applied;
        }
        pthread_barrier_destroy(&start);
        assert_int_equal(applied, files);
        remove_dir(dir);
}

static void test_bad_arguments(void **state)
{
        (void)state;
        struct dm_store *st = NULL;
        char err[128];
        assert_int_equal(dm_store_open("sqlite::memory:", err, sizeof(err), &st), 0);
        assert_int_equal(dm_store_migrate(st, NULL), 0);
        struct dm_scan_task t[1];
        size_t n;
        struct dm_claim_opts opts = {.now = 1, .limit = 1, .default_interval_ms = 0};
        assert_int_equal(dm_store_claim_due(st, &opts, t, &n), DM_EINVAL);
        opts.default_interval_ms = 1000;
        opts.limit = 0;
        assert_int_equal(dm_store_claim_due(st, &opts, t, &n), DM_EINVAL);
        struct dm_domain d = make_domain("", 0);
        assert_int_equal(dm_store_domain_insert(st, &d, NULL, NULL), DM_EINVAL);
        d = make_domain("ok.example", 0);
        d.nrecord_types = DM_RRTYPE_MAX_PER_DOMAIN + 1;
        assert_int_equal(dm_store_domain_insert(st, &d, NULL, NULL), DM_EINVAL);
        struct dm_domain_query q = {.limit = 0};
        assert_int_equal(dm_store_domain_list(st, &q, &d, &n), DM_EINVAL);
        /* A filter longer than any name finds nothing, without troubling the database. */
        char *long_q = malloc(100001);
        assert_non_null(long_q);
        memset(long_q, 'a', 100000);
        long_q[100000] = '\0';
        q.q = long_q;
        q.limit = 1;
        n = 7;
        assert_int_equal(dm_store_domain_list(st, &q, &d, &n), 0);
        assert_int_equal(n, 0);
        free(long_q);
        assert_int_equal(dm_store_ping(NULL), DM_EINVAL);
        assert_null(dm_store_backend(NULL));
        dm_store_free(st);
}

static char *reg_event(const struct dm_reg_change *ch, void *arg)
{
        char *body = NULL;
        (void)arg;
        if (asprintf(&body, "{\"id\":%lld,\"domain\":\"%s\",\"fields\":%s}", (long long)ch->id,
                     ch->domain, ch->fields) < 0)
                return NULL;
        return body;
}

static void test_registration_state_and_history(void **state)
{
        struct fixture *f = *state;
        int64_t id = add_domain(f->st, "reg.example", 0);
        int64_t other = add_domain(f->st, "other.example", 0);
        struct dm_reg_state rs;
        struct dm_reg_task tasks[8];
        size_t n = 0;
        int64_t now = dm_now_ms(), cid = -1;

        /* New domains are due at once; a claim moves them a whole interval on. */
        assert_int_equal(dm_store_reg_claim_due(f->st, now, 86400000, DM_CHECKS_ALL, 8, tasks, &n),
                         0);
        assert_int_equal(n, 2);
        assert_int_equal(dm_store_reg_claim_due(f->st, now, 86400000, DM_CHECKS_ALL, 8, tasks, &n),
                         0);
        assert_int_equal(n, 0);
        assert_int_equal(dm_store_reg_get(f->st, id, &rs), DM_ENOENT);

        /* First lookup: data and a history entry with its event. */
        struct dm_reg_commit c = {.domain_id = id,
                                  .checked_at = now,
                                  .status = 1,
                                  .source = 2,
                                  .registrable = "reg.example",
                                  .data = "{\"registrar\":\"R1\"}",
                                  .raw = "Registrar: R1\n",
                                  .expires_at = now + 1000,
                                  .fields = "{\"registrar\":{\"before\":null,\"after\":\"R1\"}}"};
        assert_int_equal(dm_store_reg_commit(f->st, &c, reg_event, NULL, &cid), 0);
        assert_true(cid > 0);
        assert_int_equal(dm_store_reg_get(f->st, id, &rs), 0);
        assert_int_equal(rs.status, 1);
        assert_int_equal(rs.source, 2);
        assert_string_equal(rs.registrable, "reg.example");
        assert_string_equal(rs.data, "{\"registrar\":\"R1\"}");
        assert_string_equal(rs.raw, "Registrar: R1\n");
        assert_null(rs.error);
        assert_int_equal(rs.changed_at, now);
        int64_t changed = rs.changed_at;
        dm_reg_state_done(&rs);
        struct dm_domain g = get_domain(f->st, "reg.example");
        assert_int_equal(g.registration_expires_at, now + 1000);
        struct dm_outbox_event *ev = claim(f->st, OWNER_A, 10, &n);
        assert_int_equal(n, 1);
        assert_string_equal(ev[0].routing_key, "change.registration");
        assert_non_null(strstr(ev[0].body, "\"domain\":\"reg.example\""));
        dm_outbox_events_free(ev, n);

        /* A failed lookup keeps the data and writes no history. */
        struct dm_reg_commit fail = {.domain_id = id,
                                     .checked_at = now + 10,
                                     .status = 3,
                                     .registrable = "reg.example",
                                     .error = "timed out"};
        assert_int_equal(dm_store_reg_commit(f->st, &fail, reg_event, NULL, &cid), 0);
        assert_int_equal(cid, 0);
        assert_int_equal(dm_store_reg_get(f->st, id, &rs), 0);
        assert_int_equal(rs.status, 3);
        assert_int_equal(rs.source, 2);
        assert_string_equal(rs.error, "timed out");
        assert_string_equal(rs.data, "{\"registrar\":\"R1\"}");
        assert_int_equal(rs.checked_at, now + 10);
        assert_int_equal(rs.changed_at, changed);
        dm_reg_state_done(&rs);
        assert_int_equal(get_domain(f->st, "reg.example").registration_expires_at, now + 1000);

        /* A commit made against an older state is refused whole. */
        struct dm_reg_commit stale = c;
        stale.checked_at = now + 20;
        stale.old_changed_at = 0;
        assert_int_equal(dm_store_reg_commit(f->st, &stale, reg_event, NULL, &cid), DM_ECONFLICT);

        /* Unchanged data: state moves, no entry; changed data: a second entry. */
        struct dm_reg_commit same = c;
        same.checked_at = now + 30;
        same.old_changed_at = changed;
        same.fields = NULL;
        assert_int_equal(dm_store_reg_commit(f->st, &same, reg_event, NULL, &cid), 0);
        assert_int_equal(dm_store_reg_get(f->st, id, &rs), 0);
        assert_int_equal(rs.status, 1);
        assert_null(rs.error);
        assert_int_equal(rs.changed_at, changed);
        dm_reg_state_done(&rs);
        struct dm_reg_commit renew = c;
        renew.checked_at = now + 40;
        renew.old_changed_at = changed;
        renew.data = "{\"registrar\":\"R2\"}";
        renew.expires_at = 0;
        renew.fields = "{\"registrar\":{\"before\":\"R1\",\"after\":\"R2\"}}";
        assert_int_equal(dm_store_reg_commit(f->st, &renew, reg_event, NULL, &cid), 0);
        assert_int_equal(get_domain(f->st, "reg.example").registration_expires_at, 0);

        struct dm_reg_change *ch = NULL;
        size_t nc = 0;
        assert_int_equal(dm_store_reg_changes(f->st, id, 0, 10, &ch, &nc), 0);
        assert_int_equal(nc, 2);
        assert_true(ch[0].id > ch[1].id);
        assert_string_equal(ch[0].domain, "reg.example");
        assert_int_equal(ch[0].observed_at, now + 40);
        assert_string_equal(ch[0].fields, renew.fields);
        int64_t older = ch[1].id;
        dm_reg_changes_free(ch, nc);
        assert_int_equal(dm_store_reg_changes(f->st, id, older + 1, 1, &ch, &nc), 0);
        assert_int_equal(nc, 1);
        assert_int_equal(ch[0].id, older);
        dm_reg_changes_free(ch, nc);
        assert_int_equal(dm_store_reg_changes(f->st, other, 0, 10, &ch, &nc), 0);
        assert_int_equal(nc, 0);
        dm_reg_changes_free(ch, nc);

        /* A requested scan and a deferral move the next registration check. */
        assert_int_equal(dm_store_domain_request_scan(f->st, "reg.example", now + 50), 0);
        assert_int_equal(
            dm_store_reg_claim_due(f->st, now + 50, 86400000, DM_CHECKS_ALL, 8, tasks, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(tasks[0].domain_id, id);
        assert_string_equal(tasks[0].name, "reg.example");
        assert_int_equal(dm_store_reg_defer(f->st, other, now + 60), 0);
        assert_int_equal(
            dm_store_reg_claim_due(f->st, now + 60, 86400000, DM_CHECKS_ALL, 8, tasks, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(tasks[0].domain_id, other);
        assert_int_equal(tasks[0].checks, 0);

        /* Changed checks make the registration check due at once (registration may have
         * just been turned on); an update of other fields does not. */
        struct dm_domain od = get_domain(f->st, "other.example");
        od.checks = DM_CHECKS_DNS | DM_CHECKS_REGISTRATION;
        assert_int_equal(dm_store_domain_update(f->st, &od, DM_DOMAIN_CHECKS), 0);
        assert_int_equal(
            dm_store_reg_claim_due(f->st, now + 70, 86400000, DM_CHECKS_ALL, 8, tasks, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(tasks[0].checks, DM_CHECKS_DNS | DM_CHECKS_REGISTRATION);
        assert_int_equal(dm_store_domain_update(f->st, &od, DM_DOMAIN_CHECKS), 0);
        od.enabled = true;
        assert_int_equal(dm_store_domain_update(f->st, &od, DM_DOMAIN_ENABLED), 0);
        assert_int_equal(
            dm_store_reg_claim_due(f->st, now + 80, 86400000, DM_CHECKS_ALL, 8, tasks, &n), 0);
        assert_int_equal(n, 0);

        /* Gone domains: ENOENT; deleting a domain takes its registration rows. */
        struct dm_reg_commit gone = fail;
        gone.domain_id = 999999999;
        assert_int_equal(dm_store_reg_commit(f->st, &gone, NULL, NULL, NULL), DM_ENOENT);
        assert_int_equal(dm_store_domain_delete(f->st, "reg.example", NULL, NULL), 0);
        assert_int_equal(dm_store_reg_get(f->st, id, &rs), DM_ENOENT);
        assert_int_equal(dm_store_reg_changes(f->st, id, 0, 10, &ch, &nc), 0);
        assert_int_equal(nc, 0);
        dm_reg_changes_free(ch, nc);

        /* Bad arguments change nothing. */
        struct dm_reg_commit bad = {.domain_id = other, .fields = "{}"};
        assert_int_equal(dm_store_reg_commit(f->st, &bad, NULL, NULL, NULL), DM_EINVAL);
        assert_int_equal(dm_store_reg_claim_due(f->st, now, 0, DM_CHECKS_ALL, 8, tasks, &n),
                         DM_EINVAL);
}

/* Domains watched without the registration check never come back from a claim: they are
 * moved on in bulk, so a claim finds the one domain that has the check behind thousands of
 * others due at the same instant, and finds them again only an interval later. */
static void test_registration_claim_skips_other_checks(void **state)
{
        struct fixture *f = *state;
        /* More than two walks of one statement. */
        add_domains(f->st, "dns", 4, 2500, 0, DM_CHECKS_DNS | DM_CHECKS_TLS);
        struct dm_domain r = make_domain("reg.example", 0);
        r.checks = DM_CHECKS_DNS | DM_CHECKS_REGISTRATION;
        assert_int_equal(dm_store_domain_insert(f->st, &r, NULL, NULL), 0);
        int64_t def1 = add_domain(f->st, "default1.example", 0); /* checks: the default */
        int64_t def2 = add_domain(f->st, "default2.example", 0);

        struct dm_reg_task tasks[8];
        size_t n = 99;
        int64_t now = dm_now_ms(), iv = 86400000;
        /* The default leaves registration out: only the domain that asks for it. */
        assert_int_equal(dm_store_reg_claim_due(f->st, now, iv, DM_CHECKS_DNS, 8, tasks, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(tasks[0].domain_id, r.id);
        assert_string_equal(tasks[0].name, "reg.example");
        assert_int_equal(tasks[0].checks, DM_CHECKS_DNS | DM_CHECKS_REGISTRATION);
        assert_int_equal(dm_store_reg_claim_due(f->st, now, iv, DM_CHECKS_ALL, 8, tasks, &n), 0);
        assert_int_equal(n, 0); /* every one was moved on, the default ones too */

        /* An interval later, with registration in the default: one at a time, in id order;
         * the ones not taken stay due. */
        int64_t later = now + iv;
        int64_t want[] = {r.id, def1, def2};
        for (size_t i = 0; i < 3; i++) {
                assert_int_equal(
                    dm_store_reg_claim_due(f->st, later, iv, DM_CHECKS_ALL, 1, tasks, &n), 0);
                assert_int_equal(n, 1);
                assert_int_equal(tasks[0].domain_id, want[i]);
        }
        assert_int_equal(dm_store_reg_claim_due(f->st, later, iv, DM_CHECKS_ALL, 8, tasks, &n), 0);
        assert_int_equal(n, 0);
}

#define CONTRACT(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
        const struct CMUnitTest contract[] = {
            CONTRACT(test_open_migrate_ping),
            CONTRACT(test_domain_crud),
            CONTRACT(test_domain_checks),
            CONTRACT(test_tls_commit),
            CONTRACT(test_domain_delete_cascade),
            CONTRACT(test_domain_delete_many_purge),
            CONTRACT(test_change_filters),
            CONTRACT(test_domain_list_status),
            CONTRACT(test_domain_list),
            CONTRACT(test_domain_insert_many),
            CONTRACT(test_keys),
            CONTRACT(test_key_insert_first),
            CONTRACT(test_sessions),
            CONTRACT(test_settings),
            CONTRACT(test_claim_due),
            CONTRACT(test_claim_spread),
            CONTRACT(test_claim_pass_takes_every_due),
            CONTRACT(test_request_scan),
            CONTRACT(test_dns_commit_first_and_unchanged),
            CONTRACT(test_dns_commit_conflict_and_replay),
            CONTRACT(test_dns_commit_unchanged_cas),
            CONTRACT(test_dns_commit_removed_types),
            CONTRACT(test_values_round_trip),
            CONTRACT(test_outbox),
            CONTRACT(test_outbox_claim_lease),
            CONTRACT(test_outbox_claim_concurrent),
            CONTRACT(test_domain_events),
            CONTRACT(test_change_list_filters),
            CONTRACT(test_claim_concurrent),
            CONTRACT(test_claim_two_stores),
            CONTRACT(test_concurrency),
            CONTRACT(test_dns_answer_status_survives_errors),
            CONTRACT(test_dns_never_answered_row),
            CONTRACT(test_dns_commit_refuses_oversized_rows),
            CONTRACT(test_change_list_max_bytes),
            CONTRACT(test_history_prune),
            CONTRACT(test_registration_state_and_history),
            CONTRACT(test_registration_claim_skips_other_checks),
        };
        const struct CMUnitTest front[] = {
            cmocka_unit_test(test_open_urls),
            cmocka_unit_test(test_names),
            cmocka_unit_test(test_request_scan_all_fallback),
            cmocka_unit_test(test_migrate_concurrent),
            cmocka_unit_test(test_bad_arguments),
            cmocka_unit_test(test_changes_page),
        };

        backends[nbackends++] = (struct backend){.label = "store contract: sqlite", .url = NULL};
        /* A PostgreSQL URL that cannot be used (backend not built, server unreachable) is
         * a failure, never a silent skip: the run was asked to test it. */
        int failed = 0;
        const char *pg = getenv("DM_TEST_PG_URL");
        if (pg && *pg) {
                struct dm_store *st = NULL;
                char err[256] = "";
                if (dm_store_open(pg, err, sizeof(err), &st) < 0) {
                        fprintf(stderr, "DM_TEST_PG_URL cannot be used: %s\n", err);
                        failed++;
                } else {
                        dm_store_free(st);
                        backends[nbackends++] =
                            (struct backend){.label = "store contract: postgres", .url = pg};
                }
        }

        failed += cmocka_run_group_tests_name("store front", front, NULL, NULL);
        for (size_t i = 0; i < nbackends; i++) {
                cur_backend = &backends[i];
                failed += cmocka_run_group_tests_name(backends[i].label, contract, NULL, NULL);
        }
        return failed;
}
