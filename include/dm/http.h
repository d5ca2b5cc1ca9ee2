/* HTTP server layer over libmicrohttpd: a router of method + path patterns, request bodies
 * capped in size, RFC 9457 problem responses, JSON responses and one access-log line per
 * request.
 *
 * Routes come in tables (arrays ended by an entry whose `pattern` is NULL) that each module
 * exports; the program adds every table to one router before starting the server:
 *
 *     static const struct dm_http_route dm_api_example_routes[] = {
 *             {DM_HTTP_GET, "/api/v1/things/{id}", thing_get, DM_SCOPE_READ, 0},
 *             {0},
 *     };
 *     dm_http_router_add(router, dm_api_example_routes);
 *
 * Patterns are absolute paths of literal segments and `{name}` captures; a capture matches
 * exactly one non-empty segment and is percent-decoded before the handler sees it. Literal
 * segments match byte for byte. When several patterns match, the one with a literal at the
 * first segment where they differ wins.
 *
 * Thread-safety: a router is built by one thread before the server starts and is read-only
 * afterwards. Handlers run on the server's threads, several at once; everything a handler
 * reaches through `req->app` must be thread-safe. */
#ifndef DM_HTTP_H
#define DM_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "dm/metrics.h"
#include "dm/ratelimit.h"
#include "dm/store.h"

#define DM_HTTP_PATH_MAX 2048 /* longest request path accepted (414 above) */
#define DM_HTTP_MAX_SEGMENTS 16
#define DM_HTTP_MAX_CAPTURES 8
#define DM_HTTP_MAX_HEADERS 8 /* extra response headers per response */
#define DM_HTTP_PROBLEM_BASE "https://domainmon.dev/problems/"

/* Methods as bits, so a set of them (the Allow header) is a mask. */
enum dm_http_method {
        DM_HTTP_GET = 1u << 0,
        DM_HTTP_HEAD = 1u << 1,
        DM_HTTP_POST = 1u << 2,
        DM_HTTP_PUT = 1u << 3,
        DM_HTTP_PATCH = 1u << 4,
        DM_HTTP_DELETE = 1u << 5,
        DM_HTTP_OPTIONS = 1u << 6,
};

struct dm_http_request;
struct dm_http_response;

/* Fills `res`. A handler that leaves res->status at 0 produces a 500 problem. */
typedef void (*dm_http_handler)(struct dm_http_request *req, struct dm_http_response *res);

/* Route flags. */
#define DM_HTTP_ROUTE_ANY_BODY 1u /* accept any Content-Type (default: JSON only, else 415) */
/* Answered without a key. Only this flag makes a route public: a route whose scope is left
 * at DM_SCOPE_NONE without it needs an admin key (the zero value is the strictest). */
#define DM_HTTP_ROUTE_PUBLIC 2u
/* Costly for the service (import, scan now, sign-in): counted against the smaller
 * expensive budget as well as the normal one. */
#define DM_HTTP_ROUTE_EXPENSIVE 4u

struct dm_http_route {
        unsigned method;     /* exactly one DM_HTTP_* bit; GET routes also answer HEAD */
        const char *pattern; /* "/api/v1/domains/{name}"; NULL ends a table */
        dm_http_handler handler;
        enum dm_scope scope; /* least key scope needed; DM_SCOPE_NONE: admin, unless PUBLIC */
        unsigned flags;      /* DM_HTTP_ROUTE_* */
};

/* Who made the request, as established by the server's auth callback. */
struct dm_http_principal {
        enum dm_scope scope; /* DM_SCOPE_NONE on routes that need no key */
        int64_t key_id;      /* store id of the key; 0 when none */
        char key_name[128];
};

/* Checks an Authorization header value (NULL when absent). Returns 0 and fills *ret,
 * DM_EACCES (answered 401 with WWW-Authenticate: Bearer), or another error (answered 503).
 * Called on the server's threads. */
typedef int (*dm_http_auth_fn)(void *arg, const char *authorization, struct dm_http_principal *ret);

/* Checks a request to a route with a scope that carries no Authorization header (a web UI
 * session's cookie). Returns 0 and fills *ret, DM_EACCES (answered 401 as a missing key),
 * DM_EPERM (answered 403: a write sent from another site's page), or another error (503).
 * Called on the server's threads, with the request's headers readable (dm_http_header). */
