/* The store's URL seen from outside an open store: which file or server it names, whether
 * it exists, and a consistent copy of a SQLite file. The SQLite backend reads its URL with
 * dm_store_sqlite_path too, so both always agree on the file. */
#include "dm/store_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "dm/error.h"
#include "dm/url.h"

#define DEFAULT_FILE "domainmon.db"
#define BACKUP_BUSY_MS 10000

int dm_store_sqlite_path(const char *url, const char **ret_path, bool *ret_memory)
{
        if (!url || strncmp(url, "sqlite:", 7) != 0)
                return DM_EINVAL;
        const char *rest = url + 7;
        if (strcmp(rest, ":memory:") == 0) {
                *ret_path = ":memory:";
                *ret_memory = true;
                return 0;
        }
        if (strncmp(rest, "//", 2) != 0 || rest[2] == '\0')
                return DM_EINVAL;
        const char *path = rest + 2;
        /* "sqlite:///./x.db" is how the working directory is often spelled; "/./x.db" as
         * an absolute path would be a file in the root directory, which nobody means. */
        if (strncmp(path, "/./", 3) == 0)
                path++;
        *ret_path = path;
        *ret_memory = false;
        return 0;
}

static const char *absolute(const char *path, char *buf, size_t size)
{
        char cwd[4096];
        if (path[0] == '/' || !getcwd(cwd, sizeof(cwd)))
                snprintf(buf, size, "%s", path);
        else
                snprintf(buf, size, "%s/%s", cwd, strncmp(path, "./", 2) == 0 ? path + 2 : path);
        return buf;
}

/* Copies url with the password of user:password@ replaced by ****. */
static void mask_url(const char *url, char *buf, size_t size)
{
        const char *auth = strstr(url, "://");
        auth = auth ? auth + 3 : url;
        size_t alen = strcspn(auth, "/?#");
        const char *at = NULL;
        for (const char *p = auth; p < auth + alen; p++) {
                if (*p == '@')
                        at = p;
        }
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (!colon)
                snprintf(buf, size, "%.*s", (int)strcspn(url, "?"), url);
        else
                snprintf(buf, size, "%.*s****%.*s", (int)(colon + 1 - url), url,
                         (int)strcspn(at, "?"), at);
}

const char *dm_store_describe(const char *url, char *buf, size_t size)
{
        const char *path;
        bool memory;
        char abs[4200], scheme[16];

        if (!url || !*url)
                url = "sqlite://" DEFAULT_FILE;
        if (dm_store_sqlite_path(url, &path, &memory) == 0) {
                snprintf(buf, size, "sqlite %s", memory ? path : absolute(path, abs, sizeof(abs)));
                return buf;
        }
        char masked[1024];
        mask_url(url, masked, sizeof(masked));
        if (dm_url_scheme(url, scheme, sizeof(scheme)) < 0)
                snprintf(scheme, sizeof(scheme), "?");
        snprintf(buf, size, "%s %s", strcmp(scheme, "postgresql") == 0 ? "postgres" : scheme,
                 masked);
        return buf;
}

int dm_store_require_existing(const char *url, char *err, size_t errlen)
{
        const char *path;
        bool memory;
        char abs[4200];
        struct stat st;

        if (!url || !*url)
                url = "sqlite://" DEFAULT_FILE;
        if (dm_store_sqlite_path(url, &path, &memory) < 0 || memory)
                return 0;
        if (stat(path, &st) == 0)
                return 0;
        return dm_errorf(DM_ENOENT, err, errlen,
                         "no database at %s: run this where the service runs (its working "
                         "directory), or name its database with DATABASE_URL=sqlite:///path/to/"
                         "domainmon.db or --database-url",
                         absolute(path, abs, sizeof(abs)));
}

