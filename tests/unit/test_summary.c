/*
 * --summary: log2 bucketing, the bcc-style text, and the bounded top-N
 * tables (Space-Saving): right answers under churn, memory that never grows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "summary.h"


/* What the summary sink does with a finished connection. */
static void add_conn(struct summary *s, const struct conn *c)
{
	struct lifecycle l;

	lifecycle_of(&l, c, NULL, false);
	summary_add_conn(s, &l);
}

static struct outbuf ob;
static struct summary s;

/* What summary_write produced, from the buffer (small outputs are never flushed). */
static const char *written(bool json)
{
	ob_init(&ob, -1);
	summary_write(&s, NULL, &ob, json, 5000, 1000000000);
	ob.buf[ob.len] = '\0';
	return ob.buf;
}

static struct conn client_to(uint8_t last_octet, uint16_t dport, uint32_t hs_us)
{
	struct conn c = {
		.first_ns = 1000, .state_ns = 1000 + 5000ull * 1000,
		.saddr = { 127, 0, 0, 1 }, .daddr = { 10, 0, 0, last_octet },
		.sport = 40000, .dport = dport, .family = 2, .role = ROLE_CLIENT, .nstates = 4,
		.states = { SF_TCP_SYN_SENT, SF_TCP_ESTABLISHED, SF_TCP_FIN_WAIT1, SF_TCP_FIN_WAIT2 },
		.state_us = { hs_us, 4000, 10, 20 },
		.flags = CONN_HANDSHAKE_SEEN | CONN_CLOSED, .close_flags = SF_CLOSE_TIME_WAIT,
	};
	return c;
}

static void buckets_are_log2_like_bcc(void)
{
	const struct { uint64_t v; int b; } cases[] = {
		{ 0, 0 },     { 1, 0 },      { 2, 1 },
		{ 3, 1 },     { 4, 2 },      { 1023, 9 },
		{ 1024, 10 }, { 1025, 10 },  { (1ull << 32) - 1, 31 },
		{ 1ull << 32, 32 },          { UINT64_MAX, 63 },
	};
	struct hist h = { 0 };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK_INT(hist_bucket(cases[i].v), cases[i].b);
		hist_add(&h, cases[i].v);
	}
	CHECK_INT(h.count, sizeof(cases) / sizeof(cases[0]));
	CHECK_INT(h.bucket[0], 2);
	CHECK_INT(h.bucket[63], 1); /* the largest value has a bucket of its own, not a clamp */
}

static void text_histogram_matches_bcc_layout(void)
{
	summary_reset(&s);
	for (int i = 0; i < 4; i++) { /* handshakes of 2 us (x4) and 1500 us (x2) */
		struct conn c = client_to(1, 80, i < 2 ? 1500 : 2);

		add_conn(&s, &c);
	}
	const char *want =
		"\nclient handshake (SYN_SENT -> ESTABLISHED)\n"
		"     usecs               : count     distribution\n"
		"         0 -> 1          : 0        |                                        |\n"
		"         2 -> 3          : 2        |****************************************|\n"
		"         4 -> 7          : 0        |                                        |\n"
		"         8 -> 15         : 0        |                                        |\n"
		"        16 -> 31         : 0        |                                        |\n"
		"        32 -> 63         : 0        |                                        |\n"
		"        64 -> 127        : 0        |                                        |\n"
		"       128 -> 255        : 0        |                                        |\n"
		"       256 -> 511        : 0        |                                        |\n"
		"       512 -> 1023       : 0        |                                        |\n"
		"      1024 -> 2047       : 2        |****************************************|\n";
	const char *out = written(false);

	CHECK(strstr(out, want) != NULL);
	if (!strstr(out, want))
		printf("%s", out);
	CHECK(strstr(out, "connections: 4\n") != NULL);
	CHECK(strstr(out, "      4096 -> 8191       : 4        |****************************************|\n"));
	CHECK(strstr(out, "\nPORT   ROLE     CONNECTIONS\n80     client   4\n") != NULL);
	CHECK(strstr(out, "\nREMOTE                                   CONNECTIONS\n10.0.0.1") != NULL);
}

