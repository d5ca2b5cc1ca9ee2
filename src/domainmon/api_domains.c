/* REST API v1: domains. Every request is validated completely before the store is touched,
 * so a rejected request changes nothing. Names are normalized with dm_name_parse wherever
 * they come in (body, path, cursor), so "bücher.example" and "xn--bcher-kva.example" are
 * the same domain everywhere. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "dm/check.h"
#include "dm/domain_input.h"
#include "dm/error.h"
#include "dm/log.h"
#include "dm/name.h"
#include "dm/rrtype.h"
#include "dm/time.h"

const struct dm_http_problem_type dm_problem_domain_exists = {"domain-exists",
                                                              "Domain already exists"};
const struct dm_http_problem_type dm_problem_too_many_names = {"too-many-names", "Too many names"};
static const struct dm_http_problem_type problem_invalid_name = {"invalid-name",
                                                                 "Invalid domain name"};
static const struct dm_http_problem_type problem_internal = {"internal", "Internal server error"};

/* ---- shared pieces ---- */

json_t *dm_api_time_json(int64_t unix_ms)
{
        char buf[DM_RFC3339_LEN];

        if (unix_ms == 0)
                return json_null();
        return json_string(dm_time_format(unix_ms, buf));
}

json_t *dm_api_domain_json(const struct dm_domain *d, const struct dm_conf *conf)
{
        const uint16_t *types = d->nrecord_types ? d->record_types : dm_rrtype_defaults;
        size_t ntypes = d->nrecord_types ? d->nrecord_types : dm_rrtype_ndefaults;
        int64_t interval_ms = d->interval_ms ? d->interval_ms : conf->scan_interval_ms;
        char tbuf[16];

        json_t *list = json_array();
        if (!list)
                return NULL;
        for (size_t i = 0; i < ntypes; i++) {
                if (json_array_append_new(list, json_string(dm_rrtype_name(types[i], tbuf))) < 0) {
                        json_decref(list);
                        return NULL;
                }
        }
        unsigned checks = d->checks ? d->checks : (unsigned)conf->default_checks;
        json_t *clist = json_array(), *plist = json_array();
        for (unsigned bit = 1; clist && bit <= DM_CHECKS_ALL; bit <<= 1) {
                if ((checks & bit) && json_array_append_new(clist, json_string(dm_check_name(bit))))
                        goto nomem;
        }
        for (size_t i = 0; plist && i < (d->ntls_ports ? d->ntls_ports : 1); i++) {
                json_int_t port = d->ntls_ports ? d->tls_ports[i] : DM_TLS_PORT_DEFAULT;
                if (json_array_append_new(plist, json_integer(port)) < 0)
                        goto nomem;
        }
        if (!clist || !plist)
                goto nomem;
        json_t *err = d->status == DM_CHECK_ERROR && d->status_error[0]
                          ? dm_json_string_lossy(d->status_error)
                          : json_null();
        /* "o" steals each reference, also on failure. */
        json_t *o = json_pack(
            "{s:s, s:o, s:b, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:o, "
            "s:o}",
            "name", d->name, "unicode_name", dm_json_string_lossy(d->unicode_name), "enabled",
            d->enabled, "interval", (json_int_t)(interval_ms / 1000), "record_types", list,
            "checks", clist, "tls_ports", plist, "created_at", dm_api_time_json(d->created_at),
            "updated_at", dm_api_time_json(d->updated_at), "last_checked_at",
            dm_api_time_json(d->last_checked_at), "next_check_at",
            dm_api_time_json(d->next_check_at), "last_changed_at",
            dm_api_time_json(d->last_changed_at), "status", dm_check_status_name(d->status),
            "status_error", err, "tls_expires_at", dm_api_time_json(d->tls_expires_at));
        if (o && json_object_set_new(o, "registration_expires_at",
                                     dm_api_time_json(d->registration_expires_at))) {
                json_decref(o);
                return NULL;
        }
        return o;
nomem:
        json_decref(list);
        json_decref(clist);
        json_decref(plist);
        return NULL;
}

