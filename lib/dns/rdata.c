/* RDATA presentation, one canonical spelling per record so that comparing strings compares
 * records. Every printer reads through a cursor bounded by the RDATA (compression pointers
 * may only go backwards into the message) and must consume the RDATA exactly. */
#include "dm/rdata.h"

#include "dm/dnswire.h"
#include "dm/error.h"
#include "dm/rrtype.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define RD_TRY(expr)                                                                               \
        do {                                                                                       \
                int rd_ret_ = (expr);                                                              \
                if (rd_ret_)                                                                       \
                        return rd_ret_;                                                            \
        } while (0)

/* SvcParamKeys (RFC 9460 section 14.3.2, RFC 9461). */
enum {
        RD_SVC_MANDATORY = 0,
        RD_SVC_ALPN = 1,
        RD_SVC_NO_DEFAULT_ALPN = 2,
        RD_SVC_PORT = 3,
        RD_SVC_IPV4HINT = 4,
        RD_SVC_ECH = 5,
        RD_SVC_IPV6HINT = 6,
        RD_SVC_DOHPATH = 7,
        RD_SVC_INVALID = 65535,
};

static const char rd_hexdigits[] = "0123456789abcdef";
static const char rd_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Running out of RDATA is malformed RDATA, whatever the cursor calls it. */
static int rd_u8(struct dm_cursor *c, uint8_t *ret)
{
        return dm_cursor_u8(c, ret) ? DM_EPARSE : 0;
}

static int rd_u16(struct dm_cursor *c, uint16_t *ret)
{
        return dm_cursor_u16(c, ret) ? DM_EPARSE : 0;
}

static int rd_u32(struct dm_cursor *c, uint32_t *ret)
{
        return dm_cursor_u32(c, ret) ? DM_EPARSE : 0;
}

static int rd_bytes(struct dm_cursor *c, size_t n, const uint8_t **ret)
{
        return dm_cursor_bytes(c, n, ret) ? DM_EPARSE : 0;
}

static int rd_num(struct dm_buf *b, uint32_t v)
{
        char tmp[10];
        size_t i = sizeof(tmp);
        do {
                tmp[--i] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        return dm_buf_add(b, tmp + i, sizeof(tmp) - i);
}

static int rd_num8(struct dm_cursor *c, struct dm_buf *b)
{
        uint8_t v;
        RD_TRY(rd_u8(c, &v));
        return rd_num(b, v);
}

static int rd_num16(struct dm_cursor *c, struct dm_buf *b)
{
        uint16_t v;
        RD_TRY(rd_u16(c, &v));
        return rd_num(b, v);
}

static int rd_num32(struct dm_cursor *c, struct dm_buf *b)
{
        uint32_t v;
        RD_TRY(rd_u32(c, &v));
        return rd_num(b, v);
}

static int rd_space(struct dm_buf *b)
{
        return dm_buf_addc(b, ' ');
}

static int rd_name(struct dm_cursor *c, bool compressed, struct dm_buf *b)
{
        uint8_t wire[DM_DNS_NAME_MAX];
        size_t len;
        if (dm_dns_name_unpack(c, compressed, wire, &len))
                return DM_EPARSE;
        return dm_dns_name_format(wire, len, b);
}

/* Escaped bytes of a character-string (without the quotes): '"' and '\' get a backslash,
 * bytes outside 0x20..0x7e become \DDD. With `list_item`, ',' and '\' are first escaped
 * for an RFC 9460 value list, so the backslash that does it is escaped in turn. */
static int rd_escaped(struct dm_buf *b, const uint8_t *p, size_t n, bool list_item)
{
        char tmp[512];
        size_t o = 0;

        for (size_t i = 0; i < n; i++) {
                if (o > sizeof(tmp) - 8) {
                        RD_TRY(dm_buf_add(b, tmp, o));
                        o = 0;
                }
                uint8_t ch = p[i];
                if (list_item && (ch == ',' || ch == '\\')) {
                        tmp[o++] = '\\';
                        tmp[o++] = '\\';
                }
                if (ch < 0x20 || ch > 0x7e) {
                        tmp[o++] = '\\';
                        tmp[o++] = (char)('0' + ch / 100);
                        tmp[o++] = (char)('0' + ch / 10 % 10);
                        tmp[o++] = (char)('0' + ch % 10);
                } else if (ch == '"' || ch == '\\') {
                        tmp[o++] = '\\';
                        tmp[o++] = (char)ch;
                } else {
                        tmp[o++] = (char)ch;
                }
        }
        return dm_buf_add(b, tmp, o);
}

static int rd_quoted(struct dm_buf *b, const uint8_t *p, size_t n)
{
        RD_TRY(dm_buf_addc(b, '"'));
        RD_TRY(rd_escaped(b, p, n, false));
        return dm_buf_addc(b, '"');
}

/* One <character-string>: a length octet and that many bytes. */
static int rd_cstring(struct dm_cursor *c, struct dm_buf *b)
{
        uint8_t len;
        const uint8_t *p;
        RD_TRY(rd_u8(c, &len));
        RD_TRY(rd_bytes(c, len, &p));
        return rd_quoted(b, p, len);
}

static int rd_hex(struct dm_buf *b, const uint8_t *p, size_t n)
{
        char tmp[512];
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
                if (o == sizeof(tmp)) {
                        RD_TRY(dm_buf_add(b, tmp, o));
                        o = 0;
                }
                tmp[o++] = rd_hexdigits[p[i] >> 4];
                tmp[o++] = rd_hexdigits[p[i] & 0x0f];
        }
        return dm_buf_add(b, tmp, o);
}

