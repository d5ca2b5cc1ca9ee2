#include "dm/url.h"

#include <string.h>

#include "dm/error.h"

int dm_url_scheme(const char *url, char *buf, size_t size)
{
        const char *colon = url ? strchr(url, ':') : NULL;
        size_t len = colon ? (size_t)(colon - url) : 0;
        if (len == 0 || len >= size)
                return DM_EINVAL;
        for (size_t i = 0; i < len; i++) {
                char c = url[i];
                buf[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        buf[len] = '\0';
        return 0;
}
