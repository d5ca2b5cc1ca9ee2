/* dm-relay: a UDP relay for tests and benchmarks that puts a bad path between a DNS client
 * and a server on loopback: a fixed delay each way, random loss each way, optional bursts of
 * loss (a Gilbert-Elliott channel: a good and a bad state), and an optional cap on answers
 * per second passed back, the excess dropped, as public resolvers do.
 *
 *   dm-relay --listen 127.0.0.1:5300 --upstream 127.0.0.1:5301 --delay 10 --loss 0.03
 *
 * Each client address (ip and port) gets its own socket towards the server, so replies find
 * their way back; a client silent for --idle seconds loses it. Delayed datagrams wait in one
 * queue per direction: the delay of a direction is fixed, so each queue is in the order its
 * datagrams are due, and one timerfd for the earliest of the two heads is the whole timer
 * queue. Datagrams are read with recvmmsg and sent with sendmmsg, 64 at a time.
 *
 * On SIGUSR1 and on exit (SIGINT, SIGTERM) it prints one line of counters to stdout. Only
 * loopback addresses are accepted: it exists to test on one host. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "dm/resolver.h"

#define RELAY_BATCH 64
#define RELAY_DGRAM_MAX 65535
#define RELAY_RING_BYTES (64u << 20) /* delayed bytes per direction, headers included */
#define RELAY_CLIENTS_MAX 4096
#define RELAY_SOCKBUF (8 << 20)
#define RELAY_READS_PER_EVENT 16 /* batches read from one socket before the others' turn */
#define RELAY_SWEEP_US 1000000   /* idle clients are looked for every second */
#define RELAY_HASH 8192          /* client table buckets (a power of two) */
#define RELAY_WRAP UINT32_MAX    /* ring entry length: the rest of the ring is unused */

#define RELAY_TAG_LISTEN 0
#define RELAY_TAG_TIMER 1
#define RELAY_TAG_SIGNAL 2
#define RELAY_TAG_CLIENT 3 /* + client index */

enum relay_dir { RELAY_UP, RELAY_DOWN }; /* towards the server, back to the client */

/* A Gilbert-Elliott channel: `enter` is the chance per datagram of going from the good state
 * to the bad one, `leave` of going back; in the bad state a datagram is lost with chance
 * `loss`. */
struct relay_burst {
        double enter, leave, loss;
        bool bad;
};

struct relay_counts {
        uint64_t received, forwarded;
        uint64_t lost;       /* random loss */
        uint64_t burst_lost; /* lost in the bad state */
        uint64_t capped;     /* above the answer rate cap */
        uint64_t overflow;   /* delay queue full, no room for a client, or a failed send */
};

/* One entry of a delay queue; the datagram follows, padded to 8 bytes. */
struct relay_entry {
        int64_t due; /* us, CLOCK_MONOTONIC */
        uint32_t client, gen;
        uint32_t len; /* RELAY_WRAP: nothing more up to the end of the ring */
        uint32_t pad;
};

/* A byte ring of entries in the order they are due. */
struct relay_ring {
        uint8_t *buf;
        size_t size, head, tail, used;
};

struct relay_dir_state {
        int64_t delay;
        double loss;
        struct relay_burst burst;
        struct relay_ring ring;
        struct relay_counts n;
};

struct relay_client {
        struct sockaddr_storage addr;
        socklen_t addrlen;
        int fd; /* connected to the upstream server; -1: a free slot */
        uint32_t gen;
        int64_t last_used;
        int32_t next; /* hash chain, or free list */
};

struct relay {
        struct sockaddr_storage listen_addr, upstream;
        socklen_t listen_len, upstream_len;
        int lfd, epfd, tfd, sfd;
        int64_t armed_at;
        struct relay_dir_state dir[2];
        double cap, cap_burst, tokens;
        int64_t tokens_at;
        int64_t idle_us, sweep_at;
        uint64_t rng;
        struct relay_client *clients;
        int32_t buckets[RELAY_HASH];
        int32_t free_head;
        uint32_t nclients;
        /* batches */
        struct mmsghdr msgs[RELAY_BATCH];
        struct iovec iov[RELAY_BATCH];
        struct sockaddr_storage from[RELAY_BATCH];
        uint8_t *bufs; /* RELAY_BATCH x RELAY_DGRAM_MAX */
};

