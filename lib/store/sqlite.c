/* The SQLite store backend: the default, with no server behind it.
 *
 * Concurrency: one writer connection behind a mutex and a small pool of reader
 * connections. In WAL mode readers see the last committed state while a write is in
 * progress, so API reads never wait for the scanners' batch commits, and the single
 * writer means the scheduler's claim never races another claim in this process (other
 * processes are serialized by SQLite's own write lock and busy timeout). An in-memory
 * database cannot be shared between connections in WAL mode, so there every call goes
 * through the writer.
 *
 * Every statement is prepared once per connection (SQLITE_PREPARE_PERSISTENT) and kept:
 * the hot paths (claim, commit, current) then cost a bind and a step.
 *
 * Binds use SQLITE_STATIC with buffers that outlive the step and indexes fixed by the
 * SQL text, which cannot fail; their return values are not checked. */
#include "store_int.h"

#include "dm/embed.h"
#include "dm/error.h"
#include "dm/store_file.h"
#include "dm/log.h"
#include "dm/time.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQLITE_READERS 4
#define SQLITE_BUSY_TIMEOUT_MS 5000
/* Room for the longest record type list: 32 names of at most 10 bytes plus commas. */
#define SQLITE_TYPES_TEXT_MAX 512
/* synchronous = NORMAL: in WAL mode a commit survives a crash of the process, and only a
 * power loss can take back the last commits; the writer fsyncs at checkpoints, not at every
 * batch. The writer's larger cache keeps the domain and index pages of a scan cycle.
 * Checkpoints come every 65,536 WAL pages (256 MB at 4 KB pages) rather than SQLite's 1,000:
 * a scan cycle's claim and commit write the same domain pages in two transactions, and a
 * page written by many batches in one window is copied into the database and fsynced once,
 * not after every batch (at 1,000,000 domains the claimed rows are scattered over a table
 * larger than the cache, so each checkpoint was as many random writes as the batch had
 * domains). The WAL is cut back to that size after a checkpoint instead of staying at its
 * largest. */
#define SQLITE_WRITER_PRAGMAS                                                                      \
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536; "      \
        "PRAGMA wal_autocheckpoint = 65536; PRAGMA journal_size_limit = 268435456;"
#define SQLITE_READER_PRAGMAS "PRAGMA foreign_keys = ON; PRAGMA query_only = ON;"
/* Use within this window is not written again: a key used on every request must not turn
 * every request into a write. */
#define SQLITE_KEY_TOUCH_COALESCE_MS 60000

enum sqlite_stmt_id {
        STMT_BEGIN,
        STMT_COMMIT,
        STMT_ROLLBACK,
        STMT_PING,
        STMT_MIGRATION_APPLIED,
        STMT_MIGRATION_RECORD,
        STMT_DOMAIN_INSERT,
        STMT_DOMAIN_GET,
        STMT_DOMAIN_UPDATE,
        STMT_DOMAIN_DELETE,
        STMT_DOMAIN_LIST,
        STMT_DOMAIN_REQUEST_SCAN,
        STMT_DOMAIN_REQUEST_SCAN_ALL,
        STMT_DOMAIN_COUNT,
        STMT_DOMAIN_EXISTS,
        STMT_KEY_INSERT,
        STMT_KEY_GET,
        STMT_KEY_LIST,
        STMT_KEY_REVOKE,
        STMT_KEY_TOUCH,
        STMT_KEY_COUNT_ACTIVE,
        STMT_SESSION_PRUNE,
        STMT_SESSION_INSERT,
        STMT_SESSION_GET,
        STMT_SESSION_DELETE,
        STMT_SETTING_INSERT,
        STMT_SETTING_GET,
        STMT_CLAIM,
        STMT_CURRENT,
        STMT_COMMIT_SEEN,
        STMT_COMMIT_CAS,
        STMT_CURRENT_UPSERT,
        STMT_CURRENT_TYPES,
        STMT_CURRENT_DELETE,
        STMT_CHANGE_INSERT,
        STMT_OUTBOX_INSERT,
        STMT_CHANGES_ALL,
        STMT_CHANGES_DOMAIN,
        STMT_CHANGES_NAME,
        STMT_CHANGES_PURGE,
        STMT_HISTORY_PRUNE,
        STMT_OUTBOX_CLAIM,
        STMT_OUTBOX_DELETE,
        STMT_OUTBOX_COUNT,
        STMT_TLS_SEEN,
        STMT_TLS_CAS,
        STMT_TLS_DELETE,
        STMT_TLS_INSERT,
        STMT_TLS_CHANGE_INSERT,
        STMT_TLS_CURRENT,
        STMT_TLS_CHANGES,
        STMT_TLS_PRUNE,
        STMT_REG_CLAIM,
        STMT_REG_DEFER,
        STMT_REG_GET,
        STMT_REG_CHANGED_AT,
        STMT_REG_UPSERT_DATA,
        STMT_REG_UPSERT_STATUS,
        STMT_REG_EXPIRES,
        STMT_REG_CHANGE_INSERT,
        STMT_REG_CHANGES,
        STMT_REG_PRUNE,
        STMT_COUNT
};

#define DOMAIN_COLS                                                                                \
        "id, name, unicode_name, enabled, interval_ms, record_types, created_at, updated_at, "     \
        "next_check_at, last_checked_at, last_changed_at, status, status_error, dns_fp, checks, "  \
        "tls_ports, tls_fp, tls_checked_at, tls_expires_at, registration_expires_at"
#define TLS_COLS                                                                                   \
        "port, address, status, error, protocol, chain_valid, chain_error, sha256, not_after, "    \
        "cert, checked_at, changed_at"
#define KEY_COLS "id, key_id, name, scope, hash, created_at, last_used_at, revoked_at"
#define CHANGE_SELECT                                                                              \
        "SELECT c.id, c.domain_id, c.domain, c.type, c.status, c.observed_at, c.before, c.after, " \
        "c.added, c.removed, c.serial_only FROM dns_changes AS c "
#define CHANGE_FILTERS                                                                             \
        "c.id < ?2 AND (?3 = 0 OR c.type = ?3) AND (?4 = 0 OR c.observed_at >= ?4) "               \
        "AND (?5 = 0 OR c.observed_at < ?5) AND (?7 IS NULL OR c.domain = ?7) "                    \
        "AND (?8 = 0 OR c.before IS NOT NULL) AND (?9 = 0 OR NOT c.serial_only) "                  \
        "ORDER BY c.id DESC LIMIT ?6"

