/* The resolver against responder threads on 127.0.0.1 (UDP and TCP on one random port each)
 * that answer by name: plain sets in random order, rcodes, a truncated answer completed
 * over TCP, an answer too big for the receive buffer, dropped first packets, CNAME chains,
 * junk before the real answer, silence, referrals and lame replies, servers that refuse or
 * drop EDNS, that do not echo the name's case, forged replies in the wrong case; a second
 * responder and silent sockets for failover, dead servers and probes; source ports that
 * change; and a load test of 20,000 queries with 1,000 in flight. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dm/dnswire.h"
#include "dm/error.h"
#include "dm/resolver.h"
#include "dm/rrtype.h"
#include "dnspkt.h"

#define SEEN_MAX 65536
#define BIG_STRINGS 20
#define BIG_LEN 200
#define LOAD_N 20000
#define LOAD_CONCURRENCY 1000
#define PORTS_MAX 4096
#define HUGE_STRINGS 30

/* MAIN answers the names below; ALT is a second server that answers some of the names MAIN
 * fails, and otherwise behaves the same. */
enum role { ROLE_MAIN, ROLE_ALT };

struct responder {
        int udp;
        int tcp;
        uint16_t port;
        enum role role;
        pthread_t thread;
        atomic_int stop;
        atomic_int silent; /* drop every query */
        atomic_ulong udp_queries;
        atomic_ulong tcp_queries;
        atomic_ulong edns_queries;  /* UDP queries with an OPT record */
        atomic_ulong mixed_queries; /* UDP queries whose name has both cases */
        atomic_uint nports;         /* distinct client ports seen */
        uint16_t *ports;            /* the responder thread's own */
        uint32_t *seen;             /* (client port, id) + 1 of first packets dropped */
        size_t nseen;
        unsigned seed;
};

static struct responder g_resp;

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the responder ---- */

struct query {
        uint16_t id;
        char name[256]; /* lower case, dotted, no trailing dot */
        uint16_t qtype;
        const uint8_t *question; /* raw question section */
        size_t qlen;
        bool edns;  /* an OPT record follows (the resolver sends nothing else there) */
        bool upper; /* the name has an upper-case letter */
        bool lower; /* and a lower-case one */
};

static bool parse_query(const uint8_t *b, size_t n, struct query *q)
{
        size_t off = 12, o = 0;
        if (n < 12 + 5)
                return false;
        q->id = (uint16_t)(b[0] << 8 | b[1]);
        q->upper = q->lower = false;
        while (off < n && b[off]) {
                size_t l = b[off++];
                if (off + l > n || o + l + 1 >= sizeof(q->name))
                        return false;
                if (o)
                        q->name[o++] = '.';
                for (size_t i = 0; i < l; i++) {
                        char ch = (char)b[off + i];
                        q->upper |= ch >= 'A' && ch <= 'Z';
                        q->lower |= ch >= 'a' && ch <= 'z';
                        q->name[o++] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
                }
                off += l;
        }
        q->name[o] = '\0';
        if (off + 5 > n)
                return false;
        q->qtype = (uint16_t)(b[off + 1] << 8 | b[off + 2]);
        q->question = b + 12;
        q->qlen = off + 5 - 12;
        q->edns = (b[10] << 8 | b[11]) > 0;
        return true;
}

enum casing { ECHO, LOWER, FLIP };

/* A reply header with `flags` (QR and the rest, rcode included) and the question echoed
 * as it came, in lower case, or with the case of every letter flipped. */
static void head_as(struct pk *p, const struct query *q, uint16_t flags, uint16_t an, uint16_t ns,
                    enum casing casing)
{
        pk_init(p);
        pk_header(p, q->id, flags, 1, an, ns, 0);
        size_t at = p->n;
        pk_bytes(p, q->question, q->qlen);
        for (size_t i = at; casing != ECHO && i < at + q->qlen - 4; i++) {
                uint8_t ch = p->b[i];
                if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
                        p->b[i] = casing == LOWER ? (uint8_t)(ch | 0x20) : (uint8_t)(ch ^ 0x20);
        }
}

/* From a recursive server: QR, RD, RA. */
static void head(struct pk *p, const struct query *q, uint16_t rcode, uint16_t an, bool tc)
{
        head_as(p, q, (uint16_t)(0x8180 | (tc ? 0x0200 : 0) | rcode), an, 0, ECHO);
}

static void rr_a(struct pk *p, uint32_t ttl, uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
        size_t at = pk_rr_begin(p, DM_RR_A, 1, ttl);
        pk_u8(p, a);
        pk_u8(p, b);
        pk_u8(p, c);
        pk_u8(p, d);
        pk_rr_end(p, at);
}

static void rr_soa(struct pk *p, const char *zone)
{
        pk_name(p, zone);
        size_t at = pk_rr_begin(p, DM_RR_SOA, 1, 300);
        pk_name(p, "ns1.test");
        pk_name(p, "hostmaster.test");
        for (int i = 0; i < 5; i++)
                pk_u32(p, (uint32_t)(1 + i));
        pk_rr_end(p, at);
}

static void shuffle(int *v, int n, unsigned *seed)
{
        for (int i = n - 1; i > 0; i--) {
                int j = (int)(rand_r(seed) % (unsigned)(i + 1));
                int t = v[i];
                v[i] = v[j];
                v[j] = t;
        }
}

static bool seen_before(struct responder *rs, uint32_t key)
{
        for (size_t i = 0; i < rs->nseen; i++)
                if (rs->seen[i] == key + 1)
                        return true;
        if (rs->nseen < SEEN_MAX)
                rs->seen[rs->nseen++] = key + 1;
        return false;
}

static void rr_ns(struct pk *p, const char *owner, const char *target)
{
        pk_name(p, owner);
        size_t at = pk_rr_begin(p, DM_RR_NS, 1, 172800);
        pk_name(p, target);
        pk_rr_end(p, at);
}

static int answer_a(struct pk *p, const struct query *q, enum casing casing, uint8_t last)
{
        head_as(p, q, 0x8180, 1, 0, casing);
        pk_ptr(p, 12);
        rr_a(p, 60, 192, 0, 2, last);
        return 1;
}

static bool prefix(const char *name, const char *pre)
{
        return strncmp(name, pre, strlen(pre)) == 0;
}