int dm_api_store_error(struct dm_http_response *res, int err, const char *what)
{
        switch (err) {
        case DM_ENOENT:
                dm_http_problem(res, 404, &dm_problem_not_found, "%s: not found", what);
                break;
        case DM_EEXIST:
                dm_http_problem(res, 409, &dm_problem_domain_exists, "%s: already exists", what);
                break;
        case DM_ENOMEM:
                dm_log_error("api", "msg=\"out of memory\" op=\"%s\"", what);
                dm_http_problem(res, 500, &problem_internal, "out of memory");
                break;
        default:
                dm_log_error("api", "msg=\"store failed\" op=\"%s\" err=\"%s\"", what,
                             dm_strerror(err));
                dm_http_problem(res, 503, &dm_problem_unavailable,
                                "the database is not available; try again later");
                break;
        }
        return err;
}

int dm_api_read_body(struct dm_http_request *req, struct dm_http_response *res,
                     const struct dm_json_field *fields, json_t **ret_obj)
{
        struct dm_json_error jerr;
        json_t *obj = NULL;

        int ret = dm_json_parse_object(req->body, req->body_len, &jerr, &obj);
        if (ret == DM_ENOMEM)
                return dm_api_store_error(res, ret, "read body");
        if (ret == DM_EPARSE) {
                dm_http_problem(res, 400, &dm_problem_invalid_json, "%s", jerr.detail);
                return ret;
        }
        if (ret < 0) {
                dm_http_problem(res, 400, &dm_problem_invalid_body, "%s", jerr.detail);
                return ret;
        }
        ret = dm_json_check_fields(obj, fields, &jerr);
        if (ret < 0) {
                json_decref(obj);
                dm_http_problem_field(res, 400, &dm_problem_invalid_body, jerr.field, jerr.detail);
                return ret;
        }
        *ret_obj = obj;
        return 0;
}

void dm_api_log_write(const struct dm_http_request *req, const char *msg, const char *fmt, ...)
{
        char fields[1024], qmsg[128], qname[300];
        va_list ap;

        va_start(ap, fmt);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        vsnprintf(fields, sizeof(fields), fmt, ap);
#pragma GCC diagnostic pop
        va_end(ap);
        dm_log_info("api", "msg=%s %s%skey_id=%lld key_name=%s",
                    dm_log_quote(qmsg, sizeof(qmsg), msg), fields, fields[0] ? " " : "",
                    (long long)req->principal.key_id,
                    dm_log_quote(qname, sizeof(qname), req->principal.key_name));
}

/* Normalizes `len` bytes of a name from outside. On failure makes a 400 naming `field`. */
static int parse_name(struct dm_http_response *res, const char *field, const char *s, size_t len,
                      struct dm_name *ret_name)
{
        char why[160];

        if (dm_name_parse(s, len, why, sizeof(why), ret_name) < 0) {
                dm_http_problem_field(res, 400, &problem_invalid_name, field, why);
                return DM_EBADNAME;
        }
        return 0;
}

int dm_api_domain_lookup(struct dm_http_request *req, struct dm_http_response *res,
                         struct dm_domain *ret_domain)
{
        const char *raw = dm_http_param(req, "name");
        struct dm_name name;
        int ret;

        if (!raw) {
                dm_http_problem(res, 500, &problem_internal, "route has no {name}");
                return DM_EINVAL;
        }
        ret = parse_name(res, "name", raw, strlen(raw), &name);
        if (ret < 0)
                return ret;
        ret = dm_store_domain_get(((struct dm_app *)req->app)->store, name.ascii, ret_domain);
        if (ret == DM_ENOENT) {
                dm_http_problem(res, 404, &dm_problem_not_found, "no domain named %s", name.ascii);
                return ret;
        }
        if (ret < 0)
                return dm_api_store_error(res, ret, "get domain");
        return 0;
}

/* ---- refusals of a body's fields, all in one answer ---- */

