/* Record type names and numbers (IANA "Resource Record (RR) TYPEs" registry), with the
 * RFC 3597 TYPEnnn form for everything else. */
#include "dm/rrtype.h"

#include "dm/error.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct dm_rrtype_entry {
        uint16_t type;
        const char *name;
};

/* Sorted by number so dm_rrtype_name can stop early; names are the registry's mnemonics. */
static const struct dm_rrtype_entry dm_rrtype_table[] = {
    {DM_RR_A, "A"},
    {DM_RR_NS, "NS"},
    {3, "MD"},
    {4, "MF"},
    {DM_RR_CNAME, "CNAME"},
    {DM_RR_SOA, "SOA"},
    {7, "MB"},
    {8, "MG"},
    {9, "MR"},
    {10, "NULL"},
    {11, "WKS"},
    {DM_RR_PTR, "PTR"},
    {DM_RR_HINFO, "HINFO"},
    {14, "MINFO"},
    {DM_RR_MX, "MX"},
    {DM_RR_TXT, "TXT"},
    {17, "RP"},
    {18, "AFSDB"},
    {19, "X25"},
    {20, "ISDN"},
    {21, "RT"},
    {22, "NSAP"},
    {23, "NSAP-PTR"},
    {24, "SIG"},
    {25, "KEY"},
    {26, "PX"},
    {27, "GPOS"},
    {DM_RR_AAAA, "AAAA"},
    {DM_RR_LOC, "LOC"},
    {30, "NXT"},
    {31, "EID"},
    {32, "NIMLOC"},
    {DM_RR_SRV, "SRV"},
    {34, "ATMA"},
    {DM_RR_NAPTR, "NAPTR"},
    {36, "KX"},
    {37, "CERT"},
    {38, "A6"},
    {DM_RR_DNAME, "DNAME"},
    {40, "SINK"},
    {DM_RR_OPT, "OPT"},
    {42, "APL"},
    {DM_RR_DS, "DS"},
    {DM_RR_SSHFP, "SSHFP"},
    {45, "IPSECKEY"},
    {DM_RR_RRSIG, "RRSIG"},
    {DM_RR_NSEC, "NSEC"},
    {DM_RR_DNSKEY, "DNSKEY"},
    {49, "DHCID"},
    {50, "NSEC3"},
    {DM_RR_NSEC3PARAM, "NSEC3PARAM"},
    {DM_RR_TLSA, "TLSA"},
    {DM_RR_SMIMEA, "SMIMEA"},
    {55, "HIP"},
    {56, "NINFO"},
    {57, "RKEY"},
    {58, "TALINK"},
    {DM_RR_CDS, "CDS"},
    {DM_RR_CDNSKEY, "CDNSKEY"},
    {DM_RR_OPENPGPKEY, "OPENPGPKEY"},
    {62, "CSYNC"},
    {63, "ZONEMD"},
    {DM_RR_SVCB, "SVCB"},
    {DM_RR_HTTPS, "HTTPS"},
    {66, "DSYNC"},
    {DM_RR_SPF, "SPF"},
    {100, "UINFO"},
    {101, "UID"},
    {102, "GID"},
    {103, "UNSPEC"},
    {104, "NID"},
    {105, "L32"},
    {106, "L64"},
    {107, "LP"},
    {108, "EUI48"},
    {109, "EUI64"},
    {249, "TKEY"},
    {250, "TSIG"},
    {251, "IXFR"},
    {252, "AXFR"},
    {253, "MAILB"},
    {254, "MAILA"},
    {255, "ANY"},
    {256, "URI"},
    {DM_RR_CAA, "CAA"},
    {258, "AVC"},
    {259, "DOA"},
    {260, "AMTRELAY"},
    {261, "RESINFO"},
    {262, "WALLET"},
    {32768, "TA"},
    {32769, "DLV"},
};

#define DM_RRTYPE_TABLE_LEN (sizeof(dm_rrtype_table) / sizeof(dm_rrtype_table[0]))

const uint16_t dm_rrtype_defaults[] = {DM_RR_A,  DM_RR_AAAA,  DM_RR_MX,  DM_RR_TXT,
                                       DM_RR_NS, DM_RR_CNAME, DM_RR_SOA, DM_RR_CAA};
const size_t dm_rrtype_ndefaults = sizeof(dm_rrtype_defaults) / sizeof(dm_rrtype_defaults[0]);

/* Types that describe a query or a transport feature, not data that can be monitored:
 * OPT (41) and the whole RFC 6895 Q/Meta range 128-255 (TKEY, TSIG, IXFR, AXFR, MAILB,
 * MAILA, ANY), plus the reserved 0 and 65535. */