static int64_t relay_now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* xorshift64*: fast, and the same sequence for the same --seed. */
static double relay_rand(struct relay *r)
{
        r->rng ^= r->rng >> 12;
        r->rng ^= r->rng << 25;
        r->rng ^= r->rng >> 27;
        return (double)((r->rng * 0x2545f4914f6cdd1dull) >> 11) / 9007199254740992.0;
}

/* ---- delay queues ---- */

static size_t relay_entry_size(uint32_t len)
{
        return sizeof(struct relay_entry) + (((size_t)len + 7) & ~(size_t)7);
}

static bool relay_ring_push(struct relay_ring *q, int64_t due, uint32_t client, uint32_t gen,
                            const uint8_t *data, uint32_t len)
{
        size_t need = relay_entry_size(len);
        if (q->tail + need > q->size) {
                /* Not before the end: skip what is left there. */
                size_t waste = q->size - q->tail;
                if (q->used + waste + need > q->size)
                        return false;
                if (waste >= sizeof(struct relay_entry))
                        ((struct relay_entry *)(q->buf + q->tail))->len = RELAY_WRAP;
                q->used += waste;
                q->tail = 0;
        }
        if (q->used + need > q->size)
                return false;
        struct relay_entry *e = (struct relay_entry *)(q->buf + q->tail);
        *e = (struct relay_entry){.due = due, .client = client, .gen = gen, .len = len};
        memcpy(e + 1, data, len);
        q->tail += need;
        q->used += need;
        return true;
}

static struct relay_entry *relay_ring_head(struct relay_ring *q)
{
        if (q->used == 0)
                return NULL;
        if (q->size - q->head < sizeof(struct relay_entry) ||
            ((struct relay_entry *)(q->buf + q->head))->len == RELAY_WRAP) {
                q->used -= q->size - q->head;
                q->head = 0;
        }
        return (struct relay_entry *)(q->buf + q->head);
}

static void relay_ring_pop(struct relay_ring *q)
{
        struct relay_entry *e = (struct relay_entry *)(q->buf + q->head);
        size_t need = relay_entry_size(e->len);
        q->head += need;
        q->used -= need;
        if (q->used == 0)
                q->head = q->tail = 0;
}

/* ---- clients ---- */

static uint32_t relay_addr_hash(const struct sockaddr_storage *a)
{
        uint64_t h = 1469598103934665603ull;
        const uint8_t *p;
        size_t n;
        if (a->ss_family == AF_INET) {
                const struct sockaddr_in *s = (const struct sockaddr_in *)a;
                p = (const uint8_t *)&s->sin_addr;
                n = sizeof(s->sin_addr);
                h = (h ^ s->sin_port) * 1099511628211ull;
        } else {
                const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)a;
                p = (const uint8_t *)&s->sin6_addr;
                n = sizeof(s->sin6_addr);
                h = (h ^ s->sin6_port) * 1099511628211ull;
        }
        for (size_t i = 0; i < n; i++)
                h = (h ^ p[i]) * 1099511628211ull;
        return (uint32_t)(h ^ (h >> 32)) & (RELAY_HASH - 1);
}

static bool relay_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
        if (a->ss_family != b->ss_family)
                return false;
        if (a->ss_family == AF_INET) {
                const struct sockaddr_in *x = (const struct sockaddr_in *)a;
                const struct sockaddr_in *y = (const struct sockaddr_in *)b;
                return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
        }
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

static void relay_sockbufs(int fd)
{
        int size = RELAY_SOCKBUF;
        /* Beyond net.core.rmem_max needs CAP_NET_ADMIN; without it, take what is allowed. */
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
                setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
}

/* The client slot for a source address, made on first sight: a socket connected to the
 * server, so that only its replies arrive there. -1 when there is no room or no socket. */
