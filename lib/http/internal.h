/* Shared between the files of lib/http only. */
#ifndef DM_HTTP_INTERNAL_H
#define DM_HTTP_INTERNAL_H

#include <stddef.h>

/* The static body sent for a 500 whose problem document could not be built. */
const char *dm_http_fallback_body(size_t *ret_len);

#endif
