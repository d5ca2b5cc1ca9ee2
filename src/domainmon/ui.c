/* The web UI: the page for every URL the UI owns and its assets, from web/ compiled into
 * the binary (lib/web). No key is needed to load them; the page signs in through
 * /api/v1/session and reads everything else from the API. */
#include "api.h"
#include "dm/web.h"

static void send_asset(struct dm_http_response *res, const char *name)
{
        const struct dm_embed_file *f = dm_web_asset(name);

        if (!f) {
                dm_http_problem(res, 404, &dm_problem_not_found, "no such file");
                return;
        }
        if (dm_http_respond(res, 200, dm_web_content_type(name), f->data, f->len) < 0)
                return;
        dm_http_response_header(res, "Content-Security-Policy", DM_WEB_CSP);
        dm_http_response_header(res, "X-Frame-Options", "DENY");
        dm_http_response_header(res, "Referrer-Policy", "no-referrer");
        /* Assets change with the binary: always revalidate, never serve an old script. */
        dm_http_response_header(res, "Cache-Control", "no-cache");
}

static void ui_page(struct dm_http_request *req, struct dm_http_response *res)
{
        send_asset(res, DM_WEB_INDEX);
}

static void ui_asset(struct dm_http_request *req, struct dm_http_response *res)
{
        send_asset(res, dm_http_param(req, "file"));
}

const struct dm_http_route dm_ui_routes[] = {
    {DM_HTTP_GET, "/", ui_page, DM_SCOPE_NONE, DM_HTTP_ROUTE_PUBLIC},
    {DM_HTTP_GET, "/domains/{name}", ui_page, DM_SCOPE_NONE, DM_HTTP_ROUTE_PUBLIC},
    {DM_HTTP_GET, "/alerts", ui_page, DM_SCOPE_NONE, DM_HTTP_ROUTE_PUBLIC},
    {DM_HTTP_GET, "/ui/{file}", ui_asset, DM_SCOPE_NONE, DM_HTTP_ROUTE_PUBLIC},
    {0},
};
