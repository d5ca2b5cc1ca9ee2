/* The store: everything persistent. One interface, backends chosen by DATABASE_URL
 * (sqlite:///path.db -> lib/store/sqlite.c, postgres://... -> lib/store/pg.c).
 * SQL lives only in the backends. Callers use the dm_store_* wrappers, never the ops table.
 *
 * Thread-safety: a struct dm_store may be used from any number of threads at once; the
 * backend serializes or pools connections as it needs.
 * Times are unix milliseconds; 0 means "never/unset". */
#ifndef DM_STORE_H
#define DM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dm/check.h"
#include "dm/name.h"
#include "dm/rrset.h"
#include "dm/rrtype.h"
#include "dm/task.h"

enum dm_scope { DM_SCOPE_NONE = 0, DM_SCOPE_READ = 1, DM_SCOPE_WRITE = 2, DM_SCOPE_ADMIN = 3 };

/* Overall state of a domain's last check. */
enum dm_check_status { DM_CHECK_PENDING = 0, DM_CHECK_OK = 1, DM_CHECK_ERROR = 2 };

struct dm_domain {
        int64_t id;
        char name[DM_NAME_MAX + 1];          /* A-label, the key users address it by */
        char unicode_name[DM_UNAME_MAX + 1]; /* U-label form */
        bool enabled;
        int64_t interval_ms; /* 0: the configured default (DM_SCAN_INTERVAL) */
        uint16_t record_types[DM_RRTYPE_MAX_PER_DOMAIN];
        size_t nrecord_types; /* 0: the default set */
        unsigned checks;      /* DM_CHECKS_* bits; 0: the configured default (DM_DEFAULT_CHECKS) */
        uint16_t tls_ports[DM_TLS_PORTS_MAX]; /* distinct, 1..65535, in the order given */
        size_t ntls_ports;                    /* 0: the default, DM_TLS_PORT_DEFAULT */
        int64_t created_at;
        int64_t updated_at;
        int64_t next_check_at;
        int64_t last_checked_at;
        int64_t last_changed_at;
        enum dm_check_status status;
        char status_error[256]; /* why, when status is DM_CHECK_ERROR */
        uint8_t dns_fp[DM_FP_LEN];
        /* The TLS check (read only: set by dm_store_tls_commit, ignored on write). */
        uint8_t tls_fp[DM_FP_LEN];
        int64_t tls_checked_at;          /* 0: never */
        int64_t tls_expires_at;          /* earliest not_after over the endpoints; 0: none known */
        int64_t registration_expires_at; /* read only: expiry from the registration check */
};

struct dm_domain_query {
        const char *after; /* cursor: names strictly greater than this A-label; NULL: start */
        const char *q;     /* substring of name or unicode name (case-insensitive); NULL: all */
        size_t limit;      /* >= 1 */
        /* 0: any status; else only domains whose status s has bit (1u << s) set. */
        unsigned statuses;
};

struct dm_api_key {
        int64_t id;
        char key_id[32]; /* public identifier embedded in the key, unique */
        char name[128];
        enum dm_scope scope;
        uint8_t hash[32]; /* SHA-256 of the full key; the key itself is never stored */
        int64_t created_at;
        int64_t last_used_at;
        int64_t revoked_at;
};

struct dm_claim_opts {
        int64_t now;
        size_t limit;
        int64_t default_interval_ms; /* for domains with interval 0 */
        int64_t min_interval_ms;     /* no interval below this */
};

/* Current state of one record type of one domain. */
struct dm_rrset_row {
        uint16_t type;
        enum dm_rr_status status;
        uint32_t ttl;
        char *values; /* JSON array of canonical presentation strings, e.g. ["1.2.3.4"]; owned */
        char *error;  /* status DM_RRS_ERROR: why (owned); else NULL */
        int64_t checked_at; /* when this row was last written */
        int64_t changed_at; /* when its values or status last changed */
        /* Read only (set by the store, ignored on write): the status of the last answer that
         * was not an error. Equals status unless status is DM_RRS_ERROR, where it says what
         * the kept values were (meaningless while changed_at is 0: never answered). */
        enum dm_rr_status answer_status;
};

/* One history entry: a record type's set changed. */
struct dm_change {
        int64_t id; /* assigned by the store */
        int64_t domain_id;
        char domain[DM_NAME_MAX + 1];
        uint16_t type;
        enum dm_rr_status status; /* status after the change */
        int64_t observed_at;
        char *before;  /* JSON array, or NULL for the first observation; owned */
        char *after;   /* JSON array; owned */
        char *added;   /* JSON array; owned */
        char *removed; /* JSON array; owned */
        /* SOA only: the one record changed in its serial alone (a zone edit elsewhere, a
         * signer's re-sign), set by lib/dns/change.c. */
        bool serial_only;
};

