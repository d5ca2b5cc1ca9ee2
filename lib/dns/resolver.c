/* Event-driven stub resolver. One epoll set holds a pool of non-blocking UDP sockets
 * (renewed on new ports as they age), the TCP connections of truncated answers, the probes
 * of servers marked down and a timerfd; queries wait in a FIFO until the in-flight window
 * of a server has room. See docs/internals/dns-resolver.md for why the window adapts, why
 * the first retry is short, and for the rules on dead servers, EDNS, 0x20 and replies that
 * are not answers. */
#include "dm/resolver.h"

#include "dm/dnswindow.h"
#include "dm/dnswire.h"
#include "dm/error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define RES_DEFAULT_SOCKETS 64
#define RES_MAX_SOCKETS 256             /* per address family */
#define RES_SLOTS (2 * RES_MAX_SOCKETS) /* per family: the active sockets and those draining */
#define RES_SOCK_QUERIES 2048           /* a socket takes half to all of this many queries */
#define RES_SOCK_LIFE_US 60000000       /* and lives half to all of this long */
#define RES_SOCK_RETRY_US 1000000       /* no slot or socket for a successor: try again then */
#define RES_IDS_PER_SOCKET 16384        /* in flight per socket, a quarter of the id space */
#define RES_MAX_RETRIES 20
#define RES_TCP_MAX 64                /* TCP connections open at once */
#define RES_TCP_MIN_BUDGET_US 1000000 /* a TCP re-ask gets at least this much time */
#define RES_BATCH 64                  /* datagrams per sendmmsg/recvmmsg */
#define RES_SOCK_BURST 64             /* sends on one socket before moving to the next */
#define RES_RECV_SIZE 4096            /* above what we advertise; larger is cut and re-asked */
#define RES_RCVBUF (4 << 20)
#define RES_EVENTS 64
#define RES_RAND_POOL 256
#define RES_DOWN_TIMEOUTS 5          /* retry timers expired with no answer in between, */
#define RES_DOWN_SPAN_MIN_US 1000000 /* over the lookup budget and at least this: down */
#define RES_PROBE_FIRST_US 500000    /* a down server is probed at once, then after this, */
#define RES_PROBE_MAX_US 4000000     /* doubling up to this */
#define RES_EDNS_SILENT_TRIES 2      /* tries unanswered in a row: the next goes plain */
#define RES_EDNS_PLAIN_ANSWERS 3     /* answered only without EDNS this often: no EDNS */
#define RES_CASE_MISMATCHES 3        /* replies in the wrong case in a row: no 0x20 */
#define RES_RECHECK_US 600000000     /* a server off EDNS or 0x20 gets a trial this often */

/* epoll data: the low two bits say what the rest indexes. */
#define RES_TAG_PROBE 0u /* a server */
#define RES_TAG_UDP 1u
#define RES_TAG_TIMER 2u
#define RES_TAG_TCP 3u

enum res_family { RES_V4 = 0, RES_V6 = 1, RES_NFAMILIES = 2 };

/* QUEUED: in the FIFO. UDP: sent, occupies a window slot. LOST: its retry timer fired; out
 * of the window, waiting for a slot to be retransmitted (still matched by id: a late answer
 * counts). TCP_WAIT, TCP: re-asked over TCP, occupying a window slot. */
enum rq_state { RQ_QUEUED, RQ_UDP, RQ_LOST, RQ_TCP_WAIT, RQ_TCP };

/* What a lookup reports when no answer ends it: a reply that was not one beats silence. */
enum rq_fail {
        RQ_FAIL_NONE,     /* DM_ETIMEDOUT */
        RQ_FAIL_JUNK,     /* an unparseable reply with the right id and address: DM_EFORMERR */
        RQ_FAIL_SERVFAIL, /* replies asked again of another server */
        RQ_FAIL_REFUSED,
        RQ_FAIL_REFERRAL,
        RQ_FAIL_LAME,
};

/* struct rq flags */
#define RQ_F_MIXED 0x01        /* the name has letters upper-cased by 0x20 */
#define RQ_F_CASE_TRY 0x02     /* the last UDP try carried the name in that case */
#define RQ_F_EDNS_TRY 0x04     /* the last UDP try carried EDNS */
#define RQ_F_EDNS_LOST 0x08    /* a try with EDNS went unanswered */
#define RQ_F_PLAIN 0x10        /* further tries go without EDNS */
#define RQ_F_PLAIN_SENT 0x20   /* a try went without EDNS */
#define RQ_F_EDNS_REFUSED 0x40 /* PLAIN after FORMERR, NOTIMP or BADVERS to EDNS */

/* One lookup. Kept small (100,000 may be queued): the name is stored once, in wire form,
 * at the end of the same allocation. */
struct rq {
        struct rq *next;          /* FIFO, hash chain or TCP wait list: one at a time */
        struct rq *lprev, *lnext; /* the list of lost queries (RQ_LOST) */
        dm_resolve_cb cb;
        void *arg;
        int64_t deadline; /* us; overall budget, counted from the first send */
        int64_t timer_at; /* us; next retransmission or the end */
        int64_t sent_at;  /* us; last UDP transmission */
        uint32_t heap_idx;
        uint16_t type;
        uint16_t id;
        uint16_t slot;  /* UDP socket index (RQ_UDP) or TCP slot (RQ_TCP) */
        uint8_t server; /* the server whose window this query occupies */
        uint8_t tries;  /* UDP transmissions so far */
        uint8_t tried;  /* one bit per server the query was sent to */
        uint8_t state;
        uint8_t fail;     /* enum rq_fail */
        uint8_t flags;    /* RQ_F_* */
        uint8_t case_bad; /* one bit per server that answered in the wrong case */
        uint8_t qlen;
        uint8_t qname[]; /* letters in the random case of 0x20 */
};

struct res_server {
        struct sockaddr_storage addr;
        socklen_t addrlen;
        /* Health: a server that answers nothing is marked down and probed. */
        bool down;
        uint32_t silent_timeouts; /* retry timers expired since its last answer */
        int64_t silent_since;     /* us; when the first of those tries was sent */
        int64_t probe_at;         /* us; next probe, while down */
        int64_t probe_wait;       /* us; the interval after that one */
        int probe_fd;             /* -1: no probe out */
        uint16_t probe_id;
        /* EDNS: off for a server that refuses or drops it, with a trial now and then. */
        bool no_edns;
        uint32_t plain_answers; /* silent, then answered a query without EDNS */
        int64_t edns_ok_at;     /* us; last answer to a query with EDNS */
        int64_t edns_trial_at;  /* us; when off, the next query with EDNS */
        /* 0x20: off for a server that does not echo the name's case, with trials too. */
        bool no_case;
        uint32_t case_mismatches; /* replies in the wrong case since one in the right case */
        int64_t case_trial_at;    /* us; when off, the next query in mixed case */
        enum res_family family;
        struct dm_dns_window win; /* congestion control: window, RTT, retry timeout */
        uint32_t inflight;
};

struct res_tcp {
        int fd; /* -1: free */
        struct rq *q;
        bool connected;
        uint16_t outlen, outpos;
        uint16_t want; /* reply length, once the 2-byte prefix is in */
        uint32_t got;  /* bytes read, prefix included */
        uint8_t lenbuf[2];
        uint8_t *in;
        uint8_t out[2 + DM_DNS_QUERY_MAX];
};

/* A UDP socket of the pool. ACTIVE ones take new queries; a socket past its queries or its
 * time is replaced by a new one (a new random port) and DRAINING until the queries filed
 * under it are done, still receiving their answers; then it is closed and its slot FREE. */
enum res_sock_state { RES_SOCK_FREE, RES_SOCK_ACTIVE, RES_SOCK_DRAINING };

struct res_sock {
        int fd;
        uint8_t state;
        uint32_t nreg;     /* queries filed under it in the (socket, id) hash */
        uint32_t left;     /* new queries it may still take */
        int64_t retire_at; /* us */
};

/* Datagrams waiting for one sendmmsg; all go out on the same socket. */
struct res_batch {
        size_t sock;
        unsigned n;
        struct mmsghdr msgs[RES_BATCH];
        struct iovec iov[RES_BATCH];
        uint8_t pkts[RES_BATCH][DM_DNS_QUERY_MAX];
};

struct dm_resolver {
        struct res_server servers[DM_RESOLVER_MAX_SERVERS];
        size_t nservers;
        size_t next_server;
        int64_t timeout_us;
        int retries;
        size_t concurrency;
        int qps;
        unsigned answer_flags; /* dm_dns_msg_answer flags */

        int epfd;
        int tfd;
        int64_t armed_at; /* us when the timerfd fires; 0: disarmed */

        struct res_sock socks[RES_NFAMILIES * RES_SLOTS]; /* family f: [f * RES_SLOTS, ...) */
        uint16_t active[RES_NFAMILIES][RES_MAX_SOCKETS];  /* slots taking new queries */
        size_t fam_count[RES_NFAMILIES];                  /* active sockets per family */
        size_t fam_cur[RES_NFAMILIES], fam_burst[RES_NFAMILIES];
        uint16_t draining[RES_NFAMILIES * RES_SLOTS];
        size_t ndraining;

        struct rq **buckets; /* (socket, id) -> query in RQ_UDP or RQ_LOST */
        uint32_t hash_shift;
        struct rq **heap; /* every query past the FIFO, by timer_at */
        size_t nheap;
        struct rq *qhead, *qtail; /* FIFO of queries not sent yet */
        size_t nqueued;
        struct rq *twhead, *twtail; /* waiting for a TCP slot */
        struct rq *lhead, *ltail;   /* RQ_LOST, oldest first */
        size_t nlost;
        size_t inflight; /* UDP, TCP_WAIT and TCP; inflight + nlost <= concurrency */
        struct res_tcp tcp[RES_TCP_MAX];
        size_t ntcp;

