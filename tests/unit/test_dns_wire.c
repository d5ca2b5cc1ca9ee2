/* DNS wire format: query building, response parsing with compression, hostile packets
 * (pointer loops, forward pointers, lying counts, truncation), question matching and the
 * answer extraction the resolver reports, including which empty replies are answers
 * (NODATA) and which are not (referral, lame). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dm/dnswire.h"
#include "dm/error.h"
#include "dm/rrtype.h"
#include "dnspkt.h"

#define QR_RD_RA 0x8180
#define QR_AA 0x8400
#define QR_RD 0x8100

static void test_name_from_text(void **state)
{
        uint8_t w[DM_DNS_NAME_MAX];
        size_t n;

        assert_int_equal(dm_dns_name_from_text("www.Example.com", w, &n), 0);
        assert_int_equal(n, 17);
        assert_memory_equal(w, "\3www\7Example\3com\0", 17);
        assert_int_equal(dm_dns_name_from_text("example.com.", w, &n), 0);
        assert_int_equal(n, 13);
        assert_int_equal(dm_dns_name_from_text(".", w, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(w[0], 0);

        assert_int_equal(dm_dns_name_from_text("a..b", w, &n), DM_EINVAL);
        assert_int_equal(dm_dns_name_from_text(".a", w, &n), DM_EINVAL);
        assert_int_equal(dm_dns_name_from_text("a\\.b", w, &n), DM_EINVAL);
        char label[70];
        memset(label, 'x', 64);
        label[64] = '\0';
        assert_int_equal(dm_dns_name_from_text(label, w, &n), DM_EINVAL);
        label[63] = '\0';
        assert_int_equal(dm_dns_name_from_text(label, w, &n), 0);

        /* 253 characters is the longest a name can be in text (255 on the wire). */
        char longname[300];
        size_t o = 0;
        for (int i = 0; i < 4; i++) {
                memset(longname + o, 'a', 62);
                o += 62;
                longname[o++] = '.';
        }
        longname[o++] = 'b';
        longname[o] = '\0';
        assert_int_equal(o, 253);
        assert_int_equal(dm_dns_name_from_text(longname, w, &n), 0);
        assert_int_equal(n, 255);
        longname[o++] = 'c';
        longname[o] = '\0';
        assert_int_equal(dm_dns_name_from_text(longname, w, &n), DM_EINVAL);
}

static void test_query_build(void **state)
{
        uint8_t out[DM_DNS_QUERY_MAX];
        size_t n;

        assert_int_equal(dm_dns_query_build("example.com", DM_RR_MX, 0xbeef, out, sizeof(out), &n),
                         0);
        static const uint8_t want[] = {
            0xbe, 0xef, 0x01, 0x00, 0,    1,   0,   0,   0, 0,   0,   1, /* id, RD, qd 1, ar 1 */
            7,    'e',  'x',  'a',  'm',  'p', 'l', 'e', 3, 'c', 'o', 'm',
            0,    0,    15,   0,    1,       /* MX IN */
            0,    0,    41,   0x04, 0xd0,    /* OPT, UDP size 1232 */
            0,    0,    0,    0,    0,    0, /* ext rcode, version, flags, rdlen */
        };
        assert_int_equal(n, sizeof(want));
        assert_memory_equal(out, want, sizeof(want));
        assert_int_equal(dm_dns_query_build("example.com", 1, 1, out, 20, &n), DM_E2BIG);
        assert_int_equal(dm_dns_query_build("bad..name", 1, 1, out, sizeof(out), &n), DM_EINVAL);

        /* It parses as a message with an OPT record. */
        struct dm_dns_msg m;
        dm_dns_query_build("example.com", DM_RR_A, 7, out, sizeof(out), &n);
        assert_int_equal(dm_dns_msg_parse(out, n, &m), 0);
        assert_true(m.has_opt);
        assert_int_equal(m.edns_size, 1232);
        assert_int_equal(m.qtype, DM_RR_A);

        /* Without EDNS: no OPT record, arcount 0, the name's case as given. */
        uint8_t qn[DM_DNS_NAME_MAX];
        size_t qlen;
        assert_int_equal(dm_dns_name_from_text("ExAmple.COM", qn, &qlen), 0);
        assert_int_equal(dm_dns_query_build_wire(qn, qlen, DM_RR_A, 7, DM_DNS_QUERY_NO_EDNS, out,
                                                 sizeof(out), &n),
                         0);
        assert_int_equal(n, 12 + 13 + 4);
        assert_int_equal(out[11], 0);
        assert_memory_equal(out + 12, "\7ExAmple\3COM\0", 13);
        assert_int_equal(dm_dns_msg_parse(out, n, &m), 0);
        assert_false(m.has_opt);
        assert_int_equal(m.arcount, 0);
        assert_int_equal(
            dm_dns_query_build_wire(qn, qlen, DM_RR_A, 7, DM_DNS_QUERY_NO_EDNS, out, n - 1, &n),
            DM_E2BIG);
}

/* example.com A reply: two records, owners compressed to the question, one owned by
 * www.example.com written as "www" + pointer. */