static int32_t relay_client(struct relay *r, const struct sockaddr_storage *from, socklen_t len,
                            int64_t now)
{
        uint32_t h = relay_addr_hash(from);
        for (int32_t i = r->buckets[h]; i >= 0; i = r->clients[i].next) {
                if (relay_addr_equal(&r->clients[i].addr, from)) {
                        r->clients[i].last_used = now;
                        return i;
                }
        }
        if (r->free_head < 0)
                return -1;
        int fd = socket(r->upstream.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        relay_sockbufs(fd);
        if (connect(fd, (const struct sockaddr *)&r->upstream, r->upstream_len) < 0) {
                close(fd);
                return -1;
        }
        int32_t i = r->free_head;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = RELAY_TAG_CLIENT + (uint64_t)i};
        if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                close(fd);
                return -1;
        }
        struct relay_client *c = &r->clients[i];
        r->free_head = c->next;
        memcpy(&c->addr, from, len);
        c->addrlen = len;
        c->fd = fd;
        c->gen++;
        c->last_used = now;
        c->next = r->buckets[h];
        r->buckets[h] = i;
        r->nclients++;
        return i;
}

static void relay_client_drop(struct relay *r, int32_t i)
{
        struct relay_client *c = &r->clients[i];
        uint32_t h = relay_addr_hash(&c->addr);
        for (int32_t *p = &r->buckets[h]; *p >= 0; p = &r->clients[*p].next) {
                if (*p == i) {
                        *p = c->next;
                        break;
                }
        }
        close(c->fd); /* also leaves the epoll set */
        c->fd = -1;
        c->gen++; /* what is still queued for it is dropped when due */
        c->next = r->free_head;
        r->free_head = i;
        r->nclients--;
}

static void relay_sweep(struct relay *r, int64_t now)
{
        if (now < r->sweep_at)
                return;
        r->sweep_at = now + RELAY_SWEEP_US;
        for (int32_t i = 0; i < RELAY_CLIENTS_MAX; i++)
                if (r->clients[i].fd >= 0 && now - r->clients[i].last_used > r->idle_us)
                        relay_client_drop(r, i);
}

/* ---- the path ---- */

/* Whether a datagram survives one direction of the path. */
static bool relay_pass(struct relay *r, struct relay_dir_state *d)
{
        struct relay_burst *b = &d->burst;
        if (b->enter > 0) {
                if (b->bad ? relay_rand(r) < b->leave : relay_rand(r) < b->enter)
                        b->bad = !b->bad;
                if (b->bad && relay_rand(r) < b->loss) {
                        d->n.burst_lost++;
                        return false;
                }
        }
        if (d->loss > 0 && relay_rand(r) < d->loss) {
                d->n.lost++;
                return false;
        }
        return true;
}

/* Answers above the cap are dropped, as a resolver limiting a client does. */
static bool relay_under_cap(struct relay *r, int64_t now)
{
        if (r->cap <= 0)
                return true;
        r->tokens += (double)(now - r->tokens_at) * r->cap / 1e6;
        if (r->tokens > r->cap_burst)
                r->tokens = r->cap_burst;
        r->tokens_at = now;
        if (r->tokens < 1.0) {
                r->dir[RELAY_DOWN].n.capped++;
                return false;
        }
        r->tokens -= 1.0;
        return true;
}

static void relay_enqueue(struct relay *r, enum relay_dir dir, int32_t client, const uint8_t *pkt,
                          uint32_t len, int64_t now)
{
        struct relay_dir_state *d = &r->dir[dir];
        if (!relay_ring_push(&d->ring, now + d->delay, (uint32_t)client, r->clients[client].gen,
                             pkt, len))
                d->n.overflow++;
}

