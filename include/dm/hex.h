/* Lower-case hexadecimal for bytes: fingerprints, key ids, escapes. */
#ifndef DM_HEX_H
#define DM_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Value of one hex digit (either case), or -1. */
int dm_hex_digit(char c);

/* Writes 2 * n lower-case digits and a NUL into out (2 * n + 1 bytes). */
void dm_hex_encode(const uint8_t *in, size_t n, char *out);

/* Decodes exactly 2 * n digits of s (slen must be 2 * n) into out[0..n).
 * Returns 0 or DM_EINVAL (wrong length or a non-hex character; out is then unspecified). */
int dm_hex_decode(const char *s, size_t slen, uint8_t *out, size_t n);

#endif
