/* Events reach the alert service from the bus (a broker may carry anything), and their values
 * come from DNS, TLS and registration servers: the input is a routing key, a newline, and a
 * body. Reading it must never crash; a read event has the key "<routing key>:<id>" and a
 * stored-form domain or none; and every message made from it holds: the webhook body is one
 * JSON object, the email subject has no line break, the SMS is one printable segment. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dm/alert.h"
#include "dm/name.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *nl = memchr(data, '\n', size);
        struct dm_alert_event_info ev;
        char key[64];

        if (!nl || (size_t)(nl - (const char *)data) >= sizeof(key))
                return 0;
        size_t klen = (size_t)(nl - (const char *)data);
        memcpy(key, data, klen);
        key[klen] = '\0';
        if (strlen(key) != klen)
                return 0;
        size_t blen = size - klen - 1;
        char *body = malloc(blen + 1);
        if (!body)
                abort();
        memcpy(body, nl + 1, blen);
        body[blen] = '\0';

        if (dm_alert_event_read(key, body, blen, &ev) == 0) {
                if (strncmp(ev.key, key, klen) != 0 || ev.key[klen] != ':')
                        abort();
                if (ev.domain[0] && !dm_name_is_stored_form(ev.domain))
                        abort();
                struct dm_alert_delivery d = {.id = 1, .rule_id = 1, .body = body};
                memcpy(d.routing_key, key, klen < sizeof(d.routing_key) ? klen + 1 : 0);
                memcpy(d.domain, ev.domain, sizeof(d.domain));
                const struct dm_alert_delivery *items[2] = {&d, &d};
                for (size_t n = 1; n <= 2; n++) {
                        struct dm_alert_message m = {.items = items, .n = n, .digest = n == 2};
                        char *w = dm_alert_render_webhook(&m, 0);
                        json_error_t jerr;
                        json_t *o = w ? json_loads(w, 0, &jerr) : NULL;
                        if (w && !json_is_object(o))
                                abort();
                        json_decref(o);
                        free(w);
                        char *subject = NULL, *text = NULL;
                        if (dm_alert_render_email(&m, "rule", &subject, &text) == 0 &&
                            (strchr(subject, '\n') || strchr(subject, '\r')))
                                abort();
                        free(subject);
                        free(text);
                        char sms[DM_ALERT_SMS_MAX + 1];
                        dm_alert_render_sms(&m, sms, sizeof(sms));
                        for (const char *p = sms; *p; p++) {
                                if (*p < 0x20 || *p > 0x7e)
                                        abort();
                        }
                        if (strlen(sms) > DM_ALERT_SMS_MAX)
                                abort();
                }
        }
        free(body);
        return 0;
}
