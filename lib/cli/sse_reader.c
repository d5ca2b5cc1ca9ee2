/* Server-Sent Events, the reading side (WHATWG HTML, "event stream interpretation"), for
 * `domainmon watch`. Bytes arrive in chunks cut anywhere, a CRLF possibly split across two;
 * lines are collected up to a cap, then dispatched field by field. */
#include "dm/cli.h"

#include <string.h>

#include "dm/error.h"

void dm_sse_reader_init(struct dm_sse_reader *r, size_t max_line, size_t max_event,
                        dm_sse_event_fn fn, void *arg)
{
        memset(r, 0, sizeof(*r));
        r->fn = fn;
        r->arg = arg;
        dm_buf_init(&r->line, max_line);
        dm_buf_init(&r->data, max_event);
}

void dm_sse_reader_done(struct dm_sse_reader *r)
{
        if (!r)
                return;
        dm_buf_done(&r->line);
        dm_buf_done(&r->data);
}

static void copy_field(char *dst, size_t size, const char *v, size_t n)
{
        if (n >= size)
                n = size - 1;
        memcpy(dst, v, n);
        dst[n] = '\0';
}

static int dispatch(struct dm_sse_reader *r)
{
        int ret = 0;
        if (r->has_data) {
                const char *d = r->data.data ? r->data.data : "";
                size_t n = r->data.len;
                /* The data buffer holds each line followed by LF; the last LF is not data. */
                if (n > 0 && d[n - 1] == '\n')
                        n--;
                ret = r->fn(r->arg, r->event[0] ? r->event : "message",
                            r->has_id ? r->last_id : NULL, d, n);
        }
        dm_buf_clear(&r->data);
        r->event[0] = '\0';
        r->has_id = false;
        r->has_data = false;
        return ret;
}

static int process_line(struct dm_sse_reader *r, const char *line, size_t n)
{
        if (n == 0)
                return dispatch(r);
        if (line[0] == ':')
                return 0;
        const char *colon = memchr(line, ':', n);
        size_t flen = colon ? (size_t)(colon - line) : n;
        const char *v = colon ? colon + 1 : line + n;
        size_t vlen = colon ? n - flen - 1 : 0;
        if (vlen > 0 && *v == ' ') {
                v++;
                vlen--;
        }
        if (flen == 4 && memcmp(line, "data", 4) == 0) {
                int ret = dm_buf_add(&r->data, v, vlen);
                if (ret == 0)
                        ret = dm_buf_addc(&r->data, '\n');
                r->has_data = true;
                return ret;
        }
        if (flen == 5 && memcmp(line, "event", 5) == 0) {
                copy_field(r->event, sizeof(r->event), v, vlen);
        } else if (flen == 2 && memcmp(line, "id", 2) == 0) {
                if (!memchr(v, '\0', vlen)) {
                        copy_field(r->last_id, sizeof(r->last_id), v, vlen);
                        r->has_id = true;
                }
        }
        /* "retry" and unknown fields: nothing to do for this client. */
        return 0;
}

int dm_sse_reader_feed(struct dm_sse_reader *r, const char *p, size_t n)
{
        size_t i = 0;

        if (!r->bom_done && n > 0) {
                /* A BOM may only open the stream; wait for its three bytes. */
                size_t have = r->line.len;
                static const char bom[] = "\xef\xbb\xbf";
                while (i < n && have + i < 3 && p[i] == bom[have + i])
                        i++;
                if (have + i < 3 && i == n) {
                        int ret = dm_buf_add(&r->line, p, n);
                        return ret;
                }
                if (have + i == 3) {
                        dm_buf_clear(&r->line);
                } else {
                        i = 0; /* not a BOM: the held bytes are text */
                }
                r->bom_done = true;
        }
        for (; i < n; i++) {
                char c = p[i];
                if (r->skip_lf) {
                        r->skip_lf = false;
                        if (c == '\n')
                                continue;
                }
                if (c == '\r' || c == '\n') {
                        r->skip_lf = c == '\r';
                        int ret = process_line(r, r->line.data ? r->line.data : "", r->line.len);
                        dm_buf_clear(&r->line);
                        if (ret < 0)
                                return ret;
                        continue;
                }
                /* Bytes up to the next line break in one add. */
                size_t j = i;
                while (j < n && p[j] != '\r' && p[j] != '\n')
                        j++;
                if (dm_buf_add(&r->line, p + i, j - i) < 0)
                        return DM_E2BIG;
                i = j - 1;
        }
        return 0;
}
