/* The Prometheus endpoint: a libmicrohttpd thread serving the last snapshot,
 * fed by an accept thread of our own. */
#include "metrics.h"
#include "droplog.h"
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* File descriptors synfin may still open after metrics_start(): up to 32
 * sock_diag netlink sockets while following TIME_WAIT (timewait.c's MAX_NETNS),
 * plus 8 spare for libbpf, /proc reads and output. MHD's connections must never
 * eat these. */
#define METRICS_FD_RESERVE 40
/* The server's own: the listening socket, the spare fd (see shed_one()),
 * MHD's epoll fd and its inter-thread eventfd or pipe (2 fds at worst). */
#define METRICS_OWN_FDS 5
/* Fewer connections than this is no endpoint: refuse to start instead. */
#define METRICS_MIN_CONNS 4
/* Enough for any set of scrapers and then some; each costs MHD a memory pool. */
#define METRICS_MAX_CONNS 1024u
/* Connections the kernel queues before our accept thread takes them: a burst
 * of idle or hostile connections must not push out a real scrape's SYN. */
#define METRICS_BACKLOG 1024
/* A scrape is one short request sent right after connect(): a connection
 * silent this long is idle (a keep-alive waiting for the next scrape, which
 * is 15 s or more away) or hostile, and frees its slot. */
#define METRICS_IDLE_TIMEOUT_S 3u
/* How long the accept thread waits when out of fds with nothing to shed. */
#define METRICS_EMFILE_PAUSE_NS 100000000L

/* ---- the HTTP side ------------------------------------------------------ */

struct metrics_server {
	struct MHD_Daemon *daemon;
	int listen_fd;
	int spare_fd;       /* /dev/null, given up to shed a connection when out of fds */
	atomic_bool stopping; /* set by metrics_stop() before it shuts listen_fd down */
	unsigned limit;       /* connections at once, from connection_limit() */
	atomic_uint held;     /* handed to MHD and not yet closed by it (see admit()) */
	pthread_t acceptor;
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
static int listen_on(const char *host, uint16_t port, char *err, size_t errlen)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(port) };
	const int one = 1;
	int fd, saved;
	bool v6;

	v6 = inet_pton(AF_INET, host, &a4.sin_addr) != 1;
	if (v6 && inet_pton(AF_INET6, host, &a6.sin6_addr) != 1)
		return metrics_fail(err, errlen, "invalid metrics address '%s'", host);
	/* Non-blocking: see accept_loop(). */
	fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return metrics_fail(err, errlen, "cannot create the metrics socket: %s",
				  strerror(errno));
	/* A restarted synfin must not wait for its previous scrapes' TIME_WAIT. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, v6 ? (struct sockaddr *)&a6 : (struct sockaddr *)&a4,
		 v6 ? sizeof(a6) : sizeof(a4)) || listen(fd, METRICS_BACKLOG)) {
		saved = errno;
		close(fd);
		return metrics_fail(err, errlen, "cannot serve metrics on %s%s%s:%u: %s", v6 ? "[" : "",
				  host, v6 ? "]" : "", port, strerror(saved));
	}
	return fd;
}

/* ---- how many connections the fds allow --------------------------------- */

/* Open fds, from /proc/self/fd (less the directory's own); without /proc, by
 * asking each fd below the limit. */
static long fds_open(rlim_t limit)
{
	DIR *dir = opendir("/proc/self/fd");
	long n = 0;

	if (dir) {
		while (readdir(dir))
			n++;
		closedir(dir);
		return n - 3; /* ".", ".." and the directory's fd */
	}
	for (rlim_t fd = 0; fd < limit && fd < 65536; fd++)
		n += fcntl((int)fd, F_GETFD) != -1;
	return n;
}

/* MHD's connection limit from the fds free now under the soft RLIMIT_NOFILE,
 * less what synfin opens later: MHD must reach its own limit, which refuses
 * politely, long before accept() fails with EMFILE. */
static int connection_limit(unsigned *limit, char *err, size_t errlen)
{
	struct rlimit rl;
	long open_now, free_now, left;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY) {
		*limit = METRICS_MAX_CONNS;
		return 0;
	}
	open_now = fds_open(rl.rlim_cur);
	free_now = (long)rl.rlim_cur - open_now;
	left = free_now - METRICS_FD_RESERVE - METRICS_OWN_FDS;
	if (left < METRICS_MIN_CONNS)
		return metrics_fail(err, errlen,
				    "--metrics: only %ld file descriptors left under the limit of %llu "
				    "(ulimit -n), %d needed: raise it",
				    free_now < 0 ? 0 : free_now, (unsigned long long)rl.rlim_cur,
				    METRICS_FD_RESERVE + METRICS_OWN_FDS + METRICS_MIN_CONNS);
	*limit = left > (long)METRICS_MAX_CONNS ? METRICS_MAX_CONNS : (unsigned)left;
	return 0;
}