struct dm_http_request;
typedef int (*dm_http_session_auth_fn)(void *arg, const struct dm_http_request *req,
                                       struct dm_http_principal *ret);

/* The detail of a 401 for this Authorization value (NULL: absent): no header, a header
 * without the "Bearer " scheme, or a key that is not valid. A static string. */
const char *dm_http_auth_problem(const char *authorization);

struct dm_http_capture {
        const char *name;  /* from the pattern */
        const char *value; /* percent-decoded, NUL-terminated */
        size_t len;        /* bytes of value */
};

/* The result of routing one path. */
struct dm_http_match {
        const struct dm_http_route *route; /* NULL: no route for this method */
        unsigned allow; /* methods the path accepts; 0 with route NULL means 404 */
        size_t ncaptures;
        struct dm_http_capture captures[DM_HTTP_MAX_CAPTURES];
        char buf[DM_HTTP_PATH_MAX + 1]; /* holds the decoded capture values */
};

struct MHD_Connection;
struct MHD_Response;

/* What a handler sees. Everything is owned by the server and valid during the call. */
struct dm_http_request {
        unsigned method;         /* one DM_HTTP_* bit; 0 for a method not listed there */
        const char *method_name; /* as sent */
        const char *path;        /* as sent, without the query string, not decoded */
        const char *body;        /* NUL-terminated; "" when there is none */
        size_t body_len;
        struct dm_http_principal principal;
        struct dm_http_match match;
        void *app; /* dm_http_server_opts.app */
        struct MHD_Connection *conn;
};

struct dm_http_header {
        char *name;  /* owned */
        char *value; /* owned */
};

/* What a handler fills, through the dm_http_respond* functions below. */
struct dm_http_response {
        unsigned status;
        const char *content_type; /* static string; NULL: no body */
        char *body;               /* owned; NULL with body_len 0 for an empty body */
        size_t body_len;
        struct dm_http_header headers[DM_HTTP_MAX_HEADERS];
        size_t nheaders;
        /* Escape hatch for streamed responses: when set, it is queued as is (the server
         * takes the reference) with `status`, and body/content_type are ignored. */
        struct MHD_Response *mhd;
};

/* ---- router ---- */

struct dm_http_router;

int dm_http_router_new(struct dm_http_router **ret_router);
/* NULL-safe. The route tables added must outlive the router. */
void dm_http_router_free(struct dm_http_router *r);
/* Adds every route of `table` (ended by an entry whose pattern is NULL). Returns 0,
 * DM_EINVAL for a malformed pattern, a route without exactly one method bit or handler, or
 * a method+pattern already present (nothing of the table is added then), DM_E2BIG over
 * DM_HTTP_MAX_SEGMENTS or DM_HTTP_MAX_CAPTURES, DM_ENOMEM. */
int dm_http_router_add(struct dm_http_router *r, const struct dm_http_route *table);
/* Routes `method` (one DM_HTTP_* bit, or 0) on `path` (raw, no query string). Returns 0
 * and fills *ret_match: route set on a match; route NULL with allow != 0 means 405; both
 * empty means 404. Returns DM_EINVAL when the chosen route's captures are not valid
 * percent-encoding (a %00 included); *ret_match is then left untouched. */
int dm_http_router_match(const struct dm_http_router *r, unsigned method, const char *path,
                         struct dm_http_match *ret_match);

/* "GET" -> DM_HTTP_GET; 0 for anything else. */
unsigned dm_http_method_parse(const char *name);
/* "GET, HEAD, POST" for a mask, in a fixed order, into buf. Returns buf. */
const char *dm_http_allow_format(unsigned methods, char *buf, size_t size);

/* Percent-decodes `in` (`len` bytes) into `out` (NUL-terminated). Returns the decoded
 * length, or -1 for a malformed escape, a decoded NUL, or an `out` too small. */
long dm_http_pct_decode(const char *in, size_t len, char *out, size_t size);

/* ---- request helpers ---- */

/* The decoded value of capture `name`, or NULL. */
const char *dm_http_param(const struct dm_http_request *req, const char *name);
/* First value of query parameter `name`, decoded; NULL when absent. A parameter given
 * without '=' reads as "". */
