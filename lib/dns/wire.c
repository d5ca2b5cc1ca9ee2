/* DNS messages on the wire: building queries, taking responses apart. Every read of a
 * response goes through dm_cursor, so a short or lying packet ends in DM_EPARSE, never in
 * a read past its end. */
#include "dm/dnswire.h"

#include "dm/error.h"
#include "dm/rrtype.h"

#include <string.h>

#define WIRE_LABEL_MAX 63
#define WIRE_RR_MIN 11 /* root owner plus the fixed part */
#define WIRE_PTR_MASK 0xc0

int dm_dns_name_from_text(const char *text, uint8_t *out, size_t *ret_len)
{
        size_t len = strlen(text);
        size_t o = 0;

        if (len > 0 && text[len - 1] == '.')
                len--;
        size_t start = 0;
        while (len > 0 && start <= len) {
                const char *dot = memchr(text + start, '.', len - start);
                size_t end = dot ? (size_t)(dot - text) : len;
                size_t lablen = end - start;
                if (lablen == 0 || lablen > WIRE_LABEL_MAX)
                        return DM_EINVAL;
                if (o + 1 + lablen + 1 > DM_DNS_NAME_MAX)
                        return DM_EINVAL;
                if (memchr(text + start, '\\', lablen))
                        return DM_EINVAL;
                out[o++] = (uint8_t)lablen;
                memcpy(out + o, text + start, lablen);
                o += lablen;
                start = end + 1;
        }
        out[o++] = 0;
        *ret_len = o;
        return 0;
}

int dm_dns_name_unpack(struct dm_cursor *c, bool allow_pointers, uint8_t *out, size_t *ret_len)
{
        struct dm_cursor w = *c;
        size_t o = 0;
        size_t end = 0;
        bool jumped = false;
        /* Start of the run of labels being read: a pointer must land before it. */
        size_t run_start = w.pos;

        for (;;) {
                uint8_t l;
                if (dm_cursor_u8(&w, &l))
                        return DM_EPARSE;
                if ((l & WIRE_PTR_MASK) == WIRE_PTR_MASK) {
                        uint8_t lo;
                        if (!allow_pointers || dm_cursor_u8(&w, &lo))
                                return DM_EPARSE;
                        size_t target = (size_t)(l & ~WIRE_PTR_MASK) << 8 | lo;
                        if (target >= run_start)
                                return DM_EPARSE;
                        if (!jumped) {
                                end = w.pos;
                                jumped = true;
                        }
                        run_start = target;
                        if (dm_cursor_seek(&w, target))
                                return DM_EPARSE;
                        continue;
                }
                if (l & WIRE_PTR_MASK) /* 0x40, 0x80: obsolete extended label types */
                        return DM_EPARSE;
                if (o + 1 + l > DM_DNS_NAME_MAX)
                        return DM_EPARSE;
                out[o++] = l;
                if (l == 0)
                        break;
                const uint8_t *p;
                if (dm_cursor_bytes(&w, l, &p))
                        return DM_EPARSE;
                memcpy(out + o, p, l);
                o += l;
        }
        if (!jumped)
                end = w.pos;
        c->pos = end;
        *ret_len = o;
        return 0;
}

static uint8_t wire_lower(uint8_t ch)
{
        return ch >= 'A' && ch <= 'Z' ? (uint8_t)(ch + ('a' - 'A')) : ch;
}

bool dm_dns_name_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
        if (alen != blen)
                return false;
        /* Length octets are below 64 and never letters, so one loop covers both. */
        for (size_t i = 0; i < alen; i++)
                if (wire_lower(a[i]) != wire_lower(b[i]))
                        return false;
        return true;
}

bool dm_dns_name_is_subdomain(const uint8_t *name, size_t len, const uint8_t *parent,
                              size_t parent_len)
{
        size_t i = 0;
        while (len - i >= parent_len) {
                if (dm_dns_name_equal(name + i, len - i, parent, parent_len))
                        return true;
                if (name[i] == 0)
                        break;
                i += 1u + name[i];
                if (i >= len)
                        break;
        }
        return false;
}

static bool wire_name_special(uint8_t ch)
{
        switch (ch) {
        case '.':
        case '\\':
        case '"':
        case '(':
        case ')':
        case ';':
        case '@':
        case '$':
                return true;
        default:
                return false;
        }
}

