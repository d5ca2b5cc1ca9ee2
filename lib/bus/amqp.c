/* The RabbitMQ bus (rabbitmq-c 0.11). docs/internals/bus.md explains the topology, the
 * threads and what happens when the broker goes away; this comment is the short form.
 *
 * rabbitmq-c is not thread-safe, does not reconnect and has no helper that waits for
 * publisher confirms, so every connection here belongs to one thread (a "link"), and other
 * threads only hand it work through a mutex-guarded list and an eventfd:
 *
 *   - the publisher link: channel 1 in confirm mode for messages, channel 2 for declaring
 *     queues (a refused declaration closes its channel, and must not take confirms down
 *     with it). Callers queue requests and wait; the thread takes everything queued, sends
 *     it as one round and waits for the broker's acks, so concurrent publishers share a
 *     round trip and a batch is one round trip.
 *   - one link per consumer, one channel each, so a consumer's prefetch is its own and its
 *     handler (run on that thread) never holds up another consumer or the publisher.
 *
 * Delivery tags given to handlers are ours, not the broker's: (consumer id << 48) | a
 * per-consumer sequence number. The consumer keeps the unsettled ones (sequence -> broker
 * tag) of its current connection, so a repeated ack is refused here (the broker would close
 * the channel over it, putting back every other unacked message), and a tag from before a
 * reconnection is recognised as stale: its sequence is below the connection's first.
 *
 * Every link reconnects on its own, with a backoff from 0.1 s doubling to 5 s, declares the
 * exchange and the queues declared through this bus again, and (consumers) consumes
 * again. While the publisher link is down, publish and declare fail at once with DM_EBUS. */
#include "bus/bus_int.h"

#include "dm/error.h"
#include "dm/log.h"

#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RMQ_EXCHANGE_DEFAULT "domainmon"
#define RMQ_HEARTBEAT_DEFAULT_S 30
#define RMQ_PUBLISH_TIMEOUT_DEFAULT_S 30
#define RMQ_CONNECT_TIMEOUT_S 5
#define RMQ_RPC_TIMEOUT_S 10
#define RMQ_BACKOFF_MIN_MS 100
#define RMQ_BACKOFF_MAX_MS 5000
#define RMQ_POLL_MAX_MS 1000 /* also how often a link looks at heartbeats */
#define RMQ_JOIN_GRACE_S 10  /* then a link stuck in send() gets its socket shut down */
#define RMQ_CACERT_DEFAULT "/etc/ssl/certs/ca-certificates.crt"
#define RMQ_MAX_QUEUES 256
#define RMQ_MAX_BINDINGS 1024
#define RMQ_MAX_CONSUMERS 4096
#define RMQ_PREFETCH_MAX 65535u
/* A transient queue never consumed (its process died first) is deleted after this long
 * unused; one that had a consumer goes as soon as it has none (auto-delete). */
#define RMQ_TRANSIENT_EXPIRES_MS 60000
/* RabbitMQ refuses larger messages by default (max_message_size); larger ones are rejected
 * rather than buffered. */
#define RMQ_MAX_BODY ((size_t)128 << 20)
/* Frames read between publishes of a large round, so acks never pile up unread. */
#define RMQ_READ_EVERY 256
#define RMQ_CH 1      /* messages: confirms on the publisher, deliveries on a consumer */
#define RMQ_CH_TOPO 2 /* the publisher's declarations */
#define RMQ_SEQ_BITS 48
#define RMQ_SEQ_MASK ((UINT64_C(1) << RMQ_SEQ_BITS) - 1)

/* ---- configuration ---------------------------------------------------------------- */

struct rmq_target {
        char *host, *user, *password, *vhost, *exchange, *cacert;
        int port;
        bool ssl;
        int heartbeat_s;
        int publish_timeout_s;
};

/* ---- topology: what was declared through this bus, declared again on reconnect -------- */

struct rmq_qdef {
        char *name;
        unsigned delivery_limit;
        char *dlq; /* dead-letter queue, or NULL */
        bool transient;
        char **patterns;
        size_t npatterns;
};

/* ---- one connection and the thread that owns it ------------------------------------- */

struct rmq_bus;

struct rmq_link {
        struct rmq_bus *bus;
        const char *role;             /* "publisher" or "consumer", for logs */
        amqp_connection_state_t conn; /* owner thread only; NULL while down */
        bool broken;                  /* owner thread only: conn must be dropped */
        int efd;                      /* eventfd: other threads wake the owner */
        pthread_mutex_t fd_mu;        /* guards sockfd against a shutdown() from free */
        int sockfd;
        char err[256]; /* why the last attempt failed; owner thread */
        pthread_t thread;
        bool joined;
};

/* ---- publisher ------------------------------------------------------------------------ */

enum rmq_req_kind { RMQ_REQ_PUBLISH, RMQ_REQ_DECLARE, RMQ_REQ_DEPTH };

struct rmq_out {
        const char *key; /* both point into the request's own allocation */
        const void *body;
        size_t len;
        int result;
        bool settled, returned;
};

struct rmq_req {
        struct rmq_req *next;
        enum rmq_req_kind kind;
        int refs; /* the caller and the publisher thread; under pub.mu */
        bool done;
        int result;
        /* RMQ_REQ_PUBLISH */
        struct rmq_out *msgs;
        size_t n;
        unsigned flags;
        /* RMQ_REQ_DECLARE */
        struct rmq_qdef *def;
        /* RMQ_REQ_DEPTH: the queue (in the request's own allocation) and the answer */
        const char *queue;
        uint64_t ready, consumers;
};

struct rmq_pub {
        struct rmq_link link;
        pthread_mutex_t mu;
        pthread_cond_t cond; /* a request done, or the first connection settled */
        struct rmq_req *head, *tail;
        bool connected, stopping;
        bool first_done;
        int first_result;
        /* Owner thread only: */
        uint64_t next_seq; /* confirm sequence of the last message sent on channel 1 */
        bool topo_open;
        bool in_return; /* a basic.return came; its header (and body, ignored) follow */
        bool blocked;
};

/* ---- consumers ------------------------------------------------------------------------ */

enum rmq_settle_op { RMQ_ACK, RMQ_NACK_REQUEUE, RMQ_NACK_DROP };

struct rmq_settle {
        uint64_t broker_tag;
        enum rmq_settle_op op;
};

struct rmq_settles {
        struct rmq_settle *v;
        size_t n, cap;
};

/* Open addressing, linear probing, keys never 0. Unsettled deliveries of one connection:
 * at most the prefetch. */
struct rmq_tagset {
        uint64_t *keys, *vals;
        size_t cap, n;
};

struct rmq_incoming {
        bool active;
        bool have_header;
        uint64_t broker_tag;
        bool redelivered;
        bool too_big;
        char key[DM_BUS_NAME_MAX + 1];
        unsigned char *body;
        size_t size, got;
};

struct rmq_consumer {
        struct rmq_bus *bus;
        struct rmq_link link;
        uint32_t id; /* index + 1: the tag's top bits */
        char *queue;
        unsigned prefetch;
        dm_bus_handler handler;
        void *arg;

        pthread_mutex_t mu;
        pthread_cond_t cond; /* started, or cancel seen */
        bool started;
        int start_result;
        bool stop;             /* dm_bus_free */
        bool cancel_requested; /* dm_bus_cancel */
        bool cancel_seen;      /* no handler runs or will run for it */
        bool connected;        /* consuming on a live connection now */
        struct rmq_tagset outstanding;
        uint64_t next_seq;       /* next sequence handed out; starts at 1 */
        uint64_t conn_first_seq; /* first sequence of the current connection */
        struct rmq_settles pending;

        /* Owner thread only: */
        struct rmq_settles sending;
        struct rmq_incoming in;
        bool cancel_sent;
        char ctag[256]; /* consumer tag from the broker */
};

struct rmq_bus {
        struct dm_bus base; /* first: the ops pointer */
        struct rmq_target t;
        pthread_mutex_t mu; /* guards the registry and the consumer array */
        struct rmq_qdef *qdefs[RMQ_MAX_QUEUES];
        size_t nqdefs, nbindings;
        struct rmq_consumer **consumers;
        size_t nconsumers, consumers_cap;
        bool stopping;
        struct rmq_pub pub;
};

/* ---- small helpers -------------------------------------------------------------------- */

static uint64_t rmq_now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void rmq_deadline(struct timespec *ts, uint64_t ms_from_now)
{
        clock_gettime(CLOCK_MONOTONIC, ts);
        ts->tv_sec += (time_t)(ms_from_now / 1000);
        ts->tv_nsec += (long)(ms_from_now % 1000) * 1000000L;
        if (ts->tv_nsec >= 1000000000L) {
                ts->tv_sec++;
                ts->tv_nsec -= 1000000000L;
        }
}

static int rmq_cond_init(pthread_cond_t *c)
{
        pthread_condattr_t a;
        if (pthread_condattr_init(&a) != 0)
                return DM_ENOMEM;
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        int r = pthread_cond_init(c, &a) == 0 ? 0 : DM_ENOMEM;
        pthread_condattr_destroy(&a);
        return r;
}

static amqp_bytes_t rmq_str(const char *s)
{
        return amqp_cstring_bytes(s);
}