static void relay_prepare_recv(struct relay *r)
{
        for (int i = 0; i < RELAY_BATCH; i++) {
                r->iov[i].iov_base = r->bufs + (size_t)i * RELAY_DGRAM_MAX;
                r->iov[i].iov_len = RELAY_DGRAM_MAX;
                r->msgs[i].msg_hdr = (struct msghdr){.msg_name = &r->from[i],
                                                     .msg_namelen = sizeof(r->from[i]),
                                                     .msg_iov = &r->iov[i],
                                                     .msg_iovlen = 1};
        }
}

/* Queries from clients. */
static void relay_read_listen(struct relay *r, int64_t now)
{
        for (int round = 0; round < RELAY_READS_PER_EVENT; round++) {
                relay_prepare_recv(r);
                int n = recvmmsg(r->lfd, r->msgs, RELAY_BATCH, MSG_DONTWAIT, NULL);
                if (n <= 0)
                        return;
                for (int i = 0; i < n; i++) {
                        struct relay_dir_state *d = &r->dir[RELAY_UP];
                        d->n.received++;
                        int32_t c =
                            relay_client(r, &r->from[i], r->msgs[i].msg_hdr.msg_namelen, now);
                        if (c < 0) {
                                d->n.overflow++;
                                continue;
                        }
                        if (relay_pass(r, d))
                                relay_enqueue(r, RELAY_UP, c, r->iov[i].iov_base,
                                              r->msgs[i].msg_len, now);
                }
                if (n < RELAY_BATCH)
                        return;
        }
}

/* Answers from the server to one client's socket. */
static void relay_read_upstream(struct relay *r, int32_t c, int64_t now)
{
        if (c < 0 || c >= RELAY_CLIENTS_MAX || r->clients[c].fd < 0)
                return;
        for (int round = 0; round < RELAY_READS_PER_EVENT; round++) {
                relay_prepare_recv(r);
                int n = recvmmsg(r->clients[c].fd, r->msgs, RELAY_BATCH, MSG_DONTWAIT, NULL);
                if (n <= 0)
                        return;
                r->clients[c].last_used = now;
                for (int i = 0; i < n; i++) {
                        struct relay_dir_state *d = &r->dir[RELAY_DOWN];
                        d->n.received++;
                        if (relay_under_cap(r, now) && relay_pass(r, d))
                                relay_enqueue(r, RELAY_DOWN, c, r->iov[i].iov_base,
                                              r->msgs[i].msg_len, now);
                }
                if (n < RELAY_BATCH)
                        return;
        }
}

/* Sends a batch on fd; what the kernel does not take is counted as overflow. */
static void relay_send(struct relay *r, int fd, unsigned n, struct relay_counts *cnt)
{
        unsigned off = 0;
        while (off < n) {
                int k = sendmmsg(fd, r->msgs + off, n - off, 0);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        cnt->overflow++;
                        off++;
                        continue;
                }
                cnt->forwarded += (uint64_t)k;
                off += (unsigned)k;
        }
}

/* Sends everything due in one direction. Up: consecutive datagrams of one client share a
 * batch on its socket. Down: any clients, through the listening socket. */
static void relay_release(struct relay *r, enum relay_dir dir, int64_t now)
{
        struct relay_dir_state *d = &r->dir[dir];
        for (;;) {
                unsigned n = 0;
                int fd = -1;
                struct relay_entry *e;
                while (n < RELAY_BATCH && (e = relay_ring_head(&d->ring)) && e->due <= now) {
                        struct relay_client *c = &r->clients[e->client];
                        if (c->fd < 0 || c->gen != e->gen) {
                                d->n.overflow++; /* its client expired meanwhile */
                                relay_ring_pop(&d->ring);
                                continue;
                        }
                        if (dir == RELAY_UP && n > 0 && c->fd != fd)
                                break;
                        fd = dir == RELAY_UP ? c->fd : r->lfd;
                        /* Copied: the ring slot is reused once popped. */
                        uint8_t *buf = r->bufs + (size_t)n * RELAY_DGRAM_MAX;
                        memcpy(buf, e + 1, e->len);
                        r->iov[n] = (struct iovec){.iov_base = buf, .iov_len = e->len};
                        r->msgs[n].msg_hdr =
                            (struct msghdr){.msg_name = dir == RELAY_DOWN ? &c->addr : NULL,
                                            .msg_namelen = dir == RELAY_DOWN ? c->addrlen : 0,
                                            .msg_iov = &r->iov[n],
                                            .msg_iovlen = 1};
                        n++;
                        relay_ring_pop(&d->ring);
                }
                if (n == 0)
                        return;
                relay_send(r, fd, n, &d->n);
        }
}

