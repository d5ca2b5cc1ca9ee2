/* Registration data: what RDAP (RFC 9083) and WHOIS (port 43) say about a registered
 * domain, normalized into one record, and the rules that compare two records.
 *
 * Everything here is pure (no I/O, no clock) except dm_reg_registrable, which reads the
 * public suffix list once. Text that comes from a server goes through dm_reg_text_clean
 * (valid UTF-8, no control characters) before it reaches a record.
 * Thread-safety: none needed; functions only touch what they are given (the limiter has
 * its own lock). */
#ifndef DM_REGISTRATION_H
#define DM_REGISTRATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dm/name.h"

#define DM_REG_TEXT_MAX 256  /* registrar, registrant fields (bytes with NUL) */
#define DM_REG_STATUS_MAX 64 /* one status ("client transfer prohibited") */
#define DM_REG_MAX_NS 32     /* name servers kept */
#define DM_REG_MAX_STATUSES 32
#define DM_REG_RAW_MAX (256 * 1024)   /* WHOIS text read from one server */
#define DM_REG_RDAP_MAX (1024 * 1024) /* RDAP answer body */

enum dm_reg_status {
        DM_REG_PENDING = 0, /* never checked */
        DM_REG_OK = 1,
        DM_REG_UNSUPPORTED = 2, /* the TLD has neither RDAP nor WHOIS */
        DM_REG_ERROR = 3,       /* the last lookup failed; the last data is kept */
};

enum dm_reg_source { DM_REG_SRC_NONE = 0, DM_REG_SRC_RDAP = 1, DM_REG_SRC_WHOIS = 2 };

struct dm_reg_registrant {
        char name[DM_REG_TEXT_MAX];
        char organization[DM_REG_TEXT_MAX];
        char email[DM_REG_TEXT_MAX];
        char country[DM_REG_TEXT_MAX];
};

/* One normalized view of a registration. Times are unix ms, 0 when not published. */
struct dm_reg_record {
        char registrar[DM_REG_TEXT_MAX];
        int64_t created_at;
        int64_t updated_at; /* RDAP "last changed", WHOIS "Updated Date" */
        int64_t expires_at;
        char name_servers[DM_REG_MAX_NS][DM_NAME_MAX + 1]; /* lower case, no trailing dot */
        size_t nns;
        char statuses[DM_REG_MAX_STATUSES][DM_REG_STATUS_MAX]; /* RDAP spelling */
        size_t nstatuses;
        int dnssec;                          /* -1 not published, 0 unsigned, 1 signed */
        struct dm_reg_registrant registrant; /* all empty: not published */
};

/* An empty record (nothing published). */
void dm_reg_record_init(struct dm_reg_record *r);
/* Sorts and de-duplicates name servers and statuses: the canonical form compared and
 * stored. */
void dm_reg_record_normalize(struct dm_reg_record *r);
/* Whether anything at all is in the record. */
bool dm_reg_record_is_empty(const struct dm_reg_record *r);
bool dm_reg_registrant_is_empty(const struct dm_reg_registrant *p);

/* Adds a name server as the servers write it ("NS1.Example.COM."): cleaned, lower-cased,
 * trailing dot removed. Names that are not host names, and any beyond DM_REG_MAX_NS, are
 * skipped. Returns 0 (added or skipped). */
void dm_reg_add_name_server(struct dm_reg_record *r, const char *s, size_t len);
/* Adds a status, EPP codes turned into RDAP's spelling ("clientTransferProhibited" and
 * "client transfer prohibited" both give the latter); text after the code (a URL, a
 * comment) is dropped. */
void dm_reg_add_status(struct dm_reg_record *r, const char *s, size_t len);
/* Writes the RDAP spelling of one EPP status code into buf: "serverHold" -> "server hold",
 * "ok" -> "active" (RFC 8056). Returns buf. */
const char *dm_reg_status_rdap(const char *code, size_t len, char *buf, size_t size);

/* Copies server text into buf as valid UTF-8 without control characters: invalid bytes
 * become U+FFFD, tabs and other controls (C0, DEL, C1) become a space, runs of spaces
 * collapse to one, both ends are trimmed; cut at a character boundary to fit.
 * Returns the length written. */
size_t dm_reg_text_clean(char *buf, size_t size, const char *s, size_t len);

/* Dates as registries write them: RFC 3339 (with or without fraction, 'Z' or an offset,
 * ' ' for 'T'), "2026-11-25", "2026.11.25", "2026/11/25", "25-Nov-2026", "25.11.2026",
 * optional trailing "UTC"/"GMT"/"(UTC)". Returns 0 or DM_EINVAL. */
int dm_reg_date_parse(const char *s, size_t len, int64_t *ret_unix_ms);

/* The record as the API shows it: {"registrar", "created_at", "updated_at", "expires_at",
 * "name_servers", "statuses", "dnssec", "registrant"} (unset values null). New reference,
 * NULL on ENOMEM. */
json_t *dm_reg_record_to_json(const struct dm_reg_record *r);
/* The reverse, for what the store holds. Returns 0 or DM_EINVAL. */
int dm_reg_record_from_json(const json_t *obj, struct dm_reg_record *ret);

