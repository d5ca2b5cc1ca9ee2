/* logfmt lines on stderr. Each line is formatted into one stack buffer and handed to the
 * kernel with a single write(2), so lines from different threads never interleave and no
 * lock is needed. */
#include "dm/log.h"

#include "dm/error.h"
#include "dm/secret.h"
#include "dm/time.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Long enough for any line the services write; longer ones are cut, never split. */
#define DM_LOG_LINE_MAX 8192

static atomic_int dm_log_threshold = DM_LOG_INFO;
static atomic_int dm_log_fmt = DM_LOG_LOGFMT;

static const char *const dm_log_level_names[] = {
    [DM_LOG_DEBUG] = "debug",
    [DM_LOG_INFO] = "info",
    [DM_LOG_WARN] = "warn",
    [DM_LOG_ERROR] = "error",
};

void dm_log_set_level(enum dm_log_level level)
{
        atomic_store_explicit(&dm_log_threshold, (int)level, memory_order_relaxed);
}

int dm_log_level_parse(const char *s, enum dm_log_level *ret_level)
{
        if (!s)
                return DM_EINVAL;
        for (size_t i = 0; i < sizeof(dm_log_level_names) / sizeof(dm_log_level_names[0]); i++) {
                if (strcmp(s, dm_log_level_names[i]) == 0) {
                        *ret_level = (enum dm_log_level)i;
                        return 0;
                }
        }
        return DM_EINVAL;
}

void dm_log_set_format(enum dm_log_format format)
{
        atomic_store_explicit(&dm_log_fmt, (int)format, memory_order_relaxed);
}

int dm_log_format_parse(const char *s, enum dm_log_format *ret_format)
{
        if (s && strcmp(s, "logfmt") == 0) {
                *ret_format = DM_LOG_LOGFMT;
                return 0;
        }
        if (s && strcmp(s, "json") == 0) {
                *ret_format = DM_LOG_JSON;
                return 0;
        }
        return DM_EINVAL;
}

/* ---- logfmt -> JSON ---- */

struct json_out {
        char *p;
        size_t size; /* room, the closing brace and the NUL kept aside */
        size_t len;
        bool full;
};

static void jo_add(struct json_out *o, const char *s, size_t n)
{
        if (o->full || o->len + n > o->size) {
                o->full = true;
                return;
        }
        memcpy(o->p + o->len, s, n);
        o->len += n;
}

/* One byte of a JSON string's contents. */
static void jo_char(struct json_out *o, unsigned char c)
{
        static const char hex[] = "0123456789abcdef";
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
        char two[2] = {'\\', (char)c};

        if (c == '"' || c == '\\')
                jo_add(o, two, 2);
        else if (c < 0x20 || c >= 0x7f)
                jo_add(o, esc, 6); /* logfmt values never hold these; a guard for callers */
        else
                jo_add(o, (const char *)&c, 1);
}

static bool json_bare_ok(const char *v, size_t n)
{
        if ((n == 4 && memcmp(v, "true", 4) == 0) || (n == 5 && memcmp(v, "false", 5) == 0))
                return true;
        size_t i = (n > 0 && v[0] == '-') ? 1 : 0;
        if (i == n || n - i > 15 || (v[i] == '0' && n - i > 1))
                return false;
        for (; i < n; i++) {
                if (v[i] < '0' || v[i] > '9')
                        return false;
        }
        return true;
}

size_t dm_log_logfmt_to_json(const char *line, size_t len, char *out, size_t size)
{
        struct json_out o = {.p = out, .size = size - 2};
        size_t i = 0, members = 0;

        jo_add(&o, "{", 1);
        while (i < len) {
                while (i < len && line[i] == ' ')
                        i++;
                if (i >= len)
                        break;
                size_t ks = i;
                while (i < len && line[i] != '=' && line[i] != ' ')
                        i++;
                size_t kn = i - ks;
                size_t mark = o.len;
                jo_add(&o, members ? ",\"" : "\"", members ? 2 : 1);
                for (size_t k = ks; k < ks + kn; k++)
                        jo_char(&o, (unsigned char)line[k]);
                jo_add(&o, "\":", 2);
                if (i >= len || line[i] != '=') {
                        jo_add(&o, "\"\"", 2);
                } else if (++i < len && line[i] == '"') {
                        jo_add(&o, "\"", 1);
                        for (i++; i < len && line[i] != '"'; i++) {
                                if (line[i] == '\\' && i + 1 < len &&
                                    (line[i + 1] == '"' || line[i + 1] == '\\'))
                                        i++;
                                jo_char(&o, (unsigned char)line[i]);
                        }
                        i++; /* the closing quote */
                        jo_add(&o, "\"", 1);
                } else {
                        size_t vs = i;
                        while (i < len && line[i] != ' ')
                                i++;
                        if (json_bare_ok(line + vs, i - vs)) {
                                jo_add(&o, line + vs, i - vs);
                        } else {
                                jo_add(&o, "\"", 1);
                                for (size_t k = vs; k < i; k++)
                                        jo_char(&o, (unsigned char)line[k]);
                                jo_add(&o, "\"", 1);
                        }
                }
                if (o.full) {
                        o.len = mark; /* cut at the last whole member */
                        break;
                }
                members++;
        }
        out[o.len++] = '}';
        out[o.len] = '\0';
        return o.len;
}