static const char *const sqlite_stmt_sql[STMT_COUNT] = {
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    [STMT_PING] = "SELECT 1",
    [STMT_MIGRATION_APPLIED] = "SELECT 1 FROM schema_migrations WHERE version = ?1",
    [STMT_MIGRATION_RECORD] =
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
    /* Conflicts are an answer (DM_EEXIST), not an error to log. */
    [STMT_DOMAIN_INSERT] =
        "INSERT INTO domains (name, unicode_name, enabled, interval_ms, record_types, "
        "created_at, updated_at, next_check_at, status, phase_ms, checks, tls_ports) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6, 0, ?7, ?8, ?9) ON CONFLICT (name) DO NOTHING "
        "RETURNING " DOMAIN_COLS,
    [STMT_DOMAIN_GET] = "SELECT " DOMAIN_COLS " FROM domains WHERE name = ?1",
    /* updated_at: the caller's when newer than the stored one, else now, so that a struct
     * read earlier and written back still moves it. A shorter interval takes effect now
     * rather than after the old, longer slot. */
    [STMT_DOMAIN_UPDATE] =
        "UPDATE domains SET enabled = CASE WHEN ?7 & 1 THEN ?2 ELSE enabled END, "
        "interval_ms = CASE WHEN ?7 & 2 THEN ?3 ELSE interval_ms END, "
        "record_types = CASE WHEN ?7 & 4 THEN ?4 ELSE record_types END, "
        "checks = CASE WHEN ?10 THEN ?8 ELSE checks END, "
        "registration_next_at = CASE WHEN ?10 AND checks IS NOT ?8 THEN 0 "
        "ELSE registration_next_at END, "
        "tls_ports = CASE WHEN ?11 THEN ?9 ELSE tls_ports END, "
        "updated_at = CASE WHEN ?5 > updated_at THEN ?5 ELSE ?6 END, next_check_at = CASE WHEN "
        "?7 & 2 AND ?3 > 0 AND ?3 <> interval_ms "
        "THEN min(next_check_at, ?6 + ?3) ELSE next_check_at END WHERE name = ?1",
    [STMT_DOMAIN_DELETE] = "DELETE FROM domains WHERE name = ?1 RETURNING " DOMAIN_COLS,
    [STMT_DOMAIN_LIST] = "SELECT " DOMAIN_COLS " FROM domains WHERE name > ?1 AND "
                         "(?2 IS NULL OR name LIKE ?2 ESCAPE '\\' OR "
                         "unicode_name LIKE ?2 ESCAPE '\\') AND (?4 = 0 OR (?4 >> status) & 1) "
                         "ORDER BY name LIMIT ?3",
    [STMT_DOMAIN_REQUEST_SCAN] =
        "UPDATE domains SET next_check_at = min(next_check_at, ?2), "
        "registration_next_at = min(registration_next_at, ?2) WHERE name = ?1",
    [STMT_DOMAIN_REQUEST_SCAN_ALL] =
        "UPDATE domains SET next_check_at = min(next_check_at, ?1) WHERE enabled",
    [STMT_DOMAIN_COUNT] = "SELECT count(*) FROM domains",
    [STMT_DOMAIN_EXISTS] = "SELECT 1 FROM domains WHERE id = ?1",
    [STMT_KEY_INSERT] = "INSERT INTO api_keys (key_id, name, scope, hash, created_at, "
                        "last_used_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                        "ON CONFLICT (key_id) DO NOTHING",
    [STMT_KEY_GET] = "SELECT " KEY_COLS " FROM api_keys WHERE key_id = ?1",
    [STMT_KEY_LIST] = "SELECT " KEY_COLS " FROM api_keys ORDER BY created_at DESC, id DESC",
    [STMT_KEY_REVOKE] = "UPDATE api_keys SET revoked_at = ?2 "
                        "WHERE (key_id = ?1 OR name = ?1) AND revoked_at IS NULL",
    [STMT_KEY_TOUCH] = "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1 AND "
                       "(last_used_at IS NULL OR last_used_at <= ?2 - ?3)",
    [STMT_KEY_COUNT_ACTIVE] = "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL",
    [STMT_SESSION_PRUNE] = "DELETE FROM sessions WHERE expires_at <= ?1",
    [STMT_SESSION_INSERT] = "INSERT INTO sessions (id, key_id, scope, created_at, expires_at) "
                            "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
    [STMT_SESSION_GET] =
        "SELECT id, key_id, scope, created_at, expires_at FROM sessions WHERE id = ?1",
    [STMT_SESSION_DELETE] = "DELETE FROM sessions WHERE id = ?1",
    [STMT_SETTING_INSERT] = "INSERT INTO settings (name, value, created_at) VALUES (?1, ?2, ?3) "
                            "ON CONFLICT (name) DO NOTHING",
    [STMT_SETTING_GET] = "SELECT value FROM settings WHERE name = ?1",
    /* The next slot is the first instant after now + iv/2 that is phase modulo iv:
     * t + iv - ((t - phase) mod iv) with t = now + iv/2, in (now + iv/2, now + 3iv/2]. A
     * domain claimed at its slot moves on by exactly one interval and keeps its place; one
     * claimed off its slot (new, scanned on request, late) is not due again a moment later
     * because its slot happened to be near. The mod is taken twice because SQLite's % keeps
     * the sign of a negative left side. */
    [STMT_CLAIM] = "UPDATE domains SET next_check_at = ?1 + due.iv / 2 + due.iv - "
                   "(((?1 + due.iv / 2 - phase_ms) % due.iv) + due.iv) % due.iv "
                   "FROM (SELECT id AS due_id, "
                   "max(coalesce(nullif(interval_ms, 0), ?2), ?3) AS iv FROM domains "
                   "WHERE enabled AND next_check_at <= ?1 "
                   "ORDER BY next_check_at, id LIMIT ?4) AS due "
                   "WHERE id = due.due_id RETURNING id, name, record_types, dns_fp, checks, "
                   "tls_ports, tls_fp",
    [STMT_CURRENT] = "SELECT type, status, ttl, vals, error, checked_at, changed_at, "
                     "answer_status "
                     "FROM dns_current WHERE domain_id = ?1 ORDER BY type",
    /* Both carry the compare-and-swap on the fingerprint, so a result that another scan
     * overtook writes nothing; an older check time never moves last_checked_at back. */
    [STMT_COMMIT_SEEN] = "UPDATE domains SET last_checked_at = CASE WHEN last_checked_at > ?2 "
                         "THEN last_checked_at ELSE ?2 END, status = ?3, status_error = ?4 "
                         "WHERE id = ?1 AND dns_fp IS ?5",
    [STMT_COMMIT_CAS] = "UPDATE domains SET dns_fp = ?2, last_checked_at = CASE WHEN "
                        "last_checked_at > ?4 THEN last_checked_at ELSE ?4 END, status = ?5, "
                        "status_error = ?6, last_changed_at = CASE WHEN ?7 THEN ?4 "
                        "ELSE last_changed_at END WHERE id = ?1 AND dns_fp IS ?3 RETURNING name",
    /* A row identical to the stored one is not written again (checked_at is when a row
     * was last written; the domain's last_checked_at says when it was looked at).
     * changed_at: the caller's when given, else moved only when values or status did; a
     * failed lookup (?9 is DM_RRS_ERROR) changes nothing, and a type that has only ever
     * failed keeps 0: it never held an answer. answer_status keeps the class of the last
     * real answer through failures (?10, DM_RRS_OK, before the first one). */
    [STMT_CURRENT_UPSERT] =
        "INSERT INTO dns_current (domain_id, type, status, ttl, vals, error, "
        "checked_at, changed_at, answer_status) VALUES (?1, ?2, ?3, ?4, coalesce(?5, '[]'), "
        "?6, ?7, coalesce(?8, CASE WHEN ?3 = ?9 THEN 0 ELSE ?7 END), "
        "CASE WHEN ?3 = ?9 THEN ?10 ELSE ?3 END) "
        "ON CONFLICT (domain_id, type) DO UPDATE SET "
        "answer_status = CASE WHEN excluded.status = ?9 THEN dns_current.answer_status "
        "ELSE excluded.status END, "
        "status = excluded.status, ttl = excluded.ttl, vals = excluded.vals, "
        "error = excluded.error, checked_at = excluded.checked_at, "
        "changed_at = CASE WHEN ?8 IS NOT NULL THEN ?8 "
        "WHEN excluded.status = ?9 THEN dns_current.changed_at "
        "WHEN dns_current.vals IS excluded.vals AND dns_current.status = "
        "excluded.status THEN dns_current.changed_at ELSE excluded.checked_at END "
        "WHERE dns_current.vals IS NOT excluded.vals OR dns_current.status <> excluded.status "
        "OR dns_current.ttl <> excluded.ttl OR dns_current.error IS NOT excluded.error "
        "OR (?8 IS NOT NULL AND dns_current.changed_at <> ?8)",
    /* Pruning reads the few stored types and deletes the stale ones one by one: a NOT IN
     * over a list would build a temporary table for every item of the batch. */
    [STMT_CURRENT_TYPES] = "SELECT type FROM dns_current WHERE domain_id = ?1",
    [STMT_CURRENT_DELETE] = "DELETE FROM dns_current WHERE domain_id = ?1 AND type = ?2",
    [STMT_CHANGE_INSERT] = "INSERT INTO dns_changes (domain_id, type, status, observed_at, "
                           "before, after, added, removed, domain, serial_only) VALUES (?1, ?2, "
                           "?3, ?4, ?5, coalesce(?6, '[]'), coalesce(?7, '[]'), "
                           "coalesce(?8, '[]'), ?9, ?10)",
    [STMT_OUTBOX_INSERT] = "INSERT INTO outbox (routing_key, body, created_at) VALUES (?1, ?2, ?3)",
    [STMT_CHANGES_ALL] = CHANGE_SELECT "WHERE " CHANGE_FILTERS,
    /* Its own statement so that the (domain_id, id) index drives it. */
    [STMT_CHANGES_DOMAIN] = CHANGE_SELECT "WHERE c.domain_id = ?1 AND " CHANGE_FILTERS,
    /* And this one for the (domain, id) index: a name's history across deletes. */
    [STMT_CHANGES_NAME] = CHANGE_SELECT "WHERE c.domain = ?7 AND " CHANGE_FILTERS,
    [STMT_CHANGES_PURGE] = "DELETE FROM dns_changes WHERE domain = ?1",
    /* Oldest first through the observed_at index, a bounded batch per statement. */
    [STMT_HISTORY_PRUNE] = "DELETE FROM dns_changes WHERE id IN (SELECT id FROM dns_changes "
                           "WHERE observed_at < ?1 ORDER BY observed_at, id LIMIT ?2)",
    /* One writer: the claim cannot race another claim of this database. RETURNING gives
     * the rows in no promised order; the caller sorts them. */
    [STMT_OUTBOX_CLAIM] =
        "UPDATE outbox SET claimed_by = ?1, claimed_until = ?2 + ?3 WHERE id IN (SELECT id "
        "FROM outbox WHERE claimed_until IS NULL OR claimed_until <= ?2 OR claimed_by = ?1 "
        "ORDER BY id LIMIT ?4) RETURNING id, routing_key, body, created_at",
    [STMT_OUTBOX_DELETE] = "DELETE FROM outbox WHERE id = ?1 AND claimed_by = ?2",
    [STMT_OUTBOX_COUNT] = "SELECT count(*) FROM outbox",
    /* The TLS check's compare-and-swap on tls_fp, as the DNS one on dns_fp. */
    [STMT_TLS_SEEN] = "UPDATE domains SET tls_checked_at = CASE WHEN tls_checked_at > ?2 "
                      "THEN tls_checked_at ELSE ?2 END WHERE id = ?1 AND tls_fp IS ?3",
    [STMT_TLS_CAS] = "UPDATE domains SET tls_fp = ?2, tls_checked_at = CASE WHEN "
                     "tls_checked_at > ?4 THEN tls_checked_at ELSE ?4 END, tls_expires_at = ?5 "
                     "WHERE id = ?1 AND tls_fp IS ?3 RETURNING name",
    [STMT_TLS_DELETE] = "DELETE FROM tls_current WHERE domain_id = ?1",
    [STMT_TLS_INSERT] = "INSERT INTO tls_current (domain_id, " TLS_COLS ") VALUES (?1, ?2, ?3, "
                        "?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [STMT_TLS_CHANGE_INSERT] = "INSERT INTO tls_changes (domain_id, port, address, chain_valid, "
                               "observed_at, before, after) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [STMT_TLS_PRUNE] = "DELETE FROM tls_changes WHERE id IN (SELECT id FROM tls_changes "
                       "WHERE observed_at < ?1 ORDER BY observed_at, id LIMIT ?2)",
    [STMT_TLS_CURRENT] = "SELECT " TLS_COLS " FROM tls_current WHERE domain_id = ?1 "
                         "ORDER BY port, address",
    [STMT_TLS_CHANGES] = "SELECT c.id, c.domain_id, d.name, c.port, c.address, c.chain_valid, "
                         "c.observed_at, c.before, c.after FROM tls_changes AS c JOIN domains "
                         "AS d ON d.id = c.domain_id WHERE c.domain_id = ?1 AND c.id < ?2 "
                         "ORDER BY c.id DESC LIMIT ?3",
    /* The first ?5 due domains in the index's order (registration_next_at, then the rowid,
     * which is id): those without the registration check (?4: whether a domain without
     * checks of its own has it; checks are stored in canonical form) are moved on, and the
     * first ?3 with it are claimed. The last column says which is which. */
    [STMT_REG_CLAIM] =
        "WITH due AS MATERIALIZED (SELECT id, registration_next_at AS at, CASE WHEN "
        "coalesce(checks, '') = '' THEN ?4 ELSE instr(checks, 'registration') > 0 END AS reg "
        "FROM domains WHERE enabled AND registration_next_at <= ?1 "
        "ORDER BY registration_next_at, id LIMIT ?5), "
        "take AS (SELECT id FROM due WHERE NOT reg UNION ALL "
        "SELECT id FROM (SELECT id FROM due WHERE reg ORDER BY at, id LIMIT ?3)) "
        "UPDATE domains SET registration_next_at = ?1 + ?2 WHERE id IN (SELECT id FROM take) "
        "RETURNING id, name, checks, CASE WHEN coalesce(checks, '') = '' THEN ?4 "
        "ELSE instr(checks, 'registration') > 0 END",
    [STMT_REG_DEFER] = "UPDATE domains SET registration_next_at = ?2 WHERE id = ?1",
    [STMT_REG_GET] = "SELECT status, source, registrable, error, data, raw, checked_at, "
                     "changed_at FROM registration_current WHERE domain_id = ?1",
    [STMT_REG_CHANGED_AT] = "SELECT (SELECT name FROM domains WHERE id = ?1), "
                            "(SELECT changed_at FROM registration_current WHERE domain_id = ?1)",
    [STMT_REG_UPSERT_DATA] =
        "INSERT INTO registration_current (domain_id, status, source, registrable, error, "
        "data, raw, checked_at, changed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
        "ON CONFLICT (domain_id) DO UPDATE SET status = excluded.status, "
        "source = excluded.source, registrable = excluded.registrable, error = excluded.error, "
        "data = excluded.data, raw = excluded.raw, checked_at = excluded.checked_at, "
        "changed_at = excluded.changed_at",
    /* A failed or unsupported lookup keeps the data, its source and when it changed. */
    [STMT_REG_UPSERT_STATUS] =
        "INSERT INTO registration_current (domain_id, status, source, registrable, error, "
        "checked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
        "ON CONFLICT (domain_id) DO UPDATE SET status = excluded.status, "
        "registrable = excluded.registrable, error = excluded.error, "
        "checked_at = excluded.checked_at",
    [STMT_REG_EXPIRES] = "UPDATE domains SET registration_expires_at = ?2 WHERE id = ?1",
    [STMT_REG_CHANGE_INSERT] = "INSERT INTO registration_changes (domain_id, observed_at, "
                               "fields) VALUES (?1, ?2, ?3)",
    /* Registration history is small (an entry per renewal or transfer): no time index. */
    [STMT_REG_PRUNE] = "DELETE FROM registration_changes WHERE id IN (SELECT id FROM "
                       "registration_changes WHERE observed_at < ?1 ORDER BY observed_at, id "
                       "LIMIT ?2)",
    [STMT_REG_CHANGES] = "SELECT c.id, c.domain_id, d.name, c.observed_at, c.fields FROM "
                         "registration_changes AS c JOIN domains AS d ON d.id = c.domain_id "
                         "WHERE c.domain_id = ?1 AND c.id < ?2 ORDER BY c.id DESC LIMIT ?3",
};

struct sqlite_conn {
        sqlite3 *db;
        sqlite3_stmt *stmts[STMT_COUNT]; /* prepared on first use */
};

struct sqlite_store {
        struct dm_store base;
        char *path;

        pthread_mutex_t write_lock; /* guards writer */
        struct sqlite_conn writer;

        pthread_mutex_t read_lock; /* guards free_readers and nfree */
        pthread_cond_t read_cond;
        struct sqlite_conn readers[SQLITE_READERS];
        size_t nreaders; /* 0: reads go through the writer */
        struct sqlite_conn *free_readers[SQLITE_READERS];
        size_t nfree;
};

static struct sqlite_store *sqlite_of(struct dm_store *st)
{
        return (struct sqlite_store *)st;
}

/* Maps a failed call's result code; anything that is not an answer in its own right is
 * logged here, once, with SQLite's message. */
static int sqlite_error(struct sqlite_conn *c, int rc, const char *what)
{
        switch (rc & 0xff) {
        case SQLITE_NOMEM:
                return DM_ENOMEM;
        case SQLITE_CONSTRAINT:
                if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
                        return DM_EEXIST;
                break;
        default:
                break;
        }
        char msg[256];
        dm_log_error("store", "msg=\"sqlite call failed\" op=%s code=%d err=%s", what, rc,
                     dm_log_quote(msg, sizeof(msg), sqlite3_errmsg(c->db)));
        return DM_ESTORE;
}

static int stmt_get(struct sqlite_conn *c, enum sqlite_stmt_id id, sqlite3_stmt **ret_stmt)
{
        if (!c->stmts[id]) {
                int rc = sqlite3_prepare_v3(c->db, sqlite_stmt_sql[id], -1,
                                            SQLITE_PREPARE_PERSISTENT, &c->stmts[id], NULL);
                if (rc != SQLITE_OK) {
                        c->stmts[id] = NULL;
                        return sqlite_error(c, rc, "prepare");
                }
        }
        *ret_stmt = c->stmts[id];
        return 0;
}

/* Ends a statement's run so that it holds no snapshot and no stale bindings. */
static void stmt_reset(sqlite3_stmt *stmt)
{
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
}

/* Steps a statement that returns no rows to completion and resets it. */
static int stmt_run(struct sqlite_conn *c, sqlite3_stmt *stmt, const char *what)
{
        int rc = sqlite3_step(stmt);
        int ret = rc == SQLITE_DONE ? 0 : sqlite_error(c, rc, what);
        stmt_reset(stmt);
        return ret;
}

/* Runs the cached statement `id` with no parameters. */
static int stmt_run_id(struct sqlite_conn *c, enum sqlite_stmt_id id, const char *what)
{
        sqlite3_stmt *stmt = NULL;
        int ret = stmt_get(c, id, &stmt);
        if (ret < 0)
                return ret;
        return stmt_run(c, stmt, what);
}

/* IMMEDIATE takes the write lock up front: a deferred transaction that later needs it can
 * fail with SQLITE_BUSY without waiting when another process writes. */
static int tx_begin(struct sqlite_conn *c)
{
        return stmt_run_id(c, STMT_BEGIN, "begin");
}

static int tx_commit(struct sqlite_conn *c)
{
        return stmt_run_id(c, STMT_COMMIT, "commit");
}

static void tx_rollback(struct sqlite_conn *c)
{
        /* SQLite may already have rolled back on its own (e.g. after SQLITE_FULL). */
        if (!sqlite3_get_autocommit(c->db))
                (void)stmt_run_id(c, STMT_ROLLBACK, "rollback");
}

/* Statements that step a single count(*) row. */
static int stmt_count(struct sqlite_conn *c, sqlite3_stmt *stmt, const char *what, size_t *ret_n)
{
        int rc = sqlite3_step(stmt);
        if (rc != SQLITE_ROW) {
                int ret = sqlite_error(c, rc, what);
                stmt_reset(stmt);
                return ret;
        }
        int64_t n = sqlite3_column_int64(stmt, 0);
        stmt_reset(stmt);
        *ret_n = n > 0 ? (size_t)n : 0;
        return 0;
}

static struct sqlite_conn *write_begin(struct sqlite_store *s)
{
        pthread_mutex_lock(&s->write_lock);
        return &s->writer;
}

static void write_end(struct sqlite_store *s)
{
        pthread_mutex_unlock(&s->write_lock);
}

static struct sqlite_conn *read_begin(struct sqlite_store *s)
{
        if (s->nreaders == 0)
                return write_begin(s);
        pthread_mutex_lock(&s->read_lock);
        while (s->nfree == 0)
                pthread_cond_wait(&s->read_cond, &s->read_lock);
        struct sqlite_conn *c = s->free_readers[--s->nfree];
        pthread_mutex_unlock(&s->read_lock);
        return c;
}

static void read_end(struct sqlite_store *s, struct sqlite_conn *c)
{
        if (s->nreaders == 0) {
                write_end(s);
                return;
        }
        pthread_mutex_lock(&s->read_lock);
        s->free_readers[s->nfree++] = c;
        pthread_cond_signal(&s->read_cond);
        pthread_mutex_unlock(&s->read_lock);
}

static int64_t clamp_limit(size_t limit)
{
        return limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)limit;
}

/* Unset times are NULL in the database and 0 in the structs. */
static void bind_time(sqlite3_stmt *stmt, int i, int64_t t)
{
        if (t)
                sqlite3_bind_int64(stmt, i, t);
        else
                sqlite3_bind_null(stmt, i);
}

static void bind_text(sqlite3_stmt *stmt, int i, const char *s)
{
        if (s)
                sqlite3_bind_text(stmt, i, s, -1, SQLITE_STATIC);
        else
                sqlite3_bind_null(stmt, i);
}

/* "No state" is NULL, so that `dns_fp IS ?` matches it. */
static void bind_fp(sqlite3_stmt *stmt, int i, const uint8_t fp[DM_FP_LEN])
{
        if (dm_store_fp_is_zero(fp))
                sqlite3_bind_null(stmt, i);
        else
                sqlite3_bind_blob(stmt, i, fp, DM_FP_LEN, SQLITE_STATIC);
}

static void col_copy(sqlite3_stmt *stmt, int col, char *dst, size_t size)
{
        const char *s = (const char *)sqlite3_column_text(stmt, col);
        size_t len = s ? (size_t)sqlite3_column_bytes(stmt, col) : 0;
        if (len >= size)
                len = size - 1;
        if (len)
                memcpy(dst, s, len);
        dst[len] = '\0';
}

/* NULL stays NULL. */
static int col_strdup(sqlite3_stmt *stmt, int col, char **ret_s)
{
        if (sqlite3_column_type(stmt, col) == SQLITE_NULL) {
                *ret_s = NULL;
                return 0;
        }
        const char *s = (const char *)sqlite3_column_text(stmt, col);
        if (!s)
                return DM_ENOMEM;
        char *copy = strndup(s, (size_t)sqlite3_column_bytes(stmt, col));
        if (!copy)
                return DM_ENOMEM;
        *ret_s = copy;
        return 0;
}

static void col_fp(sqlite3_stmt *stmt, int col, uint8_t fp[DM_FP_LEN])
{
        const void *b = sqlite3_column_blob(stmt, col);
        if (b && sqlite3_column_bytes(stmt, col) == DM_FP_LEN)
                memcpy(fp, b, DM_FP_LEN);
        else
                memset(fp, 0, DM_FP_LEN);
}

static void col_types(sqlite3_stmt *stmt, int col, int64_t domain_id, uint16_t *types,
                      size_t *ret_n)
{
        const char *s = (const char *)sqlite3_column_text(stmt, col);
        dm_store_types_from_text(s, domain_id, types, ret_n);
}

static void domain_from_row(sqlite3_stmt *stmt, struct dm_domain *d)
{
        memset(d, 0, sizeof(*d));
        d->id = sqlite3_column_int64(stmt, 0);
        col_copy(stmt, 1, d->name, sizeof(d->name));
        col_copy(stmt, 2, d->unicode_name, sizeof(d->unicode_name));
        d->enabled = sqlite3_column_int(stmt, 3) != 0;
        d->interval_ms = sqlite3_column_int64(stmt, 4);
        col_types(stmt, 5, d->id, d->record_types, &d->nrecord_types);
        d->created_at = sqlite3_column_int64(stmt, 6);
        d->updated_at = sqlite3_column_int64(stmt, 7);
        d->next_check_at = sqlite3_column_int64(stmt, 8);
        d->last_checked_at = sqlite3_column_int64(stmt, 9);
        d->last_changed_at = sqlite3_column_int64(stmt, 10);
        d->status = (enum dm_check_status)sqlite3_column_int(stmt, 11);
        col_copy(stmt, 12, d->status_error, sizeof(d->status_error));
        col_fp(stmt, 13, d->dns_fp);
        d->checks = dm_store_checks_from_text((const char *)sqlite3_column_text(stmt, 14), d->id);
        dm_store_ports_from_text((const char *)sqlite3_column_text(stmt, 15), d->id, d->tls_ports,
                                 &d->ntls_ports);
        col_fp(stmt, 16, d->tls_fp);
        d->tls_checked_at = sqlite3_column_int64(stmt, 17);
        d->tls_expires_at = sqlite3_column_int64(stmt, 18);
        d->registration_expires_at = sqlite3_column_int64(stmt, 19);
}

static void key_from_row(sqlite3_stmt *stmt, struct dm_api_key *k)
{
        memset(k, 0, sizeof(*k));
        k->id = sqlite3_column_int64(stmt, 0);
        col_copy(stmt, 1, k->key_id, sizeof(k->key_id));
        col_copy(stmt, 2, k->name, sizeof(k->name));
        const char *scope = (const char *)sqlite3_column_text(stmt, 3);
        if (dm_scope_parse(scope, &k->scope) < 0)
                k->scope = DM_SCOPE_NONE; /* grants nothing */
        const void *hash = sqlite3_column_blob(stmt, 4);
        if (hash && sqlite3_column_bytes(stmt, 4) == (int)sizeof(k->hash))
                memcpy(k->hash, hash, sizeof(k->hash));
        k->created_at = sqlite3_column_int64(stmt, 5);
        k->last_used_at = sqlite3_column_int64(stmt, 6);
        k->revoked_at = sqlite3_column_int64(stmt, 7);
}

/* Makes room for one more element. */
static int array_reserve(void **items, size_t *cap, size_t n, size_t size)
{
        if (n < *cap)
                return 0;
        size_t ncap = *cap ? *cap * 2 : 16;
        void *p = reallocarray(*items, ncap, size);
        if (!p)
                return DM_ENOMEM;
        *items = p;
        *cap = ncap;
        return 0;
}

/* ---- open, close, migrate ---- */

/* Runs one or more statements that return nothing worth keeping. */
static int conn_exec(struct sqlite_conn *c, const char *sql)
{
        char *msg = NULL;
        int rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
                char q[256];
                dm_log_error("store", "msg=\"sqlite exec failed\" err=%s",
                             dm_log_quote(q, sizeof(q), msg ? msg : sqlite3_errstr(rc)));
                sqlite3_free(msg);
                return DM_ESTORE;
        }
        return 0;
}