/* The names of failover, EDNS, 0x20 and empty replies; -1 for the others. */
static int respond_more(struct responder *rs, const struct query *q, bool tcp, struct pk out[3])
{
        struct pk *p = &out[0];

        if (q->name[0] == '\0') {
                /* The root: what probes ask. Any well-formed reply will do. */
                head_as(p, q, 0x8100 | DM_DNS_RCODE_REFUSED, 0, 0, ECHO);
                return 1;
        }
        /* Failed by MAIN, answered by ALT (SERVFAIL, referral, lame), or by neither. */
        if (strcmp(q->name, "sf2.test") == 0 || strcmp(q->name, "ref2.test") == 0 ||
            strcmp(q->name, "lame2.test") == 0) {
                if (rs->role == ROLE_ALT)
                        return answer_a(p, q, ECHO, 77);
                if (q->name[0] == 's') {
                        head(p, q, DM_DNS_RCODE_SERVFAIL, 0, false);
                } else if (q->name[0] == 'r') {
                        head_as(p, q, 0x8100, 0, 1, ECHO);
                        rr_ns(p, "test", "ns1.test");
                } else {
                        head_as(p, q, 0x8100, 0, 0, ECHO);
                }
                return 1;
        }
        if (strcmp(q->name, "sfall.test") == 0) {
                head(p, q, DM_DNS_RCODE_SERVFAIL, 0, false);
                return 1;
        }
        if (strcmp(q->name, "referral.test") == 0) {
                /* Not authoritative, not recursive: "ask the servers of test". */
                head_as(p, q, 0x8100, 0, 2, ECHO);
                rr_ns(p, "test", "ns1.test");
                rr_ns(p, "test", "ns2.test");
                return 1;
        }
        if (strcmp(q->name, "lame.test") == 0) {
                head_as(p, q, 0x8100, 0, 0, ECHO);
                return 1;
        }
        if (strcmp(q->name, "aanodata.test") == 0) {
                head_as(p, q, 0x8500, 0, 1, ECHO);
                rr_soa(p, "test");
                return 1;
        }
        if (strcmp(q->name, "aanosoa.test") == 0) {
                head_as(p, q, 0x8500, 0, 0, ECHO);
                return 1;
        }
        /* EDNS refused three ways, and dropped. */
        if (strcmp(q->name, "formerr.test") == 0 || strcmp(q->name, "notimp.test") == 0) {
                if (!q->edns)
                        return answer_a(p, q, ECHO, 60);
                /* Old servers send no question back either. */
                pk_init(p);
                pk_header(p, q->id,
                          q->name[0] == 'f' ? 0x8100 | DM_DNS_RCODE_FORMERR
                                            : 0x8100 | DM_DNS_RCODE_NOTIMP,
                          0, 0, 0, 0);
                return 1;
        }
        if (strcmp(q->name, "badvers.test") == 0) {
                if (!q->edns)
                        return answer_a(p, q, ECHO, 60);
                head_as(p, q, 0x8500, 0, 0, ECHO);
                p->b[11] = 1; /* arcount: an OPT with extended rcode 1 (BADVERS) */
                pk_u8(p, 0);
                pk_u16(p, DM_RR_OPT);
                pk_u16(p, 1232);
                pk_u32(p, 0x01000000);
                pk_u16(p, 0);
                return 1;
        }
        if (prefix(q->name, "noedns")) {
                if (q->edns && !tcp)
                        return 0;
                return answer_a(p, q, ECHO, 63);
        }
        if (prefix(q->name, "lossy")) {
                /* 30 % of the datagrams lost at random. */
                if (!tcp && rand_r(&rs->seed) % 10 < 3)
                        return 0;
                return answer_a(p, q, ECHO, 64);
        }
        if (strcmp(q->name, "huge.test") == 0) {
                /* About 6 KB over UDP without TC: more than the receive buffer. */
                head_as(p, q, 0x8580, HUGE_STRINGS, 0, ECHO);
                for (int i = 0; i < HUGE_STRINGS; i++) {
                        uint8_t str[200];
                        memset(str, 'a' + i % 26, sizeof(str));
                        str[0] = (uint8_t)('0' + i / 10);
                        str[1] = (uint8_t)('0' + i % 10);
                        pk_ptr(p, 12);
                        size_t at = pk_rr_begin(p, DM_RR_TXT, 1, 60);
                        pk_u8(p, sizeof(str));
                        pk_bytes(p, str, sizeof(str));
                        pk_rr_end(p, at);
                }
                return 1;
        }
        /* 0x20: names that are echoed in lower case; forged replies in the wrong case
         * before the real one; a server that looks names up with their case. */
        if (prefix(q->name, "lower"))
                return answer_a(p, q, tcp ? ECHO : LOWER, 70);
        if (prefix(q->name, "forge")) {
                head_as(&out[0], q, 0x8180, 1, 0, FLIP);
                pk_ptr(&out[0], 12);
                rr_a(&out[0], 60, 6, 6, 6, 6);
                answer_a(&out[1], q, ECHO, 71);
                return 2;
        }
        if (prefix(q->name, "nxcase")) {
                if (!q->upper)
                        return answer_a(p, q, ECHO, 72);
                head_as(p, q, 0x8580 | DM_DNS_RCODE_NXDOMAIN, 0, 1, ECHO);
                rr_soa(p, "test");
                return 1;
        }
        if (prefix(q->name, "mixed"))
                return answer_a(p, q, ECHO, 73);
        return -1;
}

/* Builds what to send back for one query: up to 3 packets, 0 to stay silent. */
static int respond(struct responder *rs, const uint8_t *b, size_t n, bool tcp, uint32_t key,
                   struct pk out[3])
{
        struct query q;
        if (!parse_query(b, n, &q))
                return 0;
        struct pk *p = &out[0];
        int k = respond_more(rs, &q, tcp, out);
        if (k >= 0)
                return k;

        if (strncmp(q.name, "load", 4) == 0) {
                unsigned long i = strtoul(q.name + 4, NULL, 10);
                head(p, &q, 0, 1, false);
                pk_ptr(p, 12);
                rr_a(p, 60, 10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i);
                return 1;
        }
        if (strcmp(q.name, "a.test") == 0 && q.qtype == DM_RR_A) {
                int order[3] = {0, 1, 2};
                shuffle(order, 3, &rs->seed);
                head(p, &q, 0, 3, false);
                for (int i = 0; i < 3; i++) {
                        if (order[i] == 1)
                                pk_name(p, "A.TeSt"); /* owner in another case */
                        else
                                pk_ptr(p, 12);
                        rr_a(p, order[i] == 2 ? 200 : 300, 192, 0, 2, (uint8_t)(order[i] + 1));
                }
                return 1;
        }
        if (strcmp(q.name, "mx.test") == 0 && q.qtype == DM_RR_MX) {
                head(p, &q, 0, 2, false);
                pk_ptr(p, 12);
                size_t at = pk_rr_begin(p, DM_RR_MX, 1, 3600);
                pk_u16(p, 20);
                pk_name(p, "MX2.Example.COM");
                pk_rr_end(p, at);
                pk_ptr(p, 12);
                at = pk_rr_begin(p, DM_RR_MX, 1, 3600);
                pk_u16(p, 10);
                pk_name(p, "Mail.Example.COM");
                pk_rr_end(p, at);
                return 1;
        }
        if (strcmp(q.name, "txt.test") == 0 && q.qtype == DM_RR_TXT) {
                head(p, &q, 0, 2, false);
                pk_ptr(p, 12);
                size_t at = pk_rr_begin(p, DM_RR_TXT, 1, 60);
                pk_u8(p, 11);
                pk_bytes(p, "v=spf1 -all", 11);
                pk_rr_end(p, at);
                pk_ptr(p, 12);
                at = pk_rr_begin(p, DM_RR_TXT, 1, 60);
                pk_u8(p, 20);
                pk_bytes(p, "<b onclick=\"x\">\\</b>", 20);
                pk_u8(p, 2);
                pk_bytes(p, "\x01\n", 2);
                pk_rr_end(p, at);
                return 1;
        }
        if (strcmp(q.name, "nx.test") == 0 ||
            strcmp(q.name, "nxabcdefghijklmnopqrstuvwxy.test") == 0) {
                head(p, &q, 3, 0, false);
                return 1;
        }
        if (strcmp(q.name, "servfail.test") == 0) {
                head(p, &q, 2, 0, false);
                return 1;
        }
        if (strcmp(q.name, "refused.test") == 0) {
                head(p, &q, 5, 0, false);
                return 1;
        }
        if (strcmp(q.name, "nodata.test") == 0) {
                /* A resolver's NODATA: RA and the zone's SOA in the authority section. */
                head(p, &q, 0, 0, false);
                p->b[9] = 1; /* nscount */
                rr_soa(p, "test");
                return 1;
        }
        if (strcmp(q.name, "big.test") == 0) {
                if (!tcp) {
                        head(p, &q, 0, 0, true);
                        return 1;
                }
                head(p, &q, 0, BIG_STRINGS, false);
                for (int i = 0; i < BIG_STRINGS; i++) {
                        uint8_t s[BIG_LEN];
                        memset(s, 'a' + i, sizeof(s));
                        s[0] = (uint8_t)('0' + i / 10);
                        s[1] = (uint8_t)('0' + i % 10);
                        pk_ptr(p, 12);
                        size_t at = pk_rr_begin(p, DM_RR_TXT, 1, 60);
                        pk_u8(p, BIG_LEN);
                        pk_bytes(p, s, BIG_LEN);
                        pk_rr_end(p, at);
                }
                return 1;
        }
        if (strcmp(q.name, "drop.test") == 0) {
                if (!seen_before(rs, key))
                        return 0;
                head(p, &q, 0, 1, false);
                pk_ptr(p, 12);
                rr_a(p, 60, 192, 0, 2, 50);
                return 1;
        }
        if (strcmp(q.name, "cname.test") == 0) {
                /* The records come in reverse order of the chain. */
                head(p, &q, 0, 4, false);
                pk_name(p, "C2.Test");
                rr_a(p, 30, 192, 0, 2, 9);
                pk_name(p, "c1.test");
                size_t at = pk_rr_begin(p, DM_RR_CNAME, 1, 300);
                pk_name(p, "c2.test");
                pk_rr_end(p, at);
                pk_name(p, "unrelated.test");
                rr_a(p, 30, 6, 6, 6, 6);
                pk_ptr(p, 12);
                at = pk_rr_begin(p, DM_RR_CNAME, 1, 300);
                pk_name(p, "C1.test");
                pk_rr_end(p, at);
                return 1;
        }
        if (strcmp(q.name, "junk.test") == 0) {
                /* A forged answer with the wrong id, an unparseable packet with the right
                 * id, then the real answer. */
                struct query wrong = q;
                wrong.id ^= 0x5555;
                head(&out[0], &wrong, 0, 1, false);
                pk_ptr(&out[0], 12);
                rr_a(&out[0], 60, 6, 6, 6, 6);
                head(&out[1], &q, 0, 5, false);
                head(&out[2], &q, 0, 1, false);
                pk_ptr(&out[2], 12);
                rr_a(&out[2], 60, 192, 0, 2, 7);
                return 3;
        }
        if (strcmp(q.name, "wrongq.test") == 0) {
                /* The right id for another question, then the real answer. */
                pk_init(&out[0]);
                pk_header(&out[0], q.id, 0x8180, 1, 1, 0, 0);
                pk_name(&out[0], "other.test");
                pk_u16(&out[0], DM_RR_A);
                pk_u16(&out[0], 1);
                pk_ptr(&out[0], 12);
                rr_a(&out[0], 60, 6, 6, 6, 6);
                head(&out[1], &q, 0, 1, false);
                pk_ptr(&out[1], 12);
                rr_a(&out[1], 60, 192, 0, 2, 8);
                return 2;
        }
        if (strcmp(q.name, "garbage.test") == 0) {
                head(p, &q, 0, 3, false);
                return 1;
        }
        if (strcmp(q.name, "badrdata.test") == 0) {
                head(p, &q, 0, 1, false);
                pk_ptr(p, 12);
                size_t at = pk_rr_begin(p, DM_RR_A, 1, 60);
                pk_bytes(p, "\1\2\3\4\5", 5);
                pk_rr_end(p, at);
                return 1;
        }
        /* silent.test and anything else: no answer. */
        return 0;
}

