/* The domain service's feed of the live event stream: a transient bus queue of its own,
 * bound to every event topic, whose messages go into the event hub and are acked as soon as
 * they are there, and a thread that wakes streams due for a heartbeat. */
#ifndef DM_EVENT_FEED_H
#define DM_EVENT_FEED_H

#include "dm/bus.h"
#include "dm/cache.h"
#include "dm/events.h"

struct dm_event_feed;

/* Declares and consumes the queue on `bus` (NULL: no bus, only the heartbeats run). Each
 * event also invalidates what `cache` (NULL: none) holds about its domain, before it reaches
 * the stream: a client that sees a change event and reads again gets the new state. bus,
 * hub and cache must outlive the feed. Returns 0, a bus error, or DM_EAGAIN (no thread). */
int dm_event_feed_start(struct dm_bus *bus, struct dm_event_hub *hub, struct dm_cache *cache,
                        struct dm_event_feed **ret_feed);
/* Cancels the consumer (the broker deletes the queue), stops the heartbeat thread and
 * frees. NULL-safe. */
void dm_event_feed_stop(struct dm_event_feed *f);

#endif
