/*
 * micro: synfin's user-space path without the kernel. Synthetic
 * struct synfin_event records of many loopback connections (10 transitions
 * each, interleaved the way the kernel emits them) go through tracker_feed()
 * and the records sink (as main.c feeds it) into /dev/null, on one thread.
 *
 * Reports (one JSON line):
 *   - events/s per core for: tracker only, tracker + full NDJSON stream,
 *     tracker + --life NDJSON, tracker + text columns, and the full NDJSON
 *     path plus tw_add() as main.c's on_event() does for TIME_WAIT closes;
 *   - bytes of memory per tracked connection: RSS growth of a tracker
 *     (default --max-conns) filled with open connections, divided by cap.
 * Only the feeding loop is timed; building the synthetic records is not.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "output.h"
#include "timewait.h"
#include "tracker.h"

#define CHUNK_CONNS 512 /* connections per generated batch: 5,120 events */
#define EVENTS_PER_CONN 10
#define WINDOW 8        /* connections in flight at once: their events interleave */
#define DEFAULT_CAP 65536 /* synfin's default --max-conns */
#define TW_CAP 16384      /* main.c's TW_TABLE_CAP */
#define REPEATS 3
#define OWNER_PID 4242

static const char COMM[SYNFIN_COMM_LEN] = "loadgen";
static struct synfin_event chunk[CHUNK_CONNS * EVENTS_PER_CONN];
static uint64_t ts_now = 1000000000ull;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* pid set only where a system call makes the transition (connect, listen, close), as the BPF side does. */
static void fill(struct synfin_event *e, uint64_t sk, uint16_t sport, uint16_t dport,
		 uint8_t oldstate, uint8_t newstate, int syscall)
{
	memset(e, 0, sizeof(*e));
	ts_now += 1500; /* 1.5 us apart */
	e->ts_ns = ts_now;
	e->skaddr = sk;
	e->cgroup_id = 1;
	e->saddr[0] = 127, e->saddr[3] = 1;
	e->daddr[0] = 127, e->daddr[3] = 1;
	e->netns = 4026531840u;
	e->sport = sport;
	e->dport = dport;
	e->type = SF_EV_STATE;
	e->family = 2; /* AF_INET */
	e->oldstate = oldstate;
	e->newstate = newstate;
	if (newstate == SF_TCP_ESTABLISHED) {
		e->local_isn = (uint32_t)sk * 2654435761u;
		e->remote_isn = (uint32_t)sk * 40503u;
		e->srtt_us = 40;
	}
	if (newstate == SF_TCP_CLOSE) {
		e->bytes_acked = 6;
		e->bytes_received = 5;
		e->close_flags = SF_CLOSE_FIN_RCVD | SF_CLOSE_FIN_SENT;
		if (oldstate == SF_TCP_FIN_WAIT2)
			e->close_flags |= SF_CLOSE_TIME_WAIT;
	}
	if (syscall) {
		e->pid = OWNER_PID;
		memcpy(e->comm, COMM, sizeof(COMM));
	}
}

/*
 * Connection n: client socket and server child, with distinct kernel-like
 * addresses. Order as on loopback: connect, both handshakes, client close,
 * server close.
 */
static const struct {
	uint8_t server, oldstate, newstate, syscall;
} STEPS[EVENTS_PER_CONN] = {
	{ 0, SF_TCP_CLOSE, SF_TCP_SYN_SENT, 1 },
	{ 1, SF_TCP_LISTEN, SF_TCP_SYN_RECV, 0 },
	{ 1, SF_TCP_SYN_RECV, SF_TCP_ESTABLISHED, 0 },
	{ 0, SF_TCP_SYN_SENT, SF_TCP_ESTABLISHED, 0 },
	{ 0, SF_TCP_ESTABLISHED, SF_TCP_FIN_WAIT1, 1 },
	{ 1, SF_TCP_ESTABLISHED, SF_TCP_CLOSE_WAIT, 0 },
	{ 0, SF_TCP_FIN_WAIT1, SF_TCP_FIN_WAIT2, 0 },
	{ 1, SF_TCP_CLOSE_WAIT, SF_TCP_LAST_ACK, 1 },
	{ 1, SF_TCP_LAST_ACK, SF_TCP_CLOSE, 0 },
	{ 0, SF_TCP_FIN_WAIT2, SF_TCP_CLOSE, 0 },
};

#define LISTEN_PORT 8080

/* Socket addresses repeat the way slab objects do: a freed socket's address comes back. */
static uint64_t sk_addr(uint64_t conn, int server)
{
	return 0xffff888100000000ull + ((conn % 200003) * 2 + (uint64_t)server) * 0x980;
}

/*
 * Fills chunk[] with the events of connections first..first+CHUNK_CONNS-1,
 * WINDOW of them interleaved step by step. Returns the number of events.
 */
static size_t make_chunk(uint64_t first)
{
	size_t n = 0;

	for (uint64_t w = 0; w < CHUNK_CONNS; w += WINDOW)
		for (int s = 0; s < EVENTS_PER_CONN; s++)
			for (uint64_t k = 0; k < WINDOW; k++) {
				uint64_t conn = first + w + k;
				uint16_t cport = (uint16_t)(32768 + conn % 28000);
				int srv = STEPS[s].server;

				fill(&chunk[n++], sk_addr(conn, srv), srv ? LISTEN_PORT : (s ? cport : 0),
				     srv ? cport : LISTEN_PORT, STEPS[s].oldstate, STEPS[s].newstate,
				     STEPS[s].syscall);
			}
	return n;
}