static void serve_tcp(struct responder *rs)
{
        int fd = accept(rs->tcp, NULL, NULL);
        if (fd < 0)
                return;
        struct timeval tv = {.tv_sec = 2};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        uint8_t buf[2 + 512];
        size_t got = 0, want = 2;
        while (got < want) {
                ssize_t n = recv(fd, buf + got, want - got, 0);
                if (n <= 0)
                        goto out;
                got += (size_t)n;
                if (got == 2) {
                        want = 2 + (size_t)(buf[0] << 8 | buf[1]);
                        if (want > sizeof(buf))
                                goto out;
                }
        }
        atomic_fetch_add(&rs->tcp_queries, 1);
        struct pk out[3];
        int k = respond(rs, buf + 2, got - 2, true, 0, out);
        for (int i = 0; i < k; i++) {
                uint8_t len[2] = {(uint8_t)(out[i].n >> 8), (uint8_t)out[i].n};
                send(fd, len, 2, MSG_NOSIGNAL);
                send(fd, out[i].b, out[i].n, MSG_NOSIGNAL);
        }
out:
        close(fd);
}

/* Counts what the resolver sends: EDNS, case, source ports. */
static void observe(struct responder *rs, const uint8_t *b, size_t n, uint16_t port)
{
        struct query q;
        if (parse_query(b, n, &q)) {
                if (q.edns)
                        atomic_fetch_add(&rs->edns_queries, 1);
                if (q.upper && q.lower)
                        atomic_fetch_add(&rs->mixed_queries, 1);
        }
        unsigned np = atomic_load(&rs->nports);
        for (unsigned i = 0; i < np; i++)
                if (rs->ports[i] == port)
                        return;
        if (np < PORTS_MAX) {
                rs->ports[np] = port;
                atomic_store(&rs->nports, np + 1);
        }
}

static void *responder_main(void *arg)
{
        struct responder *rs = arg;
        struct pk out[3];
        uint8_t buf[4096];

        while (!atomic_load(&rs->stop)) {
                struct pollfd pfd[2] = {{.fd = rs->udp, .events = POLLIN},
                                        {.fd = rs->tcp, .events = POLLIN}};
                if (poll(pfd, 2, 20) <= 0)
                        continue;
                if (pfd[1].revents & POLLIN)
                        serve_tcp(rs);
                if (!(pfd[0].revents & POLLIN))
                        continue;
                for (;;) {
                        struct sockaddr_in from;
                        socklen_t flen = sizeof(from);
                        ssize_t n = recvfrom(rs->udp, buf, sizeof(buf), MSG_DONTWAIT,
                                             (struct sockaddr *)&from, &flen);
                        if (n < 0)
                                break;
                        atomic_fetch_add(&rs->udp_queries, 1);
                        observe(rs, buf, (size_t)n, ntohs(from.sin_port));
                        if (atomic_load(&rs->silent))
                                continue;
                        uint32_t key = (uint32_t)ntohs(from.sin_port) << 16 |
                                       (n >= 2 ? (uint32_t)(buf[0] << 8 | buf[1]) : 0);
                        int k = respond(rs, buf, (size_t)n, false, key, out);
                        for (int i = 0; i < k; i++)
                                sendto(rs->udp, out[i].b, out[i].n, 0, (struct sockaddr *)&from,
                                       flen);
                }
        }
        return NULL;
}

