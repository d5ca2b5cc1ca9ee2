/* The PostgreSQL store backend (libpq): the store for several processes on several machines.
 *
 * Connections: a small pool. A call borrows one connection (mutex + condition variable),
 * uses it alone and gives it back, so each PGconn is used by one thread at a time. A
 * connection is made when a slot is first borrowed and made again after it broke: a call
 * that finds the server gone returns DM_ESTORE (the caller retries) and its connection is
 * closed; the next borrower of the slot connects afresh. connect_timeout, TCP keepalives and
 * tcp_user_timeout bound every wait on a dead server.
 *
 * Statements: prepared once per connection (PQprepare on first use, then PQexecPrepared)
 * with every parameter cast in the SQL text and sent in binary, results read in binary. A
 * batch travels as array parameters (unnest), one statement per kind of row rather than one
 * per row; rows that are only appended (history, events) go by binary COPY.
 *
 * Concurrency: the scheduler claims with FOR UPDATE SKIP LOCKED, so schedulers in several
 * processes never claim a domain twice and never wait for one another. A commit locks its
 * domains in id order before writing, so two commits never deadlock. Migrations and the
 * first API key are serialized between processes with advisory locks. */
#include "store_int.h"

#include "dm/buf.h"
#include "dm/embed.h"
#include "dm/error.h"
#include "dm/log.h"
#include "dm/time.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_POOL_SIZE 4
#define PG_TYPES_TEXT_MAX 512 /* 32 type names of at most 10 bytes plus commas */
/* Use within this window is not written again (as in the SQLite backend). */
#define PG_KEY_TOUCH_COALESCE_MS 60000
/* Advisory locks of this project: the pair (class, object) keeps them apart from other
 * applications sharing the database. */
#define PG_LOCK_CLASS 0x646d6f6e /* "dmon" */
#define PG_LOCK_MIGRATE 1
#define PG_LOCK_FIRST_KEY 2
/* A migration waits this long for another process's migrations before giving up. */
#define PG_MIGRATE_LOCK_TIMEOUT "SET lock_timeout = '600s'"
/* Most bytes one array parameter or COPY may hold (PostgreSQL takes 1 GB in one value). */
#define PG_VALUES_MAX (512u << 20)

/* Type OIDs of the binary parameters and array elements (pg_type.h; fixed forever). */
enum {
        PG_OID_BOOL = 16,
        PG_OID_BYTEA = 17,
        PG_OID_INT8 = 20,
        PG_OID_INT2 = 21,
        PG_OID_INT4 = 23,
        PG_OID_TEXT = 25,
};

enum pg_stmt_id {
        STMT_PING,
        STMT_LOCK,
        STMT_UNLOCK,
        STMT_XACT_LOCK,
        STMT_MIGRATION_APPLIED,
        STMT_MIGRATION_RECORD,
        STMT_DOMAIN_INSERT,
        STMT_DOMAIN_INSERT_MANY,
        STMT_DOMAIN_GET,
        STMT_DOMAIN_UPDATE,
        STMT_DOMAIN_DELETE,
        STMT_DOMAIN_DELETE_CURRENT,
        STMT_DOMAIN_DELETE_CHANGES,
        STMT_DOMAIN_LIST,
        STMT_DOMAIN_REQUEST_SCAN,
        STMT_DOMAIN_REQUEST_SCAN_ALL,
        STMT_DOMAIN_COUNT,
        STMT_KEY_INSERT,
        STMT_KEY_GET,
        STMT_KEY_LIST,
        STMT_KEY_REVOKE,
        STMT_KEY_TOUCH,
        STMT_KEY_COUNT_ACTIVE,
        STMT_CLAIM,
        STMT_CURRENT,
        STMT_COMMIT_LOCK,
        STMT_COMMIT_DOMAINS,
        STMT_COMMIT_PRUNE,
        STMT_COMMIT_ROWS,
        STMT_COMMIT_IDS,
        STMT_OUTBOX_INSERT,
        STMT_CHANGES_ALL,
        STMT_CHANGES_DOMAIN,
        STMT_HISTORY_PRUNE,
        STMT_OUTBOX_CLAIM,
        STMT_OUTBOX_DELETE,
        STMT_OUTBOX_COUNT,
        STMT_COUNT
};

#define DOMAIN_COLS                                                                                \
        "id, name, unicode_name, enabled, interval_ms, record_types, created_at, updated_at, "     \
        "next_check_at, last_checked_at, last_changed_at, status, status_error, dns_fp"
#define KEY_COLS "id, key_id, name, scope, hash, created_at, last_used_at, revoked_at"
#define KEY_VALUES "$1::text, $2::text, $3::text, $4::bytea, $5::bigint, $6::bigint, $7::bigint"
/* A history read, newest first, of up to $5 entries, and of those only the ones whose
 * predecessors' sets hold at most $6 bytes ($6 = 0: no bound): the entry that passes the
 * bound is the last one. The running total is taken on the server (octet_length reads a
 * stored value's size without reading the value), so that entries past the bound are never
 * sent; the bytes counted are dm_change_size's. */
#define CHANGE_SIZE                                                                                \
        "(coalesce(octet_length(c.before), 0) + octet_length(c.after) + "                          \
        "octet_length(c.added) + octet_length(c.removed))"
#define CHANGE_SELECT                                                                              \
        "SELECT id, domain_id, name, type, status, observed_at, before, after, added, removed "    \
        "FROM (SELECT c.id, c.domain_id, d.name, c.type, c.status, c.observed_at, c.before, "      \
        "c.after, c.added, c.removed, sum(" CHANGE_SIZE ") OVER (ORDER BY c.id DESC ROWS "         \
        "UNBOUNDED PRECEDING) - " CHANGE_SIZE " AS earlier "                                       \
        "FROM dns_changes AS c JOIN domains AS d ON d.id = c.domain_id "
#define CHANGE_FILTERS                                                                             \
        "c.id < $1::bigint AND ($2::integer = 0 OR c.type = $2) AND "                              \
        "($3::bigint = 0 OR c.observed_at >= $3) AND ($4::bigint = 0 OR c.observed_at < $4) "      \
        "ORDER BY c.id DESC LIMIT $5::bigint) AS p WHERE $6::bigint = 0 OR p.earlier <= $6 "       \
        "ORDER BY p.id DESC"

