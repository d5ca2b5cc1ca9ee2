/* Time: wall clock in unix milliseconds (what is stored and shown), monotonic for
 * timeouts, RFC 3339 in UTC. */
#ifndef DM_TIME_H
#define DM_TIME_H

#include <stddef.h>
#include <stdint.h>

#define DM_RFC3339_LEN 32 /* buffer size for dm_time_format */

int64_t dm_now_ms(void);  /* CLOCK_REALTIME, unix ms */
int64_t dm_mono_ms(void); /* CLOCK_MONOTONIC, ms */

/* "2026-11-25T23:55:24.123Z" into buf (at least DM_RFC3339_LEN bytes). Returns buf. */
const char *dm_time_format(int64_t unix_ms, char *buf);

/* Parses RFC 3339 with a 'Z' or +hh:mm offset and optional fraction (to ms). Also accepts
 * a bare date "2026-11-25" (midnight UTC). Returns 0 or DM_EINVAL. */
int dm_time_parse(const char *s, int64_t *ret_unix_ms);

/* Parses a duration: "90" (seconds), "90s", "1500ms", "10m", "2h", "1d". Result in ms.
 * Returns 0, DM_EINVAL or DM_ERANGE. */
int dm_duration_parse(const char *s, int64_t *ret_ms);

#endif