static void build_reply(struct pk *p, uint16_t id)
{
        pk_init(p);
        pk_header(p, id, QR_RD_RA, 1, 3, 0, 1);
        pk_name(p, "Example.COM"); /* offset 12 */
        pk_u16(p, DM_RR_A);
        pk_u16(p, 1);
        pk_ptr(p, 12);
        size_t at = pk_rr_begin(p, DM_RR_A, 1, 300);
        pk_bytes(p, "\xc0\x00\x02\x01", 4);
        pk_rr_end(p, at);
        size_t www = p->n;
        pk_labels(p, "www");
        pk_ptr(p, 12);
        at = pk_rr_begin(p, DM_RR_A, 1, 60);
        pk_bytes(p, "\xc0\x00\x02\x63", 4);
        pk_rr_end(p, at);
        pk_ptr(p, 12);
        at = pk_rr_begin(p, DM_RR_A, 1, 120);
        pk_bytes(p, "\xc0\x00\x02\x02", 4);
        pk_rr_end(p, at);
        (void)www;
        pk_u8(p, 0); /* OPT */
        pk_u16(p, DM_RR_OPT);
        pk_u16(p, 1232);
        pk_u32(p, 0);
        pk_u16(p, 0);
}

static void test_parse_compressed(void **state)
{
        struct pk p;
        struct dm_dns_msg m;
        struct dm_dns_rr rr;
        uint8_t qn[DM_DNS_NAME_MAX];
        size_t qlen;

        build_reply(&p, 0x1234);
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), 0);
        assert_int_equal(m.id, 0x1234);
        assert_int_equal(m.ancount, 3);
        assert_int_equal(m.rcode, 0);
        assert_true(m.has_opt);
        size_t pos = m.an_off;
        assert_int_equal(dm_dns_rr_read(&m, &pos, &rr), 0);
        assert_int_equal(rr.owner_len, 13);
        assert_memory_equal(rr.owner, "\7Example\3COM\0", 13);
        assert_int_equal(rr.ttl, 300);
        assert_int_equal(rr.rdlen, 4);
        assert_int_equal(dm_dns_rr_read(&m, &pos, &rr), 0);
        assert_memory_equal(rr.owner, "\3www\7Example\3COM\0", 17);

        dm_dns_name_from_text("example.com", qn, &qlen);
        assert_int_equal(dm_dns_msg_check_reply(&m, 0x1234, qn, qlen, DM_RR_A), 0);
        assert_int_equal(dm_dns_msg_check_reply(&m, 0x1235, qn, qlen, DM_RR_A), DM_EINVAL);
        assert_int_equal(dm_dns_msg_check_reply(&m, 0x1234, qn, qlen, DM_RR_MX), DM_EINVAL);
        dm_dns_name_from_text("example.org", qn, &qlen);
        assert_int_equal(dm_dns_msg_check_reply(&m, 0x1234, qn, qlen, DM_RR_A), DM_EINVAL);
}

static void test_parse_every_prefix_fails(void **state)
{
        struct pk p;
        struct dm_dns_msg m;

        build_reply(&p, 1);
        for (size_t len = 0; len < p.n; len++)
                assert_int_equal(dm_dns_msg_parse(p.b, len, &m), DM_EPARSE);
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), 0);
        assert_int_equal(dm_dns_msg_parse(NULL, 0, &m), DM_EPARSE);
}

/* A packet whose question name is the bytes `name` (n of them) at offset 12. */
static int parse_qname(const uint8_t *name, size_t n, struct dm_dns_msg *m, struct pk *p)
{
        pk_init(p);
        pk_header(p, 1, QR_RD_RA, 1, 0, 0, 0);
        pk_bytes(p, name, n);
        pk_u16(p, 1);
        pk_u16(p, 1);
        return dm_dns_msg_parse(p->b, p->n, m);
}

static void test_pointer_loops(void **state)
{
        struct dm_dns_msg m;
        struct pk p;

        /* Pointer to itself. */
        assert_int_equal(parse_qname((const uint8_t *)"\xc0\x0c", 2, &m, &p), DM_EPARSE);
        /* Forward pointer. */
        assert_int_equal(parse_qname((const uint8_t *)"\xc0\x0e\x00", 3, &m, &p), DM_EPARSE);
        /* Backwards into the header is legal: id 0x0001 starts with a root label. */
        assert_int_equal(parse_qname((const uint8_t *)"\xc0\x00", 2, &m, &p), 0);
        assert_int_equal(m.qname_len, 1);
        /* Label then a pointer back to that label: a loop. */
        assert_int_equal(parse_qname((const uint8_t *)"\x01"
                                                      "a\xc0\x0c",
                                     4, &m, &p),
                         DM_EPARSE);
        /* Extended label types 0x40 / 0x80. */
        assert_int_equal(parse_qname((const uint8_t *)"\x41"
                                                      "a\x00",
                                     3, &m, &p),
                         DM_EPARSE);
        assert_int_equal(parse_qname((const uint8_t *)"\x81"
                                                      "a\x00",
                                     3, &m, &p),
                         DM_EPARSE);

        /* Two names pointing at each other from the answer section. */
        pk_init(&p);
        pk_header(&p, 1, QR_RD_RA, 1, 2, 0, 0);
        pk_name(&p, "a");
        pk_u16(&p, 1);
        pk_u16(&p, 1);
        size_t first = p.n;
        pk_labels(&p, "x");
        pk_ptr(&p, (uint16_t)(first + 18)); /* forward */
        size_t at = pk_rr_begin(&p, 1, 1, 0);
        pk_bytes(&p, "\1\2\3\4", 4);
        pk_rr_end(&p, at);
        assert_int_equal(p.n, first + 4 + 14);
        pk_labels(&p, "y");
        pk_ptr(&p, (uint16_t)first);
        at = pk_rr_begin(&p, 1, 1, 0);
        pk_bytes(&p, "\1\2\3\4", 4);
        pk_rr_end(&p, at);
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), DM_EPARSE);
}