/* Answers the collected refusals as one problem; returns true when there were any. */
static bool field_errors_respond(const struct dm_field_errors *fe, struct dm_http_response *res)
{
        char detail[400];

        if (fe->n == 0)
                return false;
        const struct dm_field_error *first = &fe->e[0];
        if (fe->n == 1)
                snprintf(detail, sizeof(detail), "%s: %s", first->field, first->msg);
        else
                snprintf(detail, sizeof(detail), "%s: %s (and %zu more)", first->field, first->msg,
                         fe->n - 1);
        json_t *problem = dm_http_problem_new(400, &dm_problem_invalid_body, NULL);
        size_t kept = fe->n < DM_FIELD_ERRORS_MAX ? fe->n : DM_FIELD_ERRORS_MAX;
        for (size_t i = 0; problem && i < kept; i++)
                dm_http_problem_add_error(problem, fe->e[i].field, fe->e[i].msg);
        if (problem) {
                json_t *d = dm_json_string_lossy(detail);
                if (!d || json_object_set_new(problem, "detail", d) < 0) {
                        json_decref(problem);
                        problem = NULL;
                }
        }
        dm_http_respond_problem_json(res, problem);
        return true;
}

/* ---- events (written by the store in the transaction of the write) ---- */

/* domain.added: {"id": ..., then the domain as GET /api/v1/domains/{name} shows it}. */
static char *domain_added_body(const struct dm_domain *d, int64_t at, void *arg)
{
        const struct dm_conf *conf = arg;
        (void)at;
        json_t *body = json_pack("{s:I}", "id", (json_int_t)d->id);
        json_t *dom = dm_api_domain_json(d, conf);
        char *s = NULL;
        if (body && dom && json_object_update(body, dom) == 0)
                s = dm_json_dump(body, NULL);
        json_decref(dom);
        json_decref(body);
        return s;
}

/* domain.removed: {"id", "domain", "removed_at"}. */
static char *domain_removed_body(const struct dm_domain *d, int64_t at, void *arg)
{
        (void)arg;
        json_t *body = json_pack("{s:I, s:s, s:o}", "id", (json_int_t)d->id, "domain", d->name,
                                 "removed_at", dm_api_time_json(at));
        char *s = body ? dm_json_dump(body, NULL) : NULL;
        json_decref(body);
        return s;
}

/* ---- handlers ---- */

/* Routes that take no query parameters refuse any, as bodies refuse unknown fields. */
static const char *const no_params[] = {NULL};

static void respond_domain(struct dm_http_response *res, unsigned status, const struct dm_domain *d,
                           const struct dm_conf *conf)
{
        dm_http_respond_json(res, status, dm_api_domain_json(d, conf));
}

static const struct dm_json_field create_fields[] = {
    {"name", DM_JSON_STRING, DM_JSON_REQUIRED},
    {"interval", DM_JSON_DURATION, DM_JSON_NULLABLE},
    {"record_types", DM_JSON_ARRAY, DM_JSON_NULLABLE},
    {"checks", DM_JSON_ARRAY, DM_JSON_NULLABLE},
    {"tls_ports", DM_JSON_ARRAY, DM_JSON_NULLABLE},
    {"enabled", DM_JSON_BOOL, 0},
    {0},
};

static void domain_create(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_app *app = req->app;
        struct dm_field_errors fe = {0};
        struct dm_domain *d = NULL;
        json_t *obj = NULL;
        int ret;

        if (dm_http_query_check(req, no_params, res) < 0 ||
            dm_api_read_body(req, res, create_fields, &obj) < 0)
                return;
        d = calloc(1, sizeof(*d));
        if (!d) {
                dm_api_store_error(res, DM_ENOMEM, "create domain");
                goto out;
        }
        d->enabled = true;
        dm_domain_input_name(json_object_get(obj, "name"), &fe, d);
        dm_domain_input_settings(obj, app->conf.min_interval_ms, &fe, d);
        if (field_errors_respond(&fe, res))
                goto out;

        ret = dm_store_domain_insert(app->store, d, domain_added_body, &app->conf);
        if (ret == DM_EEXIST) {
                dm_http_problem(res, 409, &dm_problem_domain_exists, "%s is already monitored",
                                d->name);
                goto out;
        }
        if (ret < 0) {
                dm_api_store_error(res, ret, "insert domain");
                goto out;
        }
        dm_outbox_relay_kick(app->relay);
        dm_api_log_write(req, "domain added", "domain=%s", d->name);
        respond_domain(res, 201, d, &app->conf);
        if (res->status == 201) {
                char location[sizeof("/api/v1/domains/") + DM_NAME_MAX];
                snprintf(location, sizeof(location), "/api/v1/domains/%s", d->name);
                dm_http_response_header(res, "Location", location);
        }
out:
        free(d);
        json_decref(obj);
}

