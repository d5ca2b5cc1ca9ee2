/* The server: libmicrohttpd with its own polling thread(s) on epoll, a router, and the
 * checks every request passes before a handler sees it (route, key, body size and type).
 *
 * A request's state is created in the URI callback, which sees the request target exactly
 * as sent: routing works on the raw path so that an encoded '/' (%2F) inside a capture
 * cannot change which route matches. Everything that can be decided from the headers is
 * decided on the first access call, before any body byte is read: a client is not made to
 * upload 1 MiB only to learn that its key is wrong or its body too large. */
#include "dm/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "dm/buf.h"
#include "dm/error.h"
#include "dm/log.h"
#include "dm/time.h"
#include "http/internal.h"

#define DEFAULT_MAX_CONNS 1024
#define DEFAULT_IDLE_TIMEOUT_S 60
#define DEFAULT_CONNS_PER_IP 64
#define DEFAULT_REQUEST_TIMEOUT_S 30
#define DEFAULT_HEADER_BYTES 16384
#define LISTEN_BACKLOG 1024
#define WATCHDOG_TICK_MS 250
/* Longest request target, query string included (414 above). */
#define URI_MAX 8192
#define MAX_POOL_THREADS 64
#define DRAIN_TIMEOUT_MS 5000
#define MAX_QUERY_PARAMS 32

struct req_state;

struct dm_http_server {
        struct MHD_Daemon *daemon;
        int lsock; /* ours until MHD takes it */
        const struct dm_http_router *router;
        dm_http_auth_fn auth;
        void *auth_arg;
        dm_http_session_auth_fn session_auth;
        void *session_auth_arg;
        void *app;
        struct dm_metric *metric_requests, *metric_seconds;
        size_t max_body;
        char addr[80];
        uint16_t port;
        atomic_bool stopping;
        pthread_mutex_t lock;
        pthread_cond_t drained;
        unsigned inflight; /* requests begun and not completed; under lock */
        /* Requests whose body is not in yet, oldest first: the watchdog cuts those past
         * request_timeout_ms (slow headers or bodies). Under lock. */
        struct req_state *watch_head;
        int64_t request_timeout_ms;
        size_t max_header_bytes;
        pthread_t watchdog;
        bool watchdog_running;
        bool watchdog_stop; /* under lock */
        pthread_cond_t watchdog_wake;
        struct dm_ratelimit *limiter;
        struct dm_rate_policy rate, rate_expensive;
        const struct dm_http_cors *cors;
};

struct req_state {
        struct dm_http_server *srv;
        struct req_state *wprev, *wnext; /* the watch list, while watched */
        bool watched;
        int fd;
        int64_t start_ms;
        struct timespec start; /* for the latency metric */
        bool path_too_long;
        bool uri_too_long;
        bool have_rate; /* `rate` holds the result to show in RateLimit headers */
        struct dm_rate_result rate;
        const char *cors_origin; /* Access-Control-Allow-Origin to send, or NULL */
        bool started;            /* the first access call has run */
        bool queued;             /* a response is queued; nothing more to do */
        bool rejected;           /* `pending` holds the answer, sent after the body */
        bool too_large;
        size_t discarded; /* body bytes dropped (rejected or too_large) */
        long long clen;   /* Content-Length; -1 absent, -2 malformed */
        bool chunked;     /* Transfer-Encoding given */
        bool bad_framing; /* the body's length cannot be known for sure */
        bool oom;         /* the body could not be kept */
        struct dm_http_response pending;
        unsigned status;
        size_t bytes;
        char path[DM_HTTP_PATH_MAX + 1];
        struct dm_buf body;
        struct dm_http_request req;
};

/* ---- requests in flight ---- */

static void inflight_add(struct dm_http_server *s, int delta)
{
        pthread_mutex_lock(&s->lock);
        s->inflight = (unsigned)((int)s->inflight + delta);
        if (s->inflight == 0)
                pthread_cond_broadcast(&s->drained);
        pthread_mutex_unlock(&s->lock);
}

/* Under s->lock. */
static void watch_remove(struct dm_http_server *s, struct req_state *st)
{
        if (!st->watched)
                return;
        if (st->wprev)
                st->wprev->wnext = st->wnext;
        else
                s->watch_head = st->wnext;
        if (st->wnext)
                st->wnext->wprev = st->wprev;
        st->wprev = st->wnext = NULL;
        st->watched = false;
}

static void unwatch(struct req_state *st)
{
        pthread_mutex_lock(&st->srv->lock);
        watch_remove(st->srv, st);
        pthread_mutex_unlock(&st->srv->lock);
}

/* Slowloris: a client that sends its headers or body a byte at a time never trips MHD's
 * idle timeout. Every request gets request_timeout_ms from its request line to its last
 * body byte; past that its socket is shut down (not closed: the descriptor stays MHD's, and
 * MHD sees the connection end and cleans up as for any client that went away). A request
 * leaves the list before on_completed can free it, so the descriptor is still open here. */