static int rd_base64(struct dm_buf *b, const uint8_t *p, size_t n)
{
        char tmp[512];
        size_t o = 0;
        for (size_t i = 0; i < n; i += 3) {
                if (o == sizeof(tmp)) {
                        RD_TRY(dm_buf_add(b, tmp, o));
                        o = 0;
                }
                uint32_t v = (uint32_t)p[i] << 16;
                if (i + 1 < n)
                        v |= (uint32_t)p[i + 1] << 8;
                if (i + 2 < n)
                        v |= p[i + 2];
                tmp[o++] = rd_b64[v >> 18 & 0x3f];
                tmp[o++] = rd_b64[v >> 12 & 0x3f];
                tmp[o++] = i + 1 < n ? rd_b64[v >> 6 & 0x3f] : '=';
                tmp[o++] = i + 2 < n ? rd_b64[v & 0x3f] : '=';
        }
        return dm_buf_add(b, tmp, o);
}

/* The rest of the RDATA as hex or base64; empty is malformed for the types using it. */
static int rd_rest(struct dm_cursor *c, struct dm_buf *b, bool base64)
{
        size_t n = dm_cursor_left(c);
        const uint8_t *p;
        if (n == 0)
                return DM_EPARSE;
        RD_TRY(rd_bytes(c, n, &p));
        return base64 ? rd_base64(b, p, n) : rd_hex(b, p, n);
}

static int rd_addr(struct dm_buf *b, int family, const uint8_t *p)
{
        char tmp[INET6_ADDRSTRLEN];
        if (family == AF_INET) {
                /* The common case by far; inet_ntop goes through sprintf. */
                size_t o = 0;
                for (int i = 0; i < 4; i++) {
                        uint8_t v = p[i];
                        if (i)
                                tmp[o++] = '.';
                        if (v >= 100)
                                tmp[o++] = (char)('0' + v / 100);
                        if (v >= 10)
                                tmp[o++] = (char)('0' + v / 10 % 10);
                        tmp[o++] = (char)('0' + v % 10);
                }
                return dm_buf_add(b, tmp, o);
        }
        if (!inet_ntop(family, p, tmp, sizeof(tmp)))
                return DM_EPARSE;
        return dm_buf_addstr(b, tmp);
}

static int fmt_addr(struct dm_cursor *c, struct dm_buf *b, int family)
{
        size_t n = family == AF_INET ? 4 : 16;
        const uint8_t *p;
        if (dm_cursor_left(c) != n)
                return DM_EPARSE;
        RD_TRY(rd_bytes(c, n, &p));
        return rd_addr(b, family, p);
}

static int fmt_mx(struct dm_cursor *c, struct dm_buf *b)
{
        RD_TRY(rd_num16(c, b));
        RD_TRY(rd_space(b));
        return rd_name(c, true, b);
}

