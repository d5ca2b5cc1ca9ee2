/* One registration check: RDAP (over HTTP(S), libcurl) when the bootstrap file names a
 * server for the TLD, else WHOIS over TCP (port 43 unless configured): the TLD's server,
 * then the registrar's server it refers to. Blocking, bounded by a deadline: call it from a
 * worker thread. The rules it applies are in dm/registration.h; this is the I/O and the
 * order of asking.
 * Thread-safety: any number of threads may call dm_reg_lookup with one config at once (the
 * limiter and the WHOIS server cache have their own locks). */
#ifndef DM_REGLOOKUP_H
#define DM_REGLOOKUP_H

#include <stdatomic.h>
#include <stdint.h>

#include "dm/registration.h"

struct dm_reg_lookup_conf {
        const struct dm_rdap_bootstrap *bootstrap; /* not owned */
        /* "host[:port]": asked for every domain without RDAP, instead of the TLD's server
         * found through whois_root. NULL: look it up. */
        const char *whois_server;
        /* "host[:port]" of the server that names each TLD's WHOIS server ("refer:"). */
        const char *whois_root;
        int64_t timeout_ms;             /* per server asked */
        struct dm_reg_limiter *limiter; /* not owned */
        /* Longest wait for a server's rate limit that a lookup sleeps through; a longer
         * one ends the lookup with DM_EAGAIN and *retry_at set. */
        int64_t max_wait_ms;
        /* When it turns true (a stopping service), a lookup in progress ends within about
         * 100 ms with DM_ECANCELED. NULL: never. */
        const atomic_bool *cancel;
};

struct dm_reg_result {
        enum dm_reg_status status; /* OK, UNSUPPORTED or ERROR */
        enum dm_reg_source source;
        char registrable[DM_NAME_MAX + 1];
        char error[256];             /* why, for ERROR and UNSUPPORTED */
        struct dm_reg_record record; /* with OK */
        char *raw;                   /* with OK from WHOIS: the text, cleaned; malloc'd */
        int64_t retry_at;            /* with DM_EAGAIN: unix ms when the server allows */
};

/* Caches and libcurl's global state. Call once before the first lookup (idempotent). */
int dm_reg_lookup_init(void);

/* Looks `name` (an A-label) up. Returns 0 with ret->status saying how it went (a failed
 * lookup is status ERROR with a reason, not an error return), DM_EAGAIN when a server's
 * rate limit asks for a wait longer than max_wait_ms (nothing was sent), DM_ECANCELED
 * (conf->cancel), DM_ENOMEM.
 * Free ret with dm_reg_result_done. */
int dm_reg_lookup(const struct dm_reg_lookup_conf *conf, const char *name,
                  struct dm_reg_result *ret);
void dm_reg_result_done(struct dm_reg_result *r);

/* Cleans WHOIS text for storing: valid UTF-8 (invalid bytes become U+FFFD), line feeds
 * kept, carriage returns dropped, every other control character a space. malloc'd; NULL on
 * ENOMEM. */
char *dm_reg_raw_clean(const char *s, size_t len);

/* Reads a bootstrap file from a path or an http(s):// URL into *ret (malloc'd, NUL-ended)
 * and validates it. Returns 0, DM_EIO (with the reason in err), DM_E2BIG, or what
 * dm_rdap_bootstrap_parse returns. */
int dm_rdap_bootstrap_fetch(const char *path_or_url, int64_t timeout_ms, char **ret,
                            size_t *ret_len, char *err, size_t errlen);

#endif