static const char *const pg_stmt_sql[STMT_COUNT] = {
    [STMT_PING] = "SELECT 1",
    [STMT_LOCK] = "SELECT pg_advisory_lock($1::integer, $2::integer)",
    [STMT_UNLOCK] = "SELECT pg_advisory_unlock($1::integer, $2::integer)",
    [STMT_XACT_LOCK] = "SELECT pg_advisory_xact_lock($1::integer, $2::integer)",
    [STMT_MIGRATION_APPLIED] = "SELECT 1 FROM schema_migrations WHERE version = $1::bigint",
    [STMT_MIGRATION_RECORD] = "INSERT INTO schema_migrations (version, name, applied_at) "
                              "VALUES ($1::bigint, $2::text, $3::bigint)",
    /* Conflicts are an answer (DM_EEXIST), not an error to log. */
    [STMT_DOMAIN_INSERT] =
        "INSERT INTO domains (name, unicode_name, enabled, interval_ms, record_types, "
        "created_at, updated_at, next_check_at, status, phase_ms) VALUES ($1::text, $2::text, "
        "$3::boolean, $4::bigint, $5::text, $6::bigint, $6, $6, $7::smallint, $8::bigint) "
        "ON CONFLICT (name) DO NOTHING RETURNING " DOMAIN_COLS,
    /* Names are unique within the arrays (the caller drops repeats); ids follow the order
     * of the batch. */
    [STMT_DOMAIN_INSERT_MANY] =
        "INSERT INTO domains (name, unicode_name, enabled, interval_ms, record_types, "
        "created_at, updated_at, next_check_at, status, phase_ms) "
        "SELECT u.name, u.uname, u.enabled, u.iv, u.types, $6::bigint, $6, $6, $7::smallint, "
        "u.phase FROM unnest($1::text[], $2::text[], $3::boolean[], $4::bigint[], $5::text[], "
        "$8::bigint[]) WITH ORDINALITY AS u(name, uname, enabled, iv, types, phase, ord) "
        "ORDER BY u.ord ON CONFLICT (name) DO NOTHING RETURNING " DOMAIN_COLS,
    [STMT_DOMAIN_GET] = "SELECT " DOMAIN_COLS " FROM domains WHERE name = $1::text",
    /* As in SQLite: updated_at is the caller's when newer than the stored one, else now; a
     * shorter interval takes effect now rather than after the old, longer slot. */
    [STMT_DOMAIN_UPDATE] =
        "UPDATE domains SET enabled = CASE WHEN $5::boolean THEN $2::boolean ELSE enabled END, "
        "interval_ms = CASE WHEN $6::boolean THEN $3::bigint ELSE interval_ms END, "
        "record_types = CASE WHEN $7::boolean THEN $4::text ELSE record_types END, "
        "updated_at = CASE WHEN $8::bigint > updated_at THEN $8 ELSE $9::bigint END, "
        "next_check_at = CASE WHEN $6 AND $3 > 0 AND $3 <> interval_ms "
        "THEN least(next_check_at, $9 + $3) ELSE next_check_at END WHERE name = $1::text",
    /* A domain's rows elsewhere go with it, statement by statement in one transaction:
     * the first waits for a commit that holds the domain, and the next ones, with a
     * snapshot taken after it, see what that commit wrote. */
    [STMT_DOMAIN_DELETE] = "DELETE FROM domains WHERE name = $1::text RETURNING " DOMAIN_COLS,
    [STMT_DOMAIN_DELETE_CURRENT] = "DELETE FROM dns_current WHERE domain_id = $1::bigint",
    [STMT_DOMAIN_DELETE_CHANGES] = "DELETE FROM dns_changes WHERE domain_id = $1::bigint",
    [STMT_DOMAIN_LIST] = "SELECT " DOMAIN_COLS " FROM domains WHERE name > $1::text AND "
                         "($2::text IS NULL OR name ILIKE $2 OR unicode_name ILIKE $2) "
                         "ORDER BY name LIMIT $3::bigint",
    [STMT_DOMAIN_REQUEST_SCAN] =
        "UPDATE domains SET next_check_at = least(next_check_at, $2::bigint) WHERE name = $1::text",
    /* Rows already due are not rewritten; every enabled domain is counted. The rows are
     * locked in id order, as a commit locks its batch: a plain UPDATE takes them in the
     * order of the table and deadlocks with the commits of running DNS services. */
    [STMT_DOMAIN_REQUEST_SCAN_ALL] =
        "WITH moved AS (UPDATE domains SET next_check_at = $1::bigint WHERE id IN "
        "(SELECT id FROM domains WHERE enabled AND next_check_at > $1 ORDER BY id FOR UPDATE) "
        "RETURNING 1) SELECT count(*) FROM domains WHERE enabled",
    [STMT_DOMAIN_COUNT] = "SELECT count(*) FROM domains",
    [STMT_KEY_INSERT] = "INSERT INTO api_keys (key_id, name, scope, hash, created_at, "
                        "last_used_at, revoked_at) VALUES (" KEY_VALUES ") "
                        "ON CONFLICT (key_id) DO NOTHING RETURNING id",
    [STMT_KEY_GET] = "SELECT " KEY_COLS " FROM api_keys WHERE key_id = $1::text",
    [STMT_KEY_LIST] = "SELECT " KEY_COLS " FROM api_keys ORDER BY created_at DESC, id DESC",
    [STMT_KEY_REVOKE] = "UPDATE api_keys SET revoked_at = $2::bigint "
                        "WHERE (key_id = $1::text OR name = $1) AND revoked_at IS NULL",
    [STMT_KEY_TOUCH] = "UPDATE api_keys SET last_used_at = $2::bigint WHERE id = $1::bigint AND "
                       "(last_used_at IS NULL OR last_used_at <= $2 - $3::bigint)",
    [STMT_KEY_COUNT_ACTIVE] = "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL",
    /* The SQLite backend's slot formula: the first instant after t = now + iv/2 that is
     * phase modulo iv, t + iv - ((t - phase) mod iv), the mod taken twice to stay
     * non-negative. The due rows are picked and locked by an InitPlan,
     * which runs once: rows another scheduler holds are skipped, and a row another one has
     * just moved fails the re-check of next_check_at <= now. `id = ANY (ARRAY(...))` makes
     * the update fetch the claimed rows by primary key; a join with the subquery would be
     * planned, in the generic plan of a prepared statement, as a hash of the whole table. */
    [STMT_CLAIM] = "UPDATE domains SET next_check_at = (SELECT $1::bigint + iv / 2 + iv - "
                   "((($1 + iv / 2 - phase_ms) % iv) + iv) % iv FROM (SELECT greatest(coalesce("
                   "nullif(interval_ms, 0), $2::bigint), $3::bigint)) AS s(iv)) "
                   "WHERE id = ANY (ARRAY(SELECT id FROM domains "
                   "WHERE enabled AND next_check_at <= $1 ORDER BY next_check_at, id "
                   "LIMIT $4::bigint FOR UPDATE SKIP LOCKED)) "
                   "RETURNING id, name, record_types, dns_fp",
    [STMT_CURRENT] = "SELECT type, status, ttl, vals, error, checked_at, changed_at, "
                     "answer_status FROM dns_current WHERE domain_id = $1::bigint ORDER BY type",
    /* Every domain of a batch, locked in id order: two commits with overlapping batches
     * wait for each other instead of deadlocking, and the fingerprints read here stay
     * true until the commit. */
    [STMT_COMMIT_LOCK] = "SELECT id, name, dns_fp FROM domains WHERE id = ANY($1::bigint[]) "
                         "ORDER BY id FOR UPDATE",
    /* The compare-and-swap, for changed and unchanged items alike, stays in the statement
     * although the rows are locked and the caller has compared already: the count of rows
     * written must match. An older check time never moves last_checked_at back (GREATEST
     * ignores a NULL). */
    [STMT_COMMIT_DOMAINS] =
        "UPDATE domains AS d SET last_checked_at = GREATEST(d.last_checked_at, u.checked_at), "
        "status = u.status, "
        "status_error = u.err, dns_fp = CASE WHEN u.swap THEN u.new_fp ELSE d.dns_fp END, "
        "last_changed_at = CASE WHEN u.changed THEN u.checked_at ELSE d.last_changed_at END "
        "FROM unnest($1::bigint[], $2::bigint[], $3::smallint[], $4::text[], $5::boolean[], "
        "$6::bytea[], $7::bytea[], $8::boolean[]) "
        "AS u(id, checked_at, status, err, swap, old_fp, new_fp, changed) "
        "WHERE d.id = u.id AND d.dns_fp IS NOT DISTINCT FROM u.old_fp",
    /* Rows of types the new states do not list. */
    [STMT_COMMIT_PRUNE] = "DELETE FROM dns_current AS c WHERE c.domain_id = ANY($1::bigint[]) "
                          "AND NOT EXISTS (SELECT 1 FROM unnest($2::bigint[], $3::integer[]) "
                          "AS k(id, type) WHERE k.id = c.domain_id AND k.type = c.type)",
    /* The SQLite upsert in two parts of one statement (both see the rows as they were
     * before it): rows that differ are updated, rows that are new inserted, identical rows
     * left alone. changed_at: the caller's when given, else moved only when values or
     * status did; a failed lookup ($9 is DM_RRS_ERROR) changes nothing, and a type that
     * has only ever failed keeps 0: it never held an answer. answer_status keeps the class
     * of the last real answer through failures ($10, DM_RRS_OK, before the first one). */
    [STMT_COMMIT_ROWS] =
        "WITH u AS (SELECT * FROM unnest($1::bigint[], $2::integer[], $3::smallint[], "
        "$4::bigint[], $5::text[], $6::text[], $7::bigint[], $8::bigint[]) "
        "AS u(id, type, status, ttl, vals, error, checked_at, changed_at)), "
        "upd AS (UPDATE dns_current AS c SET answer_status = CASE WHEN u.status = $9::smallint "
        "THEN c.answer_status ELSE u.status END, status = u.status, ttl = u.ttl, vals = u.vals, "
        "error = u.error, checked_at = u.checked_at, changed_at = CASE "
        "WHEN u.changed_at IS NOT NULL THEN u.changed_at "
        "WHEN u.status = $9 THEN c.changed_at "
        "WHEN c.vals = u.vals AND c.status = u.status THEN c.changed_at ELSE u.checked_at END "
        "FROM u WHERE c.domain_id = u.id AND c.type = u.type AND (c.vals <> u.vals OR "
        "c.status <> u.status OR c.ttl <> u.ttl OR c.error IS DISTINCT FROM u.error OR "
        "(u.changed_at IS NOT NULL AND c.changed_at <> u.changed_at))) "
        "INSERT INTO dns_current (domain_id, type, status, ttl, vals, error, checked_at, "
        "changed_at, answer_status) SELECT u.id, u.type, u.status, u.ttl, u.vals, u.error, "
        "u.checked_at, coalesce(u.changed_at, CASE WHEN u.status = $9 THEN 0 "
        "ELSE u.checked_at END), "
        "CASE WHEN u.status = $9 THEN $10::smallint ELSE u.status END FROM u "
        "WHERE NOT EXISTS (SELECT 1 FROM dns_current AS c "
        "WHERE c.domain_id = u.id AND c.type = u.type)",
    /* Ids for a batch's changes and events, taken before the rows are written so that the
     * event bodies can carry them. */
    [STMT_COMMIT_IDS] = "SELECT nextval('dns_changes_id_seq'), CASE WHEN $2::boolean THEN "
                        "nextval('outbox_id_seq') END FROM generate_series(1, $1::integer)",
    [STMT_OUTBOX_INSERT] = "INSERT INTO outbox (routing_key, body, created_at) "
                           "VALUES ($1::text, $2::text, $3::bigint)",
    [STMT_CHANGES_ALL] = CHANGE_SELECT "WHERE " CHANGE_FILTERS,
    /* Its own statement so that the (domain_id, id) index drives it. */
    [STMT_CHANGES_DOMAIN] = CHANGE_SELECT "WHERE c.domain_id = $7::bigint AND " CHANGE_FILTERS,
    /* Oldest first through the observed_at index (an incremental sort orders equal times by
     * id), a bounded batch per statement, fetched by primary key as in the claim. A pruner
     * in another process that picked the same entries waits for this short transaction and
     * finds them gone. */
    [STMT_HISTORY_PRUNE] =
        "DELETE FROM dns_changes WHERE id = ANY (ARRAY(SELECT id FROM dns_changes "
        "WHERE observed_at < $1::bigint ORDER BY observed_at, id LIMIT $2::bigint))",
    /* The scheduler's claim applied to events: the InitPlan picks and locks claimable rows
     * oldest first and skips those another relay's claim holds locked; a row another relay
     * claimed and committed after this statement's snapshot fails the re-check of the
     * claim condition on its new version. */
    [STMT_OUTBOX_CLAIM] =
        "UPDATE outbox SET claimed_by = $1::bigint, claimed_until = $2::bigint + $3::bigint "
        "WHERE id = ANY (ARRAY(SELECT id FROM outbox WHERE claimed_until IS NULL OR "
        "claimed_until <= $2 OR claimed_by = $1 ORDER BY id LIMIT $4::bigint "
        "FOR UPDATE SKIP LOCKED)) RETURNING id, routing_key, body, created_at",
    [STMT_OUTBOX_DELETE] =
        "DELETE FROM outbox WHERE id = ANY($1::bigint[]) AND claimed_by = $2::bigint",
    [STMT_OUTBOX_COUNT] = "SELECT count(*) FROM outbox",
};

struct pg_conn {
        PGconn *pq; /* NULL: not connected (yet, or since it broke) */
        bool prepared[STMT_COUNT];
        bool broken; /* closed when given back */
};

struct pg_store {
        struct dm_store base;
        char *url; /* as libpq takes it: the scheme lower-cased */

        pthread_mutex_t lock; /* guards idle and nidle */
        pthread_cond_t cond;
        struct pg_conn conns[PG_POOL_SIZE];
        struct pg_conn *idle[PG_POOL_SIZE];
        size_t nidle;

        atomic_bool down; /* the last connection attempt failed: logged once per outage */
};

static struct pg_store *pg_of(struct dm_store *st)
{
        return (struct pg_store *)st;
}

/* ---- parameters and arrays, in PostgreSQL's binary formats ---- */

#define PG_PARAMS_MAX 12

struct pg_params {
        int n;
        const char *values[PG_PARAMS_MAX];
        int lengths[PG_PARAMS_MAX];
        int formats[PG_PARAMS_MAX];
        unsigned char scratch[PG_PARAMS_MAX][8];
};

static void put_be(unsigned char *p, uint64_t v, int len)
{
        for (int i = len - 1; i >= 0; i--) {
                p[i] = (unsigned char)(v & 0xff);
                v >>= 8;
        }
}

static uint64_t get_be(const unsigned char *p, int len)
{
        uint64_t v = 0;
        for (int i = 0; i < len; i++)
                v = (v << 8) | p[i];
        return v;
}

static void param_raw(struct pg_params *p, const void *data, int len)
{
        p->values[p->n] = data;
        p->lengths[p->n] = len;
        p->formats[p->n] = 1;
        p->n++;
}

static void param_int(struct pg_params *p, int64_t v, int len)
{
        put_be(p->scratch[p->n], (uint64_t)v, len);
        param_raw(p, p->scratch[p->n], len);
}

static void param_i64(struct pg_params *p, int64_t v)
{
        param_int(p, v, 8);
}

static void param_i32(struct pg_params *p, int32_t v)
{
        param_int(p, v, 4);
}

static void param_i16(struct pg_params *p, int v)
{
        param_int(p, v, 2);
}

static void param_bool(struct pg_params *p, bool v)
{
        param_int(p, v ? 1 : 0, 1);
}

static void param_null(struct pg_params *p)
{
        param_raw(p, NULL, 0);
}

/* Text goes as its bytes in either format; NULL is SQL NULL. */
static void param_text(struct pg_params *p, const char *s)
{
        if (s)
                param_raw(p, s, (int)strlen(s));
        else
                param_null(p);
}

/* Unset times are NULL in the database and 0 in the structs. */
static void param_time(struct pg_params *p, int64_t t)
{
        if (t)
                param_i64(p, t);
        else
                param_null(p);
}

/* Length-prefixed binary values: the elements of an array parameter (array_init, then
 * param_array) or the fields of COPY rows (copy_init, copy_row, then copy_run). The first
 * failure sticks and is returned at the end. */
struct pg_vals {
        struct dm_buf b;
        uint32_t n; /* values (array elements) */
        int err;
};

static void vals_put(struct pg_vals *a, const void *data, size_t len)
{
        if (a->err == 0)
                a->err = dm_buf_add(&a->b, data, len);
}

static void array_init(struct pg_vals *a, uint32_t elem_oid)
{
        unsigned char h[20];
        memset(a, 0, sizeof(*a));
        dm_buf_init(&a->b, PG_VALUES_MAX);
        put_be(h, 1, 4);     /* dimensions */
        put_be(h + 4, 0, 4); /* flags (ignored on input) */
        put_be(h + 8, elem_oid, 4);
        put_be(h + 12, 0, 4); /* elements: patched by param_array */
        put_be(h + 16, 1, 4); /* lower bound */
        vals_put(a, h, sizeof(h));
}