static void *watchdog_main(void *arg)
{
        struct dm_http_server *s = arg;
        struct timespec ts;

        pthread_mutex_lock(&s->lock);
        while (!s->watchdog_stop) {
                int64_t now = dm_mono_ms();
                for (struct req_state *st = s->watch_head; st; st = st->wnext) {
                        if (now - st->start_ms > s->request_timeout_ms && st->fd >= 0) {
                                shutdown(st->fd, SHUT_RDWR);
                                st->fd = -1;
                        }
                }
                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_nsec += WATCHDOG_TICK_MS * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&s->watchdog_wake, &s->lock, &ts);
        }
        pthread_mutex_unlock(&s->lock);
        return NULL;
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
        struct dm_http_server *s = cls;
        struct req_state *st = calloc(1, sizeof(*st));

        /* NULL is answered by closing the connection in on_access. */
        if (!st)
                return NULL;
        st->srv = s;
        st->start_ms = dm_mono_ms();
        clock_gettime(CLOCK_MONOTONIC, &st->start);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        st->fd = ci ? ci->connect_fd : -1;
        if (strlen(uri) > URI_MAX)
                st->uri_too_long = true;
        size_t len = strcspn(uri, "?#");
        if (len > DM_HTTP_PATH_MAX) {
                st->path_too_long = true;
                len = 0;
        }
        memcpy(st->path, uri, len);
        st->path[len] = '\0';
        dm_buf_init(&st->body, s->max_body);
        inflight_add(s, 1);
        pthread_mutex_lock(&s->lock);
        st->wnext = s->watch_head;
        if (s->watch_head)
                s->watch_head->wprev = st;
        s->watch_head = st;
        st->watched = true;
        pthread_mutex_unlock(&s->lock);
        return st;
}

/* The method as a label: the names the router knows, "other" for anything a client made
 * up, so that a client cannot grow the metrics without bound. */
static const char *method_label(const char *name)
{
        static const char *const known[] = {"GET",   "HEAD",   "POST",   "PUT",
                                            "PATCH", "DELETE", "OPTIONS"};
        for (size_t i = 0; name && i < sizeof(known) / sizeof(known[0]); i++) {
                if (strcmp(name, known[i]) == 0)
                        return known[i];
        }
        return "other";
}

static void count_request(struct dm_http_server *s, struct req_state *st)
{
        struct timespec now;
        char status[16];

        if (!s->metric_requests && !s->metric_seconds)
                return;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double secs = (double)(now.tv_sec - st->start.tv_sec) +
                      (double)(now.tv_nsec - st->start.tv_nsec) / 1e9;
        const char *route = st->req.match.route ? st->req.match.route->pattern : "unmatched";
        snprintf(status, sizeof(status), "%u", st->status);
        dm_metric_inc(
            dm_metric_series(s->metric_requests,
                             (const char *[]){route, method_label(st->req.method_name), status}),
            1);
        dm_metric_observe(dm_metric_series(s->metric_seconds, (const char *[]){route}), secs);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
        struct dm_http_server *s = cls;
        struct req_state *st = *con_cls;
        char qmethod[48], qpath[512];

        if (!st)
                return;
        *con_cls = NULL;
        unwatch(st);
        dm_log_info(
            "http", "msg=\"request\" method=%s path=%s status=%u dur_ms=%lld bytes=%zu%s",
            dm_log_quote(qmethod, sizeof(qmethod), st->req.method_name ? st->req.method_name : "-"),
            dm_log_quote(qpath, sizeof(qpath), st->path), st->status,
            (long long)(dm_mono_ms() - st->start_ms), st->bytes,
            toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=true");
        count_request(s, st);
        dm_buf_done(&st->body);
        dm_http_response_done(&st->pending);
        free(st);
        inflight_add(s, -1);
}

/* ---- sending ---- */

static enum MHD_Result queue_response(struct req_state *st, struct MHD_Connection *conn,
                                      struct dm_http_response *res)
{
        struct MHD_Response *r;
        enum MHD_Result ok;

        unwatch(st);
        if (res->status < 100 || res->status > 599)
                dm_http_problem(res, 500, NULL, "the request could not be answered");
        if (res->mhd) {
                r = res->mhd;
                res->mhd = NULL;
                st->bytes = 0;
        } else if (res->body) {
                r = MHD_create_response_from_buffer(res->body_len, res->body,
                                                    MHD_RESPMEM_MUST_FREE);
                if (r) {
                        st->bytes = res->body_len;
                        res->body = NULL;
                }
        } else if (res->content_type) {
                size_t len;
                const char *text = dm_http_fallback_body(&len);
                r = MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_PERSISTENT);
                st->bytes = len;
        } else {
                r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
                st->bytes = 0;
        }
        if (!r) {
                dm_http_response_done(res);
                return MHD_NO;
        }
        if (res->content_type)
                MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, res->content_type);
        /* A handler's own value of a security header (the web UI's Content-Security-Policy)
         * replaces the default: two policies would both apply, the strictest winning. */
        for (const struct dm_http_static_header *h = dm_http_security_headers; h->name; h++) {
                bool own = false;
                for (size_t i = 0; i < res->nheaders && !own; i++)
                        own = strcasecmp(res->headers[i].name, h->name) == 0;
                if (!own)
                        MHD_add_response_header(r, h->name, h->value);
        }
        if (st->have_rate) {
                char policy[96], state[96];
                dm_rate_headers("default", &st->rate, policy, sizeof(policy), state, sizeof(state));
                MHD_add_response_header(r, "RateLimit-Policy", policy);
                MHD_add_response_header(r, "RateLimit", state);
        }
        if (st->cors_origin) {
                MHD_add_response_header(r, "Access-Control-Allow-Origin", st->cors_origin);
                MHD_add_response_header(r, "Access-Control-Expose-Headers",
                                        "ETag, Location, RateLimit, RateLimit-Policy, "
                                        "Retry-After");
        }
        if (dm_http_cors_enabled(st->srv->cors))
                MHD_add_response_header(r, "Vary", "Origin");
        for (size_t i = 0; i < res->nheaders; i++)
                MHD_add_response_header(r, res->headers[i].name, res->headers[i].value);
        /* Keep-alive clients learn to reconnect elsewhere while the server drains. */
        if (atomic_load(&st->srv->stopping))
                MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
        st->status = res->status;
        st->queued = true;
        ok = MHD_queue_response(conn, res->status, r);
        MHD_destroy_response(r);
        dm_http_response_done(res);
        return ok;
}

