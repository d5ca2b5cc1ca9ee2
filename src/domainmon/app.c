/* What the services of one process share beyond the store and the bus: the outbox relay,
 * started by the first service that writes events and stopped by the last. */
#include "app.h"

#include "dm/error.h"
#include "dm/log.h"

int dm_app_relay_hold(struct dm_app *app)
{
        if (app->relay_holders++ > 0)
                return 0;
        struct dm_outbox_relay_opts o = {.store = app->store, .bus = app->bus};
        int r = dm_outbox_relay_start(&o, &app->relay);
        if (r < 0) {
                app->relay_holders = 0;
                app->relay = NULL;
                dm_log_error("main", "msg=\"cannot start the outbox relay\" err=\"%s\"",
                             dm_strerror(r));
        }
        return r;
}

void dm_app_relay_release(struct dm_app *app)
{
        if (app->relay_holders == 0 || --app->relay_holders > 0)
                return;
        dm_outbox_relay_stop(app->relay);
        app->relay = NULL;
}
