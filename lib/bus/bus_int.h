/* The bus backend interface. Each backend (inproc.c, amqp.c) exports one const ops table;
 * bus.c picks it from the URL scheme and every dm_bus_* call goes through it. Only bus.c and
 * the backends include this header. */
#ifndef DM_BUS_INT_H
#define DM_BUS_INT_H

#include "dm/bus.h"

/* Longest queue name, pattern and routing key: AMQP carries them as short strings. */
#define DM_BUS_NAME_MAX 255

struct dm_bus_ops {
        const char *name; /* what dm_bus_backend() reports */
        /* `url` is the full URL the caller gave (never NULL here); on failure `err` gets a
         * one-line reason. */
        int (*open)(const char *url, char *err, size_t errlen, struct dm_bus **ret_bus);
        void (*free)(struct dm_bus *bus);
        /* `opts` is never NULL here, and its dead-letter queue name is valid and not `queue`. */
        int (*declare)(struct dm_bus *bus, const char *queue, const char *pattern,
                       const struct dm_bus_queue_opts *opts);
        /* Every message's routing key and body were checked; n >= 1. Sets every result and
         * returns the first failing one (0 when none failed). */
        int (*publish)(struct dm_bus *bus, struct dm_bus_out *msgs, size_t n, unsigned flags);
        int (*consume)(struct dm_bus *bus, const char *queue, unsigned prefetch,
                       dm_bus_handler handler, void *arg);
        int (*cancel)(struct dm_bus *bus, const char *queue, dm_bus_handler handler, void *arg);
        /* See dm_bus_reclaim: a backend whose queues outlive the process returns 0. */
        int (*reclaim)(struct dm_bus *bus, const char *queue, dm_bus_handler handler, void *arg);
        int (*ack)(struct dm_bus *bus, uint64_t tag);
        /* See dm_bus_ping: cheap, no network. */
        int (*ping)(struct dm_bus *bus);
        int (*nack)(struct dm_bus *bus, uint64_t tag, bool requeue);
        /* See dm_bus_queue_depth: both outputs are non-NULL here. */
        int (*queue_depth)(struct dm_bus *bus, const char *queue, uint64_t *ret_ready,
                           uint64_t *ret_consumers);
};

/* Every backend instance begins with this, so a struct dm_bus * is also a pointer to the
 * backend's own state. */
struct dm_bus {
        const struct dm_bus_ops *ops;
};

extern const struct dm_bus_ops dm_bus_inproc_ops;
#ifdef DM_HAVE_RABBITMQ
extern const struct dm_bus_ops dm_bus_amqp_ops;
#endif

/* Checks a queue name, pattern or routing key: at most DM_BUS_NAME_MAX bytes, printable
 * ASCII. Queue names must also be non-empty. Shared so both backends refuse the same
 * input. */
bool dm_bus_name_valid(const char *s, bool allow_empty);

#endif
