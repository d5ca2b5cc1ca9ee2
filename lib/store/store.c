/* The store front: picks a backend from the DATABASE_URL scheme (the way curl picks its TLS
 * backend from available_backends[]), checks arguments once for every backend, and holds
 * the few functions both backends must agree on (phases, routing keys, names of enums). */
#include "store_int.h"

#include "dm/error.h"
#include "dm/log.h"
#include "dm/rrtype.h"
#include "dm/url.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct store_backend {
        const char *scheme;
        const struct dm_store_ops *ops;
};

/* What this binary can open. */
static const struct store_backend store_backends[] = {
    {.scheme = "sqlite", .ops = &dm_store_sqlite_ops},
#ifdef DM_HAVE_PQ
    {.scheme = "postgres", .ops = &dm_store_pg_ops},
    {.scheme = "postgresql", .ops = &dm_store_pg_ops},
#endif
};

/* Every scheme the project knows, built or not: a known one missing from store_backends[]
 * is a build choice, and the error must say so rather than "bad URL". */
static const struct {
        const char *scheme;
        const char *backend;
} store_known_schemes[] = {
    {"sqlite", "sqlite"},
    {"postgres", "postgres"},
    {"postgresql", "postgres"},
};

#define STORE_NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define STORE_DEFAULT_URL "sqlite://./domainmon.db"

int dm_store_open(const char *url, char *err, size_t errlen, struct dm_store **ret_store)
{
        if (!ret_store)
                return DM_EINVAL;
        if (!url || !*url)
                url = STORE_DEFAULT_URL;

        char scheme[16];
        if (dm_url_scheme(url, scheme, sizeof(scheme)) < 0) {
                dm_errorf(0, err, errlen,
                          "DATABASE_URL has no known scheme (expected sqlite:///path.db or "
                          "postgres://...)");
                return DM_EINVAL;
        }

        for (size_t i = 0; i < STORE_NELEM(store_backends); i++) {
                if (strcmp(store_backends[i].scheme, scheme) == 0)
                        return store_backends[i].ops->open(url, err, errlen, ret_store);
        }
        for (size_t i = 0; i < STORE_NELEM(store_known_schemes); i++) {
                if (strcmp(store_known_schemes[i].scheme, scheme) == 0) {
                        dm_errorf(0, err, errlen,
                                  "DATABASE_URL: %s backend is not built into this binary",
                                  store_known_schemes[i].backend);
                        return DM_ENOBACKEND;
                }
        }
        /* The scheme alone, never the URL: it may carry a password. */
        dm_errorf(0, err, errlen,
                  "DATABASE_URL: unknown scheme '%s' (expected sqlite:///path.db or "
                  "postgres://...)",
                  scheme);
        return DM_EINVAL;
}

void dm_store_free(struct dm_store *st)
{
        if (st)
                st->ops->free(st);
}

const char *dm_store_backend(const struct dm_store *st)
{
        return st ? st->ops->name : NULL;
}

int dm_store_migrate(struct dm_store *st, int *ret_applied)
{
        if (!st)
                return DM_EINVAL;
        return st->ops->migrate(st, ret_applied);
}

int dm_store_ping(struct dm_store *st)
{
        if (!st)
                return DM_EINVAL;
        return st->ops->ping(st);
}

static bool store_domain_valid(const struct dm_domain *d)
{
        return d && d->name[0] != '\0' && d->nrecord_types <= DM_RRTYPE_MAX_PER_DOMAIN &&
               d->interval_ms >= 0 && (d->checks & ~(unsigned)DM_CHECKS_ALL) == 0 &&
               d->ntls_ports <= DM_TLS_PORTS_MAX;
}

int dm_store_domain_insert(struct dm_store *st, struct dm_domain *d, dm_domain_event_fn event_fn,
                           void *event_arg)
{
        if (!st || !store_domain_valid(d))
                return DM_EINVAL;
        return st->ops->domain_insert(st, d, event_fn, event_arg);
}

int dm_store_domain_insert_many(struct dm_store *st, struct dm_domain *ds, size_t n,
                                dm_domain_event_fn event_fn, void *event_arg, int *ret_results)
{
        if (!st || (n > 0 && (!ds || !ret_results)))
                return DM_EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (!store_domain_valid(&ds[i]))
                        return DM_EINVAL;
        }
        if (n == 0)
                return 0;
        return st->ops->domain_insert_many(st, ds, n, event_fn, event_arg, ret_results);
}