static int fmt_txt(struct dm_cursor *c, struct dm_buf *b)
{
        if (dm_cursor_left(c) == 0)
                return DM_EPARSE;
        for (bool first = true; dm_cursor_left(c) > 0; first = false) {
                if (!first)
                        RD_TRY(rd_space(b));
                RD_TRY(rd_cstring(c, b));
        }
        return 0;
}

static int fmt_soa(struct dm_cursor *c, struct dm_buf *b)
{
        RD_TRY(rd_name(c, true, b));
        RD_TRY(rd_space(b));
        RD_TRY(rd_name(c, true, b));
        for (int i = 0; i < 5; i++) {
                RD_TRY(rd_space(b));
                RD_TRY(rd_num32(c, b));
        }
        return 0;
}

static int fmt_hinfo(struct dm_cursor *c, struct dm_buf *b)
{
        RD_TRY(rd_cstring(c, b));
        RD_TRY(rd_space(b));
        return rd_cstring(c, b);
}

/* RFC 8659: flags, a tag of letters and digits (compared case-insensitively, so printed in
 * lower case), and the value as a quoted string. */
static int fmt_caa(struct dm_cursor *c, struct dm_buf *b)
{
        uint8_t taglen;
        const uint8_t *tag, *value;
        char lower[255];

        RD_TRY(rd_num8(c, b));
        RD_TRY(rd_space(b));
        RD_TRY(rd_u8(c, &taglen));
        if (taglen == 0)
                return DM_EPARSE;
        RD_TRY(rd_bytes(c, taglen, &tag));
        for (size_t i = 0; i < taglen; i++) {
                uint8_t ch = tag[i];
                if (ch >= 'A' && ch <= 'Z')
                        ch = (uint8_t)(ch + ('a' - 'A'));
                else if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')))
                        return DM_EPARSE;
                lower[i] = (char)ch;
        }
        RD_TRY(dm_buf_add(b, lower, taglen));
        RD_TRY(rd_space(b));
        size_t n = dm_cursor_left(c);
        RD_TRY(rd_bytes(c, n, &value));
        return rd_quoted(b, value, n);
}

static int fmt_srv(struct dm_cursor *c, struct dm_buf *b)
{
        for (int i = 0; i < 3; i++) {
                RD_TRY(rd_num16(c, b));
                RD_TRY(rd_space(b));
        }
        return rd_name(c, true, b);
}

static int fmt_naptr(struct dm_cursor *c, struct dm_buf *b)
{
        for (int i = 0; i < 2; i++) {
                RD_TRY(rd_num16(c, b));
                RD_TRY(rd_space(b));
        }
        for (int i = 0; i < 3; i++) {
                RD_TRY(rd_cstring(c, b));
                RD_TRY(rd_space(b));
        }
        return rd_name(c, true, b);
}

/* DS, CDS: key tag, algorithm, digest type, digest (hex). */
static int fmt_ds(struct dm_cursor *c, struct dm_buf *b)
{
        RD_TRY(rd_num16(c, b));
        RD_TRY(rd_space(b));
        RD_TRY(rd_num8(c, b));
        RD_TRY(rd_space(b));
        RD_TRY(rd_num8(c, b));
        RD_TRY(rd_space(b));
        return rd_rest(c, b, false);
}

/* DNSKEY, CDNSKEY: flags, protocol, algorithm, public key (base64). */
static int fmt_dnskey(struct dm_cursor *c, struct dm_buf *b)
{
        RD_TRY(rd_num16(c, b));
        RD_TRY(rd_space(b));
        RD_TRY(rd_num8(c, b));
        RD_TRY(rd_space(b));
        RD_TRY(rd_num8(c, b));
        RD_TRY(rd_space(b));
        return rd_rest(c, b, true);
}

/* TLSA, SMIMEA: usage, selector, matching type, data (hex). */
static int fmt_tlsa(struct dm_cursor *c, struct dm_buf *b)
{
        for (int i = 0; i < 3; i++) {
                RD_TRY(rd_num8(c, b));
                RD_TRY(rd_space(b));
        }
        return rd_rest(c, b, false);
}

static int fmt_sshfp(struct dm_cursor *c, struct dm_buf *b)
{
        for (int i = 0; i < 2; i++) {
                RD_TRY(rd_num8(c, b));
                RD_TRY(rd_space(b));
        }
        return rd_rest(c, b, false);
}