static void conn_close(struct sqlite_conn *c)
{
        for (size_t i = 0; i < STMT_COUNT; i++) {
                sqlite3_finalize(c->stmts[i]);
                c->stmts[i] = NULL;
        }
        sqlite3_close(c->db);
        c->db = NULL;
}

static int conn_open(struct sqlite_conn *c, const char *path, bool reader, char *err, size_t errlen)
{
        /* NOMUTEX: each connection is used by one thread at a time under our own locks. */
        int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
        int rc = sqlite3_open_v2(path, &c->db, flags, NULL);
        if (rc != SQLITE_OK) {
                dm_errorf(0, err, errlen, "DATABASE_URL: cannot open %s: %s", path,
                          c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
                goto fail_close;
        }
        sqlite3_extended_result_codes(c->db, 1);
        sqlite3_busy_timeout(c->db, SQLITE_BUSY_TIMEOUT_MS);
        if (conn_exec(c, reader ? SQLITE_READER_PRAGMAS : SQLITE_WRITER_PRAGMAS) < 0) {
                dm_errorf(0, err, errlen, "DATABASE_URL: cannot set up %s: %s", path,
                          sqlite3_errmsg(c->db));
                goto fail_close;
        }
        return 0;

fail_close:
        sqlite3_close(c->db);
        c->db = NULL;
        return DM_ESTORE;
}

/* WAL is a property of the file: set once by the writer before any reader opens it. */
static int conn_enable_wal(struct sqlite_conn *c, const char *path, char *err, size_t errlen)
{
        sqlite3_stmt *stmt = NULL;
        int rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &stmt, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(stmt);
        if (rc != SQLITE_ROW) {
                dm_errorf(0, err, errlen, "DATABASE_URL: cannot open %s: %s", path,
                          sqlite3_errmsg(c->db));
                sqlite3_finalize(stmt);
                return DM_ESTORE;
        }
        const char *mode = (const char *)sqlite3_column_text(stmt, 0);
        if (!mode || strcmp(mode, "wal") != 0) {
                /* Still correct (readers then wait on writers), only slower. */
                char q[64];
                dm_log_warn("store",
                            "msg=\"WAL not available, readers will wait for writers\" "
                            "journal_mode=%s",
                            dm_log_quote(q, sizeof(q), mode ? mode : ""));
        }
        sqlite3_finalize(stmt);
        return 0;
}

/* sqlite:///abs/path.db, sqlite://relative/path.db, sqlite::memory: (read by
 * dm_store_sqlite_path, which `backup` and the start-up log use too). */
static int sqlite_parse_url(const char *url, char *err, size_t errlen, const char **ret_path,
                            bool *ret_memory)
{
        if (dm_store_sqlite_path(url, ret_path, ret_memory) < 0) {
                dm_errorf(0, err, errlen,
                          "DATABASE_URL: expected sqlite:///absolute/path.db, "
                          "sqlite://relative/path.db or sqlite::memory:");
                return DM_EINVAL;
        }
        return 0;
}

static void sqlite_free(struct dm_store *st)
{
        struct sqlite_store *s = sqlite_of(st);
        if (!s)
                return;
        /* Readers first: the last connection to close checkpoints and removes the WAL. */
        for (size_t i = 0; i < s->nreaders; i++)
                conn_close(&s->readers[i]);
        conn_close(&s->writer);
        pthread_cond_destroy(&s->read_cond);
        pthread_mutex_destroy(&s->read_lock);
        pthread_mutex_destroy(&s->write_lock);
        free(s->path);
        free(s);
}

static int sqlite_open(const char *url, char *err, size_t errlen, struct dm_store **ret_store)
{
        const char *path;
        bool memory;
        int ret = sqlite_parse_url(url, err, errlen, &path, &memory);
        if (ret < 0)
                return ret;

        struct sqlite_store *s = calloc(1, sizeof(*s));
        if (!s)
                return DM_ENOMEM;
        s->base.ops = &dm_store_sqlite_ops;
        s->path = strdup(path);
        if (!s->path) {
                ret = DM_ENOMEM;
                goto fail_free;
        }
        pthread_mutex_init(&s->write_lock, NULL);
        pthread_mutex_init(&s->read_lock, NULL);
        pthread_cond_init(&s->read_cond, NULL);

        ret = conn_open(&s->writer, s->path, false, err, errlen);
        if (ret < 0)
                goto fail_destroy;
        if (!memory) {
                ret = conn_enable_wal(&s->writer, s->path, err, errlen);
                if (ret < 0)
                        goto fail_close;
                for (; s->nreaders < SQLITE_READERS; s->nreaders++) {
                        ret = conn_open(&s->readers[s->nreaders], s->path, true, err, errlen);
                        if (ret < 0)
                                goto fail_close;
                        s->free_readers[s->nfree++] = &s->readers[s->nreaders];
                }
        }
        *ret_store = &s->base;
        return 0;

fail_close:
        for (size_t i = 0; i < s->nreaders; i++)
                conn_close(&s->readers[i]);
        conn_close(&s->writer);
fail_destroy:
        pthread_cond_destroy(&s->read_cond);
        pthread_mutex_destroy(&s->read_lock);
        pthread_mutex_destroy(&s->write_lock);
fail_free:
        free(s->path);
        free(s);
        return ret;
}

/* One migration in its own transaction. Checking inside the transaction makes two
 * processes migrating at once apply it once. */
static int migration_apply(struct sqlite_conn *c, int64_t version, const char *name,
                           const char *sql, bool *ret_ran)
{
        sqlite3_stmt *stmt = NULL;
        int ret = tx_begin(c);
        if (ret < 0)
                return ret;

        ret = stmt_get(c, STMT_MIGRATION_APPLIED, &stmt);
        if (ret < 0)
                goto fail_rollback;
        sqlite3_bind_int64(stmt, 1, version);
        int rc = sqlite3_step(stmt);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
                ret = sqlite_error(c, rc, "migrate");
                stmt_reset(stmt);
                goto fail_rollback;
        }
        stmt_reset(stmt);
        if (rc == SQLITE_ROW) {
                tx_rollback(c);
                *ret_ran = false;
                return 0;
        }

        char *msg = NULL;
        rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
                char q[256];
                dm_log_error("store", "msg=\"migration failed\" version=%lld name=%s err=%s",
                             (long long)version, name,
                             dm_log_quote(q, sizeof(q), msg ? msg : sqlite3_errstr(rc)));
                sqlite3_free(msg);
                ret = DM_EMIGRATE;
                goto fail_rollback;
        }

        ret = stmt_get(c, STMT_MIGRATION_RECORD, &stmt);
        if (ret < 0)
                goto fail_rollback;
        sqlite3_bind_int64(stmt, 1, version);
        sqlite3_bind_text(stmt, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 3, dm_now_ms());
        ret = stmt_run(c, stmt, "migrate");
        if (ret < 0)
                goto fail_rollback;
        ret = tx_commit(c);
        if (ret < 0)
                goto fail_rollback;
        *ret_ran = true;
        return 0;

fail_rollback:
        tx_rollback(c);
        return ret;
}

static int sqlite_migrate(struct dm_store *st, int *ret_applied)
{
        struct sqlite_store *s = sqlite_of(st);
        struct sqlite_conn *c = write_begin(s);
        int applied = 0;
        int64_t last = 0;

        int ret = conn_exec(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                               "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                               "applied_at INTEGER NOT NULL)");
        if (ret < 0)
                goto out_unlock;
        for (const struct dm_embed_file *f = dm_embed_sql_sqlite; f->name; f++) {
                int64_t version;
                char name[128];
                bool ran = false;
                if (dm_store_migration_name(f->name, &version, name, sizeof(name)) < 0 ||
                    version <= last) {
                        char q[128];
                        dm_log_error("store",
                                     "msg=\"migration file misnamed or out of order\" file=%s",
                                     dm_log_quote(q, sizeof(q), f->name));
                        ret = DM_EMIGRATE;
                        goto out_unlock;
                }
                last = version;
                ret = migration_apply(c, version, name, (const char *)f->data, &ran);
                if (ret < 0)
                        goto out_unlock;
                applied += ran;
        }
        if (ret_applied)
                *ret_applied = applied;

out_unlock:
        write_end(s);
        return ret;
}

static int sqlite_ping(struct dm_store *st)
{
        struct sqlite_store *s = sqlite_of(st);
        struct sqlite_conn *c = read_begin(s);
        sqlite3_stmt *stmt = NULL;
        int ret = stmt_get(c, STMT_PING, &stmt);
        if (ret == 0) {
                int rc = sqlite3_step(stmt);
                ret = rc == SQLITE_ROW ? 0 : sqlite_error(c, rc, "ping");
                stmt_reset(stmt);
        }
        read_end(s, c);
        return ret;
}

/* ---- domains ---- */

static int outbox_insert_row(struct sqlite_conn *c, const char *routing_key, const char *body,
                             int64_t now)
{
        sqlite3_stmt *stmt = NULL;
        int ret = stmt_get(c, STMT_OUTBOX_INSERT, &stmt);
        if (ret < 0)
                return ret;
        sqlite3_bind_text(stmt, 1, routing_key, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 2, body, -1, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 3, now);
        return stmt_run(c, stmt, "outbox insert");
}

/* The event of a domain write, in its transaction. */
static int domain_event(struct sqlite_conn *c, const char *routing_key, const struct dm_domain *d,
                        int64_t at, dm_domain_event_fn event_fn, void *event_arg)
{
        char *body = event_fn(d, at, event_arg);
        if (!body)
                return DM_ENOMEM;
        int ret = outbox_insert_row(c, routing_key, body, at);
        free(body);
        return ret;
}

/* Steps a statement that returns at most one domain row (RETURNING) to completion.
 * *ret_found tells whether it did. */
static int stmt_domain_row(struct sqlite_conn *c, sqlite3_stmt *stmt, const char *what,
                           struct dm_domain *ret_domain, bool *ret_found)
{
        bool found = false;
        int rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW) {
                domain_from_row(stmt, ret_domain);
                found = true;
                rc = sqlite3_step(stmt);
        }
        int ret = rc == SQLITE_DONE ? 0 : sqlite_error(c, rc, what);
        stmt_reset(stmt);
        if (ret == 0)
                *ret_found = found;
        return ret;
}

/* The insert itself; *ret_row receives the domain as stored. DM_EEXIST when the name is
 * taken. */
static int domain_insert_row(struct sqlite_conn *c, const struct dm_domain *d, int64_t now,
                             struct dm_domain *ret_row)
{
        char types[SQLITE_TYPES_TEXT_MAX];
        struct dm_store_settings_text set;
        sqlite3_stmt *stmt = NULL;
        int ret = dm_store_types_to_text(d->record_types, d->nrecord_types, types, sizeof(types));
        if (ret == 0)
                ret = dm_store_settings_to_text(d->checks, d->tls_ports, d->ntls_ports, &set);
        if (ret < 0)
                return ret;
        ret = stmt_get(c, STMT_DOMAIN_INSERT, &stmt);
        if (ret < 0)
                return ret;
        sqlite3_bind_text(stmt, 1, d->name, -1, SQLITE_STATIC);
        /* Without a U-label form the name is its own, so the q filter still finds it. */
        sqlite3_bind_text(stmt, 2, d->unicode_name[0] ? d->unicode_name : d->name, -1,
                          SQLITE_STATIC);
        sqlite3_bind_int(stmt, 3, d->enabled);
        sqlite3_bind_int64(stmt, 4, d->interval_ms);
        sqlite3_bind_text(stmt, 5, types, -1, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 6, now);
        sqlite3_bind_int64(stmt, 7, dm_store_phase(d->name));
        sqlite3_bind_text(stmt, 8, set.checks, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 9, set.tls_ports, -1, SQLITE_STATIC);
        bool inserted = false;
        ret = stmt_domain_row(c, stmt, "domain insert", ret_row, &inserted);
        if (ret == 0 && !inserted)
                ret = DM_EEXIST;
        return ret;
}

static void domain_inserted(struct dm_domain *d, int64_t id, int64_t now)
{
        d->id = id;
        d->created_at = now;
        d->updated_at = now;
        d->next_check_at = now;
}

static int sqlite_domain_insert(struct dm_store *st, struct dm_domain *d,
                                dm_domain_event_fn event_fn, void *event_arg)
{
        struct sqlite_store *s = sqlite_of(st);
        int64_t now = dm_now_ms();
        struct dm_domain *row = malloc(sizeof(*row));
        if (!row)
                return DM_ENOMEM;
        struct sqlite_conn *c = write_begin(s);
        /* Without an event the insert is one statement: a transaction of its own. */
        int ret = event_fn ? tx_begin(c) : 0;
        if (ret < 0)
                goto out_unlock;
        ret = domain_insert_row(c, d, now, row);
        if (ret == 0 && event_fn)
                ret = domain_event(c, DM_EVENT_DOMAIN_ADDED, row, now, event_fn, event_arg);
        if (ret == 0 && event_fn)
                ret = tx_commit(c);
        if (ret < 0 && event_fn)
                tx_rollback(c);
out_unlock:
        write_end(s);
        if (ret == 0)
                domain_inserted(d, row->id, now);
        free(row);
        return ret;
}

static int sqlite_domain_insert_many(struct dm_store *st, struct dm_domain *ds, size_t n,
                                     dm_domain_event_fn event_fn, void *event_arg, int *ret_results)
{
        struct sqlite_store *s = sqlite_of(st);
        int64_t now = dm_now_ms();
        struct sqlite_conn *c;
        int64_t *ids = calloc(n, sizeof(*ids));
        int *results = calloc(n, sizeof(*results));
        struct dm_domain *row = malloc(sizeof(*row));
        int ret = DM_ENOMEM;
        if (!ids || !results || !row)
                goto out_free;

        c = write_begin(s);
        ret = tx_begin(c);
        if (ret < 0)
                goto out_unlock;
        for (size_t i = 0; i < n; i++) {
                /* A name earlier in the batch is already a row here: same answer. */
                int r = domain_insert_row(c, &ds[i], now, row);
                if (r == 0 && event_fn) {
                        ret = domain_event(c, DM_EVENT_DOMAIN_ADDED, row, now, event_fn, event_arg);
                        if (ret < 0)
                                goto out_rollback;
                }
                if (r < 0 && r != DM_EEXIST) {
                        ret = r;
                        goto out_rollback;
                }
                results[i] = r;
                ids[i] = r == 0 ? row->id : 0;
        }
        ret = tx_commit(c);
        if (ret < 0)
                goto out_rollback;
        write_end(s);

        for (size_t i = 0; i < n; i++) {
                ret_results[i] = results[i];
                if (results[i] == 0)
                        domain_inserted(&ds[i], ids[i], now);
        }
        ret = 0;
        goto out_free;

out_rollback:
        tx_rollback(c);
out_unlock:
        write_end(s);
out_free:
        free(row);
        free(results);
        free(ids);
        return ret;
}

static int sqlite_domain_get(struct dm_store *st, const char *name, struct dm_domain *ret_domain)
{
        struct sqlite_store *s = sqlite_of(st);
        struct sqlite_conn *c = read_begin(s);
        sqlite3_stmt *stmt = NULL;
        int ret = stmt_get(c, STMT_DOMAIN_GET, &stmt);
        if (ret < 0)
                goto out_release;
        sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
        int rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW)
                domain_from_row(stmt, ret_domain);
        else if (rc == SQLITE_DONE)
                ret = DM_ENOENT;
        else
                ret = sqlite_error(c, rc, "domain get");
        stmt_reset(stmt);

out_release:
        read_end(s, c);
        return ret;
}

/* Runs a writer statement keyed by name whose "no row matched" means DM_ENOENT. */
static int run_by_name(struct sqlite_conn *c, sqlite3_stmt *stmt, const char *what)
{
        int ret = stmt_run(c, stmt, what);
        if (ret == 0 && sqlite3_changes(c->db) == 0)
                ret = DM_ENOENT;
        return ret;
}

