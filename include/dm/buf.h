/* Growable byte buffer with a mandatory size cap, and a bounds-checked read cursor. Every
 * parser of outside data reads through dm_cursor; everything built from outside data grows
 * through dm_buf, so nothing can grow without limit. */
#ifndef DM_BUF_H
#define DM_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dm_buf {
        char *data; /* owned; always NUL-terminated once anything was added */
        size_t len;
        size_t cap;
        size_t max; /* len never exceeds this */
};

/* Empty buffer that may grow to `max` bytes (not counting the trailing NUL). */
void dm_buf_init(struct dm_buf *b, size_t max);
/* Frees the contents; the buffer may be reused after dm_buf_init. NULL-safe. */
void dm_buf_done(struct dm_buf *b);
/* Empties the buffer and keeps its memory. */
void dm_buf_clear(struct dm_buf *b);
/* Append. Return 0, DM_ENOMEM, or DM_E2BIG when `max` would be exceeded (then b is
 * unchanged). */
int dm_buf_add(struct dm_buf *b, const void *p, size_t n);
int dm_buf_addstr(struct dm_buf *b, const char *s);
int dm_buf_addc(struct dm_buf *b, char c);
int dm_buf_addf(struct dm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the data to the caller (free() it) and leaves b empty. Never NULL on success: an
 * empty buffer gives "". Returns NULL only on DM_ENOMEM. */
char *dm_buf_detach(struct dm_buf *b);

/* Read cursor over bytes it does not own. Any read past the end fails with DM_ETRUNC and
 * leaves the position unchanged. */
struct dm_cursor {
        const uint8_t *data;
        size_t len;
        size_t pos;
};

void dm_cursor_init(struct dm_cursor *c, const void *data, size_t len);
size_t dm_cursor_left(const struct dm_cursor *c);
int dm_cursor_u8(struct dm_cursor *c, uint8_t *ret);
int dm_cursor_u16(struct dm_cursor *c, uint16_t *ret); /* network byte order */
int dm_cursor_u32(struct dm_cursor *c, uint32_t *ret); /* network byte order */
/* Points *ret into the data (no copy) and advances n bytes. */
int dm_cursor_bytes(struct dm_cursor *c, size_t n, const uint8_t **ret);
int dm_cursor_skip(struct dm_cursor *c, size_t n);
/* Moves to absolute offset `pos` (<= len). */
int dm_cursor_seek(struct dm_cursor *c, size_t pos);

#endif