static const char *svc_key_name(uint16_t key)
{
        switch (key) {
        case RD_SVC_MANDATORY:
                return "mandatory";
        case RD_SVC_ALPN:
                return "alpn";
        case RD_SVC_NO_DEFAULT_ALPN:
                return "no-default-alpn";
        case RD_SVC_PORT:
                return "port";
        case RD_SVC_IPV4HINT:
                return "ipv4hint";
        case RD_SVC_ECH:
                return "ech";
        case RD_SVC_IPV6HINT:
                return "ipv6hint";
        case RD_SVC_DOHPATH:
                return "dohpath";
        default:
                return NULL;
        }
}

static int svc_key(struct dm_buf *b, uint16_t key)
{
        const char *name = svc_key_name(key);
        if (name)
                return dm_buf_addstr(b, name);
        RD_TRY(dm_buf_addstr(b, "key"));
        return rd_num(b, key);
}

static int svc_mandatory(struct dm_buf *b, const uint8_t *p, size_t n)
{
        if (n == 0 || n % 2)
                return DM_EPARSE;
        for (size_t i = 0; i < n; i += 2) {
                if (i)
                        RD_TRY(dm_buf_addc(b, ','));
                RD_TRY(svc_key(b, (uint16_t)(p[i] << 8 | p[i + 1])));
        }
        return 0;
}

static int svc_alpn(struct dm_buf *b, const uint8_t *p, size_t n)
{
        struct dm_cursor c;
        if (n == 0)
                return DM_EPARSE;
        dm_cursor_init(&c, p, n);
        RD_TRY(dm_buf_addc(b, '"'));
        for (bool first = true; dm_cursor_left(&c) > 0; first = false) {
                uint8_t len;
                const uint8_t *id;
                RD_TRY(rd_u8(&c, &len));
                if (len == 0)
                        return DM_EPARSE;
                RD_TRY(rd_bytes(&c, len, &id));
                if (!first)
                        RD_TRY(dm_buf_addc(b, ','));
                RD_TRY(rd_escaped(b, id, len, true));
        }
        return dm_buf_addc(b, '"');
}

static int svc_hints(struct dm_buf *b, const uint8_t *p, size_t n, int family)
{
        size_t alen = family == AF_INET ? 4 : 16;
        if (n == 0 || n % alen)
                return DM_EPARSE;
        for (size_t i = 0; i < n; i += alen) {
                if (i)
                        RD_TRY(dm_buf_addc(b, ','));
                RD_TRY(rd_addr(b, family, p + i));
        }
        return 0;
}

static int svc_param(struct dm_buf *b, uint16_t key, const uint8_t *p, size_t n)
{
        RD_TRY(svc_key(b, key));
        switch (key) {
        case RD_SVC_MANDATORY:
                RD_TRY(dm_buf_addc(b, '='));
                return svc_mandatory(b, p, n);
        case RD_SVC_ALPN:
                RD_TRY(dm_buf_addc(b, '='));
                return svc_alpn(b, p, n);
        case RD_SVC_NO_DEFAULT_ALPN:
                return n == 0 ? 0 : DM_EPARSE;
        case RD_SVC_PORT:
                if (n != 2)
                        return DM_EPARSE;
                RD_TRY(dm_buf_addc(b, '='));
                return rd_num(b, (uint32_t)(p[0] << 8 | p[1]));
        case RD_SVC_IPV4HINT:
                RD_TRY(dm_buf_addc(b, '='));
                return svc_hints(b, p, n, AF_INET);
        case RD_SVC_ECH:
                if (n == 0)
                        return DM_EPARSE;
                RD_TRY(dm_buf_addc(b, '='));
                return rd_base64(b, p, n);
        case RD_SVC_IPV6HINT:
                RD_TRY(dm_buf_addc(b, '='));
                return svc_hints(b, p, n, AF_INET6);
        case RD_SVC_DOHPATH:
                RD_TRY(dm_buf_addc(b, '='));
                return rd_quoted(b, p, n);
        default:
                if (n == 0)
                        return 0;
                RD_TRY(dm_buf_addc(b, '='));
                return rd_quoted(b, p, n);
        }
}

/* SVCB, HTTPS (RFC 9460): priority, target (never compressed), then the parameters, whose
 * keys must be strictly increasing. */