        double tokens, burst;
        int64_t tokens_at;

        uint8_t rnd[RES_RAND_POOL];
        size_t rnd_left;
        uint64_t rnd_fallback;

        struct mmsghdr rmsgs[RES_BATCH];
        struct iovec riov[RES_BATCH];
        struct sockaddr_storage rfrom[RES_BATCH];
        uint8_t *rbufs;
        struct res_batch out;

        int64_t now;
        bool in_run;
        int finished;
        struct dm_resolver_stats stats;
};

static int64_t res_clock(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Query ids come from the kernel's CSPRNG, fetched in blocks. */
static uint16_t res_rand16(struct dm_resolver *r)
{
        if (r->rnd_left < 2) {
                ssize_t n = getrandom(r->rnd, sizeof(r->rnd), GRND_NONBLOCK);
                if (n == (ssize_t)sizeof(r->rnd)) {
                        r->rnd_left = sizeof(r->rnd);
                } else {
                        /* Not seeded yet (early boot): a splitmix step on the clock. */
                        uint64_t z =
                            (r->rnd_fallback += 0x9e3779b97f4a7c15ull) ^ (uint64_t)res_clock();
                        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
                        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
                        return (uint16_t)(z ^ (z >> 31));
                }
        }
        r->rnd_left -= 2;
        return (uint16_t)(r->rnd[r->rnd_left] << 8 | r->rnd[r->rnd_left + 1]);
}

/* A draw from [full / 2, full]: lifetimes spread so that sockets are not all renewed at
 * once. */
static int64_t res_spread(struct dm_resolver *r, int64_t full)
{
        uint32_t x = (uint32_t)res_rand16(r) << 16 | res_rand16(r);
        int64_t half = full / 2;
        return half + (int64_t)(x % (uint64_t)(full - half + 1));
}

static bool res_is_letter(uint8_t ch)
{
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* DNS 0x20: every letter of the name in a random case, one CSPRNG bit each. A forger must
 * then guess the case as well as the port and id, where the server echoes it. Length octets
 * (below 64) are never letters. */
static void res_case_mix(struct dm_resolver *r, struct rq *q)
{
        uint16_t bits = 0;
        unsigned left = 0;

        for (size_t i = 0; i < q->qlen; i++) {
                if (!res_is_letter(q->qname[i]))
                        continue;
                if (left == 0) {
                        bits = res_rand16(r);
                        left = 16;
                }
                if (bits & 1u) {
                        q->qname[i] &= (uint8_t)~0x20u;
                        q->flags |= RQ_F_MIXED;
                } else {
                        q->qname[i] |= 0x20u;
                }
                bits >>= 1;
                left--;
        }
}

static void res_case_lower(uint8_t *name, size_t len)
{
        for (size_t i = 0; i < len; i++)
                if (res_is_letter(name[i]))
                        name[i] |= 0x20u;
}

/* ---- (socket, id) hash ---- */

static size_t res_hash(const struct dm_resolver *r, size_t slot, uint16_t id)
{
        uint32_t key = (uint32_t)slot << 16 | id;
        return (key * 0x9e3779b1u) >> r->hash_shift;
}

static struct rq *res_hash_find(const struct dm_resolver *r, size_t slot, uint16_t id)
{
        for (struct rq *q = r->buckets[res_hash(r, slot, id)]; q; q = q->next)
                if (q->id == id && q->slot == slot)
                        return q;
        return NULL;
}

/* The hash also counts the queries filed under each socket: a draining socket is closed
 * when none is left. */
static void res_hash_insert(struct dm_resolver *r, struct rq *q)
{
        struct rq **b = &r->buckets[res_hash(r, q->slot, q->id)];
        q->next = *b;
        *b = q;
        r->socks[q->slot].nreg++;
}

static void res_hash_remove(struct dm_resolver *r, struct rq *q)
{
        for (struct rq **p = &r->buckets[res_hash(r, q->slot, q->id)]; *p; p = &(*p)->next) {
                if (*p == q) {
                        *p = q->next;
                        q->next = NULL;
                        r->socks[q->slot].nreg--;
                        return;
                }
        }
}

/* ---- timer heap ---- */

static void res_heap_set(struct dm_resolver *r, size_t i, struct rq *q)
{
        r->heap[i] = q;
        q->heap_idx = (uint32_t)i;
}

static void res_heap_up(struct dm_resolver *r, size_t i)
{
        struct rq *q = r->heap[i];
        while (i > 0) {
                size_t parent = (i - 1) / 2;
                if (r->heap[parent]->timer_at <= q->timer_at)
                        break;
                res_heap_set(r, i, r->heap[parent]);
                i = parent;
        }
        res_heap_set(r, i, q);
}

static void res_heap_down(struct dm_resolver *r, size_t i)
{
        struct rq *q = r->heap[i];
        for (;;) {
                size_t child = 2 * i + 1;
                if (child >= r->nheap)
                        break;
                if (child + 1 < r->nheap && r->heap[child + 1]->timer_at < r->heap[child]->timer_at)
                        child++;
                if (q->timer_at <= r->heap[child]->timer_at)
                        break;
                res_heap_set(r, i, r->heap[child]);
                i = child;
        }
        res_heap_set(r, i, q);
}

/* The heap has room for `concurrency` entries, and only queries in flight are in it. */
static void res_heap_push(struct dm_resolver *r, struct rq *q)
{
        r->heap[r->nheap++] = q;
        res_heap_up(r, r->nheap - 1);
}

static void res_heap_remove(struct dm_resolver *r, struct rq *q)
{
        size_t i = q->heap_idx;
        struct rq *last = r->heap[--r->nheap];
        if (i == r->nheap)
                return;
        res_heap_set(r, i, last);
        res_heap_up(r, i);
        res_heap_down(r, last->heap_idx);
}

static void res_heap_fix(struct dm_resolver *r, struct rq *q)
{
        res_heap_up(r, q->heap_idx);
        res_heap_down(r, q->heap_idx);
}

/* ---- window, RTT, rate ---- */

static int64_t res_rto(const struct res_server *s)
{
        return dm_dns_window_rto(&s->win);
}

static void res_tokens_refill(struct dm_resolver *r)
{
        if (r->qps <= 0)
                return;
        r->tokens += (double)(r->now - r->tokens_at) * r->qps / 1e6;
        if (r->tokens > r->burst)
                r->tokens = r->burst;
        r->tokens_at = r->now;
}

/* ---- the socket pool ---- */

static int res_sock_open(struct dm_resolver *r, enum res_family fam, size_t slot)
{
        int domain = fam == RES_V4 ? AF_INET : AF_INET6;
        int fd = socket(domain, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        int rcvbuf = RES_RCVBUF;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
        struct sockaddr_storage any = {0};
        socklen_t anylen;
        if (fam == RES_V4) {
                struct sockaddr_in *a = (struct sockaddr_in *)&any;
                a->sin_family = AF_INET;
                anylen = sizeof(*a);
        } else {
                int on = 1;
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
                struct sockaddr_in6 *a = (struct sockaddr_in6 *)&any;
                a->sin6_family = AF_INET6;
                anylen = sizeof(*a);
        }
        /* Port 0: the kernel picks a random ephemeral port per socket. */
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)slot << 2 | RES_TAG_UDP};
        if (bind(fd, (struct sockaddr *)&any, anylen) < 0 ||
            epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                int err = -errno;
                close(fd);
                return err;
        }
        struct res_sock *k = &r->socks[slot];
        k->fd = fd;
        k->state = RES_SOCK_ACTIVE;
        k->nreg = 0;
        k->left = (uint32_t)res_spread(r, RES_SOCK_QUERIES);
        k->retire_at = r->now + res_spread(r, RES_SOCK_LIFE_US);
        return 0;
}

/* Puts a fresh socket (a new random port) in place of the i-th active one of the family.
 * The old one drains: it takes no new query but still receives the answers of its own. */
static void res_sock_renew(struct dm_resolver *r, enum res_family fam, size_t i)
{
        size_t old = r->active[fam][i];
        size_t base = (size_t)fam * RES_SLOTS;

        for (size_t slot = base; slot < base + RES_SLOTS; slot++) {
                if (r->socks[slot].state != RES_SOCK_FREE)
                        continue;
                if (res_sock_open(r, fam, slot) < 0)
                        break;
                r->socks[old].state = RES_SOCK_DRAINING;
                r->draining[r->ndraining++] = (uint16_t)old;
                r->active[fam][i] = (uint16_t)slot;
                r->stats.sockets_renewed++;
                return;
        }
        /* Every slot is draining, or no socket could be opened: this one serves on. */
        r->socks[old].left = RES_SOCK_BURST;
        r->socks[old].retire_at = r->now + RES_SOCK_RETRY_US;
}

/* Closes the draining sockets that have no query left. Runs after the batch is flushed,
 * so that nothing is still to be sent from them. */
static void res_sock_sweep(struct dm_resolver *r)
{
        for (size_t i = 0; i < r->ndraining;) {
                struct res_sock *k = &r->socks[r->draining[i]];
                if (k->nreg > 0) {
                        i++;
                        continue;
                }
                close(k->fd);
                k->fd = -1;
                k->state = RES_SOCK_FREE;
                r->draining[i] = r->draining[--r->ndraining];
        }
}

/* ---- sending ---- */

static void res_batch_flush(struct dm_resolver *r)
{
        struct res_batch *b = &r->out;
        unsigned off = 0;

        while (off < b->n) {
                int k = sendmmsg(r->socks[b->sock].fd, b->msgs + off, b->n - off, 0);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        /* This datagram is lost (full buffer, unreachable): its retry timer
                         * sends it again. */
                        off++;
                        continue;
                }
                off += (unsigned)k;
        }
        b->n = 0;
}

