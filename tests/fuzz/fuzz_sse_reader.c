/* `domainmon watch` reads the event stream from a server (or whatever answers on that
 * address): the SSE reader must never crash or overrun, whatever the bytes and however they
 * are cut, and must give the same events fed at once or in pieces. The first byte picks
 * the piece size. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dm/cli.h"
#include "dm/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct tally {
        uint64_t hash;
        size_t events;
};

static int on_event(void *arg, const char *event, const char *id, const char *d, size_t len)
{
        struct tally *t = arg;
        if (!event || strlen(event) >= 128 || (id && strlen(id) >= 256) || len > 4096)
                abort();
        for (size_t i = 0; i < len; i++)
                t->hash = t->hash * 31 + (unsigned char)d[i];
        for (const char *p = event; *p; p++)
                t->hash = t->hash * 31 + (unsigned char)*p;
        t->events++;
        return 0;
}

static int run(const uint8_t *data, size_t size, size_t piece, struct tally *t)
{
        struct dm_sse_reader r;
        int ret = 0;
        dm_sse_reader_init(&r, 1024, 4096, on_event, t);
        for (size_t i = 0; i < size && ret == 0; i += piece) {
                size_t n = size - i < piece ? size - i : piece;
                ret = dm_sse_reader_feed(&r, (const char *)data + i, n);
        }
        dm_sse_reader_done(&r);
        return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size == 0)
                return 0;
        size_t piece = (size_t)(data[0] % 7) + 1;
        struct tally whole = {0}, cut = {0};
        int a = run(data + 1, size - 1, size, &whole);
        int b = run(data + 1, size - 1, piece, &cut);
        if ((a == 0) != (b == 0) ||
            (a == 0 && (whole.events != cut.events || whole.hash != cut.hash)))
                abort();
        return 0;
}
