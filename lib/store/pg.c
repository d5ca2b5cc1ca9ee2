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
        STMT_DOMAIN_DELETE_TLS,
        STMT_DOMAIN_DELETE_TLS_CHANGES,
        STMT_TLS_SEEN,
        STMT_TLS_CAS,
        STMT_TLS_INSERT,
        STMT_TLS_CHANGE_INSERT,
        STMT_TLS_CURRENT,
        STMT_TLS_CHANGES,
        STMT_TLS_CURRENT_DOMAIN,
        STMT_TLS_PRUNE,
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
        STMT_SESSION_PRUNE,
        STMT_SESSION_INSERT,
        STMT_SESSION_GET,
        STMT_SESSION_DELETE,
        STMT_SETTING_INSERT,
        STMT_SETTING_GET,
        STMT_CLAIM,
        STMT_CLAIM_POINT_GET,
        STMT_CLAIM_POINT_MOVE,
        STMT_CLAIM_POINT_CLEAR,
        STMT_CURRENT,
        STMT_COMMIT_LOCK,
        STMT_COMMIT_DOMAINS,
        STMT_COMMIT_PRUNE,
        STMT_COMMIT_ROWS,
        STMT_COMMIT_IDS,
        STMT_OUTBOX_INSERT,
        STMT_CHANGES_ALL,
        STMT_CHANGES_DOMAIN,
        STMT_CHANGES_NAME,
        STMT_HISTORY_PRUNE,
        STMT_OUTBOX_CLAIM,
        STMT_OUTBOX_DELETE,
        STMT_OUTBOX_COUNT,
        STMT_REG_CLAIM,
        STMT_REG_DEFER,
        STMT_REG_GET,
        STMT_REG_LOCK,
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
        "SELECT id, domain_id, domain, type, status, observed_at, before, after, added, removed, " \
        "serial_only FROM (SELECT c.id, c.domain_id, c.domain, c.type, c.status, c.observed_at, "  \
        "c.before, c.after, c.added, c.removed, c.serial_only, sum(" CHANGE_SIZE ") OVER (ORDER "  \
        "BY c.id DESC ROWS UNBOUNDED PRECEDING) - " CHANGE_SIZE " AS earlier "                     \
        "FROM dns_changes AS c "