/* The timerfd fires when the first queued datagram is due, or for the next sweep. */
static void relay_arm(struct relay *r, int64_t now)
{
        int64_t next = r->nclients > 0 ? r->sweep_at : 0;
        for (int dir = 0; dir < 2; dir++) {
                struct relay_entry *e = relay_ring_head(&r->dir[dir].ring);
                if (e && (next == 0 || e->due < next))
                        next = e->due;
        }
        if (next == r->armed_at)
                return;
        struct itimerspec its = {0};
        if (next > 0) {
                if (next <= now)
                        next = now + 1;
                its.it_value.tv_sec = next / 1000000;
                its.it_value.tv_nsec = (next % 1000000) * 1000;
        }
        if (timerfd_settime(r->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
                r->armed_at = next;
}

static void relay_print(const struct relay *r)
{
        const struct relay_counts *u = &r->dir[RELAY_UP].n, *d = &r->dir[RELAY_DOWN].n;
        printf("dm-relay up_received=%" PRIu64 " up_forwarded=%" PRIu64 " up_lost=%" PRIu64
               " up_burst_lost=%" PRIu64 " up_overflow=%" PRIu64 " down_received=%" PRIu64
               " down_forwarded=%" PRIu64 " down_lost=%" PRIu64 " down_burst_lost=%" PRIu64
               " down_capped=%" PRIu64 " down_overflow=%" PRIu64 " clients=%" PRIu32 "\n",
               u->received, u->forwarded, u->lost, u->burst_lost, u->overflow, d->received,
               d->forwarded, d->lost, d->burst_lost, d->capped, d->overflow, r->nclients);
        fflush(stdout);
}

/* ---- set-up ---- */

static int relay_usage(FILE *f)
{
        fprintf(f,
                "usage: dm-relay --listen ADDR:PORT --upstream ADDR:PORT [options]\n"
                "  --delay MS           delay each way (also --delay-up, --delay-down)\n"
                "  --loss FRACTION      random loss each way, 0..1 (also --loss-up, --loss-down)\n"
                "  --burst E,L,LOSS     bursts of loss each way: chance per datagram to enter\n"
                "                       the bad state, to leave it, loss in it (also\n"
                "                       --burst-up, --burst-down)\n"
                "  --rate-cap N         answers per second passed back, the excess dropped\n"
                "  --rate-burst N       answers the cap lets through at once (default N/20)\n"
                "  --seed N             seed of the loss decisions (default 1)\n"
                "  --idle SECONDS       a silent client's socket is closed after this (60)\n"
                "Addresses must be on loopback. Counters on SIGUSR1 and at exit.\n");
        return f == stdout ? 0 : 2;
}

/* One line on stderr, exit status 2. */
static int relay_bad(const char *opt, const char *value, const char *why)
{
        fprintf(stderr, "dm-relay: %s \"%s\": %s (dm-relay --help)\n", opt, value, why);
        return 2;
}

static bool relay_number(const char *s, double lo, double hi, double *ret)
{
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
                return false;
        *ret = v;
        return true;
}

static bool relay_burst_parse(const char *s, struct relay_burst *ret)
{
        double v[3];
        const char *p = s;
        for (int i = 0; i < 3; i++) {
                char *end;
                errno = 0;
                v[i] = strtod(p, &end);
                if (errno || end == p || !isfinite(v[i]) || v[i] < 0 || v[i] > 1)
                        return false;
                if (i < 2 && *end != ',')
                        return false;
                if (i == 2 && *end)
                        return false;
                p = end + 1;
        }
        if (v[0] <= 0 || v[1] <= 0)
                return false;
        *ret = (struct relay_burst){.enter = v[0], .leave = v[1], .loss = v[2]};
        return true;
}

static bool relay_loopback(const struct sockaddr_storage *a)
{
        if (a->ss_family == AF_INET)
                return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
        const struct in6_addr *x = &((const struct sockaddr_in6 *)a)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(x) || (IN6_IS_ADDR_V4MAPPED(x) && x->s6_addr[12] == 127);
}

/* One address in the syntax of DM_DNS_SERVERS, on loopback. */
static int relay_addr(const char *opt, const char *value, struct sockaddr_storage *ret,
                      socklen_t *ret_len)
{
        struct dm_resolver_opts o;
        char why[128];
        memset(&o, 0, sizeof(o));
        if (dm_resolver_parse_servers(value, why, sizeof(why), &o) < 0)
                return relay_bad(opt, value, why);
        if (o.nservers != 1)
                return relay_bad(opt, value, "one address expected");
        if (!relay_loopback(&o.servers[0]))
                return relay_bad(opt, value, "not a loopback address");
        *ret = o.servers[0];
        *ret_len = o.server_lens[0];
        return 0;
}

enum {
        OPT_LISTEN = 256,
        OPT_UPSTREAM,
        OPT_DELAY,
        OPT_DELAY_UP,
        OPT_DELAY_DOWN,
        OPT_LOSS,
        OPT_LOSS_UP,
        OPT_LOSS_DOWN,
        OPT_BURST,
        OPT_BURST_UP,
        OPT_BURST_DOWN,
        OPT_RATE_CAP,
        OPT_RATE_BURST,
        OPT_SEED,
        OPT_IDLE,
        OPT_HELP,
};

static const struct option relay_options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"upstream", required_argument, NULL, OPT_UPSTREAM},
    {"delay", required_argument, NULL, OPT_DELAY},
    {"delay-up", required_argument, NULL, OPT_DELAY_UP},
    {"delay-down", required_argument, NULL, OPT_DELAY_DOWN},
    {"loss", required_argument, NULL, OPT_LOSS},
    {"loss-up", required_argument, NULL, OPT_LOSS_UP},
    {"loss-down", required_argument, NULL, OPT_LOSS_DOWN},
    {"burst", required_argument, NULL, OPT_BURST},
    {"burst-up", required_argument, NULL, OPT_BURST_UP},
    {"burst-down", required_argument, NULL, OPT_BURST_DOWN},
    {"rate-cap", required_argument, NULL, OPT_RATE_CAP},
    {"rate-burst", required_argument, NULL, OPT_RATE_BURST},
    {"seed", required_argument, NULL, OPT_SEED},
    {"idle", required_argument, NULL, OPT_IDLE},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static int relay_parse(struct relay *r, int argc, char **argv)
{
        bool have_listen = false, have_upstream = false;
        double v;
        struct relay_burst b;
        int ret;

        opterr = 0;
        for (;;) {
                int idx = 0;
                int o = getopt_long(argc, argv, "", relay_options, &idx);
                if (o == -1)
                        break;
                const char *name =
                    o >= OPT_LISTEN && o < OPT_HELP ? relay_options[o - OPT_LISTEN].name : "";
                char opt[32];
                snprintf(opt, sizeof(opt), "--%s", name);
                switch (o) {
                case OPT_LISTEN:
                        if ((ret = relay_addr(opt, optarg, &r->listen_addr, &r->listen_len)))
                                return ret;
                        have_listen = true;
                        break;
                case OPT_UPSTREAM:
                        if ((ret = relay_addr(opt, optarg, &r->upstream, &r->upstream_len)))
                                return ret;
                        have_upstream = true;
                        break;
                case OPT_DELAY:
                case OPT_DELAY_UP:
                case OPT_DELAY_DOWN:
                        if (!relay_number(optarg, 0, 60000, &v))
                                return relay_bad(opt, optarg, "not milliseconds in 0..60000");
                        if (o != OPT_DELAY_DOWN)
                                r->dir[RELAY_UP].delay = (int64_t)llround(v * 1000);
                        if (o != OPT_DELAY_UP)
                                r->dir[RELAY_DOWN].delay = (int64_t)llround(v * 1000);
                        break;
                case OPT_LOSS:
                case OPT_LOSS_UP:
                case OPT_LOSS_DOWN:
                        if (!relay_number(optarg, 0, 1, &v))
                                return relay_bad(opt, optarg, "not a fraction in 0..1");
                        if (o != OPT_LOSS_DOWN)
                                r->dir[RELAY_UP].loss = v;
                        if (o != OPT_LOSS_UP)
                                r->dir[RELAY_DOWN].loss = v;
                        break;
                case OPT_BURST:
                case OPT_BURST_UP:
                case OPT_BURST_DOWN:
                        if (!relay_burst_parse(optarg, &b))
                                return relay_bad(opt, optarg,
                                                 "not ENTER,LEAVE,LOSS (fractions in 0..1, "
                                                 "ENTER and LEAVE above 0)");
                        if (o != OPT_BURST_DOWN)
                                r->dir[RELAY_UP].burst = b;
                        if (o != OPT_BURST_UP)
                                r->dir[RELAY_DOWN].burst = b;
                        break;
                case OPT_RATE_CAP:
                        if (!relay_number(optarg, 1, 1e9, &v))
                                return relay_bad(opt, optarg, "not answers per second >= 1");
                        r->cap = v;
                        break;
                case OPT_RATE_BURST:
                        if (!relay_number(optarg, 1, 1e9, &v))
                                return relay_bad(opt, optarg, "not a number of answers >= 1");
                        r->cap_burst = v;
                        break;
                case OPT_SEED:
                        if (!relay_number(optarg, 0, 9007199254740992.0, &v) || v != floor(v))
                                return relay_bad(opt, optarg, "not a whole number >= 0");
                        r->rng = (uint64_t)v;
                        break;
                case OPT_IDLE:
                        if (!relay_number(optarg, 0.001, 86400, &v))
                                return relay_bad(opt, optarg, "not seconds in 0.001..86400");
                        r->idle_us = (int64_t)llround(v * 1e6);
                        break;
                case OPT_HELP:
                        relay_usage(stdout);
                        return 1;
                default: {
                        const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
                        fprintf(stderr, "dm-relay: %s: %s (dm-relay --help)\n", arg,
                                optopt ? "needs a value" : "unknown option");
                        return 2;
                }
                }
        }
        if (optind < argc) {
                fprintf(stderr, "dm-relay: \"%s\": unexpected argument (dm-relay --help)\n",
                        argv[optind]);
                return 2;
        }
        if (!have_listen || !have_upstream) {
                fprintf(stderr, "dm-relay: --listen and --upstream are required (dm-relay "
                                "--help)\n");
                return 2;
        }
        if (r->cap > 0 && r->cap_burst <= 0)
                r->cap_burst = r->cap / 20 > 1 ? r->cap / 20 : 1;
        return 0;
}

static int relay_open(struct relay *r)
{
        r->lfd = socket(r->listen_addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (r->lfd < 0)
                return -errno;
        relay_sockbufs(r->lfd);
        if (bind(r->lfd, (const struct sockaddr *)&r->listen_addr, r->listen_len) < 0)
                return -errno;
        r->epfd = epoll_create1(EPOLL_CLOEXEC);
        r->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        sigprocmask(SIG_BLOCK, &set, NULL);
        r->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
        if (r->epfd < 0 || r->tfd < 0 || r->sfd < 0)
                return -errno;
        struct epoll_event ev = {.events = EPOLLIN};
        ev.data.u64 = RELAY_TAG_LISTEN;
        if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->lfd, &ev) < 0)
                return -errno;
        ev.data.u64 = RELAY_TAG_TIMER;
        if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->tfd, &ev) < 0)
                return -errno;
        ev.data.u64 = RELAY_TAG_SIGNAL;
        if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->sfd, &ev) < 0)
                return -errno;
        return 0;
}

