/*
 * The Prometheus side: address parsing, the text exposition (checked by
 * promtool, which the suite installs) and real scrapes over loopback, also
 * with the file descriptors running out.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "check.h"
#include "metrics.h"
#include "droplog.h"
#include "names.h"

static char host[64], err[256];
static uint16_t port;

static int parse(const char *arg)
{
	host[0] = err[0] = '\0';
	port = 0;
	return metrics_parse_addr(arg, host, sizeof(host), &port, err, sizeof(err));
}

static void port_alone_binds_loopback(void)
{
	CHECK_INT(parse("9102"), 0);
	CHECK_STR(host, "127.0.0.1");
	CHECK_INT(port, 9102);
}

static void explicit_addresses_are_taken_as_written(void)
{
	CHECK_INT(parse("0.0.0.0:9102"), 0);
	CHECK_STR(host, "0.0.0.0");
	CHECK_INT(parse("[::1]:65535"), 0);
	CHECK_STR(host, "::1");
	CHECK_INT(port, 65535);
	CHECK_INT(parse("[::]:1"), 0);
	CHECK_STR(host, "::");
	CHECK_INT(parse("10.1.2.3:80"), 0);
	CHECK_STR(host, "10.1.2.3");
}

static void bad_addresses_say_why(void)
{
	const char *bad[] = { "",         "0",        "65536",      "99999999", "-1",
			      "9102x",    ":9102",    "1.2.3.4:",   "[::1]9102", "[::1]",
			      "::1:9102", "localhost:9102", "1.2.3:80", "[1.2.3.4]:80x" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_INT(parse(bad[i]), -1);
		CHECK(strlen(err) > 10);
	}
	parse("70000");
	CHECK(strstr(err, "1 to 65535") != NULL);
	parse("::1:9102");
	CHECK(strstr(err, "[IPV6]:PORT") != NULL);
}

static struct conn finished(uint8_t role, uint32_t hs_us, uint16_t sport)
{
	struct conn c = {
		.role = role, .nstates = 4, .sport = sport, .dport = 40000,
		.flags = CONN_HANDSHAKE_SEEN | CONN_CLOSED, .srtt_us = hs_us,
		.close_flags = SF_CLOSE_TIME_WAIT,
		.states = { SF_TCP_SYN_SENT, SF_TCP_ESTABLISHED, SF_TCP_FIN_WAIT1, SF_TCP_FIN_WAIT2 },
		.state_us = { hs_us, 100, 10, 10 },
	};

	if (role == ROLE_SERVER) { /* the passive side's path */
		c.states[0] = SF_TCP_SYN_RECV;
		c.states[2] = SF_TCP_CLOSE_WAIT;
		c.states[3] = SF_TCP_LAST_ACK;
		c.close_flags = 0;
	}
	return c;
}

/* A snapshot with something in every series. */
/* What the metrics sink does with a finished connection. */
static void add_conn(struct metrics_snapshot *s, const struct conn *c)
{
	struct lifecycle l;

	lifecycle_of(&l, c, NULL, false);
	metrics_snapshot_add_conn(s, &l);
}

static void synthetic(struct metrics_snapshot *s)
{
	struct conn c;

	memset(s, 0, sizeof(*s));
	c = finished(ROLE_CLIENT, 43, 0);
	add_conn(s, &c);
	c = finished(ROLE_CLIENT, 1500000, 0); /* one lost SYN */
	add_conn(s, &c);
	c = finished(ROLE_SERVER, 7, 8080);
	add_conn(s, &c);
	c = finished(ROLE_SERVER, 100, 8080); /* exactly on a bound: le is inclusive */
	add_conn(s, &c);
	c = finished(ROLE_SERVER, 20000000, 443); /* beyond every bound: +Inf only */
	add_conn(s, &c);
	s->state_count[SF_TCP_ESTABLISHED] = 12;
	s->state_count[SF_TCP_CLOSE_WAIT] = 1;
	s->time_wait = 3;
	s->events = 1234;
	s->lost = 5;
	s->evicted = 2;
}