static void vals_done(struct pg_vals *a)
{
        dm_buf_done(&a->b);
}

/* COPY ... FROM STDIN (FORMAT binary): a signature, flags and header extension length. */
static void copy_init(struct pg_vals *a)
{
        static const unsigned char h[19] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n',
                                            0,   0,   0,   0,   0,   0,   0,    0,    0};
        memset(a, 0, sizeof(*a));
        dm_buf_init(&a->b, PG_VALUES_MAX);
        vals_put(a, h, sizeof(h));
}

static void copy_row(struct pg_vals *a, int nfields)
{
        unsigned char f[2];
        put_be(f, (uint64_t)nfields, 2);
        vals_put(a, f, sizeof(f));
}

static void val_elem(struct pg_vals *a, const void *data, size_t len)
{
        unsigned char l[4];
        if (a->err == 0 && len > INT32_MAX)
                a->err = DM_E2BIG;
        put_be(l, data ? len : UINT32_MAX, 4); /* -1: NULL */
        vals_put(a, l, sizeof(l));
        if (data && len)
                vals_put(a, data, len);
        a->n++;
}

static void val_int(struct pg_vals *a, int64_t v, int len)
{
        unsigned char b[8];
        put_be(b, (uint64_t)v, len);
        val_elem(a, b, (size_t)len);
}

static void val_i64(struct pg_vals *a, int64_t v)
{
        val_int(a, v, 8);
}

static void val_i32(struct pg_vals *a, int32_t v)
{
        val_int(a, v, 4);
}

static void val_i16(struct pg_vals *a, int v)
{
        val_int(a, v, 2);
}

static void val_bool(struct pg_vals *a, bool v)
{
        val_int(a, v ? 1 : 0, 1);
}

static void val_text(struct pg_vals *a, const char *s)
{
        val_elem(a, s, s ? strlen(s) : 0);
}

static void val_time(struct pg_vals *a, int64_t t)
{
        if (t)
                val_i64(a, t);
        else
                val_elem(a, NULL, 0);
}

/* "No state" is NULL, so that `IS NOT DISTINCT FROM` matches it. */
static void val_fp(struct pg_vals *a, const uint8_t fp[DM_FP_LEN])
{
        val_elem(a, dm_store_fp_is_zero(fp) ? NULL : fp, DM_FP_LEN);
}

/* Adds the finished array as the next parameter. It must outlive the statement. */
static int param_array(struct pg_params *p, struct pg_vals *a)
{
        if (a->err < 0)
                return a->err;
        if (a->b.len > INT32_MAX)
                return DM_E2BIG;
        put_be((unsigned char *)a->b.data + 12, a->n, 4);
        param_raw(p, a->b.data, (int)a->b.len);
        return 0;
}

/* ---- results (binary) ---- */

static bool col_null(const PGresult *r, int row, int col)
{
        return PQgetisnull(r, row, col);
}

/* Integers of any width (and booleans); NULL is 0. */
static int64_t col_int(const PGresult *r, int row, int col)
{
        if (PQgetisnull(r, row, col))
                return 0;
        const unsigned char *p = (const unsigned char *)PQgetvalue(r, row, col);
        switch (PQgetlength(r, row, col)) {
        case 1:
                return p[0];
        case 2:
                return (int16_t)get_be(p, 2);
        case 4:
                return (int32_t)get_be(p, 4);
        case 8:
                return (int64_t)get_be(p, 8);
        default:
                return 0;
        }
}

static void col_copy(const PGresult *r, int row, int col, char *dst, size_t size)
{
        size_t len = PQgetisnull(r, row, col) ? 0 : (size_t)PQgetlength(r, row, col);
        if (len >= size)
                len = size - 1;
        if (len)
                memcpy(dst, PQgetvalue(r, row, col), len);
        dst[len] = '\0';
}

/* NULL stays NULL. */
static int col_strdup(const PGresult *r, int row, int col, char **ret_s)
{
        if (PQgetisnull(r, row, col)) {
                *ret_s = NULL;
                return 0;
        }
        char *copy = strndup(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
        if (!copy)
                return DM_ENOMEM;
        *ret_s = copy;
        return 0;
}

static void col_fp(const PGresult *r, int row, int col, uint8_t fp[DM_FP_LEN])
{
        if (!PQgetisnull(r, row, col) && PQgetlength(r, row, col) == DM_FP_LEN)
                memcpy(fp, PQgetvalue(r, row, col), DM_FP_LEN);
        else
                memset(fp, 0, DM_FP_LEN);
}

static void col_types(const PGresult *r, int row, int col, int64_t domain_id, uint16_t *types,
                      size_t *ret_n)
{
        char s[PG_TYPES_TEXT_MAX];
        col_copy(r, row, col, s, sizeof(s));
        dm_store_types_from_text(s, domain_id, types, ret_n);
}

/* Rows a statement wrote (INSERT, UPDATE, DELETE). */
static uint64_t pg_affected(const PGresult *r)
{
        const char *s = PQcmdTuples((PGresult *)r);
        return s && *s ? strtoull(s, NULL, 10) : 0;
}

static void domain_from_row(const PGresult *r, int row, struct dm_domain *d)
{
        memset(d, 0, sizeof(*d));
        d->id = col_int(r, row, 0);
        col_copy(r, row, 1, d->name, sizeof(d->name));
        col_copy(r, row, 2, d->unicode_name, sizeof(d->unicode_name));
        d->enabled = col_int(r, row, 3) != 0;
        d->interval_ms = col_int(r, row, 4);
        col_types(r, row, 5, d->id, d->record_types, &d->nrecord_types);
        d->created_at = col_int(r, row, 6);
        d->updated_at = col_int(r, row, 7);
        d->next_check_at = col_int(r, row, 8);
        d->last_checked_at = col_int(r, row, 9);
        d->last_changed_at = col_int(r, row, 10);
        d->status = (enum dm_check_status)col_int(r, row, 11);
        col_copy(r, row, 12, d->status_error, sizeof(d->status_error));
        col_fp(r, row, 13, d->dns_fp);
}

static void key_from_row(const PGresult *r, int row, struct dm_api_key *k)
{
        char scope[16];
        memset(k, 0, sizeof(*k));
        k->id = col_int(r, row, 0);
        col_copy(r, row, 1, k->key_id, sizeof(k->key_id));
        col_copy(r, row, 2, k->name, sizeof(k->name));
        col_copy(r, row, 3, scope, sizeof(scope));
        if (dm_scope_parse(scope, &k->scope) < 0)
                k->scope = DM_SCOPE_NONE; /* grants nothing */
        if (!col_null(r, row, 4) && PQgetlength(r, row, 4) == (int)sizeof(k->hash))
                memcpy(k->hash, PQgetvalue(r, row, 4), sizeof(k->hash));
        k->created_at = col_int(r, row, 5);
        k->last_used_at = col_int(r, row, 6);
        k->revoked_at = col_int(r, row, 7);
}

static int64_t clamp_limit(size_t limit)
{
        return limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)limit;
}

/* ---- connections ---- */

/* The first line of libpq's message (the rest is detail meant for a terminal). */
static const char *pg_message(char *buf, size_t size, const char *msg)
{
        size_t len = msg ? strcspn(msg, "\n") : 0;
        if (len >= size)
                len = size - 1;
        if (len)
                memcpy(buf, msg, len);
        buf[len] = '\0';
        return buf;
}

static void pg_notice(void *arg, const char *message)
{
        (void)arg;
        char m[256], q[300];
        dm_log_debug("store", "msg=\"postgres notice\" text=%s",
                     dm_log_quote(q, sizeof(q), pg_message(m, sizeof(m), message)));
}

/* Our defaults first and the URL after them: what the URL says wins, except the client
 * encoding, which the byte-exact text handling here depends on. A connection attempt gives
 * up after 10 s; an idle connection is probed after 30 s, every 10 s, 3 times; data the
 * server does not acknowledge within 60 s ends the connection. */
static PGconn *pg_connect(const char *url)
{
        static const char *const keys[] = {
            "connect_timeout",  "keepalives",
            "keepalives_idle",  "keepalives_interval",
            "keepalives_count", "tcp_user_timeout",
            "application_name", "dbname",
            "client_encoding",  NULL,
        };
        const char *values[] = {
            "10", "1", "30", "10", "3", "60000", "domainmon", url, "UTF8", NULL,
        };
        PGconn *pq = PQconnectdbParams(keys, values, 1);
        if (pq)
                PQsetNoticeProcessor(pq, pg_notice, NULL);
        return pq;
}

static void conn_close(struct pg_conn *c)
{
        PQfinish(c->pq);
        c->pq = NULL;
        c->broken = false;
        memset(c->prepared, 0, sizeof(c->prepared));
}

/* False when an idle connection's server went away. Its socket has then seen the end (and,
 * on a shutdown, a last error message first): reading what is there finds that without a
 * round trip and without blocking (libpq's socket never blocks). The second read gets to
 * the end after the message. */
static bool conn_alive(PGconn *pq)
{
        for (int i = 0; i < 2; i++) {
                if (PQconsumeInput(pq) == 0 || PQstatus(pq) != CONNECTION_OK)
                        return false;
        }
        return PQtransactionStatus(pq) == PQTRANS_IDLE;
}

/* Makes sure c holds a live connection. */
static int conn_ready(struct pg_store *s, struct pg_conn *c)
{
        if (c->pq && !conn_alive(c->pq))
                conn_close(c);
        if (c->pq)
                return 0;

        c->pq = pg_connect(s->url);
        if (!c->pq || PQstatus(c->pq) != CONNECTION_OK) {
                if (!atomic_exchange(&s->down, true)) {
                        char m[256], q[300];
                        dm_log_error("store", "msg=\"cannot connect to postgres\" err=%s",
                                     dm_log_quote(q, sizeof(q),
                                                  pg_message(m, sizeof(m),
                                                             c->pq ? PQerrorMessage(c->pq)
                                                                   : "out of memory")));
                }
                conn_close(c);
                return DM_ESTORE;
        }
        if (atomic_exchange(&s->down, false))
                dm_log_info("store", "msg=\"connected to postgres again\"");
        return 0;
}

/* Borrows a connection, waiting for one if all are in use, and connects it if needed. On
 * DM_ESTORE the slot has already been given back. */
static int pool_get(struct pg_store *s, struct pg_conn **ret_conn)
{
        pthread_mutex_lock(&s->lock);
        while (s->nidle == 0)
                pthread_cond_wait(&s->cond, &s->lock);
        struct pg_conn *c = s->idle[--s->nidle];
        pthread_mutex_unlock(&s->lock);

        int ret = conn_ready(s, c);
        if (ret < 0) {
                pthread_mutex_lock(&s->lock);
                s->idle[s->nidle++] = c;
                pthread_cond_signal(&s->cond);
                pthread_mutex_unlock(&s->lock);
                return ret;
        }
        *ret_conn = c;
        return 0;
}

/* Gives a connection back. One left inside a transaction (an error path that could not
 * roll back) or marked broken is closed: the next borrower starts clean. */