/* Returns when SIGINT or SIGTERM arrives. */
static void relay_loop(struct relay *r)
{
        struct epoll_event events[64];
        for (;;) {
                int n = epoll_wait(r->epfd, events, 64, -1);
                if (n < 0 && errno != EINTR)
                        return;
                int64_t now = relay_now();
                for (int i = 0; i < n; i++) {
                        uint64_t tag = events[i].data.u64;
                        if (tag == RELAY_TAG_LISTEN) {
                                relay_read_listen(r, now);
                        } else if (tag == RELAY_TAG_TIMER) {
                                uint64_t expirations;
                                if (read(r->tfd, &expirations, sizeof(expirations)) > 0)
                                        r->armed_at = 0;
                        } else if (tag == RELAY_TAG_SIGNAL) {
                                struct signalfd_siginfo si;
                                while (read(r->sfd, &si, sizeof(si)) == sizeof(si)) {
                                        relay_print(r);
                                        if (si.ssi_signo != SIGUSR1)
                                                return;
                                }
                        } else {
                                relay_read_upstream(r, (int32_t)(tag - RELAY_TAG_CLIENT), now);
                        }
                }
                now = relay_now();
                relay_release(r, RELAY_UP, now);
                relay_release(r, RELAY_DOWN, now);
                relay_sweep(r, now);
                relay_arm(r, now);
        }
}