static int responder_start(struct responder *rs, enum role role, bool silent)
{
        memset(rs, 0, sizeof(*rs));
        rs->role = role;
        atomic_store(&rs->silent, silent);
        rs->seed = 12345;
        rs->seen = calloc(SEEN_MAX, sizeof(*rs->seen));
        rs->ports = calloc(PORTS_MAX, sizeof(*rs->ports));
        if (!rs->seen || !rs->ports)
                return -1;
        for (int attempt = 0; attempt < 50; attempt++) {
                struct sockaddr_in a = {.sin_family = AF_INET};
                a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                socklen_t alen = sizeof(a);
                rs->udp = socket(AF_INET, SOCK_DGRAM, 0);
                rs->tcp = socket(AF_INET, SOCK_STREAM, 0);
                int on = 1, rcv = 8 << 20;
                setsockopt(rs->tcp, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
                setsockopt(rs->udp, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
                if (bind(rs->udp, (struct sockaddr *)&a, sizeof(a)) == 0 &&
                    getsockname(rs->udp, (struct sockaddr *)&a, &alen) == 0 &&
                    bind(rs->tcp, (struct sockaddr *)&a, sizeof(a)) == 0 &&
                    listen(rs->tcp, 64) == 0) {
                        rs->port = ntohs(a.sin_port);
                        return pthread_create(&rs->thread, NULL, responder_main, rs);
                }
                close(rs->udp);
                close(rs->tcp);
        }
        return -1;
}

static void responder_stop(struct responder *rs)
{
        atomic_store(&rs->stop, 1);
        pthread_join(rs->thread, NULL);
        close(rs->udp);
        close(rs->tcp);
        free(rs->seen);
        free(rs->ports);
}

static int setup(void **state)
{
        return responder_start(&g_resp, ROLE_MAIN, false);
}

static int teardown(void **state)
{
        responder_stop(&g_resp);
        return 0;
}

/* ---- plumbing ---- */

static void opts_for(struct dm_resolver_opts *o, int timeout_ms, int retries, int concurrency)
{
        memset(o, 0, sizeof(*o));
        struct sockaddr_in *a = (struct sockaddr_in *)&o->servers[0];
        a->sin_family = AF_INET;
        a->sin_port = htons(g_resp.port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        o->server_lens[0] = sizeof(*a);
        o->nservers = 1;
        o->timeout_ms = timeout_ms;
        o->retries = retries;
        o->concurrency = concurrency;
}

struct result {
        int calls;
        enum dm_rr_status status;
        int err;
        uint32_t ttl;
        bool authoritative;
        size_t n;
        int server_plus1;
        char joined[16384]; /* values joined by '|' */
};

static void collect(void *arg, const struct dm_dns_answer *a)
{
        struct result *res = arg;
        res->calls++;
        res->status = a->status;
        res->err = a->err;
        res->server_plus1 = a->server_plus1;
        res->ttl = a->ttl;
        res->authoritative = a->authoritative;
        res->n = a->nvalues;
        size_t o = 0;
        res->joined[0] = '\0';
        for (size_t i = 0; i < a->nvalues; i++) {
                int w = snprintf(res->joined + o, sizeof(res->joined) - o, "%s%s", i ? "|" : "",
                                 a->values[i]);
                if (w < 0 || (size_t)w >= sizeof(res->joined) - o)
                        break;
                o += (size_t)w;
        }
}

static void drain(struct dm_resolver *r, int limit_ms)
{
        int64_t end = now_ms() + limit_ms;
        while (dm_resolver_pending(r) > 0 && now_ms() < end)
                assert_true(dm_resolver_run(r, 50) >= 0);
        assert_int_equal(dm_resolver_pending(r), 0);
}

static struct result *resolve(struct dm_resolver *r, const char *name, uint16_t type)
{
        static struct result res;
        memset(&res, 0, sizeof(res));
        assert_int_equal(dm_resolver_query(r, name, type, collect, &res), 0);
        drain(r, 10000);
        assert_int_equal(res.calls, 1);
        return &res;
}

static struct dm_resolver *new_resolver(int timeout_ms, int retries, int concurrency)
{
        struct dm_resolver_opts o;
        struct dm_resolver *r = NULL;
        opts_for(&o, timeout_ms, retries, concurrency);
        assert_int_equal(dm_resolver_new(&o, &r), 0);
        return r;
}

/* ---- tests ---- */

static void test_parse_servers(void **state)
{
        struct dm_resolver_opts o;
        char err[128];
        memset(&o, 0, sizeof(o));

        assert_int_equal(dm_resolver_parse_servers("127.0.0.1:5353, [::1]:53,::1,10.0.0.1", err,
                                                   sizeof(err), &o),
                         0);
        assert_int_equal(o.nservers, 4);
        const struct sockaddr_in *a = (const struct sockaddr_in *)&o.servers[0];
        assert_int_equal(a->sin_family, AF_INET);
        assert_int_equal(ntohs(a->sin_port), 5353);
        assert_int_equal(ntohl(a->sin_addr.s_addr), 0x7f000001);
        assert_int_equal(o.server_lens[0], sizeof(struct sockaddr_in));
        const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)&o.servers[1];
        assert_int_equal(b->sin6_family, AF_INET6);
        assert_int_equal(ntohs(b->sin6_port), 53);
        assert_true(IN6_IS_ADDR_LOOPBACK(&b->sin6_addr));
        assert_int_equal(o.servers[2].ss_family, AF_INET6);
        assert_int_equal(ntohs(((const struct sockaddr_in6 *)&o.servers[2])->sin6_port), 53);
        assert_int_equal(ntohs(((const struct sockaddr_in *)&o.servers[3])->sin_port), 53);

        static const char *const bad[] = {
            "",
            "1.2.3.4,",
            "1.2.3.4:0",
            "1.2.3.4:65536",
            "1.2.3.4:x",
            "[::1",
            "[::1]x",
            "999.1.1.1",
            "example.com",
            "fe80::1%eth0",
            "1,2,3,4,5,6,7,8,9",
            "1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4,1.1.1.5,1.1.1.6,1.1.1.7,1.1.1.8,1.1.1.9",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                err[0] = '\0';
                o.nservers = 4;
                assert_int_equal(dm_resolver_parse_servers(bad[i], err, sizeof(err), &o),
                                 DM_EINVAL);
                assert_true(err[0] != '\0');
                assert_int_equal(o.nservers, 4); /* untouched */
        }
        assert_int_equal(dm_resolver_parse_servers(NULL, NULL, 0, &o), DM_EINVAL);
}

static void test_resolv_conf(void **state)
{
        char path[] = "/tmp/dm-resolv-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        static const char conf[] = "# generated\n"
                                   "search example.com\n"
                                   "nameserver 192.0.2.53\n"
                                   "  nameserver\tfe80::1%eth0\n"
                                   "nameserver ::1 # local\n"
                                   "nameserver not-an-address\n"
                                   "nameserver 10.0.0.1;comment\n"
                                   "options edns0\n";
        assert_int_equal(write(fd, conf, sizeof(conf) - 1), (ssize_t)(sizeof(conf) - 1));
        close(fd);
        struct dm_resolver_opts o;
        memset(&o, 0, sizeof(o));
        assert_int_equal(dm_resolver_servers_from_resolv_conf(path, &o), 0);
        assert_int_equal(o.nservers, 3);
        assert_int_equal(o.servers[0].ss_family, AF_INET);
        assert_int_equal(ntohs(((const struct sockaddr_in *)&o.servers[0])->sin_port), 53);
        assert_int_equal(o.servers[1].ss_family, AF_INET6);
        assert_int_equal(o.servers[2].ss_family, AF_INET);

        /* Only unusable entries: ENOENT, opts untouched. */
        fd = open(path, O_WRONLY | O_TRUNC);
        static const char only_scoped[] = "nameserver fe80::1%eth0\n";
        assert_int_equal(write(fd, only_scoped, sizeof(only_scoped) - 1),
                         (ssize_t)(sizeof(only_scoped) - 1));
        close(fd);
        assert_int_equal(dm_resolver_servers_from_resolv_conf(path, &o), DM_ENOENT);
        assert_int_equal(o.nservers, 3);
        unlink(path);
        assert_int_equal(dm_resolver_servers_from_resolv_conf(path, &o), DM_ENOENT);
}

static void test_new_invalid(void **state)
{
        struct dm_resolver_opts o;
        struct dm_resolver *r = NULL;
        opts_for(&o, 1000, 2, 10);
        o.nservers = 0;
        assert_int_equal(dm_resolver_new(&o, &r), DM_EINVAL);
        opts_for(&o, 0, 2, 10);
        assert_int_equal(dm_resolver_new(&o, &r), DM_EINVAL);
        opts_for(&o, 1000, -1, 10);
        assert_int_equal(dm_resolver_new(&o, &r), DM_EINVAL);
        opts_for(&o, 1000, 2, 0);
        assert_int_equal(dm_resolver_new(&o, &r), DM_EINVAL);
        opts_for(&o, 1000, 2, 10);
        o.server_lens[0] = 4;
        assert_int_equal(dm_resolver_new(&o, &r), DM_EINVAL);
        assert_null(r);
        dm_resolver_free(NULL);

        r = new_resolver(1000, 2, 10);
        struct result res;
        assert_int_equal(dm_resolver_query(r, "bad..name", DM_RR_A, collect, &res), DM_EINVAL);
        assert_int_equal(dm_resolver_query(r, "ok.test", 0, collect, &res), DM_EINVAL);
        assert_int_equal(dm_resolver_query(r, "ok.test", DM_RR_A, NULL, &res), DM_EINVAL);
        assert_int_equal(dm_resolver_pending(r), 0);
        dm_resolver_free(r);
}

static void test_types(void **state)
{
        struct dm_resolver *r = new_resolver(3000, 2, 100);
        struct result *res = resolve(r, "a.test", DM_RR_A);
        assert_int_equal(res->status, DM_RRS_OK);
        assert_string_equal(res->joined, "192.0.2.1|192.0.2.2|192.0.2.3");
        assert_int_equal(res->ttl, 200);
        /* Random order from the server never changes the set. */
        for (int i = 0; i < 10; i++) {
                res = resolve(r, "A.Test", DM_RR_A);
                assert_string_equal(res->joined, "192.0.2.1|192.0.2.2|192.0.2.3");
        }
        res = resolve(r, "mx.test", DM_RR_MX);
        assert_int_equal(res->status, DM_RRS_OK);
        assert_string_equal(res->joined, "10 mail.example.com.|20 mx2.example.com.");
        assert_int_equal(res->ttl, 3600);
        res = resolve(r, "txt.test.", DM_RR_TXT);
        assert_int_equal(res->status, DM_RRS_OK);
        assert_string_equal(res->joined,
                            "\"<b onclick=\\\"x\\\">\\\\</b>\" \"\\001\\010\"|\"v=spf1 -all\"");
        struct dm_resolver_stats st;
        dm_resolver_get_stats(r, &st);
        assert_int_equal(st.answers, 13);
        assert_int_equal(st.errors, 0);
        assert_true(st.window >= 64);
        dm_resolver_free(r);
}

static void test_rcodes(void **state)
{
        struct dm_resolver *r = new_resolver(3000, 2, 100);
        struct result *res = resolve(r, "nx.test", DM_RR_A);
        assert_int_equal(res->status, DM_RRS_NXDOMAIN);
        assert_int_equal(res->n, 0);
        assert_int_equal(res->ttl, 0);
        res = resolve(r, "nodata.test", DM_RR_A);
        assert_int_equal(res->status, DM_RRS_NODATA);
        res = resolve(r, "servfail.test", DM_RR_A);
        assert_int_equal(res->status, DM_RRS_ERROR);
        assert_int_equal(res->err, DM_ESERVFAIL);
        res = resolve(r, "refused.test", DM_RR_A);
        assert_int_equal(res->status, DM_RRS_ERROR);
        assert_int_equal(res->err, DM_EREFUSED);
        assert_int_equal(res->server_plus1, 1); /* the failure names the one server */
        res = resolve(r, "nx.test", DM_RR_A);
        assert_int_equal(res->server_plus1, 0); /* an answer names none */
        res = resolve(r, "badrdata.test", DM_RR_A);
        assert_int_equal(res->status, DM_RRS_ERROR);
        assert_int_equal(res->err, DM_EPARSE);
        struct dm_resolver_stats st;
        dm_resolver_get_stats(r, &st);
        assert_int_equal(st.errors, 3);
        assert_int_equal(st.timeouts, 0);
        dm_resolver_free(r);
}

static void test_tcp_fallback(void **state)
{
        struct dm_resolver *r = new_resolver(3000, 2, 100);
        unsigned long tcp_before = atomic_load(&g_resp.tcp_queries);
        struct result *res = resolve(r, "big.test", DM_RR_TXT);
        assert_int_equal(res->status, DM_RRS_OK);
        assert_int_equal(res->n, BIG_STRINGS);
        /* Every string whole: 20 x (200 + 2 quotes) + 19 separators. */
        assert_int_equal(strlen(res->joined), BIG_STRINGS * (BIG_LEN + 2) + BIG_STRINGS - 1);
        assert_memory_equal(res->joined, "\"00aaaa", 7);
        assert_non_null(strstr(res->joined, "|\"19ttt"));
        struct dm_resolver_stats st;
        dm_resolver_get_stats(r, &st);
        assert_int_equal(st.tcp_fallbacks, 1);
        assert_int_equal(atomic_load(&g_resp.tcp_queries), tcp_before + 1);
        dm_resolver_free(r);
}

static void test_retry_after_drop(void **state)
{
        struct dm_resolver *r = new_resolver(3000, 3, 100);
        int64_t t0 = now_ms();
        struct result *res = resolve(r, "drop.test", DM_RR_A);
        int64_t took = now_ms() - t0;
        assert_int_equal(res->status, DM_RRS_OK);
        assert_string_equal(res->joined, "192.0.2.50");
        struct dm_resolver_stats st;
        dm_resolver_get_stats(r, &st);
        assert_int_equal(st.retransmits, 1);
        /* The first retry is short: well under a second. */
        assert_true(took < 1000);
        dm_resolver_free(r);
}

static void test_cname(void **state)
{
        struct dm_resolver *r = new_resolver(3000, 2, 100);
        struct result *res = resolve(r, "cname.test", DM_RR_A);
        assert_int_equal(res->status, DM_RRS_OK);
        assert_string_equal(res->joined, "192.0.2.9");
        assert_int_equal(res->ttl, 30);
        res = resolve(r, "cname.test", DM_RR_AAAA);
        assert_int_equal(res->status, DM_RRS_NODATA); /* the chain ends without AAAA */
        dm_resolver_free(r);
}

static void test_junk_first(void **state)
{
        struct dm_resolver *r = new_resolver(3000, 2, 100);
        struct result *res = resolve(r, "junk.test", DM_RR_A);
        assert_int_equal(res->status, DM_RRS_OK);
        assert_string_equal(res->joined, "192.0.2.7");
        res = resolve(r, "wrongq.test", DM_RR_A);
        assert_int_equal(res->status, DM_RRS_OK);
        assert_string_equal(res->joined, "192.0.2.8");
        dm_resolver_free(r);
}

static void test_garbage_and_silence(void **state)
{
        struct dm_resolver *r = new_resolver(600, 2, 100);
        int64_t t0 = now_ms();
        struct result *res = resolve(r, "garbage.test", DM_RR_A);
        assert_int_equal(res->status, DM_RRS_ERROR);
        assert_int_equal(res->err, DM_EFORMERR);
        dm_resolver_free(r);
        /* A fresh resolver: to this one the server has been silent too long already (it
         * sent nothing that parses), and the next lookup would fail as every server down. */
        r = new_resolver(600, 2, 100);
        unsigned long before = atomic_load(&g_resp.udp_queries);
        t0 = now_ms();
        res = resolve(r, "silent.test", DM_RR_A);
        int64_t took = now_ms() - t0;
        assert_int_equal(res->status, DM_RRS_ERROR);
        assert_int_equal(res->err, DM_ETIMEDOUT);
        assert_int_equal(res->server_plus1, 1);
        assert_true(took >= 550 && took < 1500);
        /* One send and two retransmissions. */
        assert_int_equal(atomic_load(&g_resp.udp_queries) - before, 3);
        struct dm_resolver_stats st;
        dm_resolver_get_stats(r, &st);
        assert_int_equal(st.timeouts, 1);
        assert_int_equal(st.errors, 1);
        assert_int_equal(st.retransmits, 2);
        assert_int_equal(st.servers_down, 0);
        dm_resolver_free(r);
}

static void test_fd_and_free_pending(void **state)
{
        struct dm_resolver *r = new_resolver(3000, 2, 100);
        struct result res;
        memset(&res, 0, sizeof(res));
        int fd = dm_resolver_fd(r);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&pfd, 1, 0), 0);
        assert_int_equal(dm_resolver_query(r, "a.test", DM_RR_A, collect, &res), 0);
        /* Work to do: the fd says so without waiting. */
        assert_int_equal(poll(&pfd, 1, 1000), 1);
        while (res.calls == 0) {
                assert_int_equal(poll(&pfd, 1, 2000), 1);
                assert_true(dm_resolver_run(r, 0) >= 0);
        }
        assert_int_equal(res.status, DM_RRS_OK);

        /* Queued and in-flight queries are dropped without callbacks. */
        memset(&res, 0, sizeof(res));
        for (int i = 0; i < 500; i++)
                assert_int_equal(dm_resolver_query(r, "silent.test", DM_RR_A, collect, &res), 0);
        dm_resolver_run(r, 0);
        assert_int_equal(dm_resolver_pending(r), 500);
        dm_resolver_free(r);
        assert_int_equal(res.calls, 0);
}

