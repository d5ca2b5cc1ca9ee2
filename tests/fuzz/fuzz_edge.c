/* Fuzz target for what the edge reads from outside: If-None-Match values from clients,
 * event bodies from the bus (which domain to invalidate), rate policies and CORS origin
 * lists, REDIS_URL values, and any text that goes through secret masking. Properties checked:
 * nothing crashes, masking never writes past its bound, an entity tag matches itself, and a name
 * taken from an event is NUL-free and fits. */
#include "dm/cache.h"
#include "dm/error.h"
#include "dm/http.h"
#include "dm/ratelimit.h"
#include "dm/secret.h"
#ifdef DM_HAVE_HIREDIS
#include "redis/redis_int.h"
#endif

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *s = malloc(size + 1);
        char etag[DM_HTTP_ETAG_LEN];
        char name[DM_CACHE_NAME_MAX];
        static char once[8192], twice[8192];
        struct dm_rate_policy p;
        struct dm_http_cors *c = NULL;
        char err[256];

        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';

        dm_http_etag(data, size, etag);
        if (!dm_http_etag_match(etag, etag))
                abort();
        (void)dm_http_etag_match(s, etag);

        if (dm_cache_event_domain(data, size, name, sizeof(name)) == 0 &&
            (strlen(name) == 0 || strlen(name) >= sizeof(name)))
                abort();

        if (dm_rate_policy_parse(s, &p) == 0 && (p.limit == 0 || p.window_ms < 1000))
                abort();
        if (dm_http_cors_parse(s, err, sizeof(err), &c) == 0)
                (void)dm_http_cors_allow(c, s);
        dm_http_cors_free(c);

#ifdef DM_HAVE_HIREDIS
        struct dm_redis_target t;
        if (dm_redis_url_parse(s, &t, err, sizeof(err)) == 0 &&
            (t.host[0] == '\0' || t.port == 0 || t.port > 65535))
                abort();
#endif

        dm_secret_mask(s, once, sizeof(once));
        if (strlen(once) >= sizeof(once))
                abort();
        /* Masked text masked again stays within bounds (the rules are not idempotent on
         * garbage: masking a parameter can close a URL's userinfo that was open before). */
        dm_secret_mask(once, twice, sizeof(twice));
        if (strlen(twice) >= sizeof(twice))
                abort();
        free(s);
        return 0;
}