static int sqlite_domain_update(struct dm_store *st, const struct dm_domain *d, unsigned fields)
{
        struct sqlite_store *s = sqlite_of(st);
        char types[SQLITE_TYPES_TEXT_MAX];
        struct dm_store_settings_text set;
        int ret = dm_store_types_to_text(d->record_types, d->nrecord_types, types, sizeof(types));
        if (ret == 0)
                ret = dm_store_settings_to_text(d->checks, d->tls_ports, d->ntls_ports, &set);
        if (ret < 0)
                return ret;
        int64_t now = dm_now_ms();
        sqlite3_stmt *stmt = NULL;
        struct sqlite_conn *c = write_begin(s);
        ret = stmt_get(c, STMT_DOMAIN_UPDATE, &stmt);
        if (ret == 0) {
                sqlite3_bind_text(stmt, 1, d->name, -1, SQLITE_STATIC);
                sqlite3_bind_int(stmt, 2, d->enabled);
                sqlite3_bind_int64(stmt, 3, d->interval_ms);
                sqlite3_bind_text(stmt, 4, types, -1, SQLITE_STATIC);
                sqlite3_bind_int64(stmt, 5, d->updated_at);
                sqlite3_bind_int64(stmt, 6, now);
                sqlite3_bind_int(stmt, 7, (int)fields);
                sqlite3_bind_text(stmt, 8, set.checks, -1, SQLITE_STATIC);
                sqlite3_bind_text(stmt, 9, set.tls_ports, -1, SQLITE_STATIC);
                sqlite3_bind_int(stmt, 10, (fields & DM_DOMAIN_CHECKS) != 0);
                sqlite3_bind_int(stmt, 11, (fields & DM_DOMAIN_TLS_PORTS) != 0);
                ret = run_by_name(c, stmt, "domain update");
        }
        write_end(s);
        return ret;
}

static int sqlite_domain_delete(struct dm_store *st, const char *const *names, size_t n,
                                unsigned flags, dm_domain_event_fn event_fn, void *event_arg,
                                int *ret_results)
{
        struct sqlite_store *s = sqlite_of(st);
        sqlite3_stmt *stmt = NULL, *purge = NULL;
        int64_t now = dm_now_ms();
        struct dm_domain *row = malloc(sizeof(*row));
        if (!row)
                return DM_ENOMEM;
        struct sqlite_conn *c = write_begin(s);
        int ret = tx_begin(c);
        if (ret < 0)
                goto out_unlock;
        ret = stmt_get(c, STMT_DOMAIN_DELETE, &stmt);
        if (ret == 0 && (flags & DM_DELETE_PURGE))
                ret = stmt_get(c, STMT_CHANGES_PURGE, &purge);
        for (size_t i = 0; i < n && ret == 0; i++) {
                bool found = false;
                sqlite3_bind_text(stmt, 1, names[i], -1, SQLITE_STATIC);
                ret = stmt_domain_row(c, stmt, "domain delete", row, &found);
                if (ret == 0 && found && event_fn)
                        ret =
                            domain_event(c, DM_EVENT_DOMAIN_REMOVED, row, now, event_fn, event_arg);
                if (ret == 0 && purge) {
                        sqlite3_bind_text(purge, 1, names[i], -1, SQLITE_STATIC);
                        ret = stmt_run(c, purge, "history purge");
                        if (ret == 0 && sqlite3_changes(c->db) > 0)
                                found = true;
                }
                ret_results[i] = found ? 0 : DM_ENOENT;
        }
        if (ret == 0)
                ret = tx_commit(c);
        if (ret < 0)
                tx_rollback(c);
out_unlock:
        write_end(s);
        free(row);
        return ret;
}

static int sqlite_domain_list(struct dm_store *st, const struct dm_domain_query *q,
                              struct dm_domain *ret_domains, size_t *ret_n)
{
        struct sqlite_store *s = sqlite_of(st);
        char *pattern = NULL;
        if (q->q && *q->q) {
                pattern = dm_store_like_pattern(q->q);
                if (!pattern)
                        return DM_ENOMEM;
        }
        struct sqlite_conn *c = read_begin(s);
        sqlite3_stmt *stmt = NULL;
        size_t n = 0;
        int ret = stmt_get(c, STMT_DOMAIN_LIST, &stmt);
        if (ret < 0)
                goto out_release;
        sqlite3_bind_text(stmt, 1, q->after ? q->after : "", -1, SQLITE_STATIC);
        bind_text(stmt, 2, pattern);
        sqlite3_bind_int64(stmt, 3, clamp_limit(q->limit));
        sqlite3_bind_int64(stmt, 4, q->statuses);
        int rc = SQLITE_DONE;
        while (n < q->limit && (rc = sqlite3_step(stmt)) == SQLITE_ROW)
                domain_from_row(stmt, &ret_domains[n++]);
        if (n < q->limit && rc != SQLITE_DONE)
                ret = sqlite_error(c, rc, "domain list");
        stmt_reset(stmt);
        if (ret == 0)
                *ret_n = n;

out_release:
        read_end(s, c);
        free(pattern);
        return ret;
}

static int sqlite_domain_request_scan(struct dm_store *st, const char *name, int64_t now)
{
        struct sqlite_store *s = sqlite_of(st);
        sqlite3_stmt *stmt = NULL;
        struct sqlite_conn *c = write_begin(s);
        int ret = stmt_get(c, STMT_DOMAIN_REQUEST_SCAN, &stmt);
        if (ret == 0) {
                sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
                sqlite3_bind_int64(stmt, 2, now);
                ret = run_by_name(c, stmt, "domain request scan");
        }
        write_end(s);
        return ret;
}

static int sqlite_domain_request_scan_all(struct dm_store *st, int64_t now, size_t *ret_n)
{
        struct sqlite_store *s = sqlite_of(st);
        sqlite3_stmt *stmt = NULL;
        struct sqlite_conn *c = write_begin(s);
        int ret = stmt_get(c, STMT_DOMAIN_REQUEST_SCAN_ALL, &stmt);
        if (ret == 0) {
                sqlite3_bind_int64(stmt, 1, now);
                ret = stmt_run(c, stmt, "domain request scan all");
        }
        /* Every matched row counts, moved or not: that is how many the scan covers. */
        int64_t n = ret == 0 ? sqlite3_changes64(c->db) : 0;
        write_end(s);
        if (ret == 0 && ret_n)
                *ret_n = (size_t)n;
        return ret;
}

static int sqlite_domain_count(struct dm_store *st, size_t *ret_n)
{
        struct sqlite_store *s = sqlite_of(st);
        struct sqlite_conn *c = read_begin(s);
        sqlite3_stmt *stmt = NULL;
        int ret = stmt_get(c, STMT_DOMAIN_COUNT, &stmt);
        if (ret == 0)
                ret = stmt_count(c, stmt, "domain count", ret_n);
        read_end(s, c);
        return ret;
}

/* ---- API keys ---- */

/* The insert itself, on the writer; DM_EEXIST when the key_id is taken. */
static int key_insert_row(struct sqlite_conn *c, const struct dm_api_key *k, int64_t created,
                          int64_t *ret_id)
{
        sqlite3_stmt *stmt = NULL;
        int ret = stmt_get(c, STMT_KEY_INSERT, &stmt);
        if (ret < 0)
                return ret;
        sqlite3_bind_text(stmt, 1, k->key_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 2, k->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 3, dm_scope_name(k->scope), -1, SQLITE_STATIC);
        sqlite3_bind_blob(stmt, 4, k->hash, sizeof(k->hash), SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 5, created);
        bind_time(stmt, 6, k->last_used_at);
        bind_time(stmt, 7, k->revoked_at);
        ret = stmt_run(c, stmt, "key insert");
        if (ret < 0)
                return ret;
        if (sqlite3_changes(c->db) == 0)
                return DM_EEXIST;
        *ret_id = sqlite3_last_insert_rowid(c->db);
        return 0;
}

static int sqlite_key_insert(struct dm_store *st, struct dm_api_key *k)
{
        struct sqlite_store *s = sqlite_of(st);
        int64_t created = k->created_at ? k->created_at : dm_now_ms();
        int64_t id = 0;
        struct sqlite_conn *c = write_begin(s);
        int ret = key_insert_row(c, k, created, &id);
        write_end(s);
        if (ret == 0) {
                k->id = id;
                k->created_at = created;
        }
        return ret;
}

/* BEGIN IMMEDIATE holds the database's write lock from the count to the insert, so other
 * processes wait and then see the key. */
static int sqlite_key_insert_first(struct dm_store *st, struct dm_api_key *k)
{
        struct sqlite_store *s = sqlite_of(st);
        int64_t created = k->created_at ? k->created_at : dm_now_ms();
        int64_t id = 0;
        size_t active = 0;
        sqlite3_stmt *stmt = NULL;
        struct sqlite_conn *c = write_begin(s);
        int ret = tx_begin(c);
        if (ret < 0)
                goto out_unlock;
        ret = stmt_get(c, STMT_KEY_COUNT_ACTIVE, &stmt);
        if (ret == 0)
                ret = stmt_count(c, stmt, "key insert first", &active);
        if (ret == 0 && active > 0)
                ret = DM_EEXIST;
        if (ret == 0) {
                ret = key_insert_row(c, k, created, &id);
                if (ret == DM_EEXIST)
                        ret = DM_ECONFLICT; /* the key_id, not an active key */
        }
        if (ret == 0)
                ret = tx_commit(c);
        if (ret < 0)
                tx_rollback(c);
out_unlock:
        write_end(s);
        if (ret == 0) {
                k->id = id;
                k->created_at = created;
        }
        return ret;
}

static int sqlite_key_get(struct dm_store *st, const char *key_id, struct dm_api_key *ret_key)
{
        struct sqlite_store *s = sqlite_of(st);
        struct sqlite_conn *c = read_begin(s);
        sqlite3_stmt *stmt = NULL;
        int ret = stmt_get(c, STMT_KEY_GET, &stmt);
        if (ret == 0) {
                sqlite3_bind_text(stmt, 1, key_id, -1, SQLITE_STATIC);
                int rc = sqlite3_step(stmt);
                if (rc == SQLITE_ROW)
                        key_from_row(stmt, ret_key);
                else if (rc == SQLITE_DONE)
                        ret = DM_ENOENT;
                else
                        ret = sqlite_error(c, rc, "key get");
                stmt_reset(stmt);
        }
        read_end(s, c);
        return ret;
}

static int sqlite_key_list(struct dm_store *st, struct dm_api_key **ret_keys, size_t *ret_n)
{
        struct sqlite_store *s = sqlite_of(st);
        struct dm_api_key *keys = NULL;
        size_t n = 0, cap = 0;
        struct sqlite_conn *c = read_begin(s);
        sqlite3_stmt *stmt = NULL;
        int ret = stmt_get(c, STMT_KEY_LIST, &stmt);
        if (ret < 0)
                goto out_release;
        int rc;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
                ret = array_reserve((void **)&keys, &cap, n, sizeof(*keys));
                if (ret < 0)
                        break;
                key_from_row(stmt, &keys[n++]);
        }
        if (ret == 0 && rc != SQLITE_DONE)
                ret = sqlite_error(c, rc, "key list");
        stmt_reset(stmt);

out_release:
        read_end(s, c);
        if (ret < 0) {
                free(keys);
                return ret;
        }
        *ret_keys = keys;
        *ret_n = n;
        return 0;
}

static int sqlite_key_revoke(struct dm_store *st, const char *key_id_or_name, int64_t now)
{
        struct sqlite_store *s = sqlite_of(st);
        sqlite3_stmt *stmt = NULL;
        struct sqlite_conn *c = write_begin(s);
        int ret = stmt_get(c, STMT_KEY_REVOKE, &stmt);
        if (ret == 0) {
                sqlite3_bind_text(stmt, 1, key_id_or_name, -1, SQLITE_STATIC);
                sqlite3_bind_int64(stmt, 2, now);
                ret = run_by_name(c, stmt, "key revoke");
        }
        write_end(s);
        return ret;
}

static int sqlite_key_touch(struct dm_store *st, int64_t id, int64_t now)
{
        struct sqlite_store *s = sqlite_of(st);
        sqlite3_stmt *stmt = NULL;
        struct sqlite_conn *c = write_begin(s);
        int ret = stmt_get(c, STMT_KEY_TOUCH, &stmt);
        if (ret == 0) {
                sqlite3_bind_int64(stmt, 1, id);
                sqlite3_bind_int64(stmt, 2, now);
                sqlite3_bind_int64(stmt, 3, SQLITE_KEY_TOUCH_COALESCE_MS);
                ret = stmt_run(c, stmt, "key touch");
        }
        write_end(s);
        return ret;
}

static int sqlite_key_count_active(struct dm_store *st, size_t *ret_n)
{
        struct sqlite_store *s = sqlite_of(st);
        struct sqlite_conn *c = read_begin(s);
        sqlite3_stmt *stmt = NULL;
        int ret = stmt_get(c, STMT_KEY_COUNT_ACTIVE, &stmt);
        if (ret == 0)
                ret = stmt_count(c, stmt, "key count", ret_n);
        read_end(s, c);
        return ret;
}

/* ---- sessions and settings ---- */

static int sqlite_session_insert(struct dm_store *st, const struct dm_session *sess)
{
        struct sqlite_store *s = sqlite_of(st);
        sqlite3_stmt *stmt = NULL;
        struct sqlite_conn *c = write_begin(s);
        int ret = stmt_get(c, STMT_SESSION_PRUNE, &stmt);
        if (ret == 0) {
                sqlite3_bind_int64(stmt, 1, sess->created_at);
                ret = stmt_run(c, stmt, "session prune");
        }
        if (ret == 0)
                ret = stmt_get(c, STMT_SESSION_INSERT, &stmt);
        if (ret == 0) {
                sqlite3_bind_text(stmt, 1, sess->id, -1, SQLITE_STATIC);
                sqlite3_bind_text(stmt, 2, sess->key_id, -1, SQLITE_STATIC);
                sqlite3_bind_text(stmt, 3, dm_scope_name(sess->scope), -1, SQLITE_STATIC);
                sqlite3_bind_int64(stmt, 4, sess->created_at);
                sqlite3_bind_int64(stmt, 5, sess->expires_at);
                ret = stmt_run(c, stmt, "session insert");
                if (ret == 0 && sqlite3_changes(c->db) == 0)
                        ret = DM_EEXIST;
        }
        write_end(s);
        return ret;
}

static int sqlite_session_get(struct dm_store *st, const char *id, struct dm_session *ret_session)
{
        struct sqlite_store *s = sqlite_of(st);
        struct sqlite_conn *c = read_begin(s);
        sqlite3_stmt *stmt = NULL;
        int ret = stmt_get(c, STMT_SESSION_GET, &stmt);
        if (ret == 0) {
                sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
                int rc = sqlite3_step(stmt);
                if (rc == SQLITE_ROW) {
                        struct dm_session *x = ret_session;
                        memset(x, 0, sizeof(*x));
                        col_copy(stmt, 0, x->id, sizeof(x->id));
                        col_copy(stmt, 1, x->key_id, sizeof(x->key_id));
                        if (dm_scope_parse((const char *)sqlite3_column_text(stmt, 2), &x->scope) <
                            0)
                                x->scope = DM_SCOPE_NONE; /* grants nothing */
                        x->created_at = sqlite3_column_int64(stmt, 3);
                        x->expires_at = sqlite3_column_int64(stmt, 4);
                } else if (rc == SQLITE_DONE) {
                        ret = DM_ENOENT;
                } else {
                        ret = sqlite_error(c, rc, "session get");
                }
                stmt_reset(stmt);
        }
        read_end(s, c);
        return ret;
}

static int sqlite_session_delete(struct dm_store *st, const char *id)
{
        struct sqlite_store *s = sqlite_of(st);
        sqlite3_stmt *stmt = NULL;
        struct sqlite_conn *c = write_begin(s);
        int ret = stmt_get(c, STMT_SESSION_DELETE, &stmt);
        if (ret == 0) {
                sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
                ret = run_by_name(c, stmt, "session delete");
        }
        write_end(s);
        return ret;
}