/* interval, record_types, checks, tls_ports and enabled, when given, apply to every name of
 * the import. */
static const struct dm_json_field import_fields[] = {
    {"names", DM_JSON_ARRAY, DM_JSON_REQUIRED},
    {"interval", DM_JSON_DURATION, DM_JSON_NULLABLE},
    {"record_types", DM_JSON_ARRAY, DM_JSON_NULLABLE},
    {"checks", DM_JSON_ARRAY, DM_JSON_NULLABLE},
    {"tls_ports", DM_JSON_ARRAY, DM_JSON_NULLABLE},
    {"enabled", DM_JSON_BOOL, 0},
    {0},
};

static void domain_import(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_app *app = req->app;
        struct dm_field_errors fe = {0};
        struct dm_domain *ds = NULL, *tmpl = NULL;
        int *results = NULL, *slot = NULL;
        char **why = NULL;
        json_t *obj = NULL, *names, *item, *out_list = NULL;
        size_t n, nvalid = 0, added = 0, exists = 0, invalid = 0, i;
        int ret;

        if (dm_http_query_check(req, no_params, res) < 0 ||
            dm_api_read_body(req, res, import_fields, &obj) < 0)
                return;
        names = json_object_get(obj, "names");
        n = json_array_size(names);
        if (n == 0) {
                dm_http_problem_field(res, 400, &dm_problem_invalid_body, "names",
                                      "must hold at least one name");
                goto out;
        }
        if (n > DM_API_IMPORT_MAX) {
                dm_http_problem(res, 413, &dm_problem_too_many_names,
                                "names: at most %d names per import, got %zu; split the list",
                                DM_API_IMPORT_MAX, n);
                goto out;
        }
        json_array_foreach(names, i, item)
        {
                if (!json_is_string(item)) {
                        char field[48], msg[64];
                        snprintf(field, sizeof(field), "names[%zu]", i);
                        snprintf(msg, sizeof(msg), "must be a string, not %s",
                                 dm_json_value_type_name(item));
                        dm_http_problem_field(res, 400, &dm_problem_invalid_body, field, msg);
                        goto out;
                }
        }

        tmpl = calloc(1, sizeof(*tmpl));
        if (!tmpl) {
                dm_api_store_error(res, DM_ENOMEM, "import domains");
                goto out;
        }
        tmpl->enabled = true;
        dm_domain_input_settings(obj, app->conf.min_interval_ms, &fe, tmpl);
        if (field_errors_respond(&fe, res))
                goto out;

        ds = calloc(n, sizeof(*ds));
        results = calloc(n, sizeof(*results));
        slot = calloc(n, sizeof(*slot));
        why = calloc(n, sizeof(*why));
        if (!ds || !results || !slot || !why) {
                dm_api_store_error(res, DM_ENOMEM, "import domains");
                goto out;
        }
        json_array_foreach(names, i, item)
        {
                struct dm_name name;
                char reason[160];

                if (dm_name_parse(json_string_value(item), json_string_length(item), reason,
                                  sizeof(reason), &name) < 0) {
                        slot[i] = -1;
                        why[i] = strdup(reason);
                        if (!why[i]) {
                                dm_api_store_error(res, DM_ENOMEM, "import domains");
                                goto out;
                        }
                        continue;
                }
                struct dm_domain *d = &ds[nvalid];
                *d = *tmpl;
                memcpy(d->name, name.ascii, sizeof(d->name));
                memcpy(d->unicode_name, name.unicode, sizeof(d->unicode_name));
                slot[i] = (int)nvalid++;
        }
        if (nvalid > 0) {
                ret = dm_store_domain_insert_many(app->store, ds, nvalid, domain_added_body,
                                                  &app->conf, results);
                if (ret < 0) {
                        dm_api_store_error(res, ret, "import domains");
                        goto out;
                }
                dm_outbox_relay_kick(app->relay);
        }

        out_list = json_array();
        if (!out_list)
                goto nomem;
        json_array_foreach(names, i, item)
        {
                json_t *r;
                if (slot[i] < 0) {
                        invalid++;
                        r = json_pack("{s:O, s:s, s:o}", "name", item, "status", "invalid",
                                      "detail", dm_json_string_lossy(why[i]));
                } else if (results[slot[i]] == 0) {
                        added++;
                        r = json_pack("{s:O, s:s}", "name", item, "status", "added");
                } else if (results[slot[i]] == DM_EEXIST) {
                        exists++;
                        r = json_pack("{s:O, s:s}", "name", item, "status", "exists");
                } else {
                        invalid++;
                        r = json_pack("{s:O, s:s, s:s}", "name", item, "status", "invalid",
                                      "detail", dm_strerror(results[slot[i]]));
                }
                if (!r || json_array_append_new(out_list, r) < 0)
                        goto nomem;
        }
        dm_api_log_write(req, "domains imported", "added=%zu exists=%zu invalid=%zu", added, exists,
                         invalid);
        dm_http_respond_json(res, 200,
                             json_pack("{s:o, s:I, s:I, s:I}", "results", out_list, "added",
                                       (json_int_t)added, "exists", (json_int_t)exists, "invalid",
                                       (json_int_t)invalid));
        out_list = NULL;
        goto out;
nomem:
        dm_api_store_error(res, DM_ENOMEM, "import domains");
out:
        json_decref(out_list);
        if (why) {
                for (i = 0; i < n; i++)
                        free(why[i]);
        }
        free(why);
        free(slot);
        free(results);
        free(ds);
        free(tmpl);
        json_decref(obj);
}

