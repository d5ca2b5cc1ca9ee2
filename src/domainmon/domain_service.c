/* The domain service: the REST API on conf.listen and the live event stream. It owns the
 * router (every API file's route table), checks API keys for the routes that need one, and
 * owns the event hub with the feed that fills it from the bus. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "dm/apikey.h"
#include "dm/error.h"
#include "dm/log.h"
#include "dm/time.h"
#include "event_feed.h"

#define IDLE_TIMEOUT_S 60
#define KEY_TOUCH_EVERY_MS 60000

struct dm_domain_service {
        struct dm_app *app;
        struct dm_http_router *router;
        struct dm_http_server *server;
        struct dm_event_hub *hub;
        struct dm_event_feed *feed;
        struct dm_session_secret session_secret;
        struct dm_ratelimit *limiter;
        struct dm_cache *cache;
        struct dm_http_cors *cors;
};

/* The edge's limiter, cache and CORS list, from the configuration. Logs and returns an error
 * for a value that cannot be used. */
static int open_edge(struct dm_domain_service *s)
{
        const struct dm_conf *conf = &s->app->conf;
        char err[256], qerr[300];
        const char *backend;
        int ret;

        ret = dm_ratelimit_open(conf->redis_url, err, sizeof(err), &s->limiter);
        if (ret < 0)
                goto fail;
        backend = dm_conf_cache_backend(conf, err, sizeof(err));
        if (!backend) {
                ret = DM_ECONFIG;
                goto fail;
        }
        struct dm_cache_opts co = {
            .backend = backend,
            .max_bytes = (size_t)conf->cache_bytes,
            .ttl_ms = conf->cache_ttl_ms,
        };
        ret = dm_cache_open(&co, err, sizeof(err), &s->cache);
        if (ret < 0)
                goto fail;
        ret = dm_http_cors_parse(conf->cors_origins, err, sizeof(err), &s->cors);
        if (ret < 0)
                goto fail;
        dm_log_info("domain", "msg=\"edge\" rate_limiter=%s%s cache=%s cors=%s",
                    dm_ratelimit_backend(s->limiter),
                    dm_ratelimit_degraded(s->limiter) ? " rate_limiter_degraded=true" : "",
                    dm_cache_backend(s->cache), dm_http_cors_enabled(s->cors) ? "on" : "off");
        return 0;
fail:
        dm_log_error("domain", "msg=\"cannot set up the HTTP edge\" err=%s",
                     dm_log_quote(qerr, sizeof(qerr), err));
        return ret;
}

static void close_edge(struct dm_domain_service *s)
{
        dm_http_cors_free(s->cors);
        dm_cache_free(s->cache);
        dm_ratelimit_free(s->limiter);
        s->cors = NULL;
        s->cache = NULL;
        s->limiter = NULL;
}

/* Every route table of the API. A new API file declares its table in api.h and is added
 * here. */
static const struct dm_http_route *const route_tables[] = {
    dm_api_meta_routes,  dm_api_domain_routes,       dm_api_dns_routes,
    dm_api_tls_routes,   dm_api_registration_routes, dm_api_event_routes,
    dm_api_alert_routes, dm_api_session_routes,      dm_ui_routes,
};

/* "Bearer <key>" -> the key's scope. Nothing is cached: a revoked key stops working on
 * its next request. */
static int authenticate(void *arg, const char *authorization, struct dm_http_principal *ret)
{
        struct dm_app *app = arg;
        struct dm_api_key k;
        char key[DM_APIKEY_LEN];
        const char *p;
        size_t len;

        if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
                return DM_EACCES;
        p = authorization + 7;
        while (*p == ' ')
                p++;
        /* Trailing whitespace is not part of a header value (RFC 9110 section 5.5). */
        len = strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
                len--;
        if (len >= sizeof(key))
                return DM_EACCES;
        memcpy(key, p, len);
        key[len] = '\0';
        int r = dm_apikey_authenticate(app->store, key, &k);
        if (r < 0)
                return r;
        /* Best effort: "last used" is informational and must not fail the request. It is
         * written at most once a minute per key: every write waits for the store's one
         * writer, which a scan batch may hold, and a read request must not wait for that. */
        int64_t now = dm_now_ms();
        if (k.last_used_at == 0 || now - k.last_used_at >= KEY_TOUCH_EVERY_MS)
                (void)dm_store_key_touch(app->store, k.id, now);
        ret->scope = k.scope;
        ret->key_id = k.id;
        memcpy(ret->key_name, k.name, sizeof(ret->key_name));
        ret->key_name[sizeof(ret->key_name) - 1] = '\0';
        return 0;
}

