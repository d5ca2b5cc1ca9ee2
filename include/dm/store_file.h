/* What the store's URL names, outside any open store: for the start-up log, for commands
 * that must not create a database (`keys`, `scan`), and for `domainmon backup`. */
#ifndef DM_STORE_FILE_H
#define DM_STORE_FILE_H

#include <stdbool.h>
#include <stddef.h>

/* The file of a sqlite: URL, the way the SQLite backend reads it: sqlite:///abs/path.db,
 * sqlite://relative/path.db (from the working directory), sqlite::memory:. *ret_path
 * points into url. Returns 0 or DM_EINVAL (not such a URL). */
int dm_store_sqlite_path(const char *url, const char **ret_path, bool *ret_memory);

/* One line naming the database for a log: "sqlite /abs/path/domainmon.db" (relative paths
 * made absolute) or "postgres postgres://user:****@host:5432/db" (the password masked).
 * NULL or empty url: the default, domainmon.db in the working directory. Returns buf. */
const char *dm_store_describe(const char *url, char *buf, size_t size);

/* For commands that work on an existing store only: 0 when `url` names a server
 * (PostgreSQL) or a SQLite file that exists; DM_ENOENT when the SQLite file does not, with
 * a message in err naming the path looked at and how to name another. */
int dm_store_require_existing(const char *url, char *err, size_t errlen);

/* A consistent copy of the SQLite store at `url` into the new file `dest`, while services
 * may be writing it: SQLite's online backup API reads one snapshot, committed WAL content
 * included; the copy is written next to dest and renamed into place, in rollback-journal
 * mode so that the one file is the whole database. Refuses an existing dest. Returns 0,
 * DM_ENOENT (no store there), DM_EEXIST (dest exists), DM_ENOTSUP (PostgreSQL: err says
 * to use pg_dump), DM_ESTORE / DM_EIO with err. */
int dm_store_backup(const char *url, const char *dest, char *err, size_t errlen);

#endif