static char text[METRICS_TEXT_MAX];

static void snapshot_counts_each_conn_once(void)
{
	struct metrics_snapshot s;

	synthetic(&s);
	CHECK_INT(s.handshake[METRICS_CLIENT].count, 2);
	CHECK_INT(s.handshake[METRICS_CLIENT].sum_us, 1500043);
	CHECK_INT(s.handshake[METRICS_SERVER].count, 3);
	CHECK_INT(s.outcome[OUTCOME_CLOSED], 5);
	CHECK_INT(s.closer[CLOSER_LOCAL], 2);
	CHECK_INT(s.closer[CLOSER_REMOTE], 3);
	CHECK_INT(s.nports, 2);
	CHECK_INT(s.ports[0].port, 8080);
	CHECK_INT(s.ports[0].count, 2);
}

static void exposition_has_every_series(void)
{
	struct metrics_snapshot s;
	size_t n;

	synthetic(&s);
	n = metrics_format(&s, text, sizeof(text));
	CHECK_INT(n, strlen(text));
	const char *want[] = {
		"# TYPE synfin_handshake_duration_seconds histogram\n",
		"synfin_handshake_duration_seconds_bucket{role=\"client\",le=\"0.00005\"} 1\n",
		"synfin_handshake_duration_seconds_bucket{role=\"client\",le=\"1\"} 1\n",
		"synfin_handshake_duration_seconds_bucket{role=\"client\",le=\"2.5\"} 2\n",
		"synfin_handshake_duration_seconds_bucket{role=\"client\",le=\"+Inf\"} 2\n",
		"synfin_handshake_duration_seconds_sum{role=\"client\"} 1.500043\n",
		"synfin_handshake_duration_seconds_count{role=\"client\"} 2\n",
		"synfin_handshake_duration_seconds_bucket{role=\"server\",le=\"0.0001\"} 2\n",
		"synfin_handshake_duration_seconds_bucket{role=\"server\",le=\"10\"} 2\n",
		"synfin_handshake_duration_seconds_bucket{role=\"server\",le=\"+Inf\"} 3\n",
		"synfin_handshake_duration_seconds_sum{role=\"server\"} 20.000107\n",
		"synfin_connections_total{outcome=\"closed\"} 5\n",
		"synfin_connections_total{outcome=\"refused\"} 0\n",
		"synfin_connections_closed_total{closer=\"local\"} 2\n",
		"synfin_connections_closed_total{closer=\"remote\"} 3\n",
		"# TYPE synfin_connections gauge\n",
		"synfin_connections{state=\"ESTABLISHED\"} 12\n",
		"synfin_connections{state=\"CLOSE_WAIT\"} 1\n",
		"synfin_connections{state=\"NEW_SYN_RECV\"} 0\n",
		"synfin_time_wait_connections 3\n",
		"# TYPE synfin_events_total counter\nsynfin_events_total 1234\n",
		"synfin_lost_events_total 5\n",
		"synfin_evicted_connections_total 2\n",
		"synfin_listener_connections_total{port=\"8080\"} 2\n",
		"synfin_listener_connections_total{port=\"443\"} 1\n",
		"synfin_listener_connections_total{port=\"other\"} 0\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(text, want[i])) {
			printf("    missing: %s", want[i]);
			check_failures_in_test++;
		}
	CHECK(text[n - 1] == '\n');
}

static void listener_ports_are_bounded_and_sticky(void)
{
	struct metrics_snapshot s = { 0 };

	for (int round = 0; round < 3; round++)
		for (uint16_t p = 1; p <= METRICS_PORTS + 30; p++) {
			struct conn c = finished(ROLE_SERVER, 10, p);

			add_conn(&s, &c);
		}
	CHECK_INT(s.nports, METRICS_PORTS);
	CHECK_INT(s.ports[0].port, 1);
	CHECK_INT(s.ports[METRICS_PORTS - 1].port, METRICS_PORTS);
	CHECK_INT(s.ports[0].count, 3);
	CHECK_INT(s.other_port_conns, 3 * 30);
	/* Clients never make listener series: their local port is ephemeral. */
	struct conn c = finished(ROLE_CLIENT, 10, 55555);
	add_conn(&s, &c);
	CHECK_INT(s.other_port_conns, 3 * 30);
}