/* ---- the accept thread -------------------------------------------------- */

static bool out_of_fds(int e)
{
	return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

/* accept() failed for want of an fd. MHD would retry at once, forever
 * (100% CPU when it has no connection to wait for); we give up the spare fd,
 * take the oldest pending connection with it and close it, so that client
 * hears "no" now instead of timing out, and the backlog drains. With no spare
 * (another thread took the fd meanwhile) we pause instead of spinning. */
static void shed_one(struct metrics_server *m)
{
	const struct timespec pause = { 0, METRICS_EMFILE_PAUSE_NS };
	int fd;

	if (m->spare_fd < 0) {
		nanosleep(&pause, NULL);
		m->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		return;
	}
	close(m->spare_fd);
	fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		close(fd);
	m->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* MHD's word that it has closed a connection we handed it. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode what)
{
	struct metrics_server *m = cls;

	(void)conn;
	(void)socket_context;
	if (what == MHD_CONNECTION_NOTIFY_CLOSED)
		atomic_fetch_sub(&m->held, 1);
}

/* We enforce the connection limit here, not MHD: libmicrohttpd 0.9.75 counts
 * an added connection only when its thread gets to it, and one that finds
 * the limit reached there is refused with a mutex left locked: the thread
 * deadlocks and /metrics never answers again (100 idle connections against
 * a limit of 56 did it). Counting from the moment of handing over, and
 * until MHD says closed, keeps MHD's own count below the limit we gave it. */
static void admit(struct metrics_server *m, int fd, const struct sockaddr_storage *sa,
		  socklen_t len)
{
	if (atomic_load(&m->held) >= m->limit) {
		close(fd); /* the client sees the connection closed: a plain "busy" */
		return;
	}
	atomic_fetch_add(&m->held, 1);
	/* MHD_NO: refused before it was queued, no close notification follows. */
	if (MHD_add_connection(m->daemon, fd, (const struct sockaddr *)sa, len) != MHD_YES)
		atomic_fetch_sub(&m->held, 1);
}

/* Hands each connection to MHD through admit(). It waits in poll(), not in
 * a blocking accept(): Linux reserves the new fd before accept() blocks, so
 * shed_one() would sit on the spare's number and take the next good
 * connection only to close it. Ends when metrics_stop() shuts listen_fd
 * down (poll() returns, accept() fails with EINVAL). */
static void *accept_loop(void *arg)
{
	struct metrics_server *m = arg;
	const struct timespec pause = { 0, METRICS_EMFILE_PAUSE_NS };
	struct pollfd pfd = { .fd = m->listen_fd, .events = POLLIN };

	while (!atomic_load(&m->stopping)) {
		struct sockaddr_storage sa;
		socklen_t len = sizeof(sa);
		int fd;

		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			nanosleep(&pause, NULL);
		fd = accept4(m->listen_fd, (struct sockaddr *)&sa, &len,
			     SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0)
			admit(m, fd, &sa, len);
		else if (out_of_fds(errno))
			shed_one(m);
		else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED &&
			 !atomic_load(&m->stopping))
			nanosleep(&pause, NULL); /* unexpected: never a busy loop either */
	}
	return NULL;
}

/* ---- start and stop ----------------------------------------------------- */

/* The threads inherit this thread's signal mask: with every signal blocked
 * there, SIGINT and SIGTERM always reach the tracing loop. */
static int start_threads(struct metrics_server *m)
{
	sigset_t all, old;
	int err = 0;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	/* epoll: the thread's cost does not grow with the connections held. No
	 * listening socket for MHD: accept_loop() does the accepting. */
	m->daemon = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_INTERNAL_POLLING_THREAD |
					     MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC,
				     0, NULL, NULL, on_request, m, MHD_OPTION_CONNECTION_LIMIT, m->limit,
				     MHD_OPTION_CONNECTION_TIMEOUT, METRICS_IDLE_TIMEOUT_S,
				     MHD_OPTION_NOTIFY_CONNECTION, on_connection, m, MHD_OPTION_END);
	if (!m->daemon)
		err = -1;
	else if (pthread_create(&m->acceptor, NULL, accept_loop, m)) {
		MHD_stop_daemon(m->daemon);
		err = -1;
	} else
		pthread_setname_np(m->acceptor, "metrics-accept"); /* for top -H, /proc */
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return err;
}

