/* GET /api/v1/events: the live event stream (Server-Sent Events). Wiring only: the query
 * and Last-Event-ID go to lib/events, which decides what the stream sends and when it is
 * too slow, and lib/http holds the connection without a thread while there is nothing to
 * send (docs/internals/http.md, "Streams"). */
#include <stdlib.h>

#include "api.h"
#include "dm/error.h"
#include "dm/events.h"
#include "dm/log.h"
#include "dm/time.h"

/* What the kernel holds for a client that stops reading (Linux doubles it): events are
 * small, and a slow client should reach the backlog cap rather than hide in socket
 * buffers. */
#define EVENTS_SNDBUF (64 * 1024)
#define EVENTS_RETRY_AFTER "5"

static const struct dm_http_problem_type dm_problem_too_many_streams = {"too-many-streams",
                                                                        "Too many event streams"};

static const char *const events_params[] = {"topics", NULL};

struct events_client {
        struct dm_event_stream *stream;
        int64_t key_id;
};

static ssize_t events_read(void *arg, char *buf, size_t max)
{
        struct events_client *c = arg;
        ssize_t n = dm_event_stream_read(c->stream, buf, max, dm_mono_ms());

        if (n >= 0)
                return n;
        return n == DM_ESHUTDOWN ? DM_HTTP_STREAM_END : DM_HTTP_STREAM_ABORT;
}

static void events_done(void *arg)
{
        struct events_client *c = arg;

        if (dm_event_stream_close(c->stream) == DM_ECANCELED)
                dm_log_warn("events",
                            "msg=\"dropped an event stream that fell behind\" key_id=%lld",
                            (long long)c->key_id);
        free(c);
}

static void events_wake(void *arg)
{
        dm_http_stream_wake(arg);
}

static void events_kill(void *arg)
{
        dm_http_stream_abort(arg);
}

static const struct dm_event_stream_ops events_ops = {.wake = events_wake, .kill = events_kill};

static void events_get(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_app *app = req->app;
        struct dm_event_filter *filter = NULL;
        struct events_client *c = NULL;
        struct dm_http_stream *hs = NULL;
        char err[256];
        int r;

        if (dm_http_query_check(req, events_params, res) < 0)
                return;
        const char *topics = dm_http_query(req, "topics");
        if (topics) {
                r = dm_event_filter_parse(topics, err, sizeof(err), &filter);
                if (r == DM_EINVAL) {
                        dm_http_problem_field(res, 400, &dm_problem_invalid_parameter, "topics",
                                              err);
                        return;
                }
                if (r < 0) {
                        dm_api_store_error(res, r, "event stream");
                        return;
                }
        }
        if (!app->events) {
                dm_event_filter_free(filter);
                dm_http_problem(res, 503, &dm_problem_unavailable,
                                "the live event stream is not running");
                return;
        }
        c = calloc(1, sizeof(*c));
        if (!c) {
                dm_event_filter_free(filter);
                dm_api_store_error(res, DM_ENOMEM, "event stream");
                return;
        }
        c->key_id = req->principal.key_id;
        r = dm_event_stream_open(app->events, filter, dm_http_header(req, "Last-Event-ID"),
                                 dm_mono_ms(), &c->stream);
        if (r < 0) {
                free(c);
                if (r == DM_ENOSPC) {
                        dm_http_problem(res, 503, &dm_problem_too_many_streams,
                                        "%lld event streams are open, the most this service "
                                        "takes (DM_EVENTS_MAX_STREAMS); try again later",
                                        (long long)app->conf.events_max_streams);
                        dm_http_response_header(res, "Retry-After", EVENTS_RETRY_AFTER);
                } else if (r == DM_ESHUTDOWN) {
                        dm_http_problem(res, 503, &dm_problem_unavailable,
                                        "the service is stopping");
                        dm_http_response_header(res, "Retry-After", EVENTS_RETRY_AFTER);
                } else {
                        dm_api_store_error(res, r, "event stream");
                }
                return;
        }
        struct dm_http_stream_source src = {
            .read = events_read,
            .done = events_done,
            .arg = c,
            .sndbuf = EVENTS_SNDBUF,
        };
        r = dm_http_respond_stream(req, res, 200, "text/event-stream", &src, &hs);
        if (r < 0) {
                events_done(c);
                return;
        }
        /* From here the response owns c: events_done runs when it is finished. */
        dm_http_response_header(res, "Cache-Control", "no-cache");
        dm_http_response_header(res, "X-Accel-Buffering", "no");
        dm_event_stream_attach(c->stream, &events_ops, hs);
}

const struct dm_http_route dm_api_event_routes[] = {
    {DM_HTTP_GET, "/api/v1/events", events_get, DM_SCOPE_READ, 0},
    {0},
};