static const char *const list_params[] = {"limit", "cursor", "q", "status", NULL};

static void domain_list(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_app *app = req->app;
        struct dm_domain_query q = {0};
        struct dm_domain *ds = NULL;
        char after[DM_NAME_MAX + 1];
        json_t *list = NULL, *next = NULL;
        int64_t limit;
        size_t n = 0;
        int ret;

        if (dm_http_query_check(req, list_params, res) < 0)
                return;
        if (dm_http_query_int(req, "limit", 1, DM_API_LIST_MAX, DM_API_LIST_DEFAULT, true, res,
                              &limit) < 0)
                return;
        const char *cursor = dm_http_query(req, "cursor");
        if (cursor && *cursor) {
                struct dm_name name;
                /* The cursor must be one this server could have made: a canonical name. */
                if (dm_http_cursor_decode(cursor, after, sizeof(after)) < 0 ||
                    dm_name_parse(after, strlen(after), NULL, 0, &name) < 0 ||
                    strcmp(name.ascii, after) != 0) {
                        dm_http_problem_field(res, 400, &dm_problem_invalid_parameter, "cursor",
                                              "malformed cursor; use next_cursor from the "
                                              "previous page");
                        return;
                }
                q.after = after;
        }
        const char *text = dm_http_query(req, "q");
        if (text && strlen(text) > DM_NAME_MAX) {
                dm_http_problem_field(res, 400, &dm_problem_invalid_parameter, "q",
                                      "longer than 253 bytes");
                return;
        }
        if (text && *text)
                q.q = text;
        const char *status = dm_http_query(req, "status");
        if (status && dm_check_status_mask_parse(status, &q.statuses) < 0) {
                dm_http_problem_field(res, 400, &dm_problem_invalid_parameter, "status",
                                      "must be ok, error or pending (or several, "
                                      "comma-separated)");
                return;
        }
        /* One more than asked tells whether a next page exists. */
        q.limit = (size_t)limit + 1;
        ds = calloc(q.limit, sizeof(*ds));
        if (!ds) {
                dm_api_store_error(res, DM_ENOMEM, "list domains");
                return;
        }
        ret = dm_store_domain_list(app->store, &q, ds, &n);
        if (ret < 0) {
                dm_api_store_error(res, ret, "list domains");
                goto out;
        }
        list = json_array();
        if (!list)
                goto nomem;
        size_t shown = n > (size_t)limit ? (size_t)limit : n;
        for (size_t i = 0; i < shown; i++) {
                if (json_array_append_new(list, dm_api_domain_json(&ds[i], &app->conf)) < 0)
                        goto nomem;
        }
        if (n > (size_t)limit) {
                char token[(DM_NAME_MAX + 2) / 3 * 4 + 1];
                if (dm_http_cursor_encode(ds[shown - 1].name, token, sizeof(token)) < 0)
                        goto nomem;
                next = json_string(token);
        } else {
                next = json_null();
        }
        dm_http_respond_json(res, 200,
                             json_pack("{s:o, s:o}", "domains", list, "next_cursor", next));
        list = next = NULL;
        goto out;
nomem:
        dm_api_store_error(res, DM_ENOMEM, "list domains");
out:
        json_decref(list);
        json_decref(next);
        free(ds);
}