/* ---- the checks made from the headers ---- */

static bool is_json_type(const char *ct)
{
        size_t n = strcspn(ct, ";");
        while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
                n--;
        return n == strlen("application/json") && strncasecmp(ct, "application/json", n) == 0;
}

/* Content-Length as a number; -1 when absent, -2 when not a plain decimal. */
static long long content_length(struct MHD_Connection *conn)
{
        const char *v =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long n = 0;

        if (!v)
                return -1;
        if (!*v)
                return -2;
        for (const char *p = v; *p; p++) {
                if (*p < '0' || *p > '9' || n > (unsigned long long)1 << 50)
                        return -2;
                n = n * 10 + (unsigned)(*p - '0');
        }
        return (long long)n;
}

static enum MHD_Result count_content_length(void *cls, enum MHD_ValueKind kind, const char *key,
                                            const char *value)
{
        unsigned *n = cls;

        if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
                (*n)++;
        return MHD_YES;
}

/* Refuses requests whose body length two parsers could read differently (RFC 9112 section
 * 6.3): both Content-Length and Transfer-Encoding, Content-Length more than once, or a
 * transfer coding other than plain "chunked", which MHD would read up to the end of the
 * connection. Returns true when a response was made in `res`. */
static bool check_framing(struct req_state *st, struct MHD_Connection *conn,
                          struct dm_http_response *res)
{
        const char *te =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
        unsigned ncl = 0;

        MHD_get_connection_values(conn, MHD_HEADER_KIND, count_content_length, &ncl);
        if (ncl > 1) {
                st->bad_framing = true;
                dm_http_problem(res, 400, NULL, "Content-Length is given more than once");
                return true;
        }
        if (te && ncl > 0) {
                st->bad_framing = true;
                dm_http_problem(res, 400, NULL,
                                "Content-Length and Transfer-Encoding must not both be given");
                return true;
        }
        if (te && strcasecmp(te, "chunked") != 0) {
                st->bad_framing = true;
                dm_http_problem(res, 501, NULL, "only the chunked transfer coding is supported");
                return true;
        }
        return false;
}

static enum MHD_Result find_query_nul(void *cls, enum MHD_ValueKind kind, const char *key,
                                      size_t key_size, const char *value, size_t value_size)
{
        const char **bad = cls;

        if (strlen(key) != key_size || (value && strlen(value) != value_size)) {
                *bad = key;
                return MHD_NO;
        }
        return MHD_YES;
}

const char *dm_http_auth_problem(const char *authorization)
{
        if (!authorization)
                return "an API key is required: send 'Authorization: Bearer <key>'";
        const char *p = authorization;
        while (*p == ' ' || *p == '\t')
                p++;
        if (strncasecmp(p, "Bearer ", 7) != 0)
                return "the Authorization header lacks the 'Bearer ' scheme: send "
                       "'Authorization: Bearer <key>'";
        return "the API key is not valid";
}

static const struct dm_http_problem_type problem_rate_limited = {"rate-limited",
                                                                 "Too many requests"};
static const struct dm_http_problem_type problem_headers_too_large = {"headers-too-large",
                                                                      "Request headers too large"};

static enum MHD_Result sum_header_bytes(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value)
{
        size_t *n = cls;
        *n += strlen(key) + (value ? strlen(value) : 0) + 4; /* ": " and CRLF */
        return MHD_YES;
}

/* "ip:192.0.2.1" / "ip:2001:db8::1": the client address as a rate limit key. The address is
 * the TCP peer's; headers such as X-Forwarded-For are not trusted. */