enum mode { M_TRACKER, M_JSON, M_JSON_LIFE, M_TEXT, M_JSON_TW, M_MAX };
static const char *const MODE_NAMES[M_MAX] = { "tracker_only", "json_full", "json_life",
					       "text_full", "json_full_tw_add" };

struct result {
	uint64_t events, ns;
};

static void ignore_tw_end(void *ctx, const struct tw_entry *e, enum tw_end how, uint64_t now_ns)
{
	(void)ctx, (void)e, (void)how, (void)now_ns;
}

static struct result run_mode(enum mode m, uint64_t conns, int devnull)
{
	static struct output out;
	struct sinks sinks = { 0 };
	struct lifecycle l;
	struct tracker *t = tracker_new(DEFAULT_CAP);
	struct tw_table *tw = m == M_JSON_TW ? tw_new(TW_CAP, TW_VIA_SOCK_DIAG) : NULL;
	struct synfin_event listen_ev;
	struct transition tr;
	struct result r = { 0 };

	if (!t || (m == M_JSON_TW && !tw)) {
		fprintf(stderr, "micro: out of memory\n");
		exit(1);
	}
	output_init(&out, devnull, m != M_TEXT, m == M_JSON_LIFE ? OUTPUT_LIFE : OUTPUT_ALL);
	sinks_add(&sinks, &out.sink);
	/* The listener first, so children inherit its owner as in a real trace. */
	fill(&listen_ev, 0xffff8880ffff0000ull, LISTEN_PORT, 0, SF_TCP_CLOSE, SF_TCP_LISTEN, 1);
	tracker_feed(t, &listen_ev, &tr);
	for (uint64_t first = 0; first < conns; first += CHUNK_CONNS) {
		size_t n = make_chunk(first);
		uint64_t t0 = now_ns();

		for (size_t i = 0; i < n; i++) {
			tracker_feed(t, &chunk[i], &tr);
			if (m == M_TRACKER)
				continue;
			if (tw && tr.ended && time_wait_name(tr.ended))
				tw_add(tw, tr.ended, ignore_tw_end, NULL);
			sinks_state(&sinks, &chunk[i], &tr);
			if (tr.ended) {
				lifecycle_of(&l, tr.ended, NULL, false);
				sinks_conn(&sinks, &l);
			}
		}
		r.ns += now_ns() - t0;
		r.events += n;
		ob_flush(&out.ob);
	}
	tw_free(tw);
	tracker_free(t);
	return r;
}

static long rss_bytes(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
		resident = -1;
	fclose(f);
	return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

/* RSS growth of a tracker of `cap` filled with connections that stay open. */
static double bytes_per_conn(uint32_t cap)
{
	long before = rss_bytes(), after;
	struct tracker *t = tracker_new(cap);
	struct synfin_event e;
	struct transition tr;

	if (!t)
		return -1;
	for (uint32_t i = 0; i < cap; i++) {
		fill(&e, sk_addr(i, 0), (uint16_t)(32768 + i % 28000), LISTEN_PORT,
		     SF_TCP_CLOSE, SF_TCP_SYN_SENT, 1);
		tracker_feed(t, &e, &tr);
		e.oldstate = SF_TCP_SYN_SENT;
		e.newstate = SF_TCP_ESTABLISHED;
		tracker_feed(t, &e, &tr);
	}
	after = rss_bytes();
	if (tracker_count(t) != cap || tracker_evicted(t))
		fprintf(stderr, "micro: expected %u open connections, have %u (%llu evicted)\n", cap,
			tracker_count(t), (unsigned long long)tracker_evicted(t));
	tracker_free(t);
	return before < 0 || after < 0 ? -1 : (double)(after - before) / cap;
}

int main(int argc, char **argv)
{
	uint64_t conns = 1000000, tw_conns = 50000;
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	struct result r[M_MAX];
	double bpc;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--conns") && i + 1 < argc)
			conns = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--tw-conns") && i + 1 < argc)
			tw_conns = strtoull(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: micro [--conns N] [--tw-conns N]\n");
			return 2;
		}
	}
	if (devnull < 0 || !conns) {
		fprintf(stderr, "micro: cannot open /dev/null\n");
		return 1;
	}
	/* Memory first, while the heap is fresh. */
	bpc = bytes_per_conn(DEFAULT_CAP);
	/* Best of REPEATS: on a shared machine noise only ever slows a run down. */
	for (int m = 0; m < M_MAX; m++)
		for (int rep = 0; rep < REPEATS; rep++) {
			struct result one = run_mode((enum mode)m, m == M_JSON_TW ? tw_conns : conns,
						     devnull);

			if (rep == 0 || one.ns < r[m].ns)
				r[m] = one;
		}
	printf("{\"conns\":%llu,\"events_per_conn\":%d,\"sizeof_conn\":%zu,\"cap\":%d,"
	       "\"bytes_per_tracked_conn\":%.1f",
	       (unsigned long long)conns, EVENTS_PER_CONN, sizeof(struct conn), DEFAULT_CAP, bpc);
	for (int m = 0; m < M_MAX; m++) {
		double secs = (double)r[m].ns / 1e9;

		printf(",\"%s\":{\"events\":%llu,\"seconds\":%.4f,\"events_per_s\":%.0f,"
		       "\"ns_per_event\":%.1f}",
		       MODE_NAMES[m], (unsigned long long)r[m].events, secs,
		       secs > 0 ? (double)r[m].events / secs : 0.0,
		       r[m].events ? (double)r[m].ns / (double)r[m].events : 0.0);
	}
	printf(",\"target_events_per_s\":3000000,\"target_bytes_per_conn\":256}\n");
	close(devnull);
	return 0;
}