static void domain_build(struct dm_http_request *req, struct dm_http_response *res, void *arg)
{
        struct dm_app *app = req->app;
        respond_domain(res, 200, arg, &app->conf);
}

static void domain_get(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_domain *d = malloc(sizeof(*d));

        if (!d) {
                dm_api_store_error(res, DM_ENOMEM, "get domain");
                return;
        }
        if (dm_http_query_check(req, no_params, res) == 0 && dm_api_domain_lookup(req, res, d) == 0)
                dm_api_cached(req, res, d, "domain", domain_build, d);
        free(d);
}

static const struct dm_json_field patch_fields[] = {
    {"interval", DM_JSON_DURATION, DM_JSON_NULLABLE},
    {"record_types", DM_JSON_ARRAY, DM_JSON_NULLABLE},
    {"checks", DM_JSON_ARRAY, DM_JSON_NULLABLE},
    {"tls_ports", DM_JSON_ARRAY, DM_JSON_NULLABLE},
    {"enabled", DM_JSON_BOOL, 0},
    {0},
};

static void domain_patch(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_app *app = req->app;
        struct dm_field_errors fe = {0};
        struct dm_domain *d = NULL;
        struct dm_name name;
        json_t *obj = NULL;
        int ret;

        if (dm_http_query_check(req, no_params, res) < 0)
                return;
        const char *raw = dm_http_param(req, "name");
        if (!raw || parse_name(res, "name", raw, strlen(raw), &name) < 0)
                return;
        /* Checked before the field table so that any "name" member, whatever its type,
         * gets the message that says what to do. */
        ret = dm_json_parse_object(req->body, req->body_len, NULL, &obj);
        if (ret == 0 && json_object_get(obj, "name")) {
                dm_http_problem_field(res, 400, &dm_problem_invalid_body, "name",
                                      "cannot be changed; delete the domain and add the new "
                                      "name");
                goto out;
        }
        json_decref(obj);
        obj = NULL;
        if (dm_api_read_body(req, res, patch_fields, &obj) < 0)
                return;
        if (json_object_size(obj) == 0) {
                dm_http_problem(res, 400, &dm_problem_invalid_body,
                                "set at least one of interval, record_types, checks, tls_ports, "
                                "enabled");
                goto out;
        }
        d = calloc(1, sizeof(*d));
        if (!d) {
                dm_api_store_error(res, DM_ENOMEM, "update domain");
                goto out;
        }
        dm_domain_input_settings(obj, app->conf.min_interval_ms, &fe, d);
        if (field_errors_respond(&fe, res))
                goto out;

        ret = dm_store_domain_get(app->store, name.ascii, d);
        if (ret == DM_ENOENT) {
                dm_http_problem(res, 404, &dm_problem_not_found, "no domain named %s", name.ascii);
                goto out;
        }
        if (ret < 0) {
                dm_api_store_error(res, ret, "get domain");
                goto out;
        }
        /* Validated above into a scratch copy; applied now onto the stored state, and only
         * the fields the request names are written. */
        dm_domain_input_settings(obj, app->conf.min_interval_ms, &fe, d);
        unsigned fields = dm_domain_input_fields(obj);
        d->updated_at = dm_now_ms();
        ret = dm_store_domain_update(app->store, d, fields);
        dm_api_cache_forget(app, name.ascii);
        if (ret == 0)
                ret = dm_store_domain_get(app->store, name.ascii, d);
        if (ret == DM_ENOENT) {
                dm_http_problem(res, 404, &dm_problem_not_found, "no domain named %s", name.ascii);
                goto out;
        }
        if (ret < 0) {
                dm_api_store_error(res, ret, "update domain");
                goto out;
        }
        char changed[64];
        dm_api_log_write(req, "domain updated", "domain=%s fields=%s", d->name,
                         dm_domain_fields_names(fields, changed, sizeof(changed)));
        respond_domain(res, 200, d, &app->conf);
out:
        free(d);
        json_decref(obj);
}