static void client_key(struct MHD_Connection *conn, char *buf, size_t size)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        char host[INET6_ADDRSTRLEN] = "unknown";

        if (ci && ci->client_addr) {
                const struct sockaddr *sa = ci->client_addr;
                if (sa->sa_family == AF_INET)
                        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host,
                                  sizeof(host));
                else if (sa->sa_family == AF_INET6)
                        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host,
                                  sizeof(host));
        }
        snprintf(buf, size, "ip:%s", host);
}

/* Counts the request against `key`; true when refused (the 429 is made in `res`). The
 * headers show the tightest budget the request was counted against. */
static bool rate_refused(struct req_state *st, const char *key, const struct dm_rate_policy *p,
                         const char *what, struct dm_http_response *res)
{
        struct dm_rate_result r;
        char retry[16];

        if (!st->srv->limiter || p->limit == 0)
                return false;
        if (dm_ratelimit_check(st->srv->limiter, key, p, &r) < 0)
                return false;
        if (!st->have_rate || !r.allowed || r.remaining < st->rate.remaining) {
                st->rate = r;
                st->have_rate = true;
        }
        if (r.allowed)
                return false;
        dm_http_problem(res, 429, &problem_rate_limited,
                        "more than %u requests in %u s %s; retry in %u s", r.limit, r.window_s,
                        what, r.retry_after_s);
        snprintf(retry, sizeof(retry), "%u", r.retry_after_s);
        dm_http_response_header(res, "Retry-After", retry);
        return true;
}

/* A CORS preflight (OPTIONS with Access-Control-Request-Method) from an allowed origin, on
 * a path that exists: answered here, without a key, as browsers send none. */
static bool cors_preflight(struct req_state *st, struct MHD_Connection *conn,
                           struct dm_http_response *res)
{
        char allow[96];

        if (st->req.method != DM_HTTP_OPTIONS || !st->cors_origin || !st->req.match.allow ||
            !MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Access-Control-Request-Method"))
                return false;
        dm_http_allow_format(st->req.match.allow, allow, sizeof(allow));
        dm_http_respond_empty(res, 204);
        dm_http_response_header(res, "Access-Control-Allow-Methods", allow);
        dm_http_response_header(res, "Access-Control-Allow-Headers",
                                "Authorization, Content-Type, If-None-Match");
        dm_http_response_header(res, "Access-Control-Max-Age", "600");
        return true;
}

/* Decides what can be decided before the body: route, key, size and type. Returns true
 * when a response was made in `res`. */
static bool check_headers(struct req_state *st, struct MHD_Connection *conn,
                          struct dm_http_response *res)
{
        struct dm_http_server *s = st->srv;
        struct dm_http_request *req = &st->req;
        char allow[96], key[DM_RATE_KEY_MAX];
        int ret;

        st->cors_origin = dm_http_cors_allow(
            s->cors, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin"));
        st->clen = content_length(conn);
        st->chunked = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
        if (check_framing(st, conn, res))
                return true;
        if (st->uri_too_long) {
                dm_http_problem(res, 414, &dm_problem_uri_too_long,
                                "the request target is longer than %d bytes", URI_MAX);
                return true;
        }
        if (st->path_too_long) {
                dm_http_problem(res, 414, &dm_problem_uri_too_long,
                                "the request path is longer than %d bytes", DM_HTTP_PATH_MAX);
                return true;
        }
        size_t hbytes = 0;
        MHD_get_connection_values(conn, MHD_HEADER_KIND, sum_header_bytes, &hbytes);
        if (hbytes > s->max_header_bytes) {
                dm_http_problem(res, 431, &problem_headers_too_large,
                                "the request headers take %zu bytes; at most %zu are accepted",
                                hbytes, s->max_header_bytes);
                return true;
        }
        ret = dm_http_router_match(s->router, req->method, st->path, &req->match);
        if (ret == DM_EINVAL) {
                dm_http_problem(res, 400, &dm_problem_invalid_parameter,
                                "the path holds a malformed percent-encoding");
                return true;
        }
        /* A request that presents no key (a public route, an unknown path, a missing key)
         * counts against its client address before anything else is done for it. One with
         * a key counts against the key once the key is good, and against the address when
         * it is not: guessing keys spends the address's budget. */
        const struct dm_http_route *rt = req->match.route;
        enum dm_scope need = rt ? dm_http_route_scope(rt) : DM_SCOPE_NONE;
        const char *authz =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        client_key(conn, key, sizeof(key));
        if (!(need != DM_SCOPE_NONE && authz) &&
            rate_refused(st, key, &s->rate, "from this address", res))
                return true;
        if (cors_preflight(st, conn, res))
                return true;
        if (!req->match.route) {
                if (!req->match.allow) {
                        dm_http_problem(res, 404, NULL, "no resource at %s", st->path);
                        return true;
                }
                dm_http_allow_format(req->match.allow, allow, sizeof(allow));
                dm_http_problem(res, 405, NULL, "%s is not allowed here; allowed: %s",
                                req->method_name, allow);
                dm_http_response_header(res, MHD_HTTP_HEADER_ALLOW, allow);
                return true;
        }

        if (need != DM_SCOPE_NONE) {
                if (!authz && s->session_auth)
                        ret = s->session_auth(s->session_auth_arg, req, &req->principal);
                else
                        ret = s->auth ? s->auth(s->auth_arg, authz, &req->principal) : DM_EACCES;
                if (ret == DM_EPERM) {
                        dm_http_problem(res, 403, &dm_problem_forbidden,
                                        "a write made with the session cookie must come from "
                                        "this service's own pages (Origin)");
                        return true;
                }
                if (ret == DM_EACCES && authz &&
                    rate_refused(st, key, &s->rate, "from this address", res))
                        return true;
                if (ret == DM_EACCES) {
                        dm_http_problem(res, 401, &dm_problem_unauthorized, "%s",
                                        dm_http_auth_problem(authz));
                        dm_http_response_header(res, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                                authz ? "Bearer error=\"invalid_token\""
                                                      : "Bearer");
                        return true;
                }
                if (ret < 0) {
                        dm_http_problem(res, 503, &dm_problem_unavailable,
                                        "the API key could not be checked: %s", dm_strerror(ret));
                        return true;
                }
                if (req->principal.scope < need) {
                        dm_http_problem(res, 403, &dm_problem_forbidden,
                                        "this key has scope '%s'; '%s' is needed",
                                        dm_scope_name(req->principal.scope), dm_scope_name(need));
                        return true;
                }
                snprintf(key, sizeof(key), "key:%lld", (long long)req->principal.key_id);
                if (rate_refused(st, key, &s->rate, "with this key", res))
                        return true;
        }
        if (rt->flags & DM_HTTP_ROUTE_EXPENSIVE) {
                char xkey[DM_RATE_KEY_MAX + 4];
                snprintf(xkey, sizeof(xkey), "x:%s", key);
                if (rate_refused(st, xkey, &s->rate_expensive, "on costly routes", res))
                        return true;
        }

        /* A decoded %00 would cut the value short where handlers read it as a C string:
         * "limit=1%00x" must not pass as "limit=1". */
        const char *nul_key = NULL;
        MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, find_query_nul, &nul_key);
        if (nul_key) {
                dm_http_problem_field(res, 400, &dm_problem_invalid_parameter, nul_key,
                                      "contains a NUL byte (%00)");
                return true;
        }