static void test_name_too_long(void **state)
{
        struct pk p;

        /* A legal chain of backward pointers building a 256+ octet name. */
        pk_init(&p);
        pk_header(&p, 1, QR_RD_RA, 1, 0, 0, 0);
        size_t prev = 0;
        size_t offs[6];
        for (int i = 0; i < 5; i++) {
                offs[i] = p.n;
                uint8_t label[64];
                memset(label, 'a' + i, sizeof(label));
                label[0] = 50;
                pk_bytes(&p, label, 51);
                if (i == 0)
                        pk_u8(&p, 0);
                else
                        pk_ptr(&p, (uint16_t)prev);
                prev = offs[i];
        }
        /* Question: pointer to the last one (5 labels of 50 = 256 octets with the root). */
        size_t qstart = p.n;
        pk_ptr(&p, (uint16_t)prev);
        pk_u16(&p, 1);
        pk_u16(&p, 1);
        /* Read that name directly (the header has no question pointing there). */
        struct dm_cursor c;
        uint8_t out[DM_DNS_NAME_MAX];
        size_t olen;
        dm_cursor_init(&c, p.b, p.n);
        c.pos = qstart;
        assert_int_equal(dm_dns_name_unpack(&c, true, out, &olen), DM_EPARSE);
        assert_int_equal(c.pos, qstart); /* untouched on failure */
        /* Four of them fit. */
        c.pos = offs[3];
        assert_int_equal(dm_dns_name_unpack(&c, true, out, &olen), 0);
        assert_int_equal(olen, 4 * 51 + 1);
        assert_int_equal(c.pos, offs[3] + 53);
        /* Pointers refused when the type forbids compression. */
        c.pos = offs[3];
        assert_int_equal(dm_dns_name_unpack(&c, false, out, &olen), DM_EPARSE);
}

static void test_counts_bounded(void **state)
{
        struct pk p;
        struct dm_dns_msg m;

        build_reply(&p, 1);
        p.b[7] = 200; /* ancount 200 in a packet that holds 4 records */
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), DM_EPARSE);
        build_reply(&p, 1);
        p.b[6] = 0xff;
        p.b[7] = 0xff;
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), DM_EPARSE);
        build_reply(&p, 1);
        p.b[5] = 2; /* two questions */
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), DM_EPARSE);
        /* An RDLENGTH running past the end. */
        build_reply(&p, 1);
        size_t pos = 12 + 13 + 4 + 2 + 8;
        p.b[pos] = 0x10;
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), DM_EPARSE);
        /* Trailing bytes after the last record are ignored. */
        build_reply(&p, 1);
        pk_bytes(&p, "xyz", 3);
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), 0);
}

static void test_opt_and_rcodes(void **state)
{
        struct pk p;
        struct dm_dns_msg m;
        uint8_t qn[DM_DNS_NAME_MAX];
        size_t qlen;

        dm_dns_name_from_text("example.com", qn, &qlen);
        /* BADVERS: header rcode 0, extended rcode 1 -> 16. */
        pk_init(&p);
        pk_header(&p, 9, QR_RD_RA, 1, 0, 0, 1);
        pk_name(&p, "example.com");
        pk_u16(&p, 1);
        pk_u16(&p, 1);
        pk_u8(&p, 0);
        pk_u16(&p, DM_RR_OPT);
        pk_u16(&p, 4096);
        pk_u32(&p, 0x01000000);
        pk_u16(&p, 0);
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), 0);
        assert_int_equal(m.rcode, DM_DNS_RCODE_BADVERS);
        assert_int_equal(m.edns_size, 4096);
        struct dm_dns_answer a;
        assert_int_equal(dm_dns_msg_answer(&m, DM_RR_A, 0, &a), 0);
        assert_int_equal(a.status, DM_RRS_ERROR);
        assert_int_equal(a.err, DM_EDNS);

        /* Two OPT records. */
        pk_u8(&p, 0);
        pk_u16(&p, DM_RR_OPT);
        pk_u16(&p, 4096);
        pk_u32(&p, 0);
        pk_u16(&p, 0);
        p.b[11] = 2;
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), DM_EPARSE);

        /* OPT with a non-root owner. */
        pk_init(&p);
        pk_header(&p, 9, QR_RD_RA, 1, 0, 0, 1);
        pk_name(&p, "example.com");
        pk_u16(&p, 1);
        pk_u16(&p, 1);
        pk_ptr(&p, 12);
        pk_u16(&p, DM_RR_OPT);
        pk_u16(&p, 4096);
        pk_u32(&p, 0);
        pk_u16(&p, 0);
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), DM_EPARSE);

        /* SERVFAIL without a question is still a reply; NOERROR without one is not. */
        pk_init(&p);
        pk_header(&p, 9, QR_RD_RA | DM_DNS_RCODE_SERVFAIL, 0, 0, 0, 0);
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), 0);
        assert_int_equal(dm_dns_msg_check_reply(&m, 9, qn, qlen, DM_RR_A), 0);
        p.b[3] = 0x80;
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), 0);
        assert_int_equal(dm_dns_msg_check_reply(&m, 9, qn, qlen, DM_RR_A), DM_EINVAL);

        /* A query (QR clear) is not a reply. */
        uint8_t q[DM_DNS_QUERY_MAX];
        size_t qn_len;
        dm_dns_query_build("example.com", DM_RR_A, 9, q, sizeof(q), &qn_len);
        assert_int_equal(dm_dns_msg_parse(q, qn_len, &m), 0);
        assert_int_equal(dm_dns_msg_check_reply(&m, 9, qn, qlen, DM_RR_A), DM_EINVAL);

        static const struct {
                uint16_t rcode;
                enum dm_rr_status status;
                int err;
        } map[] = {
            {DM_DNS_RCODE_NXDOMAIN, DM_RRS_NXDOMAIN, 0},
            {DM_DNS_RCODE_SERVFAIL, DM_RRS_ERROR, DM_ESERVFAIL},
            {DM_DNS_RCODE_REFUSED, DM_RRS_ERROR, DM_EREFUSED},
            {DM_DNS_RCODE_FORMERR, DM_RRS_ERROR, DM_EFORMERR},
            {DM_DNS_RCODE_NOTIMP, DM_RRS_ERROR, DM_ENOTSUP},
            {9, DM_RRS_ERROR, DM_EDNS},
        };
        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
                pk_init(&p);
                pk_header(&p, 9, (uint16_t)(QR_RD_RA | map[i].rcode), 1, 0, 0, 0);
                pk_name(&p, "example.com");
                pk_u16(&p, 1);
                pk_u16(&p, 1);
                assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), 0);
                assert_int_equal(dm_dns_msg_answer(&m, DM_RR_A, 0, &a), 0);
                assert_int_equal(a.status, map[i].status);
                assert_int_equal(a.err, map[i].err);
                assert_int_equal(a.nvalues, 0);
                dm_dns_answer_done(&a);
        }
}