/* EDNS on this try: not once the query fell back, not to a server whose last tries all
 * went unanswered (it may be dropping EDNS queries; a plain one tells), and not to a
 * server known to refuse or drop it, except for one trial query every RES_RECHECK_US
 * (servers get fixed). */
static bool res_try_edns(struct dm_resolver *r, struct rq *q, struct res_server *s)
{
        if (q->flags & RQ_F_PLAIN)
                return false;
        if (!s->no_edns)
                return s->silent_timeouts < RES_EDNS_SILENT_TRIES;
        if (r->now < s->edns_trial_at)
                return false;
        s->edns_trial_at = r->now + RES_RECHECK_US;
        return true;
}

/* The name in its 0x20 case to a server that echoes it; in lower case to one that does
 * not (a server that ignores the case may also look names up with it), except for one
 * trial query every RES_RECHECK_US. */
static bool res_try_case(struct dm_resolver *r, struct res_server *s)
{
        if (!s->no_case)
                return true;
        if (r->now < s->case_trial_at)
                return false;
        s->case_trial_at = r->now + RES_RECHECK_US;
        return true;
}

/* Writes q as sent to s now (UDP or TCP) and notes how it went. Returns its length, 0 if
 * it cannot be written (never: the name was checked when queued). */
static size_t res_query_wire(struct dm_resolver *r, struct rq *q, struct res_server *s,
                             uint8_t *out, size_t outlen)
{
        bool edns = res_try_edns(r, q, s);
        size_t len;

        if (dm_dns_query_build_wire(q->qname, q->qlen, q->type, q->id,
                                    edns ? 0 : DM_DNS_QUERY_NO_EDNS, out, outlen, &len))
                return 0;
        q->flags &= (uint8_t) ~(RQ_F_EDNS_TRY | RQ_F_CASE_TRY);
        if (edns)
                q->flags |= RQ_F_EDNS_TRY;
        else
                q->flags |= RQ_F_PLAIN_SENT;
        if (res_try_case(r, s))
                q->flags |= RQ_F_CASE_TRY;
        else
                res_case_lower(out + DM_DNS_HEADER_LEN, q->qlen);
        return len;
}

/* Queues one datagram of q to its server. The caller counts it in q->tries when it is a
 * try the retry timer watches. */
static void res_udp_send(struct dm_resolver *r, struct rq *q)
{
        struct res_batch *b = &r->out;
        struct res_server *s = &r->servers[q->server];
        size_t len;

        if (b->n > 0 && b->sock != q->slot)
                res_batch_flush(r);
        b->sock = q->slot;
        len = res_query_wire(r, q, s, b->pkts[b->n], DM_DNS_QUERY_MAX);
        if (len == 0)
                return;
        b->iov[b->n].iov_len = len;
        b->msgs[b->n].msg_hdr.msg_name = &s->addr;
        b->msgs[b->n].msg_hdr.msg_namelen = s->addrlen;
        if (++b->n == RES_BATCH)
                res_batch_flush(r);
        dm_dns_window_sent(&s->win, r->now, q->tries > 1 ? DM_DNS_WINDOW_RETRY : 0);
        q->sent_at = r->now;
        q->tried |= (uint8_t)(1u << q->server);
        r->stats.sent++;
        if (r->qps > 0)
                r->tokens -= 1.0;
}

/* Consecutive queries share a socket for a burst so that they leave in one sendmmsg; the
 * bursts rotate over the pool so answers come back on many ports. A socket past its
 * queries or its time is renewed here. */
static size_t res_pick_socket(struct dm_resolver *r, enum res_family fam)
{
        if (++r->fam_burst[fam] >= RES_SOCK_BURST) {
                r->fam_burst[fam] = 0;
                r->fam_cur[fam] = (r->fam_cur[fam] + 1) % r->fam_count[fam];
        }
        size_t i = r->fam_cur[fam];
        struct res_sock *k = &r->socks[r->active[fam][i]];
        if (k->left == 0 || r->now >= k->retire_at)
                res_sock_renew(r, fam, i);
        return r->active[fam][i];
}

/* Gives q a socket of the family and an id unused on that socket, and files it. */
static int res_register(struct dm_resolver *r, struct rq *q, enum res_family fam)
{
        for (int attempt = 0; attempt < 4 * RES_SOCK_BURST; attempt++) {
                size_t slot = res_pick_socket(r, fam);
                uint16_t id = res_rand16(r);
                if (!res_hash_find(r, slot, id)) {
                        q->slot = (uint16_t)slot;
                        q->id = id;
                        res_hash_insert(r, q);
                        if (r->socks[slot].left > 0)
                                r->socks[slot].left--;
                        return 0;
                }
        }
        return DM_EAGAIN;
}

/* A query moving to server `si` needs a socket of si's family, and so a new (socket, id)
 * pair. Returns the server it can go to: si, or its own when no id is free there. */
static size_t res_refile(struct dm_resolver *r, struct rq *q, size_t si)
{
        if (r->servers[si].family == r->servers[q->server].family)
                return si;
        res_hash_remove(r, q);
        if (res_register(r, q, r->servers[si].family)) {
                res_hash_insert(r, q);
                return q->server;
        }
        return si;
}

static void res_charge(struct dm_resolver *r, struct rq *q, size_t server)
{
        r->servers[q->server].inflight--;
        r->servers[server].inflight++;
        q->server = (uint8_t)server;
}

static void res_lost_push(struct dm_resolver *r, struct rq *q)
{
        q->lnext = NULL;
        q->lprev = r->ltail;
        if (r->ltail)
                r->ltail->lnext = q;
        else
                r->lhead = q;
        r->ltail = q;
        r->nlost++;
}

static void res_lost_unlink(struct dm_resolver *r, struct rq *q)
{
        if (q->lprev)
                q->lprev->lnext = q->lnext;
        else
                r->lhead = q->lnext;
        if (q->lnext)
                q->lnext->lprev = q->lprev;
        else
                r->ltail = q->lprev;
        q->lprev = q->lnext = NULL;
        r->nlost--;
}

/* ---- finishing ---- */

static void res_tcp_close(struct dm_resolver *r, struct res_tcp *t)
{
        close(t->fd);
        free(t->in);
        memset(t, 0, sizeof(*t));
        t->fd = -1;
        r->ntcp--;
}

/* Takes q out of every structure and gives its window slot back. */
static void res_detach(struct dm_resolver *r, struct rq *q)
{
        switch (q->state) {
        case RQ_UDP:
                res_hash_remove(r, q);
                break;
        case RQ_LOST:
                res_hash_remove(r, q);
                res_lost_unlink(r, q);
                break;
        case RQ_TCP_WAIT: {
                struct rq *prev = NULL;
                for (struct rq *w = r->twhead; w; prev = w, w = w->next) {
                        if (w != q)
                                continue;
                        if (prev)
                                prev->next = q->next;
                        else
                                r->twhead = q->next;
                        if (r->twtail == q)
                                r->twtail = prev;
                        break;
                }
                break;
        }
        case RQ_TCP:
                res_tcp_close(r, &r->tcp[q->slot]);
                break;
        default:
                break;
        }
        res_heap_remove(r, q);
        if (q->state != RQ_LOST) {
                r->servers[q->server].inflight--;
                r->inflight--;
        }
}

/* Counts the outcome, calls back, frees: the end of every lookup. */
static void res_report(struct dm_resolver *r, struct rq *q, const struct dm_dns_answer *a)
{
        if (a->status == DM_RRS_ERROR) {
                r->stats.errors++;
                if (a->err == DM_ETIMEDOUT)
                        r->stats.timeouts++;
                else if (a->err == DM_ESERVERSDOWN)
                        r->stats.down_fails++;
        }
        r->finished++;
        q->cb(q->arg, a);
        free(q);
}

static void res_deliver(struct dm_resolver *r, struct rq *q, const struct dm_dns_answer *a)
{
        res_detach(r, q);
        res_report(r, q, a);
}

static void res_fail(struct dm_resolver *r, struct rq *q, int err)
{
        struct dm_dns_answer a = {.status = DM_RRS_ERROR, .err = err};
        if (q->tried)
                a.server_plus1 = (int)q->server + 1;
        res_deliver(r, q, &a);
}

/* The error of a lookup that no answer ended: the last reply that was not an answer
 * (asked again elsewhere meanwhile), else a timeout. */
static int res_fail_err(const struct rq *q)
{
        static const int errs[] = {
            [RQ_FAIL_NONE] = DM_ETIMEDOUT,     [RQ_FAIL_JUNK] = DM_EFORMERR,
            [RQ_FAIL_SERVFAIL] = DM_ESERVFAIL, [RQ_FAIL_REFUSED] = DM_EREFUSED,
            [RQ_FAIL_REFERRAL] = DM_EREFERRAL, [RQ_FAIL_LAME] = DM_ELAME,
        };
        return q->fail < sizeof(errs) / sizeof(errs[0]) ? errs[q->fail] : DM_ETIMEDOUT;
}

/* ---- server health: down and probed, EDNS, 0x20 ---- */

static int res_server_index(const struct dm_resolver *r, const struct sockaddr_storage *from)
{
        for (size_t i = 0; i < r->nservers; i++) {
                const struct sockaddr_storage *a = &r->servers[i].addr;
                if (a->ss_family != from->ss_family)
                        continue;
                if (a->ss_family == AF_INET) {
                        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
                        const struct sockaddr_in *y = (const struct sockaddr_in *)from;
                        if (x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr)
                                return (int)i;
                } else {
                        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
                        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)from;
                        if (x->sin6_port == y->sin6_port &&
                            memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0)
                                return (int)i;
                }
        }
        return -1;
}