static void rmq_set_err(struct rmq_link *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void rmq_set_err(struct rmq_link *l, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(l->err, sizeof(l->err), fmt, ap);
        va_end(ap);
}

/* The dead-letter exchange of queue `dlq`: "<exchange>.dlx.<dlq>". */
static int rmq_dlx_name(const struct rmq_bus *b, const char *dlq, char *buf, size_t size)
{
        int n = snprintf(buf, size, "%s.dlx.%s", b->t.exchange, dlq);
        if (n < 0 || (size_t)n >= size || (size_t)n > DM_BUS_NAME_MAX)
                return DM_EINVAL;
        return 0;
}

/* ---- the tag set ---------------------------------------------------------------------- */

static size_t tagset_home(const struct rmq_tagset *s, uint64_t k)
{
        return (size_t)((k * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (s->cap - 1);
}

static int tagset_grow(struct rmq_tagset *s)
{
        size_t ncap = s->cap ? s->cap * 2 : 64;
        uint64_t *keys = calloc(ncap, sizeof(*keys));
        uint64_t *vals = calloc(ncap, sizeof(*vals));
        if (!keys || !vals) {
                free(keys);
                free(vals);
                return DM_ENOMEM;
        }
        struct rmq_tagset old = *s;
        s->keys = keys;
        s->vals = vals;
        s->cap = ncap;
        for (size_t i = 0; i < old.cap; i++) {
                if (!old.keys[i])
                        continue;
                size_t j = tagset_home(s, old.keys[i]);
                while (s->keys[j])
                        j = (j + 1) & (s->cap - 1);
                s->keys[j] = old.keys[i];
                s->vals[j] = old.vals[i];
        }
        free(old.keys);
        free(old.vals);
        return 0;
}

static int tagset_put(struct rmq_tagset *s, uint64_t k, uint64_t v)
{
        if ((s->n + 1) * 2 > s->cap) {
                int r = tagset_grow(s);
                if (r < 0)
                        return r;
        }
        size_t i = tagset_home(s, k);
        while (s->keys[i])
                i = (i + 1) & (s->cap - 1);
        s->keys[i] = k;
        s->vals[i] = v;
        s->n++;
        return 0;
}

/* Removes key k; backward-shift deletion keeps every probe run unbroken. */
static bool tagset_take(struct rmq_tagset *s, uint64_t k, uint64_t *ret_val)
{
        if (s->n == 0)
                return false;
        size_t mask = s->cap - 1;
        size_t i = tagset_home(s, k);
        while (s->keys[i] != k) {
                if (!s->keys[i])
                        return false;
                i = (i + 1) & mask;
        }
        *ret_val = s->vals[i];
        for (size_t j = (i + 1) & mask; s->keys[j]; j = (j + 1) & mask) {
                size_t h = tagset_home(s, s->keys[j]);
                /* Entry j may fill the hole at i unless its home lies cyclically in (i, j]. */
                bool stays = i <= j ? (h > i && h <= j) : (h > i || h <= j);
                if (!stays) {
                        s->keys[i] = s->keys[j];
                        s->vals[i] = s->vals[j];
                        i = j;
                }
        }
        s->keys[i] = 0;
        s->n--;
        return true;
}

static void tagset_clear(struct rmq_tagset *s)
{
        if (s->keys)
                memset(s->keys, 0, s->cap * sizeof(*s->keys));
        s->n = 0;
}

static void tagset_done(struct rmq_tagset *s)
{
        free(s->keys);
        free(s->vals);
        memset(s, 0, sizeof(*s));
}

/* ---- topology registry ---------------------------------------------------------------- */

static void qdef_free(struct rmq_qdef *d)
{
        if (!d)
                return;
        for (size_t i = 0; i < d->npatterns; i++)
                free(d->patterns[i]);
        free(d->patterns);
        free(d->dlq);
        free(d->name);
        free(d);
}

static struct rmq_qdef *qdef_new(const char *name, unsigned delivery_limit, const char *dlq,
                                 bool transient)
{
        struct rmq_qdef *d = calloc(1, sizeof(*d));
        if (!d)
                return NULL;
        d->name = strdup(name);
        d->delivery_limit = delivery_limit;
        d->transient = transient;
        d->dlq = dlq ? strdup(dlq) : NULL;
        if (!d->name || (dlq && !d->dlq)) {
                qdef_free(d);
                return NULL;
        }
        return d;
}

static bool qdef_has_pattern(const struct rmq_qdef *d, const char *pattern)
{
        for (size_t i = 0; i < d->npatterns; i++) {
                if (strcmp(d->patterns[i], pattern) == 0)
                        return true;
        }
        return false;
}

static int qdef_add_pattern(struct rmq_qdef *d, const char *pattern)
{
        if (qdef_has_pattern(d, pattern))
                return 0;
        char **np = realloc(d->patterns, (d->npatterns + 1) * sizeof(*np));
        if (!np)
                return DM_ENOMEM;
        d->patterns = np;
        d->patterns[d->npatterns] = strdup(pattern);
        if (!d->patterns[d->npatterns])
                return DM_ENOMEM;
        d->npatterns++;
        return 0;
}

static struct rmq_qdef *qdef_copy(const struct rmq_qdef *d)
{
        struct rmq_qdef *c = qdef_new(d->name, d->delivery_limit, d->dlq, d->transient);
        for (size_t i = 0; c && i < d->npatterns; i++) {
                if (qdef_add_pattern(c, d->patterns[i]) < 0) {
                        qdef_free(c);
                        c = NULL;
                }
        }
        return c;
}

static bool qdef_same_opts(const struct rmq_qdef *d, const struct dm_bus_queue_opts *opts)
{
        const char *dlq = opts->dead_letter_queue;
        if (d->delivery_limit != opts->delivery_limit || d->transient != opts->transient)
                return false;
        return (!d->dlq && !dlq) || (d->dlq && dlq && strcmp(d->dlq, dlq) == 0);
}

/* Under b->mu. */
static struct rmq_qdef *registry_find(struct rmq_bus *b, const char *name)
{
        for (size_t i = 0; i < b->nqdefs; i++) {
                if (strcmp(b->qdefs[i]->name, name) == 0)
                        return b->qdefs[i];
        }
        return NULL;
}

/* Under b->mu: DM_EEXIST when `name` is registered with other options. */
static int registry_check(struct rmq_bus *b, const char *name, const struct dm_bus_queue_opts *opts)
{
        struct rmq_qdef *d = registry_find(b, name);
        return d && !qdef_same_opts(d, opts) ? DM_EEXIST : 0;
}

/* Under b->mu: records a queue the broker accepted (the dead-letter queue with it). */
static int registry_add(struct rmq_bus *b, const struct rmq_qdef *def)
{
        struct rmq_qdef *dl = def->dlq ? registry_find(b, def->dlq) : NULL;
        struct rmq_qdef *d = registry_find(b, def->name);
        size_t need = (d ? 0 : 1) + (def->dlq && !dl ? 1 : 0);
        if (b->nqdefs + need > RMQ_MAX_QUEUES)
                return DM_ENOSPC;
        if (def->dlq && !dl) {
                dl = qdef_new(def->dlq, 0, NULL, false);
                if (!dl)
                        return DM_ENOMEM;
                b->qdefs[b->nqdefs++] = dl;
        }
        if (!d) {
                d = qdef_new(def->name, def->delivery_limit, def->dlq, def->transient);
                if (!d)
                        return DM_ENOMEM;
                b->qdefs[b->nqdefs++] = d;
        }
        for (size_t i = 0; i < def->npatterns; i++) {
                if (qdef_has_pattern(d, def->patterns[i]))
                        continue;
                if (b->nbindings == RMQ_MAX_BINDINGS)
                        return DM_ENOSPC;
                int r = qdef_add_pattern(d, def->patterns[i]);
                if (r < 0)
                        return r;
                b->nbindings++;
        }
        return 0;
}

/* Under b->mu: forgets a queue, so that no reconnection declares it again. */
static void registry_remove(struct rmq_bus *b, const char *name)
{
        for (size_t i = 0; i < b->nqdefs; i++) {
                struct rmq_qdef *d = b->qdefs[i];
                if (strcmp(d->name, name) != 0)
                        continue;
                b->nbindings -= d->npatterns;
                qdef_free(d);
                memmove(&b->qdefs[i], &b->qdefs[i + 1], (b->nqdefs - i - 1) * sizeof(b->qdefs[0]));
                b->nqdefs--;
                return;
        }
}

/* A copy of the registry, to declare from without holding the lock over the network. */
static int registry_snapshot(struct rmq_bus *b, struct rmq_qdef ***ret_defs, size_t *ret_n)
{
        int r = 0;
        pthread_mutex_lock(&b->mu);
        size_t n = b->nqdefs;
        struct rmq_qdef **defs = calloc(n ? n : 1, sizeof(*defs));
        if (!defs) {
                r = DM_ENOMEM;
                goto unlock;
        }
        for (size_t i = 0; i < n; i++) {
                defs[i] = qdef_copy(b->qdefs[i]);
                if (!defs[i]) {
                        for (size_t j = 0; j < i; j++)
                                qdef_free(defs[j]);
                        free(defs);
                        r = DM_ENOMEM;
                        goto unlock;
                }
        }
        *ret_defs = defs;
        *ret_n = n;
unlock:
        pthread_mutex_unlock(&b->mu);
        return r;
}

static void snapshot_free(struct rmq_qdef **defs, size_t n)
{
        for (size_t i = 0; i < n; i++)
                qdef_free(defs[i]);
        free(defs);
}

/* ---- links ---------------------------------------------------------------------------- */

static int link_init(struct rmq_link *l, struct rmq_bus *b, const char *role)
{
        memset(l, 0, sizeof(*l));
        l->bus = b;
        l->role = role;
        l->sockfd = -1;
        l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (l->efd < 0)
                return DM_EAGAIN;
        if (pthread_mutex_init(&l->fd_mu, NULL) != 0) {
                close(l->efd);
                return DM_ENOMEM;
        }
        return 0;
}

static void link_done(struct rmq_link *l)
{
        if (l->efd >= 0)
                close(l->efd);
        l->efd = -1;
        pthread_mutex_destroy(&l->fd_mu);
}

static void link_wake(struct rmq_link *l)
{
        uint64_t one = 1;
        ssize_t n = write(l->efd, &one, sizeof(one));
        (void)n; /* EAGAIN: the counter is already non-zero, the owner wakes anyway */
}

/* Drops the connection. Graceful: connection.close first, so the broker puts back what we
 * hold unacked at once rather than when it notices the socket is gone. */
static void link_drop(struct rmq_link *l, bool graceful)
{
        if (!l->conn)
                return;
        if (graceful && !l->broken) {
                struct timeval tv = {.tv_sec = 2};
                amqp_set_rpc_timeout(l->conn, &tv);
                amqp_connection_close(l->conn, AMQP_REPLY_SUCCESS);
        }
        pthread_mutex_lock(&l->fd_mu);
        l->sockfd = -1;
        amqp_destroy_connection(l->conn);
        pthread_mutex_unlock(&l->fd_mu);
        l->conn = NULL;
        l->broken = false;
}

/* Maps a failed RPC to an error code, answering the close the broker asked for: a
 * channel.close leaves the connection usable, anything else marks it broken. */
static int link_reply(struct rmq_link *l, amqp_rpc_reply_t rep, amqp_channel_t ch, const char *what)
{
        switch (rep.reply_type) {
        case AMQP_RESPONSE_NORMAL:
                return 0;
        case AMQP_RESPONSE_NONE:
                l->broken = true;
                rmq_set_err(l, "%s: no reply from the broker", what);
                return DM_EBUS;
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
                l->broken = true;
                rmq_set_err(l, "%s: %s", what, amqp_error_string2(rep.library_error));
                return rep.library_error == AMQP_STATUS_TIMEOUT ||
                               rep.library_error == AMQP_STATUS_HEARTBEAT_TIMEOUT
                           ? DM_ETIMEDOUT
                           : DM_EBUS;
        case AMQP_RESPONSE_SERVER_EXCEPTION:
                break;
        }

        unsigned code = 0;
        amqp_bytes_t text = {0};
        if (rep.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
                const amqp_channel_close_t *m = rep.reply.decoded;
                code = m->reply_code;
                text = m->reply_text;
                amqp_channel_close_ok_t ok = {0};
                if (amqp_send_method(l->conn, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != 0)
                        l->broken = true;
        } else if (rep.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
                const amqp_connection_close_t *m = rep.reply.decoded;
                code = m->reply_code;
                text = m->reply_text;
                amqp_connection_close_ok_t ok = {0};
                amqp_send_method(l->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
                l->broken = true;
        } else {
                l->broken = true;
        }
        int tlen = text.len > 160 ? 160 : (int)text.len;
        rmq_set_err(l, "%s: %u %.*s", what, code, tlen, text.bytes ? (const char *)text.bytes : "");
        switch (code) {
        case AMQP_NOT_FOUND:
                return DM_ENOENT;
        case AMQP_PRECONDITION_FAILED:
                return DM_EEXIST;
        case AMQP_ACCESS_REFUSED:
        case AMQP_NOT_ALLOWED:
                return DM_EACCES;
        default:
                return DM_EBUS;
        }
}

/* Opens the connection and logs in. */
static int link_connect(struct rmq_link *l, const char *name)
{
        const struct rmq_target *t = &l->bus->t;
        int r;

        l->broken = false;
        l->conn = amqp_new_connection();
        if (!l->conn) {
                rmq_set_err(l, "out of memory");
                return DM_ENOMEM;
        }
        amqp_socket_t *sock = t->ssl ? amqp_ssl_socket_new(l->conn) : amqp_tcp_socket_new(l->conn);
        if (!sock) {
                rmq_set_err(l, "cannot create a socket");
                r = DM_ENOMEM;
                goto drop;
        }
        if (t->ssl) {
                amqp_ssl_socket_set_verify_peer(sock, 1);
                amqp_ssl_socket_set_verify_hostname(sock, 1);
                if (amqp_ssl_socket_set_cacert(sock, t->cacert) != AMQP_STATUS_OK) {
                        rmq_set_err(l, "cannot read CA certificates from %s", t->cacert);
                        r = DM_EIO;
                        goto drop;
                }
        }
        struct timeval tv = {.tv_sec = RMQ_CONNECT_TIMEOUT_S};
        int st = amqp_socket_open_noblock(sock, t->host, t->port, &tv);
        if (st != AMQP_STATUS_OK) {
                rmq_set_err(l, "cannot connect to %s:%d: %s", t->host, t->port,
                            amqp_error_string2(st));
                r = st == AMQP_STATUS_TIMEOUT ? DM_ETIMEDOUT : DM_ECONNREFUSED;
                goto drop;
        }
        pthread_mutex_lock(&l->fd_mu);
        l->sockfd = amqp_get_sockfd(l->conn);
        pthread_mutex_unlock(&l->fd_mu);

        struct timeval rpc = {.tv_sec = RMQ_RPC_TIMEOUT_S};
        amqp_set_handshake_timeout(l->conn, &rpc);
        amqp_set_rpc_timeout(l->conn, &rpc);

        /* Capabilities rabbitmq-c does not announce by default: a basic.cancel when the
         * queue goes away, and connection.blocked on a resource alarm. */
        amqp_table_entry_t caps[] = {
            {.key = rmq_str("consumer_cancel_notify"),
             .value = {.kind = AMQP_FIELD_KIND_BOOLEAN, .value = {.boolean = 1}}},
            {.key = rmq_str("connection.blocked"),
             .value = {.kind = AMQP_FIELD_KIND_BOOLEAN, .value = {.boolean = 1}}},
        };
        amqp_table_entry_t props[] = {
            {.key = rmq_str("capabilities"),
             .value = {.kind = AMQP_FIELD_KIND_TABLE,
                       .value = {.table = {.num_entries = 2, .entries = caps}}}},
            {.key = rmq_str("connection_name"),
             .value = {.kind = AMQP_FIELD_KIND_UTF8, .value = {.bytes = rmq_str(name)}}},
        };
        amqp_table_t ptable = {.num_entries = 2, .entries = props};
        amqp_rpc_reply_t rep = amqp_login_with_properties(
            l->conn, t->vhost, 0, AMQP_DEFAULT_FRAME_SIZE, t->heartbeat_s, &ptable,
            AMQP_SASL_METHOD_PLAIN, t->user, t->password);
        if (rep.reply_type != AMQP_RESPONSE_NORMAL) {
                r = link_reply(l, rep, 0, "login");
                if (rep.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
                    rep.library_error == AMQP_STATUS_CONNECTION_CLOSED)
                        r = DM_EACCES; /* brokers without authentication_failure_close */
                char why[sizeof(l->err)];
                snprintf(why, sizeof(why), "%s", l->err);
                rmq_set_err(l, "%s:%d vhost '%s' user '%s': %s", t->host, t->port, t->vhost,
                            t->user, why);
                goto drop;
        }
        return 0;

drop:
        l->broken = true;
        link_drop(l, false);
        return r;
}

static int link_channel_open(struct rmq_link *l, amqp_channel_t ch)
{
        amqp_channel_open(l->conn, ch);
        return link_reply(l, amqp_get_rpc_reply(l->conn), ch, "channel.open");
}

/* Waits up to timeout_ms for the socket to have data or for a wake-up. Returns at once when
 * rabbitmq-c already holds unread data. */
static void link_wait(struct rmq_link *l, int timeout_ms)
{
        if (l->conn && (amqp_frames_enqueued(l->conn) || amqp_data_in_buffer(l->conn)))
                return;
        struct pollfd pfd[2] = {{.fd = l->efd, .events = POLLIN}, {.fd = -1}};
        nfds_t n = 1;
        if (l->conn) {
                pfd[1].fd = amqp_get_sockfd(l->conn);
                pfd[1].events = POLLIN;
                n = 2;
        }
        if (poll(pfd, n, timeout_ms) > 0 && (pfd[0].revents & POLLIN)) {
                uint64_t v;
                ssize_t rd = read(l->efd, &v, sizeof(v));
                (void)rd;
        }
}

/* One frame if one is ready now: 1, 0 when none, DM_EBUS when the connection is gone.
 * Also sends a heartbeat when one is due, and notices a broker gone silent. */
static int link_next_frame(struct rmq_link *l, amqp_frame_t *f)
{
        struct timeval zero = {0, 0};
        int st = amqp_simple_wait_frame_noblock(l->conn, f, &zero);
        if (st == AMQP_STATUS_OK)
                return 1;
        if (st == AMQP_STATUS_TIMEOUT)
                return 0;
        l->broken = true;
        rmq_set_err(l, "connection lost: %s", amqp_error_string2(st));
        return DM_EBUS;
}

/* A close the broker started outside of an RPC: answer it, note why. */
static void link_closed_by_broker(struct rmq_link *l, const amqp_frame_t *f)
{
        amqp_rpc_reply_t rep = {.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION,
                                .reply = f->payload.method};
        link_reply(l, rep, f->channel, "closed by the broker");
        l->broken = true;
}

static int link_declare_exchange(struct rmq_link *l, amqp_channel_t ch, const char *name,
                                 const char *type)
{
        amqp_exchange_declare(l->conn, ch, rmq_str(name), rmq_str(type), 0, 1, 0, 0,
                              amqp_empty_table);
        return link_reply(l, amqp_get_rpc_reply(l->conn), ch, "exchange.declare");
}

/* Declares `def` (its dead-letter exchange and queue first) and binds its patterns. */
static int link_declare_queue(struct rmq_link *l, amqp_channel_t ch, const struct rmq_qdef *def)
{
        const struct rmq_target *t = &l->bus->t;
        char dlx[DM_BUS_NAME_MAX + 1];
        int r;

        if (def->dlq) {
                r = rmq_dlx_name(l->bus, def->dlq, dlx, sizeof(dlx));
                if (r < 0)
                        return r;
                r = link_declare_exchange(l, ch, dlx, "fanout");
                if (r < 0)
                        return r;
                amqp_queue_declare(l->conn, ch, rmq_str(def->dlq), 0, 1, 0, 0, amqp_empty_table);
                r = link_reply(l, amqp_get_rpc_reply(l->conn), ch, "queue.declare");
                if (r < 0)
                        return r;
                amqp_queue_bind(l->conn, ch, rmq_str(def->dlq), rmq_str(dlx), rmq_str(""),
                                amqp_empty_table);
                r = link_reply(l, amqp_get_rpc_reply(l->conn), ch, "queue.bind");
                if (r < 0)
                        return r;
        }

        amqp_table_entry_t args[3];
        int nargs = 0;
        if (def->transient) {
                args[nargs].key = rmq_str("x-expires");
                args[nargs].value.kind = AMQP_FIELD_KIND_I64;
                args[nargs].value.value.i64 = RMQ_TRANSIENT_EXPIRES_MS;
                nargs++;
        }
        if (def->delivery_limit > 0) {
                args[nargs].key = rmq_str("x-queue-type");
                args[nargs].value.kind = AMQP_FIELD_KIND_UTF8;
                args[nargs].value.value.bytes = rmq_str("quorum");
                nargs++;
                args[nargs].key = rmq_str("x-delivery-limit");
                args[nargs].value.kind = AMQP_FIELD_KIND_I64;
                args[nargs].value.value.i64 = (int64_t)def->delivery_limit;
                nargs++;
        }
        if (def->dlq) {
                args[nargs].key = rmq_str("x-dead-letter-exchange");
                args[nargs].value.kind = AMQP_FIELD_KIND_UTF8;
                args[nargs].value.value.bytes = rmq_str(dlx);
                nargs++;
        }
        amqp_table_t table = {.num_entries = nargs, .entries = args};
        /* passive 0, durable, exclusive 0, auto-delete: a transient queue is the one kind
         * that is not durable and goes with its last consumer. */
        amqp_queue_declare(l->conn, ch, rmq_str(def->name), 0, !def->transient, 0, def->transient,
                           table);
        r = link_reply(l, amqp_get_rpc_reply(l->conn), ch, "queue.declare");
        if (r < 0)
                return r;
        for (size_t i = 0; i < def->npatterns; i++) {
                amqp_queue_bind(l->conn, ch, rmq_str(def->name), rmq_str(t->exchange),
                                rmq_str(def->patterns[i]), amqp_empty_table);
                r = link_reply(l, amqp_get_rpc_reply(l->conn), ch, "queue.bind");
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Sleeps `ms` unless woken (stop, cancel). */
static void link_sleep(struct rmq_link *l, unsigned ms)
{
        uint64_t end = rmq_now_ms() + ms;
        for (;;) {
                uint64_t now = rmq_now_ms();
                if (now >= end)
                        return;
                struct pollfd pfd = {.fd = l->efd, .events = POLLIN};
                if (poll(&pfd, 1, (int)(end - now)) > 0) {
                        uint64_t v;
                        ssize_t rd = read(l->efd, &v, sizeof(v));
                        (void)rd;
                        return;
                }
        }
}

/* Starts a link's thread with every signal blocked: the process decides which thread takes
 * signals (domainmon's main thread sigwaits for SIGTERM), and a bus opened before the
 * program blocks them must not become the thread a SIGTERM kills the process through. */
static int link_start(struct rmq_link *l, void *(*fn)(void *), void *arg)
{
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int r = pthread_create(&l->thread, NULL, fn, arg);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return r == 0 ? 0 : DM_EAGAIN;
}

static unsigned backoff_next(unsigned ms)
{
        return ms * 2 > RMQ_BACKOFF_MAX_MS ? RMQ_BACKOFF_MAX_MS : ms * 2;
}

/* Joins the owner thread; one stuck writing to a broker that stopped reading gets its
 * socket shut down after a grace period. */
static void link_join(struct rmq_link *l)
{
        if (l->joined)
                return;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += RMQ_JOIN_GRACE_S;
        if (pthread_timedjoin_np(l->thread, NULL, &ts) != 0) {
                pthread_mutex_lock(&l->fd_mu);
                if (l->sockfd >= 0)
                        shutdown(l->sockfd, SHUT_RDWR);
                pthread_mutex_unlock(&l->fd_mu);
                pthread_join(l->thread, NULL);
        }
        l->joined = true;
}

static void log_link(struct rmq_link *l, bool up, const char *queue)
{
        char q[96] = "";
        if (queue) {
                char quoted[80];
                snprintf(q, sizeof(q), " queue=%s", dm_log_quote(quoted, sizeof(quoted), queue));
        }
        if (up) {
                dm_log_info("bus", "msg=\"reconnected to the broker\" link=%s%s", l->role, q);
        } else {
                char e[300];
                dm_log_warn("bus", "msg=\"lost the broker, reconnecting\" link=%s%s err=%s",
                            l->role, q, dm_log_quote(e, sizeof(e), l->err));
        }
}

/* ---- publisher thread ----------------------------------------------------------------- */

static void req_release(struct rmq_req *req)
{
        if (--req->refs > 0)
                return;
        qdef_free(req->def);
        free(req);
}

/* Under pub.mu. */
static void req_finish(struct rmq_pub *p, struct rmq_req *req, int result)
{
        req->result = result;
        req->done = true;
        pthread_cond_broadcast(&p->cond);
        req_release(req);
}

/* Under pub.mu: fails everything queued. */
static void pub_fail_queued(struct rmq_pub *p, int result)
{
        struct rmq_req *req = p->head;
        p->head = p->tail = NULL;
        while (req) {
                struct rmq_req *next = req->next;
                for (size_t i = 0; req->kind == RMQ_REQ_PUBLISH && i < req->n; i++)
                        req->msgs[i].result = result;
                req_finish(p, req, result);
                req = next;
        }
}

static int pub_open(struct rmq_pub *p)
{
        struct rmq_link *l = &p->link;
        struct rmq_bus *b = l->bus;
        struct rmq_qdef **defs = NULL;
        size_t ndefs = 0;

        int r = link_connect(l, "domainmon publisher");
        if (r < 0)
                return r;
        p->next_seq = 0;
        p->in_return = false;
        p->blocked = false;
        r = link_channel_open(l, RMQ_CH);
        if (r < 0)
                goto drop;
        amqp_confirm_select(l->conn, RMQ_CH);
        r = link_reply(l, amqp_get_rpc_reply(l->conn), RMQ_CH, "confirm.select");
        if (r < 0)
                goto drop;
        r = link_channel_open(l, RMQ_CH_TOPO);
        if (r < 0)
                goto drop;
        p->topo_open = true;
        r = link_declare_exchange(l, RMQ_CH_TOPO, b->t.exchange, "topic");
        if (r < 0)
                goto drop;
        r = registry_snapshot(b, &defs, &ndefs);
        if (r < 0)
                goto drop;
        for (size_t i = 0; i < ndefs; i++) {
                r = link_declare_queue(l, RMQ_CH_TOPO, defs[i]);
                if (r < 0 && !l->broken) {
                        /* Someone changed it meanwhile; the queue is still there. */
                        char e[300];
                        dm_log_warn("bus", "msg=\"cannot declare a queue again\" err=%s",
                                    dm_log_quote(e, sizeof(e), l->err));
                        r = link_channel_open(l, RMQ_CH_TOPO);
                }
                if (r < 0)
                        goto drop;
        }
        snapshot_free(defs, ndefs);
        return 0;

drop:
        snapshot_free(defs, ndefs);
        l->broken = true;
        link_drop(l, false);
        return r;
}

static void pub_settle(struct rmq_out **round, uint64_t first, size_t n, uint64_t tag,
                       bool multiple, int result, size_t *unsettled)
{
        uint64_t lo = multiple ? first : tag;
        for (uint64_t seq = lo; seq <= tag && seq < first + n; seq++) {
                if (seq < first)
                        continue;
                struct rmq_out *m = round[seq - first];
                if (m->settled)
                        continue;
                m->settled = true;
                m->result = result;
                (*unsettled)--;
        }
}

/* Handles one frame on the publisher connection. `round` may be NULL (idle). */
static void pub_frame(struct rmq_pub *p, const amqp_frame_t *f, struct rmq_out **round,
                      uint64_t first, size_t n, size_t *unsettled, unsigned flags)
{
        struct rmq_link *l = &p->link;

        if (f->frame_type == AMQP_FRAME_HEADER && p->in_return) {
                const amqp_basic_properties_t *props = f->payload.properties.decoded;
                p->in_return = false;
                if (round && props && (props->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)) {
                        char id[24];
                        size_t len = props->message_id.len < sizeof(id) - 1 ? props->message_id.len
                                                                            : sizeof(id) - 1;
                        memcpy(id, props->message_id.bytes, len);
                        id[len] = '\0';
                        uint64_t seq = strtoull(id, NULL, 10);
                        if (seq >= first && seq < first + n)
                                round[seq - first]->returned = true;
                }
                return;
        }
        if (f->frame_type != AMQP_FRAME_METHOD)
                return; /* the body of a returned message, heartbeats */

        switch (f->payload.method.id) {
        case AMQP_BASIC_ACK_METHOD: {
                const amqp_basic_ack_t *m = f->payload.method.decoded;
                if (!round)
                        break;
                /* The return of a mandatory message comes before its ack. */
                uint64_t lo = m->multiple ? first : m->delivery_tag;
                for (uint64_t seq = lo; seq <= m->delivery_tag && seq < first + n; seq++) {
                        if (seq >= first && !round[seq - first]->settled &&
                            round[seq - first]->returned && (flags & DM_BUS_MANDATORY))
                                pub_settle(round, first, n, seq, false, DM_ENOROUTE, unsettled);
                }
                pub_settle(round, first, n, m->delivery_tag, m->multiple, 0, unsettled);
                break;
        }
        case AMQP_BASIC_NACK_METHOD: {
                const amqp_basic_nack_t *m = f->payload.method.decoded;
                if (round)
                        pub_settle(round, first, n, m->delivery_tag, m->multiple, DM_EREJECTED,
                                   unsettled);
                break;
        }
        case AMQP_BASIC_RETURN_METHOD:
                p->in_return = true;
                break;
        case AMQP_CHANNEL_CLOSE_METHOD:
                if (f->channel == RMQ_CH_TOPO) {
                        amqp_channel_close_ok_t ok = {0};
                        if (amqp_send_method(l->conn, f->channel, AMQP_CHANNEL_CLOSE_OK_METHOD,
                                             &ok) != 0)
                                l->broken = true;
                        p->topo_open = false;
                        break;
                }
                link_closed_by_broker(l, f);
                break;
        case AMQP_CONNECTION_CLOSE_METHOD:
                link_closed_by_broker(l, f);
                break;
        case AMQP_CONNECTION_BLOCKED_METHOD:
                if (!p->blocked)
                        dm_log_warn("bus", "msg=\"the broker blocks publishing (resource "
                                           "alarm)\"");
                p->blocked = true;
                break;
        case AMQP_CONNECTION_UNBLOCKED_METHOD:
                if (p->blocked)
                        dm_log_info("bus", "msg=\"the broker accepts publishing again\"");
                p->blocked = false;
                break;
        default:
                break;
        }
}

/* Reads every frame that is ready now. */
static void pub_read_ready(struct rmq_pub *p, struct rmq_out **round, uint64_t first, size_t n,
                           size_t *unsettled, unsigned flags)
{
        amqp_frame_t f;
        while (!p->link.broken && link_next_frame(&p->link, &f) == 1)
                pub_frame(p, &f, round, first, n, unsettled, flags);
        if (p->link.conn && !p->link.broken)
                amqp_maybe_release_buffers(p->link.conn);
}

static void pub_declare(struct rmq_pub *p, struct rmq_req *req)
{
        struct rmq_link *l = &p->link;
        int r = 0;
        if (!p->topo_open) {
                r = link_channel_open(l, RMQ_CH_TOPO);
                if (r < 0)
                        goto out;
                p->topo_open = true;
        }
        r = link_declare_exchange(l, RMQ_CH_TOPO, l->bus->t.exchange, "topic");
        if (r == 0)
                r = link_declare_queue(l, RMQ_CH_TOPO, req->def);
        if (r < 0 && !l->broken)
                p->topo_open = false; /* the broker closed the channel over it */
out:
        req->result = l->broken ? DM_EBUS : r;
}

/* A passive queue.declare on the topology channel: the broker answers with the queue's
 * ready messages and consumers, or closes the channel (404) when there is no such queue. */
static void pub_depth(struct rmq_pub *p, struct rmq_req *req)
{
        struct rmq_link *l = &p->link;
        int r = 0;
        if (!p->topo_open) {
                r = link_channel_open(l, RMQ_CH_TOPO);
                if (r < 0)
                        goto out;
                p->topo_open = true;
        }
        amqp_queue_declare_ok_t *ok = amqp_queue_declare(l->conn, RMQ_CH_TOPO, rmq_str(req->queue),
                                                         1, 0, 0, 0, amqp_empty_table);
        r = link_reply(l, amqp_get_rpc_reply(l->conn), RMQ_CH_TOPO, "queue.declare passive");
        if (r == 0 && ok) {
                req->ready = ok->message_count;
                req->consumers = ok->consumer_count;
        } else if (r == 0) {
                r = DM_EBUS;
        }
        if (r < 0 && !l->broken)
                p->topo_open = false; /* the broker closed the channel over it */
        amqp_maybe_release_buffers_on_channel(l->conn, RMQ_CH_TOPO);
out:
        req->result = l->broken ? DM_EBUS : r;
}

/* Sends every message of the round, then reads acks until all are settled, the deadline
 * passes or the connection breaks. Messages of a request are sent in order, one request
 * after the other; mandatory is per request, so a round sends each request's own flag. */
static void pub_round(struct rmq_pub *p, struct rmq_req **reqs, size_t nreqs)
{
        struct rmq_link *l = &p->link;
        const struct rmq_target *t = &l->bus->t;
        size_t total = 0;
        for (size_t i = 0; i < nreqs; i++)
                total += reqs[i]->n;
        struct rmq_out **round = calloc(total ? total : 1, sizeof(*round));
        if (!round) {
                for (size_t i = 0; i < nreqs; i++) {
                        for (size_t j = 0; j < reqs[i]->n; j++)
                                reqs[i]->msgs[j].result = DM_ENOMEM;
                }
                return;
        }
        uint64_t first = p->next_seq + 1;
        size_t unsettled = total, sent = 0;
        unsigned any_mandatory = 0;
        for (size_t i = 0; i < nreqs; i++)
                any_mandatory |= reqs[i]->flags & DM_BUS_MANDATORY;

        for (size_t i = 0; i < nreqs && !l->broken; i++) {
                bool mandatory = reqs[i]->flags & DM_BUS_MANDATORY;
                for (size_t j = 0; j < reqs[i]->n && !l->broken; j++) {
                        struct rmq_out *m = &reqs[i]->msgs[j];
                        char id[24];
                        uint64_t seq = ++p->next_seq;
                        amqp_basic_properties_t props = {
                            ._flags = AMQP_BASIC_DELIVERY_MODE_FLAG,
                            .delivery_mode = AMQP_DELIVERY_PERSISTENT,
                        };
                        if (mandatory) {
                                snprintf(id, sizeof(id), "%" PRIu64, seq);
                                props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
                                props.message_id = rmq_str(id);
                        }
                        round[sent++] = m;
                        amqp_bytes_t body = {.len = m->len, .bytes = (void *)m->body};
                        int st = amqp_basic_publish(l->conn, RMQ_CH, rmq_str(t->exchange),
                                                    rmq_str(m->key), mandatory, 0, &props, body);
                        if (st != AMQP_STATUS_OK) {
                                l->broken = true;
                                rmq_set_err(l, "publish: %s", amqp_error_string2(st));
                                break;
                        }
                        if (sent % RMQ_READ_EVERY == 0)
                                pub_read_ready(p, round, first, sent, &unsettled, any_mandatory);
                }
        }

        /* Messages never sent are settled here; those sent wait for their confirm. */
        uint64_t end = rmq_now_ms() + (uint64_t)t->publish_timeout_s * 1000u;
        unsettled -= total - sent;
        while (unsettled > 0 && !l->broken) {
                pthread_mutex_lock(&p->mu);
                bool stopping = p->stopping;
                pthread_mutex_unlock(&p->mu);
                uint64_t now = rmq_now_ms();
                if (stopping || now >= end)
                        break;
                uint64_t left = end - now;
                link_wait(l, left < RMQ_POLL_MAX_MS ? (int)left : RMQ_POLL_MAX_MS);
                pub_read_ready(p, round, first, sent, &unsettled, any_mandatory);
        }
        int late = l->broken ? DM_EBUS : DM_ETIMEDOUT;
        for (size_t i = 0; i < nreqs; i++) {
                for (size_t j = 0; j < reqs[i]->n; j++) {
                        struct rmq_out *m = &reqs[i]->msgs[j];
                        if (!m->settled)
                                m->result = late;
                }
        }
        free(round);
}

/* Runs a batch of requests taken from the queue. */
static void pub_process(struct rmq_pub *p, struct rmq_req *list)
{
        size_t n = 0;
        for (struct rmq_req *r = list; r; r = r->next)
                n++;
        struct rmq_req **pubs = calloc(n, sizeof(*pubs));
        size_t npubs = 0;
        for (struct rmq_req *r = list; r; r = r->next) {
                if (r->kind == RMQ_REQ_DECLARE || r->kind == RMQ_REQ_DEPTH) {
                        if (p->link.broken)
                                r->result = DM_EBUS;
                        else if (r->kind == RMQ_REQ_DECLARE)
                                pub_declare(p, r);
                        else
                                pub_depth(p, r);
                } else if (pubs) {
                        pubs[npubs++] = r;
                } else {
                        for (size_t j = 0; j < r->n; j++)
                                r->msgs[j].result = DM_ENOMEM;
                }
        }
        if (npubs > 0) {
                if (p->link.broken) {
                        for (size_t i = 0; i < npubs; i++) {
                                for (size_t j = 0; j < pubs[i]->n; j++)
                                        pubs[i]->msgs[j].result = DM_EBUS;
                        }
                } else {
                        pub_round(p, pubs, npubs);
                }
        }
        free(pubs);

        pthread_mutex_lock(&p->mu);
        while (list) {
                struct rmq_req *next = list->next;
                req_finish(p, list, list->result);
                list = next;
        }
        pthread_mutex_unlock(&p->mu);
}

static void *pub_main(void *arg)
{
        struct rmq_pub *p = arg;
        struct rmq_link *l = &p->link;
        unsigned backoff = RMQ_BACKOFF_MIN_MS;
        bool down_logged = false;

        for (;;) {
                pthread_mutex_lock(&p->mu);
                bool stopping = p->stopping;
                pthread_mutex_unlock(&p->mu);
                if (stopping)
                        break;

                if (!l->conn) {
                        int r = pub_open(p);
                        pthread_mutex_lock(&p->mu);
                        if (!p->first_done) {
                                p->first_done = true;
                                p->first_result = r;
                                pthread_cond_broadcast(&p->cond);
                                if (r < 0) {
                                        pthread_mutex_unlock(&p->mu);
                                        return NULL; /* dm_bus_open fails */
                                }
                        }
                        p->connected = r == 0;
                        if (r < 0)
                                pub_fail_queued(p, DM_EBUS);
                        pthread_mutex_unlock(&p->mu);
                        if (r < 0) {
                                if (!down_logged)
                                        log_link(l, false, NULL);
                                down_logged = true;
                                link_sleep(l, backoff);
                                backoff = backoff_next(backoff);
                                continue;
                        }
                        if (down_logged)
                                log_link(l, true, NULL);
                        down_logged = false;
                        backoff = RMQ_BACKOFF_MIN_MS;
                }

                pthread_mutex_lock(&p->mu);
                struct rmq_req *list = NULL, **tail = &list;
                for (struct rmq_req *r = p->head, *next; r; r = next) {
                        next = r->next;
                        r->next = NULL;
                        if (r->refs == 1) {
                                req_release(r); /* its caller gave up waiting */
                                continue;
                        }
                        *tail = r;
                        tail = &r->next;
                }
                p->head = p->tail = NULL;
                pthread_mutex_unlock(&p->mu);

                if (list) {
                        pub_process(p, list);
                } else {
                        link_wait(l, RMQ_POLL_MAX_MS);
                        size_t none = 0;
                        pub_read_ready(p, NULL, 0, 0, &none, 0);
                }

                if (l->broken) {
                        pthread_mutex_lock(&p->mu);
                        p->connected = false;
                        pub_fail_queued(p, DM_EBUS);
                        pthread_mutex_unlock(&p->mu);
                        log_link(l, false, NULL);
                        down_logged = true;
                        link_drop(l, false);
                        link_sleep(l, backoff);
                        backoff = backoff_next(backoff);
                }
        }

        pthread_mutex_lock(&p->mu);
        p->connected = false;
        pub_fail_queued(p, DM_ESHUTDOWN);
        pthread_mutex_unlock(&p->mu);
        link_drop(l, true);
        return NULL;
}

/* Queues a request for the publisher thread and waits for it, at most the publish
 * timeout. Takes the caller's reference; the request is freed by whoever lets go last. */
static int pub_submit(struct rmq_bus *b, struct rmq_req *req)
{
        struct rmq_pub *p = &b->pub;
        int r;
        pthread_mutex_lock(&p->mu);
        if (p->stopping || !p->connected) {
                r = p->stopping ? DM_ESHUTDOWN : DM_EBUS;
                pthread_mutex_unlock(&p->mu);
                return r;
        }
        req->refs = 2;
        if (p->tail)
                p->tail->next = req;
        else
                p->head = req;
        p->tail = req;
        pthread_mutex_unlock(&p->mu);
        link_wake(&p->link);

        struct timespec dl;
        rmq_deadline(&dl, (uint64_t)b->t.publish_timeout_s * 1000u);
        pthread_mutex_lock(&p->mu);
        while (!req->done) {
                if (pthread_cond_timedwait(&p->cond, &p->mu, &dl) == ETIMEDOUT)
                        break;
        }
        r = req->done ? 0 : DM_ETIMEDOUT;
        pthread_mutex_unlock(&p->mu);
        return r;
}

static void pub_put(struct rmq_bus *b, struct rmq_req *req)
{
        pthread_mutex_lock(&b->pub.mu);
        req_release(req);
        pthread_mutex_unlock(&b->pub.mu);
}

/* ---- consumer thread ------------------------------------------------------------------ */

/* Makes room for one more, so that the push after it cannot fail. */
static int settles_reserve(struct rmq_settles *s)
{
        if (s->n < s->cap)
                return 0;
        size_t ncap = s->cap ? s->cap * 2 : 16;
        struct rmq_settle *v = realloc(s->v, ncap * sizeof(*v));
        if (!v)
                return DM_ENOMEM;
        s->v = v;
        s->cap = ncap;
        return 0;
}

static int settles_push(struct rmq_settles *s, uint64_t broker_tag, enum rmq_settle_op op)
{
        int r = settles_reserve(s);
        if (r < 0)
                return r;
        s->v[s->n].broker_tag = broker_tag;
        s->v[s->n].op = op;
        s->n++;
        return 0;
}

static int consumer_open(struct rmq_consumer *c)
{
        struct rmq_link *l = &c->link;
        struct rmq_bus *b = c->bus;
        struct rmq_qdef *def = NULL;
        char name[64];
        snprintf(name, sizeof(name), "domainmon consumer %.40s", c->queue);

        int r = link_connect(l, name);
        if (r < 0)
                return r;
        r = link_channel_open(l, RMQ_CH);
        if (r < 0)
                goto drop;
        pthread_mutex_lock(&b->mu);
        struct rmq_qdef *known = registry_find(b, c->queue);
        if (known) {
                def = qdef_copy(known);
                if (!def)
                        r = DM_ENOMEM;
        }
        pthread_mutex_unlock(&b->mu);
        if (r < 0)
                goto drop;
        /* After a broker lost its data the queue may be gone: declare what we know of it. */
        if (def) {
                r = link_declare_exchange(l, RMQ_CH, b->t.exchange, "topic");
                if (r == 0)
                        r = link_declare_queue(l, RMQ_CH, def);
                if (r < 0)
                        goto drop;
        }
        amqp_basic_qos(l->conn, RMQ_CH, 0, (uint16_t)c->prefetch, 0);
        r = link_reply(l, amqp_get_rpc_reply(l->conn), RMQ_CH, "basic.qos");
        if (r < 0)
                goto drop;
        amqp_basic_consume_ok_t *ok = amqp_basic_consume(
            l->conn, RMQ_CH, rmq_str(c->queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
        r = link_reply(l, amqp_get_rpc_reply(l->conn), RMQ_CH, "basic.consume");
        if (r < 0)
                goto drop;
        size_t tl =
            ok->consumer_tag.len < sizeof(c->ctag) - 1 ? ok->consumer_tag.len : sizeof(c->ctag) - 1;
        memcpy(c->ctag, ok->consumer_tag.bytes, tl);
        c->ctag[tl] = '\0';
        c->cancel_sent = false;
        qdef_free(def);
        return 0;

drop:
        qdef_free(def);
        l->broken = true;
        link_drop(l, false);
        return r;
}

/* Sends the settlements other threads queued. */
static void consumer_flush(struct rmq_consumer *c)
{
        struct rmq_link *l = &c->link;
        pthread_mutex_lock(&c->mu);
        struct rmq_settles tmp = c->pending;
        c->pending = c->sending;
        c->sending = tmp;
        pthread_mutex_unlock(&c->mu);

        for (size_t i = 0; i < c->sending.n && l->conn && !l->broken; i++) {
                const struct rmq_settle *s = &c->sending.v[i];
                int st = s->op == RMQ_ACK ? amqp_basic_ack(l->conn, RMQ_CH, s->broker_tag, 0)
                                          : amqp_basic_nack(l->conn, RMQ_CH, s->broker_tag, 0,
                                                            s->op == RMQ_NACK_REQUEUE);
                if (st != AMQP_STATUS_OK) {
                        l->broken = true;
                        rmq_set_err(l, "ack: %s", amqp_error_string2(st));
                }
        }
        c->sending.n = 0;
}

/* The connection is gone: what it delivered is the broker's again. */
static void consumer_lost(struct rmq_consumer *c)
{
        pthread_mutex_lock(&c->mu);
        tagset_clear(&c->outstanding);
        c->pending.n = 0;
        c->conn_first_seq = c->next_seq;
        c->connected = false;
        pthread_mutex_unlock(&c->mu);
        free(c->in.body);
        memset(&c->in, 0, sizeof(c->in));
}

/* A whole message arrived: hand it to the handler, unless the consumer was cancelled. */
static void consumer_deliver(struct rmq_consumer *c)
{
        struct rmq_incoming *in = &c->in;
        uint64_t seq = 0;
        enum { DELIVER, PUT_BACK, REJECT, KEEP } what = DELIVER;

        pthread_mutex_lock(&c->mu);
        if (c->stop)
                what = KEEP; /* closing: the broker takes it back */
        else if (c->cancel_sent)
                what = PUT_BACK;
        else if (in->too_big)
                what = REJECT;
        if (what == DELIVER) {
                seq = c->next_seq;
                if (seq > RMQ_SEQ_MASK || tagset_put(&c->outstanding, seq, in->broker_tag) < 0)
                        what = PUT_BACK;
                else
                        c->next_seq++;
        }
        if (what == PUT_BACK || what == REJECT) {
                if (settles_push(&c->pending, in->broker_tag,
                                 what == REJECT ? RMQ_NACK_DROP : RMQ_NACK_REQUEUE) < 0)
                        c->link.broken = true; /* cannot settle it: let the broker take it back */
        }
        pthread_mutex_unlock(&c->mu);

        if (what == DELIVER) {
                struct dm_bus_msg msg = {
                    .routing_key = in->key,
                    .body = in->body ? (const void *)in->body : (const void *)"",
                    .len = in->size,
                    .tag = ((uint64_t)c->id << RMQ_SEQ_BITS) | seq,
                    .redelivered = in->redelivered,
                };
                c->handler(c->arg, &msg);
        }
        free(in->body);
        memset(in, 0, sizeof(*in));
}

static void consumer_frame(struct rmq_consumer *c, const amqp_frame_t *f)
{
        struct rmq_link *l = &c->link;
        struct rmq_incoming *in = &c->in;

        switch (f->frame_type) {
        case AMQP_FRAME_METHOD:
                break;
        case AMQP_FRAME_HEADER:
                if (!in->active || in->have_header) {
                        l->broken = true;
                        rmq_set_err(l, "unexpected content header");
                        return;
                }
                in->have_header = true;
                if (f->payload.properties.body_size > RMQ_MAX_BODY) {
                        in->too_big = true;
                        in->size = (size_t)f->payload.properties.body_size;
                } else {
                        in->size = (size_t)f->payload.properties.body_size;
                        in->body = in->size ? malloc(in->size) : NULL;
                        if (in->size && !in->body)
                                in->too_big = true; /* rejected rather than lost silently */
                }
                if (in->size == 0)
                        consumer_deliver(c);
                return;
        case AMQP_FRAME_BODY: {
                if (!in->active || !in->have_header) {
                        l->broken = true;
                        rmq_set_err(l, "unexpected content body");
                        return;
                }
                size_t len = f->payload.body_fragment.len;
                if (len > in->size - in->got) {
                        l->broken = true;
                        rmq_set_err(l, "content body longer than announced");
                        return;
                }
                if (in->body)
                        memcpy(in->body + in->got, f->payload.body_fragment.bytes, len);
                in->got += len;
                if (in->got == in->size)
                        consumer_deliver(c);
                return;
        }
        default:
                return;
        }

        switch (f->payload.method.id) {
        case AMQP_BASIC_DELIVER_METHOD: {
                const amqp_basic_deliver_t *m = f->payload.method.decoded;
                if (in->active) {
                        l->broken = true;
                        rmq_set_err(l, "delivery inside a delivery");
                        return;
                }
                memset(in, 0, sizeof(*in));
                in->active = true;
                in->broker_tag = m->delivery_tag;
                in->redelivered = m->redelivered;
                size_t kl = m->routing_key.len < sizeof(in->key) - 1 ? m->routing_key.len
                                                                     : sizeof(in->key) - 1;
                memcpy(in->key, m->routing_key.bytes, kl);
                in->key[kl] = '\0';
                return;
        }
        case AMQP_BASIC_CANCEL_METHOD:
                /* The broker ended the consumer (queue deleted, leader moved): start over. */
                l->broken = true;
                rmq_set_err(l, "the broker cancelled the consumer");
                return;
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD:
                link_closed_by_broker(l, f);
                return;
        default:
                return; /* basic.cancel-ok and the like */
        }
}

static void *consumer_main(void *arg)
{
        struct rmq_consumer *c = arg;
        struct rmq_link *l = &c->link;
        unsigned backoff = RMQ_BACKOFF_MIN_MS;
        bool down_logged = false;

        for (;;) {
                pthread_mutex_lock(&c->mu);
                bool stop = c->stop, cancel = c->cancel_requested;
                if (cancel && !l->conn) {
                        c->cancel_seen = true; /* nothing delivered is running or owed */
                        pthread_cond_broadcast(&c->cond);
                }
                pthread_mutex_unlock(&c->mu);
                if (stop || (cancel && !l->conn))
                        break;

                if (!l->conn) {
                        int r = consumer_open(c);
                        pthread_mutex_lock(&c->mu);
                        bool first = !c->started;
                        if (first) {
                                c->started = true;
                                c->start_result = r;
                                pthread_cond_broadcast(&c->cond);
                        }
                        c->conn_first_seq = c->next_seq;
                        c->connected = r == 0;
                        pthread_mutex_unlock(&c->mu);
                        if (r < 0 && first)
                                break; /* dm_bus_consume reports it */
                        if (r < 0) {
                                if (!down_logged)
                                        log_link(l, false, c->queue);
                                down_logged = true;
                                link_sleep(l, backoff);
                                backoff = backoff_next(backoff);
                                continue;
                        }
                        if (down_logged)
                                log_link(l, true, c->queue);
                        down_logged = false;
                        backoff = RMQ_BACKOFF_MIN_MS;
                }

                if (cancel && !c->cancel_sent) {
                        /* Deliveries already on the way are put back as they arrive. */
                        amqp_basic_cancel(l->conn, RMQ_CH, rmq_str(c->ctag));
                        link_reply(l, amqp_get_rpc_reply(l->conn), RMQ_CH, "basic.cancel");
                        c->cancel_sent = true;
                        pthread_mutex_lock(&c->mu);
                        c->cancel_seen = true;
                        pthread_cond_broadcast(&c->cond);
                        pthread_mutex_unlock(&c->mu);
                }
                consumer_flush(c);
                if (c->cancel_sent && !l->broken) {
                        pthread_mutex_lock(&c->mu);
                        bool owed = c->outstanding.n > 0 || c->pending.n > 0;
                        pthread_mutex_unlock(&c->mu);
                        if (!owed)
                                break; /* cancelled and everything settled */
                }

                if (!l->broken) {
                        link_wait(l, RMQ_POLL_MAX_MS);
                        amqp_frame_t f;
                        while (!l->broken && link_next_frame(l, &f) == 1) {
                                consumer_frame(c, &f);
                                consumer_flush(c);
                                pthread_mutex_lock(&c->mu);
                                bool leave = c->stop || (c->cancel_requested && !c->cancel_sent);
                                pthread_mutex_unlock(&c->mu);
                                if (leave)
                                        break;
                        }
                        if (!l->broken)
                                amqp_maybe_release_buffers(l->conn);
                }

                if (l->broken) {
                        consumer_lost(c);
                        log_link(l, false, c->queue);
                        down_logged = true;
                        link_drop(l, false);
                        if (c->cancel_sent)
                                break;
                        link_sleep(l, backoff);
                        backoff = backoff_next(backoff);
                }
        }

        consumer_flush(c);
        consumer_lost(c);
        link_drop(l, true);
        pthread_mutex_lock(&c->mu);
        if (!c->started) { /* cancelled before its first connection */
                c->started = true;
                c->start_result = DM_ECANCELED;
        }
        c->cancel_seen = true;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->mu);
        return NULL;
}

static void consumer_free(struct rmq_consumer *c)
{
        if (!c)
                return;
        tagset_done(&c->outstanding);
        free(c->pending.v);
        free(c->sending.v);
        free(c->in.body);
        link_done(&c->link);
        pthread_cond_destroy(&c->cond);
        pthread_mutex_destroy(&c->mu);
        free(c->queue);
        free(c);
}

/* ---- URL ------------------------------------------------------------------------------ */

static void target_done(struct rmq_target *t)
{
        free(t->host);
        free(t->user);
        if (t->password) {
                explicit_bzero(t->password, strlen(t->password));
                free(t->password);
        }
        free(t->vhost);
        free(t->exchange);
        free(t->cacert);
        memset(t, 0, sizeof(*t));
}

static int target_param_int(const char *v, size_t vlen, int lo, int hi, int *ret)
{
        if (vlen == 0 || vlen > 9)
                return DM_EINVAL;
        int n = 0;
        for (size_t i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9')
                        return DM_EINVAL;
                n = n * 10 + (v[i] - '0');
        }
        if (n < lo || n > hi)
                return DM_EINVAL;
        *ret = n;
        return 0;
}

/* "?heartbeat=S&publish_timeout=S&exchange=NAME&cacert=PATH" after the URL proper. */
static int target_params(struct rmq_target *t, const char *q, char *err, size_t errlen)
{
        while (*q) {
                const char *amp = strchrnul(q, '&');
                const char *eq = memchr(q, '=', (size_t)(amp - q));
                if (!eq)
                        return dm_errorf(DM_EINVAL, err, errlen,
                                         "amqp bus URL: parameter without value");
                size_t klen = (size_t)(eq - q);
                const char *v = eq + 1;
                size_t vlen = (size_t)(amp - v);
                int r = 0;
                if (klen == 9 && memcmp(q, "heartbeat", 9) == 0) {
                        r = target_param_int(v, vlen, 0, 3600, &t->heartbeat_s);
                } else if (klen == 15 && memcmp(q, "publish_timeout", 15) == 0) {
                        r = target_param_int(v, vlen, 1, 3600, &t->publish_timeout_s);
                } else if ((klen == 8 && memcmp(q, "exchange", 8) == 0) ||
                           (klen == 6 && memcmp(q, "cacert", 6) == 0)) {
                        char *s = strndup(v, vlen);
                        if (!s)
                                return dm_errorf(DM_ENOMEM, err, errlen, "out of memory");
                        char **field = klen == 8 ? &t->exchange : &t->cacert;
                        free(*field);
                        *field = s;
                        if (klen == 8 && !dm_bus_name_valid(s, false))
                                r = DM_EINVAL;
                        if (klen == 6 && vlen == 0)
                                r = DM_EINVAL;
                } else {
                        return dm_errorf(DM_EINVAL, err, errlen,
                                         "amqp bus URL: unknown parameter '%.*s' (known: "
                                         "heartbeat, publish_timeout, exchange, cacert)",
                                         (int)klen, q);
                }
                if (r < 0)
                        return dm_errorf(DM_EINVAL, err, errlen,
                                         "amqp bus URL: bad value for '%.*s'", (int)klen, q);
                q = *amp ? amp + 1 : amp;
        }
        return 0;
}

static int target_parse(struct rmq_target *t, const char *url, char *err, size_t errlen)
{
        struct amqp_connection_info ci;
        const char *qm = strchr(url, '?');
        size_t blen = qm ? (size_t)(qm - url) : strlen(url);
        int r = 0;

        memset(t, 0, sizeof(*t));
        t->heartbeat_s = RMQ_HEARTBEAT_DEFAULT_S;
        t->publish_timeout_s = RMQ_PUBLISH_TIMEOUT_DEFAULT_S;
        char *base = strndup(url, blen);
        if (!base)
                return dm_errorf(DM_ENOMEM, err, errlen, "out of memory");
        /* The scheme was matched without case in bus.c; rabbitmq-c wants it lower-case. */
        for (char *p = base; *p && *p != ':'; p++) {
                if (*p >= 'A' && *p <= 'Z')
                        *p = (char)(*p - 'A' + 'a');
        }
        if (amqp_parse_url(base, &ci) != AMQP_STATUS_OK) {
                r = dm_errorf(DM_EINVAL, err, errlen,
                              "bad amqp URL (expected amqp://user:pass@host:port/vhost)");
                goto free_base;
        }
        /* "amqp://host/" names the empty vhost by the letter of the spec, but everyone who
         * writes it means the default one. */
        const char *vhost = ci.vhost && *ci.vhost ? ci.vhost : "/";
        t->host = strdup(ci.host && *ci.host ? ci.host : "localhost");
        t->user = strdup(ci.user);
        t->password = strdup(ci.password);
        t->vhost = strdup(vhost);
        t->port = ci.port;
        t->ssl = ci.ssl != 0;
        if (!t->host || !t->user || !t->password || !t->vhost) {
                r = dm_errorf(DM_ENOMEM, err, errlen, "out of memory");
                goto free_base;
        }
        if (qm)
                r = target_params(t, qm + 1, err, errlen);
        if (r == 0 && !t->exchange && !(t->exchange = strdup(RMQ_EXCHANGE_DEFAULT)))
                r = dm_errorf(DM_ENOMEM, err, errlen, "out of memory");
        if (r == 0 && !t->cacert && !(t->cacert = strdup(RMQ_CACERT_DEFAULT)))
                r = dm_errorf(DM_ENOMEM, err, errlen, "out of memory");

free_base:
        explicit_bzero(base, blen);
        free(base);
        if (r < 0)
                target_done(t);
        return r;
}

/* ---- the ops -------------------------------------------------------------------------- */

static void rmq_bus_destroy(struct rmq_bus *b)
{
        for (size_t i = 0; i < b->nconsumers; i++)
                consumer_free(b->consumers[i]);
        free(b->consumers);
        for (size_t i = 0; i < b->nqdefs; i++)
                qdef_free(b->qdefs[i]);
        link_done(&b->pub.link);
        pthread_cond_destroy(&b->pub.cond);
        pthread_mutex_destroy(&b->pub.mu);
        pthread_mutex_destroy(&b->mu);
        target_done(&b->t);
        free(b);
}

static int rmq_open(const char *url, char *err, size_t errlen, struct dm_bus **ret_bus)
{
        struct rmq_bus *b = calloc(1, sizeof(*b));
        int r;
        if (!b)
                return dm_errorf(DM_ENOMEM, err, errlen, "out of memory");
        b->base.ops = &dm_bus_amqp_ops;
        r = target_parse(&b->t, url, err, errlen);
        if (r < 0)
                goto free_bus;
        if (pthread_mutex_init(&b->mu, NULL) != 0) {
                r = dm_errorf(DM_ENOMEM, err, errlen, "cannot create a lock");
                goto free_target;
        }
        if (pthread_mutex_init(&b->pub.mu, NULL) != 0) {
                r = dm_errorf(DM_ENOMEM, err, errlen, "cannot create a lock");
                goto destroy_mu;
        }
        if (rmq_cond_init(&b->pub.cond) < 0) {
                r = dm_errorf(DM_ENOMEM, err, errlen, "cannot create a condition variable");
                goto destroy_pub_mu;
        }
        r = link_init(&b->pub.link, b, "publisher");
        if (r < 0) {
                dm_errorf(r, err, errlen, "cannot create an eventfd");
                goto destroy_pub_cond;
        }
        if (link_start(&b->pub.link, pub_main, &b->pub) < 0) {
                r = dm_errorf(DM_EAGAIN, err, errlen, "cannot start the publisher thread");
                goto done_link;
        }
        pthread_setname_np(b->pub.link.thread, "bus:publish");

        /* The first connection is made before open returns, so a wrong URL, password or
         * vhost is a start-up error rather than a stream of reconnection warnings. */
        pthread_mutex_lock(&b->pub.mu);
        while (!b->pub.first_done)
                pthread_cond_wait(&b->pub.cond, &b->pub.mu);
        r = b->pub.first_result;
        pthread_mutex_unlock(&b->pub.mu);
        if (r < 0) {
                dm_errorf(r, err, errlen, "RabbitMQ: %s", b->pub.link.err);
                pthread_join(b->pub.link.thread, NULL);
                goto done_link;
        }
        *ret_bus = &b->base;
        return 0;

done_link:
        link_done(&b->pub.link);
destroy_pub_cond:
        pthread_cond_destroy(&b->pub.cond);
destroy_pub_mu:
        pthread_mutex_destroy(&b->pub.mu);
destroy_mu:
        pthread_mutex_destroy(&b->mu);
free_target:
        target_done(&b->t);
free_bus:
        free(b);
        return r;
}

static void rmq_free(struct dm_bus *bus)
{
        struct rmq_bus *b = (struct rmq_bus *)bus;

        pthread_mutex_lock(&b->mu);
        b->stopping = true;
        pthread_mutex_unlock(&b->mu);
        /* No consumer is added once stopping is set: the array is stable from here. */
        for (size_t i = 0; i < b->nconsumers; i++) {
                struct rmq_consumer *c = b->consumers[i];
                pthread_mutex_lock(&c->mu);
                c->stop = true;
                pthread_mutex_unlock(&c->mu);
                link_wake(&c->link);
        }
        pthread_mutex_lock(&b->pub.mu);
        b->pub.stopping = true;
        pthread_cond_broadcast(&b->pub.cond);
        pthread_mutex_unlock(&b->pub.mu);
        link_wake(&b->pub.link);

        for (size_t i = 0; i < b->nconsumers; i++)
                link_join(&b->consumers[i]->link);
        link_join(&b->pub.link);
        rmq_bus_destroy(b);
}

static int rmq_declare(struct dm_bus *bus, const char *queue, const char *pattern,
                       const struct dm_bus_queue_opts *opts)
{
        struct rmq_bus *b = (struct rmq_bus *)bus;
        const char *dlq = opts->dead_letter_queue;
        char dlx[DM_BUS_NAME_MAX + 1];
        int r;

        if (dlq && rmq_dlx_name(b, dlq, dlx, sizeof(dlx)) < 0)
                return DM_EINVAL;
        static const struct dm_bus_queue_opts plain = {0};
        pthread_mutex_lock(&b->mu);
        r = registry_check(b, queue, opts);
        if (r == 0 && dlq)
                r = registry_check(b, dlq, &plain);
        pthread_mutex_unlock(&b->mu);
        if (r < 0)
                return r;

        struct rmq_req *req = calloc(1, sizeof(*req));
        if (!req)
                return DM_ENOMEM;
        req->kind = RMQ_REQ_DECLARE;
        req->def = qdef_new(queue, opts->delivery_limit, dlq, opts->transient);
        if (!req->def || qdef_add_pattern(req->def, pattern) < 0) {
                qdef_free(req->def);
                free(req);
                return DM_ENOMEM;
        }
        r = pub_submit(b, req);
        if (r == DM_EBUS || r == DM_ESHUTDOWN) {
                qdef_free(req->def);
                free(req); /* never queued */
                return r;
        }
        if (r == 0)
                r = req->result;
        if (r == 0) {
                pthread_mutex_lock(&b->mu);
                r = registry_add(b, req->def);
                pthread_mutex_unlock(&b->mu);
        }
        pub_put(b, req);
        return r;
}

/* Asked on the publisher's connection, so it fails at once with DM_EBUS while that is down. */
static int rmq_queue_depth(struct dm_bus *bus, const char *queue, uint64_t *ret_ready,
                           uint64_t *ret_consumers)
{
        struct rmq_bus *b = (struct rmq_bus *)bus;
        size_t qlen = strlen(queue);
        struct rmq_req *req = calloc(1, sizeof(*req) + qlen + 1);
        if (!req)
                return DM_ENOMEM;
        char *name = (char *)(req + 1);
        memcpy(name, queue, qlen + 1);
        req->kind = RMQ_REQ_DEPTH;
        req->queue = name;
        int r = pub_submit(b, req);
        if (r == DM_EBUS || r == DM_ESHUTDOWN) {
                free(req); /* never queued */
                return r;
        }
        if (r == 0)
                r = req->result;
        if (r == 0) {
                *ret_ready = req->ready;
                *ret_consumers = req->consumers;
        }
        pub_put(b, req);
        return r;
}

static int rmq_publish(struct dm_bus *bus, struct dm_bus_out *msgs, size_t n, unsigned flags)
{
        struct rmq_bus *b = (struct rmq_bus *)bus;
        size_t bytes = sizeof(struct rmq_req);
        int r;

        if (n > (SIZE_MAX - bytes) / sizeof(struct rmq_out))
                return DM_E2BIG;
        bytes += n * sizeof(struct rmq_out);
        for (size_t i = 0; i < n; i++) {
                size_t one = strlen(msgs[i].routing_key) + 1 + msgs[i].len;
                if (one > SIZE_MAX - bytes)
                        return DM_E2BIG;
                bytes += one;
        }
        /* One allocation: the request, its message array, then each key and body. */
        struct rmq_req *req = malloc(bytes);
        if (!req)
                return DM_ENOMEM;
        memset(req, 0, sizeof(*req));
        req->kind = RMQ_REQ_PUBLISH;
        req->flags = flags;
        req->n = n;
        req->msgs = (struct rmq_out *)(req + 1);
        char *p = (char *)(req->msgs + n);
        for (size_t i = 0; i < n; i++) {
                struct rmq_out *m = &req->msgs[i];
                size_t kl = strlen(msgs[i].routing_key) + 1;
                memcpy(p, msgs[i].routing_key, kl);
                m->key = p;
                p += kl;
                if (msgs[i].len)
                        memcpy(p, msgs[i].body, msgs[i].len);
                m->body = p;
                m->len = msgs[i].len;
                m->result = 0;
                m->settled = m->returned = false;
                p += msgs[i].len;
        }

        r = pub_submit(b, req);
        if (r == DM_EBUS || r == DM_ESHUTDOWN) {
                free(req); /* never queued */
                for (size_t i = 0; i < n; i++)
                        msgs[i].result = r;
                return r;
        }
        int first = 0;
        pthread_mutex_lock(&b->pub.mu);
        for (size_t i = 0; i < n; i++) {
                msgs[i].result = r < 0 ? r : req->msgs[i].result;
                if (msgs[i].result < 0 && first == 0)
                        first = msgs[i].result;
        }
        req_release(req);
        pthread_mutex_unlock(&b->pub.mu);
        return first;
}

static int rmq_consume(struct dm_bus *bus, const char *queue, unsigned prefetch,
                       dm_bus_handler handler, void *arg)
{
        struct rmq_bus *b = (struct rmq_bus *)bus;
        struct rmq_consumer *c = NULL;
        int r;

        if (prefetch == 0 || prefetch > RMQ_PREFETCH_MAX)
                prefetch = RMQ_PREFETCH_MAX;
        c = calloc(1, sizeof(*c));
        if (!c)
                return DM_ENOMEM;
        c->bus = b;
        c->prefetch = prefetch;
        c->handler = handler;
        c->arg = arg;
        c->next_seq = 1;
        c->conn_first_seq = 1;
        c->queue = strdup(queue);
        if (!c->queue) {
                free(c);
                return DM_ENOMEM;
        }
        if (pthread_mutex_init(&c->mu, NULL) != 0) {
                r = DM_ENOMEM;
                goto free_queue;
        }
        if (rmq_cond_init(&c->cond) < 0) {
                r = DM_ENOMEM;
                goto destroy_mu;
        }
        r = link_init(&c->link, b, "consumer");
        if (r < 0)
                goto destroy_cond;

        pthread_mutex_lock(&b->mu);
        if (b->stopping) {
                r = DM_ESHUTDOWN;
        } else if (b->nconsumers == RMQ_MAX_CONSUMERS) {
                r = DM_ENOSPC;
        } else if (b->nconsumers == b->consumers_cap) {
                size_t ncap = b->consumers_cap ? b->consumers_cap * 2 : 16;
                struct rmq_consumer **nc = realloc(b->consumers, ncap * sizeof(*nc));
                if (nc) {
                        b->consumers = nc;
                        b->consumers_cap = ncap;
                } else {
                        r = DM_ENOMEM;
                }
        }
        if (r == 0) {
                c->id = (uint32_t)b->nconsumers + 1;
                if (link_start(&c->link, consumer_main, c) < 0)
                        r = DM_EAGAIN;
                else
                        b->consumers[b->nconsumers++] = c;
        }
        pthread_mutex_unlock(&b->mu);
        if (r < 0)
                goto done_link;
        char tname[16];
        snprintf(tname, sizeof(tname), "bus:%.11s", queue);
        pthread_setname_np(c->link.thread, tname);

        /* Wait for the first basic.consume-ok (or why there is none). The consumer stays in
         * the array even when it failed: tags carry its index. */
        pthread_mutex_lock(&c->mu);
        while (!c->started)
                pthread_cond_wait(&c->cond, &c->mu);
        r = c->start_result;
        pthread_mutex_unlock(&c->mu);
        if (r < 0)
                link_join(&c->link);
        return r;

done_link:
        link_done(&c->link);
destroy_cond:
        pthread_cond_destroy(&c->cond);
destroy_mu:
        pthread_mutex_destroy(&c->mu);
free_queue:
        free(c->queue);
        free(c);
        return r;
}

/* A transient queue whose last consumer here was cancelled: the broker deletes it
 * (auto-delete), and no reconnection may declare it again. */
static void forget_transient(struct rmq_bus *b, const char *queue)
{
        pthread_mutex_lock(&b->mu);
        struct rmq_qdef *d = registry_find(b, queue);
        bool consumed = false;
        for (size_t i = 0; d && d->transient && !consumed && i < b->nconsumers; i++) {
                struct rmq_consumer *c = b->consumers[i];
                if (strcmp(c->queue, queue) != 0)
                        continue;
                pthread_mutex_lock(&c->mu);
                consumed =
                    !(c->started && c->start_result < 0) && !c->cancel_requested && !c->cancel_seen;
                pthread_mutex_unlock(&c->mu);
        }
        if (d && d->transient && !consumed)
                registry_remove(b, queue);
        pthread_mutex_unlock(&b->mu);
}

static int rmq_cancel(struct dm_bus *bus, const char *queue, dm_bus_handler handler, void *arg)
{
        struct rmq_bus *b = (struct rmq_bus *)bus;
        struct rmq_consumer **found = NULL;
        size_t nfound = 0;

        pthread_mutex_lock(&b->mu);
        if (b->nconsumers > 0)
                found = calloc(b->nconsumers, sizeof(*found));
        for (size_t i = 0; found && i < b->nconsumers; i++) {
                struct rmq_consumer *c = b->consumers[i];
                if (c->handler != handler || c->arg != arg || strcmp(c->queue, queue) != 0)
                        continue;
                pthread_mutex_lock(&c->mu);
                bool failed = c->started && c->start_result < 0;
                if (!failed && !c->cancel_requested && !c->cancel_seen) {
                        c->cancel_requested = true;
                        found[nfound++] = c;
                }
                pthread_mutex_unlock(&c->mu);
        }
        pthread_mutex_unlock(&b->mu);
        if (b->nconsumers > 0 && !found)
                return DM_ENOMEM;

        for (size_t i = 0; i < nfound; i++) {
                struct rmq_consumer *c = found[i];
                link_wake(&c->link);
                /* From its own handler: it sees the request as soon as the handler returns. */
                if (pthread_equal(c->link.thread, pthread_self()))
                        continue;
                pthread_mutex_lock(&c->mu);
                while (!c->cancel_seen)
                        pthread_cond_wait(&c->cond, &c->mu);
                pthread_mutex_unlock(&c->mu);
        }
        free(found);
        if (nfound > 0)
                forget_transient(b, queue);
        return nfound > 0 ? 0 : DM_ENOENT;
}

static int rmq_settle(struct dm_bus *bus, uint64_t tag, enum rmq_settle_op op)
{
        struct rmq_bus *b = (struct rmq_bus *)bus;
        uint64_t id = tag >> RMQ_SEQ_BITS, seq = tag & RMQ_SEQ_MASK;
        uint64_t broker_tag = 0;
        int r = 0;

        if (id == 0 || seq == 0)
                return DM_ENOENT;
        pthread_mutex_lock(&b->mu);
        struct rmq_consumer *c = id <= b->nconsumers ? b->consumers[id - 1] : NULL;
        pthread_mutex_unlock(&b->mu);
        if (!c)
                return DM_ENOENT;

        pthread_mutex_lock(&c->mu);
        if (seq >= c->next_seq)
                r = DM_ENOENT;
        else if (settles_reserve(&c->pending) < 0)
                r = DM_ENOMEM; /* before the take, so a failure leaves the tag owed */
        else if (tagset_take(&c->outstanding, seq, &broker_tag))
                settles_push(&c->pending, broker_tag, op);
        else
                r = seq < c->conn_first_seq ? DM_ESTALE : DM_ENOENT;
        pthread_mutex_unlock(&c->mu);
        if (r == 0)
                link_wake(&c->link);
        return r;
}

static int rmq_ack(struct dm_bus *bus, uint64_t tag)
{
        return rmq_settle(bus, tag, RMQ_ACK);
}

static int rmq_nack(struct dm_bus *bus, uint64_t tag, bool requeue)
{
        return rmq_settle(bus, tag, requeue ? RMQ_NACK_REQUEUE : RMQ_NACK_DROP);
}

/* Down while the publisher or a consumer that should run has no connection: a consumer
 * that failed to start, or was cancelled, does not count. */
static int rmq_ping(struct dm_bus *bus)
{
        struct rmq_bus *b = (struct rmq_bus *)bus;
        pthread_mutex_lock(&b->pub.mu);
        bool up = b->pub.connected;
        pthread_mutex_unlock(&b->pub.mu);
        pthread_mutex_lock(&b->mu);
        for (size_t i = 0; up && i < b->nconsumers; i++) {
                struct rmq_consumer *c = b->consumers[i];
                pthread_mutex_lock(&c->mu);
                bool runs = c->started && c->start_result == 0 && !c->cancel_requested &&
                            !c->cancel_seen && !c->stop;
                up = !runs || c->connected;
                pthread_mutex_unlock(&c->mu);
        }
        pthread_mutex_unlock(&b->mu);
        return up ? 0 : DM_EBUS;
}

/* The broker's queues outlive this process: its messages stay for other consumers. A queue
 * that was never declared through this bus is not known to it. */
static int rmq_reclaim(struct dm_bus *bus, const char *queue, dm_bus_handler handler, void *arg)
{
        (void)bus;
        (void)queue;
        (void)handler;
        (void)arg;
        return 0;
}

const struct dm_bus_ops dm_bus_amqp_ops = {
    .name = "amqp",
    .open = rmq_open,
    .free = rmq_free,
    .declare = rmq_declare,
    .publish = rmq_publish,
    .consume = rmq_consume,
    .cancel = rmq_cancel,
    .reclaim = rmq_reclaim,
    .ack = rmq_ack,
    .nack = rmq_nack,
    .ping = rmq_ping,
    .queue_depth = rmq_queue_depth,
};