static void test_qps_cap(void **state)
{
        struct dm_resolver_opts o;
        struct dm_resolver *r = NULL;
        opts_for(&o, 3000, 2, 100);
        o.qps = 200;
        assert_int_equal(dm_resolver_new(&o, &r), 0);
        static struct result res[60];
        memset(res, 0, sizeof(res));
        int64_t t0 = now_ms();
        for (int i = 0; i < 60; i++)
                assert_int_equal(dm_resolver_query(r, "a.test", DM_RR_A, collect, &res[i]), 0);
        drain(r, 10000);
        int64_t took = now_ms() - t0;
        /* A burst of 10, then 50 at 200/s: at least 250 ms. */
        assert_true(took >= 230);
        assert_true(took < 2000);
        for (int i = 0; i < 60; i++)
                assert_int_equal(res[i].status, DM_RRS_OK);
        dm_resolver_free(r);
}

/* A callback that queues the next lookup from inside dm_resolver_run. */
struct chain {
        struct dm_resolver *r;
        int left;
        int ok;
};

static void chain_cb(void *arg, const struct dm_dns_answer *a)
{
        struct chain *c = arg;
        if (a->status == DM_RRS_OK)
                c->ok++;
        if (--c->left > 0)
                assert_int_equal(dm_resolver_query(c->r, "mx.test", DM_RR_MX, chain_cb, c), 0);
}

static void test_query_from_callback(void **state)
{
        struct chain c = {.r = new_resolver(3000, 2, 100), .left = 25};
        assert_int_equal(dm_resolver_query(c.r, "mx.test", DM_RR_MX, chain_cb, &c), 0);
        drain(c.r, 10000);
        assert_int_equal(c.ok, 25);
        dm_resolver_free(c.r);
}

/* Two servers of different families: a black hole on ::1 first, the responder second. The
 * retransmission rotates to the responder, on a socket of the other family. */
static void test_rotation(void **state)
{
        int hole = socket(AF_INET6, SOCK_DGRAM, 0);
        struct sockaddr_in6 h = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        socklen_t hlen = sizeof(h);
        if (hole < 0 || bind(hole, (struct sockaddr *)&h, sizeof(h)) < 0 ||
            getsockname(hole, (struct sockaddr *)&h, &hlen) < 0) {
                if (hole >= 0)
                        close(hole);
                skip(); /* no IPv6 loopback here */
        }
        struct dm_resolver_opts o;
        opts_for(&o, 3000, 2, 100);
        o.servers[1] = o.servers[0];
        o.server_lens[1] = o.server_lens[0];
        memcpy(&o.servers[0], &h, sizeof(h));
        o.server_lens[0] = sizeof(h);
        o.nservers = 2;
        struct dm_resolver *r = NULL;
        assert_int_equal(dm_resolver_new(&o, &r), 0);
        struct result *res = resolve(r, "a.test", DM_RR_A);
        assert_int_equal(res->status, DM_RRS_OK);
        assert_string_equal(res->joined, "192.0.2.1|192.0.2.2|192.0.2.3");
        struct dm_resolver_stats st;
        dm_resolver_get_stats(r, &st);
        assert_int_equal(st.retransmits, 1);
        dm_resolver_free(r);
        close(hole);
}

/* ---- servers that fail, refuse, mislead ---- */

static void opts_add(struct dm_resolver_opts *o, uint16_t port)
{
        struct sockaddr_in *a = (struct sockaddr_in *)&o->servers[o->nservers];
        memset(a, 0, sizeof(*a));
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        o->server_lens[o->nservers++] = sizeof(*a);
}

/* Servers by port, in order; the options otherwise as opts_for. */
static struct dm_resolver *new_resolver_at(const uint16_t *ports, size_t n, int timeout_ms,
                                           int retries)
{
        struct dm_resolver_opts o;
        struct dm_resolver *r = NULL;
        opts_for(&o, timeout_ms, retries, 100);
        o.nservers = 0;
        for (size_t i = 0; i < n; i++)
                opts_add(&o, ports[i]);
        assert_int_equal(dm_resolver_new(&o, &r), 0);
        return r;
}

/* A UDP socket on 127.0.0.1 that nobody reads: a dead server. */
static int hole_open(uint16_t *ret_port)
{
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t alen = sizeof(a);
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
        *ret_port = ntohs(a.sin_port);
        return fd;
}

static struct dm_resolver_stats stats_of(const struct dm_resolver *r)
{
        struct dm_resolver_stats st;
        dm_resolver_get_stats(r, &st);
        return st;
}