int dm_store_domain_get(struct dm_store *st, const char *name, struct dm_domain *ret_domain)
{
        if (!st || !name || !ret_domain)
                return DM_EINVAL;
        return st->ops->domain_get(st, name, ret_domain);
}

int dm_store_domain_update(struct dm_store *st, const struct dm_domain *d, unsigned fields)
{
        if (!st || !store_domain_valid(d) || (fields & DM_DOMAIN_SETTINGS) == 0 ||
            (fields & ~(unsigned)DM_DOMAIN_SETTINGS))
                return DM_EINVAL;
        return st->ops->domain_update(st, d, fields);
}

int dm_store_domain_delete(struct dm_store *st, const char *name, dm_domain_event_fn event_fn,
                           void *event_arg)
{
        int result = 0;
        if (!st || !name)
                return DM_EINVAL;
        int ret = st->ops->domain_delete(st, &name, 1, 0, event_fn, event_arg, &result);
        return ret < 0 ? ret : result;
}

int dm_store_domain_delete_many(struct dm_store *st, const char *const *names, size_t n,
                                unsigned flags, dm_domain_event_fn event_fn, void *event_arg,
                                int *ret_results)
{
        if (!st || (n > 0 && (!names || !ret_results)) || (flags & ~DM_DELETE_PURGE))
                return DM_EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (!names[i])
                        return DM_EINVAL;
        }
        if (n == 0)
                return 0;
        return st->ops->domain_delete(st, names, n, flags, event_fn, event_arg, ret_results);
}

int dm_store_domain_list(struct dm_store *st, const struct dm_domain_query *q,
                         struct dm_domain *ret_domains, size_t *ret_n)
{
        if (!st || !q || q->limit == 0 || !ret_domains || !ret_n)
                return DM_EINVAL;
        /* No stored name is that long, and a pattern that long is a database error
         * (SQLite caps LIKE patterns) rather than the empty answer it deserves. */
        if (q->q && strlen(q->q) > DM_UNAME_MAX) {
                *ret_n = 0;
                return 0;
        }
        return st->ops->domain_list(st, q, ret_domains, ret_n);
}

int dm_store_domain_request_scan(struct dm_store *st, const char *name, int64_t now)
{
        if (!st || !name)
                return DM_EINVAL;
        return st->ops->domain_request_scan(st, name, now);
}

#define STORE_SCAN_ALL_PAGE 1000

int dm_store_domain_request_scan_all(struct dm_store *st, int64_t now, size_t *ret_n)
{
        if (!st)
                return DM_EINVAL;
        if (st->ops->domain_request_scan_all)
                return st->ops->domain_request_scan_all(st, now, ret_n);

        /* A backend without one statement for it: page by page, one domain at a time. */
        struct dm_domain *page = calloc(STORE_SCAN_ALL_PAGE, sizeof(*page));
        char after[DM_NAME_MAX + 1] = "";
        size_t total = 0;
        int ret = 0;
        if (!page)
                return DM_ENOMEM;
        for (;;) {
                struct dm_domain_query q = {.after = after[0] ? after : NULL,
                                            .limit = STORE_SCAN_ALL_PAGE};
                size_t n = 0;
                ret = st->ops->domain_list(st, &q, page, &n);
                if (ret < 0)
                        goto out_free;
                for (size_t i = 0; i < n; i++) {
                        if (!page[i].enabled)
                                continue;
                        ret = st->ops->domain_request_scan(st, page[i].name, now);
                        if (ret == DM_ENOENT) /* deleted meanwhile */
                                continue;
                        if (ret < 0)
                                goto out_free;
                        total++;
                }
                if (n < STORE_SCAN_ALL_PAGE)
                        break;
                snprintf(after, sizeof(after), "%s", page[n - 1].name);
        }
        ret = 0;
        if (ret_n)
                *ret_n = total;
out_free:
        free(page);
        return ret;
}

int dm_store_domain_count(struct dm_store *st, size_t *ret_n)
{
        if (!st || !ret_n)
                return DM_EINVAL;
        return st->ops->domain_count(st, ret_n);
}

int dm_store_key_insert(struct dm_store *st, struct dm_api_key *k)
{
        if (!st || !k || k->key_id[0] == '\0' || k->scope < DM_SCOPE_READ ||
            k->scope > DM_SCOPE_ADMIN)
                return DM_EINVAL;
        return st->ops->key_insert(st, k);
}

int dm_store_key_insert_first(struct dm_store *st, struct dm_api_key *k)
{
        if (!st || !k || k->key_id[0] == '\0' || k->scope < DM_SCOPE_READ ||
            k->scope > DM_SCOPE_ADMIN)
                return DM_EINVAL;
        return st->ops->key_insert_first(st, k);
}