static void pool_put(struct pg_store *s, struct pg_conn *c)
{
        if (c->pq && !c->broken && PQtransactionStatus(c->pq) != PQTRANS_IDLE) {
                PGresult *r = PQexec(c->pq, "ROLLBACK");
                if (PQresultStatus(r) != PGRES_COMMAND_OK)
                        c->broken = true;
                PQclear(r);
        }
        if (c->broken)
                conn_close(c);
        pthread_mutex_lock(&s->lock);
        s->idle[s->nidle++] = c;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

/* SQLSTATEs after which the connection cannot be trusted: connection exceptions (class
 * 08), the server shutting down or crashing (57P01-57P03), a prepared statement the server
 * no longer knows (26000) or whose plan went stale under a schema change (0A000). */
static bool sqlstate_breaks(const char *state)
{
        return !state || strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0 ||
               strcmp(state, "26000") == 0 || strcmp(state, "0A000") == 0;
}

/* Maps a failed result; anything that is not an answer in its own right is logged here,
 * once, with the server's message. Frees r. */
static int pg_fail(struct pg_conn *c, PGresult *r, const char *what)
{
        const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        int ret = DM_ESTORE;
        if (state && strcmp(state, "23505") == 0) {
                ret = DM_EEXIST; /* unique_violation */
        } else {
                char m[256], q[300];
                const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(c->pq);
                dm_log_error("store", "msg=\"postgres call failed\" op=%s sqlstate=%s err=%s", what,
                             state ? state : "none",
                             dm_log_quote(q, sizeof(q), pg_message(m, sizeof(m), msg)));
                if (sqlstate_breaks(state) || PQstatus(c->pq) != CONNECTION_OK)
                        c->broken = true;
        }
        PQclear(r);
        return ret;
}

/* Runs a prepared statement (preparing it on this connection first if needed). On success
 * *ret_res (may be NULL: then the result is dropped) holds the result; free it with
 * PQclear. */
static int pg_run(struct pg_conn *c, enum pg_stmt_id id, const struct pg_params *p,
                  const char *what, PGresult **ret_res)
{
        char name[16];
        snprintf(name, sizeof(name), "dm%d", (int)id);
        if (!c->prepared[id]) {
                PGresult *r = PQprepare(c->pq, name, pg_stmt_sql[id], 0, NULL);
                if (PQresultStatus(r) != PGRES_COMMAND_OK)
                        return pg_fail(c, r, what);
                PQclear(r);
                c->prepared[id] = true;
        }
        PGresult *r = PQexecPrepared(c->pq, name, p ? p->n : 0, p ? p->values : NULL,
                                     p ? p->lengths : NULL, p ? p->formats : NULL, 1);
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
                return pg_fail(c, r, what);
        if (ret_res)
                *ret_res = r;
        else
                PQclear(r);
        return 0;
}

/* Runs SQL text with no parameters (transaction control, migrations, wipe). */
static int pg_exec(struct pg_conn *c, const char *sql, const char *what)
{
        PGresult *r = PQexec(c->pq, sql);
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
                return pg_fail(c, r, what);
        PQclear(r);
        return 0;
}

/* Ends the rows with the trailer and sends them with `sql`, a COPY ... FROM STDIN (FORMAT
 * binary). */
static int copy_run(struct pg_conn *c, const char *sql, struct pg_vals *v, const char *what)
{
        static const unsigned char trailer[2] = {0xff, 0xff}; /* -1 fields: the end */
        vals_put(v, trailer, sizeof(trailer));
        if (v->err < 0)
                return v->err;
        PGresult *r = PQexec(c->pq, sql);
        if (PQresultStatus(r) != PGRES_COPY_IN)
                return pg_fail(c, r, what);
        PQclear(r);
        bool sent = PQputCopyData(c->pq, v->b.data, (int)v->b.len) == 1;
        if (PQputCopyEnd(c->pq, sent ? NULL : "not sent") != 1)
                sent = false;
        int ret = 0;
        while ((r = PQgetResult(c->pq))) {
                if (PQresultStatus(r) != PGRES_COMMAND_OK && ret == 0)
                        ret = pg_fail(c, r, what);
                else
                        PQclear(r);
        }
        if (!sent && ret == 0)
                ret = pg_fail(c, NULL, what);
        return ret;
}

static int tx_begin(struct pg_conn *c)
{
        return pg_exec(c, "BEGIN", "begin");
}

static int tx_commit(struct pg_conn *c)
{
        return pg_exec(c, "COMMIT", "commit");
}

/* Statements whose one row holds one count. */
static int run_count(struct pg_conn *c, enum pg_stmt_id id, const struct pg_params *p,
                     const char *what, size_t *ret_n)
{
        PGresult *r = NULL;
        int ret = pg_run(c, id, p, what, &r);
        if (ret < 0)
                return ret;
        int64_t n = PQntuples(r) == 1 ? col_int(r, 0, 0) : 0;
        PQclear(r);
        *ret_n = n > 0 ? (size_t)n : 0;
        return 0;
}

/* Runs a statement keyed by name whose "no row matched" means DM_ENOENT. */
static int run_by_name(struct pg_conn *c, enum pg_stmt_id id, const struct pg_params *p,
                       const char *what)
{
        PGresult *r = NULL;
        int ret = pg_run(c, id, p, what, &r);
        if (ret < 0)
                return ret;
        if (pg_affected(r) == 0)
                ret = DM_ENOENT;
        PQclear(r);
        return ret;
}

/* ---- open, close, migrate ---- */

static void pg_free(struct dm_store *st)
{
        struct pg_store *s = pg_of(st);
        if (!s)
                return;
        for (size_t i = 0; i < PG_POOL_SIZE; i++)
                conn_close(&s->conns[i]);
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        free(s->url);
        free(s);
}

static int pg_open(const char *url, char *err, size_t errlen, struct dm_store **ret_store)
{
        struct pg_store *s = calloc(1, sizeof(*s));
        int ret = DM_ENOMEM;
        if (!s)
                return DM_ENOMEM;
        s->base.ops = &dm_store_pg_ops;
        s->url = strdup(url);
        if (!s->url)
                goto fail_free;
        /* libpq knows its schemes in lower case only. */
        for (char *p = s->url; *p && *p != ':'; p++) {
                if (*p >= 'A' && *p <= 'Z')
                        *p = (char)(*p - 'A' + 'a');
        }

        char *msg = NULL;
        PQconninfoOption *opts = PQconninfoParse(s->url, &msg);
        if (!opts) {
                char m[200];
                /* libpq's message names the bad part, never the password. */
                if (msg)
                        dm_errorf(0, err, errlen, "DATABASE_URL: not a valid PostgreSQL URL: %s",
                                  pg_message(m, sizeof(m), msg));
                ret = msg ? DM_EINVAL : DM_ENOMEM;
                PQfreemem(msg);
                goto fail_free;
        }
        PQconninfoFree(opts);

        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->cond, NULL);
        for (size_t i = 0; i < PG_POOL_SIZE; i++)
                s->idle[s->nidle++] = &s->conns[i];
        atomic_init(&s->down, false);

        /* One connection now, so that a wrong URL or an unreachable server stops start-up
         * with a reason; the others are made when first needed. */
        PGconn *pq = pg_connect(s->url);
        if (!pq || PQstatus(pq) != CONNECTION_OK) {
                char m[300];
                dm_errorf(0, err, errlen, "DATABASE_URL: cannot connect to PostgreSQL: %s",
                          pg_message(m, sizeof(m), pq ? PQerrorMessage(pq) : "out of memory"));
                PQfinish(pq);
                ret = DM_ESTORE;
                goto fail_destroy;
        }
        s->idle[s->nidle - 1]->pq = pq; /* the slot borrowed first */
        *ret_store = &s->base;
        return 0;

fail_destroy:
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
fail_free:
        free(s->url);
        free(s);
        return ret;
}

/* One migration in its own transaction. The advisory lock already keeps other processes
 * out; checking inside the transaction also covers one that does not take it. */
static int migration_apply(struct pg_conn *c, int64_t version, const char *name, const char *sql,
                           bool *ret_ran)
{
        struct pg_params p = {0};
        PGresult *r = NULL;
        int ret = tx_begin(c);
        if (ret < 0)
                return ret;
        param_i64(&p, version);
        ret = pg_run(c, STMT_MIGRATION_APPLIED, &p, "migrate", &r);
        if (ret < 0)
                return ret; /* pool_put rolls back */
        bool done = PQntuples(r) > 0;
        PQclear(r);
        if (done) {
                *ret_ran = false;
                return pg_exec(c, "ROLLBACK", "migrate");
        }

        r = PQexec(c->pq, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
                char m[256], q[300];
                dm_log_error(
                    "store", "msg=\"migration failed\" version=%lld name=%s err=%s",
                    (long long)version, name,
                    dm_log_quote(q, sizeof(q), pg_message(m, sizeof(m), PQresultErrorMessage(r))));
                const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
                PQclear(r);
                return sqlstate_breaks(state) ? DM_ESTORE : DM_EMIGRATE;
        }
        PQclear(r);

        p.n = 0;
        param_i64(&p, version);
        param_text(&p, name);
        param_i64(&p, dm_now_ms());
        ret = pg_run(c, STMT_MIGRATION_RECORD, &p, "migrate", NULL);
        if (ret == 0)
                ret = tx_commit(c);
        if (ret == 0)
                *ret_ran = true;
        return ret;
}

static int pg_migrate(struct dm_store *st, int *ret_applied)
{
        struct pg_store *s = pg_of(st);
        struct pg_conn *c;
        struct pg_params lock = {0};
        int applied = 0;
        int64_t last = 0;
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;

        /* Processes starting together wait here for the first one's migrations. */
        param_i32(&lock, PG_LOCK_CLASS);
        param_i32(&lock, PG_LOCK_MIGRATE);
        ret = pg_exec(c, PG_MIGRATE_LOCK_TIMEOUT, "migrate");
        if (ret == 0)
                ret = pg_run(c, STMT_LOCK, &lock, "migrate lock", NULL);
        if (ret < 0)
                goto out_put;
        ret = pg_exec(c,
                      "CREATE TABLE IF NOT EXISTS schema_migrations (version bigint PRIMARY KEY, "
                      "name text NOT NULL, applied_at bigint NOT NULL)",
                      "migrate");
        for (const struct dm_embed_file *f = dm_embed_sql_postgres; ret == 0 && f->name; f++) {
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
                        break;
                }
                last = version;
                ret = migration_apply(c, version, name, (const char *)f->data, &ran);
                applied += ran;
        }
        /* A broken connection took the lock with it. */
        if (!c->broken) {
                if (PQtransactionStatus(c->pq) != PQTRANS_IDLE)
                        (void)pg_exec(c, "ROLLBACK", "migrate");
                int r = pg_run(c, STMT_UNLOCK, &lock, "migrate unlock", NULL);
                if (r == 0)
                        r = pg_exec(c, "RESET lock_timeout", "migrate");
                if (ret == 0)
                        ret = r;
        }
        if (ret == 0 && ret_applied)
                *ret_applied = applied;

out_put:
        pool_put(s, c);
        return ret;
}

static int pg_ping(struct dm_store *st)
{
        struct pg_store *s = pg_of(st);
        struct pg_conn *c;
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = pg_run(c, STMT_PING, NULL, "ping", NULL);
        pool_put(s, c);
        return ret;
}

/* ---- domains ---- */

static void domain_inserted(struct dm_domain *d, int64_t id, int64_t now)
{
        d->id = id;
        d->created_at = now;
        d->updated_at = now;
        d->next_check_at = now;
}

/* Without a U-label form the name is its own, so the q filter still finds it. */
static const char *domain_uname(const struct dm_domain *d)
{
        return d->unicode_name[0] ? d->unicode_name : d->name;
}

/* The event of a domain write, in its transaction. */
static int domain_event(struct pg_conn *c, const char *routing_key, const struct dm_domain *d,
                        int64_t at, dm_domain_event_fn event_fn, void *event_arg)
{
        struct pg_params p = {0};
        char *body = event_fn(d, at, event_arg);
        if (!body)
                return DM_ENOMEM;
        param_text(&p, routing_key);
        param_text(&p, body);
        param_i64(&p, at);
        int ret = pg_run(c, STMT_OUTBOX_INSERT, &p, "outbox insert", NULL);
        free(body);
        return ret;
}

