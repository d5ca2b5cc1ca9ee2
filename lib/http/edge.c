/* The decisions of the HTTP edge that need no connection: entity tags and conditional
 * requests, CORS origins, the headers every response carries, and the effective scope of a
 * route. The server applies them; the unit tests check them here. */
#include "dm/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "dm/error.h"

/* ---- entity tags ---- */

void dm_http_etag(const void *body, size_t len, char out[DM_HTTP_ETAG_LEN])
{
        static const char hex[] = "0123456789abcdef";
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        size_t o = 0;

        if (EVP_Digest(body, len, md, &mdlen, EVP_sha256(), NULL) != 1)
                mdlen = 0;
        out[o++] = '"';
        /* 128 bits: no two answers of one resource meet by chance. */
        for (unsigned i = 0; i < 16; i++) {
                unsigned char b = i < mdlen ? md[i] : 0;
                out[o++] = hex[b >> 4];
                out[o++] = hex[b & 15];
        }
        out[o++] = '"';
        out[o] = '\0';
}

/* If-None-Match uses the weak comparison (RFC 9110 section 13.1.2): W/ prefixes are
 * ignored on both sides. */
bool dm_http_etag_match(const char *if_none_match, const char *etag)
{
        const char *p = if_none_match;
        const char *e = etag;
        size_t elen;

        if (!p || !e)
                return false;
        if (strncmp(e, "W/", 2) == 0)
                e += 2;
        elen = strlen(e);
        for (;;) {
                while (*p == ' ' || *p == '\t' || *p == ',')
                        p++;
                if (!*p)
                        return false;
                if (*p == '*') {
                        const char *q = p + 1;
                        while (*q == ' ' || *q == '\t')
                                q++;
                        if (*q == '\0' || *q == ',')
                                return true;
                        return false; /* garbage after '*': no match */
                }
                if (strncmp(p, "W/", 2) == 0)
                        p += 2;
                if (*p != '"')
                        return false; /* not a list of entity tags: no match */
                const char *close = strchr(p + 1, '"');
                if (!close)
                        return false;
                size_t tlen = (size_t)(close - p + 1);
                if (tlen == elen && memcmp(p, e, elen) == 0)
                        return true;
                p = close + 1;
        }
}

/* ---- CORS ---- */

struct dm_http_cors {
        bool any;
        size_t n;
        char **origins;
};

/* An origin as browsers send it: scheme "://" host [":" port], nothing after. */
static bool origin_ok(const char *s, size_t len)
{
        const char *sep;
        if (len == 0 || len > 255)
                return false;
        if (len > 8 && strncmp(s, "https://", 8) == 0)
                sep = s + 8;
        else if (len > 7 && strncmp(s, "http://", 7) == 0)
                sep = s + 7;
        else
                return false;
        for (const char *p = sep; p < s + len; p++) {
                char c = *p;
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                      c == ':' || c == '[' || c == ']'))
                        return false;
        }
        return sep < s + len;
}

int dm_http_cors_parse(const char *text, char *err, size_t errlen, struct dm_http_cors **ret)
{
        struct dm_http_cors *c = calloc(1, sizeof(*c));
        const char *p = text;
        int r = DM_EINVAL;

        if (!c)
                return DM_ENOMEM;
        if (!text || !*text) {
                *ret = c; /* no origin: CORS off */
                return 0;
        }
        for (;;) {
                while (*p == ' ')
                        p++;
                size_t len = strcspn(p, ",");
                size_t tl = len;
                while (tl > 0 && p[tl - 1] == ' ')
                        tl--;
                if (tl == 1 && p[0] == '*') {
                        c->any = true;
                } else if (!origin_ok(p, tl)) {
                        snprintf(err, errlen,
                                 "DM_CORS_ORIGINS: \"%.*s\" is not an origin such as "
                                 "https://app.example.com (lower case, no path)",
                                 (int)(tl > 80 ? 80 : tl), p);
                        goto fail;
                } else {
                        char **grown = realloc(c->origins, (c->n + 1) * sizeof(*grown));
                        if (!grown) {
                                r = DM_ENOMEM;
                                goto fail;
                        }
                        c->origins = grown;
                        c->origins[c->n] = strndup(p, tl);
                        if (!c->origins[c->n]) {
                                r = DM_ENOMEM;
                                goto fail;
                        }
                        c->n++;
                }
                if (!p[len])
                        break;
                p += len + 1;
        }
        *ret = c;
        return 0;
fail:
        dm_http_cors_free(c);
        return r;
}

void dm_http_cors_free(struct dm_http_cors *c)
{
        if (!c)
                return;
        for (size_t i = 0; i < c->n; i++)
                free(c->origins[i]);
        free(c->origins);
        free(c);
}

bool dm_http_cors_enabled(const struct dm_http_cors *c)
{
        return c && (c->any || c->n > 0);
}

const char *dm_http_cors_allow(const struct dm_http_cors *c, const char *origin)
{
        if (!c || !origin)
                return NULL;
        if (c->any)
                return "*";
        for (size_t i = 0; i < c->n; i++) {
                if (strcmp(c->origins[i], origin) == 0)
                        return c->origins[i];
        }
        return NULL;
}

/* ---- headers on every response ---- */

const struct dm_http_static_header dm_http_security_headers[] = {
    {"X-Content-Type-Options", "nosniff"},
    {"X-Frame-Options", "DENY"},
    {"Referrer-Policy", "no-referrer"},
    {"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"},
    {"Cross-Origin-Resource-Policy", "same-origin"},
    {NULL, NULL},
};

/* ---- routes ---- */

enum dm_scope dm_http_route_scope(const struct dm_http_route *rt)
{
        if (rt->flags & DM_HTTP_ROUTE_PUBLIC)
                return DM_SCOPE_NONE;
        /* A route that names no scope is an admin route: forgetting the field must lock a
         * route up, never open it. */
        if (rt->scope == DM_SCOPE_NONE)
                return DM_SCOPE_ADMIN;
        return rt->scope;
}
