/* The message bus: topic-routed, at-least-once. Backends chosen by URL: NULL or "inproc:"
 * -> lib/bus/inproc.c (one process), amqp://... -> lib/bus/amqp.c (RabbitMQ; see
 * docs/internals/bus.md for its topology, threads and reconnection).
 *
 * Model (the AMQP one, so both backends behave alike): publishers send a message with a
 * routing key ("task.dns", "change.dns.A") to the one topic exchange; named queues are
 * bound with patterns ("change.dns.#", '*' = one word, '#' = zero or more); a message goes
 * to every queue whose binding matches (to none if none does); each queue hands a message
 * to one of its consumers. A delivered message stays owed until acked; a nack with requeue,
 * or the consumer going away, makes it deliverable again.
 *
 * Thread-safety: every function may be called from any thread. Handlers run on a thread
 * owned by the bus and must not block for long.
 *
 * Broker outages (amqp): the bus reconnects by itself, with a backoff from 0.1 s doubling
 * to 5 s, declares again every queue declared through it and resumes every consumer.
 * While it is disconnected, publish and declare fail at once with DM_EBUS (callers keep
 * what they publish and retry: the store's outbox does); consumers just see no deliveries
 * until it is back. */
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

/* How a queue treats messages that fail. The zero value is a plain durable queue, what
 * dm_bus_declare makes. */
struct dm_bus_queue_opts {
        /* A work queue: a message put back (nacked with requeue; on a broker also when its
         * consumer's connection closes) more than `delivery_limit` times is dead-lettered
         * instead of delivered again, so it is delivered at most delivery_limit + 1 times.
         * 0: no limit. On RabbitMQ such a queue is a quorum queue (x-delivery-limit). */
        unsigned delivery_limit;
        /* Where dead-lettered messages go: those over the limit and those nacked without
         * requeue. A durable queue of this name, with no binding, declared along (on
         * RabbitMQ through a fanout exchange "<exchange>.dlx.<name>", so the name may be at
         * most 255 bytes minus the exchange name and 5). A dead-lettered message keeps its
         * routing key and body. NULL: such messages are dropped. */
        const char *dead_letter_queue;
        /* A queue of this process alone, for what it needs only while it runs (the live
         * event stream): not durable, and gone once its last consumer is cancelled or the
         * process ends, so nothing piles up for a process that is no longer there. On
         * RabbitMQ an auto-delete queue, with x-expires so that one never consumed goes too;
         * in process, removed by the cancel. Declaring the name again after that makes a new,
         * empty queue. Not with a delivery limit or a dead-letter queue (DM_EINVAL). The name
         * must be the process's own: a broker lets any connection consume a queue it can
         * name. */
        bool transient;
};

/* Declares a durable queue bound to `pattern`. Idempotent: declaring it again adds the
 * binding if it is new. DM_EEXIST: the queue exists with other options (on RabbitMQ also
 * when it was made by something else with other arguments). DM_EBUS: the broker is not
 * reachable. */
int dm_bus_declare(struct dm_bus *bus, const char *queue, const char *pattern);
/* The same with options (NULL: the zero value). Every declaration of one queue must give
 * the same options: a queue's kind cannot change once it exists (on RabbitMQ delete it
 * first). */
int dm_bus_declare_opts(struct dm_bus *bus, const char *queue, const char *pattern,
                        const struct dm_bus_queue_opts *opts);

/* Flags of dm_bus_publish_batch. */
enum dm_bus_publish_flags {
        /* A message no binding matches fails with DM_ENOROUTE instead of being dropped (on
         * RabbitMQ: published "mandatory", and the broker's basic.return maps to it). */
        DM_BUS_MANDATORY = 1u << 0,
        /* Returns only once the message is as safe as it will ever be. On a broker that is its
         * publisher confirm: the message is on disk in every durable queue it went to, and
         * the flag changes nothing. In process a queue lives no longer than the process, so
         * the publish waits until each durable queue's consumer has acked (or nacked without
         * requeue) its copy: then the publisher may forget the message (the outbox relay
         * deletes its row) and a crash loses nothing. Transient queues, and durable ones
         * with no consumer when it is published (nobody to wait for: they keep it, as without
         * the flag), are not waited for. A copy whose queue loses its last consumer before
         * taking it is DM_EBUS, and a wait past 5 s DM_ETIMEDOUT: the message may have been
         * taken; publish it again (consumers deduplicate). */
        DM_BUS_CONSUMED = 1u << 1,
};

