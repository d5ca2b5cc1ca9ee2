/* What only the PostgreSQL backend has to prove, beyond the contract in test_store.c:
 * migrations raced on a fresh database, connections that come back after the server drops
 * them or restarts, a pool shared by more threads than it has connections, and claims that
 * skip rows another transaction holds instead of waiting for them.
 *
 * Needs DM_TEST_PG_URL (scripts/test.sh starts a throwaway server and sets it); without it
 * the program reports itself skipped (exit 77). The restart test also needs DM_TEST_PG_DIR
 * and DM_PG_SCRIPT (scripts/pg.sh), and is skipped without them. Setting up databases and
 * dropping connections is the server administrator's part, so it is done here with libpq
 * directly; everything under test goes through the store. */
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

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEN_MIN_MS 600000
#define MIN_MS 60000

static const char *pg_url;

/* ---- administration, with libpq ---- */

static void quiet(void *arg, const char *message)
{
        (void)arg;
        (void)message;
}

static PGconn *admin_connect(void)
{
        PGconn *pq = PQconnectdb(pg_url);
        if (PQstatus(pq) != CONNECTION_OK)
                fail_msg("cannot connect to DM_TEST_PG_URL: %s", PQerrorMessage(pq));
        PQsetNoticeProcessor(pq, quiet, NULL);
        return pq;
}