static bool rrtype_is_meta(unsigned type)
{
        return type == 0 || type == DM_RR_OPT || (type >= 128 && type <= 255) || type == 65535;
}

int dm_rrtype_from_name(const char *name, uint16_t *ret_type)
{
        if (!name || !*name)
                return DM_EINVAL;

        unsigned type = 0;
        bool found = false;
        for (size_t i = 0; i < DM_RRTYPE_TABLE_LEN; i++) {
                if (strcasecmp(name, dm_rrtype_table[i].name) == 0) {
                        type = dm_rrtype_table[i].type;
                        found = true;
                        break;
                }
        }
        if (!found && strncasecmp(name, "TYPE", 4) == 0) {
                const char *p = name + 4;
                size_t n = strlen(p);
                if (n < 1 || n > 5)
                        return DM_EINVAL;
                for (; *p; p++) {
                        if (*p < '0' || *p > '9')
                                return DM_EINVAL;
                        type = type * 10 + (unsigned)(*p - '0');
                }
                if (type > 65535)
                        return DM_EINVAL;
                found = true;
        }
        if (!found || rrtype_is_meta(type))
                return DM_EINVAL;
        *ret_type = (uint16_t)type;
        return 0;
}

const char *dm_rrtype_name(uint16_t type, char *buf)
{
        for (size_t i = 0; i < DM_RRTYPE_TABLE_LEN; i++) {
                if (dm_rrtype_table[i].type == type)
                        return dm_rrtype_table[i].name;
                if (dm_rrtype_table[i].type > type)
                        break;
        }
        snprintf(buf, 16, "TYPE%u", (unsigned)type);
        return buf;
}

static bool rrtype_is_space(char c)
{
        return c == ' ' || c == '\t';
}

int dm_rrtype_parse_list(const char *list, char *err, size_t errlen, uint16_t *ret_types,
                         size_t *ret_n)
{
        uint16_t types[DM_RRTYPE_MAX_PER_DOMAIN];
        size_t n = 0;

        if (!list)
                list = "";
        const char *p = list;
        for (;;) {
                while (rrtype_is_space(*p))
                        p++;
                const char *start = p;
                while (*p && *p != ',')
                        p++;
                const char *end = p;
                while (end > start && rrtype_is_space(end[-1]))
                        end--;
                size_t len = (size_t)(end - start);

                if (len == 0) {
                        /* An empty list is as wrong as "A,,MX": both are typing mistakes. */
                        if (err && errlen)
                                snprintf(err, errlen, "%s",
                                         *list ? "empty record type in list"
                                               : "no record types given");
                        return DM_EINVAL;
                }
                char tok[24];
                uint16_t t = 0;
                int r = DM_EINVAL;
                if (len < sizeof(tok)) {
                        memcpy(tok, start, len);
                        tok[len] = '\0';
                        r = dm_rrtype_from_name(tok, &t);
                }
                if (r < 0) {
                        if (err && errlen)
                                snprintf(err, errlen, "unknown or unsupported record type \"%.*s\"",
                                         (int)(len > 20 ? 20 : len), start);
                        return DM_EINVAL;
                }

                bool dup = false;
                for (size_t i = 0; i < n; i++)
                        dup = dup || types[i] == t;
                if (!dup) {
                        if (n == DM_RRTYPE_MAX_PER_DOMAIN) {
                                if (err && errlen)
                                        snprintf(err, errlen, "more than %d record types",
                                                 DM_RRTYPE_MAX_PER_DOMAIN);
                                return DM_E2BIG;
                        }
                        types[n++] = t;
                }

                if (*p == '\0')
                        break;
                p++; /* the comma */
        }
        memcpy(ret_types, types, n * sizeof(types[0]));
        *ret_n = n;
        return 0;
}

int dm_rrtype_format_list(const uint16_t *types, size_t n, char *buf, size_t size)
{
        size_t o = 0;
        if (size == 0)
                return DM_E2BIG;
        buf[0] = '\0';
        for (size_t i = 0; i < n; i++) {
                char tmp[16];
                const char *name = dm_rrtype_name(types[i], tmp);
                size_t len = strlen(name);
                size_t need = len + (i > 0 ? 1 : 0);
                if (o + need + 1 > size) {
                        buf[0] = '\0';
                        return DM_E2BIG;
                }
                if (i > 0)
                        buf[o++] = ',';
                memcpy(buf + o, name, len);
                o += len;
                buf[o] = '\0';
        }
        return 0;
}

const char *dm_rr_status_name(enum dm_rr_status s)
{
        switch (s) {
        case DM_RRS_OK:
                return "ok";
        case DM_RRS_NXDOMAIN:
                return "nxdomain";
        case DM_RRS_NODATA:
                return "nodata";
        case DM_RRS_ERROR:
                return "error";
        }
        return "unknown";
}