        long long clen = st->clen;
        if (clen == -2) {
                dm_http_problem(res, 400, NULL, "malformed Content-Length");
                return true;
        }
        if (clen > (long long)s->max_body) {
                dm_http_problem(res, 413, &dm_problem_body_too_large,
                                "the request body is %lld bytes; at most %zu are accepted", clen,
                                s->max_body);
                return true;
        }
        bool has_body = clen > 0 || st->chunked;
        const char *ct =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (has_body && ct && !(rt->flags & DM_HTTP_ROUTE_ANY_BODY) && !is_json_type(ct)) {
                dm_http_problem(res, 415, &dm_problem_unsupported_media,
                                "the request body must be application/json");
                return true;
        }
        return false;
}

static void run_handler(struct req_state *st, struct dm_http_response *res)
{
        struct dm_http_request *req = &st->req;

        if (st->body.data) {
                req->body = st->body.data;
                req->body_len = st->body.len;
        } else {
                req->body = "";
                req->body_len = 0;
        }
        req->match.route->handler(req, res);
        if (res->status == 0 && !res->mhd) {
                dm_http_response_done(res);
                dm_http_problem(res, 500, NULL, "the request could not be answered");
        }
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
        struct req_state *st = *con_cls;
        struct dm_http_response res = {0};

        if (!st)
                return MHD_NO;
        if (st->queued) {
                /* MHD reads no body after an early response; this is only a guard. */
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (!st->started) {
                st->started = true;
                st->req.method_name = method;
                st->req.method = dm_http_method_parse(method);
                st->req.path = st->path;
                st->req.app = st->srv->app;
                st->req.conn = conn;
                if (!check_headers(st, conn, &st->pending))
                        return MHD_YES;
                /* A response queued now makes MHD close the connection without reading the
                 * body: right for a body that is too large or of unknown size, wasteful for
                 * a small one. Refusals of small bodies are sent once the body has been
                 * read and dropped, so the connection stays open for the next request. */
                if (st->bad_framing || st->chunked || st->clen < -1 ||
                    st->clen > (long long)st->srv->max_body || st->pending.status == 413)
                        return queue_response(st, conn, &st->pending);
                st->rejected = true;
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                size_t n = *upload_data_size;
                *upload_data_size = 0;
                if (!st->rejected && !st->too_large && !st->oom) {
                        int r = dm_buf_add(&st->body, upload_data, n);
                        if (r == DM_E2BIG)
                                st->too_large = true;
                        else if (r < 0)
                                st->oom = true; /* never a handler with half a body */
                        if (r < 0)
                                dm_buf_done(&st->body);
                }
                if (!st->rejected && !st->too_large && !st->oom)
                        return MHD_YES;
                /* A body nobody will read: a refused request's, or a chunked one that
                 * outgrew the cap (MHD takes a response only before the body or after all
                 * of it). It is dropped as it comes; one going on past the cap is cut off. */
                st->discarded += n;
                if (st->discarded > st->srv->max_body)
                        return MHD_NO;
                return MHD_YES;
        }
        /* The whole request is in: the watchdog's deadline no longer applies (a handler, or
         * a live stream, may take as long as it takes). */
        unwatch(st);
        if (st->rejected)
                return queue_response(st, conn, &st->pending);
        if (st->too_large)
                dm_http_problem(&res, 413, &dm_problem_body_too_large,
                                "the request body is larger than %zu bytes", st->srv->max_body);
        else if (st->oom)
                dm_http_problem(&res, 500, NULL, "out of memory while reading the request body");
        else
                run_handler(st, &res);
        return queue_response(st, conn, &res);
}

/* ---- request helpers ---- */

const char *dm_http_param(const struct dm_http_request *req, const char *name)
{
        for (size_t i = 0; i < req->match.ncaptures; i++) {
                if (strcmp(req->match.captures[i].name, name) == 0)
                        return req->match.captures[i].value;
        }
        return NULL;
}

const char *dm_http_query(const struct dm_http_request *req, const char *name)
{
        const char *v = NULL;
        size_t vlen = 0;

        if (!req->conn || MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, name,
                                                        strlen(name), &v, &vlen) != MHD_YES)
                return NULL;
        return v ? v : "";
}

static enum MHD_Result count_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
        (*(size_t *)cls)++;
        return MHD_YES;
}

