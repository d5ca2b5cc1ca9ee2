/* DNS state over the REST API: a domain's current records, the change history of one domain
 * or of all of them, and asking for a scan now.
 *
 * Current rows are written only when something changed, so a row's own checked_at says when
 * it was last written, not when it was last confirmed: every record is shown with the
 * domain's last_checked_at, which the scanner moves on every scan. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "dm/error.h"
#include "dm/name.h"
#include "dm/rrtype.h"
#include "dm/store.h"
#include "dm/time.h"

#define DM_API_CURSOR_MAX 64 /* bytes of an encoded page cursor */

static const char *const dm_api_change_params[] = {
    "type", "since", "until", "limit", "cursor", "domain", "initial", "serial_only", NULL};
static const char *const dm_api_history_params[] = {"type",   "since",   "until",       "limit",
                                                    "cursor", "initial", "serial_only", NULL};

/* A stored JSON array (values, before/after/added/removed) as a JSON value. NULL text
 * (no "before" on a first observation) is JSON null. The store writes these itself, so
 * text that does not read back as an array is a store fault (DM_ESTORE). */
static int stored_array_json(const char *text, json_t **ret_value)
{
        json_error_t jerr;
        json_t *v;

        if (!text) {
                v = json_null();
                goto out;
        }
        v = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        if (!v)
                return DM_ESTORE;
        if (!json_is_array(v)) {
                json_decref(v);
                return DM_ESTORE;
        }
out:
        *ret_value = v;
        return 0;
}

/* Sets `key` of `obj` to `value`, taking the reference; a NULL value is ENOMEM. */
static int set_new(json_t *obj, const char *key, json_t *value)
{
        if (!value || json_object_set_new(obj, key, value) != 0)
                return DM_ENOMEM;
        return 0;
}

static int set_stored_array(json_t *obj, const char *key, const char *text)
{
        json_t *v = NULL;
        int r = stored_array_json(text, &v);
        if (r < 0)
                return r;
        return set_new(obj, key, v);
}

static json_t *type_json(uint16_t type)
{
        char buf[16];
        return json_string(dm_rrtype_name(type, buf));
}

static int record_json(const struct dm_rrset_row *row, int64_t checked_at, json_t **ret_record)
{
        json_t *rec = json_object();
        int r = DM_ENOMEM;

        if (!rec)
                return DM_ENOMEM;
        if (set_new(rec, "type", type_json(row->type)) < 0 ||
            set_new(rec, "ttl", json_integer(row->ttl)) < 0)
                goto fail;
        r = set_stored_array(rec, "values", row->values ? row->values : "[]");
        if (r < 0)
                goto fail;
        r = DM_ENOMEM;
        if (set_new(rec, "status", json_string(dm_rr_status_name(row->status))) < 0)
                goto fail;
        if (row->status == DM_RRS_ERROR &&
            set_new(rec, "error", dm_json_string_lossy(row->error ? row->error : "lookup failed")) <
                0)
                goto fail;
        if (set_new(rec, "checked_at", dm_api_time_json(checked_at)) < 0 ||
            set_new(rec, "changed_at", dm_api_time_json(row->changed_at)) < 0)
                goto fail;
        *ret_record = rec;
        return 0;

fail:
        json_decref(rec);
        return r;
}

static int change_json(const struct dm_change *c, json_t **ret_change)
{
        json_t *obj = json_object();
        int r = DM_ENOMEM;

        if (!obj)
                return DM_ENOMEM;
        if (set_new(obj, "id", json_integer(c->id)) < 0 ||
            set_new(obj, "domain", json_string(c->domain)) < 0 ||
            set_new(obj, "type", type_json(c->type)) < 0 ||
            set_new(obj, "status", json_string(dm_rr_status_name(c->status))) < 0 ||
            set_new(obj, "observed_at", dm_api_time_json(c->observed_at)) < 0)
                goto fail;
        if (set_new(obj, "serial_only", json_boolean(c->serial_only)) < 0)
                goto fail;
        r = set_stored_array(obj, "before", c->before);
        if (r == 0)
                r = set_stored_array(obj, "after", c->after ? c->after : "[]");
        if (r == 0)
                r = set_stored_array(obj, "added", c->added ? c->added : "[]");
        if (r == 0)
                r = set_stored_array(obj, "removed", c->removed ? c->removed : "[]");
        if (r < 0)
                goto fail;
        *ret_change = obj;
        return 0;

fail:
        json_decref(obj);
        return r;
}

/* A page cursor holds the id of the last change shown, in decimal. */
int dm_api_id_cursor_parse(const char *cursor, int64_t *ret_id)
{
        char key[DM_API_CURSOR_MAX];
        int64_t id = 0;

        if (dm_http_cursor_decode(cursor, key, sizeof(key)) < 0 || key[0] == '\0' ||
            strlen(key) > 18)
                return DM_EINVAL;
        for (const char *p = key; *p; p++) {
                if (*p < '0' || *p > '9')
                        return DM_EINVAL;
                id = id * 10 + (*p - '0');
        }
        if (id <= 0)
                return DM_EINVAL;
        *ret_id = id;
        return 0;
}

