/* Path routing. Patterns are split into segments once, when a table is added; matching a
 * request is then a walk over raw segments with no allocation. Captures are decoded only
 * for the route chosen, so a malformed escape in a path no route wants is a plain 404. */
#include "dm/http.h"

#include <stdlib.h>
#include <string.h>

#include "dm/error.h"
#include "dm/hex.h"

struct route_seg {
        char *text; /* literal text, or the capture name */
        size_t len;
        bool capture;
};

struct route_entry {
        const struct dm_http_route *route;
        size_t nseg;
        struct route_seg segs[DM_HTTP_MAX_SEGMENTS];
};

struct dm_http_router {
        struct route_entry *entries;
        size_t n;
        size_t cap;
};

static const struct {
        unsigned bit;
        const char *name;
} method_names[] = {
    {DM_HTTP_GET, "GET"},         {DM_HTTP_HEAD, "HEAD"},   {DM_HTTP_POST, "POST"},
    {DM_HTTP_PUT, "PUT"},         {DM_HTTP_PATCH, "PATCH"}, {DM_HTTP_DELETE, "DELETE"},
    {DM_HTTP_OPTIONS, "OPTIONS"},
};

unsigned dm_http_method_parse(const char *name)
{
        if (!name)
                return 0;
        for (size_t i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++) {
                if (strcmp(method_names[i].name, name) == 0)
                        return method_names[i].bit;
        }
        return 0;
}

const char *dm_http_allow_format(unsigned methods, char *buf, size_t size)
{
        size_t o = 0;

        if (size == 0)
                return buf;
        buf[0] = '\0';
        for (size_t i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++) {
                if (!(methods & method_names[i].bit))
                        continue;
                const char *sep = o ? ", " : "";
                size_t need = strlen(sep) + strlen(method_names[i].name);
                if (o + need >= size)
                        break;
                memcpy(buf + o, sep, strlen(sep));
                o += strlen(sep);
                memcpy(buf + o, method_names[i].name, strlen(method_names[i].name));
                o += strlen(method_names[i].name);
                buf[o] = '\0';
        }
        return buf;
}

long dm_http_pct_decode(const char *in, size_t len, char *out, size_t size)
{
        size_t o = 0;

        if (size == 0)
                return -1;
        for (size_t i = 0; i < len; i++) {
                char c = in[i];
                if (c == '%') {
                        if (i + 2 >= len)
                                return -1;
                        int hi = dm_hex_digit(in[i + 1]), lo = dm_hex_digit(in[i + 2]);
                        if (hi < 0 || lo < 0)
                                return -1;
                        c = (char)(hi * 16 + lo);
                        if (c == '\0')
                                return -1;
                        i += 2;
                }
                if (o + 1 >= size)
                        return -1;
                out[o++] = c;
        }
        out[o] = '\0';
        return (long)o;
}

int dm_http_router_new(struct dm_http_router **ret_router)
{
        struct dm_http_router *r = calloc(1, sizeof(*r));
        if (!r)
                return DM_ENOMEM;
        *ret_router = r;
        return 0;
}

static void entry_done(struct route_entry *e)
{
        for (size_t i = 0; i < e->nseg; i++)
                free(e->segs[i].text);
        e->nseg = 0;
}

void dm_http_router_free(struct dm_http_router *r)
{
        if (!r)
                return;
        for (size_t i = 0; i < r->n; i++)
                entry_done(&r->entries[i]);
        free(r->entries);
        free(r);
}

static bool one_bit(unsigned m)
{
        return m != 0 && (m & (m - 1)) == 0;
}

static bool literal_char_ok(char c)
{
        /* Unreserved and sub-delims of RFC 3986, minus the braces that mark captures. */
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               strchr("-._~!$&'()*+,;=:@", c) != NULL;
}

static bool capture_name_ok(const char *s, size_t len)
{
        if (len == 0)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                      (i > 0 && c >= '0' && c <= '9')))
                        return false;
        }
        return true;
}

/* Splits `pattern` into e->segs. "/" is the pattern with no segments. */
static int parse_pattern(const char *pattern, struct route_entry *e)
{
        size_t ncap = 0;
        int ret;

        e->nseg = 0;
        if (pattern[0] != '/')
                return DM_EINVAL;
        if (pattern[1] == '\0')
                return 0;
        const char *p = pattern + 1;
        for (;;) {
                const char *end = strchr(p, '/');
                size_t len = end ? (size_t)(end - p) : strlen(p);
                bool capture = len >= 2 && p[0] == '{' && p[len - 1] == '}';
                const char *text = capture ? p + 1 : p;
                size_t tlen = capture ? len - 2 : len;

                if (len == 0) {
                        ret = DM_EINVAL;
                        goto fail;
                }
                if (e->nseg == DM_HTTP_MAX_SEGMENTS) {
                        ret = DM_E2BIG;
                        goto fail;
                }
                if (capture) {
                        if (!capture_name_ok(text, tlen)) {
                                ret = DM_EINVAL;
                                goto fail;
                        }
                        if (++ncap > DM_HTTP_MAX_CAPTURES) {
                                ret = DM_E2BIG;
                                goto fail;
                        }
                } else {
                        for (size_t i = 0; i < tlen; i++) {
                                if (!literal_char_ok(text[i])) {
                                        ret = DM_EINVAL;
                                        goto fail;
                                }
                        }
                }
                char *copy = strndup(text, tlen);
                if (!copy) {
                        ret = DM_ENOMEM;
                        goto fail;
                }
                e->segs[e->nseg++] = (struct route_seg){copy, tlen, capture};
                if (!end)
                        break;
                p = end + 1;
        }
        return 0;
fail:
        entry_done(e);
        return ret;
}