struct dm_change_query {
        int64_t domain_id; /* 0: all domains */
        /* A-label: the history recorded under this name, across deletes and re-adds;
         * NULL: all names. */
        const char *domain;
        bool hide_first;       /* leave out first observations (before NULL) */
        bool hide_serial_only; /* leave out serial_only entries */
        uint16_t type;         /* 0: all types */
        int64_t since;         /* observed_at >= since; 0: open */
        int64_t until;         /* observed_at < until; 0: open */
        int64_t before_id;     /* cursor: ids strictly below; 0: from the newest */
        size_t limit;          /* >= 1 */
        /* 0: no bound. Else reading stops once the entries read hold more than this many
         * bytes (dm_change_size): the entry that passes it is the last one returned. */
        size_t max_bytes;
};

/* Builds the outbox event body for a change that has just been given its id. Returns a
 * malloc'd string (the store frees it) or NULL on ENOMEM. Called inside the transaction. */
typedef char *(*dm_change_event_fn)(const struct dm_change *change, void *arg);

/* Routing keys of the events a domain write adds to the outbox. */
#define DM_EVENT_DOMAIN_ADDED "domain.added"
#define DM_EVENT_DOMAIN_REMOVED "domain.removed"

/* Builds the outbox event body of a domain write, called inside its transaction: after an
 * insert with the domain as stored (id and times filled in) and `at` its created_at; after
 * a delete with the domain as it was and `at` the time it went. Returns a malloc'd string
 * (the store frees it), or NULL on ENOMEM: the write then fails with DM_ENOMEM and nothing
 * of it is kept. */
typedef char *(*dm_domain_event_fn)(const struct dm_domain *d, int64_t at, void *arg);

/* The result of one domain's scan, written by dm_store_dns_commit. */
struct dm_dns_commit {
        int64_t domain_id;
        int64_t checked_at;
        uint8_t old_fp[DM_FP_LEN]; /* the fingerprint the task carried */
        uint8_t new_fp[DM_FP_LEN]; /* the fingerprint of what was observed */
        enum dm_check_status status;
        char *status_error; /* NULL unless status is DM_CHECK_ERROR; not freed by the store */
        /* When new_fp differs from old_fp: the complete new current state (rows of types not
         * listed are deleted) and the history entries. Ignored when the fingerprints match. */
        struct dm_rrset_row *rows;
        size_t nrows;
        struct dm_change *changes; /* ids are written back */
        size_t nchanges;
        int result; /* out: 0 written; DM_ECONFLICT when the stored fingerprint was no
                       longer old_fp, changed item or not (nothing of this item was
                       written); DM_ENOENT when the
                       domain is gone; DM_E2BIG when a row's values or a change's sets pass
                       DM_RRSET_JSON_MAX (nothing of this item was written) */
};

/* ---- TLS ---- */

#define DM_TLS_ADDRESS_MAX 46 /* INET6_ADDRSTRLEN */
#define DM_TLS_ERROR_MAX 256
#define DM_TLS_PROTOCOL_MAX 16
#define DM_TLS_CERT_JSON_MAX (512 * 1024)           /* bytes of a stored certificate object */
#define DM_TLS_ENDPOINTS_MAX (2 * DM_TLS_PORTS_MAX) /* an IPv4 and an IPv6 address per port */
#define DM_EVENT_CHANGE_TLS "change.tls"

enum dm_tls_status { DM_TLS_OK = 0, DM_TLS_ERROR = 1 };

/* The current state of one endpoint (port, address) of a domain. */
struct dm_tls_endpoint {
        uint16_t port;
        char address[DM_TLS_ADDRESS_MAX]; /* "" when the name had no address */
        enum dm_tls_status status;
        char error[DM_TLS_ERROR_MAX];       /* status error: why */
        char protocol[DM_TLS_PROTOCOL_MAX]; /* of the last handshake, "" if none */
        bool chain_valid;
        char chain_error[DM_TLS_ERROR_MAX];
        char sha256[65];   /* leaf fingerprint, "" when no certificate was ever read */
        int64_t not_after; /* of that leaf; 0 without */
        char *cert;        /* the certificate object (JSON, without days_left) or NULL; owned */
        int64_t checked_at;
        int64_t changed_at; /* when its certificate or chain validity last changed */
};

