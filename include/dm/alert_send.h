/* Alert channels: one try at sending one message, over libcurl. Webhook (HTTP POST, Standard
 * Webhooks headers), email (SMTP, STARTTLS when offered), SMS (a Twilio-compatible HTTP
 * gateway). A try either delivers or fails with a one-line reason; retrying is the caller's.
 *
 * Thread-safety: every function may be called from several threads at once (each call uses
 * its own curl handle). dm_alert_send_init must have run first, once per process. */
#ifndef DM_ALERT_SEND_H
#define DM_ALERT_SEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dm_alert_send_opts {
        bool allow_private;   /* let a webhook connect to private, loopback, link-local addresses */
        int64_t timeout_ms;   /* for the whole try */
        const char *smtp_url; /* smtp://host:port or smtps://host:port; NULL: no email */
        const char *smtp_from;
        const char *smtp_user; /* NULL: no authentication */
        const char *smtp_password;
        const char *sms_url; /* the gateway's Messages URL; NULL: no SMS */
        const char *sms_user;
        const char *sms_password;
        const char *sms_from;
};

/* Initialises libcurl for the process. Returns 0 or DM_EIO. */
int dm_alert_send_init(void);

/* POSTs `body` (JSON) to `url` with webhook-id `msg_id`, webhook-timestamp `timestamp` (unix
 * seconds) and webhook-signature made with `secret`. Redirects are not followed; any 2xx is
 * delivered. A connection to a private address is refused unless opts->allow_private: the
 * check is on the address actually connected to. Returns 0, DM_EACCES (refused address),
 * DM_EIO (an answer that is not 2xx, a transport failure), DM_ETIMEDOUT; `err` gets the
 * reason. */
int dm_alert_send_webhook(const struct dm_alert_send_opts *opts, const char *url,
                          const char *secret, const char *msg_id, int64_t timestamp,
                          const char *body, char *err, size_t errlen);

/* Sends a plain-text mail to `to` with Message-ID <msg_id@domainmon>. `subject` and `to`
 * must be free of CR and LF (the rule and the renderer make sure). Returns 0, DM_ENOTSUP (no
 * DM_SMTP_URL), DM_EIO, DM_ETIMEDOUT. */
int dm_alert_send_email(const struct dm_alert_send_opts *opts, const char *to, const char *msg_id,
                        const char *subject, const char *text, char *err, size_t errlen);

/* POSTs To, From and Body as a form to the gateway with basic auth. Returns 0, DM_ENOTSUP
 * (no DM_SMS_URL), DM_EIO, DM_ETIMEDOUT. */
int dm_alert_send_sms(const struct dm_alert_send_opts *opts, const char *to, const char *text,
                      char *err, size_t errlen);

#endif
