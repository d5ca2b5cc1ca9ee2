/* The store backend interface. Each backend (sqlite.c, pg.c) exports one const ops
 * table; store.c picks it from the DATABASE_URL scheme, checks arguments once for every
 * backend and forwards each dm_store_* call through it. Only lib/store and the store's
 * contract tests include this header.
 *
 * The ops receive arguments already checked by store.c (non-NULL store and pointers,
 * limits >= 1, counts within the documented maxima), and follow the return codes and
 * ownership rules of include/dm/store.h. */
#ifndef DM_STORE_INT_H
#define DM_STORE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "dm/store.h"

/* Due domains a registration claim walks in one statement (see reg_claim_due). */
#define DM_STORE_REG_WALK 1000

/* What a backend can do beyond the contract; callers of the ops may adapt to them. */
enum dm_store_cap {
        /* The database lives with this process (a file or memory): no server to reach. */
        DM_STORE_CAP_EMBEDDED = 1u << 0,
        /* Writers in several processes claim and commit concurrently without waiting on
         * one database-wide lock (PostgreSQL's FOR UPDATE SKIP LOCKED). */
        DM_STORE_CAP_CONCURRENT_WRITERS = 1u << 1,
};

struct dm_store_ops {
        const char *name; /* what dm_store_backend() reports */
        unsigned caps;    /* enum dm_store_cap bits */

        /* `url` is the full URL the caller gave (never NULL here; the scheme matched this
         * backend). On failure `err` gets a one-line reason. */
        int (*open)(const char *url, char *err, size_t errlen, struct dm_store **ret_store);
        void (*free)(struct dm_store *st);
        int (*migrate)(struct dm_store *st, int *ret_applied);
        int (*ping)(struct dm_store *st);

        /* event_fn may be NULL: no event. */
        int (*domain_insert)(struct dm_store *st, struct dm_domain *d, dm_domain_event_fn event_fn,
                             void *event_arg);
        int (*domain_insert_many)(struct dm_store *st, struct dm_domain *ds, size_t n,
                                  dm_domain_event_fn event_fn, void *event_arg, int *ret_results);
        int (*domain_get)(struct dm_store *st, const char *name, struct dm_domain *ret_domain);
        int (*domain_update)(struct dm_store *st, const struct dm_domain *d, unsigned fields);
        int (*domain_delete)(struct dm_store *st, const char *const *names, size_t n,
                             unsigned flags, dm_domain_event_fn event_fn, void *event_arg,
                             int *ret_results);
        int (*domain_list)(struct dm_store *st, const struct dm_domain_query *q,
                           struct dm_domain *ret_domains, size_t *ret_n);
        int (*domain_request_scan)(struct dm_store *st, const char *name, int64_t now);
        /* Optional: NULL makes store.c fall back to domain_list + domain_request_scan page
         * by page. `ret_n` may be NULL. */
        int (*domain_request_scan_all)(struct dm_store *st, int64_t now, size_t *ret_n);
        int (*domain_count)(struct dm_store *st, size_t *ret_n);

        int (*key_insert)(struct dm_store *st, struct dm_api_key *k);
        int (*key_insert_first)(struct dm_store *st, struct dm_api_key *k);
        int (*key_get)(struct dm_store *st, const char *key_id, struct dm_api_key *ret_key);
        int (*key_list)(struct dm_store *st, struct dm_api_key **ret_keys, size_t *ret_n);
        int (*key_revoke)(struct dm_store *st, const char *key_id_or_name, int64_t now);
        int (*key_touch)(struct dm_store *st, int64_t id, int64_t now);
        int (*key_count_active)(struct dm_store *st, size_t *ret_n);

        int (*session_insert)(struct dm_store *st, const struct dm_session *s);
        int (*session_get)(struct dm_store *st, const char *id, struct dm_session *ret_session);
        int (*session_delete)(struct dm_store *st, const char *id);
        /* size >= 1 */
        int (*setting_init)(struct dm_store *st, const char *name, const char *value,
                            char *ret_value, size_t size);