static int pg_domain_insert(struct dm_store *st, struct dm_domain *d, dm_domain_event_fn event_fn,
                            void *event_arg)
{
        struct pg_store *s = pg_of(st);
        char types[PG_TYPES_TEXT_MAX];
        struct pg_params p = {0};
        struct pg_conn *c;
        PGresult *r = NULL;
        int64_t now = dm_now_ms(), id = 0;
        int ret = dm_store_types_to_text(d->record_types, d->nrecord_types, types, sizeof(types));
        if (ret < 0)
                return ret;
        param_text(&p, d->name);
        param_text(&p, domain_uname(d));
        param_bool(&p, d->enabled);
        param_i64(&p, d->interval_ms);
        param_text(&p, types);
        param_i64(&p, now);
        param_i16(&p, DM_CHECK_PENDING);
        param_i64(&p, dm_store_phase(d->name));

        ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        /* Without an event the insert is one statement: a transaction of its own. */
        if (event_fn)
                ret = tx_begin(c);
        if (ret == 0)
                ret = pg_run(c, STMT_DOMAIN_INSERT, &p, "domain insert", &r);
        if (ret == 0) {
                if (PQntuples(r) == 0)
                        ret = DM_EEXIST;
                else
                        id = col_int(r, 0, 0);
        }
        if (ret == 0 && event_fn) {
                struct dm_domain *row = malloc(sizeof(*row));
                ret = DM_ENOMEM;
                if (row) {
                        domain_from_row(r, 0, row);
                        ret = domain_event(c, DM_EVENT_DOMAIN_ADDED, row, now, event_fn, event_arg);
                        free(row);
                }
                if (ret == 0)
                        ret = tx_commit(c);
        }
        PQclear(r);
        pool_put(s, c); /* rolls back what did not commit */
        if (ret == 0)
                domain_inserted(d, id, now);
        return ret;
}

struct name_index {
        const char *name;
        size_t i;
};

static int name_index_cmp(const void *a, const void *b)
{
        const struct name_index *x = a, *y = b;
        int c = strcmp(x->name, y->name);
        if (c == 0)
                return (x->i > y->i) - (x->i < y->i);
        return c;
}