size_t dm_http_query_count(const struct dm_http_request *req)
{
        size_t n = 0;
        if (req->conn)
                MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, count_arg, &n);
        return n;
}

const char *dm_http_header(const struct dm_http_request *req, const char *name)
{
        if (!req->conn)
                return NULL;
        return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

struct query_scan {
        const char *const *allowed;
        const char *seen[MAX_QUERY_PARAMS];
        size_t nseen;
        const char *bad;
        const char *why;
};

static enum MHD_Result scan_query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
        struct query_scan *qs = cls;
        const char *const *a = qs->allowed;

        while (*a && strcmp(*a, key) != 0)
                a++;
        if (!*a) {
                qs->bad = key;
                qs->why = "unknown query parameter";
                return MHD_NO;
        }
        for (size_t i = 0; i < qs->nseen; i++) {
                if (strcmp(qs->seen[i], key) == 0) {
                        qs->bad = key;
                        qs->why = "given more than once";
                        return MHD_NO;
                }
        }
        if (qs->nseen == MAX_QUERY_PARAMS) {
                qs->bad = key;
                qs->why = "too many query parameters";
                return MHD_NO;
        }
        qs->seen[qs->nseen++] = key;
        return MHD_YES;
}

int dm_http_query_check(const struct dm_http_request *req, const char *const *allowed,
                        struct dm_http_response *res)
{
        struct query_scan qs = {.allowed = allowed};

        if (!req->conn)
                return 0;
        MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, scan_query_arg, &qs);
        if (qs.bad) {
                dm_http_problem_field(res, 400, &dm_problem_invalid_parameter, qs.bad, qs.why);
                return DM_EINVAL;
        }
        return 0;
}

int dm_http_query_int(const struct dm_http_request *req, const char *name, int64_t min, int64_t max,
                      int64_t def, bool clamp, struct dm_http_response *res, int64_t *ret_value)
{
        const char *v = dm_http_query(req, name);
        char msg[96];
        int64_t n = 0;
        bool neg = false;

        if (!v) {
                *ret_value = def;
                return 0;
        }
        const char *p = v;
        if (*p == '-') {
                neg = true;
                p++;
        }
        if (!*p || strlen(p) > 18)
                goto bad;
        for (; *p; p++) {
                if (*p < '0' || *p > '9')
                        goto bad;
                n = n * 10 + (*p - '0');
        }
        if (neg)
                n = -n;
        if (n < min) {
                snprintf(msg, sizeof(msg), "must be at least %lld", (long long)min);
                dm_http_problem_field(res, 400, &dm_problem_invalid_parameter, name, msg);
                return DM_EINVAL;
        }
        if (n > max) {
                if (!clamp) {
                        snprintf(msg, sizeof(msg), "must be at most %lld", (long long)max);
                        dm_http_problem_field(res, 400, &dm_problem_invalid_parameter, name, msg);
                        return DM_EINVAL;
                }
                n = max;
        }
        *ret_value = n;
        return 0;
bad:
        dm_http_problem_field(res, 400, &dm_problem_invalid_parameter, name, "must be an integer");
        return DM_EINVAL;
}

/* ---- start and stop ---- */

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
        char line[512], quoted[600];

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        vsnprintf(line, sizeof(line), fmt, ap);
#pragma GCC diagnostic pop
        line[strcspn(line, "\r\n")] = '\0';
        dm_log_warn("http", "msg=%s", dm_log_quote(quoted, sizeof(quoted), line));
}

union listen_addr {
        struct sockaddr sa;
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
};

