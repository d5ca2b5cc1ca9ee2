/* Live events for the stream GET /api/v1/events: Server-Sent Events framing, topic filters,
 * and a hub that keeps recent events in a bounded ring (the replay buffer for
 * Last-Event-ID) and hands them to the streams reading it. Nothing here knows HTTP or the
 * bus: the domain service feeds the hub from a bus queue, and lib/http parks and wakes the
 * connections (dm_http_respond_stream).
 *
 * An event is a topic (its bus routing key: "change.dns.A", "domain.added") and a body, one
 * JSON object with a positive integer "id". Its stable id is "<topic>:<body.id>", so the same
 * event has the same id whoever relays it: the hub drops a repeat of one it still holds, and
 * clients deduplicate the rest by id.
 *
 * Memory: the ring holds at most max_events events and max_bytes of framed text. Each event
 * is framed once, and a stream only holds a position in the ring, so a stream costs the same
 * whatever it has not read yet. A stream that falls behind is dropped instead: when its
 * unsent events have stayed above max_backlog bytes for stall_ms (a burst larger than the
 * cap is no reason to drop a client that reads it), or at once when the ring drops an event
 * it has not sent.
 *
 * Thread-safety: every function may be called from any thread; one mutex guards a hub and
 * all its streams. A stream's wake and kill callbacks run with that mutex held: they must be
 * quick and must not call back into the hub. */
#ifndef DM_EVENTS_H
#define DM_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dm/buf.h"

/* Bytes of a stable id, NUL included: a routing key (255) ':' and a decimal id. */
#define DM_EVENT_ID_MAX 280
/* Patterns one filter (?topics=) may hold, and bytes of one pattern. */
#define DM_EVENT_FILTER_MAX 16
#define DM_EVENT_PATTERN_MAX 255

/* The event topics as bus patterns, NULL-terminated: what a consumer of every event binds
 * its queue to. The vocabulary is domain.added, domain.removed, change.dns.<TYPE>,
 * change.tls, change.registration, tls.expiring, registration.expiring and check.failing;
 * tasks ("task.#") share the exchange and are not events. */
extern const char *const dm_event_topic_patterns[];

/* ---- filters ---- */

struct dm_event_filter;

/* Parses a comma-separated list of topic patterns with the bus's rules ("change.dns.#,
 * domain.*": words split on '.', '*' one word, '#' zero or more): 1 to DM_EVENT_FILTER_MAX
 * patterns of at most DM_EVENT_PATTERN_MAX bytes, each word '*', '#' or a run of letters,
 * digits, '-' and '_'. Returns 0 and *ret_filter (free with dm_event_filter_free),
 * DM_EINVAL with a one-line reason in `err`, or DM_ENOMEM. */
int dm_event_filter_parse(const char *text, char *err, size_t errlen,
                          struct dm_event_filter **ret_filter);
/* NULL-safe. */
void dm_event_filter_free(struct dm_event_filter *f);
/* Whether `topic` matches any pattern; a NULL filter matches every topic. */
bool dm_event_filter_match(const struct dm_event_filter *f, const char *topic);

/* Whether `topic` can be an event topic: 1 to DM_EVENT_PATTERN_MAX bytes of words of
 * letters, digits, '-' and '_' separated by single dots. */
bool dm_event_topic_valid(const char *topic);

/* ---- stable ids and framing ---- */

/* The stable id of an event into `out`: "<topic>:<id>", id being the body's "id" member.
 * Returns 0; DM_EINVAL when the topic is not valid or the body is not a JSON object (UTF-8,
 * no duplicate keys) with a positive integer "id"; DM_E2BIG when `out` is too small;
 * DM_ENOMEM. */
int dm_event_id(const char *topic, const void *body, size_t len, char *out, size_t size);

/* Appends one event in SSE framing to `b`: "event: <event>\n", "id: <id>\n", one "data: "
 * line per line of `data`, and an empty line. CR, LF and CRLF all end a line of data, so
 * no line break in the data can start another field; a client joins the lines with LF.
 * `event` and `id` may be NULL (the field is left out); an empty id is sent as "id:" (which
 * clears the client's last event id). Returns 0; DM_EINVAL when `event` or `id` holds CR,
 * LF or NUL, or `data` a NUL (nothing is appended then); or the buffer's DM_E2BIG and
 * DM_ENOMEM (then b may hold part of the event: clear it). */
int dm_sse_append_event(struct dm_buf *b, const char *event, const char *id, const char *data,
                        size_t len);
/* Appends the comment line ": <text>\n" and an empty line (clients ignore it; proxies see
 * traffic). DM_EINVAL when text holds CR, LF or NUL; else as above. */
int dm_sse_append_comment(struct dm_buf *b, const char *text);

/* ---- the hub ---- */

