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
        masked[len++] = '\n';
        log_write_all(masked, len);
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
