/* Domain names as users type them -> one canonical form. UTS-46 / IDNA2008 via libidn2:
 * "bücher.example" and "xn--bcher-kva.example" are the same domain. */
#ifndef DM_NAME_H
#define DM_NAME_H

#include <stdbool.h>
#include <stddef.h>

#define DM_NAME_MAX 253 /* octets in the A-label form, without trailing dot */
#define DM_LABEL_MAX 63
#define DM_UNAME_MAX 1024 /* bytes of the UTF-8 form */

struct dm_name {
        char ascii[DM_NAME_MAX + 1];    /* A-label form, lower case, no trailing dot */
        char unicode[DM_UNAME_MAX + 1]; /* U-label form (same as ascii when all ASCII) */
};

/* Validates and normalizes `in` (UTF-8, `len` bytes, need not be NUL-terminated).
 * Lower-cases, drops one trailing dot, applies UTS-46 non-transitional processing, then
 * checks: total <= 253, labels 1..63, at least two labels, LDH labels (underscore allowed
 * for labels like _dmarc), no leading/trailing hyphen, not an IP literal, no wildcard, no
 * spaces, control characters, '/', ':' or '@' (URLs are rejected, with a hint).
 * Returns 0 and fills *ret_name, or DM_EBADNAME with a short human reason in `err`
 * (e.g. "label longer than 63 octets"). */
int dm_name_parse(const char *in, size_t len, char *err, size_t errlen, struct dm_name *ret_name);

/* True when s is already in the form dm_name_parse produces and the store keeps:
 * at least two lower-case LDH (and '_') labels of 1..63 octets, none starting or ending
 * with '-', at most 253 octets in all, no trailing dot.
 * A cheap check for names arriving from other processes (task messages). */
bool dm_name_is_stored_form(const char *s);

#endif