struct dm_event_hub_opts {
        size_t max_events;    /* events kept for replay; 0: 10,000 */
        size_t max_bytes;     /* framed bytes kept; 0: 16 MiB */
        size_t max_streams;   /* streams open at once; 0: 256 */
        size_t max_backlog;   /* unsent bytes a stream may stay above for stall_ms; 0: 1 MiB */
        int64_t stall_ms;     /* 0: 5 s */
        int64_t heartbeat_ms; /* a stream silent this long gets a comment line; 0: 15 s */
};

struct dm_event_hub;

/* Returns 0 and *ret_hub, or DM_ENOMEM. */
int dm_event_hub_new(const struct dm_event_hub_opts *opts, struct dm_event_hub **ret_hub);
/* Every stream must be closed first (for HTTP: the server stopped). NULL-safe. */
void dm_event_hub_free(struct dm_event_hub *h);

/* Adds an event as it came off the bus: framed once, kept in the ring (dropping the oldest
 * events past max_events or max_bytes), and every stream it matches is woken. Returns 0;
 * DM_EEXIST when an event with the same stable id is still held (a repeat, dropped);
 * DM_EINVAL when it is not an event (see dm_event_id); DM_E2BIG when its frame alone is
 * larger than max_bytes; DM_ESHUTDOWN after dm_event_hub_shutdown; DM_ENOMEM. */
int dm_event_hub_publish(struct dm_event_hub *h, const char *topic, const void *body, size_t len);

/* Ends every stream (each read returns DM_ESHUTDOWN from now on) and refuses new ones and new
 * events. For a clean stop: before the HTTP server is stopped. */
void dm_event_hub_shutdown(struct dm_event_hub *h);

/* The hub's clock work at `now_ms` (a monotonic clock, the one given to reads): wakes every
 * stream that has sent nothing for heartbeat_ms, so that it sends its comment line, and
 * drops every stream whose backlog has stayed above max_backlog for stall_ms. Returns the ms
 * until something is due again, at most heartbeat_ms: the longest the caller may wait.
 * Call it at least once a second for the stall rule to be timely. */
int64_t dm_event_hub_tick(struct dm_event_hub *h, int64_t now_ms);

struct dm_event_hub_stats {
        size_t events;            /* held in the ring */
        size_t bytes;             /* their framed size */
        size_t streams;           /* open */
        uint64_t published;       /* events taken */
        uint64_t repeats;         /* events dropped as repeats */
        uint64_t evicted;         /* events dropped from the ring for room */
        uint64_t streams_dropped; /* streams dropped for falling behind */
};
void dm_event_hub_stats(struct dm_event_hub *h, struct dm_event_hub_stats *ret_stats);

/* ---- streams ---- */

struct dm_event_stream;

/* How the hub reaches the transport of a stream; both run with the hub's mutex held. */
struct dm_event_stream_ops {
        void (*wake)(void *arg); /* there may be something to read: read again */
        void (*kill)(void *arg); /* dropped: close the connection now, unread bytes or not */
};

/* Opens a stream of the events matching `filter` (taken in every case; NULL: every event)
 * at `now_ms`. Its first read gives a comment line, so the client sees the stream open.
 *
 * `last_event_id` (NULL or "": none) is the id of the last event the client saw. When the
 * hub still holds it, the stream replays the matching events that came after it before any
 * new one, if they fit max_backlog. Otherwise the stream starts with a "reset" event (data
 * {"reason":...}): events were missed, reload the state from the API. Its id is that of the
 * newest event held ("" when none), so that a client reconnecting after it does not get a
 * second reset for the same gap. Without last_event_id the stream starts with new events.
 *
 * Returns 0 and *ret_stream; DM_ENOSPC with max_streams open; DM_ESHUTDOWN; DM_ENOMEM. */
int dm_event_stream_open(struct dm_event_hub *h, struct dm_event_filter *filter,
                         const char *last_event_id, int64_t now_ms,
                         struct dm_event_stream **ret_stream);

/* Sets the callbacks; until then the stream is never woken or killed (reads still work). */
void dm_event_stream_attach(struct dm_event_stream *s, const struct dm_event_stream_ops *ops,
                            void *arg);

/* Copies up to `max` bytes of what the stream has to send, in order: the opening lines,
 * replay, new events, or a heartbeat comment when nothing was sent for heartbeat_ms. Returns
 * the bytes copied (> 0); 0 when there is nothing now (wake is called when there is);
 * DM_ESHUTDOWN once the hub is shut down (end the response cleanly); DM_ECANCELED when the
 * stream was dropped for falling behind (close the connection). An event may be split over
 * reads. One reader per stream at a time. */
ssize_t dm_event_stream_read(struct dm_event_stream *s, char *buf, size_t max, int64_t now_ms);

/* Unregisters and frees: once it returns, no wake or kill for it runs or will run. Returns
 * DM_ECANCELED when the stream had been dropped for falling behind, else 0. NULL-safe. */
int dm_event_stream_close(struct dm_event_stream *s);

#endif
