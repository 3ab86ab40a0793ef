/* The drop log: drops kept by tuple until their lifecycle takes them, either direction. */
#include <sys/socket.h>
#include "check.h"
#include "droplog.h"

static struct synfin_event drop(uint16_t sport, uint16_t dport, uint8_t flags, uint32_t reason)
{
	struct synfin_event e = { .type = SF_EV_DROP, .netns = 9, .family = AF_INET, .sport = sport,
				  .dport = dport, .close_flags = flags, .drop_reason = reason };

	e.saddr[0] = e.daddr[0] = 127;
	e.saddr[3] = 1;
	e.daddr[3] = 2;
	e.saddr[7] = 0x5a; /* past an IPv4 address: not part of it */
	return e;
}

static struct conn client(uint16_t sport, uint16_t dport)
{
	struct conn c = { .netns = 9, .family = AF_INET, .sport = sport, .dport = dport };

	c.saddr[0] = c.daddr[0] = 127;
	c.saddr[3] = 1;
	c.daddr[3] = 2;
	return c;
}

static void a_lifecycle_takes_its_drops_both_ways_once(void)
{
	static struct drop_log log;
	struct synfin_event syn = drop(40000, 80, SF_TCPF_SYN, 7);
	struct synfin_event synack = drop(80, 40000, SF_TCPF_SYN | SF_TCPF_ACK, 7);
	struct conn c = client(40000, 80), server = client(80, 40000);
	struct conn_drop got[DROPS_PER_CONN];

	CHECK_INT(drop_log_init(&log), 0);
	synack.saddr[3] = 2; /* the reply: from the server's end */
	synack.daddr[3] = 1;
	drop_log_add(&log, &syn);
	drop_log_add(&log, &syn);
	drop_log_add(&log, &synack);
	struct conn other = client(40001, 80);

	CHECK_INT(drop_log_take(&log, &other, got), 0);
	memcpy(server.saddr, c.daddr, 16);
	memcpy(server.daddr, c.saddr, 16);
	CHECK_INT(drop_log_take(&log, &c, got), 2);
	CHECK_INT(got[0].segment, SEG_SYN);
	CHECK_INT(got[0].count, 2);
	CHECK_INT(got[0].sent, 1);
	CHECK_INT(got[0].reason, 7);
	CHECK_INT(got[1].segment, SEG_SYNACK);
	CHECK_INT(got[1].sent, 0);
	CHECK_INT(drop_log_take(&log, &c, got), 0); /* taken once */
	drop_log_add(&log, &syn); /* from the server's side the SYN was received */
	CHECK_INT(drop_log_take(&log, &server, got), 1);
	CHECK_INT(got[0].sent, 0);
	drop_log_free(&log);
}

static void the_oldest_tuple_makes_room_counted(void)
{
	static struct drop_log log;
	struct conn_drop got[DROPS_PER_CONN];

	CHECK_INT(drop_log_init(&log), 0);
	for (uint32_t i = 0; i < DROP_LOG_LEN + 10; i++) {
		struct synfin_event e = drop((uint16_t)(1000 + i), 80, SF_TCPF_FIN, 3);

		drop_log_add(&log, &e);
	}
	struct conn first = client(1000, 80), last = client(1000 + DROP_LOG_LEN + 9, 80);

	CHECK_INT(log.evicted, 10);
	CHECK_INT(drop_log_take(&log, &first, got), 0);
	CHECK_INT(drop_log_take(&log, &last, got), 1);
	CHECK_INT(got[0].segment, SEG_FIN);
	drop_log_free(&log);
}

/* The flags name the segment; a bare ACK is the handshake's (the kernel reports no other). */
static void segments_are_named_by_their_flags(void)
{
	CHECK_INT(drop_segment_of(SF_TCPF_SYN), SEG_SYN);
	CHECK_INT(drop_segment_of(SF_TCPF_SYN | SF_TCPF_ACK), SEG_SYNACK);
	CHECK_INT(drop_segment_of(SF_TCPF_FIN | SF_TCPF_ACK), SEG_FIN);
	CHECK_INT(drop_segment_of(SF_TCPF_RST | SF_TCPF_ACK), SEG_RST);
	CHECK_INT(drop_segment_of(SF_TCPF_ACK), SEG_ACK);
	CHECK_INT(drop_segment_of(SF_TCPF_ACK | SF_TCPF_PSH), SEG_ACK);
	CHECK_STR(drop_segment_name(SEG_ACK), "ACK");
	CHECK_STR(drop_segment_name(SEG_KINDS), "?");
}

int main(void)
{
	RUN(a_lifecycle_takes_its_drops_both_ways_once);
	RUN(the_oldest_tuple_makes_room_counted);
	RUN(segments_are_named_by_their_flags);
	return check_summary("unit/droplog");
}
