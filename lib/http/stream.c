/* Streamed responses without a thread each: the body comes from a libmicrohttpd content
 * reader, and when the source has nothing to send the reader suspends the connection, which
 * takes it out of MHD's poll set, so an idle stream costs a socket and a little memory and
 * no thread. dm_http_stream_wake resumes it (MHD_USE_ITC wakes the polling thread, in the
 * single-thread and the thread-pool mode alike), and MHD calls the reader again.
 *
 * The one race is a wake that comes between the source answering "nothing" and the
 * suspension: `woken` is cleared before each read and checked under the stream's mutex
 * before suspending, so such a wake makes the reader read again instead of sleeping through
 * it. Lock order: the source's own lock (taken inside read) is never held while this mutex
 * is taken by the reader; wake and abort may be called with the source's lock held.
 *
 * MHD forbids stopping a daemon with suspended connections: whoever feeds streams must end
 * them (read returns DM_HTTP_STREAM_END) and wake them before dm_http_server_stop. */
#include "dm/http.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "dm/error.h"

/* What MHD asks the reader for at most; it also bounds one chunk of the body. */
#define STREAM_BLOCK_SIZE (16 * 1024)
/* Reads in a row that found nothing though woken, before suspending anyway: a source that
 * wakes its stream without having anything would otherwise keep the reader spinning. */
#define STREAM_MAX_RETRIES 8

struct dm_http_stream {
        pthread_mutex_t mu;
        struct MHD_Connection *conn;
        int fd; /* the connection's socket, for abort; -1 when unknown */
        bool parked;
        bool woken;
        bool aborted;
        struct dm_http_stream_source src;
};

/* Whether the client has closed its end. MHD does not watch a suspended connection, so a
 * client that went away while its stream was parked is only noticed when MHD writes to it;
 * looking before each suspension notices it at the first write after it left (a heartbeat
 * at the latest) instead of the second. Data waiting (a pipelined request) is not an end. */
static bool stream_peer_gone(const struct dm_http_stream *s)
{
        char c;

        if (s->fd < 0)
                return false;
        ssize_t n = recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
        struct dm_http_stream *s = cls;

        for (int tries = 0;; tries++) {
                pthread_mutex_lock(&s->mu);
                s->woken = false;
                bool aborted = s->aborted;
                pthread_mutex_unlock(&s->mu);
                if (aborted)
                        return MHD_CONTENT_READER_END_WITH_ERROR;
                ssize_t n = s->src.read(s->src.arg, buf, max);
                if (n > 0)
                        return (size_t)n <= max ? n : MHD_CONTENT_READER_END_WITH_ERROR;
                if (n == DM_HTTP_STREAM_END)
                        return MHD_CONTENT_READER_END_OF_STREAM;
                if (n < 0 || stream_peer_gone(s))
                        return MHD_CONTENT_READER_END_WITH_ERROR;
                pthread_mutex_lock(&s->mu);
                if ((!s->woken && !s->aborted) || tries == STREAM_MAX_RETRIES) {
                        s->parked = true;
                        MHD_suspend_connection(s->conn);
                        pthread_mutex_unlock(&s->mu);
                        return 0;
                }
                pthread_mutex_unlock(&s->mu);
        }
}

static void stream_free(void *cls)
{
        struct dm_http_stream *s = cls;

        s->src.done(s->src.arg);
        pthread_mutex_destroy(&s->mu);
        free(s);
}

int dm_http_respond_stream(struct dm_http_request *req, struct dm_http_response *res,
                           unsigned status, const char *content_type,
                           const struct dm_http_stream_source *src,
                           struct dm_http_stream **ret_stream)
{
        struct dm_http_stream *s = calloc(1, sizeof(*s));

        if (!s || pthread_mutex_init(&s->mu, NULL) != 0) {
                free(s);
                dm_http_problem(res, 500, NULL, "out of memory");
                return DM_ENOMEM;
        }
        s->conn = req->conn;
        s->fd = -1;
        s->src = *src;
        const union MHD_ConnectionInfo *info =
            req->conn ? MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD)
                      : NULL;
        if (info)
                s->fd = info->connect_fd;
        if (src->sndbuf > 0 && s->fd >= 0)
                (void)setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &src->sndbuf, sizeof(src->sndbuf));
        struct MHD_Response *r = MHD_create_response_from_callback(
            MHD_SIZE_UNKNOWN, STREAM_BLOCK_SIZE, stream_reader, s, stream_free);
        if (!r) {
                pthread_mutex_destroy(&s->mu);
                free(s);
                dm_http_problem(res, 500, NULL, "out of memory");
                return DM_ENOMEM;
        }
        free(res->body);
        res->body = NULL;
        res->body_len = 0;
        if (res->mhd)
                MHD_destroy_response(res->mhd);
        res->mhd = r;
        res->status = status;
        res->content_type = content_type;
        if (ret_stream)
                *ret_stream = s;
        return 0;
}

void dm_http_stream_wake(struct dm_http_stream *s)
{
        pthread_mutex_lock(&s->mu);
        s->woken = true;
        if (s->parked) {
                s->parked = false;
                MHD_resume_connection(s->conn);
        }
        pthread_mutex_unlock(&s->mu);
}

void dm_http_stream_abort(struct dm_http_stream *s)
{
        pthread_mutex_lock(&s->mu);
        if (!s->aborted) {
                s->aborted = true;
                /* MHD closes the socket only after it has freed the response, and by then
                 * `done` has run, after which nobody may abort: the descriptor is still this
                 * connection's. Shutting it down makes MHD's next read or write fail, so the
                 * connection ends even when the client never reads and MHD would otherwise
                 * wait for the socket to drain until its idle timeout. */
                if (s->fd >= 0)
                        (void)shutdown(s->fd, SHUT_RDWR);
        }
        s->woken = true;
        if (s->parked) {
                s->parked = false;
                MHD_resume_connection(s->conn);
        }
        pthread_mutex_unlock(&s->mu);
}