static void huge_values_widen_the_columns_like_bcc(void)
{
	summary_reset(&s);
	summary_add_time_wait(&s, 1ull << 40);
	const char *out = written(false);

	CHECK(strstr(out, "               usecs                         : count     distribution\n"));
	CHECK(strstr(out, "                   0 -> 1                    : 0        |"));
	CHECK(strstr(out, "       1099511627776 -> 2199023255551        : 1        |****"));
}

static void json_summary_carries_buckets_and_tops(void)
{
	summary_reset(&s);
	struct conn c = client_to(7, 443, 40);
	add_conn(&s, &c);
	const char *out = written(true);

	const char *head = "{\"type\":\"summary\",\"v\":1,\"ts_ns\":5000,\"interval_ns\":1000000000,"
			   "\"connections\":1,";

	CHECK(!strncmp(out, head, strlen(head)));
	CHECK(strstr(out, "\"handshake_us_client\":[{\"lo\":0,\"hi\":1,\"count\":0},") != NULL);
	CHECK(strstr(out, "{\"lo\":32,\"hi\":63,\"count\":1}]") != NULL);
	CHECK(strstr(out, "\"top_ports\":[{\"port\":443,\"role\":\"client\",\"count\":1}],"
			  "\"other_ports\":0") != NULL);
	CHECK(strstr(out, "\"top_talkers\":[{\"addr\":\"10.0.0.7\",\"count\":1}],"
			  "\"other_talkers\":0,\"listeners\":[],\"syncookies\":[]}\n") != NULL);
}

/* Every connection is either counted for a key in the table or under "other". */
static void check_accounting(void)
{
	uint64_t ports = s.other_ports, talkers = s.other_talkers;

	for (uint32_t i = 0; i < s.nports; i++)
		ports += s.port_top.e[i].count - s.port_top.e[i].err;
	for (uint32_t i = 0; i < s.ntalkers; i++)
		talkers += s.talker_top.e[i].count - s.talker_top.e[i].err;
	CHECK_INT(ports, s.connections);
	CHECK_INT(talkers, s.connections);
}

/* No key twice: the hash index found every key that was already there. */
static void check_unique_keys(void)
{
	for (uint32_t i = 0; i < s.ntalkers; i++)
		for (uint32_t j = i + 1; j < s.ntalkers; j++)
			if (!memcmp(s.talker_top.e[i].key, s.talker_top.e[j].key, TOP_KEY_LEN)) {
				CHECK(!"duplicate talker");
				return;
			}
}

static uint32_t rng = 12345;

static uint32_t next_random(void)
{
	rng = rng * 1103515245u + 12345u;
	return rng >> 8;
}

static void add_talker(uint32_t id, uint16_t port)
{
	struct conn c = client_to(0, port, 10);

	c.daddr[1] = (uint8_t)(id >> 16);
	c.daddr[2] = (uint8_t)(id >> 8);
	c.daddr[3] = (uint8_t)id;
	add_conn(&s, &c);
}

/*
 * A scan of 50,000 one-off addresses and ports, with five heavy talkers
 * arriving only after the tables are full: first-come tables would never
 * see them; Space-Saving ranks them right, with their exact counts.
 */