/* Finds `name` in the sorted index (the first entry of that name). */
static const struct name_index *name_index_find(const struct name_index *idx, size_t n,
                                                const char *name)
{
        size_t lo = 0, hi = n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (strcmp(idx[mid].name, name) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo < n && strcmp(idx[lo].name, name) == 0 ? &idx[lo] : NULL;
}

/* The added domains' events, in batch order, by COPY: rows[i] is the result row of ds[i]
 * when results[i] is 0. */
static int insert_many_events(struct pg_conn *c, const PGresult *r, const int *results,
                              const int *rows, size_t n, int64_t now, dm_domain_event_fn event_fn,
                              void *event_arg)
{
        struct pg_vals events;
        struct dm_domain *d = malloc(sizeof(*d));
        size_t nevents = 0;
        int ret = d ? 0 : DM_ENOMEM;
        copy_init(&events);
        for (size_t i = 0; i < n && ret == 0; i++) {
                if (results[i] != 0)
                        continue;
                domain_from_row(r, rows[i], d);
                char *body = event_fn(d, now, event_arg);
                if (!body) {
                        ret = DM_ENOMEM;
                        break;
                }
                copy_row(&events, 3);
                val_text(&events, DM_EVENT_DOMAIN_ADDED);
                val_text(&events, body);
                val_i64(&events, now);
                free(body);
                nevents++;
        }
        if (ret == 0 && nevents > 0)
                ret = copy_run(c,
                               "COPY outbox (routing_key, body, created_at) FROM STDIN "
                               "(FORMAT binary)",
                               &events, "outbox insert");
        vals_done(&events);
        free(d);
        return ret;
}

static int pg_domain_insert_many(struct dm_store *st, struct dm_domain *ds, size_t n,
                                 dm_domain_event_fn event_fn, void *event_arg, int *ret_results)
{
        struct pg_store *s = pg_of(st);
        struct pg_vals names, unames, enabled, ivs, types, phases;
        struct pg_params p = {0};
        struct pg_conn *c = NULL;
        PGresult *r = NULL;
        int64_t now = dm_now_ms();
        int ret = DM_ENOMEM;
        struct name_index *idx = calloc(n, sizeof(*idx));
        int *results = calloc(n, sizeof(*results));
        int64_t *ids = calloc(n, sizeof(*ids));
        int *rows = calloc(n, sizeof(*rows));

        array_init(&names, PG_OID_TEXT);
        array_init(&unames, PG_OID_TEXT);
        array_init(&enabled, PG_OID_BOOL);
        array_init(&ivs, PG_OID_INT8);
        array_init(&types, PG_OID_TEXT);
        array_init(&phases, PG_OID_INT8);
        if (!idx || !results || !ids || !rows)
                goto out_free;

        /* A name earlier in the batch wins, as if the rows were inserted one by one: the
         * repeats are answered here and never sent. */
        for (size_t i = 0; i < n; i++)
                idx[i] = (struct name_index){.name = ds[i].name, .i = i};
        qsort(idx, n, sizeof(*idx), name_index_cmp);
        for (size_t k = 0; k < n; k++) {
                if (k > 0 && strcmp(idx[k].name, idx[k - 1].name) == 0)
                        results[idx[k].i] = DM_EEXIST;
        }
        for (size_t i = 0; i < n; i++) {
                char t[PG_TYPES_TEXT_MAX];
                if (results[i] < 0)
                        continue;
                ret = dm_store_types_to_text(ds[i].record_types, ds[i].nrecord_types, t, sizeof(t));
                if (ret < 0)
                        goto out_free;
                val_text(&names, ds[i].name);
                val_text(&unames, domain_uname(&ds[i]));
                val_bool(&enabled, ds[i].enabled);
                val_i64(&ivs, ds[i].interval_ms);
                val_text(&types, t);
                val_i64(&phases, dm_store_phase(ds[i].name));
        }
        ret = param_array(&p, &names);
        if (ret == 0)
                ret = param_array(&p, &unames);
        if (ret == 0)
                ret = param_array(&p, &enabled);
        if (ret == 0)
                ret = param_array(&p, &ivs);
        if (ret == 0)
                ret = param_array(&p, &types);
        if (ret < 0)
                goto out_free;
        param_i64(&p, now);
        param_i16(&p, DM_CHECK_PENDING);
        ret = param_array(&p, &phases);
        if (ret < 0)
                goto out_free;

        /* One statement, a transaction of its own, unless events go with it. */
        ret = pool_get(s, &c);
        if (ret < 0)
                goto out_free;
        if (event_fn)
                ret = tx_begin(c);
        if (ret == 0)
                ret = pg_run(c, STMT_DOMAIN_INSERT_MANY, &p, "domain insert many", &r);
        if (ret < 0) {
                pool_put(s, c); /* rolls back */
                goto out_free;
        }

        for (size_t i = 0; i < n; i++) {
                if (results[i] == 0)
                        results[i] = DM_EEXIST; /* unless returned below */
        }
        for (int row = 0; row < PQntuples(r); row++) {
                char name[DM_NAME_MAX + 1];
                col_copy(r, row, 1, name, sizeof(name));
                const struct name_index *e = name_index_find(idx, n, name);
                if (!e)
                        continue;
                results[e->i] = 0;
                ids[e->i] = col_int(r, row, 0);
                rows[e->i] = row;
        }
        if (event_fn) {
                ret = insert_many_events(c, r, results, rows, n, now, event_fn, event_arg);
                if (ret == 0)
                        ret = tx_commit(c);
        }
        PQclear(r);
        pool_put(s, c); /* rolls back what did not commit */
        if (ret < 0)
                goto out_free;
        for (size_t i = 0; i < n; i++) {
                ret_results[i] = results[i];
                if (results[i] == 0)
                        domain_inserted(&ds[i], ids[i], now);
        }
        ret = 0;

out_free:
        vals_done(&names);
        vals_done(&unames);
        vals_done(&enabled);
        vals_done(&ivs);
        vals_done(&types);
        vals_done(&phases);
        free(rows);
        free(ids);
        free(results);
        free(idx);
        return ret;
}

static int pg_domain_get(struct dm_store *st, const char *name, struct dm_domain *ret_domain)
{
        struct pg_store *s = pg_of(st);
        struct pg_params p = {0};
        struct pg_conn *c;
        PGresult *r = NULL;
        param_text(&p, name);
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = pg_run(c, STMT_DOMAIN_GET, &p, "domain get", &r);
        pool_put(s, c);
        if (ret < 0)
                return ret;
        if (PQntuples(r) > 0)
                domain_from_row(r, 0, ret_domain);
        else
                ret = DM_ENOENT;
        PQclear(r);
        return ret;
}

static int pg_domain_update(struct dm_store *st, const struct dm_domain *d, unsigned fields)
{
        struct pg_store *s = pg_of(st);
        char types[PG_TYPES_TEXT_MAX];
        struct pg_params p = {0};
        struct pg_conn *c;
        int ret = dm_store_types_to_text(d->record_types, d->nrecord_types, types, sizeof(types));
        if (ret < 0)
                return ret;
        param_text(&p, d->name);
        param_bool(&p, d->enabled);
        param_i64(&p, d->interval_ms);
        param_text(&p, types);
        param_bool(&p, fields & DM_DOMAIN_ENABLED);
        param_bool(&p, fields & DM_DOMAIN_INTERVAL);
        param_bool(&p, fields & DM_DOMAIN_RECORD_TYPES);
        param_i64(&p, d->updated_at);
        param_i64(&p, dm_now_ms());
        ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = run_by_name(c, STMT_DOMAIN_UPDATE, &p, "domain update");
        pool_put(s, c);
        return ret;
}

static int pg_domain_delete(struct dm_store *st, const char *name, dm_domain_event_fn event_fn,
                            void *event_arg)
{
        struct pg_store *s = pg_of(st);
        struct pg_params p = {0};
        struct pg_conn *c;
        PGresult *r = NULL;
        int64_t now = dm_now_ms();
        struct dm_domain *row = calloc(1, sizeof(*row));
        if (!row)
                return DM_ENOMEM;
        param_text(&p, name);
        int ret = pool_get(s, &c);
        if (ret < 0)
                goto out_free;
        ret = tx_begin(c);
        if (ret == 0)
                ret = pg_run(c, STMT_DOMAIN_DELETE, &p, "domain delete", &r);
        if (ret == 0) {
                if (PQntuples(r) == 0)
                        ret = DM_ENOENT;
                else
                        domain_from_row(r, 0, row);
                PQclear(r);
        }
        p.n = 0;
        param_i64(&p, row->id);
        if (ret == 0)
                ret = pg_run(c, STMT_DOMAIN_DELETE_CURRENT, &p, "domain delete", NULL);
        if (ret == 0)
                ret = pg_run(c, STMT_DOMAIN_DELETE_CHANGES, &p, "domain delete", NULL);
        if (ret == 0 && event_fn)
                ret = domain_event(c, DM_EVENT_DOMAIN_REMOVED, row, now, event_fn, event_arg);
        if (ret == 0)
                ret = tx_commit(c);
        pool_put(s, c); /* rolls back what did not commit */
out_free:
        free(row);
        return ret;
}

static int pg_domain_list(struct dm_store *st, const struct dm_domain_query *q,
                          struct dm_domain *ret_domains, size_t *ret_n)
{
        struct pg_store *s = pg_of(st);
        struct pg_params p = {0};
        struct pg_conn *c;
        PGresult *r = NULL;
        char *pattern = NULL;
        if (q->q && *q->q) {
                pattern = dm_store_like_pattern(q->q);
                if (!pattern)
                        return DM_ENOMEM;
        }
        param_text(&p, q->after ? q->after : "");
        param_text(&p, pattern);
        param_i64(&p, clamp_limit(q->limit));
        int ret = pool_get(s, &c);
        if (ret < 0)
                goto out_free;
        ret = pg_run(c, STMT_DOMAIN_LIST, &p, "domain list", &r);
        pool_put(s, c);
        if (ret < 0)
                goto out_free;
        size_t n = 0;
        for (int row = 0; row < PQntuples(r) && n < q->limit; row++)
                domain_from_row(r, row, &ret_domains[n++]);
        PQclear(r);
        *ret_n = n;

out_free:
        free(pattern);
        return ret;
}

static int pg_domain_request_scan(struct dm_store *st, const char *name, int64_t now)
{
        struct pg_store *s = pg_of(st);
        struct pg_params p = {0};
        struct pg_conn *c;
        param_text(&p, name);
        param_i64(&p, now);
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = run_by_name(c, STMT_DOMAIN_REQUEST_SCAN, &p, "domain request scan");
        pool_put(s, c);
        return ret;
}

static int pg_domain_request_scan_all(struct dm_store *st, int64_t now, size_t *ret_n)
{
        struct pg_store *s = pg_of(st);
        struct pg_params p = {0};
        struct pg_conn *c;
        size_t n = 0;
        param_i64(&p, now);
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = run_count(c, STMT_DOMAIN_REQUEST_SCAN_ALL, &p, "domain request scan all", &n);
        pool_put(s, c);
        if (ret == 0 && ret_n)
                *ret_n = n;
        return ret;
}

static int pg_domain_count(struct dm_store *st, size_t *ret_n)
{
        struct pg_store *s = pg_of(st);
        struct pg_conn *c;
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = run_count(c, STMT_DOMAIN_COUNT, NULL, "domain count", ret_n);
        pool_put(s, c);
        return ret;
}

/* ---- API keys ---- */

static void key_params(struct pg_params *p, const struct dm_api_key *k, int64_t created)
{
        param_text(p, k->key_id);
        param_text(p, k->name);
        param_text(p, dm_scope_name(k->scope));
        param_raw(p, k->hash, (int)sizeof(k->hash));
        param_i64(p, created);
        param_time(p, k->last_used_at);
        param_time(p, k->revoked_at);
}

/* The insert itself; DM_EEXIST when the key_id is taken. */
static int key_insert_row(struct pg_conn *c, const struct dm_api_key *k, int64_t created,
                          int64_t *ret_id)
{
        struct pg_params p = {0};
        PGresult *r = NULL;
        key_params(&p, k, created);
        int ret = pg_run(c, STMT_KEY_INSERT, &p, "key insert", &r);
        if (ret < 0)
                return ret;
        if (PQntuples(r) == 0)
                ret = DM_EEXIST;
        else
                *ret_id = col_int(r, 0, 0);
        PQclear(r);
        return ret;
}

static int pg_key_insert(struct dm_store *st, struct dm_api_key *k)
{
        struct pg_store *s = pg_of(st);
        int64_t created = k->created_at ? k->created_at : dm_now_ms();
        int64_t id = 0;
        struct pg_conn *c;
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = key_insert_row(c, k, created, &id);
        pool_put(s, c);
        if (ret == 0) {
                k->id = id;
                k->created_at = created;
        }
        return ret;
}

/* Several processes starting at once each see no key; the transaction-scoped advisory
 * lock makes their count-then-insert run one after the other, so one of them inserts. */
static int pg_key_insert_first(struct dm_store *st, struct dm_api_key *k)
{
        struct pg_store *s = pg_of(st);
        int64_t created = k->created_at ? k->created_at : dm_now_ms();
        int64_t id = 0;
        size_t active = 0;
        struct pg_params lock = {0};
        struct pg_conn *c;
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        param_i32(&lock, PG_LOCK_CLASS);
        param_i32(&lock, PG_LOCK_FIRST_KEY);
        ret = tx_begin(c);
        if (ret == 0)
                ret = pg_run(c, STMT_XACT_LOCK, &lock, "key insert first", NULL);
        if (ret == 0)
                ret = run_count(c, STMT_KEY_COUNT_ACTIVE, NULL, "key insert first", &active);
        if (ret == 0 && active > 0)
                ret = DM_EEXIST;
        if (ret == 0) {
                ret = key_insert_row(c, k, created, &id);
                if (ret == DM_EEXIST)
                        ret = DM_ECONFLICT; /* the key_id, not an active key */
        }
        if (ret == 0)
                ret = tx_commit(c);
        pool_put(s, c); /* rolls back what did not commit */
        if (ret == 0) {
                k->id = id;
                k->created_at = created;
        }
        return ret;
}

static int pg_key_get(struct dm_store *st, const char *key_id, struct dm_api_key *ret_key)
{
        struct pg_store *s = pg_of(st);
        struct pg_params p = {0};
        struct pg_conn *c;
        PGresult *r = NULL;
        param_text(&p, key_id);
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = pg_run(c, STMT_KEY_GET, &p, "key get", &r);
        pool_put(s, c);
        if (ret < 0)
                return ret;
        if (PQntuples(r) > 0)
                key_from_row(r, 0, ret_key);
        else
                ret = DM_ENOENT;
        PQclear(r);
        return ret;
}

static int pg_key_list(struct dm_store *st, struct dm_api_key **ret_keys, size_t *ret_n)
{
        struct pg_store *s = pg_of(st);
        struct pg_conn *c;
        PGresult *r = NULL;
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = pg_run(c, STMT_KEY_LIST, NULL, "key list", &r);
        pool_put(s, c);
        if (ret < 0)
                return ret;
        size_t n = (size_t)PQntuples(r);
        struct dm_api_key *keys = calloc(n ? n : 1, sizeof(*keys));
        if (!keys) {
                PQclear(r);
                return DM_ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                key_from_row(r, (int)i, &keys[i]);
        PQclear(r);
        *ret_keys = keys;
        *ret_n = n;
        return 0;
}

static int pg_key_revoke(struct dm_store *st, const char *key_id_or_name, int64_t now)
{
        struct pg_store *s = pg_of(st);
        struct pg_params p = {0};
        struct pg_conn *c;
        param_text(&p, key_id_or_name);
        param_i64(&p, now);
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = run_by_name(c, STMT_KEY_REVOKE, &p, "key revoke");
        pool_put(s, c);
        return ret;
}

static int pg_key_touch(struct dm_store *st, int64_t id, int64_t now)
{
        struct pg_store *s = pg_of(st);
        struct pg_params p = {0};
        struct pg_conn *c;
        param_i64(&p, id);
        param_i64(&p, now);
        param_i64(&p, PG_KEY_TOUCH_COALESCE_MS);
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = pg_run(c, STMT_KEY_TOUCH, &p, "key touch", NULL);
        pool_put(s, c);
        return ret;
}

static int pg_key_count_active(struct dm_store *st, size_t *ret_n)
{
        struct pg_store *s = pg_of(st);
        struct pg_conn *c;
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = run_count(c, STMT_KEY_COUNT_ACTIVE, NULL, "key count", ret_n);
        pool_put(s, c);
        return ret;
}

/* ---- scheduling ---- */

static int pg_claim_due(struct dm_store *st, const struct dm_claim_opts *opts,
                        struct dm_scan_task *ret_tasks, size_t *ret_n)
{
        struct pg_store *s = pg_of(st);
        struct pg_params p = {0};
        struct pg_conn *c;
        PGresult *r = NULL;
        param_i64(&p, opts->now);
        param_i64(&p, opts->default_interval_ms);
        param_i64(&p, opts->min_interval_ms);
        param_i64(&p, clamp_limit(opts->limit));
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = pg_run(c, STMT_CLAIM, &p, "claim", &r);
        pool_put(s, c);
        if (ret < 0)
                return ret;
        size_t n = 0;
        for (int row = 0; row < PQntuples(r) && n < opts->limit; row++) {
                struct dm_scan_task *t = &ret_tasks[n++];
                memset(t, 0, sizeof(*t));
                t->domain_id = col_int(r, row, 0);
                col_copy(r, row, 1, t->name, sizeof(t->name));
                col_types(r, row, 2, t->domain_id, t->record_types, &t->nrecord_types);
                col_fp(r, row, 3, t->dns_fp);
        }
        PQclear(r);
        *ret_n = n;
        return 0;
}

/* ---- DNS state ---- */

static int pg_dns_current(struct dm_store *st, int64_t domain_id, struct dm_rrset_row **ret_rows,
                          size_t *ret_n)
{
        struct pg_store *s = pg_of(st);
        struct pg_params p = {0};
        struct pg_conn *c;
        PGresult *r = NULL;
        param_i64(&p, domain_id);
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = pg_run(c, STMT_CURRENT, &p, "dns current", &r);
        pool_put(s, c);
        if (ret < 0)
                return ret;
        size_t n = (size_t)PQntuples(r);
        struct dm_rrset_row *rows = calloc(n ? n : 1, sizeof(*rows));
        if (!rows) {
                PQclear(r);
                return DM_ENOMEM;
        }
        for (size_t i = 0; i < n && ret == 0; i++) {
                struct dm_rrset_row *row = &rows[i];
                row->type = (uint16_t)col_int(r, (int)i, 0);
                row->status = (enum dm_rr_status)col_int(r, (int)i, 1);
                row->ttl = (uint32_t)col_int(r, (int)i, 2);
                row->checked_at = col_int(r, (int)i, 5);
                row->changed_at = col_int(r, (int)i, 6);
                row->answer_status = (enum dm_rr_status)col_int(r, (int)i, 7);
                ret = col_strdup(r, (int)i, 3, &row->values);
                if (ret == 0)
                        ret = col_strdup(r, (int)i, 4, &row->error);
        }
        PQclear(r);
        if (ret < 0) {
                dm_rrset_rows_free(rows, n);
                return ret;
        }
        *ret_rows = rows;
        *ret_n = n;
        return 0;
}

/* A domain of a commit batch as the lock found it, and as the batch's earlier items leave
 * it. */
struct commit_domain {
        int64_t id;
        char name[DM_NAME_MAX + 1];
        uint8_t fp[DM_FP_LEN];
        bool fp_null;   /* no state stored */
        bool fp_usable; /* NULL or DM_FP_LEN bytes; anything else never matches */
        int writes;     /* items of the batch written to it so far */
};

/* What one item of the batch does, decided under the lock. */
enum commit_kind { COMMIT_NONE, COMMIT_SEEN, COMMIT_SWAP };

struct commit_plan {
        enum commit_kind kind;
        int round;        /* the items of a round touch each domain at most once */
        const char *name; /* the domain's, for changes and events */
        size_t first_id;  /* index of its first change id */
};

struct commit_batch {
        struct commit_domain *doms;
        size_t ndoms;
        struct commit_plan *plan;
        int64_t *change_ids;
        int64_t *event_ids; /* NULL without an event function */
        size_t nids;
        int nrounds;
};

static int commit_domain_cmp(const void *key, const void *elem)
{
        int64_t id = *(const int64_t *)key;
        const struct commit_domain *d = elem;
        return (id > d->id) - (id < d->id);
}

static bool commit_fp_matches(const struct commit_domain *d, const uint8_t old[DM_FP_LEN])
{
        if (!d->fp_usable)
                return false;
        if (dm_store_fp_is_zero(old))
                return d->fp_null;
        return !d->fp_null && memcmp(d->fp, old, DM_FP_LEN) == 0;
}

static int int64_cmp(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return (x > y) - (x < y);
}

/* Locks the batch's domains and reads their names and fingerprints. */
static int commit_lock(struct pg_conn *c, const struct dm_dns_commit *items, size_t n,
                       struct commit_batch *b)
{
        struct pg_vals ids;
        struct pg_params p = {0};
        PGresult *r = NULL;
        array_init(&ids, PG_OID_INT8);
        for (size_t i = 0; i < n; i++)
                val_i64(&ids, items[i].domain_id);
        int ret = param_array(&p, &ids);
        if (ret == 0)
                ret = pg_run(c, STMT_COMMIT_LOCK, &p, "dns commit", &r);
        vals_done(&ids);
        if (ret < 0)
                return ret;
        b->ndoms = (size_t)PQntuples(r);
        b->doms = calloc(b->ndoms ? b->ndoms : 1, sizeof(*b->doms));
        if (!b->doms) {
                PQclear(r);
                return DM_ENOMEM;
        }
        for (size_t i = 0; i < b->ndoms; i++) {
                struct commit_domain *d = &b->doms[i];
                int len = PQgetlength(r, (int)i, 2);
                d->id = col_int(r, (int)i, 0);
                col_copy(r, (int)i, 1, d->name, sizeof(d->name));
                d->fp_null = col_null(r, (int)i, 2);
                d->fp_usable = d->fp_null || len == DM_FP_LEN;
                if (!d->fp_null && len == DM_FP_LEN)
                        memcpy(d->fp, PQgetvalue(r, (int)i, 2), DM_FP_LEN);
        }
        PQclear(r);
        return 0;
}

/* Decides every item in batch order, as if they were written one after the other: an item
 * sees the fingerprints the earlier ones left. */
static void commit_decide(struct dm_dns_commit *items, size_t n, struct commit_batch *b)
{
        size_t nids = 0;
        for (size_t i = 0; i < n; i++) {
                struct dm_dns_commit *it = &items[i];
                struct commit_plan *pl = &b->plan[i];
                bool same = memcmp(it->old_fp, it->new_fp, DM_FP_LEN) == 0;
                struct commit_domain *d =
                    bsearch(&it->domain_id, b->doms, b->ndoms, sizeof(*b->doms), commit_domain_cmp);
                pl->kind = COMMIT_NONE;
                /* Checked first, as in SQLite: rows that could not be stored are the answer
                 * whatever the domain's state. */
                if (!same && !dm_store_item_fits(it)) {
                        it->result = DM_E2BIG;
                        continue;
                }
                if (!d) {
                        it->result = DM_ENOENT;
                        continue;
                }
                pl->name = d->name;
                if (!commit_fp_matches(d, it->old_fp)) {
                        it->result = DM_ECONFLICT;
                        continue;
                }
                if (same) {
                        pl->kind = COMMIT_SEEN;
                } else {
                        pl->kind = COMMIT_SWAP;
                        memcpy(d->fp, it->new_fp, DM_FP_LEN);
                        d->fp_null = dm_store_fp_is_zero(it->new_fp);
                        d->fp_usable = true;
                        pl->first_id = nids;
                        nids += it->nchanges;
                }
                pl->round = d->writes++;
                if (pl->round + 1 > b->nrounds)
                        b->nrounds = pl->round + 1;
                it->result = 0;
        }
        b->nids = nids;
}

/* Reserves the ids of the batch's changes (and events), in ascending order. */
static int commit_ids(struct pg_conn *c, struct commit_batch *b, bool events)
{
        struct pg_params p = {0};
        PGresult *r = NULL;
        if (b->nids == 0)
                return 0;
        if (b->nids > INT32_MAX)
                return DM_E2BIG;
        b->change_ids = calloc(b->nids, sizeof(*b->change_ids));
        if (events)
                b->event_ids = calloc(b->nids, sizeof(*b->event_ids));
        if (!b->change_ids || (events && !b->event_ids))
                return DM_ENOMEM;
        param_i32(&p, (int32_t)b->nids);
        param_bool(&p, events);
        int ret = pg_run(c, STMT_COMMIT_IDS, &p, "dns commit", &r);
        if (ret < 0)
                return ret;
        if ((size_t)PQntuples(r) != b->nids) {
                PQclear(r);
                return DM_ESTORE;
        }
        for (size_t i = 0; i < b->nids; i++) {
                b->change_ids[i] = col_int(r, (int)i, 0);
                if (events)
                        b->event_ids[i] = col_int(r, (int)i, 1);
        }
        PQclear(r);
        qsort(b->change_ids, b->nids, sizeof(*b->change_ids), int64_cmp);
        if (events)
                qsort(b->event_ids, b->nids, sizeof(*b->event_ids), int64_cmp);
        return 0;
}

/* The domains' check time, status and (for swaps) fingerprint, for one round. */
static int commit_domains(struct pg_conn *c, const struct dm_dns_commit *items, size_t n,
                          const struct commit_batch *b, int round, int64_t now)
{
        struct pg_vals a[8];
        struct pg_params p = {0};
        static const uint32_t oids[8] = {PG_OID_INT8, PG_OID_INT8,  PG_OID_INT2,  PG_OID_TEXT,
                                         PG_OID_BOOL, PG_OID_BYTEA, PG_OID_BYTEA, PG_OID_BOOL};
        size_t want = 0;
        PGresult *r = NULL;
        int ret = 0;
        for (size_t k = 0; k < 8; k++)
                array_init(&a[k], oids[k]);
        for (size_t i = 0; i < n; i++) {
                const struct dm_dns_commit *it = &items[i];
                const struct commit_plan *pl = &b->plan[i];
                if (pl->kind == COMMIT_NONE || pl->round != round)
                        continue;
                bool swap = pl->kind == COMMIT_SWAP;
                val_i64(&a[0], it->domain_id);
                val_i64(&a[1], it->checked_at ? it->checked_at : now);
                val_i16(&a[2], (int)it->status);
                val_text(&a[3], it->status == DM_CHECK_ERROR ? it->status_error : NULL);
                val_bool(&a[4], swap);
                val_fp(&a[5], it->old_fp);
                val_fp(&a[6], it->new_fp);
                val_bool(&a[7], swap && it->nchanges > 0);
                want++;
        }
        for (size_t k = 0; k < 8 && ret == 0; k++)
                ret = param_array(&p, &a[k]);
        if (ret == 0 && want > 0)
                ret = pg_run(c, STMT_COMMIT_DOMAINS, &p, "dns commit", &r);
        for (size_t k = 0; k < 8; k++)
                vals_done(&a[k]);
        if (ret < 0 || want == 0)
                return ret;
        uint64_t got = pg_affected(r);
        PQclear(r);
        if (got != want) {
                /* The rows are locked: only a bug gets here. Nothing is committed. */
                dm_log_error("store",
                             "msg=\"dns commit wrote another number of domains than decided\" "
                             "want=%zu got=%llu",
                             want, (unsigned long long)got);
                return DM_ESTORE;
        }
        return 0;
}

static bool rows_repeat_type(const struct dm_dns_commit *it, size_t j)
{
        for (size_t k = j + 1; k < it->nrows; k++) {
                if (it->rows[k].type == it->rows[j].type)
                        return true;
        }
        return false;
}

/* Replaces the current rows of the round's swapped domains: stale types pruned, changed
 * rows updated, new ones inserted. */
static int commit_rows(struct pg_conn *c, const struct dm_dns_commit *items, size_t n,
                       const struct commit_batch *b, int round, int64_t now)
{
        struct pg_vals doms, keep_ids, keep_types, a[8];
        struct pg_params p = {0};
        static const uint32_t oids[8] = {PG_OID_INT8, PG_OID_INT4, PG_OID_INT2, PG_OID_INT8,
                                         PG_OID_TEXT, PG_OID_TEXT, PG_OID_INT8, PG_OID_INT8};
        size_t nswap = 0, nrows = 0;
        int ret = 0;
        array_init(&doms, PG_OID_INT8);
        array_init(&keep_ids, PG_OID_INT8);
        array_init(&keep_types, PG_OID_INT4);
        for (size_t k = 0; k < 8; k++)
                array_init(&a[k], oids[k]);
        for (size_t i = 0; i < n; i++) {
                const struct dm_dns_commit *it = &items[i];
                if (b->plan[i].kind != COMMIT_SWAP || b->plan[i].round != round)
                        continue;
                int64_t checked_at = it->checked_at ? it->checked_at : now;
                val_i64(&doms, it->domain_id);
                nswap++;
                for (size_t j = 0; j < it->nrows; j++) {
                        const struct dm_rrset_row *row = &it->rows[j];
                        /* A type listed twice: the last one stands, as when each row
                         * overwrites the one before. */
                        if (rows_repeat_type(it, j))
                                continue;
                        val_i64(&keep_ids, it->domain_id);
                        val_i32(&keep_types, row->type);
                        val_i64(&a[0], it->domain_id);
                        val_i32(&a[1], row->type);
                        val_i16(&a[2], (int)row->status);
                        val_i64(&a[3], row->ttl);
                        val_text(&a[4], row->values ? row->values : "[]");
                        val_text(&a[5], row->error);
                        val_i64(&a[6], row->checked_at ? row->checked_at : checked_at);
                        val_time(&a[7], row->changed_at);
                        nrows++;
                }
        }
        if (nswap == 0)
                goto out_done;
        ret = param_array(&p, &doms);
        if (ret == 0)
                ret = param_array(&p, &keep_ids);
        if (ret == 0)
                ret = param_array(&p, &keep_types);
        if (ret == 0)
                ret = pg_run(c, STMT_COMMIT_PRUNE, &p, "dns commit", NULL);
        if (ret < 0 || nrows == 0)
                goto out_done;
        p.n = 0;
        for (size_t k = 0; k < 8 && ret == 0; k++)
                ret = param_array(&p, &a[k]);
        if (ret < 0)
                goto out_done;
        param_i16(&p, DM_RRS_ERROR);
        param_i16(&p, DM_RRS_OK);
        ret = pg_run(c, STMT_COMMIT_ROWS, &p, "dns commit", NULL);

out_done:
        vals_done(&doms);
        vals_done(&keep_ids);
        vals_done(&keep_types);
        for (size_t k = 0; k < 8; k++)
                vals_done(&a[k]);
        return ret;
}

/* The round's history entries and, with an event function, one outbox event each, by COPY
 * (their ids are already known). Ids were reserved in batch order, so they rise with the
 * items and their changes. */
static int commit_changes(struct pg_conn *c, struct dm_dns_commit *items, size_t n,
                          const struct commit_batch *b, int round, int64_t now,
                          dm_change_event_fn event_fn, void *event_arg)
{
        struct pg_vals rows, events;
        size_t nchanges = 0;
        int ret = 0;
        copy_init(&rows);
        copy_init(&events);
        for (size_t i = 0; i < n && ret == 0; i++) {
                struct dm_dns_commit *it = &items[i];
                const struct commit_plan *pl = &b->plan[i];
                if (pl->kind != COMMIT_SWAP || pl->round != round)
                        continue;
                int64_t checked_at = it->checked_at ? it->checked_at : now;
                for (size_t j = 0; j < it->nchanges && ret == 0; j++) {
                        struct dm_change *ch = &it->changes[j];
                        ch->id = b->change_ids[pl->first_id + j];
                        ch->domain_id = it->domain_id;
                        if (!ch->observed_at)
                                ch->observed_at = checked_at;
                        if (ch->domain[0] == '\0')
                                snprintf(ch->domain, sizeof(ch->domain), "%s", pl->name);
                        copy_row(&rows, 9);
                        val_i64(&rows, ch->id);
                        val_i64(&rows, ch->domain_id);
                        val_i32(&rows, ch->type);
                        val_i16(&rows, (int)ch->status);
                        val_i64(&rows, ch->observed_at);
                        val_text(&rows, ch->before);
                        val_text(&rows, ch->after ? ch->after : "[]");
                        val_text(&rows, ch->added ? ch->added : "[]");
                        val_text(&rows, ch->removed ? ch->removed : "[]");
                        nchanges++;
                        if (!event_fn)
                                continue;

                        char key[DM_STORE_ROUTING_KEY_MAX];
                        char *body = event_fn(ch, event_arg);
                        if (!body) {
                                ret = DM_ENOMEM;
                                break;
                        }
                        copy_row(&events, 4);
                        val_i64(&events, b->event_ids[pl->first_id + j]);
                        val_text(&events, dm_store_routing_key(ch->type, key));
                        val_text(&events, body);
                        val_i64(&events, now);
                        free(body);
                }
        }
        if (ret == 0 && nchanges > 0)
                ret = copy_run(c,
                               "COPY dns_changes (id, domain_id, type, status, observed_at, "
                               "before, after, added, removed) FROM STDIN (FORMAT binary)",
                               &rows, "change insert");
        if (ret == 0 && nchanges > 0 && event_fn)
                ret = copy_run(c,
                               "COPY outbox (id, routing_key, body, created_at) FROM STDIN "
                               "(FORMAT binary)",
                               &events, "outbox insert");
        vals_done(&rows);
        vals_done(&events);
        return ret;
}

static int pg_dns_commit(struct dm_store *st, struct dm_dns_commit *items, size_t n,
                         dm_change_event_fn event_fn, void *event_arg)
{
        struct pg_store *s = pg_of(st);
        struct commit_batch b = {0};
        int64_t now = dm_now_ms();
        struct pg_conn *c;
        int ret = DM_ENOMEM;
        b.plan = calloc(n, sizeof(*b.plan));
        if (!b.plan)
                goto out_free;
        ret = pool_get(s, &c);
        if (ret < 0)
                goto out_free;

        ret = tx_begin(c);
        if (ret == 0)
                ret = commit_lock(c, items, n, &b);
        if (ret == 0) {
                commit_decide(items, n, &b);
                ret = commit_ids(c, &b, event_fn != NULL);
        }
        /* Rounds keep the batch order for a domain listed more than once (a redelivered
         * task next to its first delivery); usually there is one. */
        for (int round = 0; ret == 0 && round < b.nrounds; round++) {
                ret = commit_domains(c, items, n, &b, round, now);
                if (ret == 0)
                        ret = commit_rows(c, items, n, &b, round, now);
                if (ret == 0)
                        ret = commit_changes(c, items, n, &b, round, now, event_fn, event_arg);
        }
        if (ret == 0)
                ret = tx_commit(c);
        pool_put(s, c); /* rolls back what did not commit */
        if (ret < 0) {
                /* Nothing was written: ids handed out inside the transaction do not
                 * exist. */
                for (size_t i = 0; i < n; i++) {
                        items[i].result = ret;
                        if (memcmp(items[i].old_fp, items[i].new_fp, DM_FP_LEN) == 0)
                                continue;
                        for (size_t j = 0; j < items[i].nchanges; j++)
                                items[i].changes[j].id = 0;
                }
        }

out_free:
        free(b.plan);
        free(b.doms);
        free(b.change_ids);
        free(b.event_ids);
        return ret;
}

static int change_from_row(const PGresult *r, int row, struct dm_change *ch)
{
        memset(ch, 0, sizeof(*ch));
        ch->id = col_int(r, row, 0);
        ch->domain_id = col_int(r, row, 1);
        col_copy(r, row, 2, ch->domain, sizeof(ch->domain));
        ch->type = (uint16_t)col_int(r, row, 3);
        ch->status = (enum dm_rr_status)col_int(r, row, 4);
        ch->observed_at = col_int(r, row, 5);
        int ret = col_strdup(r, row, 6, &ch->before);
        if (ret == 0)
                ret = col_strdup(r, row, 7, &ch->after);
        if (ret == 0)
                ret = col_strdup(r, row, 8, &ch->added);
        if (ret == 0)
                ret = col_strdup(r, row, 9, &ch->removed);
        return ret;
}

static int pg_change_list(struct dm_store *st, const struct dm_change_query *q,
                          struct dm_change **ret_changes, size_t *ret_n)
{
        struct pg_store *s = pg_of(st);
        struct pg_params p = {0};
        struct pg_conn *c;
        PGresult *r = NULL;
        param_i64(&p, q->before_id > 0 ? q->before_id : INT64_MAX);
        param_i32(&p, q->type);
        param_i64(&p, q->since);
        param_i64(&p, q->until);
        param_i64(&p, clamp_limit(q->limit));
        param_i64(&p, clamp_limit(q->max_bytes));
        if (q->domain_id)
                param_i64(&p, q->domain_id);
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret =
            pg_run(c, q->domain_id ? STMT_CHANGES_DOMAIN : STMT_CHANGES_ALL, &p, "change list", &r);
        pool_put(s, c);
        if (ret < 0)
                return ret;
        size_t rows = (size_t)PQntuples(r), n = 0, bytes = 0;
        struct dm_change *changes = calloc(rows ? rows : 1, sizeof(*changes));
        if (!changes) {
                PQclear(r);
                return DM_ENOMEM;
        }
        /* The statement has stopped at the bound already; the count here is the
         * contract's. */
        while (n < rows && ret == 0) {
                ret = change_from_row(r, (int)n, &changes[n]);
                bytes += dm_change_size(&changes[n++]);
                if (q->max_bytes > 0 && bytes > q->max_bytes)
                        break;
        }
        PQclear(r);
        if (ret < 0) {
                dm_changes_free(changes, n);
                return ret;
        }
        *ret_changes = changes;
        *ret_n = n;
        return 0;
}

/* One statement, so one transaction of its own. */
static int pg_history_prune(struct dm_store *st, int64_t before, size_t limit, size_t *ret_n)
{
        struct pg_store *s = pg_of(st);
        struct pg_params p = {0};
        struct pg_conn *c;
        PGresult *r = NULL;
        param_i64(&p, before);
        param_i64(&p, clamp_limit(limit));
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = pg_run(c, STMT_HISTORY_PRUNE, &p, "history prune", &r);
        pool_put(s, c);
        if (ret < 0)
                return ret;
        *ret_n = (size_t)pg_affected(r);
        PQclear(r);
        return 0;
}

/* ---- outbox ---- */

static int outbox_event_cmp(const void *a, const void *b)
{
        const struct dm_outbox_event *x = a, *y = b;
        return (x->id > y->id) - (x->id < y->id);
}

static int pg_outbox_add(struct dm_store *st, const char *routing_key, const char *body)
{
        struct pg_store *s = pg_of(st);
        struct pg_params p = {0};
        struct pg_conn *c;
        param_text(&p, routing_key);
        param_text(&p, body);
        param_i64(&p, dm_now_ms());
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = pg_run(c, STMT_OUTBOX_INSERT, &p, "outbox insert", NULL);
        pool_put(s, c);
        return ret;
}

static int pg_outbox_claim(struct dm_store *st, int64_t owner, int64_t lease_ms, size_t limit,
                           int64_t now, struct dm_outbox_event **ret_events, size_t *ret_n)
{
        struct pg_store *s = pg_of(st);
        struct pg_params p = {0};
        struct pg_conn *c;
        PGresult *r = NULL;
        param_i64(&p, owner);
        param_i64(&p, now);
        param_i64(&p, lease_ms);
        param_i64(&p, clamp_limit(limit));
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = pg_run(c, STMT_OUTBOX_CLAIM, &p, "outbox claim", &r);
        pool_put(s, c);
        if (ret < 0)
                return ret;
        size_t n = (size_t)PQntuples(r);
        struct dm_outbox_event *events = calloc(n ? n : 1, sizeof(*events));
        if (!events) {
                PQclear(r);
                return DM_ENOMEM; /* claimed all the same: this owner takes them back */
        }
        for (size_t i = 0; i < n && ret == 0; i++) {
                struct dm_outbox_event *e = &events[i];
                e->id = col_int(r, (int)i, 0);
                e->created_at = col_int(r, (int)i, 3);
                ret = col_strdup(r, (int)i, 1, &e->routing_key);
                if (ret == 0)
                        ret = col_strdup(r, (int)i, 2, &e->body);
        }
        PQclear(r);
        if (ret < 0) {
                dm_outbox_events_free(events, n);
                return ret;
        }
        /* RETURNING follows no promised order. */
        if (n > 1)
                qsort(events, n, sizeof(*events), outbox_event_cmp);
        *ret_events = events;
        *ret_n = n;
        return 0;
}

static int pg_outbox_delete(struct dm_store *st, int64_t owner, const int64_t *ids, size_t n,
                            size_t *ret_n)
{
        struct pg_store *s = pg_of(st);
        struct pg_vals a;
        struct pg_params p = {0};
        struct pg_conn *c;
        PGresult *r = NULL;
        array_init(&a, PG_OID_INT8);
        for (size_t i = 0; i < n; i++)
                val_i64(&a, ids[i]);
        int ret = param_array(&p, &a);
        if (ret < 0)
                goto out_done;
        param_i64(&p, owner);
        ret = pool_get(s, &c);
        if (ret < 0)
                goto out_done;
        ret = pg_run(c, STMT_OUTBOX_DELETE, &p, "outbox delete", &r);
        pool_put(s, c);
        if (ret == 0) {
                *ret_n = (size_t)pg_affected(r);
                PQclear(r);
        }

out_done:
        vals_done(&a);
        return ret;
}

static int pg_outbox_count(struct dm_store *st, size_t *ret_n)
{
        struct pg_store *s = pg_of(st);
        struct pg_conn *c;
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = run_count(c, STMT_OUTBOX_COUNT, NULL, "outbox count", ret_n);
        pool_put(s, c);
        return ret;
}

static int pg_wipe(struct dm_store *st)
{
        struct pg_store *s = pg_of(st);
        struct pg_conn *c;
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = pg_exec(c, "TRUNCATE outbox, dns_changes, dns_current, api_keys, domains", "wipe");
        pool_put(s, c);
        return ret;
}

const struct dm_store_ops dm_store_pg_ops = {
    .name = "postgres",
    .caps = DM_STORE_CAP_CONCURRENT_WRITERS,
    .open = pg_open,
    .free = pg_free,
    .migrate = pg_migrate,
    .ping = pg_ping,
    .domain_insert = pg_domain_insert,
    .domain_insert_many = pg_domain_insert_many,
    .domain_get = pg_domain_get,
    .domain_update = pg_domain_update,
    .domain_delete = pg_domain_delete,
    .domain_list = pg_domain_list,
    .domain_request_scan = pg_domain_request_scan,
    .domain_request_scan_all = pg_domain_request_scan_all,
    .domain_count = pg_domain_count,
    .key_insert = pg_key_insert,
    .key_insert_first = pg_key_insert_first,
    .key_get = pg_key_get,
    .key_list = pg_key_list,
    .key_revoke = pg_key_revoke,
    .key_touch = pg_key_touch,
    .key_count_active = pg_key_count_active,
    .claim_due = pg_claim_due,
    .dns_current = pg_dns_current,
    .dns_commit = pg_dns_commit,
    .change_list = pg_change_list,
    .history_prune = pg_history_prune,
    .outbox_add = pg_outbox_add,
    .outbox_claim = pg_outbox_claim,
    .outbox_delete = pg_outbox_delete,
    .outbox_count = pg_outbox_count,
    .wipe = pg_wipe,
};