static const char *const delete_params[] = {"purge", NULL};

/* DELETE /api/v1/domains/{name}[?purge=true]: the domain stops being monitored; its history
 * stays, readable in /changes and under its name, unless purged. With purge=true, a name
 * that only has history left is purged too. */
static void domain_delete(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_app *app = req->app;
        struct dm_name name;
        bool purge = false;
        int result = 0;

        if (dm_http_query_check(req, delete_params, res) < 0 ||
            dm_http_query_bool(req, "purge", false, res, &purge) < 0)
                return;
        const char *raw = dm_http_param(req, "name");
        if (!raw || parse_name(res, "name", raw, strlen(raw), &name) < 0)
                return;
        const char *names[] = {name.ascii};
        int ret = dm_store_domain_delete_many(app->store, names, 1, purge ? DM_DELETE_PURGE : 0,
                                              domain_removed_body, NULL, &result);
        dm_api_cache_forget(app, name.ascii);
        if (ret == 0 && result == DM_ENOENT) {
                dm_http_problem(res, 404, &dm_problem_not_found, "no domain named %s%s", name.ascii,
                                purge ? " and no history under that name" : "");
                return;
        }
        if (ret < 0) {
                dm_api_store_error(res, ret, "delete domain");
                return;
        }
        dm_outbox_relay_kick(app->relay);
        dm_api_log_write(req, purge ? "domain purged" : "domain deleted", "domain=%s", name.ascii);
        dm_http_respond_empty(res, 204);
}

static const struct dm_json_field bulk_delete_fields[] = {
    {"names", DM_JSON_ARRAY, DM_JSON_REQUIRED},
    {"purge", DM_JSON_BOOL, 0},
    {0},
};

/* POST /api/v1/domains/delete {"names": [...], "purge": false}: every valid name is deleted in
 * one transaction (all or, on a store failure, none); each name is reported: deleted,
 * not_found or invalid. */