/* Refusals (RSTs for no socket) by local port: a series each, as the listeners'. */
static void refusals_are_counted_by_port(void)
{
	static char text[METRICS_TEXT_MAX];
	struct metrics_snapshot s = { 0 };

	metrics_snapshot_add_rst(&s, 8080);
	metrics_snapshot_add_rst(&s, 8080);
	metrics_snapshot_add_rst(&s, 9090);
	CHECK(metrics_format(&s, text, sizeof(text)) > 0);
	CHECK(strstr(text, "\nsynfin_no_socket_resets_total{port=\"8080\"} 2\n") != NULL);
	CHECK(strstr(text, "\nsynfin_no_socket_resets_total{port=\"9090\"} 1\n") != NULL);
	CHECK(strstr(text, "\nsynfin_no_socket_resets_total{port=\"other\"} 0\n") != NULL);
}

/* Drops by segment and the kernel's reason: a series each, bounded. */
static void drops_are_counted_by_segment_and_reason(void)
{
	static char text[METRICS_TEXT_MAX];
	struct metrics_snapshot s = { 0 };

	drop_reason_set(7, "netfilter_drop");
	metrics_snapshot_add_drop(&s, 7, SEG_SYN);
	metrics_snapshot_add_drop(&s, 7, SEG_SYN);
	metrics_snapshot_add_drop(&s, 7, SEG_FIN);
	for (uint16_t r = 100; r < 100 + METRICS_DROP_KINDS; r++)
		metrics_snapshot_add_drop(&s, r, SEG_RST);
	CHECK(metrics_format(&s, text, sizeof(text)) > 0);
	CHECK(strstr(text, "\nsynfin_drops_total{segment=\"SYN\",reason=\"netfilter_drop\"} 2\n"));
	CHECK(strstr(text, "\nsynfin_drops_total{segment=\"FIN\",reason=\"netfilter_drop\"} 1\n"));
	CHECK(strstr(text, "\nsynfin_drops_total{segment=\"RST\",reason=\"unknown\"} 1\n"));
	CHECK(strstr(text, "\nsynfin_drops_total{segment=\"other\",reason=\"other\"} 2\n"));
}

static void short_buffer_gives_nothing_rather_than_half(void)
{
	struct metrics_snapshot s;

	synthetic(&s);
	CHECK_INT(metrics_format(&s, text, 100), 0);
	CHECK_STR(text, "");
	CHECK_INT(metrics_format(&s, text, 0), 0);
}

/* The worst case must fit METRICS_TEXT_MAX: every counter at its maximum, every port in use. */
static void largest_snapshot_fits(void)
{
	static struct metrics_snapshot s;

	memset(&s, 0xff, sizeof(s));
	s.nports = s.nrst_ports = METRICS_PORTS;
	s.ndrops = METRICS_DROP_KINDS;
	s.nlisteners = METRICS_PORTS;
	for (int i = 0; i < METRICS_DROP_KINDS; i++)
		s.drops[i].segment = SEG_SYNACK; /* the longest name; the reason: "unknown" */
	CHECK(metrics_format(&s, text, sizeof(text)) > 0);
}

static void promtool_accepts_the_exposition(void)
{
	struct metrics_snapshot s;
	char path[] = "/tmp/synfin-metrics-XXXXXX", cmd[128];
	FILE *f;
	int fd;

	/* The suite installs it (tools/install-deps.sh test): missing is a failure,
	 * never a silent pass. */
	if (system("command -v promtool >/dev/null 2>&1")) {
		printf("    promtool not installed: install the Debian package prometheus\n");
		check_failures_in_test++;
		return;
	}
	synthetic(&s);
	metrics_format(&s, text, sizeof(text));
	fd = mkstemp(path);
	CHECK(fd >= 0);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
	CHECK_INT(system(cmd), 0);
	unlink(path);
}

