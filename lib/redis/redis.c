/* One way to reach Redis for every backend that uses it. */
#include "redis/redis_int.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "dm/error.h"
#include "dm/hex.h"

/* Percent-decodes a URL part of `len` bytes into out; false on a bad escape or overflow. */
static bool url_part(const char *in, size_t len, char *out, size_t size)
{
        size_t o = 0;

        for (size_t i = 0; i < len; i++) {
                char c = in[i];
                if (c == '%') {
                        if (i + 2 >= len)
                                return false;
                        int hi = dm_hex_digit(in[i + 1]), lo = dm_hex_digit(in[i + 2]);
                        if (hi < 0 || lo < 0)
                                return false;
                        c = (char)(hi * 16 + lo);
                        i += 2;
                }
                if (c == '\0' || o + 1 >= size)
                        return false;
                out[o++] = c;
        }
        out[o] = '\0';
        return true;
}

int dm_redis_url_parse(const char *url, struct dm_redis_target *ret, char *err, size_t errlen)
{
        struct dm_redis_target t = {.port = 6379};
        const char *p, *end, *at, *hostp;
        size_t alen;

        if (!url || strncasecmp(url, "redis://", 8) != 0) {
                snprintf(err, errlen,
                         "REDIS_URL: must start with redis:// (rediss:// is not "
                         "supported by this build)");
                return DM_EINVAL;
        }
        p = url + 8;
        alen = strcspn(p, "/?#");
        end = p + alen;
        at = NULL;
        for (const char *q = p; q < end; q++)
                if (*q == '@')
                        at = q;
        hostp = p;
        if (at) {
                const char *colon = memchr(p, ':', (size_t)(at - p));
                if (colon && !url_part(colon + 1, (size_t)(at - colon - 1), t.password,
                                       sizeof(t.password))) {
                        snprintf(err, errlen,
                                 "REDIS_URL: the password is not valid "
                                 "percent-encoding");
                        return DM_EINVAL;
                }
                hostp = at + 1;
        }
        const char *hend = end;
        if (*hostp == '[') {
                const char *close = memchr(hostp, ']', (size_t)(end - hostp));
                if (!close)
                        goto bad_host;
                if ((size_t)(close - hostp - 1) >= sizeof(t.host))
                        goto bad_host;
                memcpy(t.host, hostp + 1, (size_t)(close - hostp - 1));
                t.host[close - hostp - 1] = '\0';
                hend = close + 1;
        } else {
                const char *colon = memchr(hostp, ':', (size_t)(end - hostp));
                hend = colon ? colon : end;
                if ((size_t)(hend - hostp) >= sizeof(t.host))
                        goto bad_host;
                memcpy(t.host, hostp, (size_t)(hend - hostp));
                t.host[hend - hostp] = '\0';
        }
        if (t.host[0] == '\0')
                goto bad_host;
        if (hend < end) {
                if (*hend != ':' || hend + 1 == end || end - hend - 1 > 5)
                        goto bad_port;
                unsigned port = 0;
                for (const char *q = hend + 1; q < end; q++) {
                        if (*q < '0' || *q > '9')
                                goto bad_port;
                        port = port * 10 + (unsigned)(*q - '0');
                }
                if (port == 0 || port > 65535)
                        goto bad_port;
                t.port = port;
        }
        if (*end == '/' && end[1] && end[1] != '?' && end[1] != '#') {
                unsigned db = 0;
                const char *q = end + 1;
                size_t n = strcspn(q, "?#");
                if (n > 5)
                        goto bad_db;
                for (size_t i = 0; i < n; i++) {
                        if (q[i] < '0' || q[i] > '9')
                                goto bad_db;
                        db = db * 10 + (unsigned)(q[i] - '0');
                }
                t.db = db;
        }
        *ret = t;
        return 0;
bad_host:
        snprintf(err, errlen, "REDIS_URL: no valid host (use redis://host:6379/0)");
        return DM_EINVAL;
bad_port:
        snprintf(err, errlen, "REDIS_URL: the port must be 1-65535");
        return DM_EINVAL;
bad_db:
        snprintf(err, errlen, "REDIS_URL: the database must be a number, as in redis://host/0");
        return DM_EINVAL;
}

static int reply_ok(redisContext *c, redisReply *r, const char *what, char *err, size_t errlen)
{
        int ret = 0;

        if (!r) {
                snprintf(err, errlen, "%s: %s", what, c->errstr);
                return DM_EIO;
        }
        if (r->type == REDIS_REPLY_ERROR) {
                snprintf(err, errlen, "%s refused: %.120s", what, r->str);
                ret = DM_EACCES;
        }
        freeReplyObject(r);
        return ret;
}

int dm_redis_connect(const struct dm_redis_target *t, redisContext **ret_ctx, char *err,
                     size_t errlen)
{
        struct timeval tv = {.tv_sec = 0, .tv_usec = DM_REDIS_TIMEOUT_MS * 1000};
        redisContext *c = redisConnectWithTimeout(t->host, (int)t->port, tv);
        int ret;

        if (!c) {
                snprintf(err, errlen, "out of memory");
                return DM_ENOMEM;
        }
        if (c->err) {
                snprintf(err, errlen, "cannot connect to %s:%u: %s", t->host, t->port, c->errstr);
                ret = DM_ECONNREFUSED;
                goto fail;
        }
        if (redisSetTimeout(c, tv) != REDIS_OK) {
                snprintf(err, errlen, "cannot set a timeout on the Redis connection");
                ret = DM_EIO;
                goto fail;
        }
        if (t->password[0]) {
                ret = reply_ok(c, redisCommand(c, "AUTH %s", t->password), "AUTH", err, errlen);
                if (ret < 0)
                        goto fail;
        }
        if (t->db) {
                ret = reply_ok(c, redisCommand(c, "SELECT %u", t->db), "SELECT", err, errlen);
                if (ret < 0)
                        goto fail;
        }
        *ret_ctx = c;
        return 0;
fail:
        redisFree(c);
        return ret;
}