json_t *dm_api_id_cursor_json(int64_t last_id)
{
        char key[24], cursor[DM_API_CURSOR_MAX];
        snprintf(key, sizeof(key), "%lld", (long long)last_id);
        if (dm_http_cursor_encode(key, cursor, sizeof(cursor)) < 0)
                return NULL;
        return json_string(cursor);
}

static int time_param(struct dm_http_request *req, struct dm_http_response *res, const char *name,
                      int64_t *ret_ms)
{
        const char *v = dm_http_query(req, name);

        *ret_ms = 0;
        if (!v)
                return 0;
        if (dm_time_parse(v, ret_ms) < 0) {
                dm_http_problem_field(res, 400, &dm_problem_invalid_parameter, name,
                                      "must be an RFC 3339 time such as 2026-11-25T23:55:24Z");
                return DM_EINVAL;
        }
        return 0;
}

/* Reads ?type=&since=&until=&limit=&cursor=&initial=&serial_only= (and, where `params`
 * allows it, &domain=) into *q; the domain of a history route is left to the caller.
 * On a bad parameter the 400 problem is made and DM_EINVAL returned. *ret_empty is set when
 * the range can hold nothing (an `until` at or before 1970), which the store cannot be asked:
 * 0 means "open" there. */
static int change_query_parse(struct dm_http_request *req, struct dm_http_response *res,
                              const char *const *params, struct dm_change_query *q,
                              struct dm_name *domain, bool *ret_empty)
{
        const char *v;
        int64_t limit = 0;
        bool initial = true, serial_only = true;
        int r;

        *ret_empty = false;
        r = dm_http_query_check(req, params, res);
        if (r < 0)
                return r;
        v = dm_http_query(req, "domain");
        if (v) {
                char why[160];
                if (dm_name_parse(v, strlen(v), why, sizeof(why), domain) < 0) {
                        dm_http_problem_field(res, 400, &dm_problem_invalid_parameter, "domain",
                                              why);
                        return DM_EINVAL;
                }
                q->domain = domain->ascii;
        }
        /* initial=false leaves out first observations; serial_only=false leaves out SOA
         * changes in the serial alone. */
        if (dm_http_query_bool(req, "initial", true, res, &initial) < 0 ||
            dm_http_query_bool(req, "serial_only", true, res, &serial_only) < 0)
                return DM_EINVAL;
        q->hide_first = !initial;
        q->hide_serial_only = !serial_only;
        v = dm_http_query(req, "type");
        if (v && dm_rrtype_from_name(v, &q->type) < 0) {
                dm_http_problem_field(res, 400, &dm_problem_invalid_parameter, "type",
                                      "must be a record type such as A, MX or TYPE65");
                return DM_EINVAL;
        }
        r = time_param(req, res, "since", &q->since);
        if (r < 0)
                return r;
        r = time_param(req, res, "until", &q->until);
        if (r < 0)
                return r;
        if (dm_http_query(req, "until") && q->until <= 0)
                *ret_empty = true;
        if (q->since < 0)
                q->since = 0;
        r = dm_http_query_int(req, "limit", 1, DM_API_LIST_MAX, DM_API_LIST_DEFAULT, true, res,
                              &limit);
        if (r < 0)
                return r;
        q->limit = (size_t)limit;
        v = dm_http_query(req, "cursor");
        if (v && dm_api_id_cursor_parse(v, &q->before_id) < 0) {
                dm_http_problem_field(res, 400, &dm_problem_invalid_parameter, "cursor",
                                      "is not a cursor this API returned");
                return DM_EINVAL;
        }
        return 0;
}

/* Answers one page of changes: asks the store for one more than the page holds, and at most
 * about DM_API_PAGE_BYTES of sets, so that a page of large sets stays a few MiB and
 * next_cursor is given only when there really is a next page. */
static void respond_changes(struct dm_http_request *req, struct dm_http_response *res,
                            struct dm_change_query *q, bool empty)
{
        struct dm_app *app = req->app;
        struct dm_change *changes = NULL;
        size_t n = 0, page = q->limit, shown = 0;
        bool more = false;
        json_t *doc = NULL, *list = NULL;
        int r;