const char *dm_http_query(const struct dm_http_request *req, const char *name);
/* How many query parameters the request has. */
size_t dm_http_query_count(const struct dm_http_request *req);
/* A request header, or NULL. */
const char *dm_http_header(const struct dm_http_request *req, const char *name);
/* Fails with a 400 problem in `res` when the query string holds a parameter not in
 * `allowed` (NULL-terminated) or any parameter twice. Returns 0 or DM_EINVAL. */
int dm_http_query_check(const struct dm_http_request *req, const char *const *allowed,
                        struct dm_http_response *res);
/* Reads integer query parameter `name` in [min, max]: absent -> `def`; above max ->
 * clamped to max when `clamp`, else an error. On error fills a 400 problem naming the
 * parameter in `res` and returns DM_EINVAL. */
int dm_http_query_int(const struct dm_http_request *req, const char *name, int64_t min, int64_t max,
                      int64_t def, bool clamp, struct dm_http_response *res, int64_t *ret_value);

/* "true" or "false", exactly. Returns 0 or DM_EINVAL. */
int dm_http_bool_parse(const char *s, bool *ret_value);
/* Reads boolean query parameter `name` (dm_http_bool_parse): absent -> `def`. On error fills
 * a 400 problem naming the parameter in `res` and returns DM_EINVAL. */
int dm_http_query_bool(const struct dm_http_request *req, const char *name, bool def,
                       struct dm_http_response *res, bool *ret_value);

/* ---- responses ---- */

/* Frees what the response owns (an unqueued `mhd` response included) and resets it.
 * NULL-safe. */
void dm_http_response_done(struct dm_http_response *res);
/* Adds a header (both strings copied). Returns 0, DM_E2BIG (DM_HTTP_MAX_HEADERS), or
 * DM_ENOMEM. */
int dm_http_response_header(struct dm_http_response *res, const char *name, const char *value);
/* Replaces any body with `body` (copied) of `len` bytes. Returns 0 or DM_ENOMEM (then
 * res becomes a 500 problem). `content_type` must be a static string. */
int dm_http_respond(struct dm_http_response *res, unsigned status, const char *content_type,
                    const void *body, size_t len);
/* A response with no body (204, 304). */
void dm_http_respond_empty(struct dm_http_response *res, unsigned status);
/* application/json body from `doc`, which this takes (decrefs) in every case. NULL doc
 * (a failed json_pack) gives a 500 problem. Returns 0 or DM_ENOMEM. */
int dm_http_respond_json(struct dm_http_response *res, unsigned status, json_t *doc);

/* RFC 9457 problem documents. A problem type is a slug under DM_HTTP_PROBLEM_BASE and
 * its title; modules define their own as static constants. A NULL type means
 * "about:blank", whose title is the status's reason phrase. */
struct dm_http_problem_type {
        const char *slug;  /* "invalid-body" */
        const char *title; /* "Invalid request body" */
};

/* Problem types every API shares. */
extern const struct dm_http_problem_type dm_problem_invalid_json;      /* 400 */
extern const struct dm_http_problem_type dm_problem_invalid_body;      /* 400 */
extern const struct dm_http_problem_type dm_problem_invalid_parameter; /* 400 */
extern const struct dm_http_problem_type dm_problem_unauthorized;      /* 401 */
extern const struct dm_http_problem_type dm_problem_forbidden;         /* 403 */
extern const struct dm_http_problem_type dm_problem_not_found;         /* 404 */
extern const struct dm_http_problem_type dm_problem_body_too_large;    /* 413 */
extern const struct dm_http_problem_type dm_problem_uri_too_long;      /* 414 */
extern const struct dm_http_problem_type dm_problem_unsupported_media; /* 415 */
extern const struct dm_http_problem_type dm_problem_unavailable;       /* 503 */

/* Returns a new problem object or NULL (ENOMEM). `detail` may be NULL; it is cut to a
 * sane length at a UTF-8 boundary and made valid UTF-8. */
json_t *dm_http_problem_new(unsigned status, const struct dm_http_problem_type *type,
                            const char *detail);
/* Appends {"field": field, "detail": detail} to the problem's "errors" array. Returns 0 or
 * DM_ENOMEM. */