/* A free loopback port: bind to 0, read it back, let it go. */
static uint16_t free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &len);
	close(fd);
	return ntohs(a.sin_port);
}

static const char *http_get(uint16_t p, const char *path)
{
	static char resp[METRICS_TEXT_MAX + 1024];
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(p),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	/* A server that stopped answering fails the test instead of hanging it. */
	const struct timeval timeout = { .tv_sec = 2 };
	char req[128];
	size_t got = 0;
	ssize_t n;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	resp[0] = '\0';
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return resp;
	}
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
	if (write(fd, req, strlen(req)) < 0)
		return resp;
	while (got < sizeof(resp) - 1 && (n = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0)
		got += (size_t)n;
	resp[got] = '\0';
	close(fd);
	return resp;
}

static void server_serves_the_last_published_snapshot(void)
{
	struct metrics_snapshot s;
	struct metrics_server *m, *again;
	uint16_t p = free_port();
	const char *r;

	m = metrics_start("127.0.0.1", p, err, sizeof(err));
	CHECK(m != NULL);
	if (!m) {
		printf("    %s\n", err);
		return;
	}
	r = http_get(p, "/metrics");
	CHECK(strstr(r, "HTTP/1.0 200") != NULL || strstr(r, "HTTP/1.1 200") != NULL);
	CHECK(strstr(r, "text/plain; version=0.0.4") != NULL);
	CHECK(strstr(r, "\nsynfin_events_total 0\n") != NULL);
	synthetic(&s);
	metrics_publish(m, &s);
	CHECK(strstr(http_get(p, "/metrics"), "\nsynfin_events_total 1234\n") != NULL);
	CHECK(strstr(http_get(p, "/"), " 404 ") != NULL);
	again = metrics_start("127.0.0.1", p, err, sizeof(err));
	CHECK(again == NULL);
	CHECK(strstr(err, "Address already in use") != NULL);
	metrics_stop(m);
	/* Stopped: the port is free again. */
	m = metrics_start("127.0.0.1", p, err, sizeof(err));
	CHECK(m != NULL);
	metrics_stop(m);
}

