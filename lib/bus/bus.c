/* The bus front: picks a backend from the URL scheme (the way curl picks its TLS backend
 * from available_backends[]), checks arguments once for every backend, and implements the
 * topic pattern match both backends must agree on. */
#include "bus/bus_int.h"

#include "dm/error.h"
#include "dm/url.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct dm_bus_backend {
        const char *scheme;
        const struct dm_bus_ops *ops;
};

/* What this binary can open. */
static const struct dm_bus_backend bus_backends[] = {
    {.scheme = "inproc", .ops = &dm_bus_inproc_ops},
#ifdef DM_HAVE_RABBITMQ
    {.scheme = "amqp", .ops = &dm_bus_amqp_ops},
    {.scheme = "amqps", .ops = &dm_bus_amqp_ops},
#endif
};

/* Every scheme the project knows, built or not: a known one that is missing from
 * bus_backends[] is a build choice, and the error must say so rather than "bad URL". */
static const char *const bus_known_schemes[] = {"inproc", "amqp", "amqps"};

#define BUS_NELEM(a) (sizeof(a) / sizeof((a)[0]))

int dm_bus_open(const char *url, char *err, size_t errlen, struct dm_bus **ret_bus)
{
        if (!ret_bus)
                return DM_EINVAL;
        if (!url || !*url)
                url = "inproc:";

        char scheme[16];
        if (dm_url_scheme(url, scheme, sizeof(scheme)) < 0) {
                dm_errorf(0, err, errlen,
                          "bus URL has no known scheme (expected inproc: or amqp://)");
                return DM_EINVAL;
        }

        for (size_t i = 0; i < BUS_NELEM(bus_backends); i++) {
                if (strcmp(bus_backends[i].scheme, scheme) == 0)
                        return bus_backends[i].ops->open(url, err, errlen, ret_bus);
        }
        for (size_t i = 0; i < BUS_NELEM(bus_known_schemes); i++) {
                if (strcmp(bus_known_schemes[i], scheme) == 0) {
                        dm_errorf(0, err, errlen,
                                  "bus backend '%s' is not built into this binary "
                                  "(rebuild with librabbitmq, or unset RABBITMQ_URL for the "
                                  "in-process bus)",
                                  scheme);
                        return DM_ENOBACKEND;
                }
        }
        dm_errorf(0, err, errlen, "unknown bus URL scheme '%s' (expected inproc: or amqp://)",
                  scheme);
        return DM_EINVAL;
}

void dm_bus_free(struct dm_bus *bus)
{
        if (!bus)
                return;
        bus->ops->free(bus);
}

const char *dm_bus_backend(const struct dm_bus *bus)
{
        return bus ? bus->ops->name : "none";
}

bool dm_bus_name_valid(const char *s, bool allow_empty)
{
        if (!s)
                return false;
        size_t n = strnlen(s, DM_BUS_NAME_MAX + 1);
        if (n > DM_BUS_NAME_MAX || (n == 0 && !allow_empty))
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c <= 0x20 || c >= 0x7f)
                        return false;
        }
        return true;
}

int dm_bus_declare(struct dm_bus *bus, const char *queue, const char *pattern)
{
        return dm_bus_declare_opts(bus, queue, pattern, NULL);
}

int dm_bus_declare_opts(struct dm_bus *bus, const char *queue, const char *pattern,
                        const struct dm_bus_queue_opts *opts)
{
        static const struct dm_bus_queue_opts plain = {0};
        if (!opts)
                opts = &plain;
        if (!bus || !dm_bus_name_valid(queue, false) || !dm_bus_name_valid(pattern, true))
                return DM_EINVAL;
        if (opts->transient && (opts->delivery_limit > 0 || opts->dead_letter_queue))
                return DM_EINVAL;
        if (opts->dead_letter_queue && (!dm_bus_name_valid(opts->dead_letter_queue, false) ||
                                        strcmp(opts->dead_letter_queue, queue) == 0))
                return DM_EINVAL;
        return bus->ops->declare(bus, queue, pattern, opts);
}

int dm_bus_publish(struct dm_bus *bus, const char *routing_key, const void *body, size_t len)
{
        struct dm_bus_out m = {.routing_key = routing_key, .body = body, .len = len};
        return dm_bus_publish_batch(bus, &m, 1, 0);
}

int dm_bus_publish_batch(struct dm_bus *bus, struct dm_bus_out *msgs, size_t n, unsigned flags)
{
        if (!bus || (!msgs && n > 0) || (flags & ~(unsigned)(DM_BUS_MANDATORY | DM_BUS_CONSUMED)))
                return DM_EINVAL;
        int r = 0;
        for (size_t i = 0; i < n; i++) {
                msgs[i].result = 0;
                if (!dm_bus_name_valid(msgs[i].routing_key, true) ||
                    (!msgs[i].body && msgs[i].len > 0))
                        msgs[i].result = r = DM_EINVAL;
        }
        if (r < 0) {
                /* All or nothing: the valid ones are not sent either. */
                for (size_t i = 0; i < n; i++) {
                        if (msgs[i].result == 0)
                                msgs[i].result = DM_ECANCELED;
                }
                return r;
        }
        if (n == 0)
                return 0;
        return bus->ops->publish(bus, msgs, n, flags);
}