/* Publishes a persistent message; returns once the bus has taken responsibility for it
 * (for a broker: after the publisher confirm). A message no binding matches is dropped
 * (returns 0), as a topic exchange does. Errors:
 *   DM_ENOSPC     a matching queue is at its limit, and no queue got the message (inproc);
 *   DM_EREJECTED  the broker refused it (basic.nack): it is not stored, publish again;
 *   DM_EBUS       not connected, or the connection broke before the confirm: the message
 *                 may or may not have been taken; publish again (consumers deduplicate);
 *   DM_ETIMEDOUT  no confirm within the publish timeout (amqp, ?publish_timeout=, 30 s;
 *                 e.g. a broker blocking publishers on a resource alarm); may have been
 *                 taken, publish again. */
int dm_bus_publish(struct dm_bus *bus, const char *routing_key, const void *body, size_t len);

/* One message of a batch; `result` is written by dm_bus_publish_batch. */
struct dm_bus_out {
        const char *routing_key;
        const void *body;
        size_t len;
        int result; /* 0, or an error of dm_bus_publish, or DM_ENOROUTE */
};

/* Publishes `n` messages and waits for all of them: on a broker they are sent together
 * and confirmed in one round trip. Each message is routed on its own (one may have no route
 * while the others are taken); order is kept: after a message the bus could not take (no
 * room, no connection) the rest are not sent and get DM_ECANCELED. Returns 0 when every message was
 * taken, otherwise the first failing message's result (every result is set). When any message is
 * invalid nothing is published: DM_EINVAL, the invalid ones' result DM_EINVAL and the others'
 * DM_ECANCELED. The caller keeps ownership of the array. */
int dm_bus_publish_batch(struct dm_bus *bus, struct dm_bus_out *msgs, size_t n, unsigned flags);
/* Starts consuming `queue` with at most `prefetch` unacked messages outstanding (0 or more
 * than 65535: 65535, AMQP's largest). DM_ENOENT when the queue was never declared. */
int dm_bus_consume(struct dm_bus *bus, const char *queue, unsigned prefetch, dm_bus_handler handler,
                   void *arg);
/* Stops the consumers of `queue` that were started with this handler and arg: once it
 * returns no new delivery reaches them and a handler call in progress has returned (unless
 * cancel is called from that very handler). Messages they hold unacked stay owed: ack or
 * nack them as before (on a transient queue whose last consumer this was, the queue is gone:
 * a nack with requeue drops the message). Returns 0, or DM_ENOENT when no such consumer
 * runs. */
int dm_bus_cancel(struct dm_bus *bus, const char *queue, dm_bus_handler handler, void *arg);
/* Takes back the ready messages of `queue` that would die with this process: each is handed
 * to `handler` on the calling thread (tag 0: nothing to settle) and removed. The in-process
 * bus's queues live in this process, so it hands every ready message; a broker keeps its
 * messages for other consumers and hands none. Meant for a stop, after dm_bus_cancel and
 * after what the consumer held is settled, so that the owner can put the work they carry
 * back where it survives. Returns how many were handed over, or DM_ENOENT when the queue
 * was never declared. */
int dm_bus_reclaim(struct dm_bus *bus, const char *queue, dm_bus_handler handler, void *arg);
/* Settles a delivery: ack removes it; nack puts it back (requeue) or dead-letters or drops
 * it (see dm_bus_queue_opts). Returns 0 once the settlement is handed to the connection
 * (if that connection breaks before the broker reads it, the broker redelivers: at least
 * once). DM_ENOENT: an unknown or already settled tag. DM_ESTALE: the message was
 * delivered on a connection that has since been lost; the broker has put it back and will
 * deliver it again, so the caller just drops it. */
int dm_bus_ack(struct dm_bus *bus, uint64_t tag);
int dm_bus_nack(struct dm_bus *bus, uint64_t tag, bool requeue);

/* How many messages `queue` holds ready: waiting for a consumer, not yet delivered. Messages
 * delivered and not yet settled are not counted (a broker does not report them through
 * AMQP; each consumer's prefetch bounds those), so this measures what is waiting, the
 * backlog a producer bounds its publishing by. `ret_consumers` (may be NULL) gets the
 * number of consumers of the queue. Counted by whoever holds the queue, so it is one
 * number for every process sharing the queue: exact in process; on a broker one round
 * trip (a passive queue.declare), a snapshot that may already be off by what was
 * published or delivered meanwhile. DM_ENOENT: no such queue (on a broker: it does not
 * exist there). DM_EBUS: the broker is not reachable now. */
int dm_bus_queue_depth(struct dm_bus *bus, const char *queue, uint64_t *ret_ready,
                       uint64_t *ret_consumers);

/* Whether the bus works now, for readiness probes: 0, or DM_EBUS while a connection to the
 * broker is down (the publisher's, or that of a consumer not cancelled; each reconnects by
 * itself). Reads state the bus keeps: no round trip, never blocks on the network. The
 * in-process bus always works. */
int dm_bus_ping(struct dm_bus *bus);

/* Pattern match as a topic exchange does it. Exposed for tests. */
bool dm_bus_topic_match(const char *pattern, const char *routing_key);

#endif