static void log_write_all(const char *p, size_t n)
{
        while (n > 0) {
                ssize_t w = write(STDERR_FILENO, p, n);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return;
                }
                p += w;
                n -= (size_t)w;
        }
}

void dm_log(enum dm_log_level level, const char *svc, const char *fmt, ...)
{
        if ((int)level < atomic_load_explicit(&dm_log_threshold, memory_order_relaxed))
                return;
        if ((unsigned)level > DM_LOG_ERROR)
                level = DM_LOG_ERROR;

        int saved_errno = errno;
        char line[DM_LOG_LINE_MAX];
        char ts[DM_RFC3339_LEN];
        /* The last byte is kept for the newline, whatever the message length. */
        size_t room = sizeof(line) - 1;

        int n = snprintf(line, room, "ts=%s level=%s svc=%s ", dm_time_format(dm_now_ms(), ts),
                         dm_log_level_names[level], svc ? svc : "-");
        size_t len = (n < 0) ? 0 : ((size_t)n >= room ? room - 1 : (size_t)n);

        va_list ap;
        va_start(ap, fmt);
        n = vsnprintf(line + len, room - len, fmt, ap);
        va_end(ap);
        if (n > 0)
                len += ((size_t)n >= room - len) ? room - len - 1 : (size_t)n;

        line[len] = '\0';
        /* The last line of defence: a URL or parameter password that reached a message
         * (an error text of a library, a URL someone logged) is masked here. */
        char masked[DM_LOG_LINE_MAX];
        dm_secret_mask(line, masked, sizeof(masked) - 1);
        len = strlen(masked);
        if (atomic_load_explicit(&dm_log_fmt, memory_order_relaxed) == DM_LOG_JSON) {
                /* Every escape can grow a byte sixfold; the bound keeps a line whole. */
                char json[DM_LOG_LINE_MAX * 2];
                size_t jn = dm_log_logfmt_to_json(masked, len, json, sizeof(json) - 1);
                json[jn++] = '\n';
                log_write_all(json, jn);
        } else {
                masked[len++] = '\n';
                log_write_all(masked, len);
        }
        errno = saved_errno;
}

static bool log_needs_escape(unsigned char c)
{
        return c < 0x20 || c >= 0x7f || c == '"' || c == '\\';
}

const char *dm_log_quote(char *buf, size_t size, const char *s)
{
        if (!buf || size == 0)
                return buf;
        if (!s)
                s = "";

        bool quote = (*s == '\0');
        for (const unsigned char *p = (const unsigned char *)s; *p && !quote; p++) {
                /* Escaped bytes are quoted too, so a reader never mistakes \xNN for data. */
                if (*p == ' ' || *p == '=' || log_needs_escape(*p))
                        quote = true;
        }

        size_t o = 0;
        /* Room for the closing quote (if any) and the NUL. */
        size_t end = size - 1 - (quote ? 1 : 0);
        if (quote && size < 3) {
                buf[0] = '\0';
                return buf;
        }
        if (quote)
                buf[o++] = '"';
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                char tmp[5];
                size_t tn;
                if (*p == '"' || *p == '\\') {
                        tmp[0] = '\\';
                        tmp[1] = (char)*p;
                        tn = 2;
                } else if (log_needs_escape(*p)) {
                        static const char hex[] = "0123456789abcdef";
                        tmp[0] = '\\';
                        tmp[1] = 'x';
                        tmp[2] = hex[*p >> 4];
                        tmp[3] = hex[*p & 0xf];
                        tn = 4;
                } else {
                        tmp[0] = (char)*p;
                        tn = 1;
                }
                if (o + tn > end)
                        break;
                memcpy(buf + o, tmp, tn);
                o += tn;
        }
        if (quote)
                buf[o++] = '"';
        buf[o] = '\0';
        return buf;
}