int dm_dns_name_format(const uint8_t *wire, size_t len, struct dm_buf *out)
{
        char tmp[4 * DM_DNS_NAME_MAX + 2];
        size_t o = 0;
        size_t i = 0;

        if (len > DM_DNS_NAME_MAX)
                return DM_EINVAL;
        while (i < len && wire[i] != 0) {
                size_t l = wire[i++];
                if (l > len - i)
                        return DM_EINVAL;
                for (size_t k = 0; k < l; k++) {
                        uint8_t ch = wire_lower(wire[i + k]);
                        if (ch < 0x21 || ch > 0x7e) {
                                tmp[o++] = '\\';
                                tmp[o++] = (char)('0' + ch / 100);
                                tmp[o++] = (char)('0' + ch / 10 % 10);
                                tmp[o++] = (char)('0' + ch % 10);
                        } else if (wire_name_special(ch)) {
                                tmp[o++] = '\\';
                                tmp[o++] = (char)ch;
                        } else {
                                tmp[o++] = (char)ch;
                        }
                }
                tmp[o++] = '.';
                i += l;
        }
        if (o == 0)
                tmp[o++] = '.';
        return dm_buf_add(out, tmp, o);
}

static void wire_put16(uint8_t *p, uint16_t v)
{
        p[0] = (uint8_t)(v >> 8);
        p[1] = (uint8_t)v;
}

int dm_dns_query_build_wire(const uint8_t *qname, size_t qname_len, uint16_t type, uint16_t id,
                            unsigned flags, uint8_t *out, size_t outlen, size_t *ret_len)
{
        if (qname_len == 0 || qname_len > DM_DNS_NAME_MAX || qname[qname_len - 1] != 0)
                return DM_EINVAL;
        bool edns = !(flags & DM_DNS_QUERY_NO_EDNS);
        size_t need = DM_DNS_HEADER_LEN + qname_len + 4 + (edns ? 11 : 0);
        if (outlen < need)
                return DM_E2BIG;

        uint8_t *p = out;
        wire_put16(p, id);
        wire_put16(p + 2, DM_DNS_FLAG_RD);
        wire_put16(p + 4, 1); /* qdcount */
        wire_put16(p + 6, 0);
        wire_put16(p + 8, 0);
        wire_put16(p + 10, edns ? 1 : 0); /* arcount: the OPT record */
        p += DM_DNS_HEADER_LEN;
        memcpy(p, qname, qname_len);
        p += qname_len;
        wire_put16(p, type);
        wire_put16(p + 2, DM_DNS_CLASS_IN);
        p += 4;
        if (!edns) {
                *ret_len = need;
                return 0;
        }
        /* OPT: root owner, type 41, class = UDP size, TTL = ext rcode/version/flags 0. */
        p[0] = 0;
        wire_put16(p + 1, DM_RR_OPT);
        wire_put16(p + 3, DM_DNS_EDNS_SIZE);
        memset(p + 5, 0, 6);
        *ret_len = need;
        return 0;
}

int dm_dns_query_build(const char *name, uint16_t type, uint16_t id, uint8_t *out, size_t outlen,
                       size_t *ret_len)
{
        uint8_t wire[DM_DNS_NAME_MAX];
        size_t wlen;
        int ret = dm_dns_name_from_text(name, wire, &wlen);
        if (ret)
                return ret;
        return dm_dns_query_build_wire(wire, wlen, type, id, 0, out, outlen, ret_len);
}

/* Reads one record's fixed part and skips its RDATA. */
static int wire_rr_read(struct dm_cursor *c, struct dm_dns_rr *rr)
{
        if (dm_dns_name_unpack(c, true, rr->owner, &rr->owner_len))
                return DM_EPARSE;
        if (dm_cursor_u16(c, &rr->type) || dm_cursor_u16(c, &rr->rclass) ||
            dm_cursor_u32(c, &rr->ttl) || dm_cursor_u16(c, &rr->rdlen))
                return DM_EPARSE;
        rr->rdata_off = c->pos;
        if (dm_cursor_skip(c, rr->rdlen))
                return DM_EPARSE;
        return 0;
}