/* The change rule: which fields differ between the stored record (`before`, NULL when
 * nothing was ever recorded) and a successful lookup's (`after`). Returns NULL when nothing
 * differs, else a new object {"<field>": {"before": ..., "after": ...}} of the fields that
 * do (on first sight every published field, before null). Only successful lookups are
 * compared: a failed one is never passed here. *ret_err is DM_ENOMEM when NULL came from
 * memory, else 0. */
json_t *dm_reg_diff(const struct dm_reg_record *before, const struct dm_reg_record *after,
                    int *ret_err);

/* RDAP (RFC 9083) domain answer -> record. Reads the registrar entity's name (vcard
 * "fn"), the registrant entity where published (fn, org, email, country), the events
 * "registration", "expiration" and "last changed" (never "last update of RDAP database",
 * which moves with every answer), nameservers[].ldhName, status[] and
 * secureDNS.delegationSigned. Returns 0, DM_EPARSE (not JSON / not an object) or DM_EINVAL
 * (a JSON object that is not a domain: objectClassName missing or not "domain"), with a
 * one-line reason in err. */
int dm_rdap_parse(const char *data, size_t len, struct dm_reg_record *ret, char *err,
                  size_t errlen);

/* What one WHOIS answer says. */
struct dm_whois_result {
        struct dm_reg_record record;
        bool has_data;                  /* at least one registration field was read */
        bool not_found;                 /* the server says the domain is not registered */
        char referral[DM_NAME_MAX + 1]; /* "Registrar WHOIS Server:" / "refer:" host; "" none */
};

/* Parses WHOIS text ("Key: value" lines in the common spellings). Never fails: unknown
 * lines are ignored. */
void dm_whois_parse(const char *text, size_t len, struct dm_whois_result *ret);
/* Fills the fields of `into` that are empty from `from` (the registrar's answer fills
 * what the registry's left out; the registrant comes from it when the registry has none). */
void dm_reg_record_merge(struct dm_reg_record *into, const struct dm_reg_record *from);

/* RFC 9224 bootstrap ("dns.json"). */
struct dm_rdap_bootstrap;
/* Parses and validates a bootstrap file: an object with "services" an array of
 * [[labels...], [urls...]] where every label is an LDH name and every URL http(s)://.
 * Returns 0, DM_EPARSE, DM_EINVAL (err says what is wrong), DM_ENOMEM. */
int dm_rdap_bootstrap_parse(const char *data, size_t len, char *err, size_t errlen,
                            struct dm_rdap_bootstrap **ret_bs);
void dm_rdap_bootstrap_free(struct dm_rdap_bootstrap *bs);
/* The base URL (ending in '/') serving `domain`: the entry with the longest match of
 * whole labels from the right; https preferred over http. NULL when none (the pointer is
 * owned by bs). */
const char *dm_rdap_bootstrap_lookup(const struct dm_rdap_bootstrap *bs, const char *domain);
/* Entries (labels) in the file, and its "publication" ("" when absent). */
size_t dm_rdap_bootstrap_count(const struct dm_rdap_bootstrap *bs);
const char *dm_rdap_bootstrap_publication(const struct dm_rdap_bootstrap *bs);

/* The registrable domain of an A-label name by the public suffix list
 * ("www.example.co.uk" -> "example.co.uk"; a name under a suffix not in the list takes
 * its last two labels). Uses the system list (/usr/share/publicsuffix, Debian's
 * publicsuffix package) when it is newer than libpsl's built-in copy. Returns 0 or
 * DM_EINVAL (the name is itself a public suffix). */
int dm_reg_registrable(const char *name, char *buf, size_t size);
/* The last label of a name ("example.co.uk" -> "uk"). */
const char *dm_reg_tld(const char *name);

/* Per-server rate limit: at most one request per `gap_ms` to one server, and after a
 * failure (timeout, refusal, 429) a back-off that doubles from `gap_ms` (at least 1 s) up
 * to `max_backoff_ms`, or the server's own Retry-After when it gives one and it is longer.
 * Thread-safe. Servers are keyed by host name (at most 4,096 kept; the least recently used
 * goes). */
struct dm_reg_limiter;
int dm_reg_limiter_new(int64_t gap_ms, int64_t max_backoff_ms, struct dm_reg_limiter **ret);
void dm_reg_limiter_free(struct dm_reg_limiter *l);
/* 0 when a request to `server` may go now (and counts it as sent), else the ms to wait. */
int64_t dm_reg_limiter_take(struct dm_reg_limiter *l, const char *server, int64_t now_ms);
/* Reports how the request went: ok resets the back-off; a failure doubles it.
 * retry_after_ms > 0: the server asked for that pause. */
void dm_reg_limiter_report(struct dm_reg_limiter *l, const char *server, int64_t now_ms, bool ok,
                           int64_t retry_after_ms);

const char *dm_reg_status_name(enum dm_reg_status s);
const char *dm_reg_source_name(enum dm_reg_source s); /* "rdap", "whois", NULL for none */

#endif