        if (!empty) {
                q->limit = page + 1;
                q->max_bytes = DM_API_PAGE_BYTES;
                r = dm_store_change_list(app->store, q, &changes, &n);
                if (r < 0) {
                        dm_api_store_error(res, r, "change list");
                        return;
                }
        }
        shown = dm_changes_page(changes, n, page, DM_API_PAGE_BYTES, &more);
        list = json_array();
        if (!list)
                goto enomem;
        for (size_t i = 0; i < shown; i++) {
                json_t *c = NULL;
                r = change_json(&changes[i], &c);
                if (r < 0) {
                        dm_api_store_error(res, r, "change list");
                        goto out;
                }
                if (json_array_append_new(list, c) != 0)
                        goto enomem;
        }
        json_t *next =
            more && shown > 0 ? dm_api_id_cursor_json(changes[shown - 1].id) : json_null();
        if (!next)
                goto enomem;
        /* json_pack takes both references, also when it fails (then doc is NULL: a 500). */
        doc = json_pack("{s:o, s:o}", "changes", list, "next_cursor", next);
        list = NULL;
        dm_http_respond_json(res, 200, doc);
        goto out;

enomem:
        dm_api_store_error(res, DM_ENOMEM, "change list");
out:
        json_decref(list);
        dm_changes_free(changes, n);
}

static void records_build(struct dm_http_request *req, struct dm_http_response *res, void *arg)
{
        struct dm_app *app = req->app;
        const struct dm_domain *dp = arg;
        const struct dm_domain d = *dp;
        struct dm_rrset_row *rows = NULL;
        size_t n = 0;
        json_t *list = NULL, *doc = NULL;
        int r;

        r = dm_store_dns_current(app->store, d.id, &rows, &n);
        if (r < 0) {
                dm_api_store_error(res, r, "dns current");
                return;
        }
        list = json_array();
        if (!list)
                goto enomem;
        for (size_t i = 0; i < n; i++) {
                json_t *rec = NULL;
                r = record_json(&rows[i], d.last_checked_at, &rec);
                if (r < 0) {
                        dm_api_store_error(res, r, "dns current");
                        goto out;
                }
                if (json_array_append_new(list, rec) != 0)
                        goto enomem;
        }
        doc = json_pack("{s:s, s:o, s:o}", "domain", d.name, "checked_at",
                        dm_api_time_json(d.last_checked_at), "records", list);
        list = NULL;
        dm_http_respond_json(res, 200, doc);
        goto out;

enomem:
        dm_api_store_error(res, DM_ENOMEM, "dns current");
out:
        json_decref(list);
        dm_rrset_rows_free(rows, n);
}

/* GET /api/v1/domains/{name}/records */
static void records_get(struct dm_http_request *req, struct dm_http_response *res)
{
        static const char *const no_params[] = {NULL};
        struct dm_domain d;

        if (dm_http_query_check(req, no_params, res) < 0 || dm_api_domain_lookup(req, res, &d) < 0)
                return;
        dm_api_cached(req, res, &d, "records", records_build, &d);
}

static void history_build(struct dm_http_request *req, struct dm_http_response *res, void *arg)
{
        const struct dm_domain *d = arg;
        struct dm_change_query q = {0};
        struct dm_name unused;
        bool empty = false;

        if (change_query_parse(req, res, dm_api_history_params, &q, &unused, &empty) < 0)
                return;
        /* By name: what was recorded before a delete shows under the name added again. */
        q.domain = d->name;
        respond_changes(req, res, &q, empty);
}

/* GET /api/v1/domains/{name}/history: the first page with no parameters is the one every
 * dashboard asks for, and is cached; other pages are read from the store. */
static void history_get(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_domain d;

        if (dm_api_domain_lookup(req, res, &d) < 0)
                return;
        if (dm_http_query_count(req) == 0)
                dm_api_cached(req, res, &d, "history", history_build, &d);
        else
                history_build(req, res, &d);
}

/* GET /api/v1/changes */
static void changes_get(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_change_query q = {0};
        struct dm_name domain;
        bool empty = false;

        if (change_query_parse(req, res, dm_api_change_params, &q, &domain, &empty) < 0)
                return;
        respond_changes(req, res, &q, empty);
}

/* POST /api/v1/domains/{name}/scan: the domain becomes due now; the scheduler takes it on
 * its next round. A body, if any, is ignored. */
static void scan_post(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_app *app = req->app;
        struct dm_domain d;
        int r;

        if (dm_api_domain_lookup(req, res, &d) < 0)
                return;
        r = dm_store_domain_request_scan(app->store, d.name, dm_now_ms());
        dm_api_cache_forget(app, d.name); /* next_check_at moved */
        if (r < 0) {
                dm_api_store_error(res, r, "request scan");
                return;
        }
        dm_api_log_write(req, "scan requested", "domain=%s", d.name);
        dm_http_respond_json(res, 202, json_pack("{s:s}", "status", "queued"));
}

const struct dm_http_route dm_api_dns_routes[] = {
    {DM_HTTP_GET, "/api/v1/domains/{name}/records", records_get, DM_SCOPE_READ, 0},
    {DM_HTTP_GET, "/api/v1/domains/{name}/history", history_get, DM_SCOPE_READ, 0},
    {DM_HTTP_GET, "/api/v1/changes", changes_get, DM_SCOPE_READ, 0},
    {DM_HTTP_POST, "/api/v1/domains/{name}/scan", scan_post, DM_SCOPE_WRITE,
     DM_HTTP_ROUTE_EXPENSIVE},
    {0},
};