/* How long a server must have answered nothing to be marked down: as long as a lookup may
 * take, and not less than RES_DOWN_SPAN_MIN_US. By then what was sent to it is failing
 * anyway; random loss and a short burst of it never last that long. */
static int64_t res_down_span(const struct dm_resolver *r)
{
        return r->timeout_us > RES_DOWN_SPAN_MIN_US ? r->timeout_us : RES_DOWN_SPAN_MIN_US;
}

static void res_probe_close(struct res_server *s)
{
        if (s->probe_fd >= 0) {
                close(s->probe_fd);
                s->probe_fd = -1;
        }
}

static void res_server_down(struct dm_resolver *r, struct res_server *s)
{
        s->down = true;
        s->probe_at = r->now;
        s->probe_wait = RES_PROBE_FIRST_US;
        r->stats.server_downs++;
}

/* A reply that matched a query or a probe: the server lives. */
static void res_server_alive(struct dm_resolver *r, struct res_server *s)
{
        s->silent_timeouts = 0;
        if (!s->down)
                return;
        s->down = false;
        res_probe_close(s);
        r->stats.server_ups++;
}

static bool res_all_down(const struct dm_resolver *r)
{
        for (size_t i = 0; i < r->nservers; i++)
                if (!r->servers[i].down)
                        return false;
        return true;
}

/* ". SOA" without EDNS from a socket of its own (a new random port each time): any
 * well-formed reply, an error included, shows that the server answers again. */
static void res_probe_send(struct dm_resolver *r, size_t si)
{
        static const uint8_t root[] = {0};
        struct res_server *s = &r->servers[si];
        uint8_t pkt[DM_DNS_QUERY_MAX];
        size_t len;

        res_probe_close(s);
        s->probe_at = r->now + s->probe_wait;
        s->probe_wait = s->probe_wait * 2 < RES_PROBE_MAX_US ? s->probe_wait * 2 : RES_PROBE_MAX_US;
        int fd = socket(s->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)si << 2 | RES_TAG_PROBE};
        if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                close(fd);
                return;
        }
        s->probe_fd = fd;
        s->probe_id = res_rand16(r);
        if (dm_dns_query_build_wire(root, sizeof(root), DM_RR_SOA, s->probe_id,
                                    DM_DNS_QUERY_NO_EDNS, pkt, sizeof(pkt), &len) == 0 &&
            sendto(fd, pkt, len, 0, (const struct sockaddr *)&s->addr, s->addrlen) >= 0)
                r->stats.probes++;
}

static void res_probe_read(struct dm_resolver *r, size_t si)
{
        static const uint8_t root[] = {0};
        uint8_t buf[RES_RECV_SIZE];

        if (si >= r->nservers)
                return;
        struct res_server *s = &r->servers[si];
        while (s->probe_fd >= 0) {
                struct sockaddr_storage from;
                socklen_t flen = sizeof(from);
                struct dm_dns_msg m;
                ssize_t n = recvfrom(s->probe_fd, buf, sizeof(buf), MSG_DONTWAIT,
                                     (struct sockaddr *)&from, &flen);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return;
                }
                if (res_server_index(r, &from) != (int)si)
                        continue;
                if (dm_dns_msg_parse(buf, (size_t)n, &m) &&
                    dm_dns_msg_parse_header(buf, (size_t)n, &m))
                        continue;
                if (dm_dns_msg_check_reply(&m, s->probe_id, root, sizeof(root), DM_RR_SOA))
                        continue;
                res_server_alive(r, s);
                return;
        }
}

static void res_probes(struct dm_resolver *r)
{
        for (size_t i = 0; i < r->nservers; i++)
                if (r->servers[i].down && r->servers[i].probe_at <= r->now)
                        res_probe_send(r, i);
}

static void res_edns_off(struct dm_resolver *r, struct res_server *s)
{
        if (s->no_edns)
                return;
        s->no_edns = true;
        s->plain_answers = 0;
        s->edns_trial_at = r->now + RES_RECHECK_US;
        r->stats.edns_fallbacks++;
}

static void res_case_off(struct dm_resolver *r, struct res_server *s)
{
        if (s->no_case)
                return;
        s->no_case = true;
        s->case_mismatches = 0;
        s->case_trial_at = r->now + RES_RECHECK_US;
        r->stats.case_fallbacks++;
}

/* What a matched reply says about the server's EDNS. Returns true when the server refused
 * EDNS (FORMERR, NOTIMP or BADVERS while every try carried it): the query is then asked
 * again at once without it. The server is marked no-EDNS when that plain query gets a
 * reply other than those; or when RES_EDNS_PLAIN_ANSWERS times it went silent (its last
 * RES_EDNS_SILENT_TRIES tries unanswered), was asked without EDNS and answered that, and
 * it answered no query with EDNS in between nor for res_down_span. A server back from an
 * outage does that once, then answers EDNS again; random loss rarely silences a server
 * twice in a row, three times without an answer with EDNS between. */
static bool res_edns_learn(struct dm_resolver *r, struct rq *q, struct res_server *s,
                           const struct dm_dns_msg *m, bool silent)
{
        bool refused = m->rcode == DM_DNS_RCODE_FORMERR || m->rcode == DM_DNS_RCODE_NOTIMP ||
                       m->rcode == DM_DNS_RCODE_BADVERS;

        if (refused) {
                if (q->flags & RQ_F_PLAIN_SENT)
                        return false; /* refused without EDNS too: not EDNS's fault */
                q->flags |= RQ_F_PLAIN | RQ_F_EDNS_REFUSED;
                return true;
        }
        if (m->has_opt || !(q->flags & RQ_F_PLAIN_SENT)) {
                /* An answer to a query with EDNS. */
                s->edns_ok_at = r->now;
                s->plain_answers = 0;
                s->no_edns = false;
                return false;
        }
        if (s->no_edns)
                return false;
        if (q->flags & RQ_F_EDNS_REFUSED) {
                res_edns_off(r, s);
        } else if (silent && ++s->plain_answers >= RES_EDNS_PLAIN_ANSWERS &&
                   r->now - s->edns_ok_at >= res_down_span(r)) {
                res_edns_off(r, s);
        }
        return false;
}

/* 0x20: while a server echoes the case of the name, a reply that matches only without
 * case is dropped like a forged one. The server falls back (replies compared without case)
 * after RES_CASE_MISMATCHES such replies with none in the right case in between, or when a
 * try got only replies in the wrong case (see res_try_lost). Returns whether to go on
 * with the reply. */
static bool res_case_check(struct dm_resolver *r, struct rq *q, size_t si,
                           const struct dm_dns_msg *m)
{
        struct res_server *s = &r->servers[si];

        if (m->qname_len == 0)
                return true; /* an error without the question: nothing to compare */
        bool exact = memcmp(m->qname, q->qname, q->qlen) == 0;
        /* Only a name with upper-case letters tells an echo from a server that lower-cases. */
        bool telling = exact && (q->flags & RQ_F_MIXED);
        if (s->no_case) {
                if (telling) {
                        s->no_case = false; /* a trial came back in the right case */
                        s->case_mismatches = 0;
                }
                return true;
        }
        if (exact) {
                if (telling)
                        s->case_mismatches = 0;
                return true;
        }
        r->stats.case_mismatches++;
        q->case_bad |= (uint8_t)(1u << si);
        if (++s->case_mismatches < RES_CASE_MISMATCHES)
                return false;
        res_case_off(r, s);
        return true;
}

/* ---- TCP for truncated answers ---- */

static void res_tcp_open(struct dm_resolver *r, struct rq *q)
{
        struct res_server *s = &r->servers[q->server];
        struct res_tcp *t = NULL;
        size_t idx;
        size_t len;

        for (idx = 0; idx < RES_TCP_MAX; idx++) {
                if (r->tcp[idx].fd < 0) {
                        t = &r->tcp[idx];
                        break;
                }
        }
        if (!t)
                return; /* callers check ntcp first */
        int fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                res_fail(r, q, -errno);
                return;
        }
        len = res_query_wire(r, q, s, t->out + 2, sizeof(t->out) - 2);
        t->out[0] = (uint8_t)(len >> 8);
        t->out[1] = (uint8_t)len;
        t->outlen = (uint16_t)(len + 2);
        if (connect(fd, (const struct sockaddr *)&s->addr, s->addrlen) < 0 &&
            errno != EINPROGRESS) {
                int err = -errno;
                close(fd);
                res_fail(r, q, err);
                return;
        }
        struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)idx << 2 | RES_TAG_TCP};
        if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                int err = -errno;
                close(fd);
                res_fail(r, q, err);
                return;
        }
        t->fd = fd;
        t->q = q;
        r->ntcp++;
        q->state = RQ_TCP;
        q->slot = (uint16_t)idx;
        r->stats.sent++;
}

/* Starts queries waiting for a TCP slot. */
static void res_tcp_pump(struct dm_resolver *r)
{
        while (r->twhead && r->ntcp < RES_TCP_MAX) {
                struct rq *q = r->twhead;
                r->twhead = q->next;
                if (!r->twhead)
                        r->twtail = NULL;
                q->next = NULL;
                res_tcp_open(r, q);
        }
}

