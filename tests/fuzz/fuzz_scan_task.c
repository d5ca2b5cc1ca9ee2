/* Scan task messages arrive from the bus (a broker in the distributed deployment): decode
 * must never crash, and whatever it accepts must encode and decode to the same tasks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dm/task.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct dm_scan_task *tasks = NULL, *again = NULL;
        size_t n = 0, n2 = 0;
        char why[256];
        struct dm_buf b;

        if (dm_scan_tasks_decode(data, size, why, sizeof(why), &tasks, &n) < 0)
                return 0;
        dm_buf_init(&b, 4u << 20);
        if (dm_scan_tasks_encode(tasks, n, &b) != 0)
                abort();
        if (dm_scan_tasks_decode(b.data, b.len, why, sizeof(why), &again, &n2) != 0 || n2 != n ||
            memcmp(tasks, again, n * sizeof(*tasks)) != 0)
                abort();
        free(again);
        free(tasks);
        dm_buf_done(&b);
        return 0;
}
