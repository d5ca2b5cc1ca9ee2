/* Human output: text made safe for a terminal, tables padded to their widest cell, and a
 * progress bar. Everything shown may come from DNS (a TXT record can hold escape
 * sequences), so every cell goes through dm_cli_safe. */
#include "dm/cli.h"

#include <stdlib.h>
#include <string.h>

#include "dm/error.h"

/* Length of the valid UTF-8 sequence at s (of at most n bytes), or 0. Overlongs,
 * surrogates and code points above U+10FFFF are not valid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
        unsigned c = s[0];
        size_t len;
        unsigned cp;

        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf) {
                len = 2;
                cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
                len = 3;
                cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
                len = 4;
                cp = c & 0x07;
        } else {
                return 0;
        }
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        /* C1 controls (U+0080..U+009F) move the cursor on some terminals too. */
        if (cp >= 0x80 && cp <= 0x9f)
                return 0;
        return len;
}

const char *dm_cli_safe(char *buf, size_t size, const char *s)
{
        size_t o = 0;
        const unsigned char *p = (const unsigned char *)(s ? s : "");
        size_t n = strlen((const char *)p);

        if (!buf || size == 0)
                return buf;
        for (size_t i = 0; i < n;) {
                size_t len = utf8_len(p + i, n - i);
                bool bad = len == 0 || (len == 1 && (p[i] < 0x20 || p[i] == 0x7f));
                size_t out = bad ? 1 : len;
                if (o + out + 1 > size)
                        break;
                if (bad)
                        buf[o] = '?';
                else
                        memcpy(buf + o, p + i, len);
                o += out;
                i += bad ? 1 : len;
        }
        buf[o] = '\0';
        return buf;
}

size_t dm_cli_width(const char *s)
{
        size_t w = 0;
        for (const unsigned char *p = (const unsigned char *)s; p && *p; p++)
                w += (*p & 0xc0) != 0x80;
        return w;
}

int dm_cli_table_init(struct dm_cli_table *t, size_t ncols, const char *const *header)
{
        memset(t, 0, sizeof(*t));
        t->ncols = ncols;
        int r = dm_cli_table_add(t, header);
        if (r < 0)
                dm_cli_table_done(t);
        return r;
}

int dm_cli_table_add(struct dm_cli_table *t, const char *const *cells)
{
        if (t->nrows == t->cap) {
                size_t cap = t->cap ? t->cap * 2 : 16;
                char **c = realloc(t->cells, cap * t->ncols * sizeof(*c));
                if (!c)
                        return DM_ENOMEM;
                t->cells = c;
                t->cap = cap;
        }
        char **row = t->cells + t->nrows * t->ncols;
        for (size_t i = 0; i < t->ncols; i++) {
                const char *s = cells[i] ? cells[i] : "-";
                size_t size = strlen(s) + 1;
                row[i] = malloc(size);
                if (!row[i]) {
                        while (i-- > 0)
                                free(row[i]);
                        return DM_ENOMEM;
                }
                dm_cli_safe(row[i], size, s);
        }
        t->nrows++;
        return 0;
}

void dm_cli_table_print(const struct dm_cli_table *t, FILE *out)
{
        size_t *w = calloc(t->ncols ? t->ncols : 1, sizeof(*w));
        if (!w)
                return;
        for (size_t r = 0; r < t->nrows; r++) {
                for (size_t c = 0; c < t->ncols; c++) {
                        size_t cw = dm_cli_width(t->cells[r * t->ncols + c]);
                        if (cw > w[c])
                                w[c] = cw;
                }
        }
        for (size_t r = 0; r < t->nrows; r++) {
                for (size_t c = 0; c < t->ncols; c++) {
                        const char *s = t->cells[r * t->ncols + c];
                        bool last = c + 1 == t->ncols;
                        fputs(s, out);
                        if (!last) {
                                for (size_t k = dm_cli_width(s); k < w[c] + 2; k++)
                                        fputc(' ', out);
                        }
                }
                fputc('\n', out);
        }
        free(w);
}

void dm_cli_table_done(struct dm_cli_table *t)
{
        if (!t)
                return;
        for (size_t i = 0; i < t->nrows * t->ncols; i++)
                free(t->cells[i]);
        free(t->cells);
        memset(t, 0, sizeof(*t));
}

const char *dm_cli_progress(size_t done, size_t total, size_t width, char *buf, size_t size)
{
        char tail[64];
        if (!buf || size == 0)
                return buf;
        if (done > total)
                done = total;
        unsigned pct = total ? (unsigned)(done * 100 / total) : 100;
        int tl = snprintf(tail, sizeof(tail), "  %zu/%zu  %u%%", done, total, pct);
        size_t bar = width > (size_t)tl + 3 ? width - (size_t)tl - 3 : 10;
        if (bar > 50)
                bar = 50;
        if (bar + (size_t)tl + 3 > size) {
                snprintf(buf, size, "%s", tail + 2);
                return buf;
        }
        size_t fill = total ? bar * done / total : bar;
        size_t o = 0;
        buf[o++] = '[';
        for (size_t i = 0; i < bar; i++)
                buf[o++] = i < fill ? '#' : ' ';
        buf[o++] = ']';
        snprintf(buf + o, size - o, "%s", tail);
        return buf;
}
