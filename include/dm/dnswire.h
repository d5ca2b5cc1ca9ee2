/* DNS wire format: queries out, responses in (RFC 1035 section 4, EDNS0 RFC 6891).
 * Everything read from a response goes through a bounds-checked dm_cursor: compressed
 * names may only point backwards (no loops, no forward pointers), names stop at 255
 * octets, section counts must fit the packet.
 *
 * Names are handled in uncompressed wire form (length-prefixed labels ending with the
 * root label), at most DM_DNS_NAME_MAX octets; callers own those buffers.
 * Thread-safety: every function works on caller-owned data only; safe from any thread. */
#ifndef DM_DNSWIRE_H
#define DM_DNSWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dm/buf.h"
#include "dm/resolver.h"

#define DM_DNS_HEADER_LEN 12
#define DM_DNS_NAME_MAX 255   /* octets of a wire-format name, root label included */
#define DM_DNS_EDNS_SIZE 1232 /* the UDP payload size we advertise (DNS flag day 2020) */
#define DM_DNS_CLASS_IN 1
/* Room for any query dm_dns_query_build writes: header, question, OPT record. */
#define DM_DNS_QUERY_MAX (DM_DNS_HEADER_LEN + DM_DNS_NAME_MAX + 4 + 11)
/* Longest CNAME chain followed inside one answer. */
#define DM_DNS_CNAME_MAX 8
/* Most text one answer may carry: the sum over its canonical values of their length plus
 * 3 (quotes and separator of the stored JSON array). A DNS message is at most 64 KiB, and
 * printable data (names, TXT strings) reads back at about its wire size, so twice that
 * holds every set a message can carry as plain text. Only sets inflated by the
 * presentation format go past it: binary TXT data (4 characters a byte as \DDD) or names
 * spelled again and again through compression pointers (a 64 KiB reply can spell MiB of
 * them). Such a set is reported as an error (DM_E2BIG) rather than stored and repeated in
 * every history entry and change event. */
#define DM_DNS_ANSWER_TEXT_MAX (128u << 10)

/* Header flag bits (second 16-bit word). */
#define DM_DNS_FLAG_QR 0x8000
#define DM_DNS_FLAG_AA 0x0400
#define DM_DNS_FLAG_TC 0x0200
#define DM_DNS_FLAG_RD 0x0100
#define DM_DNS_FLAG_RA 0x0080

enum dm_dns_rcode {
        DM_DNS_RCODE_NOERROR = 0,
        DM_DNS_RCODE_FORMERR = 1,
        DM_DNS_RCODE_SERVFAIL = 2,
        DM_DNS_RCODE_NXDOMAIN = 3,
        DM_DNS_RCODE_NOTIMP = 4,
        DM_DNS_RCODE_REFUSED = 5,
        DM_DNS_RCODE_BADVERS = 16, /* needs the extended bits from OPT */
};

/* "example.com", "example.com." or "." -> wire form into out (DM_DNS_NAME_MAX bytes).
 * Labels must be 1..63 octets; no escapes ('\' is refused). Case is kept.
 * Returns 0 or DM_EINVAL. */
int dm_dns_name_from_text(const char *text, uint8_t *out, size_t *ret_len);

/* Reads a possibly compressed name at c->pos of a cursor spanning the message from its
 * first byte. Each compression pointer must point strictly before the labels that led to
 * it, so every name ends. With `allow_pointers` false a pointer is an error (types whose
 * RDATA names must not be compressed). Writes the uncompressed wire name into out
 * (DM_DNS_NAME_MAX bytes) and on success leaves c just past the name as stored.
 * Returns 0 or DM_EPARSE (c unchanged). */
int dm_dns_name_unpack(struct dm_cursor *c, bool allow_pointers, uint8_t *out, size_t *ret_len);

/* ASCII case-insensitive equality of two wire names. */
bool dm_dns_name_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

/* Whether the wire name `name` is `parent` or lies below it (ASCII case-insensitive, on
 * label boundaries): www.example.com is under example.com, com and the root. */
bool dm_dns_name_is_subdomain(const uint8_t *name, size_t len, const uint8_t *parent,
                              size_t parent_len);

/* Appends the presentation form of a wire name: lower-cased, absolute ("example.com.",
 * "." for the root), with '.' inside a label and the characters \ " ( ) ; @ $ escaped by
 * a backslash and other bytes outside 0x21..0x7e as \DDD. Returns 0 or a dm_buf error. */
int dm_dns_name_format(const uint8_t *wire, size_t len, struct dm_buf *out);

/* dm_dns_query_build_wire flags. */
#define DM_DNS_QUERY_NO_EDNS 0x1u /* no OPT record: for servers that refuse or drop EDNS */

/* Writes a query: `id`, RD=1, one question (qname in wire form as given, case kept, class
 * IN) and, unless `flags` has DM_DNS_QUERY_NO_EDNS, an EDNS0 OPT record advertising
 * DM_DNS_EDNS_SIZE. `out` holds `outlen` bytes (DM_DNS_QUERY_MAX is always enough).
 * Returns 0, DM_EINVAL or DM_E2BIG. */
int dm_dns_query_build_wire(const uint8_t *qname, size_t qname_len, uint16_t type, uint16_t id,
                            unsigned flags, uint8_t *out, size_t outlen, size_t *ret_len);
/* The same from a text name (see dm_dns_name_from_text), with EDNS. */
int dm_dns_query_build(const char *name, uint16_t type, uint16_t id, uint8_t *out, size_t outlen,
                       size_t *ret_len);

