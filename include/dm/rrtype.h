/* DNS record types by name and number. */
#ifndef DM_RRTYPE_H
#define DM_RRTYPE_H

#include <stddef.h>
#include <stdint.h>

#define DM_RRTYPE_MAX_PER_DOMAIN 32

/* Outcome class of one record type's lookup. */
enum dm_rr_status { DM_RRS_OK = 0, DM_RRS_NXDOMAIN = 1, DM_RRS_NODATA = 2, DM_RRS_ERROR = 3 };

/* "ok", "nxdomain", "nodata", "error". */
const char *dm_rr_status_name(enum dm_rr_status s);

enum {
        DM_RR_A = 1,
        DM_RR_NS = 2,
        DM_RR_CNAME = 5,
        DM_RR_SOA = 6,
        DM_RR_PTR = 12,
        DM_RR_HINFO = 13,
        DM_RR_MX = 15,
        DM_RR_TXT = 16,
        DM_RR_AAAA = 28,
        DM_RR_LOC = 29,
        DM_RR_SRV = 33,
        DM_RR_NAPTR = 35,
        DM_RR_DNAME = 39,
        DM_RR_OPT = 41,
        DM_RR_DS = 43,
        DM_RR_SSHFP = 44,
        DM_RR_RRSIG = 46,
        DM_RR_NSEC = 47,
        DM_RR_DNSKEY = 48,
        DM_RR_NSEC3PARAM = 51,
        DM_RR_TLSA = 52,
        DM_RR_SMIMEA = 53,
        DM_RR_CDS = 59,
        DM_RR_CDNSKEY = 60,
        DM_RR_OPENPGPKEY = 61,
        DM_RR_SVCB = 64,
        DM_RR_HTTPS = 65,
        DM_RR_SPF = 99,
        DM_RR_CAA = 257,
};

/* The default set: A, AAAA, MX, TXT, NS, CNAME, SOA, CAA. */
extern const uint16_t dm_rrtype_defaults[];
extern const size_t dm_rrtype_ndefaults;

/* "A", "mx", "TYPE65" -> number. Case-insensitive. Rejects unknown names, TYPE0 and the
 * meta/query types (OPT, ANY, AXFR, IXFR, MAILA, MAILB, TKEY, TSIG).
 * Returns 0 or DM_EINVAL. */
int dm_rrtype_from_name(const char *name, uint16_t *ret_type);

/* Number -> "A", or "TYPE1234" for unnamed types. `buf` of at least 16 bytes; returns a
 * pointer to a static name or to buf. */
const char *dm_rrtype_name(uint16_t type, char *buf);

/* Parses "A,MX,TXT" (spaces allowed) into a de-duplicated list in input order.
 * Returns 0, DM_EINVAL (bad name; `err` says which) or DM_E2BIG (over the max). */
int dm_rrtype_parse_list(const char *list, char *err, size_t errlen, uint16_t *ret_types,
                         size_t *ret_n);

/* Writes "A,MX,TXT" for types[0..n). Returns 0 or DM_E2BIG if it does not fit. */
int dm_rrtype_format_list(const uint16_t *types, size_t n, char *buf, size_t size);

#endif