int dm_store_key_get(struct dm_store *st, const char *key_id, struct dm_api_key *ret_key)
{
        if (!st || !key_id || !ret_key)
                return DM_EINVAL;
        return st->ops->key_get(st, key_id, ret_key);
}

int dm_store_key_list(struct dm_store *st, struct dm_api_key **ret_keys, size_t *ret_n)
{
        if (!st || !ret_keys || !ret_n)
                return DM_EINVAL;
        return st->ops->key_list(st, ret_keys, ret_n);
}

int dm_store_key_revoke(struct dm_store *st, const char *key_id_or_name, int64_t now)
{
        if (!st || !key_id_or_name || !*key_id_or_name)
                return DM_EINVAL;
        return st->ops->key_revoke(st, key_id_or_name, now);
}

int dm_store_key_touch(struct dm_store *st, int64_t id, int64_t now)
{
        if (!st)
                return DM_EINVAL;
        return st->ops->key_touch(st, id, now);
}

int dm_store_key_count_active(struct dm_store *st, size_t *ret_n)
{
        if (!st || !ret_n)
                return DM_EINVAL;
        return st->ops->key_count_active(st, ret_n);
}

int dm_store_session_insert(struct dm_store *st, const struct dm_session *s)
{
        if (!st || !s || s->id[0] == '\0' || s->key_id[0] == '\0' || s->scope < DM_SCOPE_READ ||
            s->scope > DM_SCOPE_ADMIN)
                return DM_EINVAL;
        return st->ops->session_insert(st, s);
}

int dm_store_session_get(struct dm_store *st, const char *id, struct dm_session *ret_session)
{
        if (!st || !id || !*id || !ret_session)
                return DM_EINVAL;
        return st->ops->session_get(st, id, ret_session);
}

int dm_store_session_delete(struct dm_store *st, const char *id)
{
        if (!st || !id || !*id)
                return DM_EINVAL;
        return st->ops->session_delete(st, id);
}

int dm_store_setting_init(struct dm_store *st, const char *name, const char *value, char *ret_value,
                          size_t size)
{
        if (!st || !name || !*name || !value || !*value || !ret_value || size == 0)
                return DM_EINVAL;
        return st->ops->setting_init(st, name, value, ret_value, size);
}

int dm_store_claim_due(struct dm_store *st, const struct dm_claim_opts *opts,
                       struct dm_scan_task *ret_tasks, size_t *ret_n)
{
        /* A zero interval would make the next slot undefined (division by zero). */
        if (!st || !opts || opts->limit == 0 || !ret_tasks || !ret_n ||
            opts->default_interval_ms <= 0 || opts->min_interval_ms < 0)
                return DM_EINVAL;
        return st->ops->claim_due(st, opts, ret_tasks, ret_n);
}

int dm_store_dns_current(struct dm_store *st, int64_t domain_id, struct dm_rrset_row **ret_rows,
                         size_t *ret_n)
{
        if (!st || !ret_rows || !ret_n)
                return DM_EINVAL;
        return st->ops->dns_current(st, domain_id, ret_rows, ret_n);
}

int dm_store_dns_commit(struct dm_store *st, struct dm_dns_commit *items, size_t n,
                        dm_change_event_fn event_fn, void *event_arg)
{
        if (!st || (n > 0 && !items))
                return DM_EINVAL;
        for (size_t i = 0; i < n; i++) {
                const struct dm_dns_commit *it = &items[i];
                if (memcmp(it->old_fp, it->new_fp, DM_FP_LEN) == 0)
                        continue;
                if (it->nrows > DM_STORE_MAX_ROWS || (it->nrows > 0 && !it->rows) ||
                    (it->nchanges > 0 && !it->changes))
                        return DM_EINVAL;
        }
        if (n == 0)
                return 0;
        return st->ops->dns_commit(st, items, n, event_fn, event_arg);
}

int dm_store_change_list(struct dm_store *st, const struct dm_change_query *q,
                         struct dm_change **ret_changes, size_t *ret_n)
{
        if (!st || !q || q->limit == 0 || !ret_changes || !ret_n)
                return DM_EINVAL;
        return st->ops->change_list(st, q, ret_changes, ret_n);
}

int dm_store_history_prune(struct dm_store *st, int64_t before, size_t limit, size_t *ret_n)
{
        if (!st || limit == 0)
                return DM_EINVAL;
        size_t n = 0;
        int ret = st->ops->history_prune(st, before, limit, &n);
        if (ret == 0 && ret_n)
                *ret_n = n;
        return ret;
}