#define CHANGE_FILTERS                                                                             \
        "c.id < $1::bigint AND ($2::integer = 0 OR c.type = $2) AND "                              \
        "($3::bigint = 0 OR c.observed_at >= $3) AND ($4::bigint = 0 OR c.observed_at < $4) "      \
        "AND ($7::text IS NULL OR c.domain = $7) AND (NOT $8::boolean OR c.before IS NOT NULL) "   \
        "AND (NOT $9::boolean OR NOT c.serial_only) "                                              \
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
        "created_at, updated_at, next_check_at, status, phase_ms, checks, tls_ports) VALUES "
        "($1::text, $2::text, $3::boolean, $4::bigint, $5::text, $6::bigint, $6, $6, "
        "$7::smallint, $8::bigint, $9::text, $10::text) "
        "ON CONFLICT (name) DO NOTHING RETURNING " DOMAIN_COLS,
    /* Names are unique within the arrays (the caller drops repeats); ids follow the order
     * of the batch. */
    [STMT_DOMAIN_INSERT_MANY] =
        "INSERT INTO domains (name, unicode_name, enabled, interval_ms, record_types, "
        "created_at, updated_at, next_check_at, status, phase_ms, checks, tls_ports) "
        "SELECT u.name, u.uname, u.enabled, u.iv, u.types, $6::bigint, $6, $6, $7::smallint, "
        "u.phase, u.checks, u.ports FROM unnest($1::text[], $2::text[], $3::boolean[], "
        "$4::bigint[], $5::text[], $8::bigint[], $9::text[], $10::text[]) WITH ORDINALITY "
        "AS u(name, uname, enabled, iv, types, phase, checks, ports, ord) "
        "ORDER BY u.ord ON CONFLICT (name) DO NOTHING RETURNING " DOMAIN_COLS,
    [STMT_DOMAIN_GET] = "SELECT " DOMAIN_COLS " FROM domains WHERE name = $1::text",
    /* As in SQLite: updated_at is the caller's when newer than the stored one, else now; a
     * shorter interval takes effect now rather than after the old, longer slot. */
    [STMT_DOMAIN_UPDATE] =
        "UPDATE domains SET enabled = CASE WHEN $5::boolean THEN $2::boolean ELSE enabled END, "
        "interval_ms = CASE WHEN $6::boolean THEN $3::bigint ELSE interval_ms END, "
        "record_types = CASE WHEN $7::boolean THEN $4::text ELSE record_types END, "
        "checks = CASE WHEN $11::boolean THEN $10::text ELSE checks END, "
        "registration_next_at = CASE WHEN $11 AND checks IS DISTINCT FROM $10 THEN 0 "
        "ELSE registration_next_at END, "
        "tls_ports = CASE WHEN $13::boolean THEN $12::text ELSE tls_ports END, "
        "updated_at = CASE WHEN $8::bigint > updated_at THEN $8 ELSE $9::bigint END, "
        "next_check_at = CASE WHEN $6 AND $3 > 0 AND $3 <> interval_ms "
        "THEN least(next_check_at, $9 + $3) ELSE next_check_at END WHERE name = $1::text",
    /* A domain's rows elsewhere go with it, statement by statement in one transaction:
     * the first waits for a commit that holds the domain, and the next ones, with a
     * snapshot taken after it, see what that commit wrote. */
    [STMT_DOMAIN_DELETE] = "DELETE FROM domains WHERE name = $1::text RETURNING " DOMAIN_COLS,
    [STMT_DOMAIN_DELETE_CURRENT] = "DELETE FROM dns_current WHERE domain_id = $1::bigint",
    /* History stays (it outlives the domain) unless purged, by name. */
    [STMT_DOMAIN_DELETE_CHANGES] = "DELETE FROM dns_changes WHERE domain = $1::text",
    [STMT_DOMAIN_DELETE_TLS] = "DELETE FROM tls_current WHERE domain_id = $1::bigint",
    [STMT_DOMAIN_DELETE_TLS_CHANGES] = "DELETE FROM tls_changes WHERE domain_id = $1::bigint",
    /* The TLS check's compare-and-swap on tls_fp. The CAS takes the domain's row lock, so
     * that its endpoint rows are replaced only while it is held (as the DNS commit does),
     * and a delete of the domain waits for it. */
    [STMT_TLS_SEEN] = "UPDATE domains SET tls_checked_at = greatest(tls_checked_at, $2::bigint) "
                      "WHERE id = $1::bigint AND tls_fp IS NOT DISTINCT FROM $3::bytea",
    [STMT_TLS_CAS] = "UPDATE domains SET tls_fp = $2::bytea, "
                     "tls_checked_at = greatest(tls_checked_at, $4::bigint), "
                     "tls_expires_at = $5::bigint WHERE id = $1::bigint AND tls_fp IS NOT "
                     "DISTINCT FROM $3::bytea RETURNING name",
    [STMT_TLS_INSERT] = "INSERT INTO tls_current (domain_id, " TLS_COLS ") VALUES ($1::bigint, "
                        "$2::integer, $3::text, $4::smallint, $5::text, $6::text, $7::boolean, "
                        "$8::text, $9::text, $10::bigint, $11::text, $12::bigint, $13::bigint)",
    [STMT_TLS_CHANGE_INSERT] = "INSERT INTO tls_changes (domain_id, port, address, chain_valid, "
                               "observed_at, before, after) VALUES ($1::bigint, $2::integer, "
                               "$3::text, $4::boolean, $5::bigint, $6::text, $7::text) "
                               "RETURNING id",
    [STMT_TLS_PRUNE] = "DELETE FROM tls_changes WHERE id = ANY (ARRAY(SELECT id FROM tls_changes "
                       "WHERE observed_at < $1::bigint ORDER BY observed_at, id LIMIT $2::bigint))",
    [STMT_TLS_CURRENT_DOMAIN] = "SELECT 1 FROM domains WHERE id = $1::bigint",
    [STMT_TLS_CURRENT] = "SELECT " TLS_COLS " FROM tls_current WHERE domain_id = $1::bigint "
                         "ORDER BY port, address",
    [STMT_TLS_CHANGES] = "SELECT c.id, c.domain_id, d.name, c.port, c.address, c.chain_valid, "
                         "c.observed_at, c.before, c.after FROM tls_changes AS c JOIN domains "
                         "AS d ON d.id = c.domain_id WHERE c.domain_id = $1::bigint AND "
                         "c.id < $2::bigint ORDER BY c.id DESC LIMIT $3::bigint",
    [STMT_DOMAIN_LIST] = "SELECT " DOMAIN_COLS " FROM domains WHERE name > $1::text AND "
                         "($2::text IS NULL OR name ILIKE $2 OR unicode_name ILIKE $2) "
                         "AND ($4::integer = 0 OR ($4 >> status::integer) & 1 = 1) "
                         "ORDER BY name LIMIT $3::bigint",
    [STMT_DOMAIN_REQUEST_SCAN] =
        "UPDATE domains SET next_check_at = least(next_check_at, $2::bigint), "
        "registration_next_at = least(registration_next_at, $2::bigint) WHERE name = $1::text",
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
    [STMT_SESSION_PRUNE] = "DELETE FROM sessions WHERE expires_at <= $1::bigint",
    [STMT_SESSION_INSERT] = "INSERT INTO sessions (id, key_id, scope, created_at, expires_at) "
                            "VALUES ($1::text, $2::text, $3::text, $4::bigint, $5::bigint) "
                            "ON CONFLICT (id) DO NOTHING",
    [STMT_SESSION_GET] =
        "SELECT id, key_id, scope, created_at, expires_at FROM sessions WHERE id = $1::text",
    [STMT_SESSION_DELETE] = "DELETE FROM sessions WHERE id = $1::text",
    [STMT_SETTING_INSERT] = "INSERT INTO settings (name, value, created_at) "
                            "VALUES ($1::text, $2::text, $3::bigint) ON CONFLICT (name) DO NOTHING",
    [STMT_SETTING_GET] = "SELECT value FROM settings WHERE name = $1::text",
    /* The SQLite backend's slot formula: the first instant after t = now + iv/2 that is
     * phase modulo iv, t + iv - ((t - phase) mod iv), the mod taken twice to stay
     * non-negative. The due rows are picked and locked once, in the CTE: rows another
     * scheduler holds are skipped, and a row another one has just moved fails the re-check
     * of next_check_at <= now. The walk starts after ($5, $6), where the last full claim of
     * this process ended (see pg_claim_due), and the last row picked is returned with every
     * row. `id = ANY (ARRAY(...))` makes the update fetch the claimed rows by primary key; a
     * join with the CTE would be planned, in the generic plan of a prepared statement, as a
     * hash of the whole table. */
    [STMT_CLAIM] = "WITH picked AS MATERIALIZED (SELECT id, next_check_at FROM domains "
                   "WHERE enabled AND next_check_at <= $1::bigint AND (next_check_at, id) > "
                   "($5::bigint, $6::bigint) ORDER BY next_check_at, id LIMIT $4::bigint "
                   "FOR UPDATE SKIP LOCKED), "
                   "last AS (SELECT next_check_at, id FROM picked "
                   "ORDER BY next_check_at DESC, id DESC LIMIT 1) "
                   "UPDATE domains SET next_check_at = (SELECT $1 + iv / 2 + iv - "
                   "((($1 + iv / 2 - phase_ms) % iv) + iv) % iv FROM (SELECT greatest(coalesce("
                   "nullif(interval_ms, 0), $2::bigint), $3::bigint)) AS s(iv)) "
                   "WHERE id = ANY (ARRAY(SELECT id FROM picked)) "
                   "RETURNING id, name, record_types, dns_fp, checks, tls_ports, tls_fp, "
                   "(SELECT next_check_at FROM last), (SELECT id FROM last)",
    /* The resume point all processes share (see pg_claim_due). It only moves forward, and
     * is cleared only if no other claim has moved it since it was read. */
    [STMT_CLAIM_POINT_GET] = "SELECT at_ms, domain_id FROM claim_resume WHERE at_ms IS NOT NULL",
    [STMT_CLAIM_POINT_MOVE] = "UPDATE claim_resume SET at_ms = $1::bigint, domain_id = $2::bigint "
                              "WHERE at_ms IS NULL OR (at_ms, domain_id) < ($1, $2)",
    [STMT_CLAIM_POINT_CLEAR] = "UPDATE claim_resume SET at_ms = NULL, domain_id = NULL "
                               "WHERE at_ms = $1::bigint AND domain_id = $2::bigint",
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
    [STMT_CHANGES_DOMAIN] = CHANGE_SELECT "WHERE c.domain_id = $10::bigint AND " CHANGE_FILTERS,
    /* And this one for the (domain, id) index: a name's history across deletes. */
    [STMT_CHANGES_NAME] = CHANGE_SELECT "WHERE c.domain = $7::text AND " CHANGE_FILTERS,
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
    /* The scheduler's claim for registration checks: locked rows are skipped, so two
     * claimers never take the same domain. */
    /* The first $5 due domains in the order of the index domains_registration_due that
     * no other claim holds: those without the registration check ($4: whether a domain
     * without checks of its own has it; checks are stored in canonical form) are moved on,
     * and the first $3 with it are claimed. The last column says which is which. The
     * others stay due, unlocked at the end of the statement. */
    [STMT_REG_CLAIM] =
        "WITH due AS MATERIALIZED (SELECT id, registration_next_at AS at, CASE WHEN "
        "coalesce(checks, '') = '' THEN $4::boolean ELSE strpos(checks, 'registration') > 0 "
        "END AS reg FROM domains WHERE enabled AND registration_next_at <= $1::bigint "
        "ORDER BY registration_next_at, id LIMIT $5::bigint FOR UPDATE SKIP LOCKED), "
        "take AS (SELECT id FROM due WHERE NOT reg UNION ALL "
        "(SELECT id FROM due WHERE reg ORDER BY at, id LIMIT $3::bigint)) "
        "UPDATE domains SET registration_next_at = $1 + $2::bigint "
        "WHERE id = ANY (ARRAY(SELECT id FROM take)) "
        "RETURNING id, name, checks, CASE WHEN coalesce(checks, '') = '' THEN $4 "
        "ELSE strpos(checks, 'registration') > 0 END",
    [STMT_REG_DEFER] = "UPDATE domains SET registration_next_at = $2::bigint WHERE id = $1::bigint",
    [STMT_REG_GET] = "SELECT status, source, registrable, error, data, raw, checked_at, "
                     "changed_at FROM registration_current WHERE domain_id = $1::bigint",
    /* The domain row's lock orders two commits of one domain. */
    [STMT_REG_LOCK] = "SELECT d.name, r.changed_at FROM domains AS d LEFT JOIN "
                      "registration_current AS r ON r.domain_id = d.id "
                      "WHERE d.id = $1::bigint FOR UPDATE OF d",
    [STMT_REG_UPSERT_DATA] =
        "INSERT INTO registration_current (domain_id, status, source, registrable, error, "
        "data, raw, checked_at, changed_at) VALUES ($1::bigint, $2::integer, $3::integer, "
        "$4::text, $5::text, $6::text, $7::text, $8::bigint, $9::bigint) "
        "ON CONFLICT (domain_id) DO UPDATE SET status = excluded.status, "
        "source = excluded.source, registrable = excluded.registrable, error = excluded.error, "
        "data = excluded.data, raw = excluded.raw, checked_at = excluded.checked_at, "
        "changed_at = excluded.changed_at",
    /* A failed or unsupported lookup keeps the data, its source and when it changed. */
    [STMT_REG_UPSERT_STATUS] =
        "INSERT INTO registration_current (domain_id, status, source, registrable, error, "
        "checked_at) VALUES ($1::bigint, $2::integer, $3::integer, $4::text, $5::text, "
        "$6::bigint) ON CONFLICT (domain_id) DO UPDATE SET status = excluded.status, "
        "registrable = excluded.registrable, error = excluded.error, "
        "checked_at = excluded.checked_at",
    [STMT_REG_EXPIRES] =
        "UPDATE domains SET registration_expires_at = $2::bigint WHERE id = $1::bigint",
    [STMT_REG_CHANGE_INSERT] = "INSERT INTO registration_changes (domain_id, observed_at, "
                               "fields) VALUES ($1::bigint, $2::bigint, $3::text) RETURNING id",
    /* Registration history is small (an entry per renewal or transfer): no time index. */
    [STMT_REG_PRUNE] = "DELETE FROM registration_changes WHERE id = ANY (ARRAY(SELECT id FROM "
                       "registration_changes WHERE observed_at < $1::bigint "
                       "ORDER BY observed_at, id LIMIT $2::bigint))",
    [STMT_REG_CHANGES] =
        "SELECT c.id, c.domain_id, d.name, c.observed_at, c.fields FROM registration_changes "
        "AS c JOIN domains AS d ON d.id = c.domain_id WHERE c.domain_id = $1::bigint AND "
        "c.id < $2::bigint ORDER BY c.id DESC LIMIT $3::bigint",
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

        /* Where this process's last full claim ended, under lock (see pg_claim_due). */
        bool claim_resume;
        int64_t claim_after_at, claim_after_id;
};

static struct pg_store *pg_of(struct dm_store *st)
{
        return (struct pg_store *)st;
}

/* ---- parameters and arrays, in PostgreSQL's binary formats ---- */

#define PG_PARAMS_MAX 16

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

static unsigned col_checks(const PGresult *r, int row, int col, int64_t domain_id)
{
        char s[DM_CHECKS_TEXT_MAX + 8];
        col_copy(r, row, col, s, sizeof(s));
        return dm_store_checks_from_text(s, domain_id);
}