static void test_answer_extract(void **state)
{
        struct pk p;
        struct dm_dns_msg m;
        struct dm_dns_answer a;

        build_reply(&p, 1);
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), 0);
        assert_int_equal(dm_dns_msg_answer(&m, DM_RR_A, 0, &a), 0);
        assert_int_equal(a.status, DM_RRS_OK);
        /* www.example.com's record is not the qname's. */
        assert_int_equal(a.nvalues, 2);
        assert_string_equal(a.values[0], "192.0.2.1");
        assert_string_equal(a.values[1], "192.0.2.2");
        assert_int_equal(a.ttl, 120);
        dm_dns_answer_done(&a);
        assert_null(a.values);

        /* Asked as MX, the same reply has no MX and no SOA to prove it: not an answer. */
        assert_int_equal(dm_dns_msg_answer(&m, DM_RR_MX, 0, &a), 0);
        assert_int_equal(a.status, DM_RRS_ERROR);
        assert_int_equal(a.err, DM_ELAME);
        assert_int_equal(a.ttl, 0);
        assert_int_equal(a.nvalues, 0);
        dm_dns_answer_done(&a);
}

/* example.com A -> CNAME a.example.net -> CNAME b.example.net -> A; records in reverse. */
static void build_chain(struct pk *p, int links, bool final_a)
{
        char owner[64], target[64];
        pk_init(p);
        pk_header(p, 1, QR_RD_RA, 1, (uint16_t)(links + (final_a ? 2 : 0)), 0, 0);
        pk_name(p, "example.com");
        pk_u16(p, DM_RR_A);
        pk_u16(p, 1);
        if (final_a) {
                snprintf(owner, sizeof(owner), "l%d.example.net", links);
                pk_name(p, owner);
                size_t at = pk_rr_begin(p, DM_RR_A, 1, 50);
                pk_bytes(p, "\x0a\x00\x00\x01", 4);
                pk_rr_end(p, at);
                /* A record of the type owned by someone unrelated. */
                pk_name(p, "other.example.net");
                at = pk_rr_begin(p, DM_RR_A, 1, 50);
                pk_bytes(p, "\x0a\x00\x00\x02", 4);
                pk_rr_end(p, at);
        }
        for (int i = links; i >= 1; i--) {
                if (i == 1) {
                        pk_ptr(p, 12);
                } else {
                        snprintf(owner, sizeof(owner), "L%d.Example.NET", i - 1);
                        pk_name(p, owner);
                }
                snprintf(target, sizeof(target), "l%d.example.net", i);
                size_t at = pk_rr_begin(p, DM_RR_CNAME, 1, 300);
                pk_name(p, target);
                pk_rr_end(p, at);
        }
}

static void test_cname_chain(void **state)
{
        struct pk p;
        struct dm_dns_msg m;
        struct dm_dns_answer a;

        build_chain(&p, 3, true);
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), 0);
        assert_int_equal(dm_dns_msg_answer(&m, DM_RR_A, 0, &a), 0);
        assert_int_equal(a.status, DM_RRS_OK);
        assert_int_equal(a.nvalues, 1);
        assert_string_equal(a.values[0], "10.0.0.1");
        assert_int_equal(a.ttl, 50);
        dm_dns_answer_done(&a);

        /* Asked for the CNAME itself: the qname's CNAME, no following. */
        assert_int_equal(dm_dns_msg_answer(&m, DM_RR_CNAME, 0, &a), 0);
        assert_int_equal(a.status, DM_RRS_OK);
        assert_int_equal(a.nvalues, 1);
        assert_string_equal(a.values[0], "l1.example.net.");
        dm_dns_answer_done(&a);

        /* A chain that ends without the type. */
        build_chain(&p, 3, false);
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), 0);
        assert_int_equal(dm_dns_msg_answer(&m, DM_RR_A, 0, &a), 0);
        assert_int_equal(a.status, DM_RRS_NODATA);
        dm_dns_answer_done(&a);

        /* Eight links are followed, nine are not. */
        build_chain(&p, 8, true);
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), 0);
        assert_int_equal(dm_dns_msg_answer(&m, DM_RR_A, 0, &a), 0);
        assert_int_equal(a.status, DM_RRS_OK);
        dm_dns_answer_done(&a);
        build_chain(&p, 9, true);
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), 0);
        assert_int_equal(dm_dns_msg_answer(&m, DM_RR_A, 0, &a), 0);
        assert_int_equal(a.status, DM_RRS_NODATA);
        dm_dns_answer_done(&a);
}

