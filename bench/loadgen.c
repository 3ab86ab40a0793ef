/*
 * loadgen: a loopback connection storm for measuring what a tracer costs.
 *
 * One listener on 127.0.0.1, --servers threads accepting on it and --clients
 * threads connecting to it. Every connection: connect -> 4-byte request ->
 * 4-byte response -> close, as fast as possible. The run ends by itself after
 * --count connections or --seconds, whichever comes first, and prints one
 * JSON line: {"connections":N,"seconds":S,"conn_per_s":R,"errors":E,"port":P}.
 *
 * Traffic never leaves 127.0.0.0/8. Client-first close leaves a TIME_WAIT
 * socket on every client 4-tuple, so clients bind to 127.0.0.2..127.0.0.250
 * in turn (IP_BIND_ADDRESS_NO_PORT: the port is chosen at connect() against
 * the full 4-tuple), which keeps ephemeral ports from running out.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_THREADS 256
/* A stuck peer must not hang the run: every blocking call gives up after this. */
#define IO_TIMEOUT_MS 2000
#define ACCEPT_TIMEOUT_MS 100

enum close_mode { CLOSE_CLIENT, CLOSE_SERVER, CLOSE_RST };

static struct {
	int clients, servers;
	uint64_t count;
	double seconds;
	enum close_mode close;
	int spread;    /* source addresses 127.0.0.2 .. 127.0.0.(1+spread); 0 = 127.0.0.1 only */
	int pause_us;  /* sleep between connections of one client (slow, countable runs) */
	uint16_t port; /* 0 = any free port */
} cfg = { 4, 4, 40000, 30.0, CLOSE_CLIENT, 249, 0, 0 };

static int listen_fd = -1;
static struct sockaddr_in server_addr;
static uint64_t deadline_ns;
static atomic_uint_fast64_t claimed, done, errors;
static atomic_bool clients_done;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void set_timeout(int fd, int opt, int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

/* Reads exactly n bytes; 0 on success, -1 on error or early EOF. */
static int read_full(int fd, char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const char *buf, size_t n)
{
	size_t put = 0;

	while (put < n) {
		ssize_t w = write(fd, buf + put, n - put);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		put += (size_t)w;
	}
	return 0;
}

/* Waits for the peer's FIN (read returns 0); a reset also counts as the end. */
static int wait_eof(int fd)
{
	char c;

	for (;;) {
		ssize_t r = read(fd, &c, 1);

		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return 0;
		if (r < 0 && errno == EINTR)
			continue;
		return -1; /* data where none was expected, or a timeout */
	}
}

static void abortive_close(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static bool claim_one(void)
{
	if (atomic_fetch_add(&claimed, 1) >= cfg.count)
		return false;
	return now_ns() < deadline_ns;
}

static int one_connection(int id, uint64_t n)
{
	struct sockaddr_in src = { .sin_family = AF_INET };
	char buf[4] = { 'p', 'i', 'n', 'g' };
	int one = 1, fd, err = 0;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	set_timeout(fd, SO_RCVTIMEO, IO_TIMEOUT_MS);
	set_timeout(fd, SO_SNDTIMEO, IO_TIMEOUT_MS);
	if (cfg.spread) {
		uint32_t host = 2 + (uint32_t)((n * (uint64_t)cfg.clients + (uint64_t)id) % (uint64_t)cfg.spread);

		src.sin_addr.s_addr = htonl((127u << 24) | host);
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)))
			err = -1;
	}
	if (!err && connect(fd, (struct sockaddr *)&server_addr, sizeof(server_addr)))
		err = -1;
	if (!err && (write_full(fd, buf, sizeof(buf)) || read_full(fd, buf, sizeof(buf))))
		err = -1;
	if (err) {
		close(fd);
		return -1;
	}
	switch (cfg.close) {
	case CLOSE_CLIENT:
		close(fd);
		break;
	case CLOSE_SERVER:
		err = wait_eof(fd);
		close(fd);
		break;
	case CLOSE_RST:
		abortive_close(fd);
		break;
	}
	return err;
}

static void *client_main(void *arg)
{
	int id = (int)(intptr_t)arg;

	for (uint64_t n = 0; claim_one(); n++) {
		if (one_connection(id, n))
			atomic_fetch_add(&errors, 1);
		else
			atomic_fetch_add(&done, 1);
		if (cfg.pause_us)
			usleep((useconds_t)cfg.pause_us);
	}
	return NULL;
}

static int serve(int fd)
{
	char buf[4];
	int err;

	set_timeout(fd, SO_RCVTIMEO, IO_TIMEOUT_MS);
	set_timeout(fd, SO_SNDTIMEO, IO_TIMEOUT_MS);
	if (read_full(fd, buf, sizeof(buf)) || write_full(fd, "pong", 4)) {
		close(fd);
		return -1;
	}
	/* Client-first and RST: wait for the client's FIN (or RST), then close. */
	err = cfg.close == CLOSE_SERVER ? 0 : wait_eof(fd);
	close(fd);
	return err;
}