static int sqlite_setting_init(struct dm_store *st, const char *name, const char *value,
                               char *ret_value, size_t size)
{
        struct sqlite_store *s = sqlite_of(st);
        sqlite3_stmt *stmt = NULL;
        struct sqlite_conn *c = write_begin(s);
        int ret = stmt_get(c, STMT_SETTING_INSERT, &stmt);
        if (ret == 0) {
                sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
                sqlite3_bind_text(stmt, 2, value, -1, SQLITE_STATIC);
                sqlite3_bind_int64(stmt, 3, dm_now_ms());
                ret = stmt_run(c, stmt, "setting insert");
        }
        if (ret == 0)
                ret = stmt_get(c, STMT_SETTING_GET, &stmt);
        if (ret == 0) {
                sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
                int rc = sqlite3_step(stmt);
                if (rc == SQLITE_ROW) {
                        const char *v = (const char *)sqlite3_column_text(stmt, 0);
                        size_t len = v ? strlen(v) : 0;
                        if (len >= size) {
                                ret = DM_E2BIG;
                        } else {
                                memcpy(ret_value, v ? v : "", len);
                                ret_value[len] = '\0';
                        }
                } else {
                        ret = rc == SQLITE_DONE ? DM_ENOENT : sqlite_error(c, rc, "setting get");
                }
                stmt_reset(stmt);
        }
        write_end(s);
        return ret;
}

/* ---- scheduling ---- */

static int sqlite_claim_due(struct dm_store *st, const struct dm_claim_opts *opts,
                            struct dm_scan_task *ret_tasks, size_t *ret_n)
{
        struct sqlite_store *s = sqlite_of(st);
        size_t n = 0;
        sqlite3_stmt *stmt = NULL;
        struct sqlite_conn *c = write_begin(s);
        int ret = stmt_get(c, STMT_CLAIM, &stmt);
        if (ret < 0)
                goto out_unlock;
        sqlite3_bind_int64(stmt, 1, opts->now);
        sqlite3_bind_int64(stmt, 2, opts->default_interval_ms);
        sqlite3_bind_int64(stmt, 3, opts->min_interval_ms);
        sqlite3_bind_int64(stmt, 4, clamp_limit(opts->limit));
        int rc;
        /* Stepping to SQLITE_DONE (not stopping at `limit` rows) is what commits. */
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
                if (n >= opts->limit)
                        continue;
                struct dm_scan_task *t = &ret_tasks[n++];
                memset(t, 0, sizeof(*t));
                t->domain_id = sqlite3_column_int64(stmt, 0);
                col_copy(stmt, 1, t->name, sizeof(t->name));
                col_types(stmt, 2, t->domain_id, t->record_types, &t->nrecord_types);
                col_fp(stmt, 3, t->dns_fp);
                t->checks = dm_store_checks_from_text((const char *)sqlite3_column_text(stmt, 4),
                                                      t->domain_id);
                dm_store_ports_from_text((const char *)sqlite3_column_text(stmt, 5), t->domain_id,
                                         t->tls_ports, &t->ntls_ports);
                col_fp(stmt, 6, t->tls_fp);
        }
        if (rc != SQLITE_DONE)
                ret = sqlite_error(c, rc, "claim");
        stmt_reset(stmt);
        if (ret == 0)
                *ret_n = n;

out_unlock:
        write_end(s);
        return ret;
}

/* ---- DNS state ---- */

static int sqlite_dns_current(struct dm_store *st, int64_t domain_id,
                              struct dm_rrset_row **ret_rows, size_t *ret_n)
{
        struct sqlite_store *s = sqlite_of(st);
        struct dm_rrset_row *rows = NULL;
        size_t n = 0, cap = 0;
        struct sqlite_conn *c = read_begin(s);
        sqlite3_stmt *stmt = NULL;
        int ret = stmt_get(c, STMT_CURRENT, &stmt);
        if (ret < 0)
                goto out_release;
        sqlite3_bind_int64(stmt, 1, domain_id);
        int rc;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
                ret = array_reserve((void **)&rows, &cap, n, sizeof(*rows));
                if (ret < 0)
                        break;
                struct dm_rrset_row *r = &rows[n];
                memset(r, 0, sizeof(*r));
                r->type = (uint16_t)sqlite3_column_int(stmt, 0);
                r->status = (enum dm_rr_status)sqlite3_column_int(stmt, 1);
                r->ttl = (uint32_t)sqlite3_column_int64(stmt, 2);
                r->checked_at = sqlite3_column_int64(stmt, 5);
                r->changed_at = sqlite3_column_int64(stmt, 6);
                r->answer_status = (enum dm_rr_status)sqlite3_column_int(stmt, 7);
                n++;
                ret = col_strdup(stmt, 3, &r->values);
                if (ret == 0)
                        ret = col_strdup(stmt, 4, &r->error);
                if (ret < 0)
                        break;
        }
        if (ret == 0 && rc != SQLITE_DONE)
                ret = sqlite_error(c, rc, "dns current");
        stmt_reset(stmt);

out_release:
        read_end(s, c);
        if (ret < 0) {
                dm_rrset_rows_free(rows, n);
                return ret;
        }
        *ret_rows = rows;
        *ret_n = n;
        return 0;
}

/* Fingerprint unchanged: the scan only moves the domain's check time and status, if the
 * stored fingerprint is still old_fp. *ret_written false: it was not (or the domain is gone)
 * and nothing was written. */
static int commit_seen(struct sqlite_conn *c, struct dm_dns_commit *it, int64_t checked_at,
                       const char *status_error, bool *ret_written)
{
        sqlite3_stmt *stmt = NULL;
        int ret = stmt_get(c, STMT_COMMIT_SEEN, &stmt);
        if (ret < 0)
                return ret;
        sqlite3_bind_int64(stmt, 1, it->domain_id);
        sqlite3_bind_int64(stmt, 2, checked_at);
        sqlite3_bind_int(stmt, 3, (int)it->status);
        bind_text(stmt, 4, status_error);
        bind_fp(stmt, 5, it->old_fp);
        ret = stmt_run(c, stmt, "dns commit");
        if (ret < 0)
                return ret;
        *ret_written = sqlite3_changes(c->db) > 0;
        return 0;
}

/* The compare-and-swap. *ret_swapped false: the stored fingerprint was not old_fp (or the
 * domain is gone) and nothing was written. */
static int commit_cas(struct sqlite_conn *c, struct dm_dns_commit *it, int64_t checked_at,
                      const char *status_error, char *name, size_t size, bool *ret_swapped)
{
        sqlite3_stmt *stmt = NULL;
        int ret = stmt_get(c, STMT_COMMIT_CAS, &stmt);
        if (ret < 0)
                return ret;
        sqlite3_bind_int64(stmt, 1, it->domain_id);
        bind_fp(stmt, 2, it->new_fp);
        bind_fp(stmt, 3, it->old_fp);
        sqlite3_bind_int64(stmt, 4, checked_at);
        sqlite3_bind_int(stmt, 5, (int)it->status);
        bind_text(stmt, 6, status_error);
        sqlite3_bind_int(stmt, 7, it->nchanges > 0);
        bool swapped = false;
        int rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW) {
                swapped = true;
                col_copy(stmt, 0, name, size);
                rc = sqlite3_step(stmt);
        }
        if (rc != SQLITE_DONE)
                ret = sqlite_error(c, rc, "dns commit");
        stmt_reset(stmt);
        if (ret == 0)
                *ret_swapped = swapped;
        return ret;
}

static int domain_exists(struct sqlite_conn *c, int64_t id, bool *ret_exists)
{
        sqlite3_stmt *stmt = NULL;
        int ret = stmt_get(c, STMT_DOMAIN_EXISTS, &stmt);
        if (ret < 0)
                return ret;
        sqlite3_bind_int64(stmt, 1, id);
        int rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW || rc == SQLITE_DONE)
                *ret_exists = rc == SQLITE_ROW;
        else
                ret = sqlite_error(c, rc, "dns commit");
        stmt_reset(stmt);
        return ret;
}

static bool rows_have_type(const struct dm_dns_commit *it, int type)
{
        for (size_t i = 0; i < it->nrows; i++) {
                if (it->rows[i].type == type)
                        return true;
        }
        return false;
}

/* Deletes the current rows of types the new state does not list. */
static int commit_prune(struct sqlite_conn *c, const struct dm_dns_commit *it)
{
        int stale[DM_STORE_MAX_ROWS];
        size_t nstale;
        sqlite3_stmt *types = NULL, *del = NULL;
        int ret = stmt_get(c, STMT_CURRENT_TYPES, &types);
        if (ret == 0)
                ret = stmt_get(c, STMT_CURRENT_DELETE, &del);
        if (ret < 0)
                return ret;
        /* A batch at a time, so a hand-edited row set of any size still empties. */
        do {
                nstale = 0;
                sqlite3_bind_int64(types, 1, it->domain_id);
                int rc;
                while (nstale < DM_STORE_MAX_ROWS && (rc = sqlite3_step(types)) == SQLITE_ROW) {
                        int type = sqlite3_column_int(types, 0);
                        if (!rows_have_type(it, type))
                                stale[nstale++] = type;
                }
                if (nstale < DM_STORE_MAX_ROWS && rc != SQLITE_DONE)
                        ret = sqlite_error(c, rc, "dns commit");
                stmt_reset(types);
                for (size_t i = 0; ret == 0 && i < nstale; i++) {
                        sqlite3_bind_int64(del, 1, it->domain_id);
                        sqlite3_bind_int(del, 2, stale[i]);
                        ret = stmt_run(c, del, "dns commit");
                }
        } while (ret == 0 && nstale == DM_STORE_MAX_ROWS);
        return ret;
}

static int commit_rows(struct sqlite_conn *c, const struct dm_dns_commit *it, int64_t checked_at)
{
        sqlite3_stmt *stmt = NULL;
        int ret = commit_prune(c, it);
        if (ret == 0)
                ret = stmt_get(c, STMT_CURRENT_UPSERT, &stmt);
        if (ret < 0)
                return ret;
        for (size_t i = 0; i < it->nrows; i++) {
                const struct dm_rrset_row *r = &it->rows[i];
                sqlite3_bind_int64(stmt, 1, it->domain_id);
                sqlite3_bind_int(stmt, 2, r->type);
                sqlite3_bind_int(stmt, 3, (int)r->status);
                sqlite3_bind_int64(stmt, 4, r->ttl);
                bind_text(stmt, 5, r->values);
                bind_text(stmt, 6, r->error);
                sqlite3_bind_int64(stmt, 7, r->checked_at ? r->checked_at : checked_at);
                bind_time(stmt, 8, r->changed_at);
                sqlite3_bind_int(stmt, 9, DM_RRS_ERROR);
                sqlite3_bind_int(stmt, 10, DM_RRS_OK);
                ret = stmt_run(c, stmt, "dns commit");
                if (ret < 0)
                        return ret;
        }
        return 0;
}

static int commit_changes(struct sqlite_conn *c, struct dm_dns_commit *it, const char *name,
                          int64_t checked_at, int64_t now, dm_change_event_fn event_fn,
                          void *event_arg)
{
        sqlite3_stmt *stmt = NULL;
        int ret = stmt_get(c, STMT_CHANGE_INSERT, &stmt);
        if (ret < 0)
                return ret;
        for (size_t i = 0; i < it->nchanges; i++) {
                struct dm_change *ch = &it->changes[i];
                int64_t observed = ch->observed_at ? ch->observed_at : checked_at;
                sqlite3_bind_int64(stmt, 1, it->domain_id);
                sqlite3_bind_int(stmt, 2, ch->type);
                sqlite3_bind_int(stmt, 3, (int)ch->status);
                sqlite3_bind_int64(stmt, 4, observed);
                bind_text(stmt, 5, ch->before);
                bind_text(stmt, 6, ch->after);
                bind_text(stmt, 7, ch->added);
                bind_text(stmt, 8, ch->removed);
                sqlite3_bind_text(stmt, 9, ch->domain[0] ? ch->domain : name, -1, SQLITE_STATIC);
                sqlite3_bind_int(stmt, 10, ch->serial_only ? 1 : 0);
                ret = stmt_run(c, stmt, "change insert");
                if (ret < 0)
                        return ret;
                ch->id = sqlite3_last_insert_rowid(c->db);
                ch->domain_id = it->domain_id;
                ch->observed_at = observed;
                if (ch->domain[0] == '\0')
                        snprintf(ch->domain, sizeof(ch->domain), "%s", name);
                if (!event_fn)
                        continue;

                char key[DM_STORE_ROUTING_KEY_MAX];
                char *body = event_fn(ch, event_arg);
                if (!body)
                        return DM_ENOMEM;
                ret = outbox_insert_row(c, dm_store_routing_key(ch->type, key), body, now);
                free(body);
                if (ret < 0)
                        return ret;
        }
        return 0;
}

static int commit_item(struct sqlite_conn *c, struct dm_dns_commit *it, int64_t now,
                       dm_change_event_fn event_fn, void *event_arg)
{
        int64_t checked_at = it->checked_at ? it->checked_at : now;
        const char *status_error = it->status == DM_CHECK_ERROR ? it->status_error : NULL;
        bool same = memcmp(it->old_fp, it->new_fp, DM_FP_LEN) == 0;
        if (!same && !dm_store_item_fits(it)) {
                it->result = DM_E2BIG;
                return 0;
        }

        char name[DM_NAME_MAX + 1];
        bool swapped = false;
        int ret = same ? commit_seen(c, it, checked_at, status_error, &swapped)
                       : commit_cas(c, it, checked_at, status_error, name, sizeof(name), &swapped);
        if (ret < 0)
                return ret;
        if (!swapped) {
                bool exists = false;
                ret = domain_exists(c, it->domain_id, &exists);
                if (ret < 0)
                        return ret;
                it->result = exists ? DM_ECONFLICT : DM_ENOENT;
                return 0;
        }
        if (same) {
                it->result = 0;
                return 0;
        }
        ret = commit_rows(c, it, checked_at);
        if (ret < 0)
                return ret;
        ret = commit_changes(c, it, name, checked_at, now, event_fn, event_arg);
        if (ret < 0)
                return ret;
        it->result = 0;
        return 0;
}

static int sqlite_dns_commit(struct dm_store *st, struct dm_dns_commit *items, size_t n,
                             dm_change_event_fn event_fn, void *event_arg)
{
        struct sqlite_store *s = sqlite_of(st);
        int64_t now = dm_now_ms();
        struct sqlite_conn *c = write_begin(s);
        int ret = tx_begin(c);
        if (ret < 0)
                goto out_unlock;
        for (size_t i = 0; i < n; i++) {
                ret = commit_item(c, &items[i], now, event_fn, event_arg);
                if (ret < 0)
                        goto out_rollback;
        }
        ret = tx_commit(c);
        if (ret < 0)
                goto out_rollback;
        write_end(s);
        return 0;

out_rollback:
        tx_rollback(c);
        /* Nothing was written: ids handed out inside the transaction do not exist. */
        for (size_t i = 0; i < n; i++) {
                items[i].result = ret;
                if (memcmp(items[i].old_fp, items[i].new_fp, DM_FP_LEN) == 0)
                        continue;
                for (size_t j = 0; j < items[i].nchanges; j++)
                        items[i].changes[j].id = 0;
        }
out_unlock:
        write_end(s);
        return ret;
}

static int change_from_row(sqlite3_stmt *stmt, struct dm_change *ch)
{
        memset(ch, 0, sizeof(*ch));
        ch->id = sqlite3_column_int64(stmt, 0);
        ch->domain_id = sqlite3_column_int64(stmt, 1);
        col_copy(stmt, 2, ch->domain, sizeof(ch->domain));
        ch->type = (uint16_t)sqlite3_column_int(stmt, 3);
        ch->status = (enum dm_rr_status)sqlite3_column_int(stmt, 4);
        ch->observed_at = sqlite3_column_int64(stmt, 5);
        int ret = col_strdup(stmt, 6, &ch->before);
        if (ret == 0)
                ret = col_strdup(stmt, 7, &ch->after);
        if (ret == 0)
                ret = col_strdup(stmt, 8, &ch->added);
        if (ret == 0)
                ret = col_strdup(stmt, 9, &ch->removed);
        ch->serial_only = sqlite3_column_int(stmt, 10) != 0;
        return ret;
}

