/* Fuzz target for what a browser sends about its session: a Cookie header is searched for
 * the session cookie, and what is found is checked as a cookie value. Any bytes must give a
 * clean refusal or, only for a value signed with the key below, claims that hold. */
#include "dm/error.h"
#include "dm/session.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static struct dm_session_secret secret;
        static int ready;
        char header[1024], value[DM_SESSION_VALUE_MAX];
        struct dm_session_claims c;

        if (!ready) {
                if (dm_session_secret_derive("fuzz", 4, &secret) < 0)
                        abort();
                ready = 1;
        }
        if (size >= sizeof(header))
                return 0;
        memcpy(header, data, size);
        header[size] = '\0';
        int r = dm_session_cookie_find(header, value, sizeof(value));
        if (r == DM_ENOENT || r == DM_E2BIG)
                return 0;
        if (r != 0 || strlen(value) >= sizeof(value))
                abort();
        /* The same bytes as a bare value too: both paths must refuse cleanly. */
        for (int pass = 0; pass < 2; pass++) {
                r = dm_session_claims_check(&secret, pass ? header : value, 0, &c);
                if (r == 0) {
                        if (strlen(c.token) != 64 || c.key_id[0] == '\0' ||
                            c.scope < DM_SCOPE_READ || c.expires_at <= 0)
                                abort();
                } else if (r != DM_EACCES) {
                        abort();
                }
        }
        (void)dm_session_origin_check("POST", value, "127.0.0.1:8080", header);
        return 0;
}