static bool same_shape(const struct route_entry *a, const struct route_entry *b)
{
        if (a->nseg != b->nseg)
                return false;
        for (size_t i = 0; i < a->nseg; i++) {
                if (a->segs[i].capture != b->segs[i].capture)
                        return false;
                if (!a->segs[i].capture && strcmp(a->segs[i].text, b->segs[i].text) != 0)
                        return false;
        }
        return true;
}

int dm_http_router_add(struct dm_http_router *r, const struct dm_http_route *table)
{
        size_t n = 0, old_n = r->n;
        int ret;

        while (table[n].pattern)
                n++;
        if (r->n + n > r->cap) {
                size_t cap = r->cap ? r->cap : 16;
                while (cap < r->n + n)
                        cap *= 2;
                struct route_entry *grown = realloc(r->entries, cap * sizeof(*grown));
                if (!grown)
                        return DM_ENOMEM;
                r->entries = grown;
                r->cap = cap;
        }
        for (size_t i = 0; i < n; i++) {
                const struct dm_http_route *rt = &table[i];
                struct route_entry *e = &r->entries[r->n];

                if (!one_bit(rt->method) || rt->method == DM_HTTP_HEAD || !rt->handler) {
                        ret = DM_EINVAL;
                        goto rollback;
                }
                e->route = rt;
                ret = parse_pattern(rt->pattern, e);
                if (ret < 0)
                        goto rollback;
                for (size_t j = 0; j < r->n; j++) {
                        if (r->entries[j].route->method == rt->method &&
                            same_shape(&r->entries[j], e)) {
                                entry_done(e);
                                ret = DM_EINVAL;
                                goto rollback;
                        }
                }
                r->n++;
        }
        return 0;
rollback:
        while (r->n > old_n)
                entry_done(&r->entries[--r->n]);
        return ret;
}

/* Raw path segments, pointing into the path. */
struct path_segs {
        size_t n;
        const char *s[DM_HTTP_MAX_SEGMENTS];
        size_t len[DM_HTTP_MAX_SEGMENTS];
};

static bool split_path(const char *path, struct path_segs *ps)
{
        ps->n = 0;
        if (path[0] != '/')
                return false;
        if (path[1] == '\0')
                return true;
        const char *p = path + 1;
        for (;;) {
                const char *end = strchr(p, '/');
                if (ps->n == DM_HTTP_MAX_SEGMENTS)
                        return false;
                ps->s[ps->n] = p;
                ps->len[ps->n] = end ? (size_t)(end - p) : strlen(p);
                ps->n++;
                if (!end)
                        return true;
                p = end + 1;
        }
}

static bool entry_matches(const struct route_entry *e, const struct path_segs *ps)
{
        if (e->nseg != ps->n)
                return false;
        for (size_t i = 0; i < e->nseg; i++) {
                if (e->segs[i].capture) {
                        if (ps->len[i] == 0)
                                return false;
                } else if (e->segs[i].len != ps->len[i] ||
                           memcmp(e->segs[i].text, ps->s[i], ps->len[i]) != 0) {
                        return false;
                }
        }
        return true;
}

/* True when a is more specific than b: a literal where b captures, at the first segment
 * where they differ in kind. */
static bool more_specific(const struct route_entry *a, const struct route_entry *b)
{
        for (size_t i = 0; i < a->nseg && i < b->nseg; i++) {
                if (a->segs[i].capture != b->segs[i].capture)
                        return !a->segs[i].capture;
        }
        return false;
}

int dm_http_router_match(const struct dm_http_router *r, unsigned method, const char *path,
                         struct dm_http_match *ret_match)
{
        struct path_segs ps;
        const struct route_entry *best = NULL;
        unsigned want = method == DM_HTTP_HEAD ? DM_HTTP_GET : method;
        unsigned allow = 0;
        char buf[sizeof(ret_match->buf)];
        size_t offsets[DM_HTTP_MAX_CAPTURES], lens[DM_HTTP_MAX_CAPTURES];
        size_t ncap = 0, used = 0;

        if (split_path(path, &ps)) {
                for (size_t i = 0; i < r->n; i++) {
                        const struct route_entry *e = &r->entries[i];
                        if (!entry_matches(e, &ps))
                                continue;
                        allow |= e->route->method;
                        if (e->route->method == DM_HTTP_GET)
                                allow |= DM_HTTP_HEAD;
                        if (want && e->route->method == want && (!best || more_specific(e, best)))
                                best = e;
                }
        }
        /* Decoded into a local buffer first: *ret_match is written only on success. */
        for (size_t i = 0; best && i < best->nseg; i++) {
                if (!best->segs[i].capture)
                        continue;
                long n = dm_http_pct_decode(ps.s[i], ps.len[i], buf + used, sizeof(buf) - used);
                if (n < 0)
                        return DM_EINVAL;
                offsets[ncap] = used;
                lens[ncap++] = (size_t)n;
                used += (size_t)n + 1;
        }

        ret_match->route = best ? best->route : NULL;
        ret_match->allow = allow;
        ret_match->ncaptures = ncap;
        memcpy(ret_match->buf, buf, used);
        if (used == 0)
                ret_match->buf[0] = '\0';
        for (size_t i = 0, c = 0; best && i < best->nseg; i++) {
                if (!best->segs[i].capture)
                        continue;
                ret_match->captures[c] = (struct dm_http_capture){
                    best->segs[i].text, ret_match->buf + offsets[c], lens[c]};
                c++;
        }
        return 0;
}