static void *server_main(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			/* Timeouts let us see the end; anything else after it is the shutdown. */
			if (atomic_load(&clients_done))
				break;
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
			    errno == ECONNABORTED)
				continue;
			break;
		}
		if (serve(fd))
			atomic_fetch_add(&errors, 1);
	}
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: loadgen [--clients N] [--servers N] [--count N] [--seconds S]\n"
		   "               [--close client|server|rst] [--spread N] [--pause-us US] [--port P]\n"
		   "Loopback connection storm; prints one JSON line when done.\n");
}

static int parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		char *end = NULL;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		}
		if (!v)
			goto bad;
		i++;
		errno = 0;
		if (!strcmp(a, "--close")) {
			if (!strcmp(v, "client"))
				cfg.close = CLOSE_CLIENT;
			else if (!strcmp(v, "server"))
				cfg.close = CLOSE_SERVER;
			else if (!strcmp(v, "rst"))
				cfg.close = CLOSE_RST;
			else
				goto bad;
			continue;
		}
		if (!strcmp(a, "--seconds")) {
			cfg.seconds = strtod(v, &end);
			if (*end || errno || !(cfg.seconds > 0) || cfg.seconds > 86400)
				goto bad;
			continue;
		}
		unsigned long long n = strtoull(v, &end, 10);

		if (*end || errno || *v == '-')
			goto bad;
		if (!strcmp(a, "--clients") && n >= 1 && n <= MAX_THREADS)
			cfg.clients = (int)n;
		else if (!strcmp(a, "--servers") && n >= 1 && n <= MAX_THREADS)
			cfg.servers = (int)n;
		else if (!strcmp(a, "--count") && n >= 1)
			cfg.count = n;
		else if (!strcmp(a, "--spread") && n <= 249)
			cfg.spread = (int)n;
		else if (!strcmp(a, "--pause-us") && n <= 10000000)
			cfg.pause_us = (int)n;
		else if (!strcmp(a, "--port") && n <= 65535)
			cfg.port = (uint16_t)n;
		else
			goto bad;
	}
	return 0;
bad:
	usage(stderr);
	return -1;
}

static int open_listener(void)
{
	socklen_t len = sizeof(server_addr);
	int one = 1;

	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listen_fd < 0)
		return -1;
	setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	server_addr.sin_family = AF_INET;
	server_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	server_addr.sin_port = htons(cfg.port);
	if (bind(listen_fd, (struct sockaddr *)&server_addr, sizeof(server_addr)) ||
	    listen(listen_fd, 4096) ||
	    getsockname(listen_fd, (struct sockaddr *)&server_addr, &len))
		return -1;
	/* accept() honours SO_RCVTIMEO: servers wake up to see that the clients are done. */
	set_timeout(listen_fd, SO_RCVTIMEO, ACCEPT_TIMEOUT_MS);
	return 0;
}

int main(int argc, char **argv)
{
	pthread_t clients[MAX_THREADS], servers[MAX_THREADS];
	uint64_t start, end;
	double secs;

	if (parse_args(argc, argv))
		return 2;
	signal(SIGPIPE, SIG_IGN);
	if (open_listener()) {
		perror("loadgen: listener");
		return 1;
	}
	for (int i = 0; i < cfg.servers; i++)
		if (pthread_create(&servers[i], NULL, server_main, NULL)) {
			fprintf(stderr, "loadgen: cannot start server threads\n");
			return 1;
		}
	start = now_ns();
	deadline_ns = start + (uint64_t)(cfg.seconds * 1e9);
	for (int i = 0; i < cfg.clients; i++)
		if (pthread_create(&clients[i], NULL, client_main, (void *)(intptr_t)i)) {
			fprintf(stderr, "loadgen: cannot start client threads\n");
			return 1;
		}
	for (int i = 0; i < cfg.clients; i++)
		pthread_join(clients[i], NULL);
	end = now_ns();
	atomic_store(&clients_done, true);
	shutdown(listen_fd, SHUT_RDWR); /* wakes accept() at once */
	for (int i = 0; i < cfg.servers; i++)
		pthread_join(servers[i], NULL);
	close(listen_fd);
	secs = (double)(end - start) / 1e9;
	printf("{\"connections\":%llu,\"seconds\":%.3f,\"conn_per_s\":%.0f,\"errors\":%llu,\"port\":%u}\n",
	       (unsigned long long)atomic_load(&done), secs,
	       secs > 0 ? (double)atomic_load(&done) / secs : 0.0,
	       (unsigned long long)atomic_load(&errors), ntohs(server_addr.sin_port));
	return 0;
}
