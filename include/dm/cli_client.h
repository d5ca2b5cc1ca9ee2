/* The command-line client's HTTP side (libcurl): one request at a time to a running
 * service's API, and the live event stream. Not thread-safe: one client per thread. */
#ifndef DM_CLI_CLIENT_H
#define DM_CLI_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "dm/cli.h"

#define DM_CLI_BODY_MAX (64u * 1024 * 1024) /* largest answer read */

struct dm_cli_client;

/* `base_url` "http://127.0.0.1:8080" (a trailing '/' is fine); `key` may be NULL (then
 * only public routes answer). Both are copied. Returns 0, DM_EINVAL (not http:// or
 * https://), DM_ENOMEM. */
int dm_cli_client_new(const char *base_url, const char *key, struct dm_cli_client **ret_client);
void dm_cli_client_free(struct dm_cli_client *c);

/* One answer. `doc` is the parsed JSON body when it is JSON (else NULL). */
struct dm_cli_response {
        long status;
        json_t *doc;
};
void dm_cli_response_done(struct dm_cli_response *res);

/* Sends `method` to base_url + path (path already percent-encoded, with any query) with
 * `body` as JSON (NULL: none). Returns 0 when an HTTP answer came (whatever its status) and
 * fills *res; DM_EIO when no answer came (connection refused, timeout...) with the reason
 * in err, naming the URL. */
int dm_cli_request(struct dm_cli_client *c, const char *method, const char *path,
                   const json_t *body, struct dm_cli_response *res, char *err, size_t errlen);

/* The one line to print for an answer that is not a success: the problem document's
 * "detail" (else its "title", else the status), made safe, into buf. Returns buf. */
const char *dm_cli_problem_line(const struct dm_cli_response *res, char *buf, size_t size);

/* Percent-encodes `s` as one path segment or query value into buf. Returns buf, or NULL
 * when it does not fit. */
const char *dm_cli_escape(const char *s, char *buf, size_t size);

/* Opens the SSE stream at `path` (with `last_event_id` when not NULL) and feeds what comes
 * to `reader` until the server ends it or a callback fails. Returns 0 (ended by the
 * server), the callback's code, DM_EIO with err (network), or DM_EACCES / DM_ENOENT /
 * DM_EPROTO-like errors as DM_EINVAL with the problem line in err for a refusal. */
int dm_cli_stream(struct dm_cli_client *c, const char *path, const char *last_event_id,
                  struct dm_sse_reader *reader, char *err, size_t errlen);

#endif
