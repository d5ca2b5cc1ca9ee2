/* Bus -> event hub. The queue is the process's own (transient: a broker deletes it with the
 * process), so every domain service sees every event, whichever dns-service published it.
 * A message is acked once the hub holds it, or at once when the hub refuses it: the stream
 * is live, and a message that could not be taken now would not be taken later either. */
#include "event_feed.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "dm/error.h"
#include "dm/log.h"
#include "dm/time.h"

#define FEED_PREFETCH 256
#define FEED_TICK_MAX_MS 1000

struct dm_event_feed {
        struct dm_bus *bus;
        struct dm_event_hub *hub;
        struct dm_cache *cache;
        char queue[160];
        bool consuming;
        pthread_t ticker;
        pthread_mutex_t mu;
        pthread_cond_t cond;
        bool stop; /* under mu */
        atomic_uint_fast64_t refused;
};

/* "domainmon.events.<host>.<pid>.<random>": unique to this process on a shared broker. */
static void feed_queue_name(char *buf, size_t size)
{
        char host[65] = "";
        uint32_t rnd = 0;

        if (gethostname(host, sizeof(host) - 1) != 0)
                host[0] = '\0';
        for (char *p = host; *p; p++) {
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                      (*p >= '0' && *p <= '9') || *p == '-'))
                        *p = '_';
        }
        if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
                rnd = (uint32_t)dm_now_ms() ^ (uint32_t)getpid();
        snprintf(buf, size, "domainmon.events.%s.%ld.%08" PRIx32, host[0] ? host : "host",
                 (long)getpid(), rnd);
}

static void feed_on_message(void *arg, const struct dm_bus_msg *msg)
{
        struct dm_event_feed *f = arg;
        /* A failed invalidation turns the cache off until it can be trusted again (see
         * dm/cache.h): nothing to do here but go on. */
        (void)dm_cache_invalidate_event(f->cache, msg->routing_key, msg->body, msg->len);
        int r = dm_event_hub_publish(f->hub, msg->routing_key, msg->body, msg->len);

        if (r == DM_EINVAL || r == DM_E2BIG || r == DM_ENOMEM) {
                /* Logged for the first ten and then every thousandth: a broker may carry
                 * anything, and a flood of junk must not become a flood of log lines. */
                uint_fast64_t n = atomic_fetch_add(&f->refused, 1) + 1;
                if (n <= 10 || n % 1000 == 0) {
                        char key[80];
                        dm_log_warn("events",
                                    "msg=\"a bus message was not taken into the live stream\" "
                                    "routing_key=%s err=\"%s\" count=%" PRIuFAST64,
                                    dm_log_quote(key, sizeof(key), msg->routing_key),
                                    dm_strerror(r), n);
                }
        }
        /* DM_EEXIST is a repeat of an event held (at-least-once relays); DM_ESHUTDOWN a
         * stop in progress. Both are settled like the rest. */
        int a = dm_bus_ack(f->bus, msg->tag);
        if (a < 0 && a != DM_ESTALE)
                dm_log_warn("events", "msg=\"cannot ack an event\" err=\"%s\"", dm_strerror(a));
}

static void *feed_ticker_main(void *arg)
{
        struct dm_event_feed *f = arg;

        pthread_mutex_lock(&f->mu);
        while (!f->stop) {
                pthread_mutex_unlock(&f->mu);
                int64_t wait = dm_event_hub_tick(f->hub, dm_mono_ms());
                if (wait > FEED_TICK_MAX_MS)
                        wait = FEED_TICK_MAX_MS;
                if (wait < 10)
                        wait = 10;
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_sec += (time_t)(wait / 1000);
                ts.tv_nsec += (long)(wait % 1000) * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000L;
                }
                pthread_mutex_lock(&f->mu);
                if (!f->stop)
                        pthread_cond_timedwait(&f->cond, &f->mu, &ts);
        }
        pthread_mutex_unlock(&f->mu);
        return NULL;
}

int dm_event_feed_start(struct dm_bus *bus, struct dm_event_hub *hub, struct dm_cache *cache,
                        struct dm_event_feed **ret_feed)
{
        static const struct dm_bus_queue_opts transient = {.transient = true};
        struct dm_event_feed *f = calloc(1, sizeof(*f));
        pthread_condattr_t ca;
        char qq[200];
        int r = 0;

        if (!f)
                return DM_ENOMEM;
        f->bus = bus;
        f->hub = hub;
        f->cache = cache;
        atomic_init(&f->refused, 0);
        pthread_mutex_init(&f->mu, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&f->cond, &ca);
        pthread_condattr_destroy(&ca);
        feed_queue_name(f->queue, sizeof(f->queue));

        for (size_t i = 0; bus && dm_event_topic_patterns[i]; i++) {
                r = dm_bus_declare_opts(bus, f->queue, dm_event_topic_patterns[i], &transient);
                if (r < 0)
                        goto fail;
        }
        if (bus) {
                r = dm_bus_consume(bus, f->queue, FEED_PREFETCH, feed_on_message, f);
                if (r < 0)
                        goto fail;
                f->consuming = true;
        }
        if (pthread_create(&f->ticker, NULL, feed_ticker_main, f) != 0) {
                r = DM_EAGAIN;
                goto fail;
        }
        pthread_setname_np(f->ticker, "events-tick");
        dm_log_info("events", "msg=\"live events feed started\" queue=%s",
                    dm_log_quote(qq, sizeof(qq), bus ? f->queue : "-"));
        *ret_feed = f;
        return 0;
fail:
        dm_log_error("events", "msg=\"cannot subscribe to events\" queue=%s err=\"%s\"",
                     dm_log_quote(qq, sizeof(qq), f->queue), dm_strerror(r));
        if (f->consuming)
                dm_bus_cancel(bus, f->queue, feed_on_message, f);
        pthread_cond_destroy(&f->cond);
        pthread_mutex_destroy(&f->mu);
        free(f);
        return r;
}

void dm_event_feed_stop(struct dm_event_feed *f)
{
        if (!f)
                return;
        if (f->consuming) {
                int r = dm_bus_cancel(f->bus, f->queue, feed_on_message, f);
                if (r < 0)
                        dm_log_warn("events",
                                    "msg=\"cannot cancel the events consumer\" err=\"%s\"",
                                    dm_strerror(r));
        }
        pthread_mutex_lock(&f->mu);
        f->stop = true;
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->mu);
        pthread_join(f->ticker, NULL);
        pthread_cond_destroy(&f->cond);
        pthread_mutex_destroy(&f->mu);
        free(f);
}
