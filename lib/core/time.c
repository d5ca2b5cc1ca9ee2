/* Wall-clock and monotonic time, RFC 3339 and durations. Calendar arithmetic is done here
 * (days-from-civil) rather than with timegm/mktime so results never depend on TZ or on
 * the C library's range for time_t. */
#include "dm/time.h"

#include "dm/error.h"

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

static int64_t clock_ms(clockid_t id)
{
        struct timespec ts;
        if (clock_gettime(id, &ts) != 0)
                return 0;
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t dm_now_ms(void)
{
        return clock_ms(CLOCK_REALTIME);
}

int64_t dm_mono_ms(void)
{
        return clock_ms(CLOCK_MONOTONIC);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        int64_t yoe = y - era * 400;
        int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
        int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *ret_y, int *ret_m, int *ret_d)
{
        z += 719468;
        int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        int64_t doe = z - era * 146097;
        int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        int64_t mp = (5 * doy + 2) / 153;
        int d = (int)(doy - (153 * mp + 2) / 5 + 1);
        int m = (int)(mp < 10 ? mp + 3 : mp - 9);
        *ret_y = yoe + era * 400 + (m <= 2);
        *ret_m = m;
        *ret_d = d;
}

static int64_t floor_div(int64_t a, int64_t b)
{
        int64_t q = a / b;
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

const char *dm_time_format(int64_t unix_ms, char *buf)
{
        int64_t days = floor_div(unix_ms, 86400000);
        int64_t rem = unix_ms - days * 86400000;
        int64_t y;
        int m, d;
        civil_from_days(days, &y, &m, &d);
        /* RFC 3339 has four-digit years; anything else is a bug upstream, shown as such. */
        if (y < 0 || y > 9999) {
                snprintf(buf, DM_RFC3339_LEN, "invalid-time");
                return buf;
        }
        snprintf(buf, DM_RFC3339_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (int)y, m, d,
                 (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60),
                 (int)(rem % 1000));
        return buf;
}

/* Reads exactly `n` digits. */
static bool read_digits(const char **p, int n, int *ret)
{
        int v = 0;
        for (int i = 0; i < n; i++) {
                char c = (*p)[i];
                if (c < '0' || c > '9')
                        return false;
                v = v * 10 + (c - '0');
        }
        *p += n;
        *ret = v;
        return true;
}

static bool is_leap(int y)
{
        return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
        static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        return (m == 2 && is_leap(y)) ? 29 : dim[m - 1];
}

int dm_time_parse(const char *s, int64_t *ret_unix_ms)
{
        if (!s)
                return DM_EINVAL;
        const char *p = s;
        int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, off_min = 0;

        if (!read_digits(&p, 4, &y) || *p++ != '-' || !read_digits(&p, 2, &mo) || *p++ != '-' ||
            !read_digits(&p, 2, &d))
                return DM_EINVAL;
        if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
                return DM_EINVAL;

        if (*p != '\0') {
                /* RFC 3339 5.6 allows 't' and, as a readability note, a space. */
                if (*p != 'T' && *p != 't' && *p != ' ')
                        return DM_EINVAL;
                p++;
                if (!read_digits(&p, 2, &h) || *p++ != ':' || !read_digits(&p, 2, &mi) ||
                    *p++ != ':' || !read_digits(&p, 2, &sec))
                        return DM_EINVAL;
                /* 60 is a leap second; it folds into the next minute. */
                if (h > 23 || mi > 59 || sec > 60)
                        return DM_EINVAL;
                if (*p == '.') {
                        p++;
                        if (*p < '0' || *p > '9')
                                return DM_EINVAL;
                        int scale = 100;
                        for (; *p >= '0' && *p <= '9'; p++) {
                                ms += (*p - '0') * scale;
                                scale /= 10;
                        }
                }
                if (*p == 'Z' || *p == 'z') {
                        p++;
                } else if (*p == '+' || *p == '-') {
                        int sign = (*p == '-') ? -1 : 1;
                        int oh, om;
                        p++;
                        if (!read_digits(&p, 2, &oh) || *p++ != ':' || !read_digits(&p, 2, &om))
                                return DM_EINVAL;
                        if (oh > 23 || om > 59)
                                return DM_EINVAL;
                        off_min = sign * (oh * 60 + om);
                } else {
                        return DM_EINVAL;
                }
                if (*p != '\0')
                        return DM_EINVAL;
        }

        int64_t days = days_from_civil(y, mo, d);
        int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - (int64_t)off_min * 60;
        *ret_unix_ms = secs * 1000 + ms;
        return 0;
}

int dm_duration_parse(const char *s, int64_t *ret_ms)
{
        if (!s)
                return DM_EINVAL;
        const char *p = s;
        int64_t v = 0;
        bool overflow = false;

        if (*p < '0' || *p > '9')
                return DM_EINVAL;
        for (; *p >= '0' && *p <= '9'; p++) {
                int digit = *p - '0';
                if (v > (INT64_MAX - digit) / 10)
                        overflow = true;
                else
                        v = v * 10 + digit;
        }

        int64_t mult;
        if (*p == '\0' || (p[0] == 's' && p[1] == '\0'))
                mult = 1000;
        else if (p[0] == 'm' && p[1] == 's' && p[2] == '\0')
                mult = 1;
        else if (p[0] == 'm' && p[1] == '\0')
                mult = 60 * 1000;
        else if (p[0] == 'h' && p[1] == '\0')
                mult = 3600 * 1000;
        else if (p[0] == 'd' && p[1] == '\0')
                mult = 86400 * 1000;
        else
                return DM_EINVAL;

        if (overflow || v > INT64_MAX / mult)
                return DM_ERANGE;
        *ret_ms = v * mult;
        return 0;
}