static int parse_listen(const char *listen, union listen_addr *ret, char *err, size_t errlen)
{
        char host[64];
        const char *port_s;
        size_t hlen;

        memset(ret, 0, sizeof(*ret));
        if (listen[0] == '[') {
                const char *close = strchr(listen, ']');
                if (!close || close[1] != ':')
                        goto bad;
                hlen = (size_t)(close - listen - 1);
                if (hlen >= sizeof(host))
                        goto bad;
                memcpy(host, listen + 1, hlen);
                host[hlen] = '\0';
                port_s = close + 2;
        } else {
                const char *colon = strrchr(listen, ':');
                if (!colon)
                        goto bad;
                hlen = (size_t)(colon - listen);
                if (hlen >= sizeof(host) || memchr(listen, ':', hlen))
                        goto bad;
                memcpy(host, listen, hlen);
                host[hlen] = '\0';
                port_s = colon + 1;
        }
        unsigned long port = 0;
        if (!*port_s || strlen(port_s) > 5)
                goto bad;
        for (const char *p = port_s; *p; p++) {
                if (*p < '0' || *p > '9')
                        goto bad;
                port = port * 10 + (unsigned long)(*p - '0');
        }
        if (port > 65535)
                goto bad;
        if (listen[0] == '[') {
                ret->v6.sin6_family = AF_INET6;
                ret->v6.sin6_port = htons((uint16_t)port);
                if (inet_pton(AF_INET6, host, &ret->v6.sin6_addr) != 1)
                        goto bad;
                return 0;
        }
        ret->v4.sin_family = AF_INET;
        ret->v4.sin_port = htons((uint16_t)port);
        if (strcmp(host, "localhost") == 0)
                snprintf(host, sizeof(host), "127.0.0.1");
        else if (host[0] == '\0' || strcmp(host, "*") == 0)
                snprintf(host, sizeof(host), "0.0.0.0");
        if (inet_pton(AF_INET, host, &ret->v4.sin_addr) != 1)
                goto bad;
        return 0;
bad:
        snprintf(err, errlen,
                 "DM_LISTEN: cannot use '%.80s': expected IPv4:port or [IPv6]:port, e.g. "
                 "127.0.0.1:8080",
                 listen);
        return DM_EINVAL;
}

/* The listening socket, made here rather than by MHD so that a taken port is reported as
 * such. SO_REUSEADDR only lets a restart bind past connections in TIME_WAIT; without
 * SO_REUSEPORT a second server on the same address fails instead of silently sharing the
 * port (and its requests) with the first. */
