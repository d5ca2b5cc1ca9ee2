/* Canonical record sets and what the change detector builds on them.
 *
 * A value list is an array of presentation-format strings (dm_rdata_format). It is
 * canonical when sorted by bytes (strcmp) without duplicates: the answer order of a
 * round-robin server then never looks like a change. Two canonical lists are the same set
 * exactly when they are equal element by element.
 * Thread-safety: no shared state; every function works on what it is given. */
#ifndef DM_RRSET_H
#define DM_RRSET_H

#include <stddef.h>
#include <stdint.h>

#include "dm/rrtype.h"

#define DM_FP_LEN 16 /* bytes of a state fingerprint; all zero = no state yet */

/* Makes values[0..*n) canonical in place: sorts by strcmp and frees dropped duplicates
 * (the strings are malloc'd and owned by the array's owner). *n is updated. */
void dm_rrset_canonicalize(char **values, size_t *n);

/* What changed between two canonical lists. The arrays are malloc'd (release with
 * dm_rrset_delta_done); their strings point into the inputs and are not owned, so the
 * inputs must outlive the delta. Both lists come out sorted. */
struct dm_rrset_delta {
        char **added; /* in after, not in before */
        size_t nadded;
        char **removed; /* in before, not in after */
        size_t nremoved;
};

/* Inputs must be canonical. Returns 0 or DM_ENOMEM (ret_delta untouched). */
int dm_rrset_diff(char *const *before, size_t nbefore, char *const *after, size_t nafter,
                  struct dm_rrset_delta *ret_delta);
/* Frees the arrays (not the strings) and empties the delta. NULL-safe. */
void dm_rrset_delta_done(struct dm_rrset_delta *d);

/* Fingerprint of one domain's observation: SHA-256 over every record type's status,
 * canonical values and, where it belongs to the state, TTL, truncated to DM_FP_LEN bytes.
 * Equal observations give equal fingerprints whatever order the lookups finished in,
 * provided the types are added in ascending type order (dm_fp_add enforces it). A type with
 * status DM_RRS_ERROR contributes only (type, ERROR): a failed lookup is never read as an
 * empty set. Whether a TTL belongs to the state is the caller's rule (lib/dns/change.c: an
 * authoritative answer's TTL does, a cache's countdown does not); a TTL left out never
 * contributes. The all-zero value ("no state yet") is never produced.
 * A struct dm_fp owns a digest context between dm_fp_init and dm_fp_final/dm_fp_done. */
struct dm_fp {
        void *ctx;          /* EVP_MD_CTX, owned */
        uint32_t last_type; /* last type added + 1; 0 before the first */
        int err;            /* first error seen; reported by dm_fp_final */
};

/* The `ttl` of dm_fp_add for a set whose TTL is not part of the state. */
#define DM_FP_NO_TTL (-1)

/* Returns 0 or DM_ENOMEM. */
int dm_fp_init(struct dm_fp *fp);
/* Adds one record type. `values` must be canonical (they are ignored for DM_RRS_ERROR, and
 * so is `ttl`). `ttl` is the set's TTL (0..UINT32_MAX) when it is part of the state, or
 * DM_FP_NO_TTL. Returns 0; DM_EINVAL when `type` is not above the previous type added, the
 * values are not canonical or `ttl` is out of range (the fingerprint is then unusable:
 * dm_fp_final fails too). */
int dm_fp_add(struct dm_fp *fp, uint16_t type, enum dm_rr_status status, int64_t ttl,
              char *const *values, size_t n);
/* Writes the fingerprint and releases the context. Returns 0, or the first error of
 * dm_fp_add/hashing (out untouched). Either way the context is released. */
int dm_fp_final(struct dm_fp *fp, uint8_t out[DM_FP_LEN]);
/* Releases the context without a result (a fingerprint abandoned halfway). NULL-safe. */
void dm_fp_done(struct dm_fp *fp);

/* Bytes of one encoded set. The JSON form at most doubles the presentation text ('"' and
 * '\\' gain a backslash) and adds 3 bytes a value, so twice DM_DNS_ANSWER_TEXT_MAX
 * (dm/dnswire.h, the most text an answer may carry) and the brackets always fit; a store
 * refuses a row above it. */
#define DM_RRSET_JSON_MAX ((256u << 10) + 2)

/* ["a","b"]: a JSON array of the values, for storage. '"' and '\' are escaped, control
 * characters and DEL as \u00XX. Values are the ASCII of the presentation format: a byte
 * above 0x7f is refused (DM_EINVAL) so that the text reads back byte for byte.
 * *ret_json is malloc'd (the caller frees it). Returns 0, DM_EINVAL, DM_E2BIG or
 * DM_ENOMEM. */
int dm_rrset_values_to_json(char *const *values, size_t n, char **ret_json);
/* Reads such an array back. *ret_values is a malloc'd array of malloc'd strings (free with
 * dm_rrset_values_free); an empty array gives NULL and 0. Returns 0, DM_EPARSE (not an
 * array of strings, or a string with a NUL) or DM_ENOMEM. */
int dm_rrset_values_from_json(const char *json, char ***ret_values, size_t *ret_n);
/* Frees n strings and the array. NULL-safe. */
void dm_rrset_values_free(char **values, size_t n);

#endif