int dm_bus_consume(struct dm_bus *bus, const char *queue, unsigned prefetch, dm_bus_handler handler,
                   void *arg)
{
        if (!bus || !handler || !dm_bus_name_valid(queue, false))
                return DM_EINVAL;
        return bus->ops->consume(bus, queue, prefetch, handler, arg);
}

int dm_bus_cancel(struct dm_bus *bus, const char *queue, dm_bus_handler handler, void *arg)
{
        if (!bus || !handler || !dm_bus_name_valid(queue, false))
                return DM_EINVAL;
        return bus->ops->cancel(bus, queue, handler, arg);
}

int dm_bus_reclaim(struct dm_bus *bus, const char *queue, dm_bus_handler handler, void *arg)
{
        if (!bus || !handler || !dm_bus_name_valid(queue, false))
                return DM_EINVAL;
        return bus->ops->reclaim(bus, queue, handler, arg);
}

int dm_bus_ping(struct dm_bus *bus)
{
        if (!bus)
                return DM_EINVAL;
        return bus->ops->ping(bus);
}

int dm_bus_queue_depth(struct dm_bus *bus, const char *queue, uint64_t *ret_ready,
                       uint64_t *ret_consumers)
{
        if (!bus || !ret_ready || !dm_bus_name_valid(queue, false))
                return DM_EINVAL;
        uint64_t ready = 0, consumers = 0;
        int r = bus->ops->queue_depth(bus, queue, &ready, &consumers);
        if (r < 0)
                return r;
        *ret_ready = ready;
        if (ret_consumers)
                *ret_consumers = consumers;
        return 0;
}

int dm_bus_ack(struct dm_bus *bus, uint64_t tag)
{
        if (!bus)
                return DM_EINVAL;
        return bus->ops->ack(bus, tag);
}

int dm_bus_nack(struct dm_bus *bus, uint64_t tag, bool requeue)
{
        if (!bus)
                return DM_EINVAL;
        return bus->ops->nack(bus, tag, requeue);
}

/* A key or pattern split on '.'. Both are at most DM_BUS_NAME_MAX bytes, and words may be
 * empty ("a..b", or nothing but dots), so at most DM_BUS_NAME_MAX + 1 words. An empty
 * string has no words (RabbitMQ splits it so). */
#define BUS_WORDS_MAX (DM_BUS_NAME_MAX + 1)

struct bus_words {
        const char *start[BUS_WORDS_MAX];
        size_t len[BUS_WORDS_MAX];
        size_t n;
};

static bool bus_split_words(const char *s, struct bus_words *w)
{
        w->n = 0;
        if (strnlen(s, DM_BUS_NAME_MAX + 1) > DM_BUS_NAME_MAX)
                return false;
        if (!*s)
                return true;
        for (;;) {
                const char *e = strchrnul(s, '.');
                w->start[w->n] = s;
                w->len[w->n] = (size_t)(e - s);
                w->n++;
                if (!*e)
                        return true;
                s = e + 1;
        }
}

static bool bus_word_is(const struct bus_words *w, size_t i, char c)
{
        return w->len[i] == 1 && w->start[i][0] == c;
}

/* Dynamic programming over (pattern words, key words) instead of backtracking: patterns
 * with several '#' stay linear in the product of the word counts. */
bool dm_bus_topic_match(const char *pattern, const char *routing_key)
{
        struct bus_words p, k;
        if (!pattern || !routing_key || !bus_split_words(pattern, &p) ||
            !bus_split_words(routing_key, &k))
                return false;

        /* row[j]: the first i pattern words match the first j key words. */
        bool prev[BUS_WORDS_MAX + 1], cur[BUS_WORDS_MAX + 1];
        prev[0] = true;
        for (size_t j = 1; j <= k.n; j++)
                prev[j] = false;
        for (size_t i = 1; i <= p.n; i++) {
                bool hash = bus_word_is(&p, i - 1, '#');
                bool star = bus_word_is(&p, i - 1, '*');
                cur[0] = hash && prev[0];
                for (size_t j = 1; j <= k.n; j++) {
                        if (hash) {
                                cur[j] = prev[j] || cur[j - 1];
                        } else if (!prev[j - 1]) {
                                cur[j] = false;
                        } else if (star) {
                                cur[j] = true;
                        } else {
                                cur[j] = p.len[i - 1] == k.len[j - 1] &&
                                         memcmp(p.start[i - 1], k.start[j - 1], p.len[i - 1]) == 0;
                        }
                }
                memcpy(prev, cur, (k.n + 1) * sizeof(prev[0]));
        }
        return prev[k.n];
}