static void test_cname_loop_and_bad_rdata(void **state)
{
        struct pk p;
        struct dm_dns_msg m;
        struct dm_dns_answer a;

        /* example.com CNAME x.example.com, x CNAME example.com. */
        pk_init(&p);
        pk_header(&p, 1, QR_RD_RA, 1, 2, 0, 0);
        pk_name(&p, "example.com");
        pk_u16(&p, DM_RR_A);
        pk_u16(&p, 1);
        pk_ptr(&p, 12);
        size_t at = pk_rr_begin(&p, DM_RR_CNAME, 1, 1);
        size_t x = p.n;
        pk_labels(&p, "x");
        pk_ptr(&p, 12);
        pk_rr_end(&p, at);
        pk_ptr(&p, (uint16_t)x);
        at = pk_rr_begin(&p, DM_RR_CNAME, 1, 1);
        pk_ptr(&p, 12);
        pk_rr_end(&p, at);
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), 0);
        assert_int_equal(dm_dns_msg_answer(&m, DM_RR_A, 0, &a), 0);
        assert_int_equal(a.status, DM_RRS_NODATA);
        dm_dns_answer_done(&a);

        /* An A record with five bytes: an error, not a silent drop. */
        pk_init(&p);
        pk_header(&p, 1, QR_RD_RA, 1, 2, 0, 0);
        pk_name(&p, "example.com");
        pk_u16(&p, DM_RR_A);
        pk_u16(&p, 1);
        pk_ptr(&p, 12);
        at = pk_rr_begin(&p, DM_RR_A, 1, 1);
        pk_bytes(&p, "\1\2\3\4", 4);
        pk_rr_end(&p, at);
        pk_ptr(&p, 12);
        at = pk_rr_begin(&p, DM_RR_A, 1, 1);
        pk_bytes(&p, "\1\2\3\4\5", 5);
        pk_rr_end(&p, at);
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), 0);
        assert_int_equal(dm_dns_msg_answer(&m, DM_RR_A, 0, &a), 0);
        assert_int_equal(a.status, DM_RRS_ERROR);
        assert_int_equal(a.err, DM_EPARSE);
        assert_int_equal(a.nvalues, 0);
        dm_dns_answer_done(&a);

        /* Records of class CH are not the IN set (AA from a zone's own server: NODATA). */
        pk_init(&p);
        pk_header(&p, 1, QR_AA, 1, 1, 0, 0);
        pk_name(&p, "example.com");
        pk_u16(&p, DM_RR_A);
        pk_u16(&p, 1);
        pk_ptr(&p, 12);
        at = pk_rr_begin(&p, DM_RR_A, 3, 1);
        pk_bytes(&p, "\1\2\3\4", 4);
        pk_rr_end(&p, at);
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), 0);
        assert_int_equal(dm_dns_msg_answer(&m, DM_RR_A, DM_DNS_ANSWER_AUTH_ONLY, &a), 0);
        assert_int_equal(a.status, DM_RRS_NODATA);
        assert_int_equal(a.nvalues, 0);
        dm_dns_answer_done(&a);
}

/* A 64 KiB reply whose NS names share, by compression, one 250-octet suffix of bytes that
 * print as \DDD: a few bytes of RDATA each, a kilobyte of text each. Too much to record. */
static void test_answer_text_bounded(void **state)
{
        static uint8_t b[65535];
        size_t n = 0;
        struct dm_dns_msg m;
        struct dm_dns_answer a;
        static const uint8_t head[] = {0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0};

        memcpy(b, head, sizeof(head));
        n = sizeof(head);
        static const uint8_t q[] = {7,   'e', 'x', 'a', 'm', 'p',      'l', 'e', 3,
                                    'c', 'o', 'm', 0,   0,   DM_RR_NS, 0,   1};
        memcpy(b + n, q, sizeof(q));
        n += sizeof(q);
        /* The first record carries the suffix: 4 labels of 60 octets of 0x01. */
        size_t count = 0;
        size_t suffix = 0;
        for (uint16_t i = 0; n + 2 + 10 + 6 + 250 <= sizeof(b); i++) {
                b[n++] = 0xc0;
                b[n++] = 12;
                b[n++] = 0;
                b[n++] = DM_RR_NS;
                b[n++] = 0;
                b[n++] = 1;
                memset(b + n, 0, 3);
                b[n + 3] = 60;
                n += 4;
                size_t rdlen_at = n;
                n += 2;
                size_t start = n;
                b[n++] = 3;
                b[n++] = (uint8_t)('a' + i % 26);
                b[n++] = (uint8_t)('a' + i / 26 % 26);
                b[n++] = (uint8_t)('a' + i / 676 % 26);
                if (suffix == 0) {
                        suffix = n;
                        for (int l = 0; l < 4; l++) {
                                b[n++] = 60;
                                memset(b + n, 1, 60);
                                n += 60;
                        }
                        b[n++] = 0;
                } else {
                        b[n++] = (uint8_t)(0xc0 | suffix >> 8);
                        b[n++] = (uint8_t)suffix;
                }
                b[rdlen_at] = (uint8_t)((n - start) >> 8);
                b[rdlen_at + 1] = (uint8_t)(n - start);
                count++;
        }
        assert_true(count > 2000);
        b[6] = (uint8_t)(count >> 8);
        b[7] = (uint8_t)count;
        assert_int_equal(dm_dns_msg_parse(b, n, &m), 0);
        assert_int_equal(dm_dns_msg_answer(&m, DM_RR_NS, 0, &a), 0);
        assert_int_equal(a.status, DM_RRS_ERROR);
        assert_int_equal(a.err, DM_E2BIG);
        assert_int_equal(a.nvalues, 0);
        assert_null(a.values);
        dm_dns_answer_done(&a);

        /* The same names, fewer of them: an ordinary set. */
        b[6] = 0;
        b[7] = 100;
        assert_int_equal(dm_dns_msg_parse(b, n, &m), 0);
        assert_int_equal(dm_dns_msg_answer(&m, DM_RR_NS, 0, &a), 0);
        assert_int_equal(a.status, DM_RRS_OK);
        assert_int_equal(a.nvalues, 100);
        dm_dns_answer_done(&a);
}

