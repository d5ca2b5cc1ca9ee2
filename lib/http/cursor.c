/* Page cursors. They are opaque to clients (base64url, so they survive query strings
 * unescaped) but carry nothing secret: a client that forges one only moves its own page. The
 * decoder is strict so that one key has exactly one cursor. */
#include "dm/http.h"

#include <string.h>

#include "dm/error.h"

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int dm_http_cursor_encode(const char *key, char *out, size_t size)
{
        const unsigned char *p = (const unsigned char *)key;
        size_t len = strlen(key);
        size_t need = (len / 3) * 4 + (len % 3 ? len % 3 + 1 : 0);
        size_t o = 0;

        if (need + 1 > size)
                return DM_E2BIG;
        for (size_t i = 0; i < len; i += 3) {
                unsigned v = (unsigned)p[i] << 16;
                size_t n = len - i < 3 ? len - i : 3;
                if (n > 1)
                        v |= (unsigned)p[i + 1] << 8;
                if (n > 2)
                        v |= p[i + 2];
                out[o++] = b64url[(v >> 18) & 63];
                out[o++] = b64url[(v >> 12) & 63];
                if (n > 1)
                        out[o++] = b64url[(v >> 6) & 63];
                if (n > 2)
                        out[o++] = b64url[v & 63];
        }
        out[o] = '\0';
        return 0;
}

static int b64url_val(char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '-')
                return 62;
        if (c == '_')
                return 63;
        return -1;
}

int dm_http_cursor_decode(const char *cursor, char *out, size_t size)
{
        size_t len = strlen(cursor);
        size_t o = 0;

        if (size == 0)
                return DM_E2BIG;
        if (len == 0 || len % 4 == 1)
                return DM_EINVAL;
        for (size_t i = 0; i < len; i += 4) {
                size_t n = len - i < 4 ? len - i : 4;
                unsigned v = 0;
                for (size_t j = 0; j < 4; j++) {
                        int d = j < n ? b64url_val(cursor[i + j]) : 0;
                        if (d < 0)
                                return DM_EINVAL;
                        v = (v << 6) | (unsigned)d;
                }
                /* Bits past the last whole byte must be zero, else two cursors would
                 * decode to the same key. */
                if ((n == 2 && (v & 0xffff)) || (n == 3 && (v & 0xff)))
                        return DM_EINVAL;
                unsigned char bytes[3] = {(unsigned char)(v >> 16), (unsigned char)(v >> 8),
                                          (unsigned char)v};
                for (size_t j = 0; j + 1 < n; j++) {
                        if (bytes[j] < 0x20 || bytes[j] == 0x7f)
                                return DM_EINVAL;
                        if (o + 1 >= size)
                                return DM_E2BIG;
                        out[o++] = (char)bytes[j];
                }
        }
        out[o] = '\0';
        return 0;
}