static void admin_exec(PGconn *pq, const char *sql)
{
        PGresult *r = PQexec(pq, sql);
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
                fail_msg("%s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
}

static int64_t admin_count(PGconn *pq, const char *sql)
{
        PGresult *r = PQexec(pq, sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
                fail_msg("%s: %s", sql, PQresultErrorMessage(r));
        int64_t n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        return n;
}

/* DM_TEST_PG_URL with another database name (postgres://user@host:port/DB?params). */
static void url_with_db(char *out, size_t size, const char *db)
{
        const char *hosts = strstr(pg_url, "://");
        assert_non_null(hosts);
        const char *slash = strchr(hosts + 3, '/');
        const char *query = strchr(hosts + 3, '?');
        size_t head = slash   ? (size_t)(slash - pg_url)
                      : query ? (size_t)(query - pg_url)
                              : strlen(pg_url);
        snprintf(out, size, "%.*s/%s%s", (int)head, pg_url, db, query ? query : "");
}

/* DM_TEST_PG_URL with one more parameter. */
static void url_with_param(char *out, size_t size, const char *param)
{
        snprintf(out, size, "%s%c%s", pg_url, strchr(pg_url, '?') ? '&' : '?', param);
}

static struct dm_store *open_store(const char *url)
{
        struct dm_store *st = NULL;
        char err[256];
        int r = dm_store_open(url, err, sizeof(err), &st);
        if (r < 0)
                fail_msg("dm_store_open: %s", err);
        assert_int_equal(dm_store_migrate(st, NULL), 0);
        return st;
}

static struct dm_domain make_domain(const char *name)
{
        struct dm_domain d;
        memset(&d, 0, sizeof(d));
        snprintf(d.name, sizeof(d.name), "%s", name);
        d.enabled = true;
        return d;
}

/* ---- migrations raced on a fresh database ---- */

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

static void test_migrate_race(void **state)
{
        (void)state;
        enum { MIGRATORS = 6 };
        char db[64], sql[160], url[512];
        PGconn *admin = admin_connect();
        int files = 0;
        for (const struct dm_embed_file *e = dm_embed_sql_postgres; e->name; e++)
                files++;
        snprintf(db, sizeof(db), "dm_test_migrate_%ld", (long)getpid());
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", db);
        admin_exec(admin, sql);
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
        admin_exec(admin, sql);
        url_with_db(url, sizeof(url), db);

        struct migrator m[MIGRATORS];
        pthread_barrier_t start;
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

        /* Recorded once each, and the schema works. */
        struct dm_store *st = open_store(url);
        int again = -1;
        assert_int_equal(dm_store_migrate(st, &again), 0);
        assert_int_equal(again, 0);
        struct dm_domain d = make_domain("fresh.example");
        assert_int_equal(dm_store_domain_insert(st, &d, NULL, NULL), 0);
        dm_store_free(st);
        PGconn *fresh = PQconnectdb(url);
        assert_int_equal(PQstatus(fresh), CONNECTION_OK);
        assert_int_equal(admin_count(fresh, "SELECT count(*) FROM schema_migrations"), files);
        PQfinish(fresh);

        snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", db);
        admin_exec(admin, sql);
        PQfinish(admin);
}

/* ---- connections dropped by the server ---- */

/* Runs domain_count until it answers, allowing the failures a dropped connection may cost
 * (one per pooled connection, and DM_ESTORE only). */
static size_t count_until_ok(struct dm_store *st, int max_failures)
{
        size_t n = 0;
        for (int i = 0; i <= max_failures; i++) {
                int r = dm_store_domain_count(st, &n);
                if (r == 0)
                        return n;
                assert_int_equal(r, DM_ESTORE);
        }
        fail_msg("the store did not reconnect");
        return 0;
}

struct hammer {
        pthread_t thread;
        struct dm_store *st;
        atomic_bool stop;
        atomic_size_t ok, failed, other;
        int64_t longest_ms;
};

static void *hammer_main(void *arg)
{
        struct hammer *h = arg;
        while (!atomic_load(&h->stop)) {
                size_t n = 0;
                int64_t t0 = dm_mono_ms();
                int r = dm_store_domain_count(h->st, &n);
                int64_t took = dm_mono_ms() - t0;
                if (took > h->longest_ms)
                        h->longest_ms = took;
                if (r == 0)
                        atomic_fetch_add(&h->ok, 1);
                else if (r == DM_ESTORE)
                        atomic_fetch_add(&h->failed, 1);
                else
                        atomic_fetch_add(&h->other, 1);
                usleep(20000);
        }
        return NULL;
}

static void test_reconnect_after_terminate(void **state)
{
        (void)state;
        enum { THREADS = 4 };
        char app[64], param[96], url[512], sql[256];
        snprintf(app, sizeof(app), "dm_test_reconnect_%ld", (long)getpid());
        snprintf(param, sizeof(param), "application_name=%s", app);
        url_with_param(url, sizeof(url), param);
        struct dm_store *st = open_store(url);
        assert_int_equal(dm_store_wipe(st), 0);
        struct dm_domain d = make_domain("kept.example");
        assert_int_equal(dm_store_domain_insert(st, &d, NULL, NULL), 0);

        /* Every pooled connection in use once, so that all of them are dropped. */
        struct hammer h[THREADS];
        memset(h, 0, sizeof(h));
        for (int i = 0; i < THREADS; i++) {
                h[i].st = st;
                assert_int_equal(pthread_create(&h[i].thread, NULL, hammer_main, &h[i]), 0);
        }
        usleep(200000);
        for (int i = 0; i < THREADS; i++) {
                atomic_store(&h[i].stop, true);
                pthread_join(h[i].thread, NULL);
                assert_int_equal(atomic_load(&h[i].other), 0);
        }

        PGconn *admin = admin_connect();
        snprintf(sql, sizeof(sql),
                 "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                 "WHERE application_name = '%s'",
                 app);
        assert_true(admin_count(admin, sql) >= 1);
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'", app);
        for (int i = 0; i < 100 && admin_count(admin, sql) > 0; i++)
                usleep(20000);

        /* The same data through new connections; a write works too. */
        assert_int_equal(count_until_ok(st, 4), 1);
        struct dm_domain d2 = make_domain("after.example");
        int r = dm_store_domain_insert(st, &d2, NULL, NULL);
        if (r == DM_ESTORE)
                r = dm_store_domain_insert(st, &d2, NULL, NULL);
        assert_int_equal(r, 0);
        assert_int_equal(count_until_ok(st, 4), 2);
        assert_true(admin_count(admin, sql) >= 1);
        PQfinish(admin);
        dm_store_free(st);
}

/* A real restart of the server while calls keep coming: each call answers (DM_ESTORE while
 * the server is away) without hanging, and the store works again afterwards. */
static void test_server_restart(void **state)
{
        (void)state;
        const char *dir = getenv("DM_TEST_PG_DIR");
        const char *script = getenv("DM_PG_SCRIPT");
        if (!dir || !*dir || !script || !*script)
                skip();
        struct dm_store *st = open_store(pg_url);
        assert_int_equal(dm_store_wipe(st), 0);
        struct dm_domain d = make_domain("restart.example");
        assert_int_equal(dm_store_domain_insert(st, &d, NULL, NULL), 0);

        struct hammer h;
        memset(&h, 0, sizeof(h));
        h.st = st;
        assert_int_equal(pthread_create(&h.thread, NULL, hammer_main, &h), 0);
        usleep(100000);
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "'%s' restart '%s' >/dev/null", script, dir);
        int rc = system(cmd);
        assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
        size_t ok_before = atomic_load(&h.ok);
        for (int i = 0; i < 500 && atomic_load(&h.ok) == ok_before; i++)
                usleep(20000);
        atomic_store(&h.stop, true);
        pthread_join(h.thread, NULL);
        assert_true(atomic_load(&h.ok) > ok_before);
        assert_int_equal(atomic_load(&h.other), 0);
        assert_true(h.longest_ms < 15000);

        /* Writes through the same handle: claim and commit. */
        struct dm_claim_opts opts = {.now = dm_now_ms() + 1000,
                                     .limit = 10,
                                     .default_interval_ms = TEN_MIN_MS,
                                     .min_interval_ms = MIN_MS};
        struct dm_scan_task tasks[10];
        size_t n = 0;
        int r = dm_store_claim_due(st, &opts, tasks, &n);
        for (int i = 0; i < 4 && r == DM_ESTORE; i++)
                r = dm_store_claim_due(st, &opts, tasks, &n);
        assert_int_equal(r, 0);
        assert_int_equal(n, 1);
        dm_store_free(st);
}

/* ---- the pool ---- */

struct pool_user {
        pthread_t thread;
        struct dm_store *st;
        int err;
};

static void *pool_user_main(void *arg)
{
        struct pool_user *u = arg;
        for (int i = 0; i < 50 && u->err == 0; i++) {
                size_t n;
                u->err = dm_store_ping(u->st);
                if (u->err == 0)
                        u->err = dm_store_domain_count(u->st, &n);
        }
        return NULL;
}

static void test_pool_many_threads(void **state)
{
        (void)state;
        enum { THREADS = 16 };
        struct dm_store *st = open_store(pg_url);
        struct pool_user u[THREADS];
        memset(u, 0, sizeof(u));
        for (int i = 0; i < THREADS; i++) {
                u[i].st = st;
                assert_int_equal(pthread_create(&u[i].thread, NULL, pool_user_main, &u[i]), 0);
        }
        for (int i = 0; i < THREADS; i++) {
                pthread_join(u[i].thread, NULL);
                assert_int_equal(u[i].err, 0);
        }
        dm_store_free(st);
}

/* ---- claims skip what another transaction holds ---- */

static void test_claim_skips_locked(void **state)
{
        (void)state;
        struct dm_store *st = open_store(pg_url);
        assert_int_equal(dm_store_wipe(st), 0);
        struct dm_domain a = make_domain("held.example"), b = make_domain("free.example");
        assert_int_equal(dm_store_domain_insert(st, &a, NULL, NULL), 0);
        assert_int_equal(dm_store_domain_insert(st, &b, NULL, NULL), 0);

        /* Another scheduler's claim in flight, as far as the rows are concerned. */
        PGconn *admin = admin_connect();
        admin_exec(admin, "BEGIN");
        admin_exec(admin, "SELECT id FROM domains WHERE name = 'held.example' FOR UPDATE");

        /* A limit of one: the first claim comes back full, so the next one resumes after
         * free.example, finds nothing there, and goes on from the front. */
        struct dm_claim_opts opts = {.now = dm_now_ms() + 1000,
                                     .limit = 1,
                                     .default_interval_ms = TEN_MIN_MS,
                                     .min_interval_ms = MIN_MS};
        struct dm_scan_task tasks[1];
        size_t n = 0;
        int64_t t0 = dm_mono_ms();
        assert_int_equal(dm_store_claim_due(st, &opts, tasks, &n), 0);
        assert_true(dm_mono_ms() - t0 < 2000); /* did not wait for the lock */
        assert_int_equal(n, 1);
        assert_string_equal(tasks[0].name, "free.example");

        admin_exec(admin, "COMMIT");
        assert_int_equal(dm_store_claim_due(st, &opts, tasks, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(tasks[0].name, "held.example");
        PQfinish(admin);
        dm_store_free(st);
}

/* ---- the resume point is shared between processes ---- */

static void claim_names(struct dm_store *st, const struct dm_claim_opts *opts, char *out,
                        size_t size)
{
        struct dm_scan_task tasks[8];
        size_t n = 0;
        assert_true(opts->limit <= 8);
        assert_int_equal(dm_store_claim_due(st, opts, tasks, &n), 0);
        out[0] = '\0';
        for (size_t i = 0; i < n; i++)
                snprintf(out + strlen(out), size - strlen(out), "%s%s", i ? " " : "",
                         tasks[i].name);
}

static void test_claim_resumes_after_another_process(void **state)
{
        (void)state;
        struct dm_store *a = open_store(pg_url), *b = open_store(pg_url);
        assert_int_equal(dm_store_wipe(a), 0);
        for (int i = 0; i < 8; i++) {
                char name[32];
                snprintf(name, sizeof(name), "d%d.example", i);
                struct dm_domain d = make_domain(name);
                assert_int_equal(dm_store_domain_insert(a, &d, NULL, NULL), 0);
        }
        PGconn *admin = admin_connect();
        admin_exec(admin, "UPDATE domains SET next_check_at = 1000");
        struct dm_claim_opts opts = {.now = dm_now_ms() + 1000,
                                     .limit = 3,
                                     .default_interval_ms = TEN_MIN_MS,
                                     .min_interval_ms = MIN_MS};
        char got[256];
        claim_names(a, &opts, got, sizeof(got)); /* full: the shared point is after d2 */
        assert_string_equal(got, "d0.example d1.example d2.example");

        /* d1 due again, behind the point, as a row passed over would be. The other process
         * starts after d2 and comes back full without walking the front. */
        admin_exec(admin, "UPDATE domains SET next_check_at = 500 WHERE name = 'd1.example'");
        claim_names(b, &opts, got, sizeof(got));
        assert_string_equal(got, "d3.example d4.example d5.example");

        /* Short after the point: the rest comes from the front, and as that came back short
         * too, nothing else is due and the shared point is cleared. */
        opts.limit = 5;
        claim_names(a, &opts, got, sizeof(got));
        assert_string_equal(got, "d6.example d7.example d1.example");
        PGresult *r = PQexec(admin, "SELECT at_ms IS NULL FROM claim_resume");
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_int_equal(PQntuples(r), 1);
        assert_string_equal(PQgetvalue(r, 0, 0), "t");
        PQclear(r);

        /* A point ahead of the clock (set back since) is not used: a third process starts
         * from the front. */
        admin_exec(admin, "UPDATE domains SET next_check_at = 1000");
        admin_exec(admin, "UPDATE claim_resume SET at_ms = 9000000000000, domain_id = 0");
        struct dm_store *c = open_store(pg_url);
        opts.limit = 2;
        claim_names(c, &opts, got, sizeof(got));
        assert_string_equal(got, "d0.example d1.example");
        PQfinish(admin);
        dm_store_free(c);
        dm_store_free(b);
        dm_store_free(a);
}

/* ---- making every domain due while a commit holds rows ---- */

struct scan_all {
        pthread_t thread;
        struct dm_store *st;
        int64_t now;
        size_t n;
        int ret;
};

static void *scan_all_main(void *arg)
{
        struct scan_all *a = arg;
        a->ret = dm_store_domain_request_scan_all(a->st, a->now, &a->n);
        return NULL;
}

/* A commit locks its batch in id order. request_scan_all must take its rows in the same
 * order: taken in the order of the table, it would hold a later row while it waits for an
 * earlier one, and the commit, waiting for that later row, deadlocks with it. */
static void test_request_scan_all_lock_order(void **state)
{
        (void)state;
        struct dm_store *st = open_store(pg_url);
        assert_int_equal(dm_store_wipe(st), 0);
        struct dm_domain a = make_domain("first.example"), b = make_domain("second.example");
        assert_int_equal(dm_store_domain_insert(st, &a, NULL, NULL), 0);
        assert_int_equal(dm_store_domain_insert(st, &b, NULL, NULL), 0);
        assert_true(a.id < b.id);

        PGconn *admin = admin_connect();
        char sql[256];
        /* Both in the future; the lower id's new row version goes after the other's, so the
         * table's order is the reverse of the ids'. */
        admin_exec(admin, "UPDATE domains SET next_check_at = 9000000000000");
        snprintf(sql, sizeof(sql),
                 "UPDATE domains SET next_check_at = 9000000000001 WHERE id = %lld",
                 (long long)a.id);
        admin_exec(admin, sql);

        /* A commit has locked the lower id and is about to lock the higher one. */
        admin_exec(admin, "BEGIN");
        snprintf(sql, sizeof(sql), "SELECT id FROM domains WHERE id = %lld FOR UPDATE",
                 (long long)a.id);
        admin_exec(admin, sql);

        struct scan_all sa = {.st = st, .now = dm_now_ms()};
        assert_int_equal(pthread_create(&sa.thread, NULL, scan_all_main, &sa), 0);
        PGconn *watch = admin_connect();
        int64_t deadline = dm_mono_ms() + 30000;
        while (admin_count(watch,
                           "SELECT count(*) FROM pg_stat_activity WHERE "
                           "wait_event_type = 'Lock' AND query LIKE '%next_check_at%'") == 0 &&
               dm_mono_ms() < deadline)
                usleep(20000);

        snprintf(sql, sizeof(sql), "SELECT id FROM domains WHERE id = %lld FOR UPDATE",
                 (long long)b.id);
        PGresult *r = PQexec(admin, sql);
        ExecStatusType locked = PQresultStatus(r);
        PQclear(r);
        admin_exec(admin, locked == PGRES_TUPLES_OK ? "COMMIT" : "ROLLBACK");
        pthread_join(sa.thread, NULL);
        PQfinish(watch);
        PQfinish(admin);
        dm_store_free(st);

        assert_int_equal(locked, PGRES_TUPLES_OK); /* no deadlock: the second row was free */
        assert_int_equal(sa.ret, 0);
        assert_int_equal(sa.n, 2);
}

int main(void)
{
        pg_url = getenv("DM_TEST_PG_URL");
        if (!pg_url || !*pg_url) {
                fprintf(stderr, "DM_TEST_PG_URL is not set: skipped (scripts/test.sh sets it)\n");
                return 77;
        }
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_migrate_race),
            cmocka_unit_test(test_reconnect_after_terminate),
            cmocka_unit_test(test_pool_many_threads),
            cmocka_unit_test(test_claim_skips_locked),
            cmocka_unit_test(test_claim_resumes_after_another_process),
            cmocka_unit_test(test_request_scan_all_lock_order),
            cmocka_unit_test(test_server_restart),
        };
        return cmocka_run_group_tests_name("store postgres", tests, NULL, NULL);
}