/* Referrals and lame replies are errors, asked of no one else when there is one server;
 * empty replies with proof are NODATA; the option for a zone's own servers. */
static void test_empty_replies(void **state)
{
        static const struct {
                const char *name;
                bool auth_only;
                enum dm_rr_status status;
                int err;
                bool aa;
        } cases[] = {
            {"referral.test", false, DM_RRS_ERROR, DM_EREFERRAL, false},
            {"lame.test", false, DM_RRS_ERROR, DM_ELAME, false},
            {"aanodata.test", false, DM_RRS_NODATA, 0, true},
            {"aanosoa.test", false, DM_RRS_ERROR, DM_ELAME, true},
            {"nodata.test", false, DM_RRS_NODATA, 0, false},
            {"aanosoa.test", true, DM_RRS_NODATA, 0, true},
            {"aanodata.test", true, DM_RRS_NODATA, 0, true},
            {"lame.test", true, DM_RRS_ERROR, DM_ELAME, false},
            {"referral.test", true, DM_RRS_ERROR, DM_EREFERRAL, false},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct dm_resolver_opts o;
                struct dm_resolver *r = NULL;
                opts_for(&o, 3000, 2, 100);
                o.authoritative_only = cases[i].auth_only;
                assert_int_equal(dm_resolver_new(&o, &r), 0);
                unsigned long before = atomic_load(&g_resp.udp_queries);
                struct result *res = resolve(r, cases[i].name, DM_RR_A);
                if (res->status != cases[i].status || res->err != cases[i].err)
                        print_error("%s (authoritative only: %d): status %d err %d\n",
                                    cases[i].name, cases[i].auth_only, res->status, res->err);
                assert_int_equal(res->status, cases[i].status);
                assert_int_equal(res->err, cases[i].err);
                assert_int_equal(res->n, 0);
                assert_int_equal(res->authoritative, cases[i].aa);
                /* One server: asked once, the reply counts at once. */
                assert_int_equal(atomic_load(&g_resp.udp_queries) - before, 1);
                assert_int_equal(stats_of(r).next_server, 0);
                dm_resolver_free(r);
        }
}

static void test_refused_one_server(void **state)
{
        struct dm_resolver *r = new_resolver(3000, 2, 100);
        unsigned long before = atomic_load(&g_resp.udp_queries);
        struct result *res = resolve(r, "refused.test", DM_RR_A);
        assert_int_equal(res->status, DM_RRS_ERROR);
        assert_int_equal(res->err, DM_EREFUSED);
        res = resolve(r, "servfail.test", DM_RR_A);
        assert_int_equal(res->err, DM_ESERVFAIL);
        assert_int_equal(atomic_load(&g_resp.udp_queries) - before, 2);
        struct dm_resolver_stats st = stats_of(r);
        assert_int_equal(st.next_server, 0);
        assert_int_equal(st.retransmits, 0);
        assert_int_equal(st.servers_down, 0);
        dm_resolver_free(r);
}

/* SERVFAIL, a referral or a lame reply from one server: the next server, not asked yet,
 * gets the query at once. When every server fails, the failure is the answer. */
static void test_next_server(void **state)
{
        struct responder alt;
        assert_int_equal(responder_start(&alt, ROLE_ALT, false), 0);
        const uint16_t ports[] = {g_resp.port, alt.port};
        static const char *const names[] = {"sf2.test", "ref2.test", "lame2.test"};

        for (size_t i = 0; i < 3; i++) {
                struct dm_resolver *r = new_resolver_at(ports, 2, 3000, 2);
                unsigned long main_before = atomic_load(&g_resp.udp_queries);
                unsigned long alt_before = atomic_load(&alt.udp_queries);
                struct result *res = resolve(r, names[i], DM_RR_A);
                assert_int_equal(res->status, DM_RRS_OK);
                assert_string_equal(res->joined, "192.0.2.77");
                assert_int_equal(atomic_load(&g_resp.udp_queries) - main_before, 1);
                assert_int_equal(atomic_load(&alt.udp_queries) - alt_before, 1);
                struct dm_resolver_stats st = stats_of(r);
                assert_int_equal(st.next_server, 1);
                assert_int_equal(st.retransmits, 0);
                assert_int_equal(st.errors, 0);
                dm_resolver_free(r);
        }

        struct dm_resolver *r = new_resolver_at(ports, 2, 3000, 2);
        struct result *res = resolve(r, "sfall.test", DM_RR_A);
        assert_int_equal(res->status, DM_RRS_ERROR);
        assert_int_equal(res->err, DM_ESERVFAIL);
        assert_int_equal(stats_of(r).next_server, 1);
        dm_resolver_free(r);
        responder_stop(&alt);
}

/* FORMERR, NOTIMP or BADVERS to a query with EDNS: asked again at once without, and the
 * server remembered as one without EDNS. */
static void test_edns_refused(void **state)
{
        static const char *const names[] = {"formerr.test", "notimp.test", "badvers.test"};

        for (size_t i = 0; i < 3; i++) {
                struct dm_resolver *r = new_resolver(3000, 2, 100);
                unsigned long edns_before = atomic_load(&g_resp.edns_queries);
                unsigned long before = atomic_load(&g_resp.udp_queries);
                struct result *res = resolve(r, names[i], DM_RR_A);
                assert_int_equal(res->status, DM_RRS_OK);
                assert_string_equal(res->joined, "192.0.2.60");
                assert_int_equal(atomic_load(&g_resp.udp_queries) - before, 2);
                struct dm_resolver_stats st = stats_of(r);
                assert_int_equal(st.edns_retries, 1);
                assert_int_equal(st.edns_fallbacks, 1);
                assert_int_equal(st.no_edns_mask, 1);
                assert_int_equal(st.retransmits, 0);
                /* Remembered: later queries go without EDNS, and are answered at once. */
                res = resolve(r, names[i], DM_RR_A);
                assert_string_equal(res->joined, "192.0.2.60");
                res = resolve(r, "a.test", DM_RR_A);
                assert_int_equal(res->status, DM_RRS_OK);
                assert_int_equal(atomic_load(&g_resp.udp_queries) - before, 4);
                assert_int_equal(atomic_load(&g_resp.edns_queries) - edns_before, 1);
                assert_int_equal(stats_of(r).edns_retries, 1);
                dm_resolver_free(r);
        }
}

/* A server that drops every query with EDNS: queries go on without EDNS once its tries go
 * unanswered, every lookup succeeds, and after a few such rounds the server is asked
 * without EDNS from the start. */
static void test_edns_dropped(void **state)
{
        struct dm_resolver *r = new_resolver(2000, 3, 100);
        static struct result res[8];
        char name[32];
        int rounds = 0;

        while (stats_of(r).no_edns_mask == 0) {
                assert_true(++rounds <= 10);
                memset(res, 0, sizeof(res));
                for (int i = 0; i < 8; i++) {
                        snprintf(name, sizeof(name), "noedns%d.test", rounds * 8 + i);
                        assert_int_equal(dm_resolver_query(r, name, DM_RR_A, collect, &res[i]), 0);
                }
                drain(r, 10000);
                for (int i = 0; i < 8; i++) {
                        assert_int_equal(res[i].status, DM_RRS_OK);
                        assert_string_equal(res[i].joined, "192.0.2.63");
                }
        }
        struct dm_resolver_stats st = stats_of(r);
        assert_int_equal(st.edns_fallbacks, 1);
        assert_int_equal(st.servers_down, 0);
        assert_int_equal(st.errors, 0);
        /* From now on without EDNS: no retransmission, no query with EDNS. */
        unsigned long edns_before = atomic_load(&g_resp.edns_queries);
        memset(res, 0, sizeof(res));
        for (int i = 0; i < 8; i++) {
                snprintf(name, sizeof(name), "noedns-after%d.test", i);
                assert_int_equal(dm_resolver_query(r, name, DM_RR_A, collect, &res[i]), 0);
        }
        drain(r, 10000);
        for (int i = 0; i < 8; i++)
                assert_int_equal(res[i].status, DM_RRS_OK);
        assert_int_equal(atomic_load(&g_resp.edns_queries), edns_before);
        assert_int_equal(stats_of(r).retransmits, st.retransmits);
        dm_resolver_free(r);
}

static int lossy_ok;

static void lossy_cb(void *arg, const struct dm_dns_answer *a)
{
        if (a->status == DM_RRS_OK && a->nvalues == 1 && strcmp(a->values[0], "192.0.2.64") == 0)
                lossy_ok++;
}