static void set_fd_limit(rlim_t soft)
{
	struct rlimit rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = soft;
	CHECK_INT(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

static rlim_t fd_limit(void)
{
	struct rlimit rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	return rl.rlim_cur;
}

static void too_few_fds_is_refused_with_the_reason(void)
{
	rlim_t old = fd_limit();
	struct metrics_server *m;

	set_fd_limit(16);
	err[0] = '\0';
	m = metrics_start("127.0.0.1", free_port(), err, sizeof(err));
	set_fd_limit(old);
	CHECK(m == NULL);
	metrics_stop(m);
	CHECK(strstr(err, "--metrics: only ") == err);
	CHECK(strstr(err, "file descriptors left under the limit of 16 (ulimit -n)") != NULL);
	CHECK(strstr(err, "raise it") != NULL);
}

static double seconds(clockid_t clock)
{
	struct timespec t;

	clock_gettime(clock, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Takes every fd left under the limit; returns how many (closed by release_fds()). */
static int exhaust_fds(int *fds, int max)
{
	int n = 0;

	while (n < max && (fds[n] = open("/dev/null", O_RDONLY)) >= 0)
		n++;
	return n;
}

static void release_fds(int *fds, int n)
{
	while (n > 0)
		close(fds[--n]);
}

#define CLIENTS 3

/* Connects the clients and reports whether each was told "no" (EOF or a
 * reset) within a second, rather than left waiting for a scrape that never comes. */
static int clients_refused(const int *clients, uint16_t p)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(p),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int refused = 0;
	char c;

	for (int i = 0; i < CLIENTS; i++) {
		struct pollfd pfd = { .fd = clients[i], .events = POLLIN };

		if (connect(clients[i], (struct sockaddr *)&a, sizeof(a)))
			continue;
		refused += poll(&pfd, 1, 1000) == 1 && read(clients[i], &c, 1) <= 0;
	}
	return refused;
}

/* Some other part of synfin took every fd after metrics_start(): the server's
 * accept() fails with EMFILE. It must neither spin (MHD alone retries at
 * once, forever, at 100% of a core) nor stay dead once fds are free again. */
static void out_of_fds_at_accept_costs_no_cpu(void)
{
	static int fds[256];
	int clients[CLIENTS], n;
	rlim_t old = fd_limit();
	uint16_t p = free_port();
	struct metrics_server *m;
	double cpu, wall;

	set_fd_limit(128);
	m = metrics_start("127.0.0.1", p, err, sizeof(err));
	CHECK(m != NULL);
	if (!m) {
		printf("    %s\n", err);
		set_fd_limit(old);
		return;
	}
	for (int i = 0; i < CLIENTS; i++)
		clients[i] = socket(AF_INET, SOCK_STREAM, 0);
	n = exhaust_fds(fds, 256);
	cpu = seconds(CLOCK_PROCESS_CPUTIME_ID);
	wall = seconds(CLOCK_MONOTONIC);
	CHECK_INT(clients_refused(clients, p), CLIENTS);
	sleep(1);
	cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu;
	wall = seconds(CLOCK_MONOTONIC) - wall;
	if (cpu > 0.1) {
		printf("    %.2f s of CPU in %.2f s with the fds exhausted: a busy loop\n", cpu, wall);
		check_failures_in_test++;
	}
	release_fds(fds, n);
	for (int i = 0; i < CLIENTS; i++)
		close(clients[i]);
	CHECK(strstr(http_get(p, "/metrics"), "\nsynfin_events_total 0\n") != NULL);
	metrics_stop(m);
	set_fd_limit(old);
}

#define IDLE 64

/* More idle connections than the limit (about 20 under 64 fds) at once:
 * those beyond it are closed, and once the idle ones go, scrapes answer
 * again (libmicrohttpd 0.9.75 alone deadlocks its thread here). */
static void connections_beyond_the_limit_leave_the_server_alive(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int idle[IDLE];
	rlim_t old = fd_limit();
	struct metrics_server *m;

	a.sin_port = htons(free_port());
	set_fd_limit(64);
	m = metrics_start("127.0.0.1", ntohs(a.sin_port), err, sizeof(err));
	set_fd_limit(old); /* the server keeps the limit it computed; the clients need fds */
	CHECK(m != NULL);
	if (!m) {
		printf("    %s\n", err);
		return;
	}
	for (int i = 0; i < IDLE; i++) {
		idle[i] = socket(AF_INET, SOCK_STREAM, 0);
		connect(idle[i], (struct sockaddr *)&a, sizeof(a));
	}
	usleep(200000); /* the server takes them all in */
	for (int i = 0; i < IDLE; i++)
		close(idle[i]);
	usleep(200000);
	if (!strstr(http_get(ntohs(a.sin_port), "/metrics"), " 200 ")) {
		/* Not stopped: metrics_stop() would wait forever for a dead thread. */
		printf("    no answer once the idle connections are gone\n");
		check_failures_in_test++;
		return;
	}
	metrics_stop(m);
}

int main(void)
{
	RUN(port_alone_binds_loopback);
	RUN(explicit_addresses_are_taken_as_written);
	RUN(bad_addresses_say_why);
	RUN(snapshot_counts_each_conn_once);
	RUN(exposition_has_every_series);
	RUN(listener_ports_are_bounded_and_sticky);
	RUN(refusals_are_counted_by_port);
	RUN(drops_are_counted_by_segment_and_reason);
	RUN(short_buffer_gives_nothing_rather_than_half);
	RUN(largest_snapshot_fits);
	RUN(promtool_accepts_the_exposition);
	RUN(server_serves_the_last_published_snapshot);
	RUN(too_few_fds_is_refused_with_the_reason);
	RUN(out_of_fds_at_accept_costs_no_cpu);
	RUN(connections_beyond_the_limit_leave_the_server_alive);
	return check_summary("unit/metrics");
}
