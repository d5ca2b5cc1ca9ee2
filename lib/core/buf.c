/* Growable buffer with a hard cap, and a read cursor that refuses to step past the end.
 * Modelled on curl's dynbuf and c-ares' ares_buf: the cap makes "grow without limit" a
 * reported error instead of an outage. */
#include "dm/buf.h"

#include "dm/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DM_BUF_MIN_ALLOC 64

void dm_buf_init(struct dm_buf *b, size_t max)
{
        b->data = NULL;
        b->len = 0;
        b->cap = 0;
        b->max = max;
}

void dm_buf_done(struct dm_buf *b)
{
        if (!b)
                return;
        free(b->data);
        b->data = NULL;
        b->len = 0;
        b->cap = 0;
}

void dm_buf_clear(struct dm_buf *b)
{
        b->len = 0;
        if (b->data)
                b->data[0] = '\0';
}

/* Makes room for `extra` more bytes plus the NUL. Caller has checked the cap. */
static int buf_reserve(struct dm_buf *b, size_t extra)
{
        size_t need = b->len + extra + 1;
        if (need <= b->cap)
                return 0;
        size_t ncap = b->cap ? b->cap : DM_BUF_MIN_ALLOC;
        while (ncap < need) {
                if (ncap > SIZE_MAX / 2) {
                        ncap = need;
                        break;
                }
                ncap *= 2;
        }
        /* Never allocate beyond what the cap can use. */
        if (b->max < SIZE_MAX && ncap > b->max + 1)
                ncap = b->max + 1 < need ? need : b->max + 1;
        char *p = realloc(b->data, ncap);
        if (!p)
                return DM_ENOMEM;
        b->data = p;
        b->cap = ncap;
        return 0;
}

int dm_buf_add(struct dm_buf *b, const void *p, size_t n)
{
        if (n > b->max || b->len > b->max - n)
                return DM_E2BIG;
        int r = buf_reserve(b, n);
        if (r < 0)
                return r;
        if (n > 0)
                memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
}

int dm_buf_addstr(struct dm_buf *b, const char *s)
{
        return dm_buf_add(b, s, strlen(s));
}

int dm_buf_addc(struct dm_buf *b, char c)
{
        return dm_buf_add(b, &c, 1);
}

int dm_buf_addf(struct dm_buf *b, const char *fmt, ...)
{
        va_list ap;
        char small[256];

        va_start(ap, fmt);
        int n = vsnprintf(small, sizeof(small), fmt, ap);
        va_end(ap);
        if (n < 0)
                return DM_EINVAL;
        if ((size_t)n < sizeof(small))
                return dm_buf_add(b, small, (size_t)n);

        size_t len = (size_t)n;
        if (len > b->max || b->len > b->max - len)
                return DM_E2BIG;
        int r = buf_reserve(b, len);
        if (r < 0)
                return r;
        va_start(ap, fmt);
        n = vsnprintf(b->data + b->len, len + 1, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n != len) {
                b->data[b->len] = '\0';
                return DM_EINVAL;
        }
        b->len += len;
        return 0;
}

char *dm_buf_detach(struct dm_buf *b)
{
        char *p = b->data;
        if (!p) {
                p = malloc(1);
                if (!p)
                        return NULL;
                p[0] = '\0';
        }
        b->data = NULL;
        b->len = 0;
        b->cap = 0;
        return p;
}

void dm_cursor_init(struct dm_cursor *c, const void *data, size_t len)
{
        c->data = data;
        c->len = data ? len : 0;
        c->pos = 0;
}

size_t dm_cursor_left(const struct dm_cursor *c)
{
        return c->len - c->pos;
}

int dm_cursor_u8(struct dm_cursor *c, uint8_t *ret)
{
        if (dm_cursor_left(c) < 1)
                return DM_ETRUNC;
        *ret = c->data[c->pos];
        c->pos += 1;
        return 0;
}

int dm_cursor_u16(struct dm_cursor *c, uint16_t *ret)
{
        if (dm_cursor_left(c) < 2)
                return DM_ETRUNC;
        const uint8_t *p = c->data + c->pos;
        *ret = (uint16_t)((uint16_t)p[0] << 8 | p[1]);
        c->pos += 2;
        return 0;
}

int dm_cursor_u32(struct dm_cursor *c, uint32_t *ret)
{
        if (dm_cursor_left(c) < 4)
                return DM_ETRUNC;
        const uint8_t *p = c->data + c->pos;
        *ret = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        c->pos += 4;
        return 0;
}

int dm_cursor_bytes(struct dm_cursor *c, size_t n, const uint8_t **ret)
{
        if (dm_cursor_left(c) < n)
                return DM_ETRUNC;
        *ret = c->data + c->pos;
        c->pos += n;
        return 0;
}

int dm_cursor_skip(struct dm_cursor *c, size_t n)
{
        if (dm_cursor_left(c) < n)
                return DM_ETRUNC;
        c->pos += n;
        return 0;
}

int dm_cursor_seek(struct dm_cursor *c, size_t pos)
{
        if (pos > c->len)
                return DM_ETRUNC;
        c->pos = pos;
        return 0;
}