/* Random loss (30 % of the datagrams) neither takes EDNS away nor marks the server down. */
static void test_random_loss_keeps_edns(void **state)
{
        struct dm_resolver_opts o;
        struct dm_resolver *r = NULL;
        char name[32];
        opts_for(&o, 5000, 10, 20);
        assert_int_equal(dm_resolver_new(&o, &r), 0);
        lossy_ok = 0;
        for (int i = 0; i < 300; i++) {
                snprintf(name, sizeof(name), "lossy%d.test", i);
                assert_int_equal(dm_resolver_query(r, name, DM_RR_A, lossy_cb, NULL), 0);
        }
        drain(r, 60000);
        struct dm_resolver_stats st = stats_of(r);
        print_message("lossy: %llu sent, %llu retransmitted\n", (unsigned long long)st.sent,
                      (unsigned long long)st.retransmits);
        assert_int_equal(lossy_ok, 300);
        assert_true(st.retransmits > 0);
        assert_int_equal(st.edns_fallbacks, 0);
        assert_int_equal(st.no_edns_mask, 0);
        assert_int_equal(st.server_downs, 0);
        dm_resolver_free(r);
}

/* A UDP reply larger than the receive buffer arrives cut (MSG_TRUNC): the query is asked
 * again over TCP, not dropped. */
static void test_oversize_udp_to_tcp(void **state)
{
        struct dm_resolver *r = new_resolver(3000, 2, 100);
        unsigned long tcp_before = atomic_load(&g_resp.tcp_queries);
        struct result *res = resolve(r, "huge.test", DM_RR_TXT);
        assert_int_equal(res->status, DM_RRS_OK);
        assert_int_equal(res->n, HUGE_STRINGS);
        assert_true(res->authoritative);
        assert_memory_equal(res->joined, "\"00aaaa", 7);
        assert_int_equal(atomic_load(&g_resp.tcp_queries), tcp_before + 1);
        struct dm_resolver_stats st = stats_of(r);
        assert_int_equal(st.tcp_fallbacks, 1);
        assert_int_equal(st.retransmits, 0);
        dm_resolver_free(r);
}

/* Runs batches of lookups of load names until `done` holds (at most `limit_ms`); every
 * lookup must succeed. */
static void batches_until(struct dm_resolver *r, bool (*done)(const struct dm_resolver *),
                          int limit_ms)
{
        static struct result res[10];
        char name[32];
        int64_t end = now_ms() + limit_ms;
        int n = 0;

        while (!done(r)) {
                assert_true(now_ms() < end);
                memset(res, 0, sizeof(res));
                for (int i = 0; i < 10; i++) {
                        snprintf(name, sizeof(name), "load%d.test", n++);
                        assert_int_equal(dm_resolver_query(r, name, DM_RR_A, collect, &res[i]), 0);
                }
                drain(r, 10000);
                for (int i = 0; i < 10; i++)
                        assert_int_equal(res[i].status, DM_RRS_OK);
        }
}

static bool first_down(const struct dm_resolver *r)
{
        return stats_of(r).down_mask == 1;
}

/* One of two servers is dead: lookups succeed on the other, the dead one is marked down and
 * then gets nothing but probes. */
static void test_one_server_dead(void **state)
{
        uint16_t hole_port;
        int hole = hole_open(&hole_port);
        const uint16_t ports[] = {hole_port, g_resp.port};
        struct dm_resolver *r = new_resolver_at(ports, 2, 1000, 3);

        batches_until(r, first_down, 20000);
        struct dm_resolver_stats st = stats_of(r);
        assert_int_equal(st.server_downs, 1);
        assert_int_equal(st.servers_down, 1);
        assert_int_equal(st.errors, 0);

        uint8_t buf[512];
        while (recv(hole, buf, sizeof(buf), 0) > 0)
                ;
        static struct result res[50];
        char name[32];
        memset(res, 0, sizeof(res));
        for (int i = 0; i < 50; i++) {
                snprintf(name, sizeof(name), "load%d.test", 100000 + i);
                assert_int_equal(dm_resolver_query(r, name, DM_RR_A, collect, &res[i]), 0);
        }
        drain(r, 10000);
        for (int i = 0; i < 50; i++)
                assert_int_equal(res[i].status, DM_RRS_OK);
        /* Straight to the live server: no try was lost. */
        assert_int_equal(stats_of(r).retransmits, st.retransmits);
        /* The dead one saw probes (". SOA") only. */
        ssize_t n;
        while ((n = recv(hole, buf, sizeof(buf), 0)) > 0) {
                assert_true(n >= 17);
                assert_int_equal(buf[12], 0);
                assert_int_equal(buf[13] << 8 | buf[14], DM_RR_SOA);
        }
        dm_resolver_free(r);
        close(hole);
}

static bool all_down(const struct dm_resolver *r)
{
        return stats_of(r).servers_down == 2;
}

static int down_ok, down_err, down_other;

static void down_cb(void *arg, const struct dm_dns_answer *a)
{
        if (a->status == DM_RRS_OK)
                down_ok++;
        else if (a->err == DM_ESERVERSDOWN)
                down_err++;
        else
                down_other++;
}

/* Every server dead: once both are marked down, lookups fail at once with DM_ESERVERSDOWN
 * instead of waiting out their budget; a probe sees a server come back. */
static void test_all_servers_dead(void **state)
{
        struct responder a, b;
        assert_int_equal(responder_start(&a, ROLE_ALT, true), 0);
        assert_int_equal(responder_start(&b, ROLE_ALT, true), 0);
        const uint16_t ports[] = {a.port, b.port};
        struct dm_resolver *r = new_resolver_at(ports, 2, 1000, 2);
        char name[32];

        int64_t end = now_ms() + 20000;
        for (int n = 0; !all_down(r); n++) {
                assert_true(now_ms() < end);
                down_ok = down_err = down_other = 0;
                for (int i = 0; i < 10; i++) {
                        snprintf(name, sizeof(name), "load%d.test", n * 10 + i);
                        assert_int_equal(dm_resolver_query(r, name, DM_RR_A, down_cb, NULL), 0);
                }
                drain(r, 10000);
                assert_int_equal(down_ok, 0);
        }
        struct dm_resolver_stats st = stats_of(r);
        assert_int_equal(st.server_downs, 2);
        assert_int_equal(st.down_mask, 3);

        /* Queued lookups fail in the next pass of the loop, none is sent. */
        down_ok = down_err = down_other = 0;
        for (int i = 0; i < 200; i++) {
                snprintf(name, sizeof(name), "load%d.test", 500000 + i);
                assert_int_equal(dm_resolver_query(r, name, DM_RR_A, down_cb, NULL), 0);
        }
        assert_int_equal(dm_resolver_run(r, 0), 200);
        assert_int_equal(dm_resolver_pending(r), 0);
        assert_int_equal(down_err, 200);
        assert_int_equal(stats_of(r).sent, st.sent);
        assert_true(stats_of(r).down_fails >= 200);

        /* One comes back: a probe finds it, and lookups go to it. */
        atomic_store(&b.silent, 0);
        end = now_ms() + 10000;
        while (stats_of(r).server_ups == 0) {
                assert_true(now_ms() < end);
                assert_true(dm_resolver_run(r, 50) >= 0);
        }
        st = stats_of(r);
        assert_int_equal(st.down_mask, 1);
        assert_true(st.probes >= 2);
        struct result *res = resolve(r, "a.test", DM_RR_A);
        assert_int_equal(res->status, DM_RRS_OK);
        assert_string_equal(res->joined, "192.0.2.1|192.0.2.2|192.0.2.3");
        dm_resolver_free(r);
        responder_stop(&a);
        responder_stop(&b);
}

static int ports_ok;

static void ports_cb(void *arg, const struct dm_dns_answer *a)
{
        if (a->status == DM_RRS_OK)
                ports_ok++;
}

/* Source ports are renewed: with two sockets, the ports a server sees keep growing. */
static void test_port_renewal(void **state)
{
        struct responder alt;
        assert_int_equal(responder_start(&alt, ROLE_ALT, false), 0);
        struct dm_resolver_opts o;
        struct dm_resolver *r = NULL;
        char name[32];
        opts_for(&o, 3000, 3, 200);
        o.nservers = 0;
        opts_add(&o, alt.port);
        o.nsockets = 2;
        assert_int_equal(dm_resolver_new(&o, &r), 0);
        ports_ok = 0;
        unsigned seen[3];
        for (int round = 0; round < 3; round++) {
                for (int i = 0; i < 5000; i++) {
                        snprintf(name, sizeof(name), "load%d.test", round * 5000 + i);
                        assert_int_equal(dm_resolver_query(r, name, DM_RR_A, ports_cb, NULL), 0);
                }
                drain(r, 30000);
                seen[round] = atomic_load(&alt.nports);
        }
        struct dm_resolver_stats st = stats_of(r);
        print_message("ports: %u, %u, %u; sockets renewed %llu\n", seen[0], seen[1], seen[2],
                      (unsigned long long)st.sockets_renewed);
        assert_int_equal(ports_ok, 15000);
        /* Each socket takes at most 2,048 queries. */
        assert_true(seen[0] >= 3);
        assert_true(seen[1] > seen[0]);
        assert_true(seen[2] > seen[1]);
        assert_true(st.sockets_renewed >= 6);
        dm_resolver_free(r);
        responder_stop(&alt);
}