/* One TLS history entry: an endpoint's leaf or chain validity changed. */
struct dm_tls_change {
        int64_t id; /* assigned by the store */
        int64_t domain_id;
        char domain[DM_NAME_MAX + 1]; /* filled by reads */
        uint16_t port;
        char address[DM_TLS_ADDRESS_MAX];
        bool chain_valid; /* after the change */
        int64_t observed_at;
        char *before; /* certificate object, NULL on first sight; owned */
        char *after;  /* certificate object; owned */
};

/* The result of one domain's TLS round, written by dm_store_tls_commit. */
struct dm_tls_commit {
        int64_t domain_id;
        int64_t checked_at;
        uint8_t old_fp[DM_FP_LEN]; /* the TLS fingerprint the task carried */
        uint8_t new_fp[DM_FP_LEN];
        /* When new_fp differs from old_fp: the complete new endpoint state, the history
         * entries and the domain's new tls_expires_at. Ignored when they match. */
        struct dm_tls_endpoint *endpoints;
        size_t nendpoints;
        struct dm_tls_change *changes; /* ids are written back */
        size_t nchanges;
        int64_t expires_at;
        int result; /* out: 0, DM_ECONFLICT (the stored TLS fingerprint was no longer old_fp;
                       nothing written), DM_ENOENT (domain gone), DM_E2BIG (a certificate
                       passes DM_TLS_CERT_JSON_MAX; nothing written) */
};

typedef char *(*dm_tls_change_event_fn)(const struct dm_tls_change *change, void *arg);

/* Registration check state (the data itself is the JSON of dm_reg_record_to_json, see
 * dm/registration.h; the store keeps it as text). `status` and `source` hold the values of
 * enum dm_reg_status and enum dm_reg_source (0: pending, none). */
/* Largest registration text stored (data, raw WHOIS text, change fields); beyond it
 * dm_store_reg_commit returns DM_E2BIG. */
#define DM_REG_STATE_MAX (512 * 1024)

struct dm_reg_task {
        int64_t domain_id;
        char name[DM_NAME_MAX + 1];
        unsigned checks; /* the domain's DM_CHECKS_* bits; 0: the configured default */
};

struct dm_reg_state {
        int64_t domain_id;
        int status;
        int source;
        char registrable[DM_NAME_MAX + 1];
        char *error; /* why, when status is error or unsupported; owned; NULL */
        char *data;  /* JSON object of the last successful lookup; owned; NULL: never */
        char *raw;   /* WHOIS text of the last successful WHOIS lookup; owned; NULL */
        int64_t checked_at;
        int64_t changed_at; /* when `data` last changed (0: never held data) */
};

/* One history entry: a scan that changed something. */
struct dm_reg_change {
        int64_t id; /* assigned by the store */
        int64_t domain_id;
        char domain[DM_NAME_MAX + 1];
        int64_t observed_at;
        char *fields; /* JSON object {"<field>": {"before", "after"}}; owned */
};

/* The result of one registration check, written by dm_store_reg_commit. */
struct dm_reg_commit {
        int64_t domain_id;
        int64_t checked_at;
        int64_t old_changed_at; /* the stored changed_at the diff was made against (0: none) */
        int status;
        int source;
        const char *registrable;
        const char *error; /* NULL unless the status says why */
        /* A successful lookup: its record (JSON) and, from WHOIS, the raw text. NULL keeps
         * what is stored (a failed lookup never replaces data). */
        const char *data;
        const char *raw;
        int64_t expires_at; /* with data: the domain's registration_expires_at (0: unknown) */
        /* The fields that changed (JSON), or NULL: no history entry. With data only. */
        const char *fields;
};

typedef char *(*dm_reg_change_event_fn)(const struct dm_reg_change *change, void *arg);

#define DM_EVENT_CHANGE_REGISTRATION "change.registration"

struct dm_outbox_event {
        int64_t id;
        char *routing_key; /* owned */
        char *body;        /* owned */
        int64_t created_at;
};

struct dm_store;

/* Opens the backend named by the URL scheme. `url` NULL means sqlite:///./domainmon.db
 * relative to the working directory. Does not migrate. Returns 0, DM_EINVAL (bad URL),
 * DM_ENOBACKEND (scheme known but not built), DM_ESTORE (cannot open), DM_ENOMEM.
 * `err` receives a one-line reason. */
int dm_store_open(const char *url, char *err, size_t errlen, struct dm_store **ret_store);
/* Closes connections and frees. NULL-safe. */
void dm_store_free(struct dm_store *st);
/* Backend name: "sqlite", "postgres". */
const char *dm_store_backend(const struct dm_store *st);

/* Applies the numbered migrations not yet applied, each in its own transaction.
 * *ret_applied (may be NULL) receives how many ran. */