static void res_tcp_start(struct dm_resolver *r, struct rq *q, size_t server)
{
        res_hash_remove(r, q);
        r->stats.tcp_fallbacks++;
        if (q->state == RQ_LOST) {
                /* A late answer to a try given up on: back into the window. */
                res_lost_unlink(r, q);
                q->server = (uint8_t)server;
                r->servers[server].inflight++;
                r->inflight++;
        } else {
                res_charge(r, q, server);
        }
        int64_t floor = r->now + (r->timeout_us < RES_TCP_MIN_BUDGET_US ? r->timeout_us
                                                                        : RES_TCP_MIN_BUDGET_US);
        if (q->deadline < floor)
                q->deadline = floor;
        q->timer_at = q->deadline;
        res_heap_fix(r, q);
        q->state = RQ_TCP_WAIT;
        q->next = NULL;
        if (r->twtail)
                r->twtail->next = q;
        else
                r->twhead = q;
        r->twtail = q;
}

static void res_tcp_reply(struct dm_resolver *r, struct res_tcp *t)
{
        struct rq *q = t->q;
        struct dm_dns_msg m;
        if (dm_dns_msg_parse(t->in, t->want, &m) ||
            dm_dns_msg_check_reply(&m, q->id, q->qname, q->qlen, q->type)) {
                res_fail(r, q, DM_EFORMERR);
                return;
        }
        r->stats.answers++;
        /* res_deliver closes the connection, and m points into its buffer: answer first. */
        struct dm_dns_answer a;
        if (dm_dns_msg_answer(&m, q->type, r->answer_flags, &a)) {
                res_fail(r, q, DM_ENOMEM);
                return;
        }
        if (a.status == DM_RRS_ERROR)
                a.server_plus1 = (int)q->server + 1;
        res_deliver(r, q, &a);
        dm_dns_answer_done(&a);
}

static void res_tcp_read(struct dm_resolver *r, struct res_tcp *t)
{
        for (;;) {
                ssize_t n;
                if (t->got < 2)
                        n = recv(t->fd, t->lenbuf + t->got, 2 - t->got, 0);
                else
                        n = recv(t->fd, t->in + (t->got - 2), t->want - (t->got - 2), 0);
                if (n == 0) {
                        res_fail(r, t->q, DM_EIO);
                        return;
                }
                if (n < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                                return;
                        res_fail(r, t->q, -errno);
                        return;
                }
                t->got += (uint32_t)n;
                if (t->got == 2) {
                        t->want = (uint16_t)(t->lenbuf[0] << 8 | t->lenbuf[1]);
                        t->in = t->want >= DM_DNS_HEADER_LEN ? malloc(t->want) : NULL;
                        if (!t->in) {
                                res_fail(r, t->q,
                                         t->want < DM_DNS_HEADER_LEN ? DM_EFORMERR : DM_ENOMEM);
                                return;
                        }
                } else if (t->got >= 2 && t->got - 2 == t->want) {
                        res_tcp_reply(r, t);
                        return;
                }
        }
}

static void res_tcp_event(struct dm_resolver *r, size_t idx, uint32_t events)
{
        if (idx >= RES_TCP_MAX)
                return;
        struct res_tcp *t = &r->tcp[idx];
        if (t->fd < 0 || !t->q)
                return; /* closed earlier in this batch of events */
        if (!t->connected) {
                int err = 0;
                socklen_t elen = sizeof(err);
                if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
                        err = errno;
                if (err) {
                        res_fail(r, t->q, -err);
                        return;
                }
                if (!(events & EPOLLOUT))
                        return;
                t->connected = true;
        }
        if (t->outpos < t->outlen) {
                ssize_t n = send(t->fd, t->out + t->outpos, t->outlen - t->outpos, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                                res_fail(r, t->q, -errno);
                        return;
                }
                t->outpos = (uint16_t)(t->outpos + n);
                if (t->outpos < t->outlen)
                        return;
                struct epoll_event ev = {.events = EPOLLIN,
                                         .data.u64 = (uint64_t)idx << 2 | RES_TAG_TCP};
                if (epoll_ctl(r->epfd, EPOLL_CTL_MOD, t->fd, &ev) < 0)
                        res_fail(r, t->q, -errno);
                return;
        }
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                res_tcp_read(r, t);
}

/* ---- receiving over UDP ---- */

static int64_t res_retry_at(const struct dm_resolver *r, const struct rq *q);

/* Sends q again at once over UDP to server si, outside the retry timer: the reply was not
 * the answer, and a better one may come from there. Not counted in q->tries (nothing was
 * lost), so its retry timer is the one the try it replaces had. */
static void res_resend(struct dm_resolver *r, struct rq *q, size_t si)
{
        if (q->state == RQ_LOST) {
                /* A late reply to a try given up on: back into a window. */
                res_lost_unlink(r, q);
                si = res_refile(r, q, si);
                q->server = (uint8_t)si;
                r->servers[si].inflight++;
                r->inflight++;
        } else {
                res_charge(r, q, res_refile(r, q, si));
        }
        q->state = RQ_UDP;
        res_udp_send(r, q);
        q->timer_at = res_retry_at(r, q);
        res_heap_fix(r, q);
}

/* A server that is up and was not asked this query yet, the first after `from` with room in
 * its window if there is one. */
static bool res_next_untried(const struct dm_resolver *r, const struct rq *q, size_t from,
                             size_t *ret_server)
{
        bool found = false;
        size_t pick = 0;

        for (size_t k = 1; k < r->nservers; k++) {
                size_t i = (from + k) % r->nservers;
                const struct res_server *s = &r->servers[i];
                if (s->down || (q->tried & (1u << i)))
                        continue;
                if (s->inflight < dm_dns_window_size(&s->win)) {
                        *ret_server = i;
                        return true;
                }
                if (!found) {
                        pick = i;
                        found = true;
                }
        }
        if (found)
                *ret_server = pick;
        return found;
}

static uint8_t res_soft_fail(int err)
{
        switch (err) {
        case DM_ESERVFAIL:
                return RQ_FAIL_SERVFAIL;
        case DM_EREFUSED:
                return RQ_FAIL_REFUSED;
        case DM_EREFERRAL:
                return RQ_FAIL_REFERRAL;
        case DM_ELAME:
                return RQ_FAIL_LAME;
        default:
                return RQ_FAIL_NONE;
        }
}

/* What a matched reply means for its query: asked again (without EDNS, in lower case, or
 * of another server) or delivered. `silent`: the server had left its last tries
 * unanswered. */
static void res_udp_answer(struct dm_resolver *r, struct rq *q, size_t si,
                           const struct dm_dns_msg *m, bool silent)
{
        struct dm_dns_answer a;
        size_t next;

        if (res_edns_learn(r, q, &r->servers[si], m, silent)) {
                r->stats.edns_retries++;
                res_resend(r, q, si);
                return;
        }
        if (dm_dns_msg_answer(m, q->type, r->answer_flags, &a)) {
                res_fail(r, q, DM_ENOMEM);
                return;
        }
        uint8_t soft = a.status == DM_RRS_ERROR ? res_soft_fail(a.err) : RQ_FAIL_NONE;
        if (a.status == DM_RRS_NXDOMAIN && (q->flags & RQ_F_MIXED) && (q->flags & RQ_F_CASE_TRY)) {
                /* The risk of 0x20: a server that looks names up case-sensitively denies a
                 * name in mixed case. Before a name's records are taken as gone, it is asked
                 * once more in lower case. */
                res_case_lower(q->qname, q->qlen);
                q->flags &= (uint8_t)~RQ_F_MIXED;
                r->stats.nxdomain_rechecks++;
                res_resend(r, q, si);
        } else if (soft != RQ_FAIL_NONE && res_next_untried(r, q, si, &next)) {
                /* SERVFAIL, REFUSED, a referral or a lame reply is one server's problem: the
                 * next one may answer. It counts only when no other is left. */
                q->fail = soft;
                r->stats.next_server++;
                res_resend(r, q, next);
        } else {
                if (a.status == DM_RRS_ERROR)
                        a.server_plus1 = (int)si + 1;
                res_deliver(r, q, &a);
        }
        dm_dns_answer_done(&a);
}

/* One datagram on a pool socket. `cut`: larger than the receive buffer (MSG_TRUNC), only
 * its start arrived; its header and question still say which query it answers, and that
 * query is asked again over TCP instead of being lost. */
static void res_udp_reply(struct dm_resolver *r, size_t slot, const uint8_t *pkt, size_t len,
                          bool cut, const struct sockaddr_storage *from)
{
        if (len < DM_DNS_HEADER_LEN)
                return;
        uint16_t id = (uint16_t)(pkt[0] << 8 | pkt[1]);
        struct rq *q = res_hash_find(r, slot, id);
        if (!q)
                return; /* stray: unknown id on this port, or already answered */
        int si = res_server_index(r, from);
        if (si < 0 || !(q->tried & (1u << si)))
                return; /* not from a server this query went to */
        struct dm_dns_msg m;
        if (cut ? dm_dns_msg_parse_header(pkt, len, &m) : dm_dns_msg_parse(pkt, len, &m)) {
                /* Keep waiting: a forged packet must not end the query. */
                if (q->fail == RQ_FAIL_NONE)
                        q->fail = RQ_FAIL_JUNK;
                return;
        }
        if (dm_dns_msg_check_reply(&m, id, q->qname, q->qlen, q->type))
                return;
        if (!res_case_check(r, q, (size_t)si, &m))
                return;
        r->stats.answers++;
        struct res_server *s = &r->servers[si];
        bool silent = s->silent_timeouts >= RES_EDNS_SILENT_TRIES;
        res_server_alive(r, s);
        if (q->state == RQ_LOST)
                dm_dns_window_late(&r->servers[q->server].win, r->now, q->sent_at,
                                   q->tries > 1 ? DM_DNS_WINDOW_RETRY : 0);
        /* RTT: from the only send; after retransmissions, from the last one. Under random
         * loss the answer is mostly to the last try, and this is its RTT; measured from the
         * first send it would count the retry timeouts in, and the RTO would climb to its
         * ceiling at 10 % loss. A slow server (a resolver working on a cache miss) answers
         * an earlier try after the retransmission: still longer than its usual RTT, so the
         * RTO still grows for it. */
        int64_t rtt = -1; /* none */
        unsigned rtt_flags = 0;
        if (q->tries == 1 && (size_t)si == q->server) {
                rtt = r->now - q->sent_at;
                rtt_flags = q->state == RQ_UDP ? DM_DNS_WINDOW_CLEAN : 0;
        } else if (q->tries > 1) {
                rtt = r->now - q->sent_at;
        }
        dm_dns_window_answer(&s->win, r->now, q->sent_at, rtt, rtt_flags);
        if (cut || (m.flags & DM_DNS_FLAG_TC)) {
                res_tcp_start(r, q, (size_t)si);
                return;
        }
        res_udp_answer(r, q, (size_t)si, &m, silent);
}