/* A parsed message. It points into the packet it was parsed from, which must outlive it. */
struct dm_dns_msg {
        const uint8_t *pkt; /* not owned */
        size_t len;
        uint16_t id;
        uint16_t flags; /* the header's second word (QR, opcode, AA, TC, RD, RA, rcode) */
        uint16_t rcode; /* 12 bits: header rcode plus the OPT record's extended bits */
        uint16_t qdcount, ancount, nscount, arcount;
        uint8_t qname[DM_DNS_NAME_MAX]; /* the question, when qdcount is 1 */
        size_t qname_len;               /* 0 when there is no question */
        uint16_t qtype, qclass;
        size_t an_off, ns_off, ar_off; /* offsets of each section's first record */
        bool has_opt;
        uint16_t edns_size; /* the OPT record's UDP payload size */
        uint8_t edns_version;
};

/* One resource record; rdata_off/rdlen locate its RDATA inside the message. */
struct dm_dns_rr {
        uint8_t owner[DM_DNS_NAME_MAX];
        size_t owner_len;
        uint16_t type;
        uint16_t rclass;
        uint32_t ttl;
        size_t rdata_off;
        uint16_t rdlen;
};

/* Parses the header, the question (at most one) and walks every record of every section:
 * owner names must decompress, RDATA must lie inside the packet, at most one OPT record
 * (in the additional section, owned by the root). Bytes after the last record are
 * ignored. Does not check that it answers anything (see dm_dns_msg_check_reply) and does
 * not look inside RDATA (see dm_rdata_format). Returns 0 or DM_EPARSE. */
int dm_dns_msg_parse(const uint8_t *pkt, size_t len, struct dm_dns_msg *ret_msg);

/* Only the header and the question of a message, for a reply that arrived cut short (a UDP
 * datagram larger than the receive buffer): enough to match it to its query and ask again
 * over TCP. The section counts of the result are zero (the records were not read) and the
 * rcode has only the header's four bits. Returns 0 or DM_EPARSE. */
int dm_dns_msg_parse_header(const uint8_t *pkt, size_t len, struct dm_dns_msg *ret_msg);

/* Whether `m` is a reply to the query (id, qname, qtype): QR set, opcode QUERY, same id,
 * one question with the same name (ASCII case-insensitive), type and class IN. A reply
 * without a question is accepted only for error rcodes (some servers drop it there).
 * Returns 0 or DM_EINVAL (a stray or spoofed packet). */
int dm_dns_msg_check_reply(const struct dm_dns_msg *m, uint16_t id, const uint8_t *qname,
                           size_t qname_len, uint16_t qtype);

/* Reads the record at *pos (start with m->an_off) and moves *pos past it. The caller
 * counts records per section from m's counts. Returns 0 or DM_EPARSE. */
int dm_dns_rr_read(const struct dm_dns_msg *m, size_t *pos, struct dm_dns_rr *ret_rr);

/* dm_dns_msg_answer flags. DM_DNS_ANSWER_AUTH_ONLY: the server is one of the zone's own,
 * so an authoritative empty reply is NODATA even without an SOA. */
#define DM_DNS_ANSWER_AUTH_ONLY 0x1u

/* The outcome of a reply for the question it carries (m->qname, asked as `qtype`), the way
 * the resolver reports it:
 * - rcode other than NOERROR and NXDOMAIN: ERROR (SERVFAIL -> DM_ESERVFAIL, REFUSED ->
 *   DM_EREFUSED, FORMERR -> DM_EFORMERR, NOTIMP -> DM_ENOTSUP, others DM_EDNS);
 * - NXDOMAIN: NXDOMAIN when the reply is authoritative (AA) or from a recursive server
 *   (RA), else ERROR DM_ELAME;
 * - NOERROR: the class IN records of `qtype` owned by the qname or, following up to
 *   DM_DNS_CNAME_MAX CNAME records inside the answer section, by the end of the chain, in
 *   canonical presentation form (sorted, de-duplicated), TTL the minimum of theirs; a
 *   record whose RDATA is malformed makes the answer ERROR DM_EPARSE, a set longer than
 *   DM_DNS_ANSWER_TEXT_MAX makes it ERROR DM_E2BIG. The CNAME target is never queried
 *   again: what the server put in the answer is what counts;
 * - NOERROR without such records is NODATA only when it proves it: AA or RA, and either a
 *   CNAME chain in the answer or an SOA of the name's zone (owned by the name or an
 *   ancestor) in the authority section; with DM_DNS_ANSWER_AUTH_ONLY in `flags`, AA alone.
 *   Otherwise it is ERROR: DM_EREFERRAL when it is not AA and the authority section names
 *   servers (NS) of the name or an ancestor, DM_ELAME for anything else (a lame server,
 *   neither authoritative nor recursive for the name, or no proof). A NOERROR reply without a
 * question is ERROR DM_EFORMERR. ret_answer->authoritative is the AA bit, whatever the status.
 * ret_answer->values is malloc'd: release with dm_dns_answer_done.
 * Returns 0 (the answer is filled, whatever its status) or DM_ENOMEM. */
int dm_dns_msg_answer(const struct dm_dns_msg *m, uint16_t qtype, unsigned flags,
                      struct dm_dns_answer *ret_answer);

/* Frees the values of an answer built by dm_dns_msg_answer and empties it. NULL-safe. */
void dm_dns_answer_done(struct dm_dns_answer *a);

#endif