static void heavy_hitters_survive_a_scan(void)
{
	static const uint32_t heavy[5] = { 0xAA0001, 0xAA0002, 0xAA0003, 0xAA0004, 0xAA0005 };
	static const uint32_t times[5] = { 900, 700, 500, 300, 200 };
	uint32_t sent[5] = { 0 };
	struct top_item top[SUMMARY_TOP];

	summary_reset(&s);
	for (uint32_t i = 0; i < 50000; i++) {
		add_talker(i, (uint16_t)(10000 + i)); /* 10000-59999: clear of 8000-8004 */
		for (int h = 0; h < 5; h++)
			if (i >= 5000 && sent[h] < times[h] && next_random() % 45 < times[h] / 100 + 1) {
				add_talker(heavy[h], (uint16_t)(8000 + h));
				sent[h]++;
			}
	}
	CHECK(s.ntalkers <= SUMMARY_TALKERS && s.nports <= SUMMARY_PORTS);
	CHECK_INT(summary_top_talkers(&s, top, SUMMARY_TOP), SUMMARY_TOP);
	for (int h = 0; h < 5; h++) {
		uint8_t want[16] = { 10, (uint8_t)(heavy[h] >> 16), (uint8_t)(heavy[h] >> 8),
				     (uint8_t)heavy[h] };

		CHECK(!memcmp(top[h].addr, want, 16));
		CHECK_INT(top[h].count, sent[h]);
	}
	CHECK_INT(summary_top_ports(&s, top, 5), 5);
	for (int h = 0; h < 5; h++) {
		CHECK_INT(top[h].port, 8000 + h);
		CHECK_INT(top[h].count, sent[h]);
	}
	check_accounting();
	check_unique_keys();
}

/* Random skewed traffic: after every step the tables stay consistent. */
static void tables_stay_consistent_under_churn(void)
{
	summary_reset(&s);
	for (uint32_t i = 0; i < 200000; i++) {
		uint32_t r = next_random();
		/* Half the connections from 64 addresses, half from 2^20. */
		add_talker(r & 1 ? (r >> 1) % 64 : (r >> 1) % (1u << 20), (uint16_t)(r % 3000));
	}
	check_accounting();
	check_unique_keys();
	CHECK_INT(s.ntalkers, SUMMARY_TALKERS);
	CHECK_INT(s.nports, SUMMARY_PORTS);
	/* The 64 frequent addresses each have ~1,560 connections: all of them beat the noise. */
	struct top_item top[SUMMARY_TOP];
	uint32_t n = summary_top_talkers(&s, top, SUMMARY_TOP);
	CHECK_INT(n, SUMMARY_TOP);
	for (uint32_t i = 0; i < n; i++) {
		CHECK(top[i].addr[1] == 0 && top[i].addr[2] == 0 && top[i].addr[3] < 64);
		CHECK(top[i].count > 1000);
	}
}

static void memory_is_fixed(void)
{
	/* Everything lives in the struct: nothing is allocated per key. */
	CHECK(sizeof(struct summary) < 128 * 1024);
	struct summary *p = summary_new();
	CHECK(p != NULL && p->nports == 0 && p->connections == 0);
	summary_free(p);
}

static void fewer_keys_than_asked_and_none(void)
{
	struct top_item top[SUMMARY_TOP];

	summary_reset(&s);
	CHECK_INT(summary_top_talkers(&s, top, SUMMARY_TOP), 0);
	CHECK_INT(summary_top_ports(&s, top, 0), 0);
	add_talker(1, 80);
	add_talker(2, 80);
	add_talker(2, 81);
	CHECK_INT(summary_top_talkers(&s, top, SUMMARY_TOP), 2);
	CHECK_INT(top[0].addr[3], 2);
	CHECK_INT(top[0].count, 2);
	CHECK_INT(summary_top_ports(&s, top, 1), 1);
	CHECK_INT(top[0].port, 80);
}

int main(void)
{
	RUN(buckets_are_log2_like_bcc);
	RUN(text_histogram_matches_bcc_layout);
	RUN(huge_values_widen_the_columns_like_bcc);
	RUN(json_summary_carries_buckets_and_tops);
	RUN(heavy_hitters_survive_a_scan);
	RUN(tables_stay_consistent_under_churn);
	RUN(memory_is_fixed);
	RUN(fewer_keys_than_asked_and_none);
	return check_summary("unit/summary");
}