/* 0x20: the names go out in random case, and what comes back in the same case is taken. */
static void test_case_randomized(void **state)
{
        struct dm_resolver *r = new_resolver(3000, 2, 100);
        unsigned long before = atomic_load(&g_resp.mixed_queries);
        for (int i = 0; i < 20; i++) {
                struct result *res = resolve(r, "mixedcaseabcdefghijklmnop.test", DM_RR_A);
                assert_int_equal(res->status, DM_RRS_OK);
                assert_string_equal(res->joined, "192.0.2.73");
        }
        /* 28 letters: all in one case by chance once in 2^27. */
        assert_int_equal(atomic_load(&g_resp.mixed_queries) - before, 20);
        struct dm_resolver_stats st = stats_of(r);
        assert_int_equal(st.case_mismatches, 0);
        assert_int_equal(st.no_case_mask, 0);
        dm_resolver_free(r);
}

/* A server that echoes the name in lower case: its first replies are dropped, then it
 * falls back (no 0x20 for it) and every lookup succeeds. */
static void test_case_not_echoed(void **state)
{
        /* One lookup: its try answered only in the wrong case, the retry taken. */
        struct dm_resolver *r = new_resolver(3000, 2, 100);
        struct result *res = resolve(r, "lowercaseabcdefghijklmnop.test", DM_RR_A);
        assert_int_equal(res->status, DM_RRS_OK);
        assert_string_equal(res->joined, "192.0.2.70");
        struct dm_resolver_stats st = stats_of(r);
        assert_int_equal(st.case_fallbacks, 1);
        assert_int_equal(st.no_case_mask, 1);
        assert_true(st.case_mismatches >= 1);
        assert_int_equal(st.errors, 0);
        /* Later lookups are taken at once. */
        res = resolve(r, "lowercase-again-abcdefghijklm.test", DM_RR_A);
        assert_string_equal(res->joined, "192.0.2.70");
        assert_int_equal(stats_of(r).case_mismatches, st.case_mismatches);
        dm_resolver_free(r);

        /* Several at once: the third reply in the wrong case turns 0x20 off. */
        r = new_resolver(3000, 2, 100);
        static struct result many[8];
        char name[64];
        memset(many, 0, sizeof(many));
        for (int i = 0; i < 8; i++) {
                snprintf(name, sizeof(name), "lowercase-abcdefghijklmnop%d.test", i);
                assert_int_equal(dm_resolver_query(r, name, DM_RR_A, collect, &many[i]), 0);
        }
        drain(r, 10000);
        for (int i = 0; i < 8; i++)
                assert_string_equal(many[i].joined, "192.0.2.70");
        st = stats_of(r);
        assert_int_equal(st.case_fallbacks, 1);
        assert_true(st.case_mismatches >= 2);
        dm_resolver_free(r);
}

/* A forged reply (right port, id and question, wrong case) before the real one: dropped,
 * and the server stays on 0x20. */
static void test_case_forgery_dropped(void **state)
{
        struct dm_resolver *r = new_resolver(3000, 2, 100);
        for (int i = 0; i < 5; i++) {
                struct result *res = resolve(r, "forgedabcdefghijklmnop.test", DM_RR_A);
                assert_int_equal(res->status, DM_RRS_OK);
                assert_string_equal(res->joined, "192.0.2.71");
        }
        struct dm_resolver_stats st = stats_of(r);
        assert_int_equal(st.case_mismatches, 5);
        assert_int_equal(st.case_fallbacks, 0);
        assert_int_equal(st.no_case_mask, 0);
        assert_int_equal(st.retransmits, 0);
        dm_resolver_free(r);
}

/* A server that looks names up with their case says NXDOMAIN to the mixed-case name: the
 * lookup asks again in lower case before it believes it. */
static void test_nxdomain_rechecked_in_lower_case(void **state)
{
        struct dm_resolver *r = new_resolver(3000, 2, 100);
        struct result *res = resolve(r, "nxcaseabcdefghijklmnopqrstu.test", DM_RR_A);
        assert_int_equal(res->status, DM_RRS_OK);
        assert_string_equal(res->joined, "192.0.2.72");
        assert_int_equal(stats_of(r).nxdomain_rechecks, 1);
        /* A real NXDOMAIN is asked twice and stays NXDOMAIN. The name is long so that its
         * random case is mixed (all lower once in 2^29, and then there is nothing to ask
         * again): "nx.test" went out all lower once in 64 runs. */
        res = resolve(r, "nxabcdefghijklmnopqrstuvwxy.test", DM_RR_A);
        assert_int_equal(res->status, DM_RRS_NXDOMAIN);
        assert_int_equal(stats_of(r).nxdomain_rechecks, 2);
        dm_resolver_free(r);
}

/* Out of file descriptors while the pool opens: a smaller pool, not a failure. */
static void test_few_file_descriptors(void **state)
{
        struct rlimit old, low;
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
        int probe = open("/dev/null", O_RDONLY | O_CLOEXEC); /* the lowest free fd */
        assert_true(probe >= 0);
        close(probe);
        /* Room for the epoll fd, the timerfd and a dozen sockets. */
        low = old;
        low.rlim_cur = (rlim_t)probe + 14;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
        struct dm_resolver *r = new_resolver(3000, 2, 100);
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
        struct dm_resolver_stats st = stats_of(r);
        assert_true(st.sockets >= 1 && st.sockets < 64);
        struct result *res = resolve(r, "a.test", DM_RR_A);
        assert_int_equal(res->status, DM_RRS_OK);
        dm_resolver_free(r);
        r = new_resolver(3000, 2, 100);
        assert_int_equal(stats_of(r).sockets, 64);
        dm_resolver_free(r);
}

static int load_ok, load_bad;

static void load_cb(void *arg, const struct dm_dns_answer *a)
{
        unsigned long i = (unsigned long)(uintptr_t)arg;
        char want[32];
        snprintf(want, sizeof(want), "10.%lu.%lu.%lu", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        if (a->status == DM_RRS_OK && a->nvalues == 1 && strcmp(a->values[0], want) == 0)
                load_ok++;
        else
                load_bad++;
}

static void test_load(void **state)
{
        struct dm_resolver_opts o;
        struct dm_resolver *r = NULL;
        opts_for(&o, 5000, 5, LOAD_CONCURRENCY);
        assert_int_equal(dm_resolver_new(&o, &r), 0);
        load_ok = load_bad = 0;
        char name[32];
        for (unsigned long i = 0; i < LOAD_N; i++) {
                snprintf(name, sizeof(name), "load%lu.test", i);
                assert_int_equal(dm_resolver_query(r, name, DM_RR_A, load_cb, (void *)(uintptr_t)i),
                                 0);
        }
        int64_t t0 = now_ms();
        drain(r, 60000);
        int64_t took = now_ms() - t0;
        struct dm_resolver_stats st;
        dm_resolver_get_stats(r, &st);
        print_message("load: %d queries in %lld ms, sent %llu, retransmits %llu, window %d\n",
                      LOAD_N, (long long)took, (unsigned long long)st.sent,
                      (unsigned long long)st.retransmits, st.window);
        assert_int_equal(load_ok, LOAD_N);
        assert_int_equal(load_bad, 0);
        assert_int_equal(st.errors, 0);
        dm_resolver_free(r);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse_servers),
            cmocka_unit_test(test_resolv_conf),
            cmocka_unit_test(test_new_invalid),
            cmocka_unit_test(test_types),
            cmocka_unit_test(test_rcodes),
            cmocka_unit_test(test_tcp_fallback),
            cmocka_unit_test(test_retry_after_drop),
            cmocka_unit_test(test_cname),
            cmocka_unit_test(test_junk_first),
            cmocka_unit_test(test_garbage_and_silence),
            cmocka_unit_test(test_fd_and_free_pending),
            cmocka_unit_test(test_qps_cap),
            cmocka_unit_test(test_query_from_callback),
            cmocka_unit_test(test_rotation),
            cmocka_unit_test(test_empty_replies),
            cmocka_unit_test(test_refused_one_server),
            cmocka_unit_test(test_next_server),
            cmocka_unit_test(test_edns_refused),
            cmocka_unit_test(test_edns_dropped),
            cmocka_unit_test(test_random_loss_keeps_edns),
            cmocka_unit_test(test_oversize_udp_to_tcp),
            cmocka_unit_test(test_one_server_dead),
            cmocka_unit_test(test_all_servers_dead),
            cmocka_unit_test(test_port_renewal),
            cmocka_unit_test(test_case_randomized),
            cmocka_unit_test(test_case_not_echoed),
            cmocka_unit_test(test_case_forgery_dropped),
            cmocka_unit_test(test_nxdomain_rechecked_in_lower_case),
            cmocka_unit_test(test_few_file_descriptors),
            cmocka_unit_test(test_load),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
