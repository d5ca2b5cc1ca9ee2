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

/* DM_LOG_JSON writes each line as one JSON object with the same fields, in the same order:
 * {"ts":"...","level":"info","svc":"http","msg":"...",...}. Default DM_LOG_LOGFMT. */
enum dm_log_format { DM_LOG_LOGFMT, DM_LOG_JSON };
void dm_log_set_format(enum dm_log_format format);
/* Parses "logfmt", "json". Returns 0 or DM_EINVAL. */
int dm_log_format_parse(const char *s, enum dm_log_format *ret_format);

/* Rewrites one logfmt line (`len` bytes, no newline) as a JSON object into out (NUL-
 * terminated, no newline). Each key=value pair becomes a member in order: a quoted value
 * is unquoted (\" and \\ undone; \xNN kept as the text \xNN, so the JSON shows what
 * logfmt shows and is always valid UTF-8); an unquoted integer, true or false stays a JSON
 * number or boolean; everything else is a string. A word without '=' becomes a member
 * whose value is "". A line that does not fit is cut at a member boundary and the object
 * still closed. Returns the length written. `size` >= 3. */
size_t dm_log_logfmt_to_json(const char *line, size_t len, char *out, size_t size);

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
