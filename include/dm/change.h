/* Change detection: what a domain's scan means for its stored state. Every rule of
 * docs/change-detection.md is decided here, and nowhere else:
 *
 *   - what a lookup's outcome is worth (dm_change_rr_set: canonical values, a set too large
 *     or not ASCII is a failed lookup);
 *   - which observations are the same state (dm_change_fingerprint: canonical values and
 *     status; the TTL of an authoritative answer, never a cache's countdown);
 *   - what is written when the state moved (dm_change_build: current rows, history entries,
 *     the domain's status and its reason).
 *
 * Pure: no store, no clock, no I/O. The caller reads the stored rows (when
 * dm_change_needs_rows says so), passes them in and persists the item it gets back.
 * Thread-safety: no shared state; every function works on what it is given. */
#ifndef DM_CHANGE_H
#define DM_CHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dm/resolver.h"
#include "dm/rrset.h"
#include "dm/store.h"

/* Bytes of a domain's status summary, NUL included ("TXT: timed out; MX: ..."): the size
 * of struct dm_domain.status_error, longer summaries are cut. */
#define DM_CHANGE_STATUS_ERROR_MAX sizeof(((struct dm_domain *)0)->status_error)

/* One record type's outcome in a scan. Starts zeroed with its type set; then exactly one of
 * dm_change_rr_set or dm_change_rr_fail. */
struct dm_change_rr {
        uint16_t type;
        enum dm_rr_status status;
        int err;            /* DM_RRS_ERROR: why (a negative DM_ code); else 0 */
        uint32_t ttl;       /* smallest TTL of the set (0 when empty) */
        bool authoritative; /* the answer had AA: its TTL is the zone's own */
        char **values;      /* canonical (sorted, unique), owned; NULL when empty */
        size_t nvalues;
        /* DM_RRS_ERROR: the server that last failed the lookup ("192.0.2.1:53"), named in
         * the domain's status summary; "" when unknown. Set by the caller after
         * dm_change_rr_set / dm_change_rr_fail, which clear it. */
        char server[64];
};

/* Takes a lookup's answer: status, TTL, AA, and a canonical copy of its values. An answer
 * whose values are not ASCII presentation text becomes DM_RRS_ERROR DM_EPARSE (it could not
 * be stored and read back the same), one whose stored form would pass DM_RRSET_JSON_MAX
 * becomes DM_E2BIG, an ERROR answer without a reason DM_EDNS; memory running out makes it
 * DM_ENOMEM. Never fails: whatever went wrong is the type's error. Frees what rr held. */
void dm_change_rr_set(struct dm_change_rr *rr, const struct dm_dns_answer *answer);
/* The lookup could not be made or finished: DM_RRS_ERROR with `err`. Frees what rr held. */
void dm_change_rr_fail(struct dm_change_rr *rr, int err);
/* Frees the values; the type stays. NULL-safe. */
void dm_change_rr_done(struct dm_change_rr *rr);

/* The fingerprint of a whole observation, rrs in ascending type order without repeats:
 * every type's status and canonical values, and the TTL where it is the zone's own (an
 * authoritative answer), so that a TTL changed on the authoritative side rewrites the
 * current row while a resolver counting its cache down costs no write. Returns 0,
 * DM_EINVAL (types out of order, values not canonical) or DM_ENOMEM. */
int dm_change_fingerprint(const struct dm_change_rr *rrs, size_t n, uint8_t ret_fp[DM_FP_LEN]);

/* One finished scan of one domain. Nothing is owned. */
struct dm_change_scan {
        int64_t domain_id;
        const char *name;
        int64_t observed_at;           /* unix ms of the scan */
        uint8_t task_fp[DM_FP_LEN];    /* the stored fingerprint the task carried */
        uint8_t fp[DM_FP_LEN];         /* dm_change_fingerprint of rrs */
        const struct dm_change_rr *rr; /* ascending type order */
        size_t nrr;
};

/* Whether dm_change_build needs the stored rows: only when the state moved, and not for a
 * domain with nothing stored yet (an all-zero task fingerprint) unless a lookup failed. */
bool dm_change_needs_rows(const struct dm_change_scan *scan);

/* Fills *ret_item (overwritten) for dm_store_dns_commit: domain, check time, both
 * fingerprints, the status (DM_CHECK_ERROR when any type failed, with a summary in
 * status_error) and, when the fingerprint moved, the complete new rows and the history
 * entries. `rows` are the domain's stored rows (dm_store_dns_current; may be NULL when
 * dm_change_needs_rows is false), in any order.
 *
 * The rules, one per row type:
 *   - a failed lookup keeps the stored values, TTL and change time, marks the row ERROR
 *     with its reason and writes no history: a timeout is never "records removed";
 *   - no stored row, or one that never held an answer (changed_at 0), or one whose values
 *     cannot be read: a first observation (before NULL, added = after), empty sets
 *     included;
 *   - otherwise a history entry when the values differ or the answer's class (ok, nodata,
 *     nxdomain) moved, compared with the last answer before any errors; a TTL alone never
 *     makes one, but the row takes the new TTL.
 * The item owns what it points to: release with dm_change_item_done. Returns 0, DM_ENOMEM,
 * or DM_EINVAL when an rr holds values dm_change_rr_set would have refused (the item is
 * then empty either way). */
int dm_change_build(const struct dm_change_scan *scan, const struct dm_rrset_row *rows,
                    size_t nrows, struct dm_dns_commit *ret_item);

/* True when two SOA records in presentation form ("mname rname serial refresh retry expire
 * minimum") differ in the serial alone: a zone edited elsewhere, or re-signed. Such a change
 * is recorded with serial_only set, so that readers can hide it. */
bool dm_change_soa_serial_only(const char *before, const char *after);

/* How a scan moves the domain's overall status, for the operator's log. */
enum dm_change_move {
        DM_CHANGE_MOVE_NONE = 0,   /* still ok, still error, or the first answer */
        DM_CHANGE_MOVE_TO_ERROR,   /* was ok (or pending), now a lookup failed */
        DM_CHANGE_MOVE_FROM_ERROR, /* a lookup had failed, now every one answered */
};

/* Whether this scan takes the domain into `error` or out of it. The status before is read
 * from the stored rows as given to dm_change_build (a row in DM_RRS_ERROR: the domain was
 * in error); with an unchanged fingerprint nothing moved, and with nothing stored (an
 * all-zero task fingerprint and no rows) the domain was pending, never in error. */
enum dm_change_move dm_change_status_move(const struct dm_change_scan *scan,
                                          const struct dm_rrset_row *rows, size_t nrows);

/* Frees what dm_change_build put in the item and zeroes it. NULL-safe. */
void dm_change_item_done(struct dm_dns_commit *item);

#endif