static void free_server(struct metrics_server *m)
{
	if (m->listen_fd >= 0)
		close(m->listen_fd);
	if (m->spare_fd >= 0)
		close(m->spare_fd);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

struct metrics_server *metrics_start(const char *host, uint16_t port, char *err, size_t errlen)
{
	struct metrics_server *m = calloc(1, sizeof(*m));

	if (!m) {
		metrics_fail(err, errlen, "out of memory for the metrics server");
		return NULL;
	}
	pthread_mutex_init(&m->lock, NULL);
	atomic_init(&m->stopping, false);
	atomic_init(&m->held, 0);
	m->spare_fd = -1;
	m->listen_fd = -1;
	if (connection_limit(&m->limit, err, errlen))
		goto fail;
	m->listen_fd = listen_on(host, port, err, errlen);
	if (m->listen_fd < 0)
		goto fail;
	m->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (start_threads(m)) {
		metrics_fail(err, errlen, "cannot start the metrics server (libmicrohttpd)");
		goto fail;
	}
	return m;
fail:
	free_server(m);
	return NULL;
}

void metrics_stop(struct metrics_server *m)
{
	if (!m)
		return;
	atomic_store(&m->stopping, true);
	shutdown(m->listen_fd, SHUT_RDWR); /* wakes accept_loop()'s poll(); accept() fails */
	pthread_join(m->acceptor, NULL);
	/* Joins the daemon's thread and closes the connections it holds. */
	MHD_stop_daemon(m->daemon);
	free_server(m);
}

/* ---- the metrics sink ---------------------------------------------------- */

static struct metrics_sink *ms_of(struct sink *s)
{
	return (struct metrics_sink *)s;
}

static void ms_state(struct sink *s, const struct synfin_event *e, const struct transition *tr)
{
	(void)e;
	(void)tr;
	ms_of(s)->snap.events++;
}

static void ms_conn(struct sink *s, const struct lifecycle *l)
{
	metrics_snapshot_add_conn(&ms_of(s)->snap, l);
}

static void ms_reset(struct sink *s, const struct synfin_event *e)
{
	metrics_snapshot_add_rst(&ms_of(s)->snap, e->sport);
}

static void ms_drop(struct sink *s, const struct synfin_event *e)
{
	metrics_snapshot_add_drop(&ms_of(s)->snap, (uint16_t)e->drop_reason,
				  (uint8_t)drop_segment_of(e->close_flags));
}

static void ms_tick(struct sink *s, uint64_t now_ns, const struct sink_status *st)
{
	struct metrics_sink *ms = ms_of(s);

	(void)now_ns;
	ms->snap.lost = st->lost;
	ms->snap.evicted = st->evicted;
	ms->snap.time_wait = st->time_wait;
	metrics_snapshot_set_listeners(&ms->snap, st->listeners);
	memcpy(ms->snap.state_count, st->state_count, sizeof(ms->snap.state_count));
	metrics_publish(ms->server, &ms->snap);
}

static const struct sink_ops metrics_ops = {
	.state = ms_state,
	.conn = ms_conn,
	.reset = ms_reset,
	.drop = ms_drop,
	.tick = ms_tick,
	.wants_status = true,
};

void metrics_sink_init(struct metrics_sink *ms, struct metrics_server *server)
{
	memset(ms, 0, sizeof(*ms));
	ms->sink.ops = &metrics_ops;
	ms->server = server;
}
