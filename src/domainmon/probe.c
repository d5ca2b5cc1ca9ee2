/* The probe server of a process without the API (`dns-service`): /healthz, /readyz and /metrics on
 * conf.listen, so that an orchestrator can tell whether its store and bus work. */
#include <stdlib.h>

#include "api.h"
#include "dm/error.h"
#include "dm/log.h"

#define PROBE_CONNECTIONS 64
#define PROBE_IDLE_TIMEOUT_S 30
#define PROBE_MAX_BODY 1024

struct dm_probe_service {
        struct dm_http_router *router;
        struct dm_http_server *server;
};

int dm_probe_service_start(struct dm_app *app, struct dm_probe_service **ret_service)
{
        char err[256], qerr[300], qaddr[96];
        struct dm_probe_service *s = calloc(1, sizeof(*s));
        if (!s)
                return DM_ENOMEM;
        int ret = dm_http_router_new(&s->router);
        if (ret == 0)
                ret = dm_http_router_add(s->router, dm_api_probe_routes);
        if (ret < 0)
                goto fail;

        struct dm_http_server_opts opts = {
            .listen = app->conf.listen,
            .threads = 1,
            .max_body = PROBE_MAX_BODY,
            .max_conns = PROBE_CONNECTIONS,
            .idle_timeout_s = PROBE_IDLE_TIMEOUT_S,
            .router = s->router,
            .app = app,
            .metric_requests = app->m ? app->m->http_requests : NULL,
            .metric_seconds = app->m ? app->m->http_seconds : NULL,
        };
        ret = dm_http_server_start(&opts, err, sizeof(err), &s->server);
        if (ret < 0) {
                dm_log_error("probe", "msg=\"cannot start the probe server\" err=%s",
                             dm_log_quote(qerr, sizeof(qerr), err));
                goto fail;
        }
        dm_log_info("probe", "msg=\"listening\" addr=%s paths=\"/healthz /readyz /metrics\"",
                    dm_log_quote(qaddr, sizeof(qaddr), dm_http_server_addr(s->server)));
        *ret_service = s;
        return 0;
fail:
        dm_http_router_free(s->router);
        free(s);
        return ret;
}

void dm_probe_service_stop(struct dm_probe_service *s)
{
        if (!s)
                return;
        dm_http_server_stop(s->server);
        dm_http_router_free(s->router);
        free(s);
}
