/* The REST API of the domain service: route tables (one per file, assembled by
 * domain_service.c) and the pieces every API file shares, so that a domain, a time or a
 * store failure reads the same in every response.
 *
 * Handlers run on the HTTP server's threads; req->app is the struct dm_app. */
#ifndef DM_API_H
#define DM_API_H

#include <stdint.h>

#include <jansson.h>

#include "app.h"
#include "dm/http.h"
#include "dm/json.h"

#define DM_API_IMPORT_MAX 10000 /* names per POST /api/v1/domains/import */
#define DM_API_LIST_DEFAULT 100 /* page size when ?limit= is absent */
#define DM_API_LIST_MAX 1000    /* larger ?limit= values are clamped to this */
/* Bytes of record sets one page of history carries at most (plus one entry): a set may
 * hold up to DM_RRSET_JSON_MAX, so 1,000 large entries would make a body of GiB. */
#define DM_API_PAGE_BYTES (4u << 20)

/* /healthz, /readyz, /openapi.json: no key needed. */
extern const struct dm_http_route dm_api_meta_routes[];
/* /healthz and /readyz alone: what a service without the API serves (dm_probe_service). */
extern const struct dm_http_route dm_api_probe_routes[];
/* /api/v1/domains... */
extern const struct dm_http_route dm_api_domain_routes[];
/* /api/v1/domains/{name}/records|history|scan, /api/v1/changes */
extern const struct dm_http_route dm_api_dns_routes[];
/* /api/v1/domains/{name}/tls and /tls/history */
extern const struct dm_http_route dm_api_tls_routes[];
/* /api/v1/domains/{name}/registration and .../registration/history */
extern const struct dm_http_route dm_api_registration_routes[];
/* /api/v1/events: the live stream; needs app->events */
extern const struct dm_http_route dm_api_event_routes[];
/* /api/v1/session: web UI sign-in and sign-out; needs app->session_secret */
extern const struct dm_http_route dm_api_session_routes[];
/* The web UI's pages (/, /domains/{name}, /alerts) and assets (/ui/{file}); ui.c */
extern const struct dm_http_route dm_ui_routes[];

/* The cookie check of the HTTP server (dm_http_session_auth_fn); `arg` is the dm_app. */
int dm_api_session_auth(void *arg, const struct dm_http_request *req,
                        struct dm_http_principal *ret);
/* /api/v1/alerts... */
extern const struct dm_http_route dm_api_alert_routes[];

/* Problem types of the domain API. */
extern const struct dm_http_problem_type dm_problem_domain_exists;
extern const struct dm_http_problem_type dm_problem_too_many_names;

/* The one rendering of a domain: name, unicode_name, enabled, effective interval (seconds)
 * and record_types (defaults filled in from `conf`), times in RFC 3339 or null, status and
 * status_error. Returns a new object, or NULL on ENOMEM. */
json_t *dm_api_domain_json(const struct dm_domain *d, const struct dm_conf *conf);

/* RFC 3339 string for unix ms, or JSON null for 0 ("never"). NULL on ENOMEM. */
json_t *dm_api_time_json(int64_t unix_ms);

/* Finds the domain named by the {name} capture (Unicode or A-label, percent-decoded).
 * Returns 0 and fills *ret_domain; otherwise the response is already made (400 invalid
 * name, 404 absent, 503 store) and the error is returned. */
int dm_api_domain_lookup(struct dm_http_request *req, struct dm_http_response *res,
                         struct dm_domain *ret_domain);

/* Builds the answer of a cacheable read into `res` (any status; only a 200 is cached). */
typedef void (*dm_api_build_fn)(struct dm_http_request *req, struct dm_http_response *res,
                                void *arg);
/* Answers a read about domain `d` (just read from the store) that the cache may hold as
 * `kind`: from the cache when it holds an answer built from this same state of the domain
 * row (its update, check and change times), else by `build`, whose 200 is then cached. A
 * 200 carries an ETag, and a request whose If-None-Match matches it gets 304 with no body.
 * With no cache: build and ETag. */
void dm_api_cached(struct dm_http_request *req, struct dm_http_response *res,
                   const struct dm_domain *d, const char *kind, dm_api_build_fn build, void *arg);
/* Forgets every cached answer about `name` (after a write to it). */
void dm_api_cache_forget(struct dm_app *app, const char *name);

/* Parses the body as a JSON object with only `fields`. Returns 0 and *ret_obj (new
 * reference); otherwise a 400 problem naming the field is made and an error returned. */
int dm_api_read_body(struct dm_http_request *req, struct dm_http_response *res,
                     const struct dm_json_field *fields, json_t **ret_obj);

/* Logs a write made through the API at info level: `msg`, then the fields `fmt` gives
 * (logfmt, values from outside through dm_log_quote), then who made it: key_id (the key's
 * store id) and key_name. */
void dm_api_log_write(const struct dm_http_request *req, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The history cursors: the id of the last entry shown. parse returns 0 or DM_EINVAL (not a
 * cursor this API made). */
int dm_api_id_cursor_parse(const char *cursor, int64_t *ret_id);
/* The next_cursor of a page whose last entry has this id: a JSON string, NULL when out of
 * memory. */
json_t *dm_api_id_cursor_json(int64_t last_id);

/* Answers a store failure: 404 for DM_ENOENT, 409 for DM_EEXIST, 503 otherwise (logged
 * once here with `what`). Returns `err`. */
int dm_api_store_error(struct dm_http_response *res, int err, const char *what);

#endif