static void test_duplicates_and_order(void **state)
{
        struct pk p;
        struct dm_dns_msg m;
        struct dm_dns_answer a;
        static const char *const addrs[] = {"\x0a\0\0\x03", "\x0a\0\0\x01", "\x0a\0\0\x03",
                                            "\x0a\0\0\x02"};

        pk_init(&p);
        pk_header(&p, 1, QR_RD_RA, 1, 4, 0, 0);
        pk_name(&p, "example.com");
        pk_u16(&p, DM_RR_A);
        pk_u16(&p, 1);
        for (int i = 0; i < 4; i++) {
                pk_ptr(&p, 12);
                size_t at = pk_rr_begin(&p, DM_RR_A, 1, (uint32_t)(100 + i));
                pk_bytes(&p, addrs[i], 4);
                pk_rr_end(&p, at);
        }
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), 0);
        assert_int_equal(dm_dns_msg_answer(&m, DM_RR_A, 0, &a), 0);
        assert_int_equal(a.nvalues, 3);
        assert_string_equal(a.values[0], "10.0.0.1");
        assert_string_equal(a.values[1], "10.0.0.2");
        assert_string_equal(a.values[2], "10.0.0.3");
        assert_int_equal(a.ttl, 100);
        dm_dns_answer_done(&a);
}

static void test_name_is_subdomain(void **state)
{
        uint8_t a[DM_DNS_NAME_MAX], b[DM_DNS_NAME_MAX];
        size_t alen, blen;
        static const struct {
                const char *name, *parent;
                bool under;
        } cases[] = {
            {"www.example.com", "example.com", true},
            {"www.example.com", "EXAMPLE.com", true},
            {"example.com", "example.com", true},
            {"example.com", ".", true},
            {"www.example.com", "com", true},
            {"example.com", "www.example.com", false},
            {"wwwexample.com", "example.com", false},
            {"example.com", "example.net", false},
            {"ample.com", "example.com", false},
            {".", ".", true},
            {"a.b.c.d.e", "c.d.e", true},
            {"x.example.com", "xample.com", false},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                assert_int_equal(dm_dns_name_from_text(cases[i].name, a, &alen), 0);
                assert_int_equal(dm_dns_name_from_text(cases[i].parent, b, &blen), 0);
                assert_int_equal(dm_dns_name_is_subdomain(a, alen, b, blen), cases[i].under);
        }
}

/* A reply to "www.example.com A" with no answer records: header flags and rcode as given,
 * and in the authority section an SOA and/or NS records owned by the names given (NULL:
 * none). */
static void build_empty(struct pk *p, uint16_t flags, const char *soa_owner, const char *ns_owner)
{
        pk_init(p);
        pk_header(p, 5, flags, 1, 0, (uint16_t)((soa_owner ? 1 : 0) + (ns_owner ? 2 : 0)), 0);
        pk_name(p, "www.example.com");
        pk_u16(p, DM_RR_A);
        pk_u16(p, 1);
        if (soa_owner) {
                pk_name(p, soa_owner);
                size_t at = pk_rr_begin(p, DM_RR_SOA, 1, 300);
                pk_name(p, "ns1.example.com");
                pk_name(p, "hostmaster.example.com");
                for (int i = 0; i < 5; i++)
                        pk_u32(p, (uint32_t)(1 + i));
                pk_rr_end(p, at);
        }
        for (int i = 0; ns_owner && i < 2; i++) {
                pk_name(p, ns_owner);
                size_t at = pk_rr_begin(p, DM_RR_NS, 1, 172800);
                pk_name(p, i ? "b.gtld-servers.net" : "a.gtld-servers.net");
                pk_rr_end(p, at);
        }
}

static void expect_empty(uint16_t flags, const char *soa_owner, const char *ns_owner,
                         unsigned answer_flags, enum dm_rr_status status, int err)
{
        struct pk p;
        struct dm_dns_msg m;
        struct dm_dns_answer a;

        build_empty(&p, flags, soa_owner, ns_owner);
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), 0);
        assert_int_equal(dm_dns_msg_answer(&m, DM_RR_A, answer_flags, &a), 0);
        if (a.status != status || a.err != err)
                print_error("flags %04x soa %s ns %s answer flags %u: status %d err %d\n", flags,
                            soa_owner ? soa_owner : "-", ns_owner ? ns_owner : "-", answer_flags,
                            a.status, a.err);
        assert_int_equal(a.status, status);
        assert_int_equal(a.err, err);
        assert_int_equal(a.nvalues, 0);
        assert_null(a.values);
        assert_int_equal(a.authoritative, (flags & DM_DNS_FLAG_AA) != 0);
        dm_dns_answer_done(&a);
}