static int sqlite_change_list(struct dm_store *st, const struct dm_change_query *q,
                              struct dm_change **ret_changes, size_t *ret_n)
{
        struct sqlite_store *s = sqlite_of(st);
        struct dm_change *changes = NULL;
        size_t n = 0, cap = 0;
        struct sqlite_conn *c = read_begin(s);
        sqlite3_stmt *stmt = NULL;
        int ret = stmt_get(c,
                           q->domain_id ? STMT_CHANGES_DOMAIN
                                        : (q->domain ? STMT_CHANGES_NAME : STMT_CHANGES_ALL),
                           &stmt);
        if (ret < 0)
                goto out_release;
        bind_text(stmt, 7, q->domain);
        sqlite3_bind_int(stmt, 8, q->hide_first ? 1 : 0);
        sqlite3_bind_int(stmt, 9, q->hide_serial_only ? 1 : 0);
        if (q->domain_id)
                sqlite3_bind_int64(stmt, 1, q->domain_id);
        sqlite3_bind_int64(stmt, 2, q->before_id > 0 ? q->before_id : INT64_MAX);
        sqlite3_bind_int(stmt, 3, q->type);
        sqlite3_bind_int64(stmt, 4, q->since);
        sqlite3_bind_int64(stmt, 5, q->until);
        sqlite3_bind_int64(stmt, 6, clamp_limit(q->limit));
        size_t bytes = 0;
        int rc;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
                ret = array_reserve((void **)&changes, &cap, n, sizeof(*changes));
                if (ret < 0)
                        break;
                ret = change_from_row(stmt, &changes[n++]);
                if (ret < 0)
                        break;
                bytes += dm_change_size(&changes[n - 1]);
                if (q->max_bytes > 0 && bytes > q->max_bytes) {
                        rc = SQLITE_DONE; /* enough for one page */
                        break;
                }
        }
        if (ret == 0 && rc != SQLITE_DONE)
                ret = sqlite_error(c, rc, "change list");
        stmt_reset(stmt);

out_release:
        read_end(s, c);
        if (ret < 0) {
                dm_changes_free(changes, n);
                return ret;
        }
        *ret_changes = changes;
        *ret_n = n;
        return 0;
}

static int sqlite_history_prune(struct dm_store *st, int64_t before, size_t limit, size_t *ret_n)
{
        struct sqlite_store *s = sqlite_of(st);
        sqlite3_stmt *stmt = NULL;
        struct sqlite_conn *c = write_begin(s);
        size_t n = 0;
        int ret = stmt_get(c, STMT_HISTORY_PRUNE, &stmt);
        if (ret == 0) {
                sqlite3_bind_int64(stmt, 1, before);
                sqlite3_bind_int64(stmt, 2, clamp_limit(limit));
                ret = stmt_run(c, stmt, "history prune");
        }
        if (ret == 0)
                n = (size_t)sqlite3_changes(c->db);
        /* The TLS history goes by the same rule, in what is left of the batch. */
        if (ret == 0 && n < limit)
                ret = stmt_get(c, STMT_TLS_PRUNE, &stmt);
        if (ret == 0 && n < limit) {
                sqlite3_bind_int64(stmt, 1, before);
                sqlite3_bind_int64(stmt, 2, clamp_limit(limit - n));
                ret = stmt_run(c, stmt, "tls history prune");
                if (ret == 0)
                        n += (size_t)sqlite3_changes(c->db);
        }
        /* Then the registration history, with what the limit leaves. */
        if (ret == 0 && n < limit)
                ret = stmt_get(c, STMT_REG_PRUNE, &stmt);
        if (ret == 0 && n < limit) {
                sqlite3_bind_int64(stmt, 1, before);
                sqlite3_bind_int64(stmt, 2, clamp_limit(limit - n));
                ret = stmt_run(c, stmt, "registration history prune");
                if (ret == 0)
                        n += (size_t)sqlite3_changes(c->db);
        }
        if (ret == 0)
                *ret_n = n;
        write_end(s);
        return ret;
}

/* ---- TLS ---- */

static int tls_commit_endpoints(struct sqlite_conn *c, const struct dm_tls_commit *it)
{
        sqlite3_stmt *stmt = NULL;
        int ret = stmt_get(c, STMT_TLS_DELETE, &stmt);
        if (ret < 0)
                return ret;
        sqlite3_bind_int64(stmt, 1, it->domain_id);
        ret = stmt_run(c, stmt, "tls delete");
        if (ret == 0)
                ret = stmt_get(c, STMT_TLS_INSERT, &stmt);
        for (size_t i = 0; ret == 0 && i < it->nendpoints; i++) {
                const struct dm_tls_endpoint *e = &it->endpoints[i];
                sqlite3_bind_int64(stmt, 1, it->domain_id);
                sqlite3_bind_int(stmt, 2, e->port);
                sqlite3_bind_text(stmt, 3, e->address, -1, SQLITE_STATIC);
                sqlite3_bind_int(stmt, 4, (int)e->status);
                bind_text(stmt, 5, e->status == DM_TLS_ERROR ? e->error : NULL);
                sqlite3_bind_text(stmt, 6, e->protocol, -1, SQLITE_STATIC);
                sqlite3_bind_int(stmt, 7, e->chain_valid);
                sqlite3_bind_text(stmt, 8, e->chain_error, -1, SQLITE_STATIC);
                sqlite3_bind_text(stmt, 9, e->sha256, -1, SQLITE_STATIC);
                sqlite3_bind_int64(stmt, 10, e->not_after);
                bind_text(stmt, 11, e->cert);
                sqlite3_bind_int64(stmt, 12, e->checked_at ? e->checked_at : it->checked_at);
                sqlite3_bind_int64(stmt, 13, e->changed_at);
                ret = stmt_run(c, stmt, "tls insert");
        }
        return ret;
}

static int tls_commit_changes(struct sqlite_conn *c, struct dm_tls_commit *it, const char *name,
                              int64_t now, dm_tls_change_event_fn event_fn, void *event_arg)
{
        sqlite3_stmt *stmt = NULL;
        int ret = stmt_get(c, STMT_TLS_CHANGE_INSERT, &stmt);
        for (size_t i = 0; ret == 0 && i < it->nchanges; i++) {
                struct dm_tls_change *ch = &it->changes[i];
                if (!ch->observed_at)
                        ch->observed_at = it->checked_at;
                sqlite3_bind_int64(stmt, 1, it->domain_id);
                sqlite3_bind_int(stmt, 2, ch->port);
                sqlite3_bind_text(stmt, 3, ch->address, -1, SQLITE_STATIC);
                sqlite3_bind_int(stmt, 4, ch->chain_valid);
                sqlite3_bind_int64(stmt, 5, ch->observed_at);
                bind_text(stmt, 6, ch->before);
                sqlite3_bind_text(stmt, 7, ch->after ? ch->after : "{}", -1, SQLITE_STATIC);
                ret = stmt_run(c, stmt, "tls change insert");
                if (ret < 0)
                        break;
                ch->id = sqlite3_last_insert_rowid(c->db);
                ch->domain_id = it->domain_id;
                snprintf(ch->domain, sizeof(ch->domain), "%s", name);
                if (!event_fn)
                        continue;
                char *body = event_fn(ch, event_arg);
                if (!body)
                        return DM_ENOMEM;
                ret = outbox_insert_row(c, DM_EVENT_CHANGE_TLS, body, now);
                free(body);
        }
        return ret;
}

static int tls_commit_item(struct sqlite_conn *c, struct dm_tls_commit *it, int64_t now,
                           dm_tls_change_event_fn event_fn, void *event_arg)
{
        int64_t checked_at = it->checked_at ? it->checked_at : now;
        bool same = memcmp(it->old_fp, it->new_fp, DM_FP_LEN) == 0;
        char name[DM_NAME_MAX + 1] = "";
        bool swapped = false;
        sqlite3_stmt *stmt = NULL;

        if (!same && !dm_store_tls_item_fits(it)) {
                it->result = DM_E2BIG;
                return 0;
        }
        int ret = stmt_get(c, same ? STMT_TLS_SEEN : STMT_TLS_CAS, &stmt);
        if (ret < 0)
                return ret;
        sqlite3_bind_int64(stmt, 1, it->domain_id);
        if (same) {
                sqlite3_bind_int64(stmt, 2, checked_at);
                bind_fp(stmt, 3, it->old_fp);
                ret = stmt_run(c, stmt, "tls commit");
                swapped = ret == 0 && sqlite3_changes(c->db) > 0;
        } else {
                bind_fp(stmt, 2, it->new_fp);
                bind_fp(stmt, 3, it->old_fp);
                sqlite3_bind_int64(stmt, 4, checked_at);
                if (it->expires_at)
                        sqlite3_bind_int64(stmt, 5, it->expires_at);
                else
                        sqlite3_bind_null(stmt, 5);
                int rc = sqlite3_step(stmt);
                if (rc == SQLITE_ROW) {
                        col_copy(stmt, 0, name, sizeof(name));
                        swapped = true;
                        rc = sqlite3_step(stmt);
                }
                ret = rc == SQLITE_DONE ? 0 : sqlite_error(c, rc, "tls commit");
                stmt_reset(stmt);
        }
        if (ret < 0)
                return ret;
        if (!swapped) {
                bool exists = false;
                ret = domain_exists(c, it->domain_id, &exists);
                if (ret == 0)
                        it->result = exists ? DM_ECONFLICT : DM_ENOENT;
                return ret;
        }
        if (!same) {
                ret = tls_commit_endpoints(c, it);
                if (ret == 0)
                        ret = tls_commit_changes(c, it, name, now, event_fn, event_arg);
                if (ret < 0)
                        return ret;
        }
        it->result = 0;
        return 0;
}

static int sqlite_tls_commit(struct dm_store *st, struct dm_tls_commit *items, size_t n,
                             dm_tls_change_event_fn event_fn, void *event_arg)
{
        struct sqlite_store *s = sqlite_of(st);
        int64_t now = dm_now_ms();
        struct sqlite_conn *c = write_begin(s);
        int ret = tx_begin(c);
        if (ret < 0)
                goto out_unlock;
        for (size_t i = 0; i < n; i++) {
                ret = tls_commit_item(c, &items[i], now, event_fn, event_arg);
                if (ret < 0)
                        goto out_rollback;
        }
        ret = tx_commit(c);
        if (ret < 0)
                goto out_rollback;
        write_end(s);
        return 0;

out_rollback:
        tx_rollback(c);
        for (size_t i = 0; i < n; i++) {
                items[i].result = ret;
                for (size_t j = 0; j < items[i].nchanges; j++)
                        items[i].changes[j].id = 0;
        }
out_unlock:
        write_end(s);
        return ret;
}

static int sqlite_tls_current(struct dm_store *st, int64_t domain_id,
                              struct dm_tls_endpoint **ret_endpoints, size_t *ret_n)
{
        struct sqlite_store *s = sqlite_of(st);
        struct dm_tls_endpoint *eps = NULL;
        size_t n = 0, cap = 0;
        struct sqlite_conn *c = read_begin(s);
        sqlite3_stmt *stmt = NULL;
        int ret = stmt_get(c, STMT_TLS_CURRENT, &stmt);
        if (ret < 0)
                goto out_release;
        sqlite3_bind_int64(stmt, 1, domain_id);
        int rc;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
                ret = array_reserve((void **)&eps, &cap, n, sizeof(*eps));
                if (ret < 0)
                        break;
                struct dm_tls_endpoint *e = &eps[n++];
                memset(e, 0, sizeof(*e));
                e->port = (uint16_t)sqlite3_column_int(stmt, 0);
                col_copy(stmt, 1, e->address, sizeof(e->address));
                e->status = sqlite3_column_int(stmt, 2) == DM_TLS_OK ? DM_TLS_OK : DM_TLS_ERROR;
                col_copy(stmt, 3, e->error, sizeof(e->error));
                col_copy(stmt, 4, e->protocol, sizeof(e->protocol));
                e->chain_valid = sqlite3_column_int(stmt, 5) != 0;
                col_copy(stmt, 6, e->chain_error, sizeof(e->chain_error));
                col_copy(stmt, 7, e->sha256, sizeof(e->sha256));
                e->not_after = sqlite3_column_int64(stmt, 8);
                ret = col_strdup(stmt, 9, &e->cert);
                if (ret < 0)
                        break;
                e->checked_at = sqlite3_column_int64(stmt, 10);
                e->changed_at = sqlite3_column_int64(stmt, 11);
        }
        if (ret == 0 && rc != SQLITE_DONE)
                ret = sqlite_error(c, rc, "tls current");
        stmt_reset(stmt);
out_release:
        read_end(s, c);
        if (ret < 0) {
                dm_tls_endpoints_free(eps, n);
                return ret;
        }
        *ret_endpoints = eps;
        *ret_n = n;
        return 0;
}

static int sqlite_tls_change_list(struct dm_store *st, int64_t domain_id, int64_t before_id,
                                  size_t limit, struct dm_tls_change **ret_changes, size_t *ret_n)
{
        struct sqlite_store *s = sqlite_of(st);
        struct dm_tls_change *chs = NULL;
        size_t n = 0, cap = 0;
        struct sqlite_conn *c = read_begin(s);
        sqlite3_stmt *stmt = NULL;
        int ret = stmt_get(c, STMT_TLS_CHANGES, &stmt);
        if (ret < 0)
                goto out_release;
        sqlite3_bind_int64(stmt, 1, domain_id);
        sqlite3_bind_int64(stmt, 2, before_id > 0 ? before_id : INT64_MAX);
        sqlite3_bind_int64(stmt, 3, clamp_limit(limit));
        int rc;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
                ret = array_reserve((void **)&chs, &cap, n, sizeof(*chs));
                if (ret < 0)
                        break;
                struct dm_tls_change *ch = &chs[n++];
                memset(ch, 0, sizeof(*ch));
                ch->id = sqlite3_column_int64(stmt, 0);
                ch->domain_id = sqlite3_column_int64(stmt, 1);
                col_copy(stmt, 2, ch->domain, sizeof(ch->domain));
                ch->port = (uint16_t)sqlite3_column_int(stmt, 3);
                col_copy(stmt, 4, ch->address, sizeof(ch->address));
                ch->chain_valid = sqlite3_column_int(stmt, 5) != 0;
                ch->observed_at = sqlite3_column_int64(stmt, 6);
                ret = col_strdup(stmt, 7, &ch->before);
                if (ret == 0)
                        ret = col_strdup(stmt, 8, &ch->after);
                if (ret < 0)
                        break;
        }
        if (ret == 0 && rc != SQLITE_DONE)
                ret = sqlite_error(c, rc, "tls change list");
        stmt_reset(stmt);
out_release:
        read_end(s, c);
        if (ret < 0) {
                dm_tls_changes_free(chs, n);
                return ret;
        }
        *ret_changes = chs;
        *ret_n = n;
        return 0;
}

/* ---- outbox ---- */

static int sqlite_outbox_add(struct dm_store *st, const char *routing_key, const char *body)
{
        struct sqlite_store *s = sqlite_of(st);
        int64_t now = dm_now_ms();
        struct sqlite_conn *c = write_begin(s);
        int ret = outbox_insert_row(c, routing_key, body, now);
        write_end(s);
        return ret;
}

static int outbox_event_cmp(const void *a, const void *b)
{
        const struct dm_outbox_event *x = a, *y = b;
        return (x->id > y->id) - (x->id < y->id);
}

static int sqlite_outbox_claim(struct dm_store *st, int64_t owner, int64_t lease_ms, size_t limit,
                               int64_t now, struct dm_outbox_event **ret_events, size_t *ret_n)
{
        struct sqlite_store *s = sqlite_of(st);
        struct dm_outbox_event *events = NULL;
        size_t n = 0, cap = 0;
        struct sqlite_conn *c = write_begin(s);
        sqlite3_stmt *stmt = NULL;
        int ret = stmt_get(c, STMT_OUTBOX_CLAIM, &stmt);
        if (ret < 0)
                goto out_unlock;
        sqlite3_bind_int64(stmt, 1, owner);
        sqlite3_bind_int64(stmt, 2, now);
        sqlite3_bind_int64(stmt, 3, lease_ms);
        sqlite3_bind_int64(stmt, 4, clamp_limit(limit));
        int rc;
        /* Stepping to SQLITE_DONE is what commits; rows past a failed copy are still
         * claimed, and this owner takes them back on its next claim. */
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
                if (ret < 0)
                        continue;
                ret = array_reserve((void **)&events, &cap, n, sizeof(*events));
                if (ret < 0)
                        continue;
                struct dm_outbox_event *e = &events[n++];
                memset(e, 0, sizeof(*e));
                e->id = sqlite3_column_int64(stmt, 0);
                e->created_at = sqlite3_column_int64(stmt, 3);
                ret = col_strdup(stmt, 1, &e->routing_key);
                if (ret == 0)
                        ret = col_strdup(stmt, 2, &e->body);
        }
        if (ret == 0 && rc != SQLITE_DONE)
                ret = sqlite_error(c, rc, "outbox claim");
        stmt_reset(stmt);

out_unlock:
        write_end(s);
        if (ret < 0) {
                dm_outbox_events_free(events, n);
                return ret;
        }
        if (n > 1)
                qsort(events, n, sizeof(*events), outbox_event_cmp);
        *ret_events = events;
        *ret_n = n;
        return 0;
}