int dm_store_migrate(struct dm_store *st, int *ret_applied);
/* Cheap round trip to the database. 0 when reachable. */
int dm_store_ping(struct dm_store *st);

/* Domains. insert fills id, created_at, updated_at (and next_check_at = now so the first
 * scan comes soon). DM_EEXIST when the name is taken. With an event_fn (NULL: none) the
 * same transaction adds the outbox event DM_EVENT_DOMAIN_ADDED with body event_fn(d). */
int dm_store_domain_insert(struct dm_store *st, struct dm_domain *d, dm_domain_event_fn event_fn,
                           void *event_arg);
/* Inserts many in one transaction. ret_results[i] = 0 (added) or DM_EEXIST (already there,
 * or earlier in the same batch); ids are filled for added ones. With an event_fn, one
 * DM_EVENT_DOMAIN_ADDED event per added domain, in batch order, in that transaction. */
int dm_store_domain_insert_many(struct dm_store *st, struct dm_domain *ds, size_t n,
                                dm_domain_event_fn event_fn, void *event_arg, int *ret_results);
int dm_store_domain_get(struct dm_store *st, const char *name, struct dm_domain *ret_domain);
/* Fields of a domain its owner may change, for dm_store_domain_update. */
enum {
        DM_DOMAIN_ENABLED = 1u << 0,
        DM_DOMAIN_INTERVAL = 1u << 1,
        DM_DOMAIN_RECORD_TYPES = 1u << 2,
        DM_DOMAIN_CHECKS = 1u << 3,
        DM_DOMAIN_TLS_PORTS = 1u << 4,
        DM_DOMAIN_SETTINGS = DM_DOMAIN_ENABLED | DM_DOMAIN_INTERVAL | DM_DOMAIN_RECORD_TYPES |
                             DM_DOMAIN_CHECKS | DM_DOMAIN_TLS_PORTS,
};

/* Writes the `fields` (DM_DOMAIN_* bits) of d to the domain named d->name and moves its
 * updated_at; the other fields keep their stored values, so two updates of different
 * fields never undo each other. DM_EINVAL when fields holds none of the bits. */
int dm_store_domain_update(struct dm_store *st, const struct dm_domain *d, unsigned fields);
/* Deletes the domain: it is no longer scanned and its current state goes, but its history
 * stays, readable by name (dm_change_query.domain) and shown again under the name should it
 * be added again. DM_ENOENT if absent. With an event_fn, the same transaction adds the
 * outbox event DM_EVENT_DOMAIN_REMOVED with body event_fn(the domain as it was, the time of
 * the delete). */
int dm_store_domain_delete(struct dm_store *st, const char *name, dm_domain_event_fn event_fn,
                           void *event_arg);

/* dm_store_domain_delete_many flags. */
#define DM_DELETE_PURGE 1u /* the history of each name goes too */

/* Deletes names[0..n) (A-labels) in one transaction: either every existing one goes or, when
 * the transaction fails, none. ret_results[i] = 0 (deleted) or DM_ENOENT (no such domain;
 * with DM_DELETE_PURGE, 0 as well when only history was left under the name, and it went).
 * One DM_EVENT_DOMAIN_REMOVED event per domain deleted, with an event_fn. ret_results
 * (caller-allocated, n) is meaningful only when 0 is returned. DM_EINVAL for a NULL name or
 * an unknown flag. */
int dm_store_domain_delete_many(struct dm_store *st, const char *const *names, size_t n,
                                unsigned flags, dm_domain_event_fn event_fn, void *event_arg,
                                int *ret_results);
/* Up to q->limit domains in name order into ret_domains (caller-allocated, q->limit). */
int dm_store_domain_list(struct dm_store *st, const struct dm_domain_query *q,
                         struct dm_domain *ret_domains, size_t *ret_n);
/* Makes the domain due now. DM_ENOENT if absent. */
int dm_store_domain_request_scan(struct dm_store *st, const char *name, int64_t now);
/* Makes every enabled domain due at `now` (an earlier due time is kept), in one statement
 * where the backend can. *ret_n (may be NULL) receives how many enabled domains that
 * covers. */
int dm_store_domain_request_scan_all(struct dm_store *st, int64_t now, size_t *ret_n);
int dm_store_domain_count(struct dm_store *st, size_t *ret_n);

