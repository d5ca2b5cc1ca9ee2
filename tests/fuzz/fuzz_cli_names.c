/* `domainmon domains import FILE` reads lists and CSV files from anywhere: the reader must
 * never crash, read out of bounds, or hand out a name that is empty, longer than its cap, or
 * on a line that does not exist. The first byte picks the column option. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dm/cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
        size_t lines;
        size_t last;
};

static int check(void *arg, const char *name, size_t len, size_t line)
{
        struct seen *s = arg;
        if (len == 0 || len >= 1024 || strlen(name) != len || line == 0 || line > s->lines ||
            line < s->last)
                abort();
        s->last = line;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char *const columns[] = {NULL, "1", "2", "name", "Domain", "0", "99999"};
        char err[256];
        if (size == 0)
                return 0;
        const char *column = columns[data[0] % (sizeof(columns) / sizeof(columns[0]))];
        const char *text = (const char *)data + 1;
        size_t len = size - 1;
        struct seen s = {.lines = 1};
        for (size_t i = 0; i < len; i++)
                s.lines += text[i] == '\n' || text[i] == '\r';
        /* Outside the buffer nothing is read: copy into an exact-size allocation. */
        char *copy = malloc(len ? len : 1);
        if (!copy)
                return 0;
        memcpy(copy, text, len);
        (void)dm_cli_names_read(copy, len, column, check, &s, err, sizeof(err));
        free(copy);
        return 0;
}