int dm_domain_service_start(struct dm_app *app, struct dm_domain_service **ret_service)
{
        struct dm_domain_service *s;
        char err[256], qerr[300], qaddr[96];
        bool logged = false; /* the reason is in the log already */
        int ret;

        s = calloc(1, sizeof(*s));
        if (!s)
                return DM_ENOMEM;
        s->app = app;
        /* Domain events go out through the outbox: the relay runs while the API does. */
        ret = dm_app_relay_hold(app);
        if (ret < 0)
                goto fail_free;
        struct dm_event_hub_opts hub_opts = {
            .max_events = (size_t)app->conf.events_replay,
            .max_bytes = (size_t)app->conf.events_replay_bytes,
            .max_streams = (size_t)app->conf.events_max_streams,
            .max_backlog = (size_t)app->conf.events_backlog,
            .heartbeat_ms = app->conf.events_heartbeat_ms,
        };
        ret = open_edge(s);
        if (ret < 0)
                goto fail;
        app->limiter = s->limiter;
        /* With cache "none" the handlers build every answer (and say nothing of a cache). */
        app->cache = strcmp(dm_cache_backend(s->cache), "none") != 0 ? s->cache : NULL;
        ret = dm_event_hub_new(&hub_opts, &s->hub);
        if (ret < 0)
                goto fail;
        /* Subscribed before the API listens: a client that sees the API up may rely on
         * the stream getting what happens from then on. */
        ret = dm_event_feed_start(app->bus, s->hub, s->cache, &s->feed);
        if (ret < 0)
                goto fail;
        app->events = s->hub;
        bool generated = false;
        ret = dm_session_secret_load(app->store, app->conf.secret_key, &s->session_secret,
                                     &generated);
        if (ret < 0) {
                dm_log_error("domain", "msg=\"cannot load the session secret\" err=\"%s\"",
                             dm_strerror(ret));
                goto fail;
        }
        if (generated)
                dm_log_info("domain", "msg=\"SECRET_KEY is not set: web sessions are signed "
                                      "with a secret kept in the database\"");
        app->session_secret = &s->session_secret;
        ret = dm_http_router_new(&s->router);
        if (ret < 0)
                goto fail;
        for (size_t i = 0; i < sizeof(route_tables) / sizeof(route_tables[0]); i++) {
                ret = dm_http_router_add(s->router, route_tables[i]);
                if (ret < 0) {
                        dm_log_error("domain", "msg=\"bad route table\" index=%zu err=\"%s\"", i,
                                     dm_strerror(ret));
                        logged = true;
                        goto fail;
                }
        }

        struct dm_http_server_opts opts = {
            .listen = app->conf.listen,
            .threads = app->conf.http_threads > 0 ? (unsigned)app->conf.http_threads : 1,
            .max_body = app->conf.max_body > 0 ? (size_t)app->conf.max_body : 1048576,
            /* Event streams are connections too, held open for long. */
            .max_conns =
                (unsigned)app->conf.max_connections + (unsigned)app->conf.events_max_streams,
            .max_conns_per_ip = (unsigned)app->conf.max_connections_per_ip,
            .request_timeout_s = (unsigned)((app->conf.request_timeout_ms + 999) / 1000),
            .max_header_bytes = (size_t)app->conf.max_header_bytes,
            .idle_timeout_s = IDLE_TIMEOUT_S,
            .limiter = s->limiter,
            .cors = s->cors,
            .router = s->router,
            .auth = authenticate,
            .auth_arg = app,
            .session_auth = dm_api_session_auth,
            .session_auth_arg = app,
            .app = app,
            .metric_requests = app->m ? app->m->http_requests : NULL,
            .metric_seconds = app->m ? app->m->http_seconds : NULL,
        };
        /* Validated when the configuration was loaded. */
        (void)dm_rate_policy_parse(app->conf.rate_limit, &opts.rate);
        (void)dm_rate_policy_parse(app->conf.rate_limit_expensive, &opts.rate_expensive);
        ret = dm_http_server_start(&opts, err, sizeof(err), &s->server);
        if (ret < 0) {
                dm_log_error("domain", "msg=\"cannot start the HTTP server\" err=%s",
                             dm_log_quote(qerr, sizeof(qerr), err));
                logged = true;
                goto fail;
        }
        dm_log_info("domain", "msg=\"listening\" addr=%s",
                    dm_log_quote(qaddr, sizeof(qaddr), dm_http_server_addr(s->server)));
        *ret_service = s;
        return 0;
fail:
        if (!logged)
                dm_log_error("domain", "msg=\"cannot start\" err=\"%s\"", dm_strerror(ret));
        app->events = NULL;
        app->session_secret = NULL;
        dm_event_feed_stop(s->feed);
        dm_event_hub_free(s->hub);
        dm_http_router_free(s->router);
        app->limiter = NULL;
        app->cache = NULL;
        close_edge(s);
        dm_app_relay_release(app);
fail_free:
        free(s);
        return ret;
}

void dm_domain_service_stop(struct dm_domain_service *s)
{
        if (!s)
                return;
        /* No new events, then every stream ends (MHD may not stop with a stream parked),
         * then the server drains what is left and stops. */
        dm_event_feed_stop(s->feed);
        dm_event_hub_shutdown(s->hub);
        dm_http_server_stop(s->server);
        s->app->events = NULL;
        s->app->session_secret = NULL;
        dm_event_hub_free(s->hub);
        dm_http_router_free(s->router);
        s->app->limiter = NULL;
        s->app->cache = NULL;
        close_edge(s);
        /* After the last request: the events of every write it answered are published. */
        dm_app_relay_release(s->app);
        dm_log_info("domain", "msg=\"stopped\"");
        free(s);
}
