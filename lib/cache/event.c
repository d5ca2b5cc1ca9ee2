/* Which cached answers an event makes stale. Every event that names a domain may change
 * what its answers show (records, history, status), so each one invalidates the domain; the
 * generation scheme makes a needless invalidation cost one miss, never a wrong answer. */
#include <string.h>

#include <jansson.h>

#include "dm/cache.h"
#include "dm/error.h"

int dm_cache_event_domain(const void *body, size_t len, char *out, size_t size)
{
        json_error_t jerr;
        json_t *doc = json_loadb(body, len, 0, &jerr);
        int ret = DM_ENOENT;

        if (!doc || !json_is_object(doc)) {
                json_decref(doc);
                return DM_EINVAL;
        }
        json_t *v = json_object_get(doc, "domain");
        if (!json_is_string(v))
                v = json_object_get(doc, "name");
        if (json_is_string(v)) {
                const char *s = json_string_value(v);
                size_t n = json_string_length(v);
                if (n > 0 && n < size && strlen(s) == n) {
                        memcpy(out, s, n + 1);
                        ret = 0;
                }
        }
        json_decref(doc);
        return ret;
}

int dm_cache_invalidate_event(struct dm_cache *c, const char *topic, const void *body, size_t len)
{
        char name[DM_CACHE_NAME_MAX];

        (void)topic;
        if (!c || dm_cache_event_domain(body, len, name, sizeof(name)) < 0)
                return 0;
        return dm_cache_invalidate(c, name);
}