static int listen_socket(const union listen_addr *a, const char *shown, int *ret_fd, char *err,
                         size_t errlen)
{
        int one = 1;
        socklen_t len = a->sa.sa_family == AF_INET6 ? sizeof(a->v6) : sizeof(a->v4);
        int fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        if (fd < 0) {
                snprintf(err, errlen, "cannot listen on %s: %s", shown, strerror(errno));
                return DM_EIO;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (a->sa.sa_family == AF_INET6)
                (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, &a->sa, len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
                int e = errno;
                close(fd);
                const char *hint =
                    e == EADDRINUSE ? "another process is listening there (another domainmon?): "
                                      "stop it, or choose another address with DM_LISTEN or "
                                      "--listen"
                    : e == EADDRNOTAVAIL ? "that address is not one of this machine's"
                    : e == EACCES        ? "ports below 1024 need root or CAP_NET_BIND_SERVICE"
                                         : "check DM_LISTEN";
                snprintf(err, errlen, "cannot listen on %s: %s (%s)", shown, strerror(e), hint);
                return e == EADDRINUSE ? DM_EADDRINUSE : DM_EIO;
        }
        *ret_fd = fd;
        return 0;
}

static void format_addr(struct dm_http_server *s, const union listen_addr *a)
{
        char host[INET6_ADDRSTRLEN];

        if (a->sa.sa_family == AF_INET6) {
                inet_ntop(AF_INET6, &a->v6.sin6_addr, host, sizeof(host));
                snprintf(s->addr, sizeof(s->addr), "[%s]:%u", host, s->port);
        } else {
                inet_ntop(AF_INET, &a->v4.sin_addr, host, sizeof(host));
                snprintf(s->addr, sizeof(s->addr), "%s:%u", host, s->port);
        }
}

int dm_http_server_start(const struct dm_http_server_opts *opts, char *err, size_t errlen,
                         struct dm_http_server **ret_server)
{
        union listen_addr addr;
        struct dm_http_server *s;
        pthread_condattr_t ca;
        int ret;

        ret = parse_listen(opts->listen ? opts->listen : "127.0.0.1:8080", &addr, err, errlen);
        if (ret < 0)
                return ret;
        s = calloc(1, sizeof(*s));
        if (!s) {
                snprintf(err, errlen, "out of memory");
                return DM_ENOMEM;
        }
        s->router = opts->router;
        s->auth = opts->auth;
        s->auth_arg = opts->auth_arg;
        s->session_auth = opts->session_auth;
        s->session_auth_arg = opts->session_auth_arg;
        s->app = opts->app;
        s->metric_requests = opts->metric_requests;
        s->metric_seconds = opts->metric_seconds;
        s->max_body = opts->max_body;
        s->lsock = -1;
        s->request_timeout_ms = 1000LL * (opts->request_timeout_s ? opts->request_timeout_s
                                                                  : DEFAULT_REQUEST_TIMEOUT_S);
        s->max_header_bytes =
            opts->max_header_bytes ? opts->max_header_bytes : DEFAULT_HEADER_BYTES;
        s->limiter = opts->limiter;
        s->rate = opts->rate;
        s->rate_expensive = opts->rate_expensive;
        s->cors = opts->cors;
        atomic_init(&s->stopping, false);
        pthread_mutex_init(&s->lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->drained, &ca);
        pthread_cond_init(&s->watchdog_wake, &ca);
        pthread_condattr_destroy(&ca);

        char shown[96];
        dm_log_quote(shown, sizeof(shown), opts->listen ? opts->listen : "127.0.0.1:8080");
        ret = listen_socket(&addr, shown, &s->lsock, err, errlen);
        if (ret < 0)
                goto fail;
        union listen_addr bound;
        socklen_t blen = sizeof(bound);
        if (getsockname(s->lsock, &bound.sa, &blen) == 0)
                s->port =
                    ntohs(bound.sa.sa_family == AF_INET6 ? bound.v6.sin6_port : bound.v4.sin_port);

        unsigned threads = opts->threads > MAX_POOL_THREADS ? MAX_POOL_THREADS : opts->threads;
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                         MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
        if (addr.sa.sa_family == AF_INET6)
                flags |= MHD_USE_IPv6;
        /* The logger goes first so that MHD reports nothing on its own. */
        /* MHD's pool per connection holds the request line and headers (and buffers): twice
         * the header cap, so that our own check, which answers with a problem document,
         * comes first; MHD's plain 431 is the backstop. */
        size_t pool = s->max_header_bytes * 2 + 16384;
        s->daemon = MHD_start_daemon(
            flags, 0, NULL, NULL, on_access, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
            MHD_OPTION_LISTEN_SOCKET, s->lsock, MHD_OPTION_THREAD_POOL_SIZE,
            threads > 1 ? threads : 0u, MHD_OPTION_CONNECTION_LIMIT,
            opts->max_conns ? opts->max_conns : DEFAULT_MAX_CONNS,
            MHD_OPTION_PER_IP_CONNECTION_LIMIT,
            opts->max_conns_per_ip ? opts->max_conns_per_ip : DEFAULT_CONNS_PER_IP,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool, MHD_OPTION_CONNECTION_TIMEOUT,
            opts->idle_timeout_s ? opts->idle_timeout_s : DEFAULT_IDLE_TIMEOUT_S,
            MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
            MHD_OPTION_END);
        if (!s->daemon) {
                snprintf(err, errlen, "cannot start the HTTP server on %s", shown);
                ret = DM_EIO;
                goto fail;
        }
        s->lsock = -1; /* MHD's now */
        if (pthread_create(&s->watchdog, NULL, watchdog_main, s) != 0) {
                MHD_stop_daemon(s->daemon);
                snprintf(err, errlen, "cannot start the HTTP watchdog thread");
                ret = DM_EAGAIN;
                goto fail;
        }
        pthread_setname_np(s->watchdog, "http-watchdog");
        s->watchdog_running = true;
        format_addr(s, &addr);
        *ret_server = s;
        return 0;
fail:
        if (s->lsock >= 0)
                close(s->lsock);
        pthread_cond_destroy(&s->watchdog_wake);
        pthread_cond_destroy(&s->drained);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return ret;
}

const char *dm_http_server_addr(const struct dm_http_server *s)
{
        return s->addr;
}

uint16_t dm_http_server_port(const struct dm_http_server *s)
{
        return s->port;
}

void dm_http_server_stop(struct dm_http_server *s)
{
        struct timespec deadline;

        if (!s)
                return;
        atomic_store(&s->stopping, true);
        MHD_socket lsock = MHD_quiesce_daemon(s->daemon);

        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += DRAIN_TIMEOUT_MS / 1000;
        pthread_mutex_lock(&s->lock);
        while (s->inflight > 0) {
                if (pthread_cond_timedwait(&s->drained, &s->lock, &deadline) != 0)
                        break;
        }
        unsigned left = s->inflight;
        pthread_mutex_unlock(&s->lock);
        if (left)
                dm_log_warn("http", "msg=\"stopping with requests unfinished\" count=%u", left);

        pthread_mutex_lock(&s->lock);
        s->watchdog_stop = true;
        pthread_cond_broadcast(&s->watchdog_wake);
        pthread_mutex_unlock(&s->lock);
        if (s->watchdog_running)
                pthread_join(s->watchdog, NULL);
        MHD_stop_daemon(s->daemon);
        if (lsock != MHD_INVALID_SOCKET)
                close(lsock);
        pthread_cond_destroy(&s->watchdog_wake);
        pthread_cond_destroy(&s->drained);
        pthread_mutex_destroy(&s->lock);
        free(s);
}