/* API keys. insert fills id and created_at; DM_EEXIST on a duplicate key_id. */
int dm_store_key_insert(struct dm_store *st, struct dm_api_key *k);
/* The first key: inserts k only when no key is active (none at all, or every one revoked),
 * atomically with respect to every other writer, in this process or another. Processes
 * starting at once against one database thus create one first key between them. Fills id
 * and created_at. Returns 0 (inserted), DM_EEXIST (an active key exists; nothing written)
 * or DM_ECONFLICT (k->key_id is taken by a revoked key; nothing written: make another). */
int dm_store_key_insert_first(struct dm_store *st, struct dm_api_key *k);
/* By key_id, revoked or not. DM_ENOENT if absent. */
int dm_store_key_get(struct dm_store *st, const char *key_id, struct dm_api_key *ret_key);
/* All keys, newest first; *ret_keys is malloc'd (free()). */
int dm_store_key_list(struct dm_store *st, struct dm_api_key **ret_keys, size_t *ret_n);
/* Marks revoked; `key_id_or_name` matches key_id or name. DM_ENOENT if none active. */
int dm_store_key_revoke(struct dm_store *st, const char *key_id_or_name, int64_t now);
/* Records use (best effort, may be coalesced). */
int dm_store_key_touch(struct dm_store *st, int64_t id, int64_t now);
/* Keys not revoked. */
int dm_store_key_count_active(struct dm_store *st, size_t *ret_n);

/* Browser sessions (lib/session). `id` is the SHA-256 hex of the token the cookie carries. */
#define DM_SESSION_ID_HEX 64
struct dm_session {
        char id[DM_SESSION_ID_HEX + 1];
        char key_id[32]; /* dm_api_key.key_id of the key that opened it */
        enum dm_scope scope;
        int64_t created_at;
        int64_t expires_at;
};

/* Stores a new session and, in passing, deletes those expired at s->created_at. Returns 0,
 * DM_EEXIST (the id is taken; nothing written), DM_EINVAL (empty id or key_id, no scope). */
int dm_store_session_insert(struct dm_store *st, const struct dm_session *s);
/* By id, expired or not (the caller compares expires_at). DM_ENOENT if absent. */
int dm_store_session_get(struct dm_store *st, const char *id, struct dm_session *ret_session);
/* Ends a session. DM_ENOENT if absent. */
int dm_store_session_delete(struct dm_store *st, const char *id);

/* Settings made once and kept (the generated session secret): stores `value` under `name`
 * unless a value is there already, then copies the stored value into ret_value (`size`
 * bytes, NUL-terminated). Processes racing on one database all read the same winner.
 * Returns 0, DM_EINVAL (empty name or value), DM_E2BIG (the stored value does not fit). */
int dm_store_setting_init(struct dm_store *st, const char *name, const char *value, char *ret_value,
                          size_t size);

/* Scheduling. Claims up to opts->limit enabled domains with next_check_at <= now, oldest
 * due first, and in the same statement moves each one's next_check_at to the next slot of
 * its interval (a per-domain phase spreads domains over the interval). Two schedulers never
 * claim the same domain for the same slot. ret_tasks is caller-allocated (opts->limit). */
int dm_store_claim_due(struct dm_store *st, const struct dm_claim_opts *opts,
                       struct dm_scan_task *ret_tasks, size_t *ret_n);

/* DNS state. Current rows of a domain, in type order; free with dm_rrset_rows_free. */
int dm_store_dns_current(struct dm_store *st, int64_t domain_id, struct dm_rrset_row **ret_rows,
                         size_t *ret_n);
/* Writes a batch of scan results in one transaction, each item as if written after the
 * ones before it. Every item is a compare-and-swap: it is written only when the domain's
 * stored fingerprint is still old_fp (all zero: no state yet), else its result is
 * DM_ECONFLICT and nothing of it is written, whether or not the fingerprint changed. An
 * item written sets status and status_error and moves last_checked_at to checked_at, never
 * back (an older checked_at leaves it). An item whose fingerprint changed also sets the
 * fingerprint to new_fp, replaces the current rows, inserts its changes (assigning ids)
 * and, for each change, an outbox event with routing key "change.dns.<TYPE>" and body
 * event_fn(change); last_changed_at moves when there are changes.
 * Per-item outcome in items[i].result. Returns 0 unless the transaction itself failed. */
int dm_store_dns_commit(struct dm_store *st, struct dm_dns_commit *items, size_t n,
                        dm_change_event_fn event_fn, void *event_arg);
/* TLS state of a domain, by port then address; free with dm_tls_endpoints_free. */
int dm_store_tls_current(struct dm_store *st, int64_t domain_id,
                         struct dm_tls_endpoint **ret_endpoints, size_t *ret_n);
