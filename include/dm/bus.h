/* The message bus: topic-routed, at-least-once. Backends chosen by URL: NULL or "inproc:"
 * -> lib/bus/inproc.c (one process), amqp://... -> lib/bus/amqp.c (RabbitMQ, later).
 *
 * Model (the AMQP one, so both backends behave alike): publishers send a message with a
 * routing key ("task.dns", "change.dns.A") to the one topic exchange; named queues are
 * bound with patterns ("change.dns.#", '*' = one word, '#' = zero or more); a message goes
 * to every queue whose binding matches (to none if none does); each queue hands a message
 * to one of its consumers. A delivered message stays owed until acked; a nack with requeue,
 * or the consumer going away, makes it deliverable again.
 *
 * Thread-safety: every function may be called from any thread. Handlers run on a thread
 * owned by the bus and must not block for long. */
#ifndef DM_BUS_H
#define DM_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dm_bus;

struct dm_bus_msg {
        const char *routing_key;
        const void *body;
        size_t len;
        uint64_t tag;     /* for dm_bus_ack/nack */
        bool redelivered; /* delivered before and not acked */
};

/* Called once per delivered message. `msg` and its bytes are valid only during the call:
 * copy what is kept. The tag stays valid until acked or nacked. */
typedef void (*dm_bus_handler)(void *arg, const struct dm_bus_msg *msg);

/* Opens the backend named by `url` (NULL: inproc). `err` gets a one-line reason. */
int dm_bus_open(const char *url, char *err, size_t errlen, struct dm_bus **ret_bus);
/* Stops delivery, waits for running handlers, frees. Unacked messages are lost on inproc
 * (they are in the store's outbox or rescheduled) and redelivered by a broker. NULL-safe. */
void dm_bus_free(struct dm_bus *bus);
const char *dm_bus_backend(const struct dm_bus *bus);

/* Declares a durable queue bound to `pattern`. Idempotent. */
int dm_bus_declare(struct dm_bus *bus, const char *queue, const char *pattern);
/* Publishes a persistent message; returns once the bus has taken responsibility for it
 * (for a broker: after the publisher confirm). A message no binding matches is dropped
 * (returns 0). DM_ENOSPC: a matching queue is at its limit, and no queue got the message. */
int dm_bus_publish(struct dm_bus *bus, const char *routing_key, const void *body, size_t len);
/* Starts consuming `queue` with at most `prefetch` unacked messages outstanding (0 or more
 * than 65535: 65535, AMQP's largest). DM_ENOENT when the queue was never declared. */
int dm_bus_consume(struct dm_bus *bus, const char *queue, unsigned prefetch, dm_bus_handler handler,
                   void *arg);
/* Stops the consumers of `queue` that were started with this handler and arg: once it
 * returns no new delivery reaches them and a handler call in progress has returned (unless
 * cancel is called from that very handler). Messages they hold unacked stay owed: ack or
 * nack them as before. Returns 0, or DM_ENOENT when no such consumer runs. */
int dm_bus_cancel(struct dm_bus *bus, const char *queue, dm_bus_handler handler, void *arg);
/* Takes back the ready messages of `queue` that would die with this process: each is handed
 * to `handler` on the calling thread (tag 0: nothing to settle) and removed. The in-process
 * bus's queues live in this process, so it hands every ready message; a broker keeps its
 * messages for other consumers and hands none. Meant for a stop, after dm_bus_cancel and
 * after what the consumer held is settled, so that the owner can put the work they carry
 * back where it survives. Returns how many were handed over, or DM_ENOENT when the queue
 * was never declared. */
int dm_bus_reclaim(struct dm_bus *bus, const char *queue, dm_bus_handler handler, void *arg);
int dm_bus_ack(struct dm_bus *bus, uint64_t tag);
int dm_bus_nack(struct dm_bus *bus, uint64_t tag, bool requeue);

/* Pattern match as a topic exchange does it. Exposed for tests. */
bool dm_bus_topic_match(const char *pattern, const char *routing_key);

#endif