static int fmt_svcb(struct dm_cursor *c, struct dm_buf *b)
{
        int32_t prev = -1;

        RD_TRY(rd_num16(c, b));
        RD_TRY(rd_space(b));
        RD_TRY(rd_name(c, false, b));
        while (dm_cursor_left(c) > 0) {
                uint16_t key, len;
                const uint8_t *p;
                RD_TRY(rd_u16(c, &key));
                RD_TRY(rd_u16(c, &len));
                RD_TRY(rd_bytes(c, len, &p));
                if ((int32_t)key <= prev || key == RD_SVC_INVALID)
                        return DM_EPARSE;
                prev = key;
                RD_TRY(rd_space(b));
                RD_TRY(svc_param(b, key, p, len));
        }
        return 0;
}

/* RFC 3597: \# <length> <hex>. */
static int fmt_generic(struct dm_cursor *c, struct dm_buf *b)
{
        size_t n = dm_cursor_left(c);
        const uint8_t *p;
        RD_TRY(dm_buf_addstr(b, "\\# "));
        RD_TRY(rd_num(b, (uint32_t)n));
        if (n == 0)
                return 0;
        RD_TRY(rd_space(b));
        RD_TRY(rd_bytes(c, n, &p));
        return rd_hex(b, p, n);
}

static int rdata_dispatch(uint16_t type, struct dm_cursor *c, struct dm_buf *b)
{
        switch (type) {
        case DM_RR_A:
                return fmt_addr(c, b, AF_INET);
        case DM_RR_AAAA:
                return fmt_addr(c, b, AF_INET6);
        case DM_RR_NS:
        case DM_RR_CNAME:
        case DM_RR_PTR:
        case DM_RR_DNAME:
                return rd_name(c, true, b);
        case DM_RR_MX:
                return fmt_mx(c, b);
        case DM_RR_TXT:
        case DM_RR_SPF:
                return fmt_txt(c, b);
        case DM_RR_SOA:
                return fmt_soa(c, b);
        case DM_RR_HINFO:
                return fmt_hinfo(c, b);
        case DM_RR_CAA:
                return fmt_caa(c, b);
        case DM_RR_SRV:
                return fmt_srv(c, b);
        case DM_RR_NAPTR:
                return fmt_naptr(c, b);
        case DM_RR_DS:
        case DM_RR_CDS:
                return fmt_ds(c, b);
        case DM_RR_DNSKEY:
        case DM_RR_CDNSKEY:
                return fmt_dnskey(c, b);
        case DM_RR_TLSA:
        case DM_RR_SMIMEA:
                return fmt_tlsa(c, b);
        case DM_RR_SSHFP:
                return fmt_sshfp(c, b);
        case DM_RR_SVCB:
        case DM_RR_HTTPS:
                return fmt_svcb(c, b);
        default:
                return fmt_generic(c, b);
        }
}

int dm_rdata_format(uint16_t type, const uint8_t *msg, size_t msglen, size_t rdoff, size_t rdlen,
                    struct dm_buf *out)
{
        struct dm_cursor c;
        size_t start = out->len;

        if (rdoff > msglen || rdlen > msglen - rdoff)
                return DM_EINVAL;
        /* The cursor ends with the RDATA: nothing after it can be read, and compression
         * pointers, which must go backwards, stay inside the message. */
        dm_cursor_init(&c, msg, rdoff + rdlen);
        c.pos = rdoff;
        int ret = rdata_dispatch(type, &c, out);
        if (ret == 0 && dm_cursor_left(&c) != 0)
                ret = DM_EPARSE;
        if (ret && out->data) {
                out->len = start;
                out->data[start] = '\0';
        }
        return ret;
}

int dm_rdata_to_text(uint16_t type, const uint8_t *msg, size_t msglen, size_t rdoff, size_t rdlen,
                     char **ret_text)
{
        struct dm_buf b;
        dm_buf_init(&b, DM_RDATA_TEXT_MAX);
        int ret = dm_rdata_format(type, msg, msglen, rdoff, rdlen, &b);
        if (ret)
                goto out_buf;
        char *text = dm_buf_detach(&b);
        if (!text) {
                ret = DM_ENOMEM;
                goto out_buf;
        }
        *ret_text = text;
        return 0;

out_buf:
        dm_buf_done(&b);
        return ret;
}
