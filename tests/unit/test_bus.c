/* The bus contract, run over every backend this build has: the in-process one always, and
 * RabbitMQ when DM_TEST_AMQP_URL names a broker (scripts/test.sh starts a throwaway one;
 * set but unreachable is a failure, not a skip). Topic matching, routing, acks, prefetch,
 * requeue, fan-out, cancel, batches, confirms, dead-lettering and many threads; then what
 * only a broker has: redelivery when a connection closes, and a broker restart while
 * publishing and consuming (DM_TEST_AMQP_RESTART: a command that restarts it).
 *
 * The broker is shared by every test and every run: each test gets an exchange and queue
 * names of its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dm/bus.h"
#include "dm/error.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REC_MAX 128

/* ---- backends and per-test names ------------------------------------------------------- */

struct backend {
        const char *name;
        const char *url; /* NULL: not available in this run */
        bool broker;
};

static struct backend be_inproc = {.name = "inproc", .url = "inproc:"};
static struct backend be_amqp = {.name = "amqp", .broker = true};

struct ctx {
        const struct backend *be;
        char prefix[64]; /* names of this test: queues, and the exchange on a broker */
        int wait_ms;     /* how long "nothing more arrives" is watched */
};

static atomic_uint test_counter;

static int ctx_setup(void **state)
{
        const struct backend *be = *state;
        struct ctx *c = calloc(1, sizeof(*c));
        if (!c)
                return -1;
        c->be = be;
        snprintf(c->prefix, sizeof(c->prefix), "dmtest.%ld.%ld.%u", (long)getpid(),
                 (long)time(NULL), atomic_fetch_add(&test_counter, 1));
        c->wait_ms = be->broker ? 300 : 50;
        *state = c;
        return 0;
}

static int ctx_teardown(void **state)
{
        free(*state);
        return 0;
}

/* A queue name unique to this test on a broker; the plain name in process. */
static const char *qname(const struct ctx *c, char *buf, size_t size, const char *name)
{
        if (c->be->broker)
                snprintf(buf, size, "%s.%s", c->prefix, name);
        else
                snprintf(buf, size, "%s", name);
        return buf;
}

static struct dm_bus *open_url(const char *url)
{
        char err[256];
        struct dm_bus *bus = NULL;
        int r = dm_bus_open(url, err, sizeof(err), &bus);
        if (r != 0)
                print_error("dm_bus_open(%s): %s\n", url ? url : "NULL", err);
        assert_int_equal(r, 0);
        assert_non_null(bus);
        return bus;
}

/* Opens the test's backend; `extra` is appended to an inproc URL ("?max_messages=5"). */
static struct dm_bus *ctx_open_ex(const struct ctx *c, const char *extra)
{
        char url[512];
        if (c->be->broker)
                snprintf(url, sizeof(url), "%s%sexchange=%s", c->be->url,
                         strchr(c->be->url, '?') ? "&" : "?", c->prefix);
        else
                snprintf(url, sizeof(url), "%s%s", c->be->url, extra ? extra : "");
        return open_url(url);
}

static struct dm_bus *ctx_open(const struct ctx *c)
{
        return ctx_open_ex(c, NULL);
}

/* ---- a handler that records ------------------------------------------------------------ */

struct rec_msg {
        char key[64];
        char body[64];
        uint64_t tag;
        bool redelivered;
};

/* Collects deliveries for the main thread, which alone runs cmocka assertions. */
struct recorder {
        pthread_mutex_t mu;
        pthread_cond_t cond;
        struct rec_msg msgs[REC_MAX];
        size_t n;
        struct dm_bus *bus;
        int mode; /* what the handler does on its own */
        atomic_uint settle_errors;
        atomic_uint settled; /* acks and nacks the handler made */
};

enum {
        REC_KEEP = 0,       /* leave it to the test */
        REC_ACK = 1,        /* ack */
        REC_NACK_FIRST = 2, /* nack with requeue the first time, then drop */
        REC_NACK_ALL = 3,   /* nack with requeue, or without when the body starts with 'd' */
};

static void rec_init(struct recorder *r, struct dm_bus *bus, int mode)
{
        memset(r, 0, sizeof(*r));
        pthread_mutex_init(&r->mu, NULL);
        pthread_cond_init(&r->cond, NULL);
        r->bus = bus;
        r->mode = mode;
}

static void rec_done(struct recorder *r)
{
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->mu);
}

static void rec_handler(void *arg, const struct dm_bus_msg *msg)
{
        struct recorder *r = arg;
        pthread_mutex_lock(&r->mu);
        if (r->n < REC_MAX) {
                struct rec_msg *m = &r->msgs[r->n++];
                snprintf(m->key, sizeof(m->key), "%s", msg->routing_key);
                snprintf(m->body, sizeof(m->body), "%.*s", (int)msg->len, (const char *)msg->body);
                m->tag = msg->tag;
                m->redelivered = msg->redelivered;
        }
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->mu);
        int e = 0;
        if (r->mode == REC_ACK)
                e = dm_bus_ack(r->bus, msg->tag);
        else if (r->mode == REC_NACK_FIRST)
                e = dm_bus_nack(r->bus, msg->tag, !msg->redelivered);
        else if (r->mode == REC_NACK_ALL)
                e = dm_bus_nack(r->bus, msg->tag,
                                !(msg->len > 0 && ((const char *)msg->body)[0] == 'd'));
        if (e != 0)
                atomic_fetch_add(&r->settle_errors, 1);
        atomic_fetch_add(&r->settled, 1);
}

/* Waits until the handler has settled `want` messages itself. */
static unsigned rec_wait_settled(struct recorder *r, unsigned want, int ms)
{
        for (int waited = 0; atomic_load(&r->settled) < want && waited < ms; waited += 5) {
                struct timespec ts = {.tv_nsec = 5000000L};
                nanosleep(&ts, NULL);
        }
        return atomic_load(&r->settled);
}

/* Waits until at least `want` messages arrived or `ms` passed; returns the count. */
static size_t rec_wait(struct recorder *r, size_t want, int ms)
{
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += ms / 1000;
        dl.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
                dl.tv_sec++;
                dl.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&r->mu);
        while (r->n < want) {
                if (pthread_cond_timedwait(&r->cond, &r->mu, &dl) != 0)
                        break;
        }
        size_t n = r->n;
        pthread_mutex_unlock(&r->mu);
        return n;
}

