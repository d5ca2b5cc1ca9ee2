/* dm-busctl: the bus from the command line, for integration tests that must put a message
 * on a broker or see what reached a queue (there is no AMQP client for the tests' Python).
 * It speaks through lib/bus, so it declares, publishes and consumes exactly as the services
 * do. Steps run in order on one connection:
 *
 *   dm-busctl URL STEP...
 *     queue NAME PATTERN              declare a plain durable queue bound to PATTERN
 *     work NAME PATTERN LIMIT DEAD    declare a work queue as the DNS service does: delivery
 *                                     limit LIMIT, dead-letter queue DEAD
 *     publish KEY BODY                publish one message and wait for the broker's confirm
 *     take NAME COUNT SECONDS         consume NAME until COUNT messages arrived, printing
 *                                     each as "KEY<TAB>BODY" on a line of stdout and acking
 *                                     it; exit 1 when fewer came within SECONDS
 *     delete NAME                     delete the queue on the broker (amqp:// only; a queue
 *                                     that does not exist is fine), so that a test starts
 *                                     with none: the bus has no call for it, services never
 *                                     delete queues
 *
 * Exit codes: 0 done, 1 a step failed (the reason on stderr), 2 bad usage. */
#include "dm/bus.h"
#include "dm/error.h"

#ifdef DM_HAVE_RABBITMQ
#include <amqp.h>
#include <amqp_tcp_socket.h>
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct taker {
        pthread_mutex_t mu;
        pthread_cond_t cond;
        struct dm_bus *bus;
        long want, got;
};

static void on_message(void *arg, const struct dm_bus_msg *m)
{
        struct taker *t = arg;
        pthread_mutex_lock(&t->mu);
        if (t->got < t->want) {
                printf("%s\t%.*s\n", m->routing_key, (int)m->len, (const char *)m->body);
                fflush(stdout);
                t->got++;
                dm_bus_ack(t->bus, m->tag);
        } else {
                dm_bus_nack(t->bus, m->tag, true); /* not ours to take */
        }
        pthread_cond_broadcast(&t->cond);
        pthread_mutex_unlock(&t->mu);
}

static int take(struct dm_bus *bus, const char *queue, long want, long seconds)
{
        struct taker t = {.bus = bus, .want = want};
        pthread_mutex_init(&t.mu, NULL);
        pthread_cond_init(&t.cond, NULL);
        int r = dm_bus_consume(bus, queue, 1, on_message, &t);
        if (r < 0) {
                fprintf(stderr, "dm-busctl: consume %s: %s\n", queue, dm_strerror(r));
                return 1;
        }
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += seconds;
        pthread_mutex_lock(&t.mu);
        while (t.got < t.want && pthread_cond_timedwait(&t.cond, &t.mu, &dl) == 0)
                ;
        long got = t.got;
        pthread_mutex_unlock(&t.mu);
        dm_bus_cancel(bus, queue, on_message, &t);
        pthread_cond_destroy(&t.cond);
        pthread_mutex_destroy(&t.mu);
        if (got < want) {
                fprintf(stderr, "dm-busctl: %s: %ld of %ld messages within %ld s\n", queue, got,
                        want, seconds);
                return 1;
        }
        return 0;
}