/* Statements a claim may make while it only finds domains without the registration check:
 * a backlog of them (a million domains watched for DNS alone, all due at the first start)
 * goes in steps of DM_STORE_REG_WALK x this many, each a short transaction. */
#define REG_CLAIM_ROUNDS 8

int dm_store_reg_claim_due(struct dm_store *st, int64_t now, int64_t interval_ms,
                           unsigned default_checks, size_t limit, struct dm_reg_task *ret_tasks,
                           size_t *ret_n)
{
        if (!st || limit == 0 || interval_ms <= 0 || !ret_tasks || !ret_n)
                return DM_EINVAL;
        bool def = (default_checks & DM_CHECKS_REGISTRATION) != 0;
        size_t n = 0;
        for (int round = 0; round < REG_CLAIM_ROUNDS; round++) {
                size_t skipped = 0;
                n = 0;
                int ret = st->ops->reg_claim_due(st, now, interval_ms, def, limit, ret_tasks, &n,
                                                 &skipped);
                if (ret < 0)
                        return ret;
                if (n > 0 || skipped == 0)
                        break;
        }
        *ret_n = n;
        return 0;
}

int dm_store_reg_defer(struct dm_store *st, int64_t domain_id, int64_t at)
{
        if (!st || domain_id <= 0)
                return DM_EINVAL;
        return st->ops->reg_defer(st, domain_id, at);
}

int dm_store_reg_get(struct dm_store *st, int64_t domain_id, struct dm_reg_state *ret_state)
{
        if (!st || domain_id <= 0 || !ret_state)
                return DM_EINVAL;
        return st->ops->reg_get(st, domain_id, ret_state);
}

int dm_store_reg_commit(struct dm_store *st, const struct dm_reg_commit *c,
                        dm_reg_change_event_fn event_fn, void *event_arg, int64_t *ret_change_id)
{
        int64_t id = 0;
        if (!st || !c || c->domain_id <= 0 || (c->fields && !c->data) || c->status < 0 ||
            c->status > 3)
                return DM_EINVAL;
        if ((c->data && strlen(c->data) > DM_REG_STATE_MAX) ||
            (c->raw && strlen(c->raw) > DM_REG_STATE_MAX) ||
            (c->fields && strlen(c->fields) > DM_REG_STATE_MAX))
                return DM_E2BIG;
        int ret = st->ops->reg_commit(st, c, event_fn, event_arg, &id);
        if (ret == 0 && ret_change_id)
                *ret_change_id = id;
        return ret;
}

int dm_store_reg_changes(struct dm_store *st, int64_t domain_id, int64_t before_id, size_t limit,
                         struct dm_reg_change **ret_changes, size_t *ret_n)
{
        if (!st || domain_id <= 0 || limit == 0 || !ret_changes || !ret_n)
                return DM_EINVAL;
        return st->ops->reg_changes(st, domain_id, before_id > 0 ? before_id : INT64_MAX, limit,
                                    ret_changes, ret_n);
}

void dm_reg_state_done(struct dm_reg_state *s)
{
        if (!s)
                return;
        free(s->error);
        free(s->data);
        free(s->raw);
        s->error = s->data = s->raw = NULL;
}

void dm_reg_changes_free(struct dm_reg_change *changes, size_t n)
{
        if (!changes)
                return;
        for (size_t i = 0; i < n; i++)
                free(changes[i].fields);
        free(changes);
}

static bool store_text_fits(const char *s)
{
        return !s || strlen(s) <= DM_RRSET_JSON_MAX;
}

bool dm_store_item_fits(const struct dm_dns_commit *it)
{
        for (size_t i = 0; i < it->nrows; i++) {
                if (!store_text_fits(it->rows[i].values))
                        return false;
        }
        for (size_t i = 0; i < it->nchanges; i++) {
                const struct dm_change *c = &it->changes[i];
                if (!store_text_fits(c->before) || !store_text_fits(c->after) ||
                    !store_text_fits(c->added) || !store_text_fits(c->removed))
                        return false;
        }
        return true;
}

size_t dm_change_size(const struct dm_change *c)
{
        size_t n = 0;
        const char *parts[] = {c->before, c->after, c->added, c->removed};
        for (size_t i = 0; i < STORE_NELEM(parts); i++)
                n += parts[i] ? strlen(parts[i]) : 0;
        return n;
}