int dm_http_problem_add_error(json_t *problem, const char *field, const char *detail);
/* Sends `problem` (taken, decref'd) as application/problem+json with its "status". NULL
 * gives a bare 500. Returns 0 or DM_ENOMEM. */
int dm_http_respond_problem_json(struct dm_http_response *res, json_t *problem);
/* Builds and sends a problem in one call; detail is printf-formatted (NULL: none). */
int dm_http_problem(struct dm_http_response *res, unsigned status,
                    const struct dm_http_problem_type *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A problem with one field error: detail is "<field>: <message>" and "errors" names the
 * field. For bodies and query strings rejected field by field. */
int dm_http_problem_field(struct dm_http_response *res, unsigned status,
                          const struct dm_http_problem_type *type, const char *field,
                          const char *message);
/* "Not Found" for 404 etc.; "Unknown" for codes not listed. */
const char *dm_http_reason(unsigned status);

/* ---- streamed responses ---- */

/* A response whose body is produced while it is sent (Server-Sent Events). `read` is called
 * whenever the connection can take more; when it has nothing to send it returns
 * DM_HTTP_STREAM_EMPTY and the connection is parked (suspended in MHD: out of the poll set,
 * no thread waiting on it) until dm_http_stream_wake. Parked connections do not time out;
 * one whose client went away is found at the next write, so a source that must notice
 * disconnects sends something now and then. */
#define DM_HTTP_STREAM_EMPTY 0             /* nothing now: park until woken */
#define DM_HTTP_STREAM_END ((ssize_t)-1)   /* the body is complete: end it cleanly */
#define DM_HTTP_STREAM_ABORT ((ssize_t)-2) /* close the connection, body unfinished */

struct dm_http_stream;

struct dm_http_stream_source {
        /* Up to `max` bytes into buf: a count > 0, or one of the values above. Runs on a
         * server thread, never twice at once for one response. */
        ssize_t (*read)(void *arg, char *buf, size_t max);
        /* The response is finished, refused or its connection closed: release `arg`. Called
         * once, on a server thread (or in dm_http_response_done for a response never
         * sent). Once it has begun, the stream handle must no longer be used. */
        void (*done)(void *arg);
        void *arg;
        /* SO_SNDBUF of the connection: bounds what the kernel holds for a client that does
         * not read. 0: the system's default. */
        int sndbuf;
};

/* Makes `res` a response of `status` and `content_type` (a static string) whose body comes
 * from `src`, and gives its handle in *ret_stream (NULL-able: not wanted). Headers added to
 * `res` before or after are sent. Returns 0 (from then on the response owns src->arg and
 * calls done exactly once) or DM_ENOMEM (nothing taken; res is a 500 problem). */
int dm_http_respond_stream(struct dm_http_request *req, struct dm_http_response *res,
                           unsigned status, const char *content_type,
                           const struct dm_http_stream_source *src,
                           struct dm_http_stream **ret_stream);
/* There is something to read: un-parks the connection (from any thread). */
void dm_http_stream_wake(struct dm_http_stream *s);
/* Closes the connection as soon as possible, from any thread, whether or not the client
 * reads: its socket is shut down, and a parked connection is woken to notice. */
void dm_http_stream_abort(struct dm_http_stream *s);

/* ---- page tokens ---- */

/* Opaque page cursors: base64url (no padding) of a string key. encode writes into `out`
 * (NUL-terminated) and returns 0 or DM_E2BIG. decode is strict (alphabet, length, unused
 * bits zero) and refuses control bytes in the result: returns 0, DM_EINVAL, or DM_E2BIG
 * when `out` is too small. */
int dm_http_cursor_encode(const char *key, char *out, size_t size);
int dm_http_cursor_decode(const char *cursor, char *out, size_t size);

/* ---- the edge: decisions the server applies to every request ---- */

#define DM_HTTP_ETAG_LEN 35 /* a quoted 32-digit tag and its NUL */

/* The strong entity tag of a body: '"' + 32 hex digits of its SHA-256 + '"'. */
void dm_http_etag(const void *body, size_t len, char out[DM_HTTP_ETAG_LEN]);
/* Whether an If-None-Match value (a list of tags, or "*") matches `etag`, with the weak
 * comparison of RFC 9110. A malformed value matches nothing. */
bool dm_http_etag_match(const char *if_none_match, const char *etag);

/* Origins allowed to call the API from a browser: DM_CORS_ORIGINS, a comma-separated list of
 * "https://host[:port]" or "*". Empty: CORS is off (no CORS header is ever sent, and a
 * preflight OPTIONS is a plain 405). */
struct dm_http_cors;
/* Returns 0 and *ret (free with dm_http_cors_free), DM_EINVAL with a reason in `err`, or
 * DM_ENOMEM. NULL or "" gives a list that allows nothing. */
int dm_http_cors_parse(const char *text, char *err, size_t errlen, struct dm_http_cors **ret);
void dm_http_cors_free(struct dm_http_cors *c);
bool dm_http_cors_enabled(const struct dm_http_cors *c);
/* The Access-Control-Allow-Origin value for a request's Origin, or NULL (not allowed). */
const char *dm_http_cors_allow(const struct dm_http_cors *c, const char *origin);

struct dm_http_static_header {
        const char *name, *value;
};
/* Sent on every response the server makes (NULL-terminated). */
extern const struct dm_http_static_header dm_http_security_headers[];

/* The scope a route really needs: DM_SCOPE_NONE only with DM_HTTP_ROUTE_PUBLIC; a route
 * with no scope and no flag needs DM_SCOPE_ADMIN. */
enum dm_scope dm_http_route_scope(const struct dm_http_route *rt);

/* ---- server ---- */

struct dm_http_server_opts {
        const char *listen;      /* "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:0", "localhost:80" */
        unsigned threads;        /* 0 or 1: one internal polling thread; more: a pool */
        size_t max_body;         /* bytes; larger bodies get 413 */
        unsigned max_conns;      /* 0: 1024 */
        unsigned idle_timeout_s; /* idle keep-alive connections are closed after; 0: 60 */
        const struct dm_http_router *router; /* borrowed; must outlive the server */
        dm_http_auth_fn auth;                /* needed when any route has a scope */
        void *auth_arg;
        dm_http_session_auth_fn session_auth; /* NULL: no Authorization is a 401 */
        void *session_auth_arg;
        void *app; /* handed to handlers as req->app */
        /* Counted per finished request when set (dm/metrics.h): requests by {route, method,
         * status} and latency by {route}, where route is the matched pattern
         * ("/api/v1/domains/{name}"), never the raw path, or "unmatched". */
        struct dm_metric *metric_requests;
        struct dm_metric *metric_seconds;
        /* Limits of the edge (0: the defaults in docs/security.md). */
        unsigned max_conns_per_ip;  /* connections one client address may hold; 0: 64 */
        unsigned request_timeout_s; /* from the request line to the whole body; 0: 30 */
        size_t max_header_bytes;    /* request line and headers together; 0: 16384 */
        /* Rate limiting: NULL limiter means none. `rate` is each key's budget for requests
         * with a good key, and each client address's for every other request (no key, a
         * key that fails, a public route, an unknown path); `rate_expensive` (limit 0:
         * none) counts DM_HTTP_ROUTE_EXPENSIVE routes again, per key or address. Answers
         * carry RateLimit-Policy and RateLimit; a refusal is 429 with Retry-After.
         * Borrowed: must outlive the server. */
        struct dm_ratelimit *limiter;
        struct dm_rate_policy rate;
        struct dm_rate_policy rate_expensive;
        const struct dm_http_cors *cors; /* borrowed; NULL: CORS off */
};

struct dm_http_server;

/* Binds and starts serving; returns once the socket listens. The socket is the server's
 * alone (no SO_REUSEPORT): a port another process listens on is an error, DM_EADDRINUSE,
 * with a message saying so. `err` gets a one-line reason. Returns 0, DM_EINVAL (bad listen
 * address), DM_EADDRINUSE, DM_EIO (cannot bind/start). */
int dm_http_server_start(const struct dm_http_server_opts *opts, char *err, size_t errlen,
                         struct dm_http_server **ret_server);
/* The bound address as "host:port" (the real port when 0 was asked for). */
const char *dm_http_server_addr(const struct dm_http_server *s);
uint16_t dm_http_server_port(const struct dm_http_server *s);
/* Stops accepting, waits (bounded) for requests in progress to be answered, closes every
 * connection and frees. NULL-safe. */
void dm_http_server_stop(struct dm_http_server *s);

#endif
