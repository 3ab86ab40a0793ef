/* The wire view: joining segments to lifecycles, protocol checks, the ladder. */
#include <stdlib.h>
#include <unistd.h>
#include "check.h"
#include "flows.h"
#include "output.h"

static const uint8_t LO[16] = { 127, 0, 0, 1 };
#define CPORT 40000
#define SPORT 8080
#define J 1000u /* client ISN */
#define K 5000u /* server ISN */

static struct synfin_segment seg(uint64_t us, int from_client, uint8_t flags, uint32_t seq, uint32_t ack,
			  uint16_t len, uint8_t dir)
{
	struct synfin_segment s = {
		.ts_ns = 1000000000ull + us * 1000, .family = 2, .flags = flags, .seq = seq,
		.ack = ack, .len = len, .dir = dir, .win = 65535,
		.sport = from_client ? CPORT : SPORT, .dport = from_client ? SPORT : CPORT,
	};
	memcpy(s.saddr, LO, 16);
	memcpy(s.daddr, LO, 16);
	return s;
}

/* Adds a segment twice, as lo shows it: egress, then ingress a few microseconds later. */
static void add_lo(struct flow_table *t, struct synfin_segment s)
{
	flows_add_segment(t, &s);
	s.dir = 0;
	s.ts_ns += 3000;
	flows_add_segment(t, &s);
}

/* SYN, SYN-ACK, ACK, a request and a reply, then a client-first teardown. */
static void textbook_connection(struct flow_table *t, bool bad_synack)
{
	add_lo(t, seg(0, 1, SF_TCPF_SYN, J, 0, 0, 1));
	add_lo(t, seg(40, 0, SF_TCPF_SYN | SF_TCPF_ACK, K, bad_synack ? J + 7 : J + 1, 0, 1));
	add_lo(t, seg(60, 1, SF_TCPF_ACK, J + 1, K + 1, 0, 1));
	add_lo(t, seg(100, 1, SF_TCPF_PSH | SF_TCPF_ACK, J + 1, K + 1, 4, 1));
	add_lo(t, seg(140, 0, SF_TCPF_PSH | SF_TCPF_ACK, K + 1, J + 5, 4, 1));
	add_lo(t, seg(200, 1, SF_TCPF_FIN | SF_TCPF_ACK, J + 5, K + 5, 0, 1));
	add_lo(t, seg(240, 0, SF_TCPF_FIN | SF_TCPF_ACK, K + 5, J + 6, 0, 1));
	add_lo(t, seg(260, 1, SF_TCPF_ACK, J + 6, K + 6, 0, 1));
}

static const struct flow *last_done;
static struct flow done_copy;
static int done_calls;

static void on_done(void *ctx, const struct flow *f)
{
	(void)ctx;
	done_copy = *f;
	last_done = &done_copy;
	done_calls++;
}

static struct conn side_conn(int client)
{
	struct conn c = { .family = 2, .sport = client ? CPORT : SPORT, .dport = client ? SPORT : CPORT,
			  .role = client ? ROLE_CLIENT : ROLE_SERVER, .nstates = 1,
			  .first_ns = 1000000000ull, .state_ns = 1000300000ull,
			  .states = { client ? SF_TCP_SYN_SENT : SF_TCP_SYN_RECV },
			  .state_us = { 60 } };
	memcpy(c.saddr, LO, 16);
	memcpy(c.daddr, LO, 16);
	return c;
}

static void textbook_handshake_has_no_anomaly(void)
{
	struct flow_table *t = flows_new(8, on_done, NULL);
	struct wire_facts w;
	struct conn client = side_conn(1), server = side_conn(0);
	int unique = 0;

	done_calls = 0;
	textbook_connection(t, false);
	CHECK(flows_hold_conn(t, &client, 1000300000ull));
	CHECK(flows_hold_conn(t, &server, 1000300000ull));
	flows_flush(t, 1000300000ull + 1, 200000000ull, 10000000000ull);
	CHECK_INT(done_calls, 0); /* within the grace period: trailing segments may still come */
	flows_flush(t, 1000300000ull + 200000000ull, 200000000ull, 10000000000ull);
	CHECK_INT(done_calls, 1);
	if (!last_done)
		return;
	for (int i = 0; i < last_done->nseg; i++)
		unique += !flow_is_duplicate(last_done, i);
	CHECK_INT(last_done->nseg, 16);
	CHECK_INT(unique, 8);
	flow_wire_facts(last_done, &w);
	CHECK_INT(w.anomalies, 0);
	CHECK_INT(w.syns, 1);
	CHECK_INT(w.synacks, 1);
	CHECK_INT(w.synack_ns - w.syn_ns, 40000);
	CHECK_INT(w.ack_ns - w.syn_ns, 60000);
	CHECK_INT(flow_side_of(last_done, &client), 0);
	CHECK_INT(flow_side_of(last_done, &server), 1);
	flows_free(t);
}