size_t dm_changes_page(const struct dm_change *changes, size_t n, size_t page, size_t max_bytes,
                       bool *ret_more)
{
        size_t shown = 0, bytes = 0;
        bool cut = false;
        while (shown < n && shown < page) {
                size_t next = bytes + dm_change_size(&changes[shown]);
                if (max_bytes > 0 && next > max_bytes) {
                        cut = true;
                        if (shown > 0)
                                break;
                }
                bytes = next;
                shown++;
        }
        if (ret_more)
                *ret_more = shown < n || cut;
        return shown;
}

int dm_store_outbox_add(struct dm_store *st, const char *routing_key, const char *body)
{
        if (!st || !routing_key || !body)
                return DM_EINVAL;
        return st->ops->outbox_add(st, routing_key, body);
}

int dm_store_outbox_claim(struct dm_store *st, int64_t owner, int64_t lease_ms, size_t limit,
                          int64_t now, struct dm_outbox_event **ret_events, size_t *ret_n)
{
        /* Owner 0 would match events nobody holds in the delete. */
        if (!st || owner == 0 || lease_ms <= 0 || limit == 0 || !ret_events || !ret_n ||
            now > INT64_MAX - lease_ms)
                return DM_EINVAL;
        return st->ops->outbox_claim(st, owner, lease_ms, limit, now, ret_events, ret_n);
}

int dm_store_outbox_delete(struct dm_store *st, int64_t owner, const int64_t *ids, size_t n,
                           size_t *ret_n)
{
        if (!st || owner == 0 || (n > 0 && !ids))
                return DM_EINVAL;
        size_t deleted = 0;
        int ret = n > 0 ? st->ops->outbox_delete(st, owner, ids, n, &deleted) : 0;
        if (ret == 0 && ret_n)
                *ret_n = deleted;
        return ret;
}

int dm_store_outbox_count(struct dm_store *st, size_t *ret_n)
{
        if (!st || !ret_n)
                return DM_EINVAL;
        return st->ops->outbox_count(st, ret_n);
}

/* ---- alerts ---- */

static bool alert_rule_ok(const struct dm_alert_rule *r)
{
        return r && r->spec && r->name[0] && r->channel != DM_ALERT_CHANNEL_NONE && r->target[0];
}

int dm_store_alert_rule_insert(struct dm_store *st, struct dm_alert_rule *rule)
{
        if (!st || !alert_rule_ok(rule))
                return DM_EINVAL;
        return st->ops->alert_rule_insert(st, rule);
}

int dm_store_alert_rule_get(struct dm_store *st, int64_t id, struct dm_alert_rule *ret_rule)
{
        if (!st || id <= 0 || !ret_rule)
                return DM_EINVAL;
        return st->ops->alert_rule_get(st, id, ret_rule);
}

int dm_store_alert_rule_update(struct dm_store *st, struct dm_alert_rule *rule)
{
        if (!st || !alert_rule_ok(rule) || rule->id <= 0)
                return DM_EINVAL;
        return st->ops->alert_rule_update(st, rule);
}

int dm_store_alert_rule_delete(struct dm_store *st, int64_t id)
{
        if (!st || id <= 0)
                return DM_EINVAL;
        return st->ops->alert_rule_delete(st, id);
}

int dm_store_alert_rule_list(struct dm_store *st, int64_t after_id, size_t limit,
                             struct dm_alert_rule **ret_rules, size_t *ret_n)
{
        if (!st || limit == 0 || !ret_rules || !ret_n || after_id < 0)
                return DM_EINVAL;
        return st->ops->alert_rule_list(st, after_id, limit, ret_rules, ret_n);
}

int dm_store_domain_expiring(struct dm_store *st, int64_t before, int64_t after_id, size_t limit,
                             struct dm_domain_expiry **ret, size_t *ret_n)
{
        if (!st || limit == 0 || !ret || !ret_n || after_id < 0)
                return DM_EINVAL;
        return st->ops->domain_expiring(st, before, after_id, limit, ret, ret_n);
}

int dm_store_alert_delivery_add(struct dm_store *st, struct dm_alert_delivery *d, int64_t now,
                                int64_t quiet_ms)
{
        if (!st || !d || d->rule_id <= 0 || !d->event_key[0] || !d->routing_key[0] || !d->body ||
            quiet_ms < 0)
                return DM_EINVAL;
        return st->ops->alert_delivery_add(st, d, now, quiet_ms);
}

