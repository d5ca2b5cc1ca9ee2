/* Cached reads and conditional requests for the API's hot reads (a domain, its records, its
 * first history page). The cache holds the JSON bytes of a 200; the ETag is the digest of
 * those bytes, so a cached and a freshly built answer with the same content have the same
 * tag, on every Domain Service. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "dm/log.h"

static void finish(struct dm_http_request *req, struct dm_http_response *res, const char *xcache)
{
        char etag[DM_HTTP_ETAG_LEN];

        if (res->status != 200 || res->mhd)
                return;
        dm_http_etag(res->body ? res->body : "", res->body_len, etag);
        if (dm_http_etag_match(dm_http_header(req, "If-None-Match"), etag)) {
                dm_http_response_done(res);
                dm_http_respond_empty(res, 304);
        }
        dm_http_response_header(res, "ETag", etag);
        /* Browsers and proxies may keep it but must ask again (cheap: a 304). */
        dm_http_response_header(res, "Cache-Control", "private, no-cache");
        if (xcache)
                dm_http_response_header(res, "X-Cache", xcache);
}

/* What an answer about a domain is built from moves with these: the scanner moves
 * last_checked_at on every scan (records, statuses and TTLs are written with it), writes move
 * updated_at, and scheduling moves next_check_at. */
static void domain_version(const struct dm_domain *d, char *buf, size_t size)
{
        snprintf(buf, size, "%lld:%lld:%lld:%lld:%lld:%d:%d", (long long)d->id,
                 (long long)d->updated_at, (long long)d->next_check_at,
                 (long long)d->last_checked_at, (long long)d->last_changed_at, (int)d->status,
                 (int)d->enabled);
}

void dm_api_cached(struct dm_http_request *req, struct dm_http_response *res,
                   const struct dm_domain *d, const char *kind, dm_api_build_fn build, void *arg)
{
        struct dm_app *app = req->app;
        char *value = NULL, version[DM_CACHE_VERSION_MAX];
        size_t len = 0;
        uint64_t token = 0;

        if (!app->cache) {
                build(req, res, arg);
                finish(req, res, NULL);
                return;
        }
        domain_version(d, version, sizeof(version));
        if (dm_cache_get_version(app->cache, d->name, kind, version, &value, &len, &token) == 0) {
                dm_http_respond(res, 200, "application/json", value, len);
                free(value);
                finish(req, res, "hit");
                return;
        }
        build(req, res, arg);
        if (res->status == 200 && !res->mhd && res->body &&
            dm_cache_put_version(app->cache, d->name, kind, token, version, res->body,
                                 res->body_len) < 0)
                dm_log_warn("api", "msg=\"cannot cache an answer\" err=\"out of memory\"");
        finish(req, res, "miss");
}

void dm_api_cache_forget(struct dm_app *app, const char *name)
{
        if (app->cache && dm_cache_invalidate(app->cache, name) < 0)
                dm_log_warn("api", "msg=\"cannot invalidate cached answers; the cache is off "
                                   "until Redis is back\"");
}
