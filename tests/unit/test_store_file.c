/* lib/store/file.c: what a store URL names, the refusal to work on a database that is not
 * there, and `backup` of a SQLite store that is open and written (its WAL not yet folded
 * into the file). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "dm/error.h"
#include "dm/store.h"
#include "dm/store_file.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static int setup(void **state)
{
        (void)state;
        snprintf(dir, sizeof(dir), "/tmp/dm_test_store_file_XXXXXX");
        return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
        char cmd[128];
        (void)state;
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        return system(cmd) == 0 ? 0 : -1;
}

static void test_path_and_describe(void **state)
{
        const char *path;
        bool memory;
        char b[512];
        (void)state;

        assert_int_equal(dm_store_sqlite_path("sqlite:///var/x.db", &path, &memory), 0);
        assert_string_equal(path, "/var/x.db");
        assert_false(memory);
        assert_int_equal(dm_store_sqlite_path("sqlite:///./x.db", &path, &memory), 0);
        assert_string_equal(path, "./x.db");
        assert_int_equal(dm_store_sqlite_path("sqlite::memory:", &path, &memory), 0);
        assert_true(memory);
        assert_int_equal(dm_store_sqlite_path("sqlite:x.db", &path, &memory), DM_EINVAL);
        assert_int_equal(dm_store_sqlite_path("postgres://h/db", &path, &memory), DM_EINVAL);

        assert_string_equal(dm_store_describe("sqlite:///var/x.db", b, sizeof(b)),
                            "sqlite /var/x.db");
        assert_string_equal(
            dm_store_describe("postgres://dm:s3cret@db:5432/dm?sslmode=require", b, sizeof(b)),
            "postgres postgres://dm:****@db:5432/dm");
        assert_null(strstr(b, "s3cret"));
        assert_string_equal(dm_store_describe("postgresql://db/dm", b, sizeof(b)),
                            "postgres postgresql://db/dm");
        dm_store_describe(NULL, b, sizeof(b));
        assert_non_null(strstr(b, "sqlite /"));
        assert_non_null(strstr(b, "/domainmon.db"));
}

static void test_require_existing(void **state)
{
        char url[256], err[512];
        (void)state;
        snprintf(url, sizeof(url), "sqlite://%s/none.db", dir);
        assert_int_equal(dm_store_require_existing(url, err, sizeof(err)), DM_ENOENT);
        assert_non_null(strstr(err, "/none.db"));
        assert_non_null(strstr(err, "DATABASE_URL"));
        struct stat st;
        char path[256];
        snprintf(path, sizeof(path), "%s/none.db", dir);
        assert_int_not_equal(stat(path, &st), 0); /* nothing made */
        assert_int_equal(dm_store_require_existing("postgres://h/db", err, sizeof(err)), 0);
        assert_int_equal(dm_store_require_existing("sqlite::memory:", err, sizeof(err)), 0);
}

static int count_rows(const char *path, const char *sql)
{
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        int n = -1;
        assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        if (sqlite3_step(st) == SQLITE_ROW)
                n = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        return n;
}

static void test_backup_open_store(void **state)
{
        char url[300], err[512], dest[256], wal[300], path[200];
        struct dm_store *st = NULL;
        struct stat sb;
        int applied = 0;
        (void)state;

        snprintf(path, sizeof(path), "%s/live.db", dir);
        snprintf(url, sizeof(url), "sqlite://%s", path);
        snprintf(dest, sizeof(dest), "%s/copy.db", dir);
        snprintf(wal, sizeof(wal), "%s-wal", path);
        assert_int_equal(dm_store_open(url, err, sizeof(err), &st), 0);
        assert_int_equal(dm_store_migrate(st, &applied), 0);
        for (int i = 0; i < 25; i++) {
                struct dm_domain d;
                memset(&d, 0, sizeof(d));
                snprintf(d.name, sizeof(d.name), "n%d.example", i);
                snprintf(d.unicode_name, sizeof(d.unicode_name), "%s", d.name);
                d.enabled = true;
                assert_int_equal(dm_store_domain_insert(st, &d, NULL, NULL), 0);
        }
        /* The rows are in the WAL while the store is open: a file copy would miss them. */
        assert_int_equal(stat(wal, &sb), 0);
        assert_true(sb.st_size > 0);

        assert_int_equal(dm_store_backup(url, dest, err, sizeof(err)), 0);
        assert_int_equal(count_rows(dest, "SELECT count(*) FROM domains"), 25);
        assert_int_equal(count_rows(dest, "SELECT count(*) FROM api_keys"), 0);
        /* One self-contained file: no WAL beside the copy. */
        char destwal[300];
        snprintf(destwal, sizeof(destwal), "%s-wal", dest);
        assert_int_not_equal(stat(destwal, &sb), 0);

        /* Never over an existing file; nothing left behind on refusal. */
        assert_int_equal(dm_store_backup(url, dest, err, sizeof(err)), DM_EEXIST);
        assert_non_null(strstr(err, "already exists"));
        assert_int_equal(count_rows(dest, "SELECT count(*) FROM domains"), 25);
        dm_store_free(st);

        char none[256], dest2[256];
        snprintf(none, sizeof(none), "sqlite://%s/none.db", dir);
        snprintf(dest2, sizeof(dest2), "%s/copy2.db", dir);
        assert_int_equal(dm_store_backup(none, dest2, err, sizeof(err)), DM_ENOENT);
        assert_int_not_equal(stat(dest2, &sb), 0);
        assert_int_equal(dm_store_backup("postgres://u:pw@h/db", dest2, err, sizeof(err)),
                         DM_ENOTSUP);
        assert_non_null(strstr(err, "pg_dump"));
        assert_null(strstr(err, "pw@"));
        assert_int_equal(dm_store_backup("sqlite::memory:", dest2, err, sizeof(err)), DM_ENOTSUP);
        char baddir[300];
        snprintf(baddir, sizeof(baddir), "%s/no/such/dir/x.db", dir);
        assert_int_equal(dm_store_backup(url, baddir, err, sizeof(err)), DM_EIO);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_path_and_describe),
            cmocka_unit_test(test_require_existing),
            cmocka_unit_test(test_backup_open_store),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