        int (*claim_due)(struct dm_store *st, const struct dm_claim_opts *opts,
                         struct dm_scan_task *ret_tasks, size_t *ret_n);

        int (*dns_current)(struct dm_store *st, int64_t domain_id, struct dm_rrset_row **ret_rows,
                           size_t *ret_n);
        int (*dns_commit)(struct dm_store *st, struct dm_dns_commit *items, size_t n,
                          dm_change_event_fn event_fn, void *event_arg);
        /* Honours q->max_bytes with dm_change_size. */
        int (*change_list)(struct dm_store *st, const struct dm_change_query *q,
                           struct dm_change **ret_changes, size_t *ret_n);
        int (*history_prune)(struct dm_store *st, int64_t before, size_t limit, size_t *ret_n);

        /* One statement: walks at most DM_STORE_REG_WALK due domains, oldest first, moves
         * those without the registration check (`default_registration`: whether a domain
         * without checks of its own has it) and up to `limit` with it, and returns the
         * latter. *ret_skipped: how many of the former it moved. */
        int (*reg_claim_due)(struct dm_store *st, int64_t now, int64_t interval_ms,
                             bool default_registration, size_t limit, struct dm_reg_task *ret_tasks,
                             size_t *ret_n, size_t *ret_skipped);
        int (*reg_defer)(struct dm_store *st, int64_t domain_id, int64_t at);
        int (*reg_get)(struct dm_store *st, int64_t domain_id, struct dm_reg_state *ret_state);
        /* ret_change_id is never NULL here. */
        int (*reg_commit)(struct dm_store *st, const struct dm_reg_commit *c,
                          dm_reg_change_event_fn event_fn, void *event_arg, int64_t *ret_change_id);
        int (*reg_changes)(struct dm_store *st, int64_t domain_id, int64_t before_id, size_t limit,
                           struct dm_reg_change **ret_changes, size_t *ret_n);

        int (*outbox_add)(struct dm_store *st, const char *routing_key, const char *body);
        /* owner != 0, lease_ms >= 1, limit >= 1. Events oldest first. */
        int (*outbox_claim)(struct dm_store *st, int64_t owner, int64_t lease_ms, size_t limit,
                            int64_t now, struct dm_outbox_event **ret_events, size_t *ret_n);
        /* n >= 1; ret_n is never NULL here. */
        int (*outbox_delete)(struct dm_store *st, int64_t owner, const int64_t *ids, size_t n,
                             size_t *ret_n);
        int (*outbox_count)(struct dm_store *st, size_t *ret_n);

        int (*tls_commit)(struct dm_store *st, struct dm_tls_commit *items, size_t n,
                          dm_tls_change_event_fn event_fn, void *event_arg);
        int (*tls_current)(struct dm_store *st, int64_t domain_id,
                           struct dm_tls_endpoint **ret_endpoints, size_t *ret_n);
        int (*tls_change_list)(struct dm_store *st, int64_t domain_id, int64_t before_id,
                               size_t limit, struct dm_tls_change **ret_changes, size_t *ret_n);
        /* Alerts; arguments checked by store.c (see include/dm/store.h). */
        int (*alert_rule_insert)(struct dm_store *st, struct dm_alert_rule *rule);
        int (*alert_rule_get)(struct dm_store *st, int64_t id, struct dm_alert_rule *ret_rule);
        int (*alert_rule_update)(struct dm_store *st, struct dm_alert_rule *rule);
        int (*alert_rule_delete)(struct dm_store *st, int64_t id);
        int (*alert_rule_list)(struct dm_store *st, int64_t after_id, size_t limit,
                               struct dm_alert_rule **ret_rules, size_t *ret_n);
        int (*domain_expiring)(struct dm_store *st, int64_t before, int64_t after_id, size_t limit,
                               struct dm_domain_expiry **ret, size_t *ret_n);
        int (*alert_delivery_add)(struct dm_store *st, struct dm_alert_delivery *d, int64_t now,
                                  int64_t quiet_ms);
        int (*alert_delivery_claim)(struct dm_store *st, int64_t owner, int64_t lease_ms,
                                    size_t limit, int64_t now, struct dm_alert_delivery **ret,
                                    size_t *ret_n);
        int (*alert_delivery_finish)(struct dm_store *st, int64_t owner,
                                     const struct dm_alert_delivery *d);
        int (*alert_delivery_list)(struct dm_store *st, int64_t rule_id, int64_t before_id,
                                   size_t limit, struct dm_alert_delivery **ret, size_t *ret_n);