static void wrong_synack_ack_is_flagged(void)
{
	struct flow_table *t = flows_new(8, on_done, NULL);
	struct wire_facts w;

	textbook_connection(t, true);
	flows_flush(t, 0, 0, 0); /* everything, now */
	flow_wire_facts(last_done, &w);
	CHECK(w.anomalies & ANOM_SYNACK_ACK);
	CHECK(!(w.anomalies & ANOM_HANDSHAKE_ACK));
	flows_free(t);
}

static void refused_syn_and_retransmission_are_flagged(void)
{
	struct flow_table *t = flows_new(8, on_done, NULL);
	struct wire_facts w;

	add_lo(t, seg(0, 1, SF_TCPF_SYN, J, 0, 0, 1));
	add_lo(t, seg(1000000, 1, SF_TCPF_SYN, J, 0, 0, 1)); /* retransmitted a second later */
	add_lo(t, seg(1000040, 0, SF_TCPF_RST | SF_TCPF_ACK, 0, J + 1, 0, 1));
	flows_flush(t, 0, 0, 0);
	flow_wire_facts(last_done, &w);
	CHECK_INT(w.syns, 2);
	CHECK(w.anomalies & ANOM_DUPLICATE_SYN);
	CHECK(w.anomalies & ANOM_SYN_NO_LISTENER);
	flows_free(t);
}

static void unacknowledged_fin_is_flagged(void)
{
	struct flow_table *t = flows_new(8, on_done, NULL);
	struct wire_facts w;

	add_lo(t, seg(0, 1, SF_TCPF_SYN, J, 0, 0, 1));
	add_lo(t, seg(40, 0, SF_TCPF_SYN | SF_TCPF_ACK, K, J + 1, 0, 1));
	add_lo(t, seg(60, 1, SF_TCPF_ACK, J + 1, K + 1, 0, 1));
	add_lo(t, seg(200, 1, SF_TCPF_FIN | SF_TCPF_ACK, J + 1, K + 1, 0, 1));
	add_lo(t, seg(240, 0, SF_TCPF_ACK, K + 1, J + 1, 0, 1)); /* acks the data, not the FIN */
	flows_flush(t, 0, 0, 0);
	flow_wire_facts(last_done, &w);
	CHECK(w.anomalies & ANOM_FIN_ACK);
	flows_free(t);
}

static void full_table_finishes_the_oldest_flow(void)
{
	struct flow_table *t = flows_new(2, on_done, NULL);
	struct synfin_segment s = seg(0, 1, SF_TCPF_SYN, J, 0, 0, 1);

	done_calls = 0;
	for (int i = 0; i < 3; i++) {
		s.sport = (uint16_t)(CPORT + i);
		flows_add_segment(t, &s);
	}
	CHECK_INT(done_calls, 1);
	CHECK_INT(last_done->port[0], CPORT);
	CHECK_INT(flows_evicted(t), 1);
	flows_free(t);
}

static char ladder_text[8192];

static void ladder_shows_arrows_and_states(void)
{
	struct flow_table *t = flows_new(8, on_done, NULL);
	struct conn client = side_conn(1), server = side_conn(0);
	static struct output o;
	FILE *f = tmpfile();

	textbook_connection(t, false);
	client.nstates = 4;
	memcpy(client.states, (uint8_t[]){ SF_TCP_SYN_SENT, SF_TCP_ESTABLISHED, SF_TCP_FIN_WAIT1,
					   SF_TCP_FIN_WAIT2 }, 4);
	memcpy(client.state_us, (uint32_t[]){ 43, 140, 45, 20 }, 16);
	flows_hold_conn(t, &client, 1);
	flows_hold_conn(t, &server, 1);
	flows_flush(t, 0, 0, 0);
	output_init(&o, fileno(f), false, OUTPUT_ALL);
	o.relative = true;
	ladder_write(&o, last_done);
	ob_flush(&o.ob);
	read_back(f, ladder_text, sizeof(ladder_text));
	CHECK(strstr(ladder_text, "client 127.0.0.1:40000") != NULL);
	CHECK(strstr(ladder_text, "server 127.0.0.1:8080") != NULL);
	CHECK(strstr(ladder_text, "SYN_SENT     |-- S seq=0 ") != NULL);
	CHECK(strstr(ladder_text, "|<- S. seq=0 ack=1 ") != NULL);
	CHECK(strstr(ladder_text, "|-- F. seq=5 ack=5 ") != NULL);
	CHECK(strstr(ladder_text, "FIN_WAIT1") != NULL);
	/* one arrow per segment, though lo showed each twice */
	int arrows = 0;
	for (char *p = ladder_text; (p = strstr(p, "|-- ")); p++)
		arrows++;
	for (char *p = ladder_text; (p = strstr(p, "|<- ")); p++)
		arrows++;
	CHECK_INT(arrows, 8);
	if (check_failures_in_test)
		printf("%s", ladder_text);
	flows_free(t);
}

int main(void)
{
	RUN(textbook_handshake_has_no_anomaly);
	RUN(wrong_synack_ack_is_flagged);
	RUN(refused_syn_and_retransmission_are_flagged);
	RUN(unacknowledged_fin_is_flagged);
	RUN(full_table_finishes_the_oldest_flow);
	RUN(ladder_shows_arrows_and_states);
	return check_summary("unit/flows");
}