static void col_ports(const PGresult *r, int row, int col, int64_t domain_id, uint16_t *ports,
                      size_t *ret_n)
{
        char s[DM_TLS_PORTS_TEXT_MAX + 8];
        col_copy(r, row, col, s, sizeof(s));
        dm_store_ports_from_text(s, domain_id, ports, ret_n);
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
        d->checks = col_checks(r, row, 14, d->id);
        col_ports(r, row, 15, d->id, d->tls_ports, &d->ntls_ports);
        col_fp(r, row, 16, d->tls_fp);
        d->tls_checked_at = col_int(r, row, 17);
        d->tls_expires_at = col_int(r, row, 18);
        d->registration_expires_at = col_int(r, row, 19);
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

/* A claim walks a due index in order and stops at its limit. Planned with statistics that
 * say few rows are due, which is what they say after a statement made every domain due at
 * once (request_scan_all) until autovacuum analyzes the table again, the planner fetched
 * every due row with a bitmap scan instead and sorted them: each claim of 1,000 read and
 * sorted all 100,000 due domains, 313 ms against 50 ms for the walk, and ten times that at
 * 1,000,000. So claims run in a transaction of their own with bitmap scans disabled, which
 * leaves the ordered walk the cheapest plan whatever the statistics say (a sequential scan
 * and a sort read the whole table). Sorts stay enabled: the claim sorts the rows it took,
 * and a disabled node's cost would set off JIT compilation, 255 ms a claim. JIT is off
 * too: it never pays for a statement this short. The settings end with the transaction.
 * On failure nothing was claimed: a failed COMMIT drops the rows read. */
static int pg_run_in_order(struct pg_conn *c, enum pg_stmt_id id, const struct pg_params *p,
                           const char *what, PGresult **ret_res)
{
        PGresult *r = NULL;
        int ret = pg_exec(c, "BEGIN; SET LOCAL enable_bitmapscan = off; SET LOCAL jit = off", what);
        if (ret < 0)
                return ret; /* pool_put rolls back what is left open */
        ret = pg_run(c, id, p, what, &r);
        if (ret < 0)
                return ret;
        ret = pg_exec(c, "COMMIT", what);
        if (ret < 0) {
                PQclear(r);
                return ret;
        }
        *ret_res = r;
        return 0;
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
        struct dm_store_settings_text set;
        struct pg_params p = {0};
        struct pg_conn *c;
        PGresult *r = NULL;
        int64_t now = dm_now_ms(), id = 0;
        int ret = dm_store_types_to_text(d->record_types, d->nrecord_types, types, sizeof(types));
        if (ret == 0)
                ret = dm_store_settings_to_text(d->checks, d->tls_ports, d->ntls_ports, &set);
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
        param_text(&p, set.checks);
        param_text(&p, set.tls_ports);

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
        struct pg_vals names, unames, enabled, ivs, types, phases, checks, ports;
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
        array_init(&checks, PG_OID_TEXT);
        array_init(&ports, PG_OID_TEXT);
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
                struct dm_store_settings_text set;
                if (results[i] < 0)
                        continue;
                ret = dm_store_types_to_text(ds[i].record_types, ds[i].nrecord_types, t, sizeof(t));
                if (ret == 0)
                        ret = dm_store_settings_to_text(ds[i].checks, ds[i].tls_ports,
                                                        ds[i].ntls_ports, &set);
                if (ret < 0)
                        goto out_free;
                val_text(&names, ds[i].name);
                val_text(&unames, domain_uname(&ds[i]));
                val_bool(&enabled, ds[i].enabled);
                val_i64(&ivs, ds[i].interval_ms);
                val_text(&types, t);
                val_i64(&phases, dm_store_phase(ds[i].name));
                val_text(&checks, set.checks);
                val_text(&ports, set.tls_ports);
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
        if (ret == 0)
                ret = param_array(&p, &checks);
        if (ret == 0)
                ret = param_array(&p, &ports);
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
        vals_done(&checks);
        vals_done(&ports);
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
        struct dm_store_settings_text set;
        struct pg_params p = {0};
        struct pg_conn *c;
        int ret = dm_store_types_to_text(d->record_types, d->nrecord_types, types, sizeof(types));
        if (ret == 0)
                ret = dm_store_settings_to_text(d->checks, d->tls_ports, d->ntls_ports, &set);
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
        param_text(&p, set.checks);
        param_bool(&p, fields & DM_DOMAIN_CHECKS);
        param_text(&p, set.tls_ports);
        param_bool(&p, fields & DM_DOMAIN_TLS_PORTS);
        ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = run_by_name(c, STMT_DOMAIN_UPDATE, &p, "domain update");
        pool_put(s, c);
        return ret;
}

static int pg_domain_delete(struct dm_store *st, const char *const *names, size_t n, unsigned flags,
                            dm_domain_event_fn event_fn, void *event_arg, int *ret_results)
{
        struct pg_store *s = pg_of(st);
        struct pg_conn *c;
        int64_t now = dm_now_ms();
        struct dm_domain *row = calloc(1, sizeof(*row));
        if (!row)
                return DM_ENOMEM;
        int ret = pool_get(s, &c);
        if (ret < 0)
                goto out_free;
        ret = tx_begin(c);
        for (size_t i = 0; i < n && ret == 0; i++) {
                struct pg_params p = {0};
                PGresult *r = NULL;
                bool found = false;
                param_text(&p, names[i]);
                ret = pg_run(c, STMT_DOMAIN_DELETE, &p, "domain delete", &r);
                if (ret == 0) {
                        found = PQntuples(r) > 0;
                        if (found)
                                domain_from_row(r, 0, row);
                        PQclear(r);
                }
                if (ret == 0 && found) {
                        struct pg_params id = {0};
                        param_i64(&id, row->id);
                        ret = pg_run(c, STMT_DOMAIN_DELETE_CURRENT, &id, "domain delete", NULL);
                        /* TLS state and history are kept by domain id: they go with it. */
                        if (ret == 0)
                                ret = pg_run(c, STMT_DOMAIN_DELETE_TLS, &id, "domain delete", NULL);
                        if (ret == 0)
                                ret = pg_run(c, STMT_DOMAIN_DELETE_TLS_CHANGES, &id,
                                             "domain delete", NULL);
                }
                if (ret == 0 && found && event_fn)
                        ret =
                            domain_event(c, DM_EVENT_DOMAIN_REMOVED, row, now, event_fn, event_arg);
                if (ret == 0 && (flags & DM_DELETE_PURGE)) {
                        r = NULL;
                        ret = pg_run(c, STMT_DOMAIN_DELETE_CHANGES, &p, "history purge", &r);
                        if (ret == 0 && pg_affected(r) > 0)
                                found = true;
                        PQclear(r);
                }
                ret_results[i] = found ? 0 : DM_ENOENT;
        }
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
        param_i32(&p, (int32_t)q->statuses);
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

/* ---- sessions and settings ---- */

static int pg_session_insert(struct dm_store *st, const struct dm_session *sess)
{
        struct pg_store *s = pg_of(st);
        struct pg_params prune = {0}, p = {0};
        struct pg_conn *c;
        PGresult *r = NULL;
        param_i64(&prune, sess->created_at);
        param_text(&p, sess->id);
        param_text(&p, sess->key_id);
        param_text(&p, dm_scope_name(sess->scope));
        param_i64(&p, sess->created_at);
        param_i64(&p, sess->expires_at);
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = pg_run(c, STMT_SESSION_PRUNE, &prune, "session prune", NULL);
        if (ret == 0)
                ret = pg_run(c, STMT_SESSION_INSERT, &p, "session insert", &r);
        pool_put(s, c);
        if (ret < 0)
                return ret;
        if (pg_affected(r) == 0)
                ret = DM_EEXIST;
        PQclear(r);
        return ret;
}

static int pg_session_get(struct dm_store *st, const char *id, struct dm_session *ret_session)
{
        struct pg_store *s = pg_of(st);
        struct pg_params p = {0};
        struct pg_conn *c;
        PGresult *r = NULL;
        char scope[16];
        param_text(&p, id);
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = pg_run(c, STMT_SESSION_GET, &p, "session get", &r);
        pool_put(s, c);
        if (ret < 0)
                return ret;
        if (PQntuples(r) > 0) {
                struct dm_session *x = ret_session;
                memset(x, 0, sizeof(*x));
                col_copy(r, 0, 0, x->id, sizeof(x->id));
                col_copy(r, 0, 1, x->key_id, sizeof(x->key_id));
                col_copy(r, 0, 2, scope, sizeof(scope));
                if (dm_scope_parse(scope, &x->scope) < 0)
                        x->scope = DM_SCOPE_NONE; /* grants nothing */
                x->created_at = col_int(r, 0, 3);
                x->expires_at = col_int(r, 0, 4);
        } else {
                ret = DM_ENOENT;
        }
        PQclear(r);
        return ret;
}

static int pg_session_delete(struct dm_store *st, const char *id)
{
        struct pg_store *s = pg_of(st);
        struct pg_params p = {0};
        struct pg_conn *c;
        param_text(&p, id);
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = run_by_name(c, STMT_SESSION_DELETE, &p, "session delete");
        pool_put(s, c);
        return ret;
}

/* Two statements, not one: INSERT ... ON CONFLICT waits for a concurrent inserter of the
 * same name to commit, and the SELECT that follows (a new snapshot) then sees its value. */
static int pg_setting_init(struct dm_store *st, const char *name, const char *value,
                           char *ret_value, size_t size)
{
        struct pg_store *s = pg_of(st);
        struct pg_params ins = {0}, get = {0};
        struct pg_conn *c;
        PGresult *r = NULL;
        param_text(&ins, name);
        param_text(&ins, value);
        param_i64(&ins, dm_now_ms());
        param_text(&get, name);
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = pg_run(c, STMT_SETTING_INSERT, &ins, "setting insert", NULL);
        if (ret == 0)
                ret = pg_run(c, STMT_SETTING_GET, &get, "setting get", &r);
        pool_put(s, c);
        if (ret < 0)
                return ret;
        if (PQntuples(r) == 0) {
                ret = DM_ENOENT;
        } else {
                size_t len = (size_t)PQgetlength(r, 0, 0);
                if (len >= size) {
                        ret = DM_E2BIG;
                } else {
                        memcpy(ret_value, PQgetvalue(r, 0, 0), len);
                        ret_value[len] = '\0';
                }
        }
        PQclear(r);
        return ret;
}

/* ---- scheduling ---- */

/* A claim takes the first due rows in (next_check_at, id) order. The rows it moves keep
 * their old entries in `domains_due` until vacuum, at the front of the due range; a claim
 * from the front would walk past every one of them again, which grows with the square of
 * the domains made due at once (a scan of them all, or a backlog). So a claim that came
 * back full resumes where it ended. A resumed claim that comes back short goes on from the
 * front for the rest, so that a short answer still means nothing else is due: a row passed
 * over (locked at the time by another claim or a commit, or made due behind the resume
 * point) is taken then. A clock set back behind the resume point starts from the front.
 *
 * Every process claims from the same due range, so the resume point is also kept in the
 * database (`claim_resume`): a claim starts after the later of this process's point and the
 * shared one, and a full claim moves the shared one forward. Without it, each claim of one
 * process would walk past every row the others claimed since its own last claim. A claim
 * from the front that comes back short clears the shared point, as it would this
 * process's; a point that is stale or lost costs a walk, never a domain. */
struct claim_point {
        bool set;
        int64_t at, id;
};

static bool claim_point_after(const struct claim_point *a, const struct claim_point *b)
{
        return a->set && (!b->set || a->at > b->at || (a->at == b->at && a->id > b->id));
}

/* The shared point, if there is one. A failure leaves it unset: the claim then starts from
 * this process's own point. */
static struct claim_point claim_point_shared(struct pg_conn *c)
{
        struct claim_point sp = {0};
        PGresult *r = NULL;
        if (pg_run(c, STMT_CLAIM_POINT_GET, NULL, "claim point", &r) < 0)
                return sp;
        if (PQntuples(r) == 1)
                sp = (struct claim_point){true, col_int(r, 0, 0), col_int(r, 0, 1)};
        PQclear(r);
        return sp;
}

static void claim_point_write(struct pg_conn *c, enum pg_stmt_id id, const struct claim_point *pt,
                              const char *what)
{
        struct pg_params p = {0};
        param_i64(&p, pt->at);
        param_i64(&p, pt->id);
        (void)pg_run(c, id, &p, what, NULL); /* logged; the claim stands either way */
}

/* One claim statement of at most `limit` rows after `from` (from the front if unset).
 * Returns the number of rows claimed; *ret_last is set if the claim came back full. */
static int pg_claim_once(struct pg_conn *c, const struct dm_claim_opts *opts, int64_t limit,
                         const struct claim_point *from, struct dm_scan_task *ret_tasks,
                         struct claim_point *ret_last)
{
        struct pg_params p = {0};
        PGresult *r = NULL;
        param_i64(&p, opts->now);
        param_i64(&p, opts->default_interval_ms);
        param_i64(&p, opts->min_interval_ms);
        param_i64(&p, limit);
        param_i64(&p, from->set ? from->at : INT64_MIN);
        param_i64(&p, from->set ? from->id : 0);
        int ret = pg_run_in_order(c, STMT_CLAIM, &p, "claim", &r);
        if (ret < 0)
                return ret;
        int rows = PQntuples(r);
        int n = 0;
        for (int row = 0; row < rows && n < limit; row++) {
                struct dm_scan_task *t = &ret_tasks[n++];
                memset(t, 0, sizeof(*t));
                t->domain_id = col_int(r, row, 0);
                col_copy(r, row, 1, t->name, sizeof(t->name));
                col_types(r, row, 2, t->domain_id, t->record_types, &t->nrecord_types);
                col_fp(r, row, 3, t->dns_fp);
                t->checks = col_checks(r, row, 4, t->domain_id);
                col_ports(r, row, 5, t->domain_id, t->tls_ports, &t->ntls_ports);
                col_fp(r, row, 6, t->tls_fp);
        }
        *ret_last = (struct claim_point){0};
        if (rows >= limit)
                *ret_last = (struct claim_point){true, col_int(r, 0, 7), col_int(r, 0, 8)};
        PQclear(r);
        return n;
}

static int pg_claim_due(struct dm_store *st, const struct dm_claim_opts *opts,
                        struct dm_scan_task *ret_tasks, size_t *ret_n)
{
        struct pg_store *s = pg_of(st);
        int64_t limit = clamp_limit(opts->limit);
        struct pg_conn *c;
        *ret_n = 0;
        if (limit == 0)
                return 0;
        struct claim_point own = {0};
        pthread_mutex_lock(&s->lock);
        if (s->claim_resume && s->claim_after_at <= opts->now)
                own = (struct claim_point){true, s->claim_after_at, s->claim_after_id};
        s->claim_resume = false;
        pthread_mutex_unlock(&s->lock);
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        struct claim_point shared = claim_point_shared(c);
        struct claim_point from = own, front = {0}, last;
        if (shared.set && shared.at <= opts->now && claim_point_after(&shared, &own))
                from = shared;
        int n = pg_claim_once(c, opts, limit, &from, ret_tasks, &last);
        int more = 0;
        if (n >= 0 && !last.set && from.set) {
                more = pg_claim_once(c, opts, limit - n, &front, ret_tasks + n, &last);
                if (more < 0 && n == 0)
                        n = more;
        }
        if (n < 0 || more < 0) { /* what was claimed stands; the points stay as they are */
                pool_put(s, c);
                if (n < 0)
                        return n;
                *ret_n = (size_t)n;
                return 0;
        }
        n += more;
        if (last.set) {
                pthread_mutex_lock(&s->lock);
                s->claim_resume = true;
                s->claim_after_at = last.at;
                s->claim_after_id = last.id;
                pthread_mutex_unlock(&s->lock);
                if (claim_point_after(&last, &shared))
                        claim_point_write(c, STMT_CLAIM_POINT_MOVE, &last, "claim point");
        } else if (shared.set) {
                /* A claim from the front came back short: nothing else is due. */
                claim_point_write(c, STMT_CLAIM_POINT_CLEAR, &shared, "claim point");
        }
        pool_put(s, c);
        *ret_n = (size_t)n;
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
                        copy_row(&rows, 11);
                        val_i64(&rows, ch->id);
                        val_i64(&rows, ch->domain_id);
                        val_i32(&rows, ch->type);
                        val_i16(&rows, (int)ch->status);
                        val_i64(&rows, ch->observed_at);
                        val_text(&rows, ch->before);
                        val_text(&rows, ch->after ? ch->after : "[]");
                        val_text(&rows, ch->added ? ch->added : "[]");
                        val_text(&rows, ch->removed ? ch->removed : "[]");
                        val_text(&rows, ch->domain);
                        val_bool(&rows, ch->serial_only);
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
                               "before, after, added, removed, domain, serial_only) FROM STDIN "
                               "(FORMAT binary)",
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
        ch->serial_only = col_int(r, row, 10) != 0;
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
        param_text(&p, q->domain);
        param_bool(&p, q->hide_first);
        param_bool(&p, q->hide_serial_only);
        if (q->domain_id)
                param_i64(&p, q->domain_id);
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = pg_run(c,
                     q->domain_id ? STMT_CHANGES_DOMAIN
                                  : (q->domain ? STMT_CHANGES_NAME : STMT_CHANGES_ALL),
                     &p, "change list", &r);
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
        size_t n = 0;
        if (ret == 0) {
                n = (size_t)pg_affected(r);
                PQclear(r);
        }
        /* The TLS history goes by the same rule, in what is left of the batch. */
        if (ret == 0 && n < limit) {
                p.n = 0;
                param_i64(&p, before);
                param_i64(&p, clamp_limit(limit - n));
                ret = pg_run(c, STMT_TLS_PRUNE, &p, "tls history prune", &r);
                if (ret == 0) {
                        n += (size_t)pg_affected(r);
                        PQclear(r);
                }
        }
        /* Then the registration history, with what the limit leaves. */
        if (ret == 0 && n < limit) {
                p.n = 0;
                param_i64(&p, before);
                param_i64(&p, clamp_limit(limit - n));
                ret = pg_run(c, STMT_REG_PRUNE, &p, "registration history prune", &r);
                if (ret == 0) {
                        n += (size_t)pg_affected(r);
                        PQclear(r);
                }
        }
        pool_put(s, c);
        if (ret < 0)
                return ret;
        *ret_n = n;
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

/* ---- TLS ---- */

/* "No state" is NULL, so that `tls_fp IS NOT DISTINCT FROM $n` matches it. */
static void param_fp(struct pg_params *p, const uint8_t fp[DM_FP_LEN])
{
        if (dm_store_fp_is_zero(fp))
                param_null(p);
        else
                param_raw(p, fp, DM_FP_LEN);
}

static int tls_commit_rows(struct pg_conn *c, struct dm_tls_commit *it, const char *name,
                           int64_t now, dm_tls_change_event_fn event_fn, void *event_arg)
{
        struct pg_params del = {0};
        param_i64(&del, it->domain_id);
        int ret = pg_run(c, STMT_DOMAIN_DELETE_TLS, &del, "tls delete", NULL);
        for (size_t i = 0; ret == 0 && i < it->nendpoints; i++) {
                const struct dm_tls_endpoint *e = &it->endpoints[i];
                struct pg_params p = {0};
                param_i64(&p, it->domain_id);
                param_i32(&p, e->port);
                param_text(&p, e->address);
                param_i16(&p, (int)e->status);
                param_text(&p, e->status == DM_TLS_ERROR ? e->error : NULL);
                param_text(&p, e->protocol);
                param_bool(&p, e->chain_valid);
                param_text(&p, e->chain_error);
                param_text(&p, e->sha256);
                param_i64(&p, e->not_after);
                param_text(&p, e->cert);
                param_i64(&p, e->checked_at ? e->checked_at : it->checked_at);
                param_i64(&p, e->changed_at);
                ret = pg_run(c, STMT_TLS_INSERT, &p, "tls insert", NULL);
        }
        for (size_t i = 0; ret == 0 && i < it->nchanges; i++) {
                struct dm_tls_change *ch = &it->changes[i];
                struct pg_params p = {0};
                PGresult *r = NULL;
                if (!ch->observed_at)
                        ch->observed_at = it->checked_at;
                param_i64(&p, it->domain_id);
                param_i32(&p, ch->port);
                param_text(&p, ch->address);
                param_bool(&p, ch->chain_valid);
                param_i64(&p, ch->observed_at);
                param_text(&p, ch->before);
                param_text(&p, ch->after ? ch->after : "{}");
                ret = pg_run(c, STMT_TLS_CHANGE_INSERT, &p, "tls change insert", &r);
                if (ret < 0)
                        break;
                ch->id = col_int(r, 0, 0);
                PQclear(r);
                ch->domain_id = it->domain_id;
                snprintf(ch->domain, sizeof(ch->domain), "%s", name);
                if (!event_fn)
                        continue;
                char *body = event_fn(ch, event_arg);
                if (!body)
                        return DM_ENOMEM;
                p.n = 0;
                param_text(&p, DM_EVENT_CHANGE_TLS);
                param_text(&p, body);
                param_i64(&p, now);
                ret = pg_run(c, STMT_OUTBOX_INSERT, &p, "outbox insert", NULL);
                free(body);
        }
        return ret;
}

static int pg_domain_exists(struct pg_conn *c, int64_t id, bool *ret_exists)
{
        struct pg_params p = {0};
        PGresult *r = NULL;
        param_i64(&p, id);
        int ret = pg_run(c, STMT_TLS_CURRENT_DOMAIN, &p, "domain exists", &r);
        if (ret == 0) {
                *ret_exists = PQntuples(r) > 0;
                PQclear(r);
        }
        return ret;
}

static int tls_commit_item(struct pg_conn *c, struct dm_tls_commit *it, int64_t now,
                           dm_tls_change_event_fn event_fn, void *event_arg)
{
        int64_t checked_at = it->checked_at ? it->checked_at : now;
        bool same = memcmp(it->old_fp, it->new_fp, DM_FP_LEN) == 0;
        char name[DM_NAME_MAX + 1] = "";
        bool swapped = false;
        struct pg_params p = {0};
        PGresult *r = NULL;
        int ret;

        if (!same && !dm_store_tls_item_fits(it)) {
                it->result = DM_E2BIG;
                return 0;
        }
        param_i64(&p, it->domain_id);
        if (same) {
                param_i64(&p, checked_at);
                param_fp(&p, it->old_fp);
                ret = pg_run(c, STMT_TLS_SEEN, &p, "tls commit", &r);
                if (ret == 0)
                        swapped = pg_affected(r) > 0;
        } else {
                param_fp(&p, it->new_fp);
                param_fp(&p, it->old_fp);
                param_i64(&p, checked_at);
                param_time(&p, it->expires_at);
                ret = pg_run(c, STMT_TLS_CAS, &p, "tls commit", &r);
                if (ret == 0 && PQntuples(r) > 0) {
                        col_copy(r, 0, 0, name, sizeof(name));
                        swapped = true;
                }
        }
        PQclear(r);
        if (ret < 0)
                return ret;
        if (!swapped) {
                bool exists = false;
                ret = pg_domain_exists(c, it->domain_id, &exists);
                if (ret == 0)
                        it->result = exists ? DM_ECONFLICT : DM_ENOENT;
                return ret;
        }
        if (!same) {
                ret = tls_commit_rows(c, it, name, now, event_fn, event_arg);
                if (ret < 0)
                        return ret;
        }
        it->result = 0;
        return 0;
}

static int pg_tls_commit(struct dm_store *st, struct dm_tls_commit *items, size_t n,
                         dm_tls_change_event_fn event_fn, void *event_arg)
{
        struct pg_store *s = pg_of(st);
        struct pg_conn *c;
        int64_t now = dm_now_ms();
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = tx_begin(c);
        for (size_t i = 0; ret == 0 && i < n; i++)
                ret = tls_commit_item(c, &items[i], now, event_fn, event_arg);
        if (ret == 0)
                ret = tx_commit(c);
        pool_put(s, c); /* rolls back what did not commit */
        if (ret < 0) {
                for (size_t i = 0; i < n; i++) {
                        items[i].result = ret;
                        for (size_t j = 0; j < items[i].nchanges; j++)
                                items[i].changes[j].id = 0;
                }
        }
        return ret;
}

static int pg_tls_current(struct dm_store *st, int64_t domain_id,
                          struct dm_tls_endpoint **ret_endpoints, size_t *ret_n)
{
        struct pg_store *s = pg_of(st);
        struct pg_params p = {0};
        struct pg_conn *c;
        PGresult *r = NULL;
        param_i64(&p, domain_id);
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = pg_run(c, STMT_TLS_CURRENT, &p, "tls current", &r);
        pool_put(s, c);
        if (ret < 0)
                return ret;
        size_t n = (size_t)PQntuples(r);
        struct dm_tls_endpoint *eps = calloc(n ? n : 1, sizeof(*eps));
        if (!eps) {
                PQclear(r);
                return DM_ENOMEM;
        }
        for (size_t i = 0; ret == 0 && i < n; i++) {
                struct dm_tls_endpoint *e = &eps[i];
                int row = (int)i;
                e->port = (uint16_t)col_int(r, row, 0);
                col_copy(r, row, 1, e->address, sizeof(e->address));
                e->status = col_int(r, row, 2) == DM_TLS_OK ? DM_TLS_OK : DM_TLS_ERROR;
                col_copy(r, row, 3, e->error, sizeof(e->error));
                col_copy(r, row, 4, e->protocol, sizeof(e->protocol));
                e->chain_valid = col_int(r, row, 5) != 0;
                col_copy(r, row, 6, e->chain_error, sizeof(e->chain_error));
                col_copy(r, row, 7, e->sha256, sizeof(e->sha256));
                e->not_after = col_int(r, row, 8);
                ret = col_strdup(r, row, 9, &e->cert);
                e->checked_at = col_int(r, row, 10);
                e->changed_at = col_int(r, row, 11);
        }
        PQclear(r);
        if (ret < 0) {
                dm_tls_endpoints_free(eps, n);
                return ret;
        }
        *ret_endpoints = eps;
        *ret_n = n;
        return 0;
}

static int pg_tls_change_list(struct dm_store *st, int64_t domain_id, int64_t before_id,
                              size_t limit, struct dm_tls_change **ret_changes, size_t *ret_n)
{
        struct pg_store *s = pg_of(st);
        struct pg_params p = {0};
        struct pg_conn *c;
        PGresult *r = NULL;
        param_i64(&p, domain_id);
        param_i64(&p, before_id > 0 ? before_id : INT64_MAX);
        param_i64(&p, clamp_limit(limit));
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = pg_run(c, STMT_TLS_CHANGES, &p, "tls change list", &r);
        pool_put(s, c);
        if (ret < 0)
                return ret;
        size_t n = (size_t)PQntuples(r);
        struct dm_tls_change *chs = calloc(n ? n : 1, sizeof(*chs));
        if (!chs) {
                PQclear(r);
                return DM_ENOMEM;
        }
        for (size_t i = 0; ret == 0 && i < n; i++) {
                struct dm_tls_change *ch = &chs[i];
                int row = (int)i;
                ch->id = col_int(r, row, 0);
                ch->domain_id = col_int(r, row, 1);
                col_copy(r, row, 2, ch->domain, sizeof(ch->domain));
                ch->port = (uint16_t)col_int(r, row, 3);
                col_copy(r, row, 4, ch->address, sizeof(ch->address));
                ch->chain_valid = col_int(r, row, 5) != 0;
                ch->observed_at = col_int(r, row, 6);
                ret = col_strdup(r, row, 7, &ch->before);
                if (ret == 0)
                        ret = col_strdup(r, row, 8, &ch->after);
        }
        PQclear(r);
        if (ret < 0) {
                dm_tls_changes_free(chs, n);
                return ret;
        }
        *ret_changes = chs;
        *ret_n = n;
        return 0;
}

/* ---- alerts ----
 * Few rows and rare calls next to the scans: these statements go with PQexecParams, parsed
 * per call, rather than prepared on every connection. */

#define ALERT_RULE_COLS "id, name, channel, target, secret, spec, created_at, updated_at"
#define ALERT_DLV_COLS                                                                             \
        "id, rule_id, event_key, routing_key, domain, body, status, attempts, last_error, "        \
        "next_attempt_at, delivered_at, created_at"

/* Borrows a connection, runs `sql` with `p`, gives the connection back. */
static int alert_run(struct pg_store *s, const char *sql, const struct pg_params *p,
                     const char *what, PGresult **ret_res)
{
        struct pg_conn *c;
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        PGresult *r = PQexecParams(c->pq, sql, p->n, NULL, p->values, p->lengths, p->formats, 1);
        ExecStatusType rs = PQresultStatus(r);
        if (rs != PGRES_TUPLES_OK && rs != PGRES_COMMAND_OK)
                ret = pg_fail(c, r, what);
        else if (ret_res)
                *ret_res = r;
        else
                PQclear(r);
        pool_put(s, c);
        return ret;
}

static int alert_rule_from_res(const PGresult *r, int row, struct dm_alert_rule *a)
{
        char channel[16];
        memset(a, 0, sizeof(*a));
        a->id = col_int(r, row, 0);
        col_copy(r, row, 1, a->name, sizeof(a->name));
        col_copy(r, row, 2, channel, sizeof(channel));
        if (dm_alert_channel_parse(channel, &a->channel) < 0)
                a->channel = DM_ALERT_CHANNEL_NONE; /* sends nothing */
        col_copy(r, row, 3, a->target, sizeof(a->target));
        col_copy(r, row, 4, a->secret, sizeof(a->secret));
        a->created_at = col_int(r, row, 6);
        a->updated_at = col_int(r, row, 7);
        return col_strdup(r, row, 5, &a->spec);
}

static int alert_delivery_from_res(const PGresult *r, int row, struct dm_alert_delivery *d)
{
        char status[16];
        memset(d, 0, sizeof(*d));
        d->id = col_int(r, row, 0);
        d->rule_id = col_int(r, row, 1);
        col_copy(r, row, 2, d->event_key, sizeof(d->event_key));
        col_copy(r, row, 3, d->routing_key, sizeof(d->routing_key));
        col_copy(r, row, 4, d->domain, sizeof(d->domain));
        col_copy(r, row, 6, status, sizeof(status));
        if (dm_alert_status_parse(status, &d->status) < 0)
                d->status = DM_ALERT_FAILED;
        d->attempts = (unsigned)col_int(r, row, 7);
        col_copy(r, row, 8, d->last_error, sizeof(d->last_error));
        d->next_attempt_at = col_int(r, row, 9);
        d->delivered_at = col_int(r, row, 10);
        d->created_at = col_int(r, row, 11);
        return col_strdup(r, row, 5, &d->body);
}

static void alert_rule_params(struct pg_params *p, const struct dm_alert_rule *a)
{
        param_text(p, a->name);
        param_text(p, dm_alert_channel_name(a->channel));
        param_text(p, a->target);
        param_text(p, a->secret);
        param_text(p, a->spec);
}

static int pg_alert_rule_insert(struct dm_store *st, struct dm_alert_rule *rule)
{
        struct pg_params p = {0};
        PGresult *r = NULL;
        int64_t now = dm_now_ms();
        alert_rule_params(&p, rule);
        param_i64(&p, now);
        int ret = alert_run(pg_of(st),
                            "INSERT INTO alert_rules (name, channel, target, secret, spec, "
                            "created_at, updated_at) VALUES ($1::text, $2::text, $3::text, "
                            "$4::text, $5::text, $6::bigint, $6::bigint) RETURNING id",
                            &p, "alert rule insert", &r);
        if (ret < 0)
                return ret;
        rule->id = col_int(r, 0, 0);
        rule->created_at = rule->updated_at = now;
        PQclear(r);
        return 0;
}

static int pg_alert_rule_get(struct dm_store *st, int64_t id, struct dm_alert_rule *ret_rule)
{
        struct pg_params p = {0};
        PGresult *r = NULL;
        param_i64(&p, id);
        int ret = alert_run(pg_of(st),
                            "SELECT " ALERT_RULE_COLS " FROM alert_rules WHERE id = $1::bigint", &p,
                            "alert rule get", &r);
        if (ret < 0)
                return ret;
        if (PQntuples(r) == 0) {
                PQclear(r);
                return DM_ENOENT;
        }
        struct dm_alert_rule a;
        ret = alert_rule_from_res(r, 0, &a);
        PQclear(r);
        if (ret == 0)
                *ret_rule = a;
        return ret;
}

static int pg_alert_rule_update(struct dm_store *st, struct dm_alert_rule *rule)
{
        struct pg_params p = {0};
        PGresult *r = NULL;
        alert_rule_params(&p, rule);
        param_i64(&p, dm_now_ms());
        param_i64(&p, rule->id);
        int ret = alert_run(pg_of(st),
                            "UPDATE alert_rules SET name = $1::text, channel = $2::text, target = "
                            "$3::text, secret = $4::text, spec = $5::text, updated_at = "
                            "greatest(updated_at, $6::bigint) WHERE id = $7::bigint "
                            "RETURNING updated_at",
                            &p, "alert rule update", &r);
        if (ret < 0)
                return ret;
        if (PQntuples(r) == 0)
                ret = DM_ENOENT;
        else
                rule->updated_at = col_int(r, 0, 0);
        PQclear(r);
        return ret;
}

static int pg_alert_rule_delete(struct dm_store *st, int64_t id)
{
        struct pg_params p = {0};
        PGresult *r = NULL;
        param_i64(&p, id);
        int ret = alert_run(pg_of(st), "DELETE FROM alert_rules WHERE id = $1::bigint", &p,
                            "alert rule delete", &r);
        if (ret < 0)
                return ret;
        if (pg_affected(r) == 0)
                ret = DM_ENOENT;
        PQclear(r);
        return ret;
}

static int pg_alert_rule_list(struct dm_store *st, int64_t after_id, size_t limit,
                              struct dm_alert_rule **ret_rules, size_t *ret_n)
{
        struct pg_params p = {0};
        PGresult *r = NULL;
        param_i64(&p, after_id);
        param_i64(&p, clamp_limit(limit));
        int ret = alert_run(pg_of(st),
                            "SELECT " ALERT_RULE_COLS " FROM alert_rules WHERE id > $1::bigint "
                            "ORDER BY id LIMIT $2::bigint",
                            &p, "alert rule list", &r);
        if (ret < 0)
                return ret;
        size_t n = (size_t)PQntuples(r), done = 0;
        struct dm_alert_rule *rules = calloc(n ? n : 1, sizeof(*rules));
        if (!rules)
                ret = DM_ENOMEM;
        for (; ret == 0 && done < n; done++)
                ret = alert_rule_from_res(r, (int)done, &rules[done]);
        PQclear(r);
        if (ret < 0) {
                dm_alert_rules_free(rules, done);
                return ret;
        }
        *ret_rules = rules;
        *ret_n = n;
        return 0;
}

static int pg_domain_expiring(struct dm_store *st, int64_t before, int64_t after_id, size_t limit,
                              struct dm_domain_expiry **ret_items, size_t *ret_n)
{
        struct pg_params p = {0};
        PGresult *r = NULL;
        param_i64(&p, before);
        param_i64(&p, after_id);
        param_i64(&p, clamp_limit(limit));
        int ret = alert_run(pg_of(st),
                            "SELECT id, name, coalesce(tls_expires_at, 0), "
                            "coalesce(registration_expires_at, 0) FROM domains WHERE enabled "
                            "AND id > $2::bigint AND ((tls_expires_at > 0 AND tls_expires_at <= "
                            "$1::bigint) OR (registration_expires_at > 0 AND "
                            "registration_expires_at <= $1::bigint)) ORDER BY id LIMIT $3::bigint",
                            &p, "domain expiring", &r);
        if (ret < 0)
                return ret;
        size_t n = (size_t)PQntuples(r);
        struct dm_domain_expiry *items = calloc(n ? n : 1, sizeof(*items));
        if (!items) {
                PQclear(r);
                return DM_ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                items[i].id = col_int(r, (int)i, 0);
                col_copy(r, (int)i, 1, items[i].name, sizeof(items[i].name));
                items[i].tls_expires_at = col_int(r, (int)i, 2);
                items[i].registration_expires_at = col_int(r, (int)i, 3);
        }
        PQclear(r);
        *ret_items = items;
        *ret_n = n;
        return 0;
}

static int pg_alert_delivery_add(struct dm_store *st, struct dm_alert_delivery *d, int64_t now,
                                 int64_t quiet_ms)
{
        struct pg_params p = {0};
        PGresult *r = NULL;
        param_i64(&p, d->rule_id);
        param_text(&p, d->event_key);
        param_text(&p, d->routing_key);
        param_text(&p, d->domain);
        param_text(&p, d->body);
        param_i64(&p, d->next_attempt_at);
        param_i64(&p, now);
        param_i64(&p, quiet_ms);
        int ret = alert_run(
            pg_of(st),
            "INSERT INTO alert_deliveries (rule_id, event_key, routing_key, domain, body, "
            "next_attempt_at, created_at) VALUES ($1::bigint, $2::text, $3::text, $4::text, "
            "$5::text, greatest(CASE WHEN $6::bigint > $7::bigint THEN coalesce((SELECT "
            "min(next_attempt_at) FROM alert_deliveries WHERE rule_id = $1 AND status = "
            "'pending' AND attempts = 0 AND next_attempt_at > $7), $6) ELSE $6 END, "
            "CASE WHEN $8::bigint > 0 AND $4 <> '' THEN "
            "coalesce((SELECT max(delivered_at) FROM alert_deliveries WHERE rule_id = $1 AND "
            "domain = $4 AND status = 'delivered') + $8, 0) ELSE 0 END), $7) "
            "ON CONFLICT (rule_id, event_key) DO NOTHING RETURNING id, next_attempt_at",
            &p, "alert delivery add", &r);
        if (ret < 0)
                return ret;
        if (PQntuples(r) == 0) {
                ret = DM_EEXIST;
        } else {
                d->id = col_int(r, 0, 0);
                d->next_attempt_at = col_int(r, 0, 1);
                d->created_at = now;
                d->status = DM_ALERT_PENDING;
        }
        PQclear(r);
        return ret;
}

static int alert_delivery_cmp(const void *a, const void *b)
{
        const struct dm_alert_delivery *x = a, *y = b;
        if (x->rule_id != y->rule_id)
                return (x->rule_id > y->rule_id) - (x->rule_id < y->rule_id);
        return (x->id > y->id) - (x->id < y->id);
}

static int alert_deliveries_from_res(PGresult *r, struct dm_alert_delivery **ret_d, size_t *ret_n)
{
        size_t n = (size_t)PQntuples(r), done = 0;
        int ret = 0;
        struct dm_alert_delivery *d = calloc(n ? n : 1, sizeof(*d));
        if (!d)
                ret = DM_ENOMEM;
        for (; ret == 0 && done < n; done++)
                ret = alert_delivery_from_res(r, (int)done, &d[done]);
        PQclear(r);
        if (ret < 0) {
                dm_alert_deliveries_free(d, done);
                return ret;
        }
        *ret_d = d;
        *ret_n = n;
        return 0;
}

static int pg_alert_delivery_claim(struct dm_store *st, int64_t owner, int64_t lease_ms,
                                   size_t limit, int64_t now, struct dm_alert_delivery **ret_d,
                                   size_t *ret_n)
{
        struct pg_params p = {0};
        PGresult *r = NULL;
        param_i64(&p, owner);
        param_i64(&p, now);
        param_i64(&p, lease_ms);
        param_i64(&p, clamp_limit(limit));
        int ret = alert_run(
            pg_of(st),
            "UPDATE alert_deliveries SET claimed_by = $1::bigint, claimed_until = $2::bigint + "
            "$3::bigint WHERE id = ANY (ARRAY(SELECT id FROM alert_deliveries WHERE status = "
            "'pending' AND next_attempt_at <= $2 AND (claimed_until IS NULL OR claimed_until <= "
            "$2 OR claimed_by = $1) ORDER BY rule_id, id LIMIT $4::bigint FOR UPDATE SKIP "
            "LOCKED)) RETURNING " ALERT_DLV_COLS,
            &p, "alert delivery claim", &r);
        if (ret < 0)
                return ret;
        size_t n = 0;
        ret = alert_deliveries_from_res(r, ret_d, &n);
        if (ret < 0)
                return ret;
        if (n > 1)
                qsort(*ret_d, n, sizeof(**ret_d), alert_delivery_cmp);
        *ret_n = n;
        return 0;
}

static int pg_alert_delivery_finish(struct dm_store *st, int64_t owner,
                                    const struct dm_alert_delivery *d)
{
        struct pg_params p = {0};
        PGresult *r = NULL;
        param_i64(&p, d->id);
        param_i64(&p, owner);
        param_text(&p, dm_alert_status_name(d->status));
        param_i32(&p, (int32_t)d->attempts);
        param_text(&p, d->last_error[0] ? d->last_error : NULL);
        param_i64(&p, d->next_attempt_at);
        param_time(&p, d->delivered_at);
        int ret = alert_run(pg_of(st),
                            "UPDATE alert_deliveries SET status = $3::text, attempts = "
                            "$4::integer, last_error = $5::text, next_attempt_at = $6::bigint, "
                            "delivered_at = $7::bigint, claimed_by = NULL, claimed_until = NULL "
                            "WHERE id = $1::bigint AND claimed_by = $2::bigint",
                            &p, "alert delivery finish", &r);
        if (ret < 0)
                return ret;
        if (pg_affected(r) == 0)
                ret = DM_ENOENT;
        PQclear(r);
        return ret;
}

static int pg_alert_delivery_list(struct dm_store *st, int64_t rule_id, int64_t before_id,
                                  size_t limit, struct dm_alert_delivery **ret_d, size_t *ret_n)
{
        struct pg_params p = {0};
        PGresult *r = NULL;
        param_i64(&p, rule_id);
        param_i64(&p, before_id);
        param_i64(&p, clamp_limit(limit));
        int ret = alert_run(pg_of(st),
                            "SELECT " ALERT_DLV_COLS " FROM alert_deliveries WHERE rule_id = "
                            "$1::bigint AND ($2::bigint = 0 OR id < $2) ORDER BY id DESC "
                            "LIMIT $3::bigint",
                            &p, "alert delivery list", &r);
        if (ret < 0)
                return ret;
        return alert_deliveries_from_res(r, ret_d, ret_n);
}

/* ---- registration ---- */

static int pg_reg_claim_due(struct dm_store *st, int64_t now, int64_t interval_ms,
                            bool default_registration, size_t limit, struct dm_reg_task *ret_tasks,
                            size_t *ret_n, size_t *ret_skipped)
{
        struct pg_store *s = pg_of(st);
        struct pg_params p = {0};
        struct pg_conn *c;
        PGresult *r = NULL;
        param_i64(&p, now);
        param_i64(&p, interval_ms);
        param_i64(&p, clamp_limit(limit));
        param_bool(&p, default_registration);
        param_i64(&p, DM_STORE_REG_WALK);
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = pg_run_in_order(c, STMT_REG_CLAIM, &p, "registration claim", &r);
        pool_put(s, c);
        if (ret < 0)
                return ret;
        size_t n = 0, skipped = 0;
        for (int row = 0; row < PQntuples(r); row++) {
                if (col_int(r, row, 3) == 0) {
                        skipped++;
                        continue;
                }
                if (n >= limit)
                        continue;
                struct dm_reg_task *t = &ret_tasks[n++];
                memset(t, 0, sizeof(*t));
                t->domain_id = col_int(r, row, 0);
                col_copy(r, row, 1, t->name, sizeof(t->name));
                t->checks = col_checks(r, row, 2, t->domain_id);
        }
        PQclear(r);
        *ret_n = n;
        *ret_skipped = skipped;
        return 0;
}

static int pg_reg_defer(struct dm_store *st, int64_t domain_id, int64_t at)
{
        struct pg_store *s = pg_of(st);
        struct pg_params p = {0};
        struct pg_conn *c;
        param_i64(&p, domain_id);
        param_i64(&p, at);
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = pg_run(c, STMT_REG_DEFER, &p, "registration defer", NULL);
        pool_put(s, c);
        return ret;
}

static int pg_reg_get(struct dm_store *st, int64_t domain_id, struct dm_reg_state *ret_state)
{
        struct pg_store *s = pg_of(st);
        struct pg_params p = {0};
        struct pg_conn *c;
        PGresult *r = NULL;
        struct dm_reg_state st_;
        param_i64(&p, domain_id);
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = pg_run(c, STMT_REG_GET, &p, "registration get", &r);
        pool_put(s, c);
        if (ret < 0)
                return ret;
        if (PQntuples(r) == 0) {
                PQclear(r);
                return DM_ENOENT;
        }
        memset(&st_, 0, sizeof(st_));
        st_.domain_id = domain_id;
        st_.status = (int)col_int(r, 0, 0);
        st_.source = (int)col_int(r, 0, 1);
        col_copy(r, 0, 2, st_.registrable, sizeof(st_.registrable));
        ret = col_strdup(r, 0, 3, &st_.error);
        if (ret == 0)
                ret = col_strdup(r, 0, 4, &st_.data);
        if (ret == 0)
                ret = col_strdup(r, 0, 5, &st_.raw);
        st_.checked_at = col_int(r, 0, 6);
        st_.changed_at = col_int(r, 0, 7);
        PQclear(r);
        if (ret < 0) {
                dm_reg_state_done(&st_);
                return ret;
        }
        *ret_state = st_;
        return 0;
}

static int reg_commit_tx(struct pg_conn *c, const struct dm_reg_commit *rc,
                         dm_reg_change_event_fn event_fn, void *event_arg, int64_t *ret_id)
{
        struct pg_params p = {0};
        PGresult *r = NULL;
        char name[DM_NAME_MAX + 1];
        const char *registrable = rc->registrable ? rc->registrable : "";

        param_i64(&p, rc->domain_id);
        int ret = pg_run(c, STMT_REG_LOCK, &p, "registration commit", &r);
        if (ret < 0)
                return ret;
        if (PQntuples(r) == 0) {
                PQclear(r);
                return DM_ENOENT;
        }
        col_copy(r, 0, 0, name, sizeof(name));
        int64_t stored_changed = col_int(r, 0, 1);
        PQclear(r);
        if (rc->data && stored_changed != rc->old_changed_at)
                return DM_ECONFLICT;

        memset(&p, 0, sizeof(p));
        param_i64(&p, rc->domain_id);
        param_i32(&p, rc->status);
        param_i32(&p, rc->source);
        param_text(&p, registrable);
        param_text(&p, rc->error);
        if (rc->data) {
                param_text(&p, rc->data);
                param_text(&p, rc->raw);
                param_i64(&p, rc->checked_at);
                param_i64(&p, rc->fields ? rc->checked_at : stored_changed);
                ret = pg_run(c, STMT_REG_UPSERT_DATA, &p, "registration upsert", NULL);
        } else {
                param_i64(&p, rc->checked_at);
                ret = pg_run(c, STMT_REG_UPSERT_STATUS, &p, "registration upsert", NULL);
        }
        if (ret < 0 || !rc->data)
                return ret;

        memset(&p, 0, sizeof(p));
        param_i64(&p, rc->domain_id);
        param_time(&p, rc->expires_at);
        ret = pg_run(c, STMT_REG_EXPIRES, &p, "registration expiry", NULL);
        if (ret < 0 || !rc->fields)
                return ret;

        memset(&p, 0, sizeof(p));
        param_i64(&p, rc->domain_id);
        param_i64(&p, rc->checked_at);
        param_text(&p, rc->fields);
        ret = pg_run(c, STMT_REG_CHANGE_INSERT, &p, "registration change", &r);
        if (ret < 0)
                return ret;
        struct dm_reg_change ch = {.id = col_int(r, 0, 0),
                                   .domain_id = rc->domain_id,
                                   .observed_at = rc->checked_at,
                                   .fields = (char *)rc->fields};
        PQclear(r);
        memcpy(ch.domain, name, sizeof(name));
        *ret_id = ch.id;
        if (!event_fn)
                return 0;
        char *body = event_fn(&ch, event_arg);
        if (!body)
                return DM_ENOMEM;
        memset(&p, 0, sizeof(p));
        param_text(&p, DM_EVENT_CHANGE_REGISTRATION);
        param_text(&p, body);
        param_i64(&p, rc->checked_at);
        ret = pg_run(c, STMT_OUTBOX_INSERT, &p, "outbox insert", NULL);
        free(body);
        return ret;
}

static int pg_reg_commit(struct dm_store *st, const struct dm_reg_commit *rc,
                         dm_reg_change_event_fn event_fn, void *event_arg, int64_t *ret_change_id)
{
        struct pg_store *s = pg_of(st);
        struct pg_conn *c;
        int64_t id = 0;
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = tx_begin(c);
        if (ret == 0)
                ret = reg_commit_tx(c, rc, event_fn, event_arg, &id);
        if (ret == 0)
                ret = tx_commit(c);
        pool_put(s, c); /* rolls back what is left open */
        if (ret == 0)
                *ret_change_id = id;
        return ret;
}

static int pg_reg_changes(struct dm_store *st, int64_t domain_id, int64_t before_id, size_t limit,
                          struct dm_reg_change **ret_changes, size_t *ret_n)
{
        struct pg_store *s = pg_of(st);
        struct pg_params p = {0};
        struct pg_conn *c;
        PGresult *r = NULL;
        param_i64(&p, domain_id);
        param_i64(&p, before_id);
        param_i64(&p, clamp_limit(limit));
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = pg_run(c, STMT_REG_CHANGES, &p, "registration history", &r);
        pool_put(s, c);
        if (ret < 0)
                return ret;
        size_t n = (size_t)PQntuples(r);
        struct dm_reg_change *changes = calloc(n ? n : 1, sizeof(*changes));
        if (!changes) {
                PQclear(r);
                return DM_ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                struct dm_reg_change *ch = &changes[i];
                ch->id = col_int(r, (int)i, 0);
                ch->domain_id = col_int(r, (int)i, 1);
                col_copy(r, (int)i, 2, ch->domain, sizeof(ch->domain));
                ch->observed_at = col_int(r, (int)i, 3);
                ret = col_strdup(r, (int)i, 4, &ch->fields);
                if (ret < 0) {
                        PQclear(r);
                        dm_reg_changes_free(changes, i);
                        return ret;
                }
        }
        PQclear(r);
        *ret_changes = changes;
        *ret_n = n;
        return 0;
}

static int pg_wipe(struct dm_store *st)
{
        struct pg_store *s = pg_of(st);
        struct pg_conn *c;
        int ret = pool_get(s, &c);
        if (ret < 0)
                return ret;
        ret = pg_exec(c,
                      "TRUNCATE alert_deliveries, alert_rules, outbox, dns_changes, dns_current, "
                      "tls_changes, tls_current, registration_changes, registration_current, "
                      "api_keys, domains, sessions, settings; "
                      "UPDATE claim_resume SET at_ms = NULL, domain_id = NULL",
                      "wipe");
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
    .session_insert = pg_session_insert,
    .session_get = pg_session_get,
    .session_delete = pg_session_delete,
    .setting_init = pg_setting_init,
    .claim_due = pg_claim_due,
    .dns_current = pg_dns_current,
    .dns_commit = pg_dns_commit,
    .change_list = pg_change_list,
    .history_prune = pg_history_prune,
    .reg_claim_due = pg_reg_claim_due,
    .reg_defer = pg_reg_defer,
    .reg_get = pg_reg_get,
    .reg_commit = pg_reg_commit,
    .reg_changes = pg_reg_changes,
    .outbox_add = pg_outbox_add,
    .outbox_claim = pg_outbox_claim,
    .outbox_delete = pg_outbox_delete,
    .outbox_count = pg_outbox_count,
    .alert_rule_insert = pg_alert_rule_insert,
    .alert_rule_get = pg_alert_rule_get,
    .alert_rule_update = pg_alert_rule_update,
    .alert_rule_delete = pg_alert_rule_delete,
    .alert_rule_list = pg_alert_rule_list,
    .domain_expiring = pg_domain_expiring,
    .alert_delivery_add = pg_alert_delivery_add,
    .alert_delivery_claim = pg_alert_delivery_claim,
    .alert_delivery_finish = pg_alert_delivery_finish,
    .alert_delivery_list = pg_alert_delivery_list,
    .wipe = pg_wipe,
    .tls_commit = pg_tls_commit,
    .tls_current = pg_tls_current,
    .tls_change_list = pg_tls_change_list,
};