        /* Deletes every row of every table, keeping the schema. Only the contract tests
         * call it (through dm_store_wipe), so that a server database shared between test
         * runs starts each test empty. */
        int (*wipe)(struct dm_store *st);
};

/* Every backend instance begins with this, so a struct dm_store * is also a pointer to the
 * backend's own state. */
struct dm_store {
        const struct dm_store_ops *ops;
};

extern const struct dm_store_ops dm_store_sqlite_ops;
#ifdef DM_HAVE_PQ
extern const struct dm_store_ops dm_store_pg_ops;
#endif

/* Most rows one dns_commit item may carry: one per record type of the domain. */
#define DM_STORE_MAX_ROWS DM_RRTYPE_MAX_PER_DOMAIN

/* The scheduling phase of a domain in [0, 2^31) ms, derived from its name so that domains
 * added together spread over their interval and every backend places a name alike. */
int64_t dm_store_phase(const char *name);

/* Splits a migration file name, "001_init.sql" -> 1 and "init" (into name, `size` bytes).
 * Returns 0 or DM_EINVAL (not NNN_name.sql, or the name does not fit). */
int dm_store_migration_name(const char *file, int64_t *ret_version, char *name, size_t size);

/* The domain list's q filter as a LIKE pattern for `ESCAPE '\'`: "%q%" with %, _ and \
 * escaped, so that they match themselves. malloc'd; NULL on ENOMEM. */
char *dm_store_like_pattern(const char *q);

/* Writes "change.dns.<TYPE>" into buf (at least DM_STORE_ROUTING_KEY_MAX bytes). */
#define DM_STORE_ROUTING_KEY_MAX 32
const char *dm_store_routing_key(uint16_t type, char *buf);

/* Whether an item's rows and changes fit a stored row (DM_RRSET_JSON_MAX each). A backend
 * gives an item that does not fit the result DM_E2BIG and writes nothing of it. */
bool dm_store_item_fits(const struct dm_dns_commit *it);

/* The stored text of a domain's record types ("A,MX"; empty: the default set) and back.
 * Both backends store it the same way. dm_store_types_to_text returns 0 or DM_EINVAL (does
 * not fit `size`). dm_store_types_from_text never fails: text that does not parse (only a
 * hand-edited row) is logged once per read and read as the default set. */
int dm_store_types_to_text(const uint16_t *types, size_t n, char *buf, size_t size);
void dm_store_types_from_text(const char *s, int64_t domain_id, uint16_t *types, size_t *ret_n);

/* Whether a TLS item's certificates fit a stored row (DM_TLS_CERT_JSON_MAX each). */
bool dm_store_tls_item_fits(const struct dm_tls_commit *it);

/* The stored text of a domain's checks ("dns,tls"; empty: the configured default) and TLS
 * ports ("443,8443"; empty: the default port), as both backends store them. to_text
 * returns 0 or DM_EINVAL (a port list that is not 0..DM_TLS_PORTS_MAX distinct ports). The
 * from_text readers never fail: text that does not parse (only a hand-edited row) is
 * logged and read as the default. */
struct dm_store_settings_text {
        char checks[DM_CHECKS_TEXT_MAX];
        char tls_ports[DM_TLS_PORTS_TEXT_MAX];
};
int dm_store_settings_to_text(unsigned checks, const uint16_t *ports, size_t nports,
                              struct dm_store_settings_text *ret_text);
unsigned dm_store_checks_from_text(const char *s, int64_t domain_id);
void dm_store_ports_from_text(const char *s, int64_t domain_id, uint16_t *ports, size_t *ret_n);

/* Empties every table. For the contract tests only; see dm_store_ops.wipe. */
int dm_store_wipe(struct dm_store *st);

#endif
