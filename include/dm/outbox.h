/* The outbox relay: moves events from the store's outbox to the bus. Every service that
 * writes events (the DNS service's commits, the domain API's inserts and deletes) writes
 * them into the outbox in the transaction of what they announce; a relay claims them
 * (oldest first, with a lease), publishes them with one dm_bus_publish_batch per claim and
 * deletes those the bus took. It runs one round when kicked and every poll interval.
 *
 * Several relays, in one process or many, may share a store and a bus: a claim keeps an
 * event from every other relay while its lease holds, so relays never publish the same
 * event at the same time. A relay that dies between claim and delete leaves its claims to
 * expire and another relay publishes those events again: delivery is at least once, and
 * consumers deduplicate by the event id, "<routing key>:<body's id>" (docs/internals/bus.md,
 * "Event ids"). Events that failed keep their order within a relay, not across relays.
 *
 * Failures: a bus that is down (dm_bus_ping) or refuses a publish, or a store that fails,
 * ends the round; the events stay in the outbox (claimed by this relay, which takes them
 * back on its next round) and the relay tries again at the next kick or poll. Each outage
 * is logged once when it starts and once when it ends. An event the bus can never take (a
 * routing key it refuses) is logged and deleted rather than blocking the rest.
 *
 * Thread-safety: kick, flush and stats may be called from any thread; rounds never overlap
 * (a flush waits for the relay thread's round). */
#ifndef DM_OUTBOX_H
#define DM_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dm/bus.h"
#include "dm/store.h"

#define DM_OUTBOX_BATCH 1000 /* events per claim and publish */
/* How long a claim holds. Longer than the bus's publish timeout (30 s on RabbitMQ), so that
 * a slow publish does not let another relay publish the same events meanwhile; a relay
 * that dies delays its claimed events by at most this. */
#define DM_OUTBOX_LEASE_MS 60000
#define DM_OUTBOX_POLL_MS 1000 /* a round this often without a kick */

struct dm_outbox_relay_opts {
        struct dm_store *store; /* borrowed: must outlive the relay */
        struct dm_bus *bus;     /* borrowed: must outlive the relay */
        size_t batch;           /* 0: DM_OUTBOX_BATCH */
        int64_t lease_ms;       /* 0: DM_OUTBOX_LEASE_MS */
        int64_t poll_ms;        /* 0: DM_OUTBOX_POLL_MS */
        const char *log_svc;    /* svc= of its log lines (static string); NULL: "outbox" */
};

struct dm_outbox_stats {
        uint64_t published; /* events the bus took (and the relay then deleted) */
        uint64_t dropped;   /* events the bus can never take: logged and deleted */
        uint64_t outages;   /* times the bus or the store started failing */
        bool bus_down, store_down;
};

struct dm_outbox_relay;

/* Starts the relay thread (it takes no signals). Returns 0, DM_EINVAL, DM_ENOMEM or
 * DM_EAGAIN (no thread). */
int dm_outbox_relay_start(const struct dm_outbox_relay_opts *opts,
                          struct dm_outbox_relay **ret_relay);
/* Asks for a round now (after a commit that wrote events). Never blocks. NULL-safe. */
void dm_outbox_relay_kick(struct dm_outbox_relay *r);
/* Runs rounds on the calling thread until nothing is left to claim. Returns 0, or the
 * error that ended it (DM_EBUS and the other errors of dm_bus_publish, or the store's). */
int dm_outbox_relay_flush(struct dm_outbox_relay *r);
void dm_outbox_relay_stats(struct dm_outbox_relay *r, struct dm_outbox_stats *ret_stats);
/* Runs a last round (what was written before the call is published if the bus takes it),
 * stops the thread and frees. NULL-safe. */
void dm_outbox_relay_stop(struct dm_outbox_relay *r);

#endif