static int sqlite_outbox_delete(struct dm_store *st, int64_t owner, const int64_t *ids, size_t n,
                                size_t *ret_n)
{
        struct sqlite_store *s = sqlite_of(st);
        sqlite3_stmt *stmt = NULL;
        size_t deleted = 0;
        struct sqlite_conn *c = write_begin(s);
        int ret = tx_begin(c);
        if (ret < 0)
                goto out_unlock;
        ret = stmt_get(c, STMT_OUTBOX_DELETE, &stmt);
        if (ret < 0)
                goto out_rollback;
        for (size_t i = 0; i < n; i++) {
                sqlite3_bind_int64(stmt, 1, ids[i]);
                sqlite3_bind_int64(stmt, 2, owner);
                ret = stmt_run(c, stmt, "outbox delete");
                if (ret < 0)
                        goto out_rollback;
                deleted += (size_t)sqlite3_changes(c->db);
        }
        ret = tx_commit(c);
        if (ret < 0)
                goto out_rollback;
        write_end(s);
        *ret_n = deleted;
        return 0;

out_rollback:
        tx_rollback(c);
out_unlock:
        write_end(s);
        return ret;
}

static int sqlite_outbox_count(struct dm_store *st, size_t *ret_n)
{
        struct sqlite_store *s = sqlite_of(st);
        struct sqlite_conn *c = read_begin(s);
        sqlite3_stmt *stmt = NULL;
        int ret = stmt_get(c, STMT_OUTBOX_COUNT, &stmt);
        if (ret == 0)
                ret = stmt_count(c, stmt, "outbox count", ret_n);
        read_end(s, c);
        return ret;
}

/* ---- alerts ----
 * Few rows and rare calls next to the scans: these statements are prepared per call rather
 * than kept on every connection. */

#define ALERT_RULE_COLS "id, name, channel, target, secret, spec, created_at, updated_at"
#define ALERT_DLV_COLS                                                                             \
        "id, rule_id, event_key, routing_key, domain, body, status, attempts, last_error, "        \
        "next_attempt_at, delivered_at, created_at"

static int alert_prepare(struct sqlite_conn *c, const char *sql, sqlite3_stmt **ret_stmt)
{
        int rc = sqlite3_prepare_v2(c->db, sql, -1, ret_stmt, NULL);
        if (rc != SQLITE_OK) {
                *ret_stmt = NULL;
                return sqlite_error(c, rc, "prepare");
        }
        return 0;
}

static int alert_rule_from_row(sqlite3_stmt *stmt, struct dm_alert_rule *r)
{
        memset(r, 0, sizeof(*r));
        r->id = sqlite3_column_int64(stmt, 0);
        col_copy(stmt, 1, r->name, sizeof(r->name));
        if (dm_alert_channel_parse((const char *)sqlite3_column_text(stmt, 2), &r->channel) < 0)
                r->channel = DM_ALERT_CHANNEL_NONE; /* sends nothing */
        col_copy(stmt, 3, r->target, sizeof(r->target));
        col_copy(stmt, 4, r->secret, sizeof(r->secret));
        r->created_at = sqlite3_column_int64(stmt, 6);
        r->updated_at = sqlite3_column_int64(stmt, 7);
        return col_strdup(stmt, 5, &r->spec);
}

static int alert_delivery_from_row(sqlite3_stmt *stmt, struct dm_alert_delivery *d)
{
        memset(d, 0, sizeof(*d));
        d->id = sqlite3_column_int64(stmt, 0);
        d->rule_id = sqlite3_column_int64(stmt, 1);
        col_copy(stmt, 2, d->event_key, sizeof(d->event_key));
        col_copy(stmt, 3, d->routing_key, sizeof(d->routing_key));
        col_copy(stmt, 4, d->domain, sizeof(d->domain));
        if (dm_alert_status_parse((const char *)sqlite3_column_text(stmt, 6), &d->status) < 0)
                d->status = DM_ALERT_FAILED;
        d->attempts = (unsigned)sqlite3_column_int(stmt, 7);
        col_copy(stmt, 8, d->last_error, sizeof(d->last_error));
        d->next_attempt_at = sqlite3_column_int64(stmt, 9);
        d->delivered_at = sqlite3_column_int64(stmt, 10);
        d->created_at = sqlite3_column_int64(stmt, 11);
        return col_strdup(stmt, 5, &d->body);
}

static void alert_rule_bind(sqlite3_stmt *stmt, const struct dm_alert_rule *r)
{
        bind_text(stmt, 1, r->name);
        bind_text(stmt, 2, dm_alert_channel_name(r->channel));
        bind_text(stmt, 3, r->target);
        bind_text(stmt, 4, r->secret);
        bind_text(stmt, 5, r->spec);
}

static int sqlite_alert_rule_insert(struct dm_store *st, struct dm_alert_rule *rule)
{
        struct sqlite_store *s = sqlite_of(st);
        int64_t now = dm_now_ms();
        sqlite3_stmt *stmt = NULL;
        struct sqlite_conn *c = write_begin(s);
        int ret = alert_prepare(c,
                                "INSERT INTO alert_rules (name, channel, target, secret, spec, "
                                "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                                &stmt);
        if (ret == 0) {
                alert_rule_bind(stmt, rule);
                sqlite3_bind_int64(stmt, 6, now);
                int rc = sqlite3_step(stmt);
                if (rc == SQLITE_DONE) {
                        rule->id = sqlite3_last_insert_rowid(c->db);
                        rule->created_at = rule->updated_at = now;
                } else {
                        ret = sqlite_error(c, rc, "alert rule insert");
                }
        }
        sqlite3_finalize(stmt);
        write_end(s);
        return ret;
}

static int sqlite_alert_rule_get(struct dm_store *st, int64_t id, struct dm_alert_rule *ret_rule)
{
        struct sqlite_store *s = sqlite_of(st);
        sqlite3_stmt *stmt = NULL;
        struct sqlite_conn *c = read_begin(s);
        int ret =
            alert_prepare(c, "SELECT " ALERT_RULE_COLS " FROM alert_rules WHERE id = ?1", &stmt);
        if (ret == 0) {
                sqlite3_bind_int64(stmt, 1, id);
                int rc = sqlite3_step(stmt);
                if (rc == SQLITE_ROW) {
                        struct dm_alert_rule r;
                        ret = alert_rule_from_row(stmt, &r);
                        if (ret == 0)
                                *ret_rule = r;
                } else if (rc == SQLITE_DONE) {
                        ret = DM_ENOENT;
                } else {
                        ret = sqlite_error(c, rc, "alert rule get");
                }
        }
        sqlite3_finalize(stmt);
        read_end(s, c);
        return ret;
}

static int sqlite_alert_rule_update(struct dm_store *st, struct dm_alert_rule *rule)
{
        struct sqlite_store *s = sqlite_of(st);
        int64_t now = dm_now_ms();
        sqlite3_stmt *stmt = NULL;
        struct sqlite_conn *c = write_begin(s);
        int ret = alert_prepare(c,
                                "UPDATE alert_rules SET name = ?1, channel = ?2, target = ?3, "
                                "secret = ?4, spec = ?5, updated_at = max(updated_at, ?6) "
                                "WHERE id = ?7 RETURNING updated_at",
                                &stmt);
        if (ret == 0) {
                alert_rule_bind(stmt, rule);
                sqlite3_bind_int64(stmt, 6, now);
                sqlite3_bind_int64(stmt, 7, rule->id);
                int rc = sqlite3_step(stmt);
                if (rc == SQLITE_ROW) {
                        rule->updated_at = sqlite3_column_int64(stmt, 0);
                        rc = sqlite3_step(stmt);
                } else if (rc == SQLITE_DONE) {
                        ret = DM_ENOENT;
                }
                if (ret == 0 && rc != SQLITE_DONE)
                        ret = sqlite_error(c, rc, "alert rule update");
        }
        sqlite3_finalize(stmt);
        write_end(s);
        return ret;
}

static int sqlite_alert_rule_delete(struct dm_store *st, int64_t id)
{
        struct sqlite_store *s = sqlite_of(st);
        sqlite3_stmt *stmt = NULL;
        struct sqlite_conn *c = write_begin(s);
        int ret = alert_prepare(c, "DELETE FROM alert_rules WHERE id = ?1", &stmt);
        if (ret == 0) {
                sqlite3_bind_int64(stmt, 1, id);
                int rc = sqlite3_step(stmt);
                if (rc != SQLITE_DONE)
                        ret = sqlite_error(c, rc, "alert rule delete");
                else if (sqlite3_changes(c->db) == 0)
                        ret = DM_ENOENT;
        }
        sqlite3_finalize(stmt);
        write_end(s);
        return ret;
}

/* Steps `stmt` to the end, appending each row with `from_row` into a growing array of
 * `size`-byte items. On failure what was read is handed back for the caller to free. */
static int alert_collect(struct sqlite_conn *c, sqlite3_stmt *stmt, const char *what, size_t size,
                         int (*from_row)(sqlite3_stmt *, void *), void **items, size_t *n)
{
        size_t cap = 0;
        int ret = 0, rc;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
                if (ret < 0)
                        continue;
                ret = array_reserve(items, &cap, *n, size);
                if (ret < 0)
                        continue;
                ret = from_row(stmt, (char *)*items + *n * size);
                (*n)++;
        }
        if (ret == 0 && rc != SQLITE_DONE)
                ret = sqlite_error(c, rc, what);
        return ret;
}

static int rule_row(sqlite3_stmt *stmt, void *item)
{
        return alert_rule_from_row(stmt, item);
}

static int delivery_row(sqlite3_stmt *stmt, void *item)
{
        return alert_delivery_from_row(stmt, item);
}

static int sqlite_alert_rule_list(struct dm_store *st, int64_t after_id, size_t limit,
                                  struct dm_alert_rule **ret_rules, size_t *ret_n)
{
        struct sqlite_store *s = sqlite_of(st);
        sqlite3_stmt *stmt = NULL;
        void *items = NULL;
        size_t n = 0;
        struct sqlite_conn *c = read_begin(s);
        int ret = alert_prepare(
            c, "SELECT " ALERT_RULE_COLS " FROM alert_rules WHERE id > ?1 ORDER BY id LIMIT ?2",
            &stmt);
        if (ret == 0) {
                sqlite3_bind_int64(stmt, 1, after_id);
                sqlite3_bind_int64(stmt, 2, clamp_limit(limit));
                ret = alert_collect(c, stmt, "alert rule list", sizeof(struct dm_alert_rule),
                                    rule_row, &items, &n);
        }
        sqlite3_finalize(stmt);
        read_end(s, c);
        if (ret < 0) {
                dm_alert_rules_free(items, n);
                return ret;
        }
        *ret_rules = items;
        *ret_n = n;
        return 0;
}

static int expiry_row(sqlite3_stmt *stmt, void *item)
{
        struct dm_domain_expiry *e = item;
        memset(e, 0, sizeof(*e));
        e->id = sqlite3_column_int64(stmt, 0);
        col_copy(stmt, 1, e->name, sizeof(e->name));
        e->tls_expires_at = sqlite3_column_int64(stmt, 2);
        e->registration_expires_at = sqlite3_column_int64(stmt, 3);
        return 0;
}

static int sqlite_domain_expiring(struct dm_store *st, int64_t before, int64_t after_id,
                                  size_t limit, struct dm_domain_expiry **ret_items, size_t *ret_n)
{
        struct sqlite_store *s = sqlite_of(st);
        sqlite3_stmt *stmt = NULL;
        void *items = NULL;
        size_t n = 0;
        struct sqlite_conn *c = read_begin(s);
        int ret = alert_prepare(c,
                                "SELECT id, name, coalesce(tls_expires_at, 0), "
                                "coalesce(registration_expires_at, 0) FROM domains WHERE enabled "
                                "AND id > ?2 AND ((tls_expires_at > 0 AND tls_expires_at <= ?1) OR "
                                "(registration_expires_at > 0 AND registration_expires_at <= ?1)) "
                                "ORDER BY id LIMIT ?3",
                                &stmt);
        if (ret == 0) {
                sqlite3_bind_int64(stmt, 1, before);
                sqlite3_bind_int64(stmt, 2, after_id);
                sqlite3_bind_int64(stmt, 3, clamp_limit(limit));
                ret = alert_collect(c, stmt, "domain expiring", sizeof(struct dm_domain_expiry),
                                    expiry_row, &items, &n);
        }
        sqlite3_finalize(stmt);
        read_end(s, c);
        if (ret < 0) {
                free(items);
                return ret;
        }
        *ret_items = items;
        *ret_n = n;
        return 0;
}

static int sqlite_alert_delivery_add(struct dm_store *st, struct dm_alert_delivery *d, int64_t now,
                                     int64_t quiet_ms)
{
        struct sqlite_store *s = sqlite_of(st);
        sqlite3_stmt *stmt = NULL;
        struct sqlite_conn *c = write_begin(s);
        int ret = alert_prepare(
            c,
            "INSERT INTO alert_deliveries (rule_id, event_key, routing_key, domain, body, "
            "next_attempt_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, max(CASE WHEN ?6 > ?7 THEN "
            "coalesce((SELECT min(next_attempt_at) FROM alert_deliveries WHERE rule_id = ?1 AND "
            "status = 'pending' AND attempts = 0 AND next_attempt_at > ?7), ?6) ELSE ?6 END, "
            "CASE WHEN ?8 > 0 AND "
            "?4 <> '' THEN coalesce((SELECT max(delivered_at) FROM alert_deliveries WHERE "
            "rule_id = ?1 AND domain = ?4 AND status = 'delivered') + ?8, 0) ELSE 0 END), ?7) "
            "ON CONFLICT (rule_id, event_key) DO NOTHING RETURNING id, next_attempt_at",
            &stmt);
        if (ret == 0) {
                sqlite3_bind_int64(stmt, 1, d->rule_id);
                bind_text(stmt, 2, d->event_key);
                bind_text(stmt, 3, d->routing_key);
                bind_text(stmt, 4, d->domain);
                bind_text(stmt, 5, d->body);
                sqlite3_bind_int64(stmt, 6, d->next_attempt_at);
                sqlite3_bind_int64(stmt, 7, now);
                sqlite3_bind_int64(stmt, 8, quiet_ms);
                int rc = sqlite3_step(stmt);
                if (rc == SQLITE_ROW) {
                        d->id = sqlite3_column_int64(stmt, 0);
                        d->next_attempt_at = sqlite3_column_int64(stmt, 1);
                        d->created_at = now;
                        d->status = DM_ALERT_PENDING;
                        rc = sqlite3_step(stmt);
                } else if (rc == SQLITE_DONE) {
                        ret = DM_EEXIST;
                }
                if (ret == 0 && rc != SQLITE_DONE)
                        ret = sqlite_error(c, rc, "alert delivery add");
        }
        sqlite3_finalize(stmt);
        write_end(s);
        return ret;
}

static int alert_delivery_cmp(const void *a, const void *b)
{
        const struct dm_alert_delivery *x = a, *y = b;
        if (x->rule_id != y->rule_id)
                return (x->rule_id > y->rule_id) - (x->rule_id < y->rule_id);
        return (x->id > y->id) - (x->id < y->id);
}

static int sqlite_alert_delivery_claim(struct dm_store *st, int64_t owner, int64_t lease_ms,
                                       size_t limit, int64_t now, struct dm_alert_delivery **ret_d,
                                       size_t *ret_n)
{
        struct sqlite_store *s = sqlite_of(st);
        sqlite3_stmt *stmt = NULL;
        void *items = NULL;
        size_t n = 0;
        struct sqlite_conn *c = write_begin(s);
        int ret = alert_prepare(
            c,
            "UPDATE alert_deliveries SET claimed_by = ?1, claimed_until = ?2 + ?3 WHERE id IN "
            "(SELECT id FROM alert_deliveries WHERE status = 'pending' AND next_attempt_at <= ?2 "
            "AND (claimed_until IS NULL OR claimed_until <= ?2 OR claimed_by = ?1) ORDER BY "
            "rule_id, id LIMIT ?4) RETURNING " ALERT_DLV_COLS,
            &stmt);
        if (ret == 0) {
                sqlite3_bind_int64(stmt, 1, owner);
                sqlite3_bind_int64(stmt, 2, now);
                sqlite3_bind_int64(stmt, 3, lease_ms);
                sqlite3_bind_int64(stmt, 4, clamp_limit(limit));
                ret = alert_collect(c, stmt, "alert delivery claim",
                                    sizeof(struct dm_alert_delivery), delivery_row, &items, &n);
        }
        sqlite3_finalize(stmt);
        write_end(s);
        if (ret < 0) {
                dm_alert_deliveries_free(items, n);
                return ret;
        }
        if (n > 1)
                qsort(items, n, sizeof(struct dm_alert_delivery), alert_delivery_cmp);
        *ret_d = items;
        *ret_n = n;
        return 0;
}