int dm_store_backup(const char *url, const char *dest, char *err, size_t errlen)
{
        const char *path;
        bool memory;
        char abs[4200], tmp[4200];
        sqlite3 *src = NULL, *dst = NULL;
        struct stat st;
        int ret;

        if (!url || !*url)
                url = "sqlite://" DEFAULT_FILE;
        if (dm_store_sqlite_path(url, &path, &memory) < 0) {
                char masked[1024];
                mask_url(url, masked, sizeof(masked));
                return dm_errorf(DM_ENOTSUP, err, errlen,
                                 "the store is not SQLite: back PostgreSQL up with pg_dump, e.g. "
                                 "pg_dump -Fc -f domainmon.dump '%s' (pg_restore reads it back)",
                                 masked);
        }
        if (memory)
                return dm_errorf(DM_ENOTSUP, err, errlen,
                                 "sqlite::memory: lives in one process only; nothing to copy");
        ret = dm_store_require_existing(url, err, errlen);
        if (ret < 0)
                return ret;
        if (!dest || !*dest)
                return dm_errorf(DM_EINVAL, err, errlen, "missing FILE to write the copy to");
        if (stat(dest, &st) == 0)
                return dm_errorf(DM_EEXIST, err, errlen,
                                 "%s already exists: name a new file (nothing was written)", dest);
        if ((size_t)snprintf(tmp, sizeof(tmp), "%s.part-%ld", dest, (long)getpid()) >= sizeof(tmp))
                return dm_errorf(DM_EINVAL, err, errlen, "FILE: path too long");

        /* Read-write without create: a reader of a WAL database may have to rebuild the
         * shared-memory index, and no new database may appear here. */
        int rc = sqlite3_open_v2(path, &src, SQLITE_OPEN_READWRITE, NULL);
        if (rc != SQLITE_OK) {
                ret = dm_errorf(DM_ESTORE, err, errlen, "cannot open %s: %s",
                                absolute(path, abs, sizeof(abs)),
                                src ? sqlite3_errmsg(src) : sqlite3_errstr(rc));
                goto out;
        }
        sqlite3_busy_timeout(src, BACKUP_BUSY_MS);
        rc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
        if (rc != SQLITE_OK) {
                ret = dm_errorf(DM_EIO, err, errlen, "cannot create %s: %s", tmp,
                                dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
                goto out;
        }
        sqlite3_busy_timeout(dst, BACKUP_BUSY_MS);
        sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
        if (!b) {
                ret = dm_errorf(DM_ESTORE, err, errlen, "cannot start the copy: %s",
                                sqlite3_errmsg(dst));
                goto out_unlink;
        }
        /* All pages in one step: one read transaction, so one snapshot, however busy the
         * writers are (they append to the WAL meanwhile and are not blocked). */
        do {
                rc = sqlite3_backup_step(b, -1);
                if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
                        sqlite3_sleep(50);
        } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
        sqlite3_backup_finish(b);
        if (rc != SQLITE_DONE) {
                ret = dm_errorf(DM_ESTORE, err, errlen, "the copy failed: %s", sqlite3_errstr(rc));
                goto out_unlink;
        }
        /* One self-contained file: the copy carries the source's WAL mode in its header. */
        char *msg = NULL;
        if (sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL, &msg) != SQLITE_OK) {
                ret = dm_errorf(DM_ESTORE, err, errlen, "cannot finish the copy: %s",
                                msg ? msg : "?");
                sqlite3_free(msg);
                goto out_unlink;
        }
        if (sqlite3_close(dst) != SQLITE_OK) {
                ret = dm_errorf(DM_EIO, err, errlen, "cannot close %s", tmp);
                dst = NULL;
                goto out_unlink;
        }
        dst = NULL;
        /* link() refuses an existing name, so a FILE made meanwhile is never replaced. */
        if (link(tmp, dest) != 0) {
                ret = dm_errorf(errno == EEXIST ? DM_EEXIST : DM_EIO, err, errlen,
                                "cannot write %s: %s", dest, strerror(errno));
                goto out_unlink;
        }
        unlink(tmp);
        ret = 0;
        goto out;
out_unlink:
        sqlite3_close(dst);
        dst = NULL;
        unlink(tmp);
out:
        sqlite3_close(dst);
        sqlite3_close(src);
        return ret;
}