static void res_udp_read(struct dm_resolver *r, size_t slot)
{
        if (slot >= RES_NFAMILIES * RES_SLOTS || r->socks[slot].fd < 0)
                return; /* closed earlier in this batch of events */
        for (;;) {
                for (size_t i = 0; i < RES_BATCH; i++) {
                        r->rmsgs[i].msg_hdr.msg_namelen = sizeof(r->rfrom[i]);
                        r->rmsgs[i].msg_hdr.msg_flags = 0;
                }
                int n = recvmmsg(r->socks[slot].fd, r->rmsgs, RES_BATCH, MSG_DONTWAIT, NULL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return;
                r->now = res_clock();
                for (int i = 0; i < n; i++) {
                        bool cut = (r->rmsgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
                        size_t len = r->rmsgs[i].msg_len;
                        res_udp_reply(r, slot, r->rbufs + (size_t)i * RES_RECV_SIZE,
                                      len < RES_RECV_SIZE ? len : RES_RECV_SIZE, cut, &r->rfrom[i]);
                }
                if (n < RES_BATCH)
                        return;
        }
}

/* ---- timers ---- */

/* When to give up on the transmission just made: the server's RTO doubled per earlier
 * transmission, but never more than an equal share of what is left of the budget, so every
 * retry gets its turn; after the last one, the rest of the budget. */
static int64_t res_retry_at(const struct dm_resolver *r, const struct rq *q)
{
        int left = r->retries - (q->tries - 1); /* retransmissions still allowed */
        if (left <= 0)
                return q->deadline;
        int shift = q->tries - 1 < 16 ? q->tries - 1 : 16;
        int64_t wait = res_rto(&r->servers[q->server]) << shift;
        int64_t share = (q->deadline - r->now) / (left + 1);
        return r->now + (wait < share ? wait : share);
}

/* What an unanswered try tells about its server and the query's next try:
 * - a server with RES_DOWN_TIMEOUTS of them in a row, the first sent res_down_span ago, is
 *   marked down (an answer to anything resets the count);
 * - a server that answered this try only in the wrong case falls back from 0x20 (a forger
 *   cannot make a query go unanswered: the server's own reply would still arrive);
 * - after two tries with EDNS are lost, or one before the last try, the query goes on
 *   without EDNS, in case the server drops EDNS queries (and every query goes without it
 *   to a server that left RES_EDNS_SILENT_TRIES in a row unanswered: res_try_edns). */
static void res_try_lost(struct dm_resolver *r, struct rq *q)
{
        struct res_server *s = &r->servers[q->server];

        if (s->silent_timeouts++ == 0)
                s->silent_since = q->sent_at;
        if (!s->down && s->silent_timeouts >= RES_DOWN_TIMEOUTS &&
            r->now - s->silent_since >= res_down_span(r))
                res_server_down(r, s);
        for (size_t i = 0; q->case_bad && i < r->nservers; i++)
                if (q->case_bad & (1u << i))
                        res_case_off(r, &r->servers[i]);
        q->case_bad = 0;
        if (q->flags & RQ_F_EDNS_TRY) {
                if ((q->flags & RQ_F_EDNS_LOST) || q->tries >= r->retries)
                        q->flags |= RQ_F_PLAIN;
                q->flags |= RQ_F_EDNS_LOST;
        }
}

/* The try got no answer in time. The query leaves the window (it is taken as lost, so it
 * does not hold a slot) and waits for a slot to be retransmitted: retransmissions are
 * paced by the window like everything else, never sent as one burst into an overload. */
static void res_udp_timeout(struct dm_resolver *r, struct rq *q)
{
        dm_dns_window_loss(&r->servers[q->server].win, r->now, q->sent_at,
                           q->tries > 1 ? DM_DNS_WINDOW_RETRY : 0);
        res_try_lost(r, q);
        if (r->now >= q->deadline || q->tries > r->retries) {
                res_fail(r, q, res_fail_err(q));
                return;
        }
        r->servers[q->server].inflight--;
        r->inflight--;
        q->state = RQ_LOST;
        res_lost_push(r, q);
        q->timer_at = q->deadline;
        res_heap_fix(r, q);
}

static void res_timers(struct dm_resolver *r)
{
        while (r->nheap > 0 && r->heap[0]->timer_at <= r->now) {
                struct rq *q = r->heap[0];
                if (q->state == RQ_UDP)
                        res_udp_timeout(r, q);
                else if (q->state == RQ_LOST)
                        res_fail(r, q, res_fail_err(q));
                else
                        res_fail(r, q, DM_ETIMEDOUT);
        }
}

/* ---- the FIFO ---- */

/* The first server from `first` on that is up and whose window has room. */
static bool res_server_room(const struct dm_resolver *r, size_t first, size_t *ret_server)
{
        for (size_t k = 0; k < r->nservers; k++) {
                size_t i = (first + k) % r->nservers;
                if (!r->servers[i].down &&
                    r->servers[i].inflight < dm_dns_window_size(&r->servers[i].win)) {
                        *ret_server = i;
                        return true;
                }
        }
        return false;
}

/* Retransmits lost queries while windows have room, each to the server after the one it
 * last went to. The id stays, so a late answer to an earlier try still matches. */
static void res_send_lost(struct dm_resolver *r)
{
        while (r->lhead) {
                struct rq *q = r->lhead;
                size_t si;
                if (r->qps > 0 && r->tokens < 1.0)
                        break;
                if (!res_server_room(r, (q->server + 1u) % r->nservers, &si))
                        break;
                res_lost_unlink(r, q);
                si = res_refile(r, q, si);
                q->server = (uint8_t)si;
                q->state = RQ_UDP;
                r->servers[si].inflight++;
                r->inflight++;
                r->stats.retransmits++;
                q->tries++;
                res_udp_send(r, q);
                q->timer_at = res_retry_at(r, q);
                res_heap_fix(r, q);
        }
}

/* Every server is down: lookups waiting for a window fail now instead of at the end of
 * their budget. Only those waiting when this starts: a callback may queue more, which fail
 * on the next pass (a callback that always queues again cannot keep this loop going). */
static void res_fail_waiting(struct dm_resolver *r)
{
        size_t lost = r->nlost, queued = r->nqueued;

        while (lost-- > 0 && r->lhead)
                res_fail(r, r->lhead, r->lhead->fail ? res_fail_err(r->lhead) : DM_ESERVERSDOWN);
        while (queued-- > 0 && r->qhead) {
                struct rq *q = r->qhead;
                struct dm_dns_answer a = {.status = DM_RRS_ERROR, .err = DM_ESERVERSDOWN};
                r->qhead = q->next;
                if (!r->qhead)
                        r->qtail = NULL;
                r->nqueued--;
                q->next = NULL;
                res_report(r, q, &a);
        }
}

static void res_send_queued(struct dm_resolver *r)
{
        res_tokens_refill(r);
        if (res_all_down(r)) {
                res_fail_waiting(r);
                return;
        }
        res_send_lost(r);
        /* New queries only once every lost one is back in flight: inflight + nlost never
         * exceeds concurrency (the heap is sized for it). */
        while (r->qhead && !r->lhead && r->inflight < r->concurrency) {
                size_t si;
                if (r->qps > 0 && r->tokens < 1.0)
                        break;
                if (!res_server_room(r, r->next_server, &si))
                        break;
                r->next_server = (si + 1) % r->nservers;
                struct rq *q = r->qhead;
                r->qhead = q->next;
                if (!r->qhead)
                        r->qtail = NULL;
                r->nqueued--;
                q->next = NULL;
                q->server = (uint8_t)si;
                q->state = RQ_UDP;
                q->deadline = r->now + r->timeout_us;
                q->timer_at = q->deadline;
                r->servers[si].inflight++;
                r->inflight++;
                res_heap_push(r, q);
                if (res_register(r, q, r->servers[si].family)) {
                        res_fail(r, q, DM_EAGAIN);
                        continue;
                }
                q->tries++;
                res_udp_send(r, q);
                q->timer_at = res_retry_at(r, q);
                res_heap_fix(r, q);
        }
}

/* ---- the loop ---- */

/* When the loop next has something to do on its own (0: only on socket activity). */
static int64_t res_next_wake(const struct dm_resolver *r)
{
        int64_t next = 0;
        if (r->nheap > 0)
                next = r->heap[0]->timer_at;
        for (size_t i = 0; i < r->nservers; i++) {
                const struct res_server *s = &r->servers[i];
                if (s->down && (next == 0 || s->probe_at < next))
                        next = s->probe_at;
        }
        if ((r->qhead || r->lhead) && r->qps > 0 && r->tokens < 1.0) {
                int64_t t = r->now + (int64_t)((1.0 - r->tokens) * 1e6 / r->qps) + 1;
                if (next == 0 || t < next)
                        next = t;
        }
        return next;
}

static void res_timerfd_set(struct dm_resolver *r, int64_t at)
{
        struct itimerspec its = {0};
        if (at > 0) {
                its.it_value.tv_sec = at / 1000000;
                its.it_value.tv_nsec = (at % 1000000) * 1000;
        }
        if (timerfd_settime(r->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
                r->armed_at = at;
}

/* Keeps the timerfd (and so the epoll fd) due when the loop next has work, for callers
 * that embed dm_resolver_fd in their own loop. */
static void res_timerfd_arm(struct dm_resolver *r)
{
        int64_t next = res_next_wake(r);
        if (next == 0) {
                if (r->armed_at)
                        res_timerfd_set(r, 0);
                return;
        }
        if (r->armed_at && r->armed_at <= next && r->armed_at > r->now)
                return; /* an earlier expiry is pending; the run it causes re-arms */
        res_timerfd_set(r, next);
}

static void res_dispatch(struct dm_resolver *r, const struct epoll_event *ev)
{
        uint64_t tag = ev->data.u64 & 3u;
        size_t idx = (size_t)(ev->data.u64 >> 2);
        if (tag == RES_TAG_UDP) {
                res_udp_read(r, idx);
        } else if (tag == RES_TAG_PROBE) {
                r->now = res_clock();
                res_probe_read(r, idx);
        } else if (tag == RES_TAG_TCP) {
                r->now = res_clock();
                res_tcp_event(r, idx, ev->events);
        } else if (tag == RES_TAG_TIMER) {
                uint64_t expirations;
                if (read(r->tfd, &expirations, sizeof(expirations)) < 0)
                        return; /* EAGAIN: already consumed */
                r->armed_at = 0;
        }
}

/* Timers run only after the sockets were read: a loop that was off the CPU for longer
 * than an RTO must find the answers waiting for it, not retransmit every query. */
static void res_work(struct dm_resolver *r, bool timers)
{
        r->now = res_clock();
        if (timers) {
                res_timers(r);
                res_probes(r);
        }
        res_tcp_pump(r);
        res_send_queued(r);
        res_batch_flush(r);
        res_sock_sweep(r);
}

int dm_resolver_run(struct dm_resolver *r, int timeout_ms)
{
        struct epoll_event events[RES_EVENTS];

        r->in_run = true;
        r->finished = 0;
        res_work(r, false);

        int wait_ms = timeout_ms < 0 ? -1 : timeout_ms;
        int64_t next = res_next_wake(r);
        if (next) {
                int64_t ms = next > r->now ? (next - r->now + 999) / 1000 : 0;
                if (wait_ms < 0 || ms < wait_ms)
                        wait_ms = (int)ms;
        }
        if (r->finished)
                wait_ms = 0;
        int n = epoll_wait(r->epfd, events, RES_EVENTS, wait_ms);
        if (n < 0 && errno != EINTR) {
                int err = -errno;
                r->in_run = false;
                return err;
        }
        for (int i = 0; i < n; i++)
                res_dispatch(r, &events[i]);
        res_work(r, true);
        res_timerfd_arm(r);
        r->in_run = false;
        return r->finished;
}

int dm_resolver_query(struct dm_resolver *r, const char *name, uint16_t type, dm_resolve_cb cb,
                      void *arg)
{
        uint8_t wire[DM_DNS_NAME_MAX];
        size_t wlen;

        if (!r || !name || !cb || type == 0)
                return DM_EINVAL;
        if (dm_dns_name_from_text(name, wire, &wlen))
                return DM_EINVAL;
        struct rq *q = malloc(sizeof(*q) + wlen);
        if (!q)
                return DM_ENOMEM;
        memset(q, 0, sizeof(*q));
        q->cb = cb;
        q->arg = arg;
        q->type = type;
        q->state = RQ_QUEUED;
        q->qlen = (uint8_t)wlen;
        memcpy(q->qname, wire, wlen);
        res_case_mix(r, q);
        if (r->qtail)
                r->qtail->next = q;
        else
                r->qhead = q;
        r->qtail = q;
        r->nqueued++;
        if (!r->in_run) {
                /* Make the fd readable now: there is something to send. */
                r->now = res_clock();
                if (r->armed_at == 0 || r->armed_at > r->now)
                        res_timerfd_set(r, r->now);
        }
        return 0;
}

size_t dm_resolver_pending(const struct dm_resolver *r)
{
        return r->nqueued + r->inflight + r->nlost;
}

int dm_resolver_fd(const struct dm_resolver *r)
{
        return r->epfd;
}

void dm_resolver_get_stats(const struct dm_resolver *r, struct dm_resolver_stats *ret_stats)
{
        struct dm_resolver_stats st = r->stats;
        uint64_t w = 0;
        for (size_t i = 0; i < r->nservers; i++) {
                const struct dm_dns_window *win = &r->servers[i].win;
                w += dm_dns_window_size(win);
                double loss = dm_dns_window_loss_rate(win);
                if (loss > st.loss_rate)
                        st.loss_rate = loss;
                if (win->min_rtt > 0 && (st.min_rtt_us == 0 || win->min_rtt < st.min_rtt_us))
                        st.min_rtt_us = win->min_rtt;
                st.window_cuts += win->cuts;
        }
        st.window = w > INT_MAX ? INT_MAX : (int)w;
        st.sockets = (int)(r->fam_count[RES_V4] + r->fam_count[RES_V6]);
        for (size_t i = 0; i < r->nservers; i++) {
                const struct res_server *s = &r->servers[i];
                if (s->down) {
                        st.servers_down++;
                        st.down_mask |= 1u << i;
                }
                if (s->no_edns)
                        st.no_edns_mask |= 1u << i;
                if (s->no_case)
                        st.no_case_mask |= 1u << i;
        }
        *ret_stats = st;
}

/* ---- set-up ---- */

/* Out of file descriptors after the first socket, the pool stays smaller (stats.sockets
 * tells): fewer ports beat a resolver that cannot start on a host with a low limit. */
static int res_open_sockets(struct dm_resolver *r, enum res_family fam, size_t count)
{
        for (size_t i = 0; i < count; i++) {
                size_t slot = (size_t)fam * RES_SLOTS + i;
                int ret = res_sock_open(r, fam, slot);
                if (ret && i > 0 && (ret == -EMFILE || ret == -ENFILE))
                        return 0;
                if (ret)
                        return ret;
                r->active[fam][i] = (uint16_t)slot;
                r->fam_count[fam] = i + 1;
        }
        return 0;
}

int dm_resolver_new(const struct dm_resolver_opts *opts, struct dm_resolver **ret_resolver)
{
        struct dm_resolver *r;
        bool used[RES_NFAMILIES] = {false, false};
        int ret;

        if (!opts || opts->nservers == 0 || opts->nservers > DM_RESOLVER_MAX_SERVERS ||
            opts->timeout_ms <= 0 || opts->retries < 0 || opts->concurrency <= 0 || opts->qps < 0 ||
            opts->nsockets < 0)
                return DM_EINVAL;
        for (size_t i = 0; i < opts->nservers; i++) {
                int fam = opts->servers[i].ss_family;
                if ((fam == AF_INET && opts->server_lens[i] < sizeof(struct sockaddr_in)) ||
                    (fam == AF_INET6 && opts->server_lens[i] < sizeof(struct sockaddr_in6)) ||
                    (fam != AF_INET && fam != AF_INET6))
                        return DM_EINVAL;
        }

        r = calloc(1, sizeof(*r));
        if (!r)
                return DM_ENOMEM;
        r->epfd = -1;
        r->tfd = -1;
        for (size_t i = 0; i < RES_TCP_MAX; i++)
                r->tcp[i].fd = -1;
        for (size_t i = 0; i < RES_NFAMILIES * RES_SLOTS; i++)
                r->socks[i].fd = -1;
        for (size_t i = 0; i < DM_RESOLVER_MAX_SERVERS; i++)
                r->servers[i].probe_fd = -1;

        size_t nsock = opts->nsockets > 0 ? (size_t)opts->nsockets : RES_DEFAULT_SOCKETS;
        if (nsock > RES_MAX_SOCKETS)
                nsock = RES_MAX_SOCKETS;
        r->nservers = opts->nservers;
        r->timeout_us = (int64_t)opts->timeout_ms * 1000;
        r->retries = opts->retries > RES_MAX_RETRIES ? RES_MAX_RETRIES : opts->retries;
        r->concurrency = (size_t)opts->concurrency;
        if (r->concurrency > nsock * RES_IDS_PER_SOCKET)
                r->concurrency = nsock * RES_IDS_PER_SOCKET;
        r->qps = opts->qps;
        r->answer_flags = opts->authoritative_only ? DM_DNS_ANSWER_AUTH_ONLY : 0;
        r->burst = opts->qps / 20 > 1 ? opts->qps / 20 : 1;
        r->tokens = r->burst;
        r->now = res_clock();
        r->tokens_at = r->now;
        for (size_t i = 0; i < r->nservers; i++) {
                struct res_server *s = &r->servers[i];
                memcpy(&s->addr, &opts->servers[i], sizeof(s->addr));
                s->addrlen = opts->server_lens[i];
                s->family = s->addr.ss_family == AF_INET ? RES_V4 : RES_V6;
                dm_dns_window_init(&s->win, (uint32_t)r->concurrency, r->now);
                used[s->family] = true;
        }

        size_t nbuckets = 64;
        r->hash_shift = 26;
        while (nbuckets < 2 * r->concurrency) {
                nbuckets *= 2;
                r->hash_shift--;
        }
        r->buckets = calloc(nbuckets, sizeof(*r->buckets));
        r->heap = malloc(r->concurrency * sizeof(*r->heap));
        r->rbufs = malloc((size_t)RES_BATCH * RES_RECV_SIZE);
        if (!r->buckets || !r->heap || !r->rbufs) {
                ret = DM_ENOMEM;
                goto out_free;
        }
        for (size_t i = 0; i < RES_BATCH; i++) {
                r->riov[i].iov_base = r->rbufs + i * RES_RECV_SIZE;
                r->riov[i].iov_len = RES_RECV_SIZE;
                r->rmsgs[i].msg_hdr.msg_iov = &r->riov[i];
                r->rmsgs[i].msg_hdr.msg_iovlen = 1;
                r->rmsgs[i].msg_hdr.msg_name = &r->rfrom[i];
                r->out.iov[i].iov_base = r->out.pkts[i];
                r->out.msgs[i].msg_hdr.msg_iov = &r->out.iov[i];
                r->out.msgs[i].msg_hdr.msg_iovlen = 1;
        }

        r->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (r->epfd < 0) {
                ret = -errno;
                goto out_free;
        }
        r->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (r->tfd < 0) {
                ret = -errno;
                goto out_free;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = RES_TAG_TIMER};
        if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->tfd, &ev) < 0) {
                ret = -errno;
                goto out_free;
        }
        for (int fam = 0; fam < RES_NFAMILIES; fam++) {
                if (!used[fam])
                        continue;
                ret = res_open_sockets(r, (enum res_family)fam, nsock);
                if (ret)
                        goto out_free;
                if (r->concurrency > r->fam_count[fam] * RES_IDS_PER_SOCKET)
                        r->concurrency = r->fam_count[fam] * RES_IDS_PER_SOCKET;
        }
        *ret_resolver = r;
        return 0;

out_free:
        dm_resolver_free(r); /* undoes whatever part was set up */
        return ret;
}

void dm_resolver_free(struct dm_resolver *r)
{
        if (!r)
                return;
        while (r->qhead) {
                struct rq *q = r->qhead;
                r->qhead = q->next;
                free(q);
        }
        for (size_t i = 0; i < r->nheap; i++)
                free(r->heap[i]);
        for (size_t i = 0; i < RES_TCP_MAX; i++) {
                if (r->tcp[i].fd >= 0)
                        close(r->tcp[i].fd);
                free(r->tcp[i].in);
        }
        for (size_t i = 0; i < RES_NFAMILIES * RES_SLOTS; i++)
                if (r->socks[i].fd >= 0)
                        close(r->socks[i].fd);
        for (size_t i = 0; i < r->nservers; i++)
                res_probe_close(&r->servers[i]);
        if (r->tfd >= 0)
                close(r->tfd);
        if (r->epfd >= 0)
                close(r->epfd);
        free(r->buckets);
        free(r->heap);
        free(r->rbufs);
        free(r);
}

/* ---- server lists ---- */

static void res_err(char *err, size_t errlen, const char *what, const char *item, size_t n)
{
        if (err && errlen)
                snprintf(err, errlen, "%s: \"%.*s\"", what, (int)(n > 64 ? 64 : n), item);
}

static int res_parse_port(const char *s, size_t n, uint16_t *ret_port)
{
        uint32_t v = 0;
        if (n == 0 || n > 5)
                return DM_EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return DM_EINVAL;
                v = v * 10 + (uint32_t)(s[i] - '0');
        }
        if (v == 0 || v > 65535)
                return DM_EINVAL;
        *ret_port = (uint16_t)v;
        return 0;
}

/* One address: "1.2.3.4", "1.2.3.4:53", "::1", "[::1]", "[::1]:53". */
static int res_parse_addr(const char *item, size_t n, struct sockaddr_storage *ret_addr,
                          socklen_t *ret_len, const char **ret_why)
{
        char host[INET6_ADDRSTRLEN];
        const char *h = item;
        size_t hlen = n;
        uint16_t port = 53;
        const char *colon = memchr(item, ':', n);

        if (n > 0 && item[0] == '[') {
                const char *close = memchr(item, ']', n);
                if (!close) {
                        *ret_why = "missing ']'";
                        return DM_EINVAL;
                }
                h = item + 1;
                hlen = (size_t)(close - h);
                size_t rest = n - (size_t)(close + 1 - item);
                if (rest > 0 && (close[1] != ':' || res_parse_port(close + 2, rest - 1, &port))) {
                        *ret_why = "bad port";
                        return DM_EINVAL;
                }
        } else if (colon && !memchr(colon + 1, ':', n - (size_t)(colon + 1 - item))) {
                h = item;
                hlen = (size_t)(colon - item);
                if (res_parse_port(colon + 1, n - hlen - 1, &port)) {
                        *ret_why = "bad port";
                        return DM_EINVAL;
                }
        }
        if (memchr(h, '%', hlen)) {
                *ret_why = "scoped IPv6 addresses are not supported";
                return DM_EINVAL;
        }
        if (hlen == 0 || hlen >= sizeof(host)) {
                *ret_why = "bad address";
                return DM_EINVAL;
        }
        memcpy(host, h, hlen);
        host[hlen] = '\0';

        struct sockaddr_storage ss = {0};
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
                a4->sin_family = AF_INET;
                a4->sin_port = htons(port);
                *ret_len = sizeof(*a4);
        } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
                a6->sin6_family = AF_INET6;
                a6->sin6_port = htons(port);
                *ret_len = sizeof(*a6);
        } else {
                *ret_why = "bad address";
                return DM_EINVAL;
        }
        *ret_addr = ss;
        return 0;
}

