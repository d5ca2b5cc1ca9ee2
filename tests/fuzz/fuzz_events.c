/* Event messages arrive from the bus (a broker may carry anything): the input is a routing
 * key, a newline, and a body. Taking it into the event hub and reading it back through a
 * stream must never crash, and what a stream sends must be SSE that says what was sent:
 * fields only "event", "id" and "data", and the data lines joined by LF equal to the body
 * with its CR and CRLF line breaks made LF. The key is also tried as a ?topics= filter. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dm/events.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The body as a client reassembles it: CRLF and CR become LF. */
static size_t normalize(const char *in, size_t len, char *out)
{
        size_t n = 0;
        for (size_t i = 0; i < len; i++) {
                if (in[i] == '\r') {
                        out[n++] = '\n';
                        if (i + 1 < len && in[i + 1] == '\n')
                                i++;
                } else {
                        out[n++] = in[i];
                }
        }
        return n;
}

/* Checks one framed event (after the opening comment) against the body. */
static void check_frame(const char *f, size_t len, const char *body, size_t blen)
{
        char *want = malloc(blen + 1), *got = malloc(len + 1);
        size_t wlen = normalize(body, blen, want), glen = 0;
        size_t i = 0;
        bool first = true;

        if (!want || !got)
                abort();
        if (len < 2 || f[len - 1] != '\n' || f[len - 2] != '\n')
                abort();
        while (i < len - 1) {
                const char *line = f + i;
                const char *nl = memchr(line, '\n', len - i);
                size_t ll = (size_t)(nl - line);
                if (memchr(line, '\r', ll))
                        abort();
                if (ll >= 6 && memcmp(line, "data: ", 6) == 0) {
                        if (!first)
                                got[glen++] = '\n';
                        memcpy(got + glen, line + 6, ll - 6);
                        glen += ll - 6;
                        first = false;
                } else if (!(ll >= 7 && memcmp(line, "event: ", 7) == 0) &&
                           !(ll >= 4 && memcmp(line, "id: ", 4) == 0)) {
                        abort();
                }
                i += ll + 1;
        }
        if (glen != wlen || memcmp(got, want, glen) != 0)
                abort();
        free(want);
        free(got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *nl = memchr(data, '\n', size);
        if (!nl)
                return 0;
        size_t klen = (size_t)(nl - (const char *)data);
        char *key = malloc(klen + 1);
        if (!key)
                return 0;
        memcpy(key, data, klen);
        key[klen] = '\0';
        const char *body = nl + 1;
        size_t blen = size - klen - 1;

        struct dm_event_filter *f = NULL;
        char err[256];
        if (dm_event_filter_parse(key, err, sizeof(err), &f) == 0) {
                (void)dm_event_filter_match(f, "change.dns.A");
                dm_event_filter_free(f);
        }

        struct dm_event_hub_opts o = {.max_events = 4, .max_bytes = 1 << 20, .max_streams = 2};
        struct dm_event_hub *h = NULL;
        struct dm_event_stream *s = NULL;
        if (dm_event_hub_new(&o, &h) != 0 || dm_event_stream_open(h, NULL, NULL, 0, &s) != 0)
                abort();
        int r = dm_event_hub_publish(h, key, body, blen);
        /* A body of line breaks frames to 7 bytes each ("data: " and LF). */
        size_t cap = 8 * blen + 3 * klen + 512, n = 0;
        char *out = malloc(cap);
        if (!out)
                abort();
        for (;;) {
                ssize_t got = dm_event_stream_read(s, out + n, 97 < cap - n ? 97 : cap - n, 0);
                if (got < 0)
                        abort();
                if (got == 0)
                        break;
                n += (size_t)got;
                if (n == cap)
                        abort();
        }
        if (n < 6 || memcmp(out, ": ok\n\n", 6) != 0)
                abort();
        if (r == 0)
                check_frame(out + 6, n - 6, body, blen);
        else if (n != 6)
                abort();
        free(out);
        dm_event_stream_close(s);
        dm_event_hub_free(h);
        free(key);
        return 0;
}