/* Writes a batch of TLS rounds in one transaction, each a compare-and-swap on the domain's
 * TLS fingerprint as dm_store_dns_commit is on its DNS one. Every item written moves
 * tls_checked_at to checked_at (never back); one whose fingerprint moved also sets it,
 * replaces the endpoints, sets tls_expires_at, inserts its changes (assigning ids) and for
 * each an outbox event DM_EVENT_CHANGE_TLS with body event_fn(change). Per-item outcome in
 * items[i].result. Returns 0 unless the transaction itself failed. */
int dm_store_tls_commit(struct dm_store *st, struct dm_tls_commit *items, size_t n,
                        dm_tls_change_event_fn event_fn, void *event_arg);
/* A domain's TLS history, newest first: up to `limit` (>= 1) entries with ids below
 * `before_id` (0: from the newest). Free with dm_tls_changes_free. */
int dm_store_tls_change_list(struct dm_store *st, int64_t domain_id, int64_t before_id,
                             size_t limit, struct dm_tls_change **ret_changes, size_t *ret_n);
void dm_tls_endpoints_free(struct dm_tls_endpoint *e, size_t n);
void dm_tls_changes_free(struct dm_tls_change *c, size_t n);

/* History, newest first: up to q->limit entries, fewer when q->max_bytes stops the read.
 * *ret_changes malloc'd; free with dm_changes_free. */
int dm_store_change_list(struct dm_store *st, const struct dm_change_query *q,
                         struct dm_change **ret_changes, size_t *ret_n);
/* Retention: deletes up to `limit` (>= 1) history entries observed before `before`, oldest
 * first (DNS, then TLS, then registration history with what the limit leaves), in short
 * transactions, so that a large backlog goes in small steps that never hold the writer long.
 * *ret_n (may be NULL) receives how many went; fewer than `limit` means none older is left.
 * The current rows stay. */
int dm_store_history_prune(struct dm_store *st, int64_t before, size_t limit, size_t *ret_n);

/* Registration checks. Claims up to `limit` enabled domains whose registration check is
 * due (never checked, or last claimed `interval_ms` ago; dm_store_domain_request_scan
 * and an update that changes the domain's checks make it due too) and moves their next registration
 * check to now + interval_ms in the same statement; two claimers never get the same domain.
 * `default_checks` are the checks of a domain without its own (DM_DEFAULT_CHECKS). Due domains
 * whose checks leave out registration are never returned: they are moved on by interval_ms in
 * bulk, up to a few thousand a call, oldest first, so that they cost one write an interval
 * each and a claim never walks past them again. */
int dm_store_reg_claim_due(struct dm_store *st, int64_t now, int64_t interval_ms,
                           unsigned default_checks, size_t limit, struct dm_reg_task *ret_tasks,
                           size_t *ret_n);
/* Moves a domain's next registration check to `at` (a server asked us to wait). */
int dm_store_reg_defer(struct dm_store *st, int64_t domain_id, int64_t at);
/* The stored state; DM_ENOENT when the domain was never checked. Free with
 * dm_reg_state_done. */
int dm_store_reg_get(struct dm_store *st, int64_t domain_id, struct dm_reg_state *ret_state);
/* Writes one check in one transaction: the state (status, error, checked_at; data, raw
 * and the domain's registration_expires_at only when c->data is set), and with c->fields
 * a history entry and its outbox event DM_EVENT_CHANGE_REGISTRATION with body
 * event_fn(entry). A compare-and-swap on changed_at: when the stored one is no longer
 * c->old_changed_at (another check wrote data meanwhile) and c->data is set, nothing is
 * written and DM_ECONFLICT returned. DM_ENOENT when the domain is gone. *ret_change_id
 * (may be NULL) receives the entry's id (0: none). */
int dm_store_reg_commit(struct dm_store *st, const struct dm_reg_commit *c,
                        dm_reg_change_event_fn event_fn, void *event_arg, int64_t *ret_change_id);
/* History of one domain, newest first: up to `limit` entries with ids below before_id
 * (0: from the newest). Free with dm_reg_changes_free. */
int dm_store_reg_changes(struct dm_store *st, int64_t domain_id, int64_t before_id, size_t limit,
                         struct dm_reg_change **ret_changes, size_t *ret_n);
void dm_reg_state_done(struct dm_reg_state *s);
void dm_reg_changes_free(struct dm_reg_change *changes, size_t n);

/* Outbox: events written in the transaction of what they announce, published after commit
 * by relays (lib/outbox) that claim them, publish them and delete them. Any number of
 * relays, in any number of processes, may share one store. */