static void sleep_ms(int ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

/* ---- in-process only -------------------------------------------------------------------- */

static void test_topic_match(void **state)
{
        static const struct {
                const char *pattern, *key;
                bool match;
        } cases[] = {
            {"task.dns", "task.dns", true},
            {"task.dns", "task.tls", false},
            {"task.dns", "task.dns.x", false},
            {"task.dns", "task", false},
            {"task.*", "task.dns", true},
            {"task.*", "task", false},
            {"task.*", "task.dns.x", false},
            {"*.dns", "task.dns", true},
            {"*", "task", true},
            {"*", "", false},
            {"*.*", "a.b", true},
            {"*.*", "a", false},
            {"#", "", true},
            {"#", "a", true},
            {"#", "a.b.c", true},
            {"change.dns.#", "change.dns", true},
            {"change.dns.#", "change.dns.A", true},
            {"change.dns.#", "change.dns.A.x", true},
            {"change.dns.#", "change.tls.A", false},
            {"change.#.A", "change.A", true},
            {"change.#.A", "change.dns.tls.A", true},
            {"change.#.A", "change.dns.AAAA", false},
            {"#.A", "change.dns.A", true},
            {"#.#", "a", true},
            {"#.*.#", "", false},
            {"#.*.#", "a.b", true},
            {"a.#.b.#.c", "a.x.b.y.c", true},
            {"a.#.b.#.c", "a.b.c", true},
            {"a.#.b.#.c", "a.c.b", false},
            {"*.#", "a", true},
            {"*.#", "", false},
            {"a.*.c", "a..c", true},
            {"a..c", "a..c", true},
            {"", "", true},
            {"", "a", false},
            {"abc", "ab", false},
            {"ab", "abc", false},
            {"A", "a", false},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                bool got = dm_bus_topic_match(cases[i].pattern, cases[i].key);
                if (got != cases[i].match)
                        print_error("pattern '%s' key '%s': got %d\n", cases[i].pattern,
                                    cases[i].key, got);
                assert_int_equal(got, cases[i].match);
        }
        assert_false(dm_bus_topic_match(NULL, "a"));
        assert_false(dm_bus_topic_match("a", NULL));

        /* Many '#' on a long key: must answer at once rather than backtrack forever. */
        char pat[256], key[256];
        size_t pn = 0, kn = 0;
        while (pn + 4 < sizeof(pat))
                pn += (size_t)snprintf(pat + pn, sizeof(pat) - pn, "#.a.");
        pat[pn - 1] = 'z';
        while (kn + 3 < sizeof(key))
                kn += (size_t)snprintf(key + kn, sizeof(key) - kn, "a.");
        key[kn - 1] = '\0';
        assert_false(dm_bus_topic_match(pat, key));

        /* Empty words count: 255 dots are 256 words, the most a valid key or pattern has. */
        char dots[256], dots2[256];
        memset(dots, '.', 255);
        dots[255] = '\0';
        memcpy(dots2, dots, sizeof(dots2));
        dots2[0] = 'a';
        assert_true(dm_bus_topic_match("#", dots));
        assert_true(dm_bus_topic_match(dots, dots));
        assert_false(dm_bus_topic_match(dots, dots2));
        assert_true(dm_bus_topic_match("*.#", dots2));
}

static void test_open_urls(void **state)
{
        char err[256];
        struct dm_bus *bus = NULL;

        bus = open_url(NULL);
        assert_string_equal(dm_bus_backend(bus), "inproc");
        dm_bus_free(bus);
        bus = open_url("inproc:");
        dm_bus_free(bus);
        bus = open_url("INPROC://?max_messages=10&max_bytes=1000");
        dm_bus_free(bus);

        bus = NULL;
        err[0] = '\0';
#ifdef DM_HAVE_RABBITMQ
        /* Built in: a broker that is not there is an error at open, naming where. */
        assert_int_equal(dm_bus_open("amqp://u:p@127.0.0.1:1/", err, sizeof(err), &bus),
                         DM_ECONNREFUSED);
        assert_non_null(strstr(err, "127.0.0.1:1"));
        assert_null(strstr(err, ":p@")); /* no password in messages */
        /* Refused before any connection is tried. */
        assert_int_equal(dm_bus_open("amqp://h/?colour=blue", err, sizeof(err), &bus), DM_EINVAL);
        assert_non_null(strstr(err, "colour"));
        assert_int_equal(dm_bus_open("amqp://h/?heartbeat=x", err, sizeof(err), &bus), DM_EINVAL);
        assert_int_equal(dm_bus_open("amqp://h/?exchange=", err, sizeof(err), &bus), DM_EINVAL);
        assert_int_equal(dm_bus_open("amqp://h:99999/", err, sizeof(err), &bus), DM_EINVAL);
        assert_int_equal(dm_bus_open("amqp://h/a/b", err, sizeof(err), &bus), DM_EINVAL);
#else
        assert_int_equal(dm_bus_open("amqp://guest:guest@127.0.0.1:5672/", err, sizeof(err), &bus),
                         DM_ENOBACKEND);
        assert_non_null(strstr(err, "amqp"));
        assert_int_equal(dm_bus_open("amqps://h/", err, sizeof(err), &bus), DM_ENOBACKEND);
#endif
        assert_null(bus);
        assert_int_equal(dm_bus_open("kafka://h/", err, sizeof(err), &bus), DM_EINVAL);
        assert_int_equal(dm_bus_open("nocolon", err, sizeof(err), &bus), DM_EINVAL);
        assert_int_equal(dm_bus_open("inproc:?max_messages=abc", err, sizeof(err), &bus),
                         DM_EINVAL);
        assert_int_equal(dm_bus_open("inproc:?max_messages=0", err, sizeof(err), &bus), DM_EINVAL);
        assert_int_equal(dm_bus_open("inproc:?colour=blue", err, sizeof(err), &bus), DM_EINVAL);
        assert_null(bus);
        dm_bus_free(NULL);
}

static void test_reclaim(void **state)
{
        struct dm_bus *bus = open_url("inproc:?max_messages=4");
        struct recorder r, back;
        rec_init(&r, bus, REC_KEEP);
        rec_init(&back, bus, REC_KEEP);
        assert_int_equal(dm_bus_reclaim(bus, "nope", rec_handler, &back), DM_ENOENT);
        assert_int_equal(dm_bus_reclaim(bus, "bad name", rec_handler, &back), DM_EINVAL);
        assert_int_equal(dm_bus_reclaim(bus, "q", NULL, &back), DM_EINVAL);
        assert_int_equal(dm_bus_declare(bus, "q", "#"), 0);
        assert_int_equal(dm_bus_reclaim(bus, "q", rec_handler, &back), 0);

        assert_int_equal(dm_bus_consume(bus, "q", 1, rec_handler, &r), 0);
        const char *bodies[] = {"held", "m1", "m2", "m3", "m4"};
        assert_int_equal(dm_bus_publish(bus, "task.x", bodies[0], strlen(bodies[0])), 0);
        assert_int_equal(rec_wait(&r, 1, 2000), 1);
        for (size_t i = 1; i < 5; i++)
                assert_int_equal(dm_bus_publish(bus, "task.x", bodies[i], strlen(bodies[i])), 0);
        assert_int_equal(dm_bus_cancel(bus, "q", rec_handler, &r), 0);
        assert_int_equal(dm_bus_publish(bus, "task.x", "full", 4), DM_ENOSPC);

        assert_int_equal(dm_bus_reclaim(bus, "q", rec_handler, &back), 4);
        assert_int_equal(back.n, 4);
        for (size_t i = 0; i < 4; i++) {
                assert_string_equal(back.msgs[i].body, bodies[i + 1]);
                assert_string_equal(back.msgs[i].key, "task.x");
                assert_int_equal(back.msgs[i].tag, 0);
        }
        assert_int_equal(dm_bus_reclaim(bus, "q", rec_handler, &back), 0);
        assert_int_equal(dm_bus_publish(bus, "task.x", "room", 4), 0);

        /* The held message is settled as before; requeued, it is reclaimable as well. */
        assert_int_equal(dm_bus_nack(bus, r.msgs[0].tag, true), 0);
        assert_int_equal(dm_bus_reclaim(bus, "q", rec_handler, &back), 2);
        assert_string_equal(back.msgs[4].body, "held");
        assert_true(back.msgs[4].redelivered);
        assert_string_equal(back.msgs[5].body, "room");
        dm_bus_free(bus);
        rec_done(&r);
        rec_done(&back);
}

/* A publisher on its own thread, for publishes that wait (DM_BUS_CONSUMED). */
struct waiting_pub {
        struct dm_bus *bus;
        struct dm_bus_out out[3];
        size_t n;
        int result;
        atomic_bool done;
        pthread_t thread;
};

static void *waiting_pub_main(void *arg)
{
        struct waiting_pub *p = arg;
        p->result = dm_bus_publish_batch(p->bus, p->out, p->n, DM_BUS_CONSUMED);
        atomic_store(&p->done, true);
        return NULL;
}

static void waiting_pub_start(struct waiting_pub *p, struct dm_bus *bus, const char *key,
                              const char *const *bodies, size_t n)
{
        memset(p, 0, sizeof(*p));
        p->bus = bus;
        p->n = n;
        for (size_t i = 0; i < n; i++)
                p->out[i] = (struct dm_bus_out){
                    .routing_key = key, .body = bodies[i], .len = strlen(bodies[i])};
        atomic_init(&p->done, false);
        assert_int_equal(pthread_create(&p->thread, NULL, waiting_pub_main, p), 0);
}

static int waiting_pub_join(struct waiting_pub *p)
{
        pthread_join(p->thread, NULL);
        return p->result;
}

/* In process, a DM_BUS_CONSUMED publish returns once the durable queues' consumers have
 * settled their copies, so that what the publisher forgets was consumed. */
static void test_publish_consumed(void **state)
{
        (void)state;
        struct dm_bus *bus = open_url("inproc:");
        struct recorder r, feed;
        struct waiting_pub p;
        static const struct dm_bus_queue_opts transient = {.transient = true};
        const char *one[] = {"e1"}, *three[] = {"e2", "e3", "e4"}, *held[] = {"e5"};

        rec_init(&r, bus, REC_KEEP);
        rec_init(&feed, bus, REC_KEEP); /* never acks: a transient queue is not waited for */
        assert_int_equal(dm_bus_declare(bus, "alerts", "change.#"), 0);
        assert_int_equal(dm_bus_declare_opts(bus, "feed", "#", &transient), 0);
        assert_int_equal(dm_bus_consume(bus, "feed", 0, rec_handler, &feed), 0);

        /* A durable queue nobody consumes keeps the copy, and nobody is waited for. */
        assert_int_equal(
            dm_bus_publish_batch(
                bus, (struct dm_bus_out[]){{.routing_key = "change.a", .body = "x", .len = 1}}, 1,
                DM_BUS_CONSUMED),
            0);
        uint64_t ready = 0, consumers = 0;
        assert_int_equal(dm_bus_queue_depth(bus, "alerts", &ready, &consumers), 0);
        assert_int_equal(ready, 1);
        /* Routed nowhere: nothing to wait for. */
        assert_int_equal(dm_bus_publish_batch(
                             bus,
                             (struct dm_bus_out[]){{.routing_key = "other", .body = "x", .len = 1}},
                             1, DM_BUS_CONSUMED),
                         0);

        assert_int_equal(dm_bus_consume(bus, "alerts", 8, rec_handler, &r), 0);
        assert_int_equal(rec_wait(&r, 1, 2000), 1); /* the one left from above */
        assert_int_equal(dm_bus_ack(bus, r.msgs[0].tag), 0);

        /* Held until the ack; a nack with requeue is not the end of it. */
        waiting_pub_start(&p, bus, "change.b", one, 1);
        assert_int_equal(rec_wait(&r, 2, 2000), 2);
        sleep_ms(100);
        assert_false(atomic_load(&p.done));
        assert_int_equal(dm_bus_nack(bus, r.msgs[1].tag, true), 0);
        assert_int_equal(rec_wait(&r, 3, 2000), 3);
        assert_true(r.msgs[2].redelivered);
        sleep_ms(100);
        assert_false(atomic_load(&p.done));
        assert_int_equal(dm_bus_ack(bus, r.msgs[2].tag), 0);
        assert_int_equal(waiting_pub_join(&p), 0);
        assert_int_equal(p.out[0].result, 0);

        /* A batch waits for all of it. */
        waiting_pub_start(&p, bus, "change.c", three, 3);
        assert_int_equal(rec_wait(&r, 6, 2000), 6);
        assert_int_equal(dm_bus_ack(bus, r.msgs[3].tag), 0);
        assert_int_equal(dm_bus_nack(bus, r.msgs[4].tag, false), 0); /* put aside: settled */
        sleep_ms(100);
        assert_false(atomic_load(&p.done));
        assert_int_equal(dm_bus_ack(bus, r.msgs[5].tag), 0);
        assert_int_equal(waiting_pub_join(&p), 0);

        /* Nobody settles: a timeout, the copy still owed. */
        waiting_pub_start(&p, bus, "change.d", held, 1);
        assert_int_equal(rec_wait(&r, 7, 2000), 7);
        assert_int_equal(waiting_pub_join(&p), DM_ETIMEDOUT);
        assert_int_equal(dm_bus_ack(bus, r.msgs[6].tag), 0);

        /* The consumer goes while the copy waits in the queue: told at once, not at the
         * deadline. Fill the prefetch first so that the copy stays ready. */
        for (size_t i = 0; i < 8; i++)
                assert_int_equal(dm_bus_publish(bus, "change.fill", "f", 1), 0);
        assert_int_equal(rec_wait(&r, 15, 2000), 15);
        waiting_pub_start(&p, bus, "change.e", one, 1);
        sleep_ms(100);
        assert_false(atomic_load(&p.done));
        int64_t t0 = (int64_t)time(NULL);
        assert_int_equal(dm_bus_cancel(bus, "alerts", rec_handler, &r), 0);
        assert_int_equal(waiting_pub_join(&p), DM_EBUS);
        assert_true((int64_t)time(NULL) - t0 <= 2);

        /* The transient queue got everything, and holding it unacked delayed nobody. */
        assert_true(rec_wait(&feed, 16, 2000) >= 16);
        dm_bus_free(bus);
        rec_done(&r);
        rec_done(&feed);
}

static void test_queue_bounded(void **state)
{
        struct dm_bus *bus = open_url("inproc:?max_messages=5&max_bytes=64");
        assert_int_equal(dm_bus_declare(bus, "small", "#"), 0);
        assert_int_equal(dm_bus_declare(bus, "other", "x"), 0);
        for (int i = 0; i < 5; i++)
                assert_int_equal(dm_bus_publish(bus, "y", "1234", 4), 0);
        assert_int_equal(dm_bus_publish(bus, "y", "1234", 4), DM_ENOSPC);
        /* "small" is full, so a fan-out to both reaches neither rather than one of two. */
        assert_int_equal(dm_bus_publish(bus, "x", "1234", 4), DM_ENOSPC);
        struct recorder ro;
        rec_init(&ro, bus, REC_ACK);
        assert_int_equal(dm_bus_consume(bus, "other", 1, rec_handler, &ro), 0);
        sleep_ms(50);
        assert_int_equal(rec_wait(&ro, 1, 0), 0);

        struct dm_bus *b2 = open_url("inproc:?max_bytes=16");
        assert_int_equal(dm_bus_declare(b2, "q", "#"), 0);
        assert_int_equal(dm_bus_publish(b2, "k", "0123456789", 10), 0);
        assert_int_equal(dm_bus_publish(b2, "k", "0123456789", 10), DM_ENOSPC);
        assert_int_equal(dm_bus_publish(b2, "k", "0123456789abcdefghij", 20), DM_ENOSPC);

        /* Draining makes room again. */
        struct recorder r;
        rec_init(&r, b2, REC_ACK);
        assert_int_equal(dm_bus_consume(b2, "q", 1, rec_handler, &r), 0);
        assert_int_equal(rec_wait(&r, 1, 2000), 1);
        sleep_ms(20);
        assert_int_equal(dm_bus_publish(b2, "k", "0123456789", 10), 0);
        assert_int_equal(rec_wait(&r, 2, 2000), 2);
        dm_bus_free(bus);
        dm_bus_free(b2);
        rec_done(&r);
        rec_done(&ro);
}

/* A full dead-letter queue drops rather than grows. */
static void test_dead_letter_bounded(void **state)
{
        struct dm_bus *bus = open_url("inproc:?max_messages=2");
        struct dm_bus_queue_opts opts = {.dead_letter_queue = "dead"};
        struct recorder r;
        rec_init(&r, bus, REC_NACK_ALL);
        assert_int_equal(dm_bus_declare_opts(bus, "work", "#", &opts), 0);
        assert_int_equal(dm_bus_consume(bus, "work", 8, rec_handler, &r), 0);
        for (int i = 0; i < 4; i++) {
                assert_int_equal(dm_bus_publish(bus, "k", "drop", 4), 0);
                assert_int_equal(rec_wait_settled(&r, (unsigned)i + 1, 2000), i + 1);
        }
        struct recorder d;
        rec_init(&d, bus, REC_ACK);
        assert_int_equal(dm_bus_consume(bus, "dead", 8, rec_handler, &d), 0);
        assert_int_equal(rec_wait(&d, 2, 2000), 2);
        sleep_ms(50);
        assert_int_equal(rec_wait(&d, 3, 0), 2);
        dm_bus_free(bus);
        rec_done(&r);
        rec_done(&d);
}

/* ---- the contract: every backend -------------------------------------------------------- */

static void test_bad_arguments(void **state)
{
        struct ctx *c = *state;
        struct dm_bus *bus = ctx_open(c);
        struct recorder r;
        char q[128], missing[128];
        rec_init(&r, bus, REC_ACK);
        qname(c, q, sizeof(q), "q");
        qname(c, missing, sizeof(missing), "missing");
        assert_int_equal(dm_bus_ping(NULL), DM_EINVAL);
        assert_int_equal(dm_bus_ping(bus), 0);
        assert_int_equal(dm_bus_declare(bus, "", "a"), DM_EINVAL);
        assert_int_equal(dm_bus_declare(bus, q, NULL), DM_EINVAL);
        assert_int_equal(dm_bus_declare(bus, "bad name", "a"), DM_EINVAL);
        struct dm_bus_queue_opts self = {.dead_letter_queue = q};
        assert_int_equal(dm_bus_declare_opts(bus, q, "a", &self), DM_EINVAL);
        struct dm_bus_queue_opts bad = {.dead_letter_queue = "bad name"};
        assert_int_equal(dm_bus_declare_opts(bus, q, "a", &bad), DM_EINVAL);
        assert_int_equal(dm_bus_consume(bus, missing, 1, rec_handler, &r), DM_ENOENT);
        assert_int_equal(dm_bus_consume(bus, q, 1, NULL, &r), DM_EINVAL);
        assert_int_equal(dm_bus_publish(bus, "a", NULL, 3), DM_EINVAL);
        assert_int_equal(dm_bus_publish(bus, "bad key", "x", 1), DM_EINVAL);
        assert_int_equal(dm_bus_ack(bus, 12345), DM_ENOENT);
        assert_int_equal(dm_bus_nack(bus, 0, true), DM_ENOENT);
        assert_int_equal(dm_bus_ack(bus, UINT64_MAX), DM_ENOENT);
        assert_int_equal(dm_bus_publish(bus, "a", NULL, 0), 0);
        assert_int_equal(dm_bus_publish_batch(bus, NULL, 0, 0), 0);
        assert_int_equal(dm_bus_publish_batch(bus, NULL, 1, 0), DM_EINVAL);
        dm_bus_free(bus);
        rec_done(&r);
}

static void test_publish_consume_ack(void **state)
{
        struct ctx *c = *state;
        struct dm_bus *bus = ctx_open(c);
        struct recorder r;
        char q[128];
        rec_init(&r, bus, REC_KEEP);
        qname(c, q, sizeof(q), "work");
        assert_int_equal(dm_bus_declare(bus, q, "task.*"), 0);
        assert_int_equal(dm_bus_declare(bus, q, "task.*"), 0); /* idempotent */
        assert_int_equal(dm_bus_consume(bus, q, 10, rec_handler, &r), 0);
        assert_int_equal(dm_bus_publish(bus, "task.dns", "hello", 5), 0);
        assert_int_equal(rec_wait(&r, 1, 5000), 1);
        assert_string_equal(r.msgs[0].key, "task.dns");
        assert_string_equal(r.msgs[0].body, "hello");
        assert_false(r.msgs[0].redelivered);
        assert_int_equal(dm_bus_ack(bus, r.msgs[0].tag), 0);
        assert_int_equal(dm_bus_ack(bus, r.msgs[0].tag), DM_ENOENT);
        assert_int_equal(dm_bus_nack(bus, r.msgs[0].tag, true), DM_ENOENT);

        /* The idempotent declare must not have made two copies. */
        sleep_ms(c->wait_ms);
        assert_int_equal(rec_wait(&r, 2, 0), 1);

        /* Empty body is a message too. */
        assert_int_equal(dm_bus_publish(bus, "task.empty", "", 0), 0);
        assert_int_equal(rec_wait(&r, 2, 5000), 2);
        assert_string_equal(r.msgs[1].body, "");
        assert_int_equal(dm_bus_ack(bus, r.msgs[1].tag), 0);

        /* A body larger than one AMQP frame (128 KiB) arrives whole. */
        size_t big_len = 300 * 1024;
        char *big = malloc(big_len);
        assert_non_null(big);
        for (size_t i = 0; i < big_len; i++)
                big[i] = (char)('a' + i % 26);
        assert_int_equal(dm_bus_publish(bus, "task.big", big, big_len), 0);
        assert_int_equal(rec_wait(&r, 3, 5000), 3);
        assert_string_equal(r.msgs[2].key, "task.big");
        assert_memory_equal(r.msgs[2].body, big, sizeof(r.msgs[2].body) - 1);
        assert_int_equal(dm_bus_ack(bus, r.msgs[2].tag), 0);
        free(big);
        dm_bus_free(bus);
        rec_done(&r);
}

static void test_prefetch_limit(void **state)
{
        struct ctx *c = *state;
        struct dm_bus *bus = ctx_open(c);
        struct recorder r;
        char q[128];
        rec_init(&r, bus, REC_KEEP);
        qname(c, q, sizeof(q), "q");
        assert_int_equal(dm_bus_declare(bus, q, "#"), 0);
        assert_int_equal(dm_bus_consume(bus, q, 3, rec_handler, &r), 0);
        for (int i = 0; i < 10; i++) {
                char body[16];
                int n = snprintf(body, sizeof(body), "m%d", i);
                assert_int_equal(dm_bus_publish(bus, "k", body, (size_t)n), 0);
        }
        assert_int_equal(rec_wait(&r, 3, 5000), 3);
        sleep_ms(c->wait_ms);
        assert_int_equal(rec_wait(&r, 4, 0), 3);

        assert_int_equal(dm_bus_ack(bus, r.msgs[1].tag), 0);
        assert_int_equal(rec_wait(&r, 4, 5000), 4);
        sleep_ms(c->wait_ms);
        assert_int_equal(rec_wait(&r, 5, 0), 4);
        /* Order is kept. */
        for (int i = 0; i < 4; i++) {
                char want[16];
                snprintf(want, sizeof(want), "m%d", i);
                assert_string_equal(r.msgs[i].body, want);
        }
        /* Freeing with messages unacked and queued must not leak or hang. */
        dm_bus_free(bus);
        rec_done(&r);
}

static void test_nack_requeue(void **state)
{
        struct ctx *c = *state;
        struct dm_bus *bus = ctx_open(c);
        struct recorder r;
        char q[128];
        rec_init(&r, bus, REC_KEEP);
        qname(c, q, sizeof(q), "q");
        assert_int_equal(dm_bus_declare(bus, q, "a.b"), 0);
        assert_int_equal(dm_bus_consume(bus, q, 1, rec_handler, &r), 0);
        assert_int_equal(dm_bus_publish(bus, "a.b", "x", 1), 0);
        assert_int_equal(rec_wait(&r, 1, 5000), 1);
        assert_false(r.msgs[0].redelivered);
        assert_int_equal(dm_bus_nack(bus, r.msgs[0].tag, true), 0);
        assert_int_equal(rec_wait(&r, 2, 5000), 2);
        assert_true(r.msgs[1].redelivered);
        assert_string_equal(r.msgs[1].body, "x");
        assert_true(r.msgs[1].tag != r.msgs[0].tag);
        /* The first tag is settled: it can no longer touch the redelivered message. */
        assert_int_equal(dm_bus_ack(bus, r.msgs[0].tag), DM_ENOENT);

        /* Rejected without requeue: gone. */
        assert_int_equal(dm_bus_nack(bus, r.msgs[1].tag, false), 0);
        sleep_ms(c->wait_ms);
        assert_int_equal(rec_wait(&r, 3, 0), 2);

        /* A requeued message goes before those waiting behind it. */
        assert_int_equal(dm_bus_publish(bus, "a.b", "1", 1), 0);
        assert_int_equal(rec_wait(&r, 3, 5000), 3);
        assert_int_equal(dm_bus_publish(bus, "a.b", "2", 1), 0);
        sleep_ms(c->wait_ms);
        assert_int_equal(dm_bus_nack(bus, r.msgs[2].tag, true), 0);
        assert_int_equal(rec_wait(&r, 4, 5000), 4);
        assert_string_equal(r.msgs[3].body, "1");
        assert_true(r.msgs[3].redelivered);
        assert_int_equal(dm_bus_ack(bus, r.msgs[3].tag), 0);
        assert_int_equal(rec_wait(&r, 5, 5000), 5);
        assert_string_equal(r.msgs[4].body, "2");
        assert_false(r.msgs[4].redelivered);
        assert_int_equal(dm_bus_ack(bus, r.msgs[4].tag), 0);
        dm_bus_free(bus);
        rec_done(&r);
}

static void test_nack_from_handler(void **state)
{
        struct ctx *c = *state;
        struct dm_bus *bus = ctx_open(c);
        struct recorder r;
        char q[128];
        rec_init(&r, bus, REC_NACK_FIRST);
        qname(c, q, sizeof(q), "q");
        assert_int_equal(dm_bus_declare(bus, q, "#"), 0);
        assert_int_equal(dm_bus_consume(bus, q, 4, rec_handler, &r), 0);
        assert_int_equal(dm_bus_publish(bus, "k", "body", 4), 0);
        assert_int_equal(rec_wait(&r, 2, 5000), 2);
        assert_false(r.msgs[0].redelivered);
        assert_true(r.msgs[1].redelivered);
        assert_string_equal(r.msgs[1].body, "body");
        dm_bus_free(bus);
        assert_int_equal(atomic_load(&r.settle_errors), 0);
        rec_done(&r);
}

static void test_cancel(void **state)
{
        struct ctx *c = *state;
        struct dm_bus *bus = ctx_open(c);
        struct recorder r1, r2;
        char q[128];
        rec_init(&r1, bus, REC_KEEP);
        rec_init(&r2, bus, REC_KEEP);
        qname(c, q, sizeof(q), "q");
        assert_int_equal(dm_bus_declare(bus, q, "#"), 0);
        assert_int_equal(dm_bus_consume(bus, q, 4, rec_handler, &r1), 0);
        assert_int_equal(dm_bus_publish(bus, "k", "first", 5), 0);
        assert_int_equal(rec_wait(&r1, 1, 5000), 1);
        assert_int_equal(dm_bus_cancel(bus, q, rec_handler, &r1), 0);
        assert_int_equal(dm_bus_cancel(bus, q, rec_handler, &r1), DM_ENOENT);
        assert_int_equal(dm_bus_cancel(bus, q, rec_handler, &r2), DM_ENOENT);

        assert_int_equal(dm_bus_publish(bus, "k", "second", 6), 0);
        sleep_ms(c->wait_ms);
        assert_int_equal(rec_wait(&r1, 2, 0), 1);
        /* What the cancelled consumer holds can still be settled. */
        assert_int_equal(dm_bus_nack(bus, r1.msgs[0].tag, true), 0);

        assert_int_equal(dm_bus_consume(bus, q, 4, rec_handler, &r2), 0);
        assert_int_equal(rec_wait(&r2, 2, 5000), 2);
        assert_string_equal(r2.msgs[0].body, "first");
        assert_true(r2.msgs[0].redelivered);
        assert_string_equal(r2.msgs[1].body, "second");
        assert_int_equal(rec_wait(&r1, 2, 0), 1);
        dm_bus_free(bus);
        rec_done(&r1);
        rec_done(&r2);
}

/* Polls the depth until it reads `want` ready (a broker's count is a snapshot). */
static uint64_t depth_wait(struct dm_bus *bus, const char *q, uint64_t want, uint64_t *consumers)
{
        uint64_t ready = UINT64_MAX;
        for (int waited = 0; waited < 5000; waited += 20) {
                assert_int_equal(dm_bus_queue_depth(bus, q, &ready, consumers), 0);
                if (ready == want)
                        break;
                sleep_ms(20);
        }
        return ready;
}

static void test_queue_depth(void **state)
{
        struct ctx *c = *state;
        struct dm_bus *bus = ctx_open(c);
        struct recorder r;
        char q[128], wq[128], dlq[128], missing[128];
        uint64_t ready = 99, consumers = 99;
        rec_init(&r, bus, REC_KEEP);
        qname(c, q, sizeof(q), "depth");
        qname(c, wq, sizeof(wq), "depth-work");
        qname(c, dlq, sizeof(dlq), "depth-dead");
        qname(c, missing, sizeof(missing), "never-declared");

        assert_int_equal(dm_bus_queue_depth(NULL, q, &ready, NULL), DM_EINVAL);
        assert_int_equal(dm_bus_queue_depth(bus, q, NULL, NULL), DM_EINVAL);
        assert_int_equal(dm_bus_queue_depth(bus, "", &ready, NULL), DM_EINVAL);
        assert_int_equal(dm_bus_queue_depth(bus, missing, &ready, NULL), DM_ENOENT);

        assert_int_equal(dm_bus_declare(bus, q, "depth.#"), 0);
        assert_int_equal(dm_bus_queue_depth(bus, q, &ready, &consumers), 0);
        assert_int_equal(ready, 0);
        assert_int_equal(consumers, 0);
        /* A refused look does not spoil the next one. */
        assert_int_equal(dm_bus_queue_depth(bus, missing, &ready, NULL), DM_ENOENT);
        assert_int_equal(dm_bus_queue_depth(bus, q, &ready, NULL), 0);

        for (int i = 0; i < 5; i++)
                assert_int_equal(dm_bus_publish(bus, "depth.x", "m", 1), 0);
        assert_int_equal(depth_wait(bus, q, 5, &consumers), 5);
        assert_int_equal(consumers, 0);

        /* Delivered and unsettled messages are not ready. */
        assert_int_equal(dm_bus_consume(bus, q, 2, rec_handler, &r), 0);
        assert_int_equal(rec_wait(&r, 2, 5000), 2);
        assert_int_equal(depth_wait(bus, q, 3, &consumers), 3);
        assert_int_equal(consumers, 1);
        assert_int_equal(dm_bus_ack(bus, r.msgs[0].tag), 0);
        assert_int_equal(rec_wait(&r, 3, 5000), 3);
        assert_int_equal(depth_wait(bus, q, 2, NULL), 2);
        /* A message put back is ready again. */
        assert_int_equal(dm_bus_nack(bus, r.msgs[1].tag, true), 0);
        assert_int_equal(rec_wait(&r, 4, 5000), 4);
        assert_int_equal(depth_wait(bus, q, 2, NULL), 2);
        assert_int_equal(dm_bus_cancel(bus, q, rec_handler, &r), 0);
        assert_int_equal(depth_wait(bus, q, 2, &consumers), 2);
        assert_int_equal(consumers, 0);

        /* A work queue (a quorum queue on a broker) counts alike. */
        struct dm_bus_queue_opts wo = {.delivery_limit = 3, .dead_letter_queue = dlq};
        assert_int_equal(dm_bus_declare_opts(bus, wq, "work.#", &wo), 0);
        for (int i = 0; i < 3; i++)
                assert_int_equal(dm_bus_publish(bus, "work.x", "w", 1), 0);
        assert_int_equal(depth_wait(bus, wq, 3, NULL), 3);
        assert_int_equal(depth_wait(bus, dlq, 0, NULL), 0);

        /* On a broker the count is the queue's, whoever asks. */
        if (c->be->broker) {
                struct dm_bus *other = ctx_open(c);
                assert_int_equal(depth_wait(other, wq, 3, NULL), 3);
                dm_bus_free(other);
        }
        dm_bus_free(bus);
        rec_done(&r);
}

static void test_fanout_and_unbound(void **state)
{
        struct ctx *c = *state;
        struct dm_bus *bus = ctx_open(c);
        struct recorder r1, r2;
        char q1[128], q2[128], q3[128];
        rec_init(&r1, bus, REC_ACK);
        rec_init(&r2, bus, REC_ACK);
        qname(c, q1, sizeof(q1), "q1");
        qname(c, q2, sizeof(q2), "q2");
        qname(c, q3, sizeof(q3), "q3");
        assert_int_equal(dm_bus_declare(bus, q1, "change.#"), 0);
        assert_int_equal(dm_bus_declare(bus, q2, "#.A"), 0);
        /* Two matching bindings of one queue still give it one copy. */
        assert_int_equal(dm_bus_declare(bus, q2, "change.*.A"), 0);
        assert_int_equal(dm_bus_consume(bus, q1, 8, rec_handler, &r1), 0);
        assert_int_equal(dm_bus_consume(bus, q2, 8, rec_handler, &r2), 0);

        assert_int_equal(dm_bus_publish(bus, "nobody.listens", "x", 1), 0);
        assert_int_equal(dm_bus_publish(bus, "change.dns.A", "both", 4), 0);
        assert_int_equal(dm_bus_publish(bus, "change.dns.MX", "one", 3), 0);
        assert_int_equal(rec_wait(&r1, 2, 5000), 2);
        assert_int_equal(rec_wait(&r2, 1, 5000), 1);
        sleep_ms(c->wait_ms);
        assert_int_equal(rec_wait(&r1, 3, 0), 2);
        assert_int_equal(rec_wait(&r2, 2, 0), 1);
        assert_string_equal(r1.msgs[0].body, "both");
        assert_string_equal(r1.msgs[1].body, "one");
        assert_string_equal(r2.msgs[0].body, "both");

        /* A queue bound later does not see what was dropped before. */
        struct recorder r3;
        rec_init(&r3, bus, REC_ACK);
        assert_int_equal(dm_bus_declare(bus, q3, "nobody.#"), 0);
        assert_int_equal(dm_bus_consume(bus, q3, 8, rec_handler, &r3), 0);
        sleep_ms(c->wait_ms);
        assert_int_equal(rec_wait(&r3, 1, 0), 0);
        dm_bus_free(bus);
        rec_done(&r1);
        rec_done(&r2);
        rec_done(&r3);
}

/* Publishes one mandatory message until no queue takes it (a broker deletes a queue a moment
 * after the cause); returns the last result. */
static int publish_until_unrouted(struct dm_bus *bus, const char *key, int ms)
{
        struct dm_bus_out m = {.routing_key = key, .body = "x", .len = 1};
        int r = 0;
        for (int waited = 0; waited <= ms; waited += 50) {
                r = dm_bus_publish_batch(bus, &m, 1, DM_BUS_MANDATORY);
                if (r == DM_ENOROUTE)
                        break;
                sleep_ms(50);
        }
        return r;
}

/* A transient queue works like any other while consumed, and goes with its bindings when
 * its consumer is cancelled; the name then makes a new, empty queue. */
static void test_transient_queue(void **state)
{
        struct ctx *c = *state;
        struct dm_bus *bus = ctx_open(c);
        struct recorder r1, r2;
        char q[128];
        rec_init(&r1, bus, REC_ACK);
        rec_init(&r2, bus, REC_ACK);
        qname(c, q, sizeof(q), "live");
        struct dm_bus_queue_opts tr = {.transient = true};
        struct dm_bus_queue_opts limited = {.transient = true, .delivery_limit = 2};
        struct dm_bus_queue_opts dead = {.transient = true, .dead_letter_queue = "dead"};
        assert_int_equal(dm_bus_declare_opts(bus, q, "ev.#", &limited), DM_EINVAL);
        assert_int_equal(dm_bus_declare_opts(bus, q, "ev.#", &dead), DM_EINVAL);
        assert_int_equal(dm_bus_declare_opts(bus, q, "ev.#", &tr), 0);
        assert_int_equal(dm_bus_declare_opts(bus, q, "other.*", &tr), 0);
        assert_int_equal(dm_bus_declare(bus, q, "ev.#"), DM_EEXIST); /* its kind is fixed */
        assert_int_equal(dm_bus_consume(bus, q, 8, rec_handler, &r1), 0);
        assert_int_equal(dm_bus_publish(bus, "ev.a", "one", 3), 0);
        assert_int_equal(dm_bus_publish(bus, "other.b", "two", 3), 0);
        assert_int_equal(rec_wait(&r1, 2, 5000), 2);
        assert_string_equal(r1.msgs[0].body, "one");
        assert_string_equal(r1.msgs[1].body, "two");

        assert_int_equal(dm_bus_cancel(bus, q, rec_handler, &r1), 0);
        assert_int_equal(publish_until_unrouted(bus, "ev.a", 5000), DM_ENOROUTE);
        assert_int_equal(publish_until_unrouted(bus, "other.b", 0), DM_ENOROUTE);
        assert_int_equal(dm_bus_consume(bus, q, 8, rec_handler, &r2), DM_ENOENT);

        assert_int_equal(dm_bus_declare_opts(bus, q, "ev.#", &tr), 0);
        assert_int_equal(dm_bus_consume(bus, q, 8, rec_handler, &r2), 0);
        assert_int_equal(dm_bus_publish(bus, "ev.c", "three", 5), 0);
        assert_int_equal(dm_bus_publish(bus, "other.b", "unbound now", 11), 0);
        assert_int_equal(rec_wait(&r2, 1, 5000), 1);
        sleep_ms(c->wait_ms);
        assert_int_equal(rec_wait(&r2, 2, 0), 1);
        assert_string_equal(r2.msgs[0].body, "three");
        assert_int_equal(rec_wait(&r1, 3, 0), 2);
        dm_bus_free(bus);
        assert_int_equal(atomic_load(&r1.settle_errors), 0);
        assert_int_equal(atomic_load(&r2.settle_errors), 0);
        rec_done(&r1);
        rec_done(&r2);
}

/* One call, many messages, each with its own result; mandatory turns "dropped" into an
 * error for the message nobody is bound to, and only for it. */
static void test_batch_publish(void **state)
{
        struct ctx *c = *state;
        struct dm_bus *bus = ctx_open(c);
        struct recorder r;
        char q[128];
        rec_init(&r, bus, REC_ACK);
        qname(c, q, sizeof(q), "batch");
        assert_int_equal(dm_bus_declare(bus, q, "b.#"), 0);
        assert_int_equal(dm_bus_consume(bus, q, 100, rec_handler, &r), 0);

        enum { N = 100 };
        struct dm_bus_out out[N];
        char bodies[N][16];
        for (int i = 0; i < N; i++) {
                int n = snprintf(bodies[i], sizeof(bodies[i]), "b%d", i);
                out[i] = (struct dm_bus_out){
                    .routing_key = "b.x", .body = bodies[i], .len = (size_t)n, .result = -1};
        }
        assert_int_equal(dm_bus_publish_batch(bus, out, N, 0), 0);
        for (int i = 0; i < N; i++)
                assert_int_equal(out[i].result, 0);
        assert_int_equal(rec_wait(&r, N, 10000), N);
        for (int i = 0; i < N; i++)
                assert_string_equal(r.msgs[i].body, bodies[i]); /* in order */

        struct dm_bus_out mixed[3] = {
            {.routing_key = "b.1", .body = "one", .len = 3},
            {.routing_key = "nobody.here", .body = "lost", .len = 4},
            {.routing_key = "b.2", .body = "two", .len = 3},
        };
        assert_int_equal(dm_bus_publish_batch(bus, mixed, 3, DM_BUS_MANDATORY), DM_ENOROUTE);
        assert_int_equal(mixed[0].result, 0);
        assert_int_equal(mixed[1].result, DM_ENOROUTE);
        assert_int_equal(mixed[2].result, 0);
        /* Without the flag the same batch is fine: the unroutable one is dropped. */
        assert_int_equal(dm_bus_publish_batch(bus, mixed, 3, 0), 0);
        assert_int_equal(mixed[1].result, 0);
        assert_int_equal(dm_bus_publish_batch(bus, mixed, 3, 0x80), DM_EINVAL);
        assert_int_equal(rec_wait(&r, N + 4, 5000), N + 4);
        assert_string_equal(r.msgs[N].body, "one");
        assert_string_equal(r.msgs[N + 1].body, "two");

        /* One invalid message: nothing is sent. */
        struct dm_bus_out bad[2] = {
            {.routing_key = "b.3", .body = "three", .len = 5},
            {.routing_key = "b 4", .body = "four", .len = 4},
        };
        assert_int_equal(dm_bus_publish_batch(bus, bad, 2, 0), DM_EINVAL);
        assert_int_equal(bad[0].result, DM_ECANCELED);
        assert_int_equal(bad[1].result, DM_EINVAL);
        sleep_ms(c->wait_ms);
        assert_int_equal(rec_wait(&r, N + 5, 0), N + 4);
        dm_bus_free(bus);
        assert_int_equal(atomic_load(&r.settle_errors), 0);
        rec_done(&r);
}

/* What publish returned for is there for a consumer that starts afterwards: on a broker,
 * on a connection opened after the publishing one was closed. */
static void test_published_is_kept(void **state)
{
        struct ctx *c = *state;
        struct dm_bus *bus = ctx_open(c);
        char q[128];
        qname(c, q, sizeof(q), "kept");
        assert_int_equal(dm_bus_declare(bus, q, "kept.#"), 0);
        enum { N = 60 };
        struct dm_bus_out out[N / 2];
        char bodies[N][16];
        for (int i = 0; i < N; i++)
                snprintf(bodies[i], sizeof(bodies[i]), "k%d", i);
        for (int i = 0; i < N / 2; i++)
                assert_int_equal(dm_bus_publish(bus, "kept.one", bodies[i], strlen(bodies[i])), 0);
        for (int i = 0; i < N / 2; i++)
                out[i] = (struct dm_bus_out){.routing_key = "kept.batch",
                                             .body = bodies[N / 2 + i],
                                             .len = strlen(bodies[N / 2 + i])};
        assert_int_equal(dm_bus_publish_batch(bus, out, N / 2, DM_BUS_MANDATORY), 0);
        if (c->be->broker) {
                dm_bus_free(bus);
                bus = ctx_open(c);
        }
        struct recorder r;
        rec_init(&r, bus, REC_ACK);
        assert_int_equal(dm_bus_consume(bus, q, 16, rec_handler, &r), 0);
        assert_int_equal(rec_wait(&r, N, 10000), N);
        for (int i = 0; i < N; i++) {
                assert_string_equal(r.msgs[i].body, bodies[i]);
                assert_false(r.msgs[i].redelivered);
        }
        sleep_ms(c->wait_ms);
        assert_int_equal(rec_wait(&r, N + 1, 0), N);
        dm_bus_free(bus);
        rec_done(&r);
}

/* A work queue: a message nacked with requeue is tried delivery_limit + 1 times, then
 * moves to the dead-letter queue with its key and body; one nacked without requeue moves
 * at once. */
static void test_dead_letter(void **state)
{
        struct ctx *c = *state;
        struct dm_bus *bus = ctx_open(c);
        char q[128], dead[128];
        qname(c, q, sizeof(q), "work");
        qname(c, dead, sizeof(dead), "work.dead");
        struct dm_bus_queue_opts opts = {.delivery_limit = 2, .dead_letter_queue = dead};
        assert_int_equal(dm_bus_declare_opts(bus, q, "job.#", &opts), 0);
        assert_int_equal(dm_bus_declare_opts(bus, q, "job.#", &opts), 0); /* idempotent */
        assert_int_equal(dm_bus_declare_opts(bus, q, "job2.#", &opts), 0);

        /* One queue, one kind: other options are refused, and so is a plain declaration. */
        struct dm_bus_queue_opts other = {.delivery_limit = 3, .dead_letter_queue = dead};
        assert_int_equal(dm_bus_declare_opts(bus, q, "job.#", &other), DM_EEXIST);
        assert_int_equal(dm_bus_declare(bus, q, "job.#"), DM_EEXIST);
        struct dm_bus_queue_opts on_dead = {.delivery_limit = 1};
        assert_int_equal(dm_bus_declare_opts(bus, dead, "x", &on_dead), DM_EEXIST);

        struct recorder r, d;
        rec_init(&r, bus, REC_NACK_ALL);
        rec_init(&d, bus, REC_KEEP);
        assert_int_equal(dm_bus_consume(bus, q, 1, rec_handler, &r), 0);
        assert_int_equal(dm_bus_consume(bus, dead, 4, rec_handler, &d), 0);

        assert_int_equal(dm_bus_publish(bus, "job.poison", "poison", 6), 0);
        assert_int_equal(rec_wait(&d, 1, 10000), 1);
        assert_int_equal(rec_wait(&r, 3, 0), 3);
        sleep_ms(c->wait_ms);
        assert_int_equal(rec_wait(&r, 4, 0), 3); /* not a fourth time */
        assert_false(r.msgs[0].redelivered);
        assert_true(r.msgs[1].redelivered);
        assert_true(r.msgs[2].redelivered);
        assert_string_equal(d.msgs[0].body, "poison");
        assert_string_equal(d.msgs[0].key, "job.poison");
        assert_int_equal(dm_bus_ack(bus, d.msgs[0].tag), 0);

        assert_int_equal(dm_bus_publish(bus, "job2.bad", "drop me", 7), 0);
        assert_int_equal(rec_wait(&d, 2, 10000), 2);
        assert_int_equal(rec_wait(&r, 4, 0), 4);
        assert_string_equal(d.msgs[1].body, "drop me");
        assert_string_equal(d.msgs[1].key, "job2.bad");
        assert_int_equal(dm_bus_ack(bus, d.msgs[1].tag), 0);

        /* Without a dead-letter queue, over the limit is gone. */
        char q2[128];
        qname(c, q2, sizeof(q2), "work2");
        struct dm_bus_queue_opts no_dlq = {.delivery_limit = 1};
        struct recorder r2;
        rec_init(&r2, bus, REC_NACK_ALL);
        assert_int_equal(dm_bus_declare_opts(bus, q2, "job3.#", &no_dlq), 0);
        assert_int_equal(dm_bus_consume(bus, q2, 1, rec_handler, &r2), 0);
        assert_int_equal(dm_bus_publish(bus, "job3.x", "again", 5), 0);
        assert_int_equal(rec_wait(&r2, 2, 10000), 2);
        sleep_ms(c->wait_ms);
        assert_int_equal(rec_wait(&r2, 3, 0), 2);
        assert_int_equal(rec_wait(&d, 3, 0), 2);
        dm_bus_free(bus);
        assert_int_equal(atomic_load(&r.settle_errors), 0);
        rec_done(&r);
        rec_done(&r2);
        rec_done(&d);
}

/* Many producers and consumers: every message acked exactly once. */
#define STRESS_PRODUCERS 4
#define STRESS_CONSUMERS 4
#define STRESS_MAX_PER_PRODUCER 25000
#define STRESS_MAX (STRESS_PRODUCERS * STRESS_MAX_PER_PRODUCER)

struct stress {
        struct dm_bus *bus;
        unsigned per_producer, total;
        atomic_uint acked[STRESS_MAX];
        atomic_uint delivered[STRESS_MAX];
        atomic_uint total_acked;
        atomic_uint bad;
        atomic_uint publish_retries;
};

struct stress_producer {
        struct stress *s;
        unsigned base;
};

static void *stress_produce(void *arg)
{
        struct stress_producer *p = arg;
        for (unsigned i = 0; i < p->s->per_producer; i++) {
                char body[16];
                int n = snprintf(body, sizeof(body), "%u", p->base + i);
                for (;;) {
                        int r = dm_bus_publish(p->s->bus, "stress.msg", body, (size_t)n);
                        if (r == 0)
                                break;
                        if (r != DM_ENOSPC) {
                                atomic_fetch_add(&p->s->bad, 1);
                                break;
                        }
                        atomic_fetch_add(&p->s->publish_retries, 1);
                        sleep_ms(1);
                }
        }
        return NULL;
}

static void stress_handler(void *arg, const struct dm_bus_msg *msg)
{
        struct stress *s = arg;
        char buf[16];
        if (msg->len == 0 || msg->len >= sizeof(buf)) {
                atomic_fetch_add(&s->bad, 1);
                return;
        }
        memcpy(buf, msg->body, msg->len);
        buf[msg->len] = '\0';
        unsigned long id = strtoul(buf, NULL, 10);
        if (id >= s->total) {
                atomic_fetch_add(&s->bad, 1);
                return;
        }
        unsigned prior = atomic_fetch_add(&s->delivered[id], 1);
        /* Every 97th message is refused once, to mix redeliveries into the traffic. */
        if (id % 97 == 0 && prior == 0) {
                if (msg->redelivered)
                        atomic_fetch_add(&s->bad, 1);
                if (dm_bus_nack(s->bus, msg->tag, true) != 0)
                        atomic_fetch_add(&s->bad, 1);
                return;
        }
        if (dm_bus_ack(s->bus, msg->tag) != 0) {
                atomic_fetch_add(&s->bad, 1);
                return;
        }
        atomic_fetch_add(&s->acked[id], 1);
        atomic_fetch_add(&s->total_acked, 1);
}

static void test_many_threads(void **state)
{
        struct ctx *c = *state;
        struct stress *s = calloc(1, sizeof(*s));
        char q[128];
        assert_non_null(s);
        /* A broker confirms each round trip to disk: fewer messages there. */
        s->per_producer = c->be->broker ? 1000 : STRESS_MAX_PER_PRODUCER;
        s->total = s->per_producer * STRESS_PRODUCERS;
        /* A small queue cap makes producers meet DM_ENOSPC and retry. */
        s->bus = ctx_open_ex(c, "?max_messages=2000");
        qname(c, q, sizeof(q), "stress");
        assert_int_equal(dm_bus_declare(s->bus, q, "stress.*"), 0);
        for (int i = 0; i < STRESS_CONSUMERS; i++)
                assert_int_equal(dm_bus_consume(s->bus, q, 64, stress_handler, s), 0);

        pthread_t th[STRESS_PRODUCERS];
        struct stress_producer prod[STRESS_PRODUCERS];
        for (int i = 0; i < STRESS_PRODUCERS; i++) {
                prod[i].s = s;
                prod[i].base = (unsigned)i * s->per_producer;
                assert_int_equal(pthread_create(&th[i], NULL, stress_produce, &prod[i]), 0);
        }
        for (int i = 0; i < STRESS_PRODUCERS; i++)
                pthread_join(th[i], NULL);
        for (int waited = 0; waited < 60000; waited += 10) {
                if (atomic_load(&s->total_acked) == s->total)
                        break;
                sleep_ms(10);
        }
        dm_bus_free(s->bus);

        assert_int_equal(atomic_load(&s->bad), 0);
        assert_int_equal(atomic_load(&s->total_acked), s->total);
        for (unsigned i = 0; i < s->total; i++) {
                assert_int_equal(atomic_load(&s->acked[i]), 1);
                assert_int_equal(atomic_load(&s->delivered[i]), i % 97 == 0 ? 2 : 1);
        }
        free(s);
}

/* ---- only a broker ----------------------------------------------------------------------- */

/* Messages a consumer held unacked when its connection closed go to the next consumer,
 * marked redelivered. */
static void test_redelivery_on_close(void **state)
{
        struct ctx *c = *state;
        struct dm_bus *a = ctx_open(c);
        char q[128];
        qname(c, q, sizeof(q), "held");
        struct recorder ra, rb;
        rec_init(&ra, a, REC_KEEP);
        assert_int_equal(dm_bus_declare(a, q, "held.#"), 0);
        assert_int_equal(dm_bus_consume(a, q, 10, rec_handler, &ra), 0);
        assert_int_equal(dm_bus_publish(a, "held.1", "one", 3), 0);
        assert_int_equal(dm_bus_publish(a, "held.2", "two", 3), 0);
        assert_int_equal(rec_wait(&ra, 2, 5000), 2);
        assert_int_equal(dm_bus_ack(a, ra.msgs[0].tag), 0);
        dm_bus_free(a); /* "two" is unacked */

        struct dm_bus *b = ctx_open(c);
        rec_init(&rb, b, REC_ACK);
        assert_int_equal(dm_bus_consume(b, q, 10, rec_handler, &rb), 0);
        assert_int_equal(rec_wait(&rb, 1, 10000), 1);
        assert_string_equal(rb.msgs[0].body, "two");
        assert_string_equal(rb.msgs[0].key, "held.2");
        assert_true(rb.msgs[0].redelivered);
        sleep_ms(c->wait_ms);
        assert_int_equal(rec_wait(&rb, 2, 0), 1); /* "one" was acked */
        dm_bus_free(b);
        rec_done(&ra);
        rec_done(&rb);
}

/* A queue made elsewhere with other arguments: the broker refuses the declaration
 * (PRECONDITION_FAILED closes the declaring channel), and the bus goes on declaring and
 * publishing as before. */
static void test_declare_conflict_on_broker(void **state)
{
        struct ctx *c = *state;
        struct dm_bus *a = ctx_open(c), *b = ctx_open(c);
        char q[128], q2[128];
        qname(c, q, sizeof(q), "shared");
        qname(c, q2, sizeof(q2), "other");
        assert_int_equal(dm_bus_declare(a, q, "x"), 0);
        struct dm_bus_queue_opts work = {.delivery_limit = 3};
        assert_int_equal(dm_bus_declare_opts(b, q, "x", &work), DM_EEXIST);
        assert_int_equal(dm_bus_declare_opts(b, q, "x", &work), DM_EEXIST);
        assert_int_equal(dm_bus_declare(b, q2, "y"), 0);
        struct recorder r;
        rec_init(&r, b, REC_ACK);
        assert_int_equal(dm_bus_consume(b, q2, 4, rec_handler, &r), 0);
        assert_int_equal(dm_bus_publish(b, "y", "still fine", 10), 0);
        assert_int_equal(rec_wait(&r, 1, 5000), 1);
        dm_bus_free(a);
        dm_bus_free(b);
        rec_done(&r);
}

/* A transient queue does not outlive the bus that consumed it: once that bus is gone,
 * nothing is routed to it and it cannot be consumed. */
static void test_transient_gone_with_bus(void **state)
{
        struct ctx *c = *state;
        struct dm_bus *a = ctx_open(c), *b = ctx_open(c);
        struct recorder ra, rb;
        char q[128];
        rec_init(&ra, a, REC_ACK);
        rec_init(&rb, b, REC_ACK);
        qname(c, q, sizeof(q), "proc");
        struct dm_bus_queue_opts tr = {.transient = true};
        assert_int_equal(dm_bus_declare_opts(a, q, "ev.#", &tr), 0);
        assert_int_equal(dm_bus_consume(a, q, 8, rec_handler, &ra), 0);
        struct dm_bus_out m = {.routing_key = "ev.x", .body = "seen", .len = 4};
        assert_int_equal(dm_bus_publish_batch(b, &m, 1, DM_BUS_MANDATORY), 0);
        assert_int_equal(rec_wait(&ra, 1, 5000), 1);
        dm_bus_free(a);
        assert_int_equal(publish_until_unrouted(b, "ev.x", 10000), DM_ENOROUTE);
        assert_int_equal(dm_bus_consume(b, q, 8, rec_handler, &rb), DM_ENOENT);
        dm_bus_free(b);
        rec_done(&ra);
        rec_done(&rb);
}

struct restart_pub {
        struct dm_bus *bus;
        unsigned n;
        atomic_uint published;
        atomic_uint failures; /* refused while the broker was away */
        atomic_bool gave_up;
};

/* Samples dm_bus_ping while the broker restarts. */
struct restart_watch {
        struct dm_bus *bus;
        atomic_bool stop;
        atomic_uint down; /* samples that found the bus down */
};

static void *restart_watch_main(void *arg)
{
        struct restart_watch *w = arg;
        while (!atomic_load(&w->stop)) {
                if (dm_bus_ping(w->bus) == DM_EBUS)
                        atomic_fetch_add(&w->down, 1);
                sleep_ms(10);
        }
        return NULL;
}

static void *restart_produce(void *arg)
{
        struct restart_pub *p = arg;
        time_t give_up = time(NULL) + 120;
        for (unsigned i = 0; i < p->n; i++) {
                char body[16];
                int n = snprintf(body, sizeof(body), "%u", i);
                while (dm_bus_publish(p->bus, "restart.msg", body, (size_t)n) != 0) {
                        atomic_fetch_add(&p->failures, 1);
                        if (time(NULL) > give_up) {
                                atomic_store(&p->gave_up, true);
                                return NULL;
                        }
                        sleep_ms(50); /* what the outbox does: keep it, try again */
                }
                atomic_fetch_add(&p->published, 1);
                sleep_ms(10);
        }
        return NULL;
}

struct restart_sink {
        struct dm_bus *bus;
        atomic_uint seen[1000];
        atomic_uint distinct;
        atomic_uint ack_errors;
};

static void restart_handler(void *arg, const struct dm_bus_msg *msg)
{
        struct restart_sink *s = arg;
        char buf[16];
        if (msg->len > 0 && msg->len < sizeof(buf)) {
                memcpy(buf, msg->body, msg->len);
                buf[msg->len] = '\0';
                unsigned long id = strtoul(buf, NULL, 10);
                if (id < 1000 && atomic_fetch_add(&s->seen[id], 1) == 0)
                        atomic_fetch_add(&s->distinct, 1);
        }
        /* An ack that races the broker going away may be refused as stale: it comes back. */
        int r = dm_bus_ack(s->bus, msg->tag);
        if (r != 0 && r != DM_ESTALE)
                atomic_fetch_add(&s->ack_errors, 1);
}

/* The broker restarts while messages are published and consumed: every message arrives at
 * least once, publishing resumes, the consumers resume, and a delivery held across the
 * restart is refused as stale and delivered again. */
static void test_broker_restart(void **state)
{
        struct ctx *c = *state;
        const char *cmd = getenv("DM_TEST_AMQP_RESTART");
        if (!cmd || !*cmd) {
                print_message("DM_TEST_AMQP_RESTART is not set: broker restart not tested\n");
                skip();
        }
        struct dm_bus *bus = ctx_open(c);
        char q[128], hq[128];
        qname(c, q, sizeof(q), "restart");
        qname(c, hq, sizeof(hq), "restart.held");
        struct dm_bus_queue_opts work = {.delivery_limit = 20};
        assert_int_equal(dm_bus_declare_opts(bus, q, "restart.#", &work), 0);
        assert_int_equal(dm_bus_declare(bus, hq, "held"), 0);

        struct recorder held;
        rec_init(&held, bus, REC_KEEP);
        assert_int_equal(dm_bus_consume(bus, hq, 1, rec_handler, &held), 0);
        assert_int_equal(dm_bus_publish(bus, "held", "kept", 4), 0);
        assert_int_equal(rec_wait(&held, 1, 5000), 1);

        struct restart_sink *sink = calloc(1, sizeof(*sink));
        assert_non_null(sink);
        sink->bus = bus;
        assert_int_equal(dm_bus_consume(bus, q, 8, restart_handler, sink), 0);

        struct restart_pub pub = {.bus = bus, .n = 400};
        struct restart_watch watch = {.bus = bus};
        pthread_t th, wth;
        assert_int_equal(dm_bus_ping(bus), 0);
        assert_int_equal(pthread_create(&wth, NULL, restart_watch_main, &watch), 0);
        assert_int_equal(pthread_create(&th, NULL, restart_produce, &pub), 0);
        while (atomic_load(&pub.published) < 100)
                sleep_ms(10);
        print_message("restarting the broker: %s\n", cmd);
        int rc = system(cmd);
        pthread_join(th, NULL);
        /* Every link is back (publisher and both consumers): the bus says so. */
        for (int waited = 0; waited < 30000 && dm_bus_ping(bus) != 0; waited += 50)
                sleep_ms(50);
        atomic_store(&watch.stop, true);
        pthread_join(wth, NULL);
        assert_true(atomic_load(&watch.down) > 0);
        assert_int_equal(dm_bus_ping(bus), 0);

        for (int waited = 0; waited < 60000; waited += 50) {
                if (atomic_load(&sink->distinct) == pub.n)
                        break;
                sleep_ms(50);
        }
        print_message("published %u, refused during the outage %u, arrived %u distinct\n",
                      atomic_load(&pub.published), atomic_load(&pub.failures),
                      atomic_load(&sink->distinct));
        assert_int_equal(rc, 0);
        assert_false(atomic_load(&pub.gave_up));
        assert_true(atomic_load(&pub.failures) > 0); /* it did go away */
        assert_int_equal(atomic_load(&sink->distinct), pub.n);
        assert_int_equal(atomic_load(&sink->ack_errors), 0);

        /* The held delivery belonged to the old connection. */
        assert_int_equal(dm_bus_ack(bus, held.msgs[0].tag), DM_ESTALE);
        assert_int_equal(dm_bus_nack(bus, held.msgs[0].tag, true), DM_ESTALE);
        assert_int_equal(rec_wait(&held, 2, 20000), 2);
        assert_string_equal(held.msgs[1].body, "kept");
        assert_true(held.msgs[1].redelivered);
        assert_int_equal(dm_bus_ack(bus, held.msgs[1].tag), 0);

        /* And the bus is whole again: declare, publish, consume. */
        char q2[128];
        qname(c, q2, sizeof(q2), "after");
        struct recorder after;
        rec_init(&after, bus, REC_ACK);
        assert_int_equal(dm_bus_declare(bus, q2, "after"), 0);
        assert_int_equal(dm_bus_consume(bus, q2, 1, rec_handler, &after), 0);
        assert_int_equal(dm_bus_publish(bus, "after", "fine", 4), 0);
        assert_int_equal(rec_wait(&after, 1, 5000), 1);
        dm_bus_free(bus);
        free(sink);
        rec_done(&held);
        rec_done(&after);
}

/* ---- the runs ---------------------------------------------------------------------------- */

#define CONTRACT(f, be) cmocka_unit_test_prestate_setup_teardown(f, ctx_setup, ctx_teardown, &(be))
#define CONTRACT_TESTS(be)                                                                         \
        CONTRACT(test_bad_arguments, be), CONTRACT(test_publish_consume_ack, be),                  \
            CONTRACT(test_prefetch_limit, be), CONTRACT(test_nack_requeue, be),                    \
            CONTRACT(test_nack_from_handler, be), CONTRACT(test_cancel, be),                       \
            CONTRACT(test_fanout_and_unbound, be), CONTRACT(test_batch_publish, be),               \
            CONTRACT(test_published_is_kept, be), CONTRACT(test_dead_letter, be),                  \
            CONTRACT(test_many_threads, be), CONTRACT(test_transient_queue, be),                   \
            CONTRACT(test_queue_depth, be)

int main(void)
{
        const struct CMUnitTest inproc_tests[] = {
            cmocka_unit_test(test_topic_match),
            cmocka_unit_test(test_open_urls),
            cmocka_unit_test(test_queue_bounded),
            cmocka_unit_test(test_dead_letter_bounded),
            cmocka_unit_test(test_reclaim),
            cmocka_unit_test(test_publish_consumed),
            CONTRACT_TESTS(be_inproc),
        };
        int failed = cmocka_run_group_tests_name("inproc", inproc_tests, NULL, NULL);

        be_amqp.url = getenv("DM_TEST_AMQP_URL");
        if (be_amqp.url && *be_amqp.url) {
#ifdef DM_HAVE_RABBITMQ
                const struct CMUnitTest amqp_tests[] = {
                    CONTRACT_TESTS(be_amqp),
                    CONTRACT(test_redelivery_on_close, be_amqp),
                    CONTRACT(test_declare_conflict_on_broker, be_amqp),
                    CONTRACT(test_transient_gone_with_bus, be_amqp),
                    CONTRACT(test_broker_restart, be_amqp),
                };
                failed += cmocka_run_group_tests_name("amqp", amqp_tests, NULL, NULL);
#else
                fprintf(stderr, "DM_TEST_AMQP_URL is set but this build has no RabbitMQ "
                                "backend (librabbitmq-dev missing)\n");
                failed++;
#endif
        } else {
                printf("DM_TEST_AMQP_URL is not set: the amqp backend is not tested\n");
        }
        return failed;
}