int main(int argc, char **argv)
{
        static struct relay relay;
        struct relay *r = &relay;
        int ret;

        r->lfd = r->epfd = r->tfd = r->sfd = -1;
        r->rng = 1;
        r->idle_us = 60 * 1000000LL;
        r->free_head = -1;
        ret = relay_parse(r, argc, argv);
        if (ret)
                return ret == 1 ? 0 : ret;
        r->rng = r->rng * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull; /* never 0 */
        if (r->rng == 0)
                r->rng = 1;

        r->clients = calloc(RELAY_CLIENTS_MAX, sizeof(*r->clients));
        r->bufs = malloc((size_t)RELAY_BATCH * RELAY_DGRAM_MAX);
        for (int dir = 0; dir < 2; dir++) {
                r->dir[dir].ring.size = RELAY_RING_BYTES;
                r->dir[dir].ring.buf = malloc(RELAY_RING_BYTES);
                if (!r->dir[dir].ring.buf)
                        goto out_nomem;
        }
        if (!r->clients || !r->bufs)
                goto out_nomem;
        for (int i = 0; i < RELAY_HASH; i++)
                r->buckets[i] = -1;
        for (int32_t i = RELAY_CLIENTS_MAX - 1; i >= 0; i--) {
                r->clients[i].fd = -1;
                r->clients[i].next = r->free_head;
                r->free_head = i;
        }
        r->tokens = r->cap_burst;
        r->tokens_at = relay_now();
        r->sweep_at = relay_now() + RELAY_SWEEP_US;

        ret = relay_open(r);
        if (ret < 0) {
                fprintf(stderr, "dm-relay: cannot listen: %s\n", strerror(-ret));
                ret = 1;
                goto out;
        }
        signal(SIGPIPE, SIG_IGN);
        printf("dm-relay ready\n");
        fflush(stdout);
        relay_loop(r);
        ret = 0;
        goto out;

out_nomem:
        fprintf(stderr, "dm-relay: out of memory\n");
        ret = 1;
out:
        for (int32_t i = 0; r->clients && i < RELAY_CLIENTS_MAX; i++)
                if (r->clients[i].fd >= 0)
                        close(r->clients[i].fd);
        if (r->lfd >= 0)
                close(r->lfd);
        if (r->epfd >= 0)
                close(r->epfd);
        if (r->tfd >= 0)
                close(r->tfd);
        if (r->sfd >= 0)
                close(r->sfd);
        free(r->clients);
        free(r->bufs);
        free(r->dir[RELAY_UP].ring.buf);
        free(r->dir[RELAY_DOWN].ring.buf);
        return ret;
}