int dm_store_outbox_add(struct dm_store *st, const char *routing_key, const char *body);
/* Claims for `owner` (nonzero, one per relay) up to `limit` (>= 1)
 * events, oldest first, that are unclaimed, whose claim ended at or before `now`, or that
 * `owner` claimed before (a relay takes back at once what it failed to publish), and marks
 * them claimed by `owner` until now + lease_ms (>= 1), in one statement: while a claim
 * holds, no other owner gets the event. A relay that dies leaves its claims to expire, and
 * another relay takes them then (delivery is at least once). `now` is the caller's clock:
 * relays on several hosts need clocks that agree to well within the lease.
 * *ret_events (oldest first) is malloc'd; free with dm_outbox_events_free. */
int dm_store_outbox_claim(struct dm_store *st, int64_t owner, int64_t lease_ms, size_t limit,
                          int64_t now, struct dm_outbox_event **ret_events, size_t *ret_n);
/* Deletes those of `ids` that `owner` holds claimed (an id claimed by another owner since,
 * or never claimed, stays). *ret_n (may be NULL) receives how many went. */
int dm_store_outbox_delete(struct dm_store *st, int64_t owner, const int64_t *ids, size_t n,
                           size_t *ret_n);
/* Events in the outbox, claimed or not. */
int dm_store_outbox_count(struct dm_store *st, size_t *ret_n);

/* True for the all-zero fingerprint, which means "no state stored yet". */
bool dm_store_fp_is_zero(const uint8_t fp[DM_FP_LEN]);

/* Bytes of a history entry's sets (before, after, added, removed): what a page of history
 * costs, for dm_change_query.max_bytes and dm_changes_page. */
size_t dm_change_size(const struct dm_change *c);
/* How many of changes[0..n) (read with limit page + 1 and max_bytes) one page shows: at
 * most `page`, and no entry that would take the page past max_bytes (the first is always
 * shown). *ret_more tells whether a next page exists: an entry was read beyond those shown,
 * or the page ended on the byte bound. */
size_t dm_changes_page(const struct dm_change *changes, size_t n, size_t page, size_t max_bytes,
                       bool *ret_more);

void dm_rrset_rows_free(struct dm_rrset_row *rows, size_t n);
void dm_changes_free(struct dm_change *changes, size_t n);
void dm_outbox_events_free(struct dm_outbox_event *events, size_t n);

/* Scope names "read", "write", "admin". */
const char *dm_scope_name(enum dm_scope s);
int dm_scope_parse(const char *s, enum dm_scope *ret_scope);
const char *dm_check_status_name(enum dm_check_status s);
/* "error", "ok,pending", ...: a comma-separated list of status names as a
 * dm_domain_query.statuses mask. Returns 0, or DM_EINVAL for an empty list, an empty item
 * or a name that is not a status. */
int dm_check_status_mask_parse(const char *s, unsigned *ret_mask);

/* ---- alerts: rules and their deliveries ---- */

enum dm_alert_channel { DM_ALERT_CHANNEL_NONE = 0, DM_ALERT_WEBHOOK, DM_ALERT_EMAIL, DM_ALERT_SMS };
enum dm_alert_status { DM_ALERT_PENDING = 0, DM_ALERT_DELIVERED = 1, DM_ALERT_FAILED = 2 };

#define DM_ALERT_NAME_MAX 128
#define DM_ALERT_TARGET_MAX 2048
#define DM_ALERT_SECRET_MAX 128
#define DM_ALERT_EVENT_KEY_MAX 160
#define DM_ALERT_ERROR_MAX 256

/* A rule as stored. What it selects (events, domains, thresholds, quiet period) is `spec`,
 * a JSON object that lib/alert writes and reads (dm_alert_spec_parse); the store keeps it as
 * text. */
struct dm_alert_rule {
        int64_t id; /* assigned by the store */
        char name[DM_ALERT_NAME_MAX];
        enum dm_alert_channel channel;
        char target[DM_ALERT_TARGET_MAX + 1];
        char secret[DM_ALERT_SECRET_MAX + 1]; /* webhook signing secret "whsec_..."; else "" */
        char *spec;                           /* owned JSON object */
        int64_t created_at;
        int64_t updated_at;
};

/* One alert to send: a rule met an event (or a test). (rule_id, event_key) is unique. */
struct dm_alert_delivery {
        int64_t id; /* assigned by the store */
        int64_t rule_id;
        char event_key[DM_ALERT_EVENT_KEY_MAX]; /* "<routing key>:<id>", or "test:<n>" */
        char routing_key[64];
        char domain[DM_NAME_MAX + 1]; /* A-label; "" when the event names none */
        char *body;                   /* owned: the event's JSON object */
        enum dm_alert_status status;
        unsigned attempts;
        char last_error[DM_ALERT_ERROR_MAX];
        int64_t next_attempt_at; /* pending: when it is due */
        int64_t delivered_at;
        int64_t created_at;
};

