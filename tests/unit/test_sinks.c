/* The sink interface: every output gets every record type through the same callbacks,
 * and each mode writes what it promises and nothing more. */
#include <stdlib.h>
#include <unistd.h>
#include "check.h"
#include "output.h"
#include "sink.h"
#include "summary.h"

static char written[65536];

static struct conn finished_client(void)
{
	struct conn c = {
		.first_ns = 1000000, .state_ns = 2000000, .saddr = { 127, 0, 0, 1 },
		.daddr = { 127, 0, 0, 1 }, .pid = 7, .sport = 40000, .dport = 80, .family = 2,
		.role = ROLE_CLIENT, .nstates = 2, .comm = "client",
		.states = { SF_TCP_SYN_SENT, SF_TCP_ESTABLISHED }, .state_us = { 50, 900 },
		.flags = CONN_HANDSHAKE_SEEN | CONN_CLOSED,
	};
	return c;
}

/* One of each record type through the sinks, as main.c hands them over. */
static void feed_one_of_each(struct sinks *all)
{
	struct synfin_event e = { .ts_ns = 1500000, .type = SF_EV_STATE, .family = 2,
				  .oldstate = SF_TCP_SYN_SENT, .newstate = SF_TCP_ESTABLISHED };
	static const char comm[SYNFIN_COMM_LEN] = "client"; /* writers read all 16 bytes */
	struct transition tr = { .delta_us = 50, .pid = 7, .comm = comm };
	struct synfin_segment seg = { .ts_ns = 1500000, .type = SF_EV_SEGMENT, .family = 2,
				      .flags = SF_TCPF_SYN };
	struct tw_entry tw = { .family = 2, .substate = SF_TCP_TIME_WAIT, .entered_ns = 2000000 };
	struct conn c = finished_client();
	struct loss loss = { .count = 3, .total = 3 };
	struct sink_status st = { 0 };
	struct lifecycle l;

	sinks_start(all);
	sinks_state(all, &e, &tr);
	sinks_packet(all, &seg, "lo");
	lifecycle_of(&l, &c, NULL, false);
	sinks_conn(all, &l);
	sinks_tw_end(all, &tw, TW_END_EXPIRED, 62000000000ull);
	sinks_stuck(all, &c, 9000000000ull);
	sinks_lost(all, 3000000, &loss);
	sinks_tick(all, 3000000, &st);
	sinks_report(all, 4000000, true);
}

/* What a records sink in this mode (and a summary sink, if asked) wrote for feed_one_of_each(). */
static const char *records_in_mode(enum output_mode mode, bool with_summary)
{
	static struct output o;
	static struct summary_sink sum;
	struct sinks all = { 0 };
	FILE *f = tmpfile();

	output_init(&o, fileno(f), true, mode);
	sinks_add(&all, &o.sink);
	if (with_summary) {
		summary_sink_init(&sum, &o.ob, true, 0, 0);
		sinks_add(&all, &sum.sink);
	}
	feed_one_of_each(&all);
	ob_flush(&o.ob);
	return read_back(f, written, sizeof(written));
}

static int count(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static void every_mode_writes_what_it_promises(void)
{
	const char *all = records_in_mode(OUTPUT_ALL, false);

	CHECK_INT(count(all, "\"type\":\"state\""), 1);
	CHECK_INT(count(all, "\"type\":\"packet\""), 1);
	CHECK_INT(count(all, "\"type\":\"conn\""), 1);
	CHECK_INT(count(all, "\"type\":\"time_wait_end\""), 1);
	CHECK_INT(count(all, "\"type\":\"stuck\""), 1);
	CHECK_INT(count(all, "\"type\":\"lost\""), 1);
	all = records_in_mode(OUTPUT_LIFE, false);
	CHECK_INT(count(all, "\"type\":\"state\"") + count(all, "\"type\":\"packet\""), 0);
	CHECK_INT(count(all, "\"type\":\"conn\""), 1);
	CHECK_INT(count(all, "\"type\":\"time_wait_end\""), 1);
	CHECK_INT(count(all, "\"type\":\"lost\""), 1);
}

static void summary_mode_leaves_the_records_to_the_summary(void)
{
	const char *out = records_in_mode(OUTPUT_NOTICES, true);

	CHECK_INT(count(out, "\"type\":\"conn\"") + count(out, "\"type\":\"state\""), 0);
	CHECK_INT(count(out, "\"type\":\"time_wait_end\""), 0);
	CHECK_INT(count(out, "\"type\":\"stuck\""), 1); /* notices still go out */
	CHECK_INT(count(out, "\"type\":\"lost\""), 1);
	CHECK_INT(count(out, "\"type\":\"summary\""), 1); /* the final report */
	CHECK(strstr(out, "\"connections\":1") != NULL);
}

int main(void)
{
	RUN(every_mode_writes_what_it_promises);
	RUN(summary_mode_leaves_the_records_to_the_summary);
	return check_summary("unit/sinks");
}
