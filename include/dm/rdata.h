/* RDATA -> presentation format (RFC 1035 section 5.1), in the one canonical spelling the
 * change detector compares: names lower-cased and absolute ("10 mail.example.com."),
 * character-strings always quoted with '"' and '\' escaped and bytes outside 0x20..0x7e
 * written as \DDD (a TXT record can carry HTML and control characters), hex in lower case,
 * base64 without line breaks. Types without a specific printer use the RFC 3597 form
 * "\# <len> <hex>".
 *
 * Specific printers: A, AAAA, NS, CNAME, DNAME, PTR, MX, TXT, SPF, SOA, HINFO, CAA, SRV,
 * NAPTR, DS, CDS, DNSKEY, CDNSKEY, TLSA, SMIMEA, SSHFP, SVCB, HTTPS (RFC 9460 keys
 * mandatory, alpn, no-default-alpn, port, ipv4hint, ech, ipv6hint, dohpath; other keys as
 * keyNNNN="..."). A record of one of these types whose RDATA does not have the type's
 * shape is an error, never silently printed another way.
 * Thread-safety: no shared state; safe from any thread. */
#ifndef DM_RDATA_H
#define DM_RDATA_H

#include <stddef.h>
#include <stdint.h>

#include "dm/buf.h"

/* Longest presentation of one RDATA (65535 bytes, each at most 4 characters, plus the
 * fixed fields). A dm_buf given to dm_rdata_format should allow at least this much. */
#define DM_RDATA_TEXT_MAX (4 * 65535 + 1024)

/* Appends the presentation of the RDATA at msg[rdoff .. rdoff + rdlen). `msg` is the whole
 * message the RDATA came from, so compressed names (allowed in the RDATA of NS, CNAME,
 * SOA, PTR, MX, SRV, NAPTR, DNAME per RFC 3597 section 4) can be followed; RDATA on its
 * own works too (msg = rdata, rdoff = 0). Nothing is kept.
 * Returns 0; DM_EPARSE when the RDATA is malformed for its type (out is then left as it
 * was); DM_EINVAL when rdoff/rdlen lie outside msg; DM_E2BIG/DM_ENOMEM from the buffer. */
int dm_rdata_format(uint16_t type, const uint8_t *msg, size_t msglen, size_t rdoff, size_t rdlen,
                    struct dm_buf *out);

/* The same into a new string (*ret_text malloc'd, the caller frees it). */
int dm_rdata_to_text(uint16_t type, const uint8_t *msg, size_t msglen, size_t rdoff, size_t rdlen,
                     char **ret_text);

#endif