/* Rules. insert fills id, created_at and updated_at. get: DM_ENOENT when absent. update
 * replaces name, channel, target, secret and spec of rule->id and moves updated_at (DM_ENOENT
 * when absent). delete removes the rule and its deliveries (DM_ENOENT when absent). list:
 * rules with id > after_id in id order, at most limit (>= 1); *ret_rules malloc'd, free with
 * dm_alert_rules_free. */
int dm_store_alert_rule_insert(struct dm_store *st, struct dm_alert_rule *rule);
int dm_store_alert_rule_get(struct dm_store *st, int64_t id, struct dm_alert_rule *ret_rule);
int dm_store_alert_rule_update(struct dm_store *st, struct dm_alert_rule *rule);
int dm_store_alert_rule_delete(struct dm_store *st, int64_t id);
int dm_store_alert_rule_list(struct dm_store *st, int64_t after_id, size_t limit,
                             struct dm_alert_rule **ret_rules, size_t *ret_n);

/* A domain whose certificate or registration expires soon, for expiry alerts. */
struct dm_domain_expiry {
        int64_t id;
        char name[DM_NAME_MAX + 1];      /* A-label */
        int64_t tls_expires_at;          /* 0: unknown */
        int64_t registration_expires_at; /* 0: unknown */
};
/* Enabled domains with id > after_id whose tls_expires_at or registration_expires_at is known
 * and at or before `before` (both dates are given, whichever matched), in id order, at most
 * limit (>= 1). *ret malloc'd (free()). */
int dm_store_domain_expiring(struct dm_store *st, int64_t before, int64_t after_id, size_t limit,
                             struct dm_domain_expiry **ret, size_t *ret_n);

/* Adds a pending delivery unless (rule_id, event_key) is already there (DM_EEXIST: a
 * redelivered event; nothing written). Its due time: when d->next_attempt_at is after `now`
 * (a group wait), the due time of the rule's open group if there is one (the earliest
 * pending, never tried delivery of the rule due after `now`), so that events of one rule
 * arriving close together go out together, else d->next_attempt_at; and, when quiet_ms > 0,
 * no sooner than the last delivery of the rule for the same domain plus quiet_ms. Fills id,
 * created_at and next_attempt_at. */
int dm_store_alert_delivery_add(struct dm_store *st, struct dm_alert_delivery *d, int64_t now,
                                int64_t quiet_ms);
/* Claims for `owner` (nonzero) up to `limit` pending deliveries due at `now`, that nobody
 * holds or whose claim ended, or that `owner` held, marking them held until now + lease_ms,
 * in one statement: senders in several processes never send one delivery at the same time
 * while a claim holds. Ordered by rule, then id. *ret malloc'd; dm_alert_deliveries_free. */
int dm_store_alert_delivery_claim(struct dm_store *st, int64_t owner, int64_t lease_ms,
                                  size_t limit, int64_t now, struct dm_alert_delivery **ret,
                                  size_t *ret_n);
/* Records the outcome of a claimed delivery: status, attempts, last_error, next_attempt_at
 * and delivered_at from d, and lets go of the claim; only while `owner` still holds it
 * (DM_ENOENT otherwise: another sender took it over, nothing written). */
int dm_store_alert_delivery_finish(struct dm_store *st, int64_t owner,
                                   const struct dm_alert_delivery *d);
/* Deliveries of one rule, newest first, ids below before_id (0: from the newest), at most
 * limit (>= 1). */
int dm_store_alert_delivery_list(struct dm_store *st, int64_t rule_id, int64_t before_id,
                                 size_t limit, struct dm_alert_delivery **ret, size_t *ret_n);

/* "webhook", "email", "sms" and back (DM_EINVAL for anything else); "pending",
 * "delivered", "failed" and back. The stored spelling of both. */
const char *dm_alert_channel_name(enum dm_alert_channel c);
int dm_alert_channel_parse(const char *s, enum dm_alert_channel *ret_channel);
const char *dm_alert_status_name(enum dm_alert_status s);
int dm_alert_status_parse(const char *s, enum dm_alert_status *ret_status);
void dm_alert_rule_done(struct dm_alert_rule *rule);
void dm_alert_rules_free(struct dm_alert_rule *rules, size_t n);
void dm_alert_deliveries_free(struct dm_alert_delivery *d, size_t n);

#endif
