/* Check names, sets and TLS port lists (include/dm/check.h). */
#include "dm/check.h"

#include "dm/error.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct {
        unsigned bit;
        const char *name;
} dm_check_names[] = {
    {DM_CHECKS_DNS, "dns"},
    {DM_CHECKS_TLS, "tls"},
    {DM_CHECKS_REGISTRATION, "registration"},
};

#define DM_CHECK_NNAMES (sizeof(dm_check_names) / sizeof(dm_check_names[0]))

int dm_check_from_name(const char *s, size_t len, unsigned *ret_bit)
{
        for (size_t i = 0; i < DM_CHECK_NNAMES; i++) {
                const char *n = dm_check_names[i].name;
                if (strlen(n) == len && strncasecmp(s, n, len) == 0) {
                        *ret_bit = dm_check_names[i].bit;
                        return 0;
                }
        }
        return DM_EINVAL;
}

const char *dm_check_name(unsigned bit)
{
        for (size_t i = 0; i < DM_CHECK_NNAMES; i++) {
                if (dm_check_names[i].bit == bit)
                        return dm_check_names[i].name;
        }
        return NULL;
}

int dm_checks_parse(const char *s, char *why, size_t whylen, unsigned *ret_checks)
{
        unsigned checks = 0;
        const char *p = s;

        for (;;) {
                const char *comma = strchr(p, ',');
                size_t n = comma ? (size_t)(comma - p) : strlen(p);
                while (n > 0 && *p == ' ') {
                        p++;
                        n--;
                }
                while (n > 0 && p[n - 1] == ' ')
                        n--;
                unsigned bit;
                if (n == 0)
                        return dm_errorf(DM_EINVAL, why, whylen,
                                         "empty check name (use dns, tls, registration)");
                if (dm_check_from_name(p, n, &bit) < 0)
                        return dm_errorf(DM_EINVAL, why, whylen,
                                         "unknown check \"%.*s\" (use dns, tls, registration)",
                                         (int)(n > 24 ? 24 : n), p);
                checks |= bit;
                if (!comma)
                        break;
                p = comma + 1;
        }
        *ret_checks = checks;
        return 0;
}

int dm_checks_format(unsigned checks, char *buf, size_t size)
{
        size_t o = 0;
        if (size == 0)
                return DM_E2BIG;
        buf[0] = '\0';
        for (size_t i = 0; i < DM_CHECK_NNAMES; i++) {
                if (!(checks & dm_check_names[i].bit))
                        continue;
                int w = snprintf(buf + o, size - o, "%s%s", o ? "," : "", dm_check_names[i].name);
                if (w < 0 || (size_t)w >= size - o) {
                        buf[0] = '\0';
                        return DM_E2BIG;
                }
                o += (size_t)w;
        }
        return 0;
}

int dm_tls_ports_parse(const char *s, uint16_t *ports, size_t *ret_n)
{
        uint16_t out[DM_TLS_PORTS_MAX];
        size_t n = 0;
        const char *p = s;

        if (*p == '\0') {
                *ret_n = 0;
                return 0;
        }
        for (;;) {
                unsigned long v = 0;
                size_t digits = 0;
                while (*p >= '0' && *p <= '9' && digits < 6) {
                        v = v * 10 + (unsigned long)(*p - '0');
                        p++;
                        digits++;
                }
                if (digits == 0 || digits > 5 || v < 1 || v > 65535 || n == DM_TLS_PORTS_MAX)
                        return DM_EINVAL;
                for (size_t i = 0; i < n; i++) {
                        if (out[i] == v)
                                return DM_EINVAL;
                }
                out[n++] = (uint16_t)v;
                if (*p == '\0')
                        break;
                if (*p != ',')
                        return DM_EINVAL;
                p++;
        }
        memcpy(ports, out, n * sizeof(out[0]));
        *ret_n = n;
        return 0;
}

int dm_tls_ports_format(const uint16_t *ports, size_t n, char *buf, size_t size)
{
        size_t o = 0;
        if (size == 0)
                return DM_E2BIG;
        buf[0] = '\0';
        for (size_t i = 0; i < n; i++) {
                int w = snprintf(buf + o, size - o, "%s%u", i ? "," : "", (unsigned)ports[i]);
                if (w < 0 || (size_t)w >= size - o) {
                        buf[0] = '\0';
                        return DM_E2BIG;
                }
                o += (size_t)w;
        }
        return 0;
}