static void domain_bulk_delete(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_app *app = req->app;
        json_t *obj = NULL, *names, *item, *out_list = NULL;
        struct dm_name *parsed = NULL;
        const char **valid = NULL;
        int *results = NULL, *slot = NULL;
        size_t n, nvalid = 0, deleted = 0, missing = 0, invalid = 0, i;

        if (dm_http_query_check(req, no_params, res) < 0 ||
            dm_api_read_body(req, res, bulk_delete_fields, &obj) < 0)
                return;
        names = json_object_get(obj, "names");
        bool purge = json_is_true(json_object_get(obj, "purge"));
        n = json_array_size(names);
        if (n == 0) {
                dm_http_problem_field(res, 400, &dm_problem_invalid_body, "names",
                                      "must hold at least one name");
                goto out;
        }
        if (n > DM_API_IMPORT_MAX) {
                dm_http_problem(res, 413, &dm_problem_too_many_names,
                                "names: at most %d names per request, got %zu; split the list",
                                DM_API_IMPORT_MAX, n);
                goto out;
        }
        json_array_foreach(names, i, item)
        {
                if (!json_is_string(item)) {
                        char field[48], msg[64];
                        snprintf(field, sizeof(field), "names[%zu]", i);
                        snprintf(msg, sizeof(msg), "must be a string, not %s",
                                 dm_json_value_type_name(item));
                        dm_http_problem_field(res, 400, &dm_problem_invalid_body, field, msg);
                        goto out;
                }
        }
        parsed = calloc(n, sizeof(*parsed));
        valid = calloc(n, sizeof(*valid));
        results = calloc(n, sizeof(*results));
        slot = calloc(n, sizeof(*slot));
        if (!parsed || !valid || !results || !slot)
                goto nomem;
        json_array_foreach(names, i, item)
        {
                if (dm_name_parse(json_string_value(item), json_string_length(item), NULL, 0,
                                  &parsed[i]) < 0) {
                        slot[i] = -1;
                        continue;
                }
                slot[i] = (int)nvalid;
                valid[nvalid++] = parsed[i].ascii;
        }
        if (nvalid > 0) {
                int ret = dm_store_domain_delete_many(app->store, valid, nvalid,
                                                      purge ? DM_DELETE_PURGE : 0,
                                                      domain_removed_body, NULL, results);
                if (ret < 0) {
                        dm_api_store_error(res, ret, "delete domains");
                        goto out;
                }
                for (size_t k = 0; k < nvalid; k++)
                        dm_api_cache_forget(app, valid[k]);
                dm_outbox_relay_kick(app->relay);
        }
        out_list = json_array();
        if (!out_list)
                goto nomem;
        json_array_foreach(names, i, item)
        {
                json_t *r;
                if (slot[i] < 0) {
                        char why[160];
                        struct dm_name scratch;
                        dm_name_parse(json_string_value(item), json_string_length(item), why,
                                      sizeof(why), &scratch);
                        invalid++;
                        r = json_pack("{s:O, s:s, s:o}", "name", item, "status", "invalid",
                                      "detail", dm_json_string_lossy(why));
                } else if (results[slot[i]] == 0) {
                        deleted++;
                        r = json_pack("{s:O, s:s}", "name", item, "status",
                                      purge ? "purged" : "deleted");
                } else {
                        missing++;
                        r = json_pack("{s:O, s:s}", "name", item, "status", "not_found");
                }
                if (!r || json_array_append_new(out_list, r) < 0)
                        goto nomem;
        }
        dm_api_log_write(req, purge ? "domains purged" : "domains deleted",
                         "deleted=%zu not_found=%zu invalid=%zu", deleted, missing, invalid);
        dm_http_respond_json(res, 200,
                             json_pack("{s:o, s:I, s:I, s:I}", "results", out_list, "deleted",
                                       (json_int_t)deleted, "not_found", (json_int_t)missing,
                                       "invalid", (json_int_t)invalid));
        out_list = NULL;
        goto out;
nomem:
        dm_api_store_error(res, DM_ENOMEM, "delete domains");
out:
        json_decref(out_list);
        free(slot);
        free(results);
        free(valid);
        free(parsed);
        json_decref(obj);
}

const struct dm_http_route dm_api_domain_routes[] = {
    {DM_HTTP_GET, "/api/v1/domains", domain_list, DM_SCOPE_READ, 0},
    {DM_HTTP_POST, "/api/v1/domains", domain_create, DM_SCOPE_WRITE, 0},
    {DM_HTTP_POST, "/api/v1/domains/import", domain_import, DM_SCOPE_WRITE,
     DM_HTTP_ROUTE_EXPENSIVE},
    {DM_HTTP_POST, "/api/v1/domains/delete", domain_bulk_delete, DM_SCOPE_WRITE, 0},
    {DM_HTTP_GET, "/api/v1/domains/{name}", domain_get, DM_SCOPE_READ, 0},
    {DM_HTTP_PATCH, "/api/v1/domains/{name}", domain_patch, DM_SCOPE_WRITE, 0},
    {DM_HTTP_DELETE, "/api/v1/domains/{name}", domain_delete, DM_SCOPE_WRITE, 0},
    {0},
};