int dm_store_alert_delivery_claim(struct dm_store *st, int64_t owner, int64_t lease_ms,
                                  size_t limit, int64_t now, struct dm_alert_delivery **ret,
                                  size_t *ret_n)
{
        if (!st || owner == 0 || lease_ms <= 0 || limit == 0 || !ret || !ret_n ||
            now > INT64_MAX - lease_ms)
                return DM_EINVAL;
        return st->ops->alert_delivery_claim(st, owner, lease_ms, limit, now, ret, ret_n);
}

int dm_store_alert_delivery_finish(struct dm_store *st, int64_t owner,
                                   const struct dm_alert_delivery *d)
{
        if (!st || owner == 0 || !d || d->id <= 0)
                return DM_EINVAL;
        return st->ops->alert_delivery_finish(st, owner, d);
}

int dm_store_alert_delivery_list(struct dm_store *st, int64_t rule_id, int64_t before_id,
                                 size_t limit, struct dm_alert_delivery **ret, size_t *ret_n)
{
        if (!st || rule_id <= 0 || before_id < 0 || limit == 0 || !ret || !ret_n)
                return DM_EINVAL;
        return st->ops->alert_delivery_list(st, rule_id, before_id, limit, ret, ret_n);
}

static const char *const alert_channel_names[] = {
    [DM_ALERT_WEBHOOK] = "webhook", [DM_ALERT_EMAIL] = "email", [DM_ALERT_SMS] = "sms"};
static const char *const alert_status_names[] = {[DM_ALERT_PENDING] = "pending",
                                                 [DM_ALERT_DELIVERED] = "delivered",
                                                 [DM_ALERT_FAILED] = "failed"};

const char *dm_alert_channel_name(enum dm_alert_channel c)
{
        if ((unsigned)c >= sizeof(alert_channel_names) / sizeof(alert_channel_names[0]) ||
            !alert_channel_names[c])
                return "none";
        return alert_channel_names[c];
}

int dm_alert_channel_parse(const char *s, enum dm_alert_channel *ret_channel)
{
        for (unsigned i = 1; s && i < sizeof(alert_channel_names) / sizeof(alert_channel_names[0]);
             i++) {
                if (strcmp(s, alert_channel_names[i]) == 0) {
                        *ret_channel = (enum dm_alert_channel)i;
                        return 0;
                }
        }
        return DM_EINVAL;
}

const char *dm_alert_status_name(enum dm_alert_status s)
{
        if ((unsigned)s >= sizeof(alert_status_names) / sizeof(alert_status_names[0]))
                return "pending";
        return alert_status_names[s];
}

int dm_alert_status_parse(const char *s, enum dm_alert_status *ret_status)
{
        for (unsigned i = 0; s && i < sizeof(alert_status_names) / sizeof(alert_status_names[0]);
             i++) {
                if (strcmp(s, alert_status_names[i]) == 0) {
                        *ret_status = (enum dm_alert_status)i;
                        return 0;
                }
        }
        return DM_EINVAL;
}

void dm_alert_rule_done(struct dm_alert_rule *rule)
{
        if (!rule)
                return;
        free(rule->spec);
        rule->spec = NULL;
}

void dm_alert_rules_free(struct dm_alert_rule *rules, size_t n)
{
        if (!rules)
                return;
        for (size_t i = 0; i < n; i++)
                free(rules[i].spec);
        free(rules);
}

void dm_alert_deliveries_free(struct dm_alert_delivery *d, size_t n)
{
        if (!d)
                return;
        for (size_t i = 0; i < n; i++)
                free(d[i].body);
        free(d);
}

int dm_store_wipe(struct dm_store *st)
{
        if (!st)
                return DM_EINVAL;
        return st->ops->wipe(st);
}

void dm_rrset_rows_free(struct dm_rrset_row *rows, size_t n)
{
        if (!rows)
                return;
        for (size_t i = 0; i < n; i++) {
                free(rows[i].values);
                free(rows[i].error);
        }
        free(rows);
}

void dm_changes_free(struct dm_change *changes, size_t n)
{
        if (!changes)
                return;
        for (size_t i = 0; i < n; i++) {
                free(changes[i].before);
                free(changes[i].after);
                free(changes[i].added);
                free(changes[i].removed);
        }
        free(changes);
}

void dm_outbox_events_free(struct dm_outbox_event *events, size_t n)
{
        if (!events)
                return;
        for (size_t i = 0; i < n; i++) {
                free(events[i].routing_key);
                free(events[i].body);
        }
        free(events);
}