#ifdef DM_HAVE_RABBITMQ
/* queue.delete on a connection of its own, with rabbitmq-c directly. */
static int delete_queue(const char *url, const char *queue)
{
        char *u = strndup(url, strcspn(url, "?")); /* the bus's own options are not AMQP's */
        struct amqp_connection_info ci;
        amqp_connection_state_t conn = amqp_new_connection();
        int rc = 1;
        if (!u || !conn || amqp_parse_url(u, &ci) != AMQP_STATUS_OK || ci.ssl) {
                fprintf(stderr, "dm-busctl: delete: cannot use this URL\n");
                goto out;
        }
        amqp_socket_t *sock = amqp_tcp_socket_new(conn);
        if (!sock || amqp_socket_open(sock, ci.host, ci.port) != AMQP_STATUS_OK) {
                fprintf(stderr, "dm-busctl: delete: cannot connect to %s:%d\n", ci.host, ci.port);
                goto out;
        }
        /* "amqp://host/" means the vhost "/", as lib/bus/amqp.c reads it. */
        const char *vhost = ci.vhost && *ci.vhost ? ci.vhost : "/";
        amqp_rpc_reply_t rep =
            amqp_login(conn, vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci.user, ci.password);
        if (rep.reply_type != AMQP_RESPONSE_NORMAL || !amqp_channel_open(conn, 1) ||
            amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL) {
                fprintf(stderr, "dm-busctl: delete: cannot log in\n");
                goto out;
        }
        amqp_queue_delete(conn, 1, amqp_cstring_bytes(queue), 0, 0);
        rep = amqp_get_rpc_reply(conn);
        if (rep.reply_type != AMQP_RESPONSE_NORMAL) {
                fprintf(stderr, "dm-busctl: delete %s: refused\n", queue);
                goto out;
        }
        amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
        amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
        rc = 0;
out:
        if (conn)
                amqp_destroy_connection(conn);
        free(u);
        return rc;
}
#else
static int delete_queue(const char *url, const char *queue)
{
        (void)url;
        fprintf(stderr, "dm-busctl: delete %s: this build has no RabbitMQ client\n", queue);
        return 1;
}
#endif

static int usage(void)
{
        fprintf(stderr, "usage: dm-busctl URL [queue NAME PATTERN | work NAME PATTERN LIMIT DEAD "
                        "| publish KEY BODY | take NAME COUNT SECONDS | delete NAME]...\n");
        return 2;
}

static int step_failed(const char *step, const char *arg, int r)
{
        fprintf(stderr, "dm-busctl: %s %s: %s\n", step, arg, dm_strerror(r));
        return 1;
}

int main(int argc, char **argv)
{
        char err[256];
        struct dm_bus *bus = NULL;
        int rc = 0;
        if (argc < 3)
                return usage();
        int r = dm_bus_open(argv[1], err, sizeof(err), &bus);
        if (r < 0) {
                fprintf(stderr, "dm-busctl: %s\n", err);
                return 1;
        }
        for (int i = 2; i < argc && rc == 0;) {
                const char *step = argv[i];
                if (strcmp(step, "queue") == 0 && i + 2 < argc) {
                        r = dm_bus_declare(bus, argv[i + 1], argv[i + 2]);
                        rc = r < 0 ? step_failed(step, argv[i + 1], r) : 0;
                        i += 3;
                } else if (strcmp(step, "work") == 0 && i + 4 < argc) {
                        struct dm_bus_queue_opts o = {
                            .delivery_limit = (unsigned)strtoul(argv[i + 3], NULL, 10),
                            .dead_letter_queue = argv[i + 4],
                        };
                        r = dm_bus_declare_opts(bus, argv[i + 1], argv[i + 2], &o);
                        rc = r < 0 ? step_failed(step, argv[i + 1], r) : 0;
                        i += 5;
                } else if (strcmp(step, "publish") == 0 && i + 2 < argc) {
                        r = dm_bus_publish(bus, argv[i + 1], argv[i + 2], strlen(argv[i + 2]));
                        rc = r < 0 ? step_failed(step, argv[i + 1], r) : 0;
                        i += 3;
                } else if (strcmp(step, "delete") == 0 && i + 1 < argc) {
                        rc = delete_queue(argv[1], argv[i + 1]);
                        i += 2;
                } else if (strcmp(step, "take") == 0 && i + 3 < argc) {
                        rc = take(bus, argv[i + 1], strtol(argv[i + 2], NULL, 10),
                                  strtol(argv[i + 3], NULL, 10));
                        i += 4;
                } else {
                        rc = usage();
                }
        }
        dm_bus_free(bus);
        return rc;
}