static int sqlite_alert_delivery_finish(struct dm_store *st, int64_t owner,
                                        const struct dm_alert_delivery *d)
{
        struct sqlite_store *s = sqlite_of(st);
        sqlite3_stmt *stmt = NULL;
        struct sqlite_conn *c = write_begin(s);
        int ret = alert_prepare(c,
                                "UPDATE alert_deliveries SET status = ?3, attempts = ?4, "
                                "last_error = ?5, next_attempt_at = ?6, delivered_at = ?7, "
                                "claimed_by = NULL, claimed_until = NULL "
                                "WHERE id = ?1 AND claimed_by = ?2",
                                &stmt);
        if (ret == 0) {
                sqlite3_bind_int64(stmt, 1, d->id);
                sqlite3_bind_int64(stmt, 2, owner);
                bind_text(stmt, 3, dm_alert_status_name(d->status));
                sqlite3_bind_int64(stmt, 4, d->attempts);
                bind_text(stmt, 5, d->last_error[0] ? d->last_error : NULL);
                sqlite3_bind_int64(stmt, 6, d->next_attempt_at);
                bind_time(stmt, 7, d->delivered_at);
                int rc = sqlite3_step(stmt);
                if (rc != SQLITE_DONE)
                        ret = sqlite_error(c, rc, "alert delivery finish");
                else if (sqlite3_changes(c->db) == 0)
                        ret = DM_ENOENT;
        }
        sqlite3_finalize(stmt);
        write_end(s);
        return ret;
}

static int sqlite_alert_delivery_list(struct dm_store *st, int64_t rule_id, int64_t before_id,
                                      size_t limit, struct dm_alert_delivery **ret_d, size_t *ret_n)
{
        struct sqlite_store *s = sqlite_of(st);
        sqlite3_stmt *stmt = NULL;
        void *items = NULL;
        size_t n = 0;
        struct sqlite_conn *c = read_begin(s);
        int ret = alert_prepare(c,
                                "SELECT " ALERT_DLV_COLS " FROM alert_deliveries WHERE rule_id = "
                                "?1 AND (?2 = 0 OR id < ?2) ORDER BY id DESC LIMIT ?3",
                                &stmt);
        if (ret == 0) {
                sqlite3_bind_int64(stmt, 1, rule_id);
                sqlite3_bind_int64(stmt, 2, before_id);
                sqlite3_bind_int64(stmt, 3, clamp_limit(limit));
                ret = alert_collect(c, stmt, "alert delivery list",
                                    sizeof(struct dm_alert_delivery), delivery_row, &items, &n);
        }
        sqlite3_finalize(stmt);
        read_end(s, c);
        if (ret < 0) {
                dm_alert_deliveries_free(items, n);
                return ret;
        }
        *ret_d = items;
        *ret_n = n;
        return 0;
}

/* ---- registration ---- */

static int sqlite_reg_claim_due(struct dm_store *st, int64_t now, int64_t interval_ms,
                                bool default_registration, size_t limit,
                                struct dm_reg_task *ret_tasks, size_t *ret_n, size_t *ret_skipped)
{
        struct sqlite_store *s = sqlite_of(st);
        sqlite3_stmt *stmt = NULL;
        size_t n = 0, skipped = 0;
        struct sqlite_conn *c = write_begin(s);
        int ret = stmt_get(c, STMT_REG_CLAIM, &stmt);
        if (ret < 0)
                goto out_unlock;
        sqlite3_bind_int64(stmt, 1, now);
        sqlite3_bind_int64(stmt, 2, interval_ms);
        sqlite3_bind_int64(stmt, 3, clamp_limit(limit));
        sqlite3_bind_int(stmt, 4, default_registration);
        sqlite3_bind_int64(stmt, 5, DM_STORE_REG_WALK);
        int rc;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
                if (!sqlite3_column_int(stmt, 3)) {
                        skipped++;
                        continue;
                }
                if (n >= limit)
                        continue;
                struct dm_reg_task *t = &ret_tasks[n++];
                memset(t, 0, sizeof(*t));
                t->domain_id = sqlite3_column_int64(stmt, 0);
                col_copy(stmt, 1, t->name, sizeof(t->name));
                t->checks = dm_store_checks_from_text((const char *)sqlite3_column_text(stmt, 2),
                                                      t->domain_id);
        }
        if (rc != SQLITE_DONE)
                ret = sqlite_error(c, rc, "registration claim");
        stmt_reset(stmt);
        if (ret == 0) {
                *ret_n = n;
                *ret_skipped = skipped;
        }
out_unlock:
        write_end(s);
        return ret;
}

static int sqlite_reg_defer(struct dm_store *st, int64_t domain_id, int64_t at)
{
        struct sqlite_store *s = sqlite_of(st);
        sqlite3_stmt *stmt = NULL;
        struct sqlite_conn *c = write_begin(s);
        int ret = stmt_get(c, STMT_REG_DEFER, &stmt);
        if (ret == 0) {
                sqlite3_bind_int64(stmt, 1, domain_id);
                sqlite3_bind_int64(stmt, 2, at);
                ret = stmt_run(c, stmt, "registration defer");
        }
        write_end(s);
        return ret;
}

static int sqlite_reg_get(struct dm_store *st, int64_t domain_id, struct dm_reg_state *ret_state)
{
        struct sqlite_store *s = sqlite_of(st);
        struct dm_reg_state r;
        sqlite3_stmt *stmt = NULL;
        struct sqlite_conn *c = read_begin(s);
        int ret = stmt_get(c, STMT_REG_GET, &stmt);
        if (ret < 0)
                goto out_release;
        sqlite3_bind_int64(stmt, 1, domain_id);
        int rc = sqlite3_step(stmt);
        if (rc == SQLITE_DONE) {
                ret = DM_ENOENT;
        } else if (rc != SQLITE_ROW) {
                ret = sqlite_error(c, rc, "registration get");
        } else {
                memset(&r, 0, sizeof(r));
                r.domain_id = domain_id;
                r.status = sqlite3_column_int(stmt, 0);
                r.source = sqlite3_column_int(stmt, 1);
                col_copy(stmt, 2, r.registrable, sizeof(r.registrable));
                ret = col_strdup(stmt, 3, &r.error);
                if (ret == 0)
                        ret = col_strdup(stmt, 4, &r.data);
                if (ret == 0)
                        ret = col_strdup(stmt, 5, &r.raw);
                r.checked_at = sqlite3_column_int64(stmt, 6);
                r.changed_at = sqlite3_column_int64(stmt, 7);
                if (ret == 0)
                        *ret_state = r;
                else
                        dm_reg_state_done(&r);
        }
        stmt_reset(stmt);
out_release:
        read_end(s, c);
        return ret;
}

static int reg_commit_tx(struct sqlite_conn *c, const struct dm_reg_commit *rc_,
                         dm_reg_change_event_fn event_fn, void *event_arg, int64_t *ret_id)
{
        sqlite3_stmt *stmt = NULL;
        char name[DM_NAME_MAX + 1] = "";
        int64_t stored_changed = 0;
        int ret, rc;

        ret = stmt_get(c, STMT_REG_CHANGED_AT, &stmt);
        if (ret < 0)
                return ret;
        sqlite3_bind_int64(stmt, 1, rc_->domain_id);
        rc = sqlite3_step(stmt);
        if (rc != SQLITE_ROW) {
                ret = sqlite_error(c, rc, "registration commit");
                stmt_reset(stmt);
                return ret;
        }
        bool exists = sqlite3_column_type(stmt, 0) != SQLITE_NULL;
        col_copy(stmt, 0, name, sizeof(name));
        stored_changed = sqlite3_column_int64(stmt, 1);
        stmt_reset(stmt);
        if (!exists)
                return DM_ENOENT;
        if (rc_->data && stored_changed != rc_->old_changed_at)
                return DM_ECONFLICT;

        if (rc_->data) {
                ret = stmt_get(c, STMT_REG_UPSERT_DATA, &stmt);
                if (ret < 0)
                        return ret;
                sqlite3_bind_int64(stmt, 1, rc_->domain_id);
                sqlite3_bind_int(stmt, 2, rc_->status);
                sqlite3_bind_int(stmt, 3, rc_->source);
                bind_text(stmt, 4, rc_->registrable ? rc_->registrable : "");
                bind_text(stmt, 5, rc_->error);
                bind_text(stmt, 6, rc_->data);
                bind_text(stmt, 7, rc_->raw);
                sqlite3_bind_int64(stmt, 8, rc_->checked_at);
                sqlite3_bind_int64(stmt, 9, rc_->fields ? rc_->checked_at : stored_changed);
        } else {
                ret = stmt_get(c, STMT_REG_UPSERT_STATUS, &stmt);
                if (ret < 0)
                        return ret;
                sqlite3_bind_int64(stmt, 1, rc_->domain_id);
                sqlite3_bind_int(stmt, 2, rc_->status);
                sqlite3_bind_int(stmt, 3, rc_->source);
                bind_text(stmt, 4, rc_->registrable ? rc_->registrable : "");
                bind_text(stmt, 5, rc_->error);
                sqlite3_bind_int64(stmt, 6, rc_->checked_at);
        }
        ret = stmt_run(c, stmt, "registration upsert");
        if (ret < 0 || !rc_->data)
                return ret;

        ret = stmt_get(c, STMT_REG_EXPIRES, &stmt);
        if (ret < 0)
                return ret;
        sqlite3_bind_int64(stmt, 1, rc_->domain_id);
        bind_time(stmt, 2, rc_->expires_at);
        ret = stmt_run(c, stmt, "registration expiry");
        if (ret < 0 || !rc_->fields)
                return ret;

        ret = stmt_get(c, STMT_REG_CHANGE_INSERT, &stmt);
        if (ret < 0)
                return ret;
        sqlite3_bind_int64(stmt, 1, rc_->domain_id);
        sqlite3_bind_int64(stmt, 2, rc_->checked_at);
        bind_text(stmt, 3, rc_->fields);
        ret = stmt_run(c, stmt, "registration change");
        if (ret < 0)
                return ret;
        struct dm_reg_change ch = {.id = sqlite3_last_insert_rowid(c->db),
                                   .domain_id = rc_->domain_id,
                                   .observed_at = rc_->checked_at,
                                   .fields = (char *)rc_->fields};
        memcpy(ch.domain, name, sizeof(name));
        *ret_id = ch.id;
        if (!event_fn)
                return 0;
        char *body = event_fn(&ch, event_arg);
        if (!body)
                return DM_ENOMEM;
        ret = outbox_insert_row(c, DM_EVENT_CHANGE_REGISTRATION, body, rc_->checked_at);
        free(body);
        return ret;
}

static int sqlite_reg_commit(struct dm_store *st, const struct dm_reg_commit *rc_,
                             dm_reg_change_event_fn event_fn, void *event_arg,
                             int64_t *ret_change_id)
{
        struct sqlite_store *s = sqlite_of(st);
        int64_t id = 0;
        struct sqlite_conn *c = write_begin(s);
        int ret = tx_begin(c);
        if (ret < 0)
                goto out_unlock;
        ret = reg_commit_tx(c, rc_, event_fn, event_arg, &id);
        if (ret == 0)
                ret = tx_commit(c);
        if (ret < 0)
                tx_rollback(c);
        else
                *ret_change_id = id;
out_unlock:
        write_end(s);
        return ret;
}

static int sqlite_reg_changes(struct dm_store *st, int64_t domain_id, int64_t before_id,
                              size_t limit, struct dm_reg_change **ret_changes, size_t *ret_n)
{
        struct sqlite_store *s = sqlite_of(st);
        struct dm_reg_change *changes = NULL;
        size_t n = 0, cap = 0;
        sqlite3_stmt *stmt = NULL;
        struct sqlite_conn *c = read_begin(s);
        int ret = stmt_get(c, STMT_REG_CHANGES, &stmt);
        if (ret < 0)
                goto out_release;
        sqlite3_bind_int64(stmt, 1, domain_id);
        sqlite3_bind_int64(stmt, 2, before_id);
        sqlite3_bind_int64(stmt, 3, clamp_limit(limit));
        int rc;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
                ret = array_reserve((void **)&changes, &cap, n, sizeof(*changes));
                if (ret < 0)
                        break;
                struct dm_reg_change *ch = &changes[n++];
                memset(ch, 0, sizeof(*ch));
                ch->id = sqlite3_column_int64(stmt, 0);
                ch->domain_id = sqlite3_column_int64(stmt, 1);
                col_copy(stmt, 2, ch->domain, sizeof(ch->domain));
                ch->observed_at = sqlite3_column_int64(stmt, 3);
                ret = col_strdup(stmt, 4, &ch->fields);
                if (ret < 0)
                        break;
        }
        if (ret == 0 && rc != SQLITE_DONE)
                ret = sqlite_error(c, rc, "registration history");
        stmt_reset(stmt);
out_release:
        read_end(s, c);
        if (ret < 0) {
                dm_reg_changes_free(changes, n);
                return ret;
        }
        *ret_changes = changes;
        *ret_n = n;
        return 0;
}

static int sqlite_wipe(struct dm_store *st)
{
        struct sqlite_store *s = sqlite_of(st);
        struct sqlite_conn *c = write_begin(s);
        int ret = conn_exec(c, "BEGIN IMMEDIATE; DELETE FROM alert_deliveries; DELETE FROM "
                               "alert_rules; DELETE FROM outbox; DELETE FROM dns_changes; "
                               "DELETE FROM tls_changes; DELETE FROM tls_current; "
                               "DELETE FROM registration_changes; "
                               "DELETE FROM registration_current; "
                               "DELETE FROM dns_current; DELETE FROM api_keys; "
                               "DELETE FROM sessions; DELETE FROM settings; "
                               "DELETE FROM domains; COMMIT;");
        if (ret < 0)
                tx_rollback(c);
        write_end(s);
        return ret;
}

const struct dm_store_ops dm_store_sqlite_ops = {
    .name = "sqlite",
    .caps = DM_STORE_CAP_EMBEDDED,
    .open = sqlite_open,
    .free = sqlite_free,
    .migrate = sqlite_migrate,
    .ping = sqlite_ping,
    .domain_insert = sqlite_domain_insert,
    .domain_insert_many = sqlite_domain_insert_many,
    .domain_get = sqlite_domain_get,
    .domain_update = sqlite_domain_update,
    .domain_delete = sqlite_domain_delete,
    .domain_list = sqlite_domain_list,
    .domain_request_scan = sqlite_domain_request_scan,
    .domain_request_scan_all = sqlite_domain_request_scan_all,
    .domain_count = sqlite_domain_count,
    .key_insert = sqlite_key_insert,
    .key_insert_first = sqlite_key_insert_first,
    .key_get = sqlite_key_get,
    .key_list = sqlite_key_list,
    .key_revoke = sqlite_key_revoke,
    .key_touch = sqlite_key_touch,
    .key_count_active = sqlite_key_count_active,
    .session_insert = sqlite_session_insert,
    .session_get = sqlite_session_get,
    .session_delete = sqlite_session_delete,
    .setting_init = sqlite_setting_init,
    .claim_due = sqlite_claim_due,
    .dns_current = sqlite_dns_current,
    .dns_commit = sqlite_dns_commit,
    .change_list = sqlite_change_list,
    .history_prune = sqlite_history_prune,
    .reg_claim_due = sqlite_reg_claim_due,
    .reg_defer = sqlite_reg_defer,
    .reg_get = sqlite_reg_get,
    .reg_commit = sqlite_reg_commit,
    .reg_changes = sqlite_reg_changes,
    .outbox_add = sqlite_outbox_add,
    .outbox_claim = sqlite_outbox_claim,
    .outbox_delete = sqlite_outbox_delete,
    .outbox_count = sqlite_outbox_count,
    .alert_rule_insert = sqlite_alert_rule_insert,
    .alert_rule_get = sqlite_alert_rule_get,
    .alert_rule_update = sqlite_alert_rule_update,
    .alert_rule_delete = sqlite_alert_rule_delete,
    .alert_rule_list = sqlite_alert_rule_list,
    .domain_expiring = sqlite_domain_expiring,
    .alert_delivery_add = sqlite_alert_delivery_add,
    .alert_delivery_claim = sqlite_alert_delivery_claim,
    .alert_delivery_finish = sqlite_alert_delivery_finish,
    .alert_delivery_list = sqlite_alert_delivery_list,
    .wipe = sqlite_wipe,
    .tls_commit = sqlite_tls_commit,
    .tls_current = sqlite_tls_current,
    .tls_change_list = sqlite_tls_change_list,
};
