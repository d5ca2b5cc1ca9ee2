/* logfmt lines on stderr: `ts=2026-11-25T23:55:24.123Z level=info svc=http msg="..." k=v`.
 * Thread-safe: each line is written with one write(2). */
#ifndef DM_LOG_H
#define DM_LOG_H

#include <stddef.h>

enum dm_log_level { DM_LOG_DEBUG, DM_LOG_INFO, DM_LOG_WARN, DM_LOG_ERROR };

/* Lines below `level` are dropped. Default DM_LOG_INFO. */
void dm_log_set_level(enum dm_log_level level);
/* Parses "debug", "info", "warn", "error". Returns 0 or DM_EINVAL. */
int dm_log_level_parse(const char *s, enum dm_log_level *ret_level);

/* `svc` names the subsystem (svc=...). `fmt` produces the rest of the line after svc, in
 * logfmt, starting with msg="...". Values from outside must go through dm_log_quote(). */
void dm_log(enum dm_log_level level, const char *svc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define dm_log_debug(svc, ...) dm_log(DM_LOG_DEBUG, svc, __VA_ARGS__)
#define dm_log_info(svc, ...) dm_log(DM_LOG_INFO, svc, __VA_ARGS__)
#define dm_log_warn(svc, ...) dm_log(DM_LOG_WARN, svc, __VA_ARGS__)
#define dm_log_error(svc, ...) dm_log(DM_LOG_ERROR, svc, __VA_ARGS__)

/* Writes `s` as a logfmt value into buf: quoted when it holds spaces, quotes, '=' or is
 * empty; control characters and non-ASCII bytes escaped as \xNN; truncated to fit.
 * Returns buf. */
const char *dm_log_quote(char *buf, size_t size, const char *s);

#endif
