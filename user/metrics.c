/* The Prometheus endpoint: a libmicrohttpd thread serving the last snapshot. */
#include "metrics.h"
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the HTTP side ------------------------------------------------------ */

struct metrics_server {
	struct MHD_Daemon *daemon;
	pthread_mutex_t lock; /* guards snap: written by the tracer, read by scrapes */
	struct metrics_snapshot snap;
};

void metrics_publish(struct metrics_server *m, const struct metrics_snapshot *snap)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->snap = *snap;
	pthread_mutex_unlock(&m->lock);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, char *body,
			     enum MHD_ResponseMemoryMode mode, const char *content_type)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(strlen(body), body, mode);
	if (!resp) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Copies the snapshot under the lock and formats outside it: a slow client
 * never holds up metrics_publish(). */
static enum MHD_Result serve_metrics(struct metrics_server *m, struct MHD_Connection *conn)
{
	struct metrics_snapshot snap;
	char *body = malloc(METRICS_TEXT_MAX);

	if (!body)
		return MHD_NO;
	pthread_mutex_lock(&m->lock);
	snap = m->snap;
	pthread_mutex_unlock(&m->lock);
	metrics_format(&snap, body, METRICS_TEXT_MAX);
	return reply(conn, MHD_HTTP_OK, body, MHD_RESPMEM_MUST_FREE,
		     "text/plain; version=0.0.4; charset=utf-8");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **req_cls)
{
	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)req_cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, (char *)"only GET\n",
			     MHD_RESPMEM_PERSISTENT, "text/plain");
	if (strcmp(url, "/metrics"))
		return reply(conn, MHD_HTTP_NOT_FOUND, (char *)"synfin serves /metrics\n",
			     MHD_RESPMEM_PERSISTENT, "text/plain");
	return serve_metrics(cls, conn);
}

/* Our own listening socket: bind() says why an address cannot be used, where
 * MHD_start_daemon() would only return NULL. */
static int listen_on(const char *host, uint16_t port, bool *v6, char *err, size_t errlen)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(port) };
	const int one = 1;
	int fd, saved;

	*v6 = inet_pton(AF_INET, host, &a4.sin_addr) != 1;
	if (*v6 && inet_pton(AF_INET6, host, &a6.sin6_addr) != 1)
		return metrics_fail(err, errlen, "invalid metrics address '%s'", host);
	fd = socket(*v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return metrics_fail(err, errlen, "cannot create the metrics socket: %s",
				  strerror(errno));
	/* A restarted synfin must not wait for its previous scrapes' TIME_WAIT. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, *v6 ? (struct sockaddr *)&a6 : (struct sockaddr *)&a4,
		 *v6 ? sizeof(a6) : sizeof(a4)) || listen(fd, 16)) {
		saved = errno;
		close(fd);
		return metrics_fail(err, errlen, "cannot serve metrics on %s%s%s:%u: %s", *v6 ? "[" : "",
				  host, *v6 ? "]" : "", port, strerror(saved));
	}
	return fd;
}

/* The daemon's thread inherits this thread's signal mask: with every signal
 * blocked there, SIGINT and SIGTERM always reach the tracing loop. */
static struct MHD_Daemon *start_daemon(struct metrics_server *m, int fd, bool v6)
{
	sigset_t all, old;
	struct MHD_Daemon *d;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
				     (v6 ? MHD_USE_IPv6 : 0),
			     0, NULL, NULL, on_request, m, MHD_OPTION_LISTEN_SOCKET, fd,
			     MHD_OPTION_CONNECTION_LIMIT, 32u, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
			     MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return d;
}

struct metrics_server *metrics_start(const char *host, uint16_t port, char *err, size_t errlen)
{
	struct metrics_server *m = calloc(1, sizeof(*m));
	bool v6;
	int fd;

	if (!m) {
		metrics_fail(err, errlen, "out of memory for the metrics server");
		return NULL;
	}
	pthread_mutex_init(&m->lock, NULL);
	fd = listen_on(host, port, &v6, err, errlen);
	if (fd >= 0) {
		m->daemon = start_daemon(m, fd, v6);
		if (m->daemon)
			return m;
		close(fd);
		metrics_fail(err, errlen, "cannot start the metrics server (libmicrohttpd)");
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
	return NULL;
}

void metrics_stop(struct metrics_server *m)
{
	if (!m)
		return;
	/* Joins the daemon's thread and closes its sockets, the listening one included. */
	MHD_stop_daemon(m->daemon);
	pthread_mutex_destroy(&m->lock);
	free(m);
}
