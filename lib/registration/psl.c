/* Registrable domains by the public suffix list (libpsl). */
#include "dm/registration.h"

#include <libpsl.h>
#include <pthread.h>
#include <string.h>

#include "dm/error.h"

static pthread_once_t psl_once = PTHREAD_ONCE_INIT;
static const psl_ctx_t *psl_ctx;

static void psl_load(void)
{
        /* psl_latest() takes the system list (Debian's publicsuffix package, kept current
         * by the distribution) when it is newer than the copy built into libpsl, else the
         * built-in one. It never fails for want of the file. */
        psl_ctx = psl_latest(NULL);
        if (!psl_ctx)
                psl_ctx = psl_builtin();
}

int dm_reg_registrable(const char *name, char *buf, size_t size)
{
        const char *reg;
        size_t len;

        pthread_once(&psl_once, psl_load);
        if (!name || !name[0] || !psl_ctx)
                return DM_EINVAL;
        reg = psl_registrable_domain(psl_ctx, name);
        if (!reg)
                return DM_EINVAL;
        len = strlen(reg);
        if (len >= size)
                return DM_EINVAL;
        memcpy(buf, reg, len + 1);
        return 0;
}

const char *dm_reg_tld(const char *name)
{
        const char *dot = strrchr(name, '.');
        return dot ? dot + 1 : name;
}
