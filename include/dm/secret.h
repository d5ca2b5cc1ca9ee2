/* Keeping secrets out of text that leaves the process (log lines, error bodies, `config`
 * output). */
#ifndef DM_SECRET_H
#define DM_SECRET_H

#include <stddef.h>

#define DM_SECRET_MASK "****"

/* Copies `in` into `out` (NUL-terminated, cut to `size`) with every secret replaced by
 * DM_SECRET_MASK:
 *   - the password of a URL's userinfo, wherever a URL appears: "amqp://u:PASS@h" (also
 *     a password holding ':' or '@' before the host's '@');
 *   - the value of a parameter named password, passwd, pass, pwd, secret, secret_key, token,
 *     access_token, api_key or apikey (any case), in a query string or in libpq's
 *     "key=value" form: "?password=PASS", "&token=T", "password=PASS host=h".
 * Returns out. Never fails; with size 0 writes nothing. */
char *dm_secret_mask(const char *in, char *out, size_t size);

#endif