static bool res_space(char ch)
{
        return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

int dm_resolver_parse_servers(const char *list, char *err, size_t errlen,
                              struct dm_resolver_opts *opts)
{
        struct sockaddr_storage addrs[DM_RESOLVER_MAX_SERVERS];
        socklen_t lens[DM_RESOLVER_MAX_SERVERS];
        size_t n = 0;
        const char *p = list;

        if (!list) {
                res_err(err, errlen, "no servers", "", 0);
                return DM_EINVAL;
        }
        for (;;) {
                const char *end = strchr(p, ',');
                size_t len = end ? (size_t)(end - p) : strlen(p);
                const char *item = p;
                while (len > 0 && res_space(item[0])) {
                        item++;
                        len--;
                }
                while (len > 0 && res_space(item[len - 1]))
                        len--;
                if (len == 0) {
                        res_err(err, errlen, "empty server in list", list, strlen(list));
                        return DM_EINVAL;
                }
                if (n == DM_RESOLVER_MAX_SERVERS) {
                        res_err(err, errlen, "more than 8 servers", list, strlen(list));
                        return DM_EINVAL;
                }
                const char *why = NULL;
                if (res_parse_addr(item, len, &addrs[n], &lens[n], &why)) {
                        res_err(err, errlen, why, item, len);
                        return DM_EINVAL;
                }
                n++;
                if (!end)
                        break;
                p = end + 1;
        }
        memcpy(opts->servers, addrs, n * sizeof(addrs[0]));
        memcpy(opts->server_lens, lens, n * sizeof(lens[0]));
        opts->nservers = n;
        return 0;
}

int dm_resolver_servers_from_resolv_conf(const char *path, struct dm_resolver_opts *opts)
{
        struct sockaddr_storage addrs[DM_RESOLVER_MAX_SERVERS];
        socklen_t lens[DM_RESOLVER_MAX_SERVERS];
        size_t n = 0;
        char line[1024];
        bool partial = false;

        FILE *f = fopen(path, "re");
        if (!f)
                return errno == ENOENT ? DM_ENOENT : -errno;
        while (fgets(line, sizeof(line), f)) {
                size_t len = strlen(line);
                bool whole = len > 0 && line[len - 1] == '\n';
                bool skip = partial; /* the tail of an over-long line */
                partial = !whole;
                if (skip)
                        continue;
                char *s = line;
                while (res_space(*s))
                        s++;
                if (strncmp(s, "nameserver", 10) != 0 || !res_space(s[10]))
                        continue;
                s += 10;
                while (res_space(*s))
                        s++;
                size_t alen = 0;
                while (s[alen] && !res_space(s[alen]) && s[alen] != '#' && s[alen] != ';')
                        alen++;
                /* A scoped link-local address names an interface of one host: skip it. */
                if (alen == 0 || memchr(s, '%', alen) || memchr(s, '[', alen) ||
                    n == DM_RESOLVER_MAX_SERVERS)
                        continue;
                /* resolv.conf has no ports: a bare address, IPv6 or IPv4. */
                const char *why = NULL;
                char bracket[INET6_ADDRSTRLEN + 2];
                if (alen + 2 >= sizeof(bracket))
                        continue;
                bracket[0] = '[';
                memcpy(bracket + 1, s, alen);
                bracket[alen + 1] = ']';
                if (res_parse_addr(bracket, alen + 2, &addrs[n], &lens[n], &why) == 0)
                        n++;
        }
        int ret = ferror(f) ? DM_EIO : 0;
        fclose(f);
        if (ret)
                return ret;
        if (n == 0)
                return DM_ENOENT;
        memcpy(opts->servers, addrs, n * sizeof(addrs[0]));
        memcpy(opts->server_lens, lens, n * sizeof(lens[0]));
        opts->nservers = n;
        return 0;
}

int dm_resolver_server_text(const struct dm_resolver_opts *opts, size_t i, char *buf, size_t len)
{
        char host[INET6_ADDRSTRLEN];
        if (!opts || i >= opts->nservers || !buf || len == 0)
                return DM_EINVAL;
        const struct sockaddr_storage *ss = &opts->servers[i];
        if (ss->ss_family == AF_INET) {
                const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
                inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
                snprintf(buf, len, "%s:%u", host, (unsigned)ntohs(a->sin_port));
        } else if (ss->ss_family == AF_INET6) {
                const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
                inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
                snprintf(buf, len, "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
        } else {
                return DM_EINVAL;
        }
        return 0;
}