/* An empty NOERROR is NODATA only when it proves it. */
static void test_empty_answers(void **state)
{
        const unsigned auth = DM_DNS_ANSWER_AUTH_ONLY;

        /* Authoritative with the zone's SOA: NODATA. */
        expect_empty(QR_AA, "example.com", NULL, 0, DM_RRS_NODATA, 0);
        expect_empty(QR_AA, "Example.COM", "example.com", 0, DM_RRS_NODATA, 0);
        expect_empty(QR_AA | 0x0100, "www.example.com", NULL, 0, DM_RRS_NODATA, 0);
        /* From a recursive server with the SOA: NODATA. */
        expect_empty(QR_RD_RA, "example.com", NULL, 0, DM_RRS_NODATA, 0);
        expect_empty(QR_RD_RA, "com", NULL, auth, DM_RRS_NODATA, 0);
        /* Authoritative without an SOA: unproven, unless the servers are the zone's own. */
        expect_empty(QR_AA, NULL, NULL, 0, DM_RRS_ERROR, DM_ELAME);
        expect_empty(QR_AA, NULL, NULL, auth, DM_RRS_NODATA, 0);
        expect_empty(QR_AA, NULL, "example.com", 0, DM_RRS_ERROR, DM_ELAME);
        expect_empty(QR_AA, NULL, "example.com", auth, DM_RRS_NODATA, 0);
        /* Recursive without an SOA: unproven either way. */
        expect_empty(QR_RD_RA, NULL, NULL, 0, DM_RRS_ERROR, DM_ELAME);
        expect_empty(QR_RD_RA, NULL, NULL, auth, DM_RRS_ERROR, DM_ELAME);
        /* The SOA of another zone proves nothing about this name. */
        expect_empty(QR_AA, "example.net", NULL, 0, DM_RRS_ERROR, DM_ELAME);
        expect_empty(QR_RD_RA, "sub.www.example.com", NULL, 0, DM_RRS_ERROR, DM_ELAME);
        /* Referrals: not authoritative, name servers of the name or above, down or up. */
        expect_empty(QR_RD, NULL, "example.com", 0, DM_RRS_ERROR, DM_EREFERRAL);
        expect_empty(QR_RD, NULL, "com", auth, DM_RRS_ERROR, DM_EREFERRAL);
        expect_empty(QR_RD, NULL, "", 0, DM_RRS_ERROR, DM_EREFERRAL);
        expect_empty(QR_RD_RA, NULL, "example.com", 0, DM_RRS_ERROR, DM_EREFERRAL);
        /* An SOA without AA or RA is no proof, even with the option. */
        expect_empty(QR_RD, "example.com", NULL, 0, DM_RRS_ERROR, DM_ELAME);
        expect_empty(QR_RD, "example.com", NULL, auth, DM_RRS_ERROR, DM_ELAME);
        expect_empty(QR_RD, "example.com", "example.com", 0, DM_RRS_ERROR, DM_EREFERRAL);
        /* Lame: neither authoritative nor recursive, nothing in authority, or name servers
         * of an unrelated zone. */
        expect_empty(QR_RD, NULL, NULL, 0, DM_RRS_ERROR, DM_ELAME);
        expect_empty(QR_RD, NULL, NULL, auth, DM_RRS_ERROR, DM_ELAME);
        expect_empty(QR_RD, NULL, "example.net", 0, DM_RRS_ERROR, DM_ELAME);

        /* NXDOMAIN needs a server entitled to say it: authoritative or recursive. */
        expect_empty(QR_AA | DM_DNS_RCODE_NXDOMAIN, "example.com", NULL, 0, DM_RRS_NXDOMAIN, 0);
        expect_empty(QR_AA | DM_DNS_RCODE_NXDOMAIN, NULL, NULL, 0, DM_RRS_NXDOMAIN, 0);
        expect_empty(QR_RD_RA | DM_DNS_RCODE_NXDOMAIN, "example.com", NULL, 0, DM_RRS_NXDOMAIN, 0);
        expect_empty(QR_RD | DM_DNS_RCODE_NXDOMAIN, "example.com", NULL, 0, DM_RRS_ERROR, DM_ELAME);
        expect_empty(QR_RD | DM_DNS_RCODE_NXDOMAIN, NULL, "com", auth, DM_RRS_ERROR, DM_ELAME);
        /* Other rcodes stay what they were, AA or not. */
        expect_empty(QR_AA | DM_DNS_RCODE_SERVFAIL, NULL, NULL, 0, DM_RRS_ERROR, DM_ESERVFAIL);
        expect_empty(QR_RD | DM_DNS_RCODE_REFUSED, NULL, "com", 0, DM_RRS_ERROR, DM_EREFUSED);
}

/* A CNAME chain in the answer is the server speaking for the name: its end without the type
 * is NODATA from an authoritative or recursive server, lame from anything else. */