int64_t dm_store_phase(const char *name)
{
        /* FNV-1a, then a 64-bit finalizer (splitmix64): FNV alone leaves names that differ
         * only in their last characters close together in the low bits. */
        uint64_t h = 0xcbf29ce484222325u;
        for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
                h ^= *p;
                h *= 0x100000001b3u;
        }
        h ^= h >> 30;
        h *= 0xbf58476d1ce4e5b9u;
        h ^= h >> 27;
        h *= 0x94d049bb133111ebu;
        h ^= h >> 31;
        return (int64_t)(h & 0x7fffffffu);
}

int dm_store_migration_name(const char *file, int64_t *ret_version, char *name, size_t size)
{
        int64_t v = 0;
        const char *p = file;
        for (; *p >= '0' && *p <= '9'; p++) {
                if (v > 100000000)
                        return DM_EINVAL;
                v = v * 10 + (*p - '0');
        }
        size_t len = strlen(p);
        if (p == file || v == 0 || *p != '_' || len < 6 || strcmp(p + len - 4, ".sql") != 0)
                return DM_EINVAL;
        len -= 5; /* the '_' and ".sql" */
        if (len >= size)
                return DM_EINVAL;
        memcpy(name, p + 1, len);
        name[len] = '\0';
        *ret_version = v;
        return 0;
}

char *dm_store_like_pattern(const char *q)
{
        size_t len = strlen(q);
        char *p = malloc(2 * len + 3);
        if (!p)
                return NULL;
        size_t o = 0;
        p[o++] = '%';
        for (size_t i = 0; i < len; i++) {
                if (q[i] == '%' || q[i] == '_' || q[i] == '\\')
                        p[o++] = '\\';
                p[o++] = q[i];
        }
        p[o++] = '%';
        p[o] = '\0';
        return p;
}

bool dm_store_fp_is_zero(const uint8_t fp[DM_FP_LEN])
{
        uint8_t acc = 0;
        for (size_t i = 0; i < DM_FP_LEN; i++)
                acc |= fp[i];
        return acc == 0;
}

const char *dm_store_routing_key(uint16_t type, char *buf)
{
        char tbuf[16];
        snprintf(buf, DM_STORE_ROUTING_KEY_MAX, "change.dns.%s", dm_rrtype_name(type, tbuf));
        return buf;
}

static const char *const scope_names[] = {
    [DM_SCOPE_READ] = "read",
    [DM_SCOPE_WRITE] = "write",
    [DM_SCOPE_ADMIN] = "admin",
};

const char *dm_scope_name(enum dm_scope s)
{
        if ((size_t)s < STORE_NELEM(scope_names) && scope_names[s])
                return scope_names[s];
        return "none";
}

int dm_scope_parse(const char *s, enum dm_scope *ret_scope)
{
        if (!s || !ret_scope)
                return DM_EINVAL;
        for (size_t i = 0; i < STORE_NELEM(scope_names); i++) {
                if (scope_names[i] && strcmp(scope_names[i], s) == 0) {
                        *ret_scope = (enum dm_scope)i;
                        return 0;
                }
        }
        return DM_EINVAL;
}

const char *dm_check_status_name(enum dm_check_status s)
{
        switch (s) {
        case DM_CHECK_PENDING:
                return "pending";
        case DM_CHECK_OK:
                return "ok";
        case DM_CHECK_ERROR:
                return "error";
        }
        return "unknown";
}

int dm_check_status_mask_parse(const char *s, unsigned *ret_mask)
{
        static const enum dm_check_status all[] = {DM_CHECK_PENDING, DM_CHECK_OK, DM_CHECK_ERROR};
        unsigned mask = 0;

        if (!s || !*s)
                return DM_EINVAL;
        for (;;) {
                size_t n = strcspn(s, ",");
                bool known = false;
                for (size_t i = 0; i < STORE_NELEM(all); i++) {
                        const char *name = dm_check_status_name(all[i]);
                        if (n == strlen(name) && strncmp(s, name, n) == 0) {
                                mask |= 1u << all[i];
                                known = true;
                        }
                }
                if (!known)
                        return DM_EINVAL;
                if (s[n] == '\0')
                        break;
                s += n + 1;
        }
        *ret_mask = mask;
        return 0;
}

int dm_store_types_to_text(const uint16_t *types, size_t n, char *buf, size_t size)
{
        if (n == 0) {
                buf[0] = '\0';
                return 0;
        }
        return dm_rrtype_format_list(types, n, buf, size) < 0 ? DM_EINVAL : 0;
}

