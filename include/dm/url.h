/* The parts of backend URLs that every pluggable family needs alike. */
#ifndef DM_URL_H
#define DM_URL_H

#include <stddef.h>

/* Copies the scheme of `url` (the text before the first ':'), lower-cased, into buf.
 * Returns 0, or DM_EINVAL when there is no ':' , the scheme is empty, or it does not fit
 * in `size` bytes (NUL included). */
int dm_url_scheme(const char *url, char *buf, size_t size);

#endif