static void test_chain_end_without_type(void **state)
{
        struct pk p;
        struct dm_dns_msg m;
        struct dm_dns_answer a;
        static const uint16_t flags[] = {QR_AA, QR_RD_RA, QR_RD};
        static const enum dm_rr_status want[] = {DM_RRS_NODATA, DM_RRS_NODATA, DM_RRS_ERROR};

        for (size_t i = 0; i < 3; i++) {
                pk_init(&p);
                pk_header(&p, 1, flags[i], 1, 1, 0, 0);
                pk_name(&p, "www.example.com");
                pk_u16(&p, DM_RR_AAAA);
                pk_u16(&p, 1);
                pk_ptr(&p, 12);
                size_t at = pk_rr_begin(&p, DM_RR_CNAME, 1, 300);
                pk_name(&p, "cdn.example.net");
                pk_rr_end(&p, at);
                assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), 0);
                assert_int_equal(dm_dns_msg_answer(&m, DM_RR_AAAA, 0, &a), 0);
                assert_int_equal(a.status, want[i]);
                assert_int_equal(a.err, want[i] == DM_RRS_ERROR ? DM_ELAME : 0);
                dm_dns_answer_done(&a);
        }

        /* NOERROR without a question says nothing about any name. */
        pk_init(&p);
        pk_header(&p, 1, QR_AA, 0, 0, 0, 0);
        assert_int_equal(dm_dns_msg_parse(p.b, p.n, &m), 0);
        assert_int_equal(dm_dns_msg_answer(&m, DM_RR_A, DM_DNS_ANSWER_AUTH_ONLY, &a), 0);
        assert_int_equal(a.status, DM_RRS_ERROR);
        assert_int_equal(a.err, DM_EFORMERR);
        dm_dns_answer_done(&a);
}

/* A datagram cut short by the receive buffer: only its header and question can be read,
 * and they are enough to match it and ask again over TCP. */
static void test_parse_header_of_cut_reply(void **state)
{
        struct pk p;
        struct dm_dns_msg m;
        uint8_t qn[DM_DNS_NAME_MAX];
        size_t qlen;

        pk_init(&p);
        pk_header(&p, 0x4242, QR_AA, 1, 40, 0, 0);
        pk_name(&p, "Big.Example.com");
        pk_u16(&p, DM_RR_TXT);
        pk_u16(&p, 1);
        for (int i = 0; i < 40; i++) {
                pk_ptr(&p, 12);
                size_t at = pk_rr_begin(&p, DM_RR_TXT, 1, 60);
                pk_u8(&p, 200);
                for (int k = 0; k < 200; k++)
                        pk_u8(&p, 'x');
                pk_rr_end(&p, at);
        }
        assert_true(p.n > 4096);
        assert_int_equal(dm_dns_msg_parse(p.b, 4096, &m), DM_EPARSE);
        assert_int_equal(dm_dns_msg_parse_header(p.b, 4096, &m), 0);
        assert_int_equal(m.id, 0x4242);
        assert_int_equal(m.qtype, DM_RR_TXT);
        assert_int_equal(m.ancount, 0); /* not read, so not there to read */
        assert_int_equal(m.rcode, 0);
        dm_dns_name_from_text("big.example.com", qn, &qlen);
        assert_int_equal(dm_dns_msg_check_reply(&m, 0x4242, qn, qlen, DM_RR_TXT), 0);
        assert_int_equal(dm_dns_msg_check_reply(&m, 0x4243, qn, qlen, DM_RR_TXT), DM_EINVAL);
        /* The question itself cut: nothing to match. */
        assert_int_equal(dm_dns_msg_parse_header(p.b, 20, &m), DM_EPARSE);
        assert_int_equal(dm_dns_msg_parse_header(p.b, 11, &m), DM_EPARSE);
}

static void test_name_format(void **state)
{
        struct dm_buf b;
        dm_buf_init(&b, 4096);
        assert_int_equal(dm_dns_name_format((const uint8_t *)"\0", 1, &b), 0);
        assert_string_equal(b.data, ".");
        dm_buf_clear(&b);
        assert_int_equal(dm_dns_name_format((const uint8_t *)"\3WwW\7ExAmPlE\0", 13, &b), 0);
        assert_string_equal(b.data, "www.example.");
        dm_buf_clear(&b);
        assert_int_equal(dm_dns_name_format((const uint8_t *)"\6a.b c\\\4\"@\xff\x01\0", 13, &b),
                         0);
        assert_string_equal(b.data, "a\\.b\\032c\\\\.\\\"\\@\\255\\001.");
        dm_buf_clear(&b);
        /* A label running past the given length. */
        assert_int_equal(dm_dns_name_format((const uint8_t *)"\5ab", 3, &b), DM_EINVAL);
        dm_buf_done(&b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_name_from_text),
            cmocka_unit_test(test_query_build),
            cmocka_unit_test(test_parse_compressed),
            cmocka_unit_test(test_parse_every_prefix_fails),
            cmocka_unit_test(test_pointer_loops),
            cmocka_unit_test(test_name_too_long),
            cmocka_unit_test(test_counts_bounded),
            cmocka_unit_test(test_opt_and_rcodes),
            cmocka_unit_test(test_answer_extract),
            cmocka_unit_test(test_cname_chain),
            cmocka_unit_test(test_cname_loop_and_bad_rdata),
            cmocka_unit_test(test_answer_text_bounded),
            cmocka_unit_test(test_duplicates_and_order),
            cmocka_unit_test(test_name_format),
            cmocka_unit_test(test_name_is_subdomain),
            cmocka_unit_test(test_empty_answers),
            cmocka_unit_test(test_chain_end_without_type),
            cmocka_unit_test(test_parse_header_of_cut_reply),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