void dm_store_types_from_text(const char *s, int64_t domain_id, uint16_t *types, size_t *ret_n)
{
        size_t n = 0;
        if (s && *s && dm_rrtype_parse_list(s, NULL, 0, types, &n) < 0) {
                /* Only a hand-edited row gets here; scanning the defaults beats not
                 * scanning the domain at all. */
                char q[64];
                dm_log_warn("store",
                            "msg=\"unreadable record types, using defaults\" id=%lld "
                            "types=%s",
                            (long long)domain_id, dm_log_quote(q, sizeof(q), s));
                n = 0;
        }
        *ret_n = n;
}

int dm_store_settings_to_text(unsigned checks, const uint16_t *ports, size_t nports,
                              struct dm_store_settings_text *ret_text)
{
        struct dm_store_settings_text t;
        if (nports > DM_TLS_PORTS_MAX || (checks & ~(unsigned)DM_CHECKS_ALL) ||
            dm_checks_format(checks, t.checks, sizeof(t.checks)) < 0 ||
            dm_tls_ports_format(ports, nports, t.tls_ports, sizeof(t.tls_ports)) < 0)
                return DM_EINVAL;
        *ret_text = t;
        return 0;
}

unsigned dm_store_checks_from_text(const char *s, int64_t domain_id)
{
        unsigned checks = 0;
        if (s && *s && dm_checks_parse(s, NULL, 0, &checks) < 0) {
                char q[64];
                dm_log_warn("store",
                            "msg=\"unreadable checks, using the default\" id=%lld checks=%s",
                            (long long)domain_id, dm_log_quote(q, sizeof(q), s));
                checks = 0;
        }
        return checks;
}

void dm_store_ports_from_text(const char *s, int64_t domain_id, uint16_t *ports, size_t *ret_n)
{
        size_t n = 0;
        if (s && *s && dm_tls_ports_parse(s, ports, &n) < 0) {
                char q[64];
                dm_log_warn("store",
                            "msg=\"unreadable TLS ports, using the default\" id=%lld ports=%s",
                            (long long)domain_id, dm_log_quote(q, sizeof(q), s));
                n = 0;
        }
        *ret_n = n;
}

/* ---- TLS ---- */

bool dm_store_tls_item_fits(const struct dm_tls_commit *it)
{
        for (size_t i = 0; i < it->nendpoints; i++) {
                if (it->endpoints[i].cert && strlen(it->endpoints[i].cert) > DM_TLS_CERT_JSON_MAX)
                        return false;
        }
        for (size_t i = 0; i < it->nchanges; i++) {
                const struct dm_tls_change *c = &it->changes[i];
                if ((c->before && strlen(c->before) > DM_TLS_CERT_JSON_MAX) ||
                    (c->after && strlen(c->after) > DM_TLS_CERT_JSON_MAX))
                        return false;
        }
        return true;
}

int dm_store_tls_commit(struct dm_store *st, struct dm_tls_commit *items, size_t n,
                        dm_tls_change_event_fn event_fn, void *event_arg)
{
        if (!st || (n > 0 && !items))
                return DM_EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (items[i].domain_id <= 0 || items[i].nendpoints > DM_TLS_ENDPOINTS_MAX ||
                    items[i].nchanges > DM_TLS_ENDPOINTS_MAX ||
                    (items[i].nendpoints && !items[i].endpoints) ||
                    (items[i].nchanges && !items[i].changes))
                        return DM_EINVAL;
        }
        if (n == 0)
                return 0;
        return st->ops->tls_commit(st, items, n, event_fn, event_arg);
}

int dm_store_tls_current(struct dm_store *st, int64_t domain_id,
                         struct dm_tls_endpoint **ret_endpoints, size_t *ret_n)
{
        if (!st || domain_id <= 0 || !ret_endpoints || !ret_n)
                return DM_EINVAL;
        return st->ops->tls_current(st, domain_id, ret_endpoints, ret_n);
}

int dm_store_tls_change_list(struct dm_store *st, int64_t domain_id, int64_t before_id,
                             size_t limit, struct dm_tls_change **ret_changes, size_t *ret_n)
{
        if (!st || domain_id <= 0 || limit == 0 || before_id < 0 || !ret_changes || !ret_n)
                return DM_EINVAL;
        return st->ops->tls_change_list(st, domain_id, before_id, limit, ret_changes, ret_n);
}

void dm_tls_endpoints_free(struct dm_tls_endpoint *e, size_t n)
{
        if (!e)
                return;
        for (size_t i = 0; i < n; i++)
                free(e[i].cert);
        free(e);
}

void dm_tls_changes_free(struct dm_tls_change *c, size_t n)
{
        if (!c)
                return;
        for (size_t i = 0; i < n; i++) {
                free(c[i].before);
                free(c[i].after);
        }
        free(c);
}
