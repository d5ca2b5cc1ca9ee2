/* Which checks run for a domain, and on which TLS ports: the `checks` and `tls_ports`
 * settings of a domain, their names and their stored text. Pure functions, no state. */
#ifndef DM_CHECK_H
#define DM_CHECK_H

#include <stddef.h>
#include <stdint.h>

/* One bit per check. A set of them is an `unsigned`; 0 is "the configured default"
 * (DM_DEFAULT_CHECKS) wherever a domain's setting is stored or carried. */
enum {
        DM_CHECKS_DNS = 1u << 0,
        DM_CHECKS_TLS = 1u << 1,
        DM_CHECKS_REGISTRATION = 1u << 2,
        DM_CHECKS_ALL = DM_CHECKS_DNS | DM_CHECKS_TLS | DM_CHECKS_REGISTRATION,
};

#define DM_CHECKS_TEXT_MAX sizeof("dns,tls,registration")
#define DM_CHECKS_DEFAULT_TEXT "dns,tls,registration"

#define DM_TLS_PORTS_MAX 8      /* ports per domain */
#define DM_TLS_PORT_DEFAULT 443 /* a domain without tls_ports is checked on this one */
#define DM_TLS_PORTS_TEXT_MAX (DM_TLS_PORTS_MAX * 6)

/* The bit of one check name ("dns", "tls", "registration"; case-insensitive), `len` bytes.
 * DM_EINVAL when it names none. */
int dm_check_from_name(const char *s, size_t len, unsigned *ret_bit);
/* The name of one bit, or NULL when `bit` is not exactly one known check. */
const char *dm_check_name(unsigned bit);
/* A comma-separated list of names ("dns,tls"; spaces around names allowed, repeats fold).
 * DM_EINVAL for an unknown or empty name or an empty list, with the reason in `why`. */
int dm_checks_parse(const char *s, char *why, size_t whylen, unsigned *ret_checks);
/* The set as "dns,tls,registration" (in that order), "" for 0. Returns 0 or DM_E2BIG. */
int dm_checks_format(unsigned checks, char *buf, size_t size);

/* TLS port lists as stored: "443,8443" in the order given; "" is the empty list (the
 * default). parse refuses anything but 1..DM_TLS_PORTS_MAX distinct ports 1..65535
 * separated by commas (DM_EINVAL); ports is caller-allocated, DM_TLS_PORTS_MAX. */
int dm_tls_ports_parse(const char *s, uint16_t *ports, size_t *ret_n);
int dm_tls_ports_format(const uint16_t *ports, size_t n, char *buf, size_t size);

#endif