/* The header and the question; leaves c just past the question. */
static int wire_head_read(struct dm_cursor *c, struct dm_dns_msg *m)
{
        if (dm_cursor_u16(c, &m->id) || dm_cursor_u16(c, &m->flags) ||
            dm_cursor_u16(c, &m->qdcount) || dm_cursor_u16(c, &m->ancount) ||
            dm_cursor_u16(c, &m->nscount) || dm_cursor_u16(c, &m->arcount))
                return DM_EPARSE;
        if (m->qdcount > 1)
                return DM_EPARSE;
        if (m->qdcount == 1) {
                if (dm_dns_name_unpack(c, true, m->qname, &m->qname_len))
                        return DM_EPARSE;
                if (dm_cursor_u16(c, &m->qtype) || dm_cursor_u16(c, &m->qclass))
                        return DM_EPARSE;
        }
        m->rcode = m->flags & 0x000f;
        return 0;
}

int dm_dns_msg_parse_header(const uint8_t *pkt, size_t len, struct dm_dns_msg *ret_msg)
{
        struct dm_dns_msg m;
        struct dm_cursor c;

        memset(&m, 0, sizeof(m));
        m.pkt = pkt;
        m.len = len;
        dm_cursor_init(&c, pkt, len);
        if (wire_head_read(&c, &m))
                return DM_EPARSE;
        /* The records were not walked: nothing may read them. */
        m.ancount = m.nscount = m.arcount = 0;
        m.an_off = m.ns_off = m.ar_off = c.pos;
        *ret_msg = m;
        return 0;
}

int dm_dns_msg_parse(const uint8_t *pkt, size_t len, struct dm_dns_msg *ret_msg)
{
        struct dm_dns_msg m;
        struct dm_cursor c;
        struct dm_dns_rr rr;
        uint8_t ext_rcode = 0;

        memset(&m, 0, sizeof(m));
        m.pkt = pkt;
        m.len = len;
        dm_cursor_init(&c, pkt, len);
        if (wire_head_read(&c, &m))
                return DM_EPARSE;

        /* Every record takes at least WIRE_RR_MIN bytes: counts that cannot fit are lies,
         * refused before walking anything. */
        size_t total = (size_t)m.ancount + m.nscount + m.arcount;
        if (total > dm_cursor_left(&c) / WIRE_RR_MIN)
                return DM_EPARSE;

        const uint16_t counts[3] = {m.ancount, m.nscount, m.arcount};
        size_t *offs[3] = {&m.an_off, &m.ns_off, &m.ar_off};
        for (int s = 0; s < 3; s++) {
                *offs[s] = c.pos;
                for (uint16_t i = 0; i < counts[s]; i++) {
                        if (wire_rr_read(&c, &rr))
                                return DM_EPARSE;
                        if (s != 2 || rr.type != DM_RR_OPT)
                                continue;
                        if (m.has_opt || rr.owner_len != 1)
                                return DM_EPARSE;
                        m.has_opt = true;
                        m.edns_size = rr.rclass;
                        ext_rcode = (uint8_t)(rr.ttl >> 24);
                        m.edns_version = (uint8_t)(rr.ttl >> 16);
                }
        }
        m.rcode = (uint16_t)((uint16_t)ext_rcode << 4 | (m.flags & 0x000f));
        *ret_msg = m;
        return 0;
}

int dm_dns_msg_check_reply(const struct dm_dns_msg *m, uint16_t id, const uint8_t *qname,
                           size_t qname_len, uint16_t qtype)
{
        if (m->id != id || !(m->flags & DM_DNS_FLAG_QR))
                return DM_EINVAL;
        if (((m->flags >> 11) & 0x0f) != 0) /* opcode QUERY */
                return DM_EINVAL;
        if (m->qdcount == 0) {
                if (m->rcode == DM_DNS_RCODE_NOERROR || m->rcode == DM_DNS_RCODE_NXDOMAIN)
                        return DM_EINVAL;
                return 0;
        }
        if (m->qtype != qtype || m->qclass != DM_DNS_CLASS_IN)
                return DM_EINVAL;
        if (!dm_dns_name_equal(m->qname, m->qname_len, qname, qname_len))
                return DM_EINVAL;
        return 0;
}

int dm_dns_rr_read(const struct dm_dns_msg *m, size_t *pos, struct dm_dns_rr *ret_rr)
{
        struct dm_cursor c;
        struct dm_dns_rr rr;

        dm_cursor_init(&c, m->pkt, m->len);
        if (dm_cursor_seek(&c, *pos))
                return DM_EPARSE;
        if (wire_rr_read(&c, &rr))
                return DM_EPARSE;
        *pos = c.pos;
        *ret_rr = rr;
        return 0;
}
