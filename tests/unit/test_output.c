/* The output writers: JSON escaping, number and address formatting, record shape. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"
#include "output.h"
#include "summary.h"

/* A finished connection through the records sink, as main.c hands it over. */
static void write_lifecycle(struct output *o, const struct conn *c)
{
	struct lifecycle l;

	lifecycle_of(&l, c, NULL, false);
	o->sink.ops->conn(&o->sink, &l);
}

static void add_summary_conn(struct summary *s, const struct conn *c)
{
	struct lifecycle l;

	lifecycle_of(&l, c, NULL, false);
	summary_add_conn(s, &l);
}

static char captured[OUTBUF_SIZE * 8];

/* Runs fn against an outbuf on a temporary file; returns what was written. */
static const char *capture(void (*fn)(struct output *o, const void *arg), const void *arg,
			   bool json)
{
	static struct output o;
	FILE *f = tmpfile();

	output_init(&o, fileno(f), json, OUTPUT_ALL);
	fn(&o, arg);
	ob_flush(&o.ob);
	return read_back(f, captured, sizeof(captured));
}

static void write_json_str(struct output *o, const void *arg)
{
	ob_json_str(&o->ob, arg, 64);
}

static const char *json_of(const char *s)
{
	return capture(write_json_str, s, true);
}

static void json_escapes_quotes_backslashes_and_controls(void)
{
	CHECK_STR(json_of("a\"b\\c"), "\"a\\\"b\\\\c\"");
	CHECK_STR(json_of("tab\there\nnl"), "\"tab\\there\\nnl\"");
	CHECK_STR(json_of("\x01\x1f\x7f"), "\"\\u0001\\u001f\\u007f\"");
	CHECK_STR(json_of(""), "\"\"");
}

static void json_keeps_valid_utf8_and_replaces_invalid_bytes(void)
{
	CHECK_STR(json_of("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
	CHECK_STR(json_of("\xf0\x9f\x90\x8d"), "\"\xf0\x9f\x90\x8d\"");
	CHECK_STR(json_of("x\xff"), "\"x\\ufffd\"");
	CHECK_STR(json_of("cut\xc3"), "\"cut\\ufffd\""); /* comm truncated mid-character */
	CHECK_STR(json_of("\xc0\xaf"), "\"\\ufffd\\ufffd\"");  /* overlong '/' */
	CHECK_STR(json_of("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate */
}

static void json_str_stops_at_maxlen_without_nul(void)
{
	static struct output o;
	FILE *f = tmpfile();
	const char comm[16] = "0123456789abcdef"; /* no terminator */
	char buf[64] = {};

	output_init(&o, fileno(f), true, OUTPUT_ALL);
	ob_json_str(&o.ob, comm, sizeof(comm));
	ob_flush(&o.ob);
	lseek(fileno(f), 0, SEEK_SET);
	CHECK(read(fileno(f), buf, sizeof(buf) - 1) == 18);
	CHECK_STR(buf, "\"0123456789abcdef\"");
	fclose(f);
}

static void write_numbers(struct output *o, const void *arg)
{
	(void)arg;
	ob_u64(&o->ob, 0);
	ob_putc(&o->ob, ' ');
	ob_u64(&o->ob, UINT64_MAX);
	ob_putc(&o->ob, ' ');
	ob_i64(&o->ob, INT64_MIN);
	ob_putc(&o->ob, ' ');
	ob_fixed(&o->ob, 1234, 3);
	ob_putc(&o->ob, ' ');
	ob_fixed(&o->ob, 5, 3);
	ob_putc(&o->ob, ' ');
	ob_hex(&o->ob, 0xffff888100a0b0c0ull);
}

static void numbers_format_like_printf(void)
{
	CHECK_STR(capture(write_numbers, NULL, true),
		  "0 18446744073709551615 -9223372036854775808 1.234 0.005 0xffff888100a0b0c0");
}

/* Each side of every power of ten, timestamps whose last six digits start with zeros,
 * and repeats (the memo's copy), against printf. */
#define NEDGE (3 * 20 + 8)
static uint64_t edge_numbers[NEDGE];

static void make_edge_numbers(void)
{
	static const uint64_t more[] = {
		0, 4026531840ull, 4026531840ull, 9501000000837ull, 9501000999999ull,
		9501001000000ull, 9501001000000ull, 18446744073709551615ull,
	};
	uint64_t p = 1;
	size_t n = 0;

	for (int k = 0; k < 20; k++, p *= 10) {
		edge_numbers[n++] = p - 1;
		edge_numbers[n++] = p;
		edge_numbers[n++] = p + 1;
	}
	for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
		edge_numbers[n++] = more[i];
}

/* Every number three times: ob_u64, ob_u64_memo, ob_u64_split. */
static void write_edge_numbers(struct output *o, const void *arg)
{
	struct ob_memo memo = { 0 }, hi = { 0 };

	(void)arg;
	for (size_t i = 0; i < NEDGE; i++) {
		ob_u64(&o->ob, edge_numbers[i]);
		ob_putc(&o->ob, ' ');
		ob_u64_memo(&o->ob, &memo, edge_numbers[i]);
		ob_putc(&o->ob, ' ');
		ob_u64_split(&o->ob, &hi, edge_numbers[i]);
		ob_putc(&o->ob, ' ');
	}
}

static void decimal_edges_match_printf(void)
{
	char want[4096];
	size_t len = 0;

	make_edge_numbers();
	for (size_t i = 0; i < NEDGE; i++)
		for (int k = 0; k < 3; k++)
			len += (size_t)snprintf(want + len, sizeof(want) - len, "%llu ",
						(unsigned long long)edge_numbers[i]);
	CHECK_STR(capture(write_edge_numbers, NULL, true), want);
}

static void write_addrs(struct output *o, const void *arg)
{
	const uint8_t v4[16] = { 192, 0, 2, 255 };
	const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
	const uint8_t lo6[16] = { [15] = 1 };

	(void)arg;
	ob_addr(&o->ob, 2, v4);
	ob_putc(&o->ob, ' ');
	ob_addr(&o->ob, 10, v6);
	ob_putc(&o->ob, ' ');
	ob_addr(&o->ob, 10, lo6);
}

static void addresses_format_like_inet_ntop(void)
{
	CHECK_STR(capture(write_addrs, NULL, true), "192.0.2.255 2001:db8::1 ::1");
}

static void write_conn(struct output *o, const void *arg)
{
	write_lifecycle(o, arg);
}

static struct conn sample_conn(void)
{
	struct conn c = {
		.first_ns = 1000000, .state_ns = 3500000, .cgroup_id = 77,
		.saddr = { 10, 0, 0, 1 }, .daddr = { 10, 0, 0, 2 },
		.pid = 4242, .netns = 4026531840u, .sport = 40000, .dport = 80,
		.family = 2, .role = ROLE_CLIENT, .nstates = 4,
		.comm = "cu\"rl",
		.states = { SF_TCP_SYN_SENT, SF_TCP_ESTABLISHED, SF_TCP_FIN_WAIT1, SF_TCP_FIN_WAIT2 },
		.state_us = { 120, 2000, 30, 350 },
		.flags = CONN_HANDSHAKE_SEEN | CONN_CLOSED,
		.local_isn = 4000000000u, .remote_isn = 7, .hs_retrans = 1,
		.close_flags = SF_CLOSE_TIME_WAIT | SF_CLOSE_FIN_RCVD | SF_CLOSE_FIN_SENT,
		.bytes_acked = 6, .bytes_received = 5,
	};
	return c;
}

static void conn_record_carries_every_documented_field(void)
{
	struct conn c = sample_conn();

	CHECK_STR(capture(write_conn, &c, true),
		  "{\"type\":\"conn\",\"v\":2,\"ts_ns\":3500000,\"role\":\"client\",\"pid\":4242,"
		  "\"comm\":\"cu\\\"rl\",\"owner_unknown\":null,\"family\":\"ipv4\",\"saddr\":\"10.0.0.1\",\"sport\":40000,"
		  "\"daddr\":\"10.0.0.2\",\"dport\":80,\"netns\":4026531840,\"cgroup_id\":77,"
		  "\"states\":[\"SYN_SENT\",\"ESTABLISHED\",\"FIN_WAIT1\",\"FIN_WAIT2\"],"
		  "\"state_us\":[120,2000,30,350],\"teardown_us\":{\"FIN_WAIT1\":30,\"FIN_WAIT2\":350},"
		  "\"handshake_us\":120,\"duration_us\":2500,\"closer\":\"local\",\"outcome\":\"closed\","
		  "\"reset_by\":null,\"reset_reason\":null,\"reset_at_us\":null,\"accept_wait_us\":null,\"drops\":null,\"full_listener\":null,\"sk_err\":null,"
		  "\"time_wait\":\"entered\",\"syn_retrans\":1,"
		  "\"synack_retrans\":null,\"local_isn\":4000000000,\"remote_isn\":7,\"tx_bytes\":4,"
		  "\"rx_bytes\":4,\"partial\":false,\"close_inferred\":false}\n");
}

static void unknown_owner_and_durations_are_null(void)
{
	struct conn c = sample_conn();

	c.pid = 0;
	c.partial = 1;
	c.role = ROLE_UNKNOWN;
	c.state_us[0] = TRACKER_UNKNOWN_US;
	c.flags = 0;
	capture(write_conn, &c, true);
	CHECK(strstr(captured, "\"role\":null,\"pid\":null,\"comm\":null,") != NULL);
	CHECK(strstr(captured, "\"state_us\":[null,2000,30,350]") != NULL);
	CHECK(strstr(captured, "\"handshake_us\":null") != NULL);
	CHECK(strstr(captured, "\"outcome\":null,\"reset_by\":null,") != NULL);
	CHECK(strstr(captured, "\"local_isn\":null,\"remote_isn\":null,\"tx_bytes\":null") != NULL);
	CHECK(strstr(captured, "\"partial\":true,\"close_inferred\":false}") != NULL);
}

static void text_conn_line_is_readable(void)
{
	struct conn c = sample_conn();

	capture(write_conn, &c, false);
	CHECK(strstr(captured, "4242    cu\"rl") != NULL);
	CHECK(strstr(captured, "10.0.0.1:40000          10.0.0.2:80") != NULL);
	CHECK(strstr(captured, "= client closed, local first, TIME_WAIT: "
			       "SYN_SENT>ESTABLISHED>FIN_WAIT1>FIN_WAIT2 "
			       "handshake=0.120ms life=2.500ms\n") != NULL);
}

static void write_many_records(struct output *o, const void *arg)
{
	const struct conn *c = arg;

	for (int i = 0; i < 400; i++) {
		write_lifecycle(o, c);
		ob_record_done(&o->ob);
	}
}

static void buffer_flushes_whole_records_when_full(void)
{
	struct conn c = sample_conn();
	int lines = 0;

	capture(write_many_records, &c, true);
	for (char *p = captured; (p = strchr(p, '\n')); p++)
		lines++;
	CHECK_INT(lines, 400);
	CHECK(strlen(captured) > OUTBUF_SIZE); /* it really went past one buffer */
}

/* An output whose buffer is followed by a guard: a write past the buffer shows
 * even without ASan (which reports it as a global-buffer-overflow). */
static struct {
	struct output o;
	unsigned char guard[8192];
} guarded;

static bool guard_intact(void)
{
	for (size_t i = 0; i < sizeof(guarded.guard); i++)
		if (guarded.guard[i] != 0xa5)
			return false;
	return true;
}

/* Every kind of writer, well past one buffer's worth, after the output broke. */
static void write_everything_after_error(struct output *o)
{
	struct conn c = sample_conn();
	static const char comm[16] = "plain-comm";
	uint8_t addr[16] = { 192, 0, 2, 1 };

	for (int i = 0; i < 3000; i++) {
		write_lifecycle(o, &c);
		ob_u64(&o->ob, UINT64_MAX);
		ob_u64_split(&o->ob, &o->ts_hi, 1234567890123456789ull);
		ob_u64_memo(&o->ob, &o->netns, 4026531840u);
		ob_putc(&o->ob, 'x');
		ob_write16(&o->ob, comm, 10);
		ob_json_comm(&o->ob, comm);
		ob_addr(&o->ob, 2, addr);
		ob_pad_from(&o->ob, o->ob.len, 40);
	}
	ob_record_done(&o->ob);
}

static void writes_after_a_write_error_stay_in_bounds(void)
{
	int fd = open("/dev/full", O_WRONLY);

	memset(guarded.guard, 0xa5, sizeof(guarded.guard));
	output_init(&guarded.o, fd, true, OUTPUT_ALL);
	write_everything_after_error(&guarded.o);
	CHECK_INT(ob_flush(&guarded.o.ob), -ENOSPC);
	CHECK_INT(guarded.o.ob.err, ENOSPC); /* the first error is kept for the exit line */
	CHECK(guarded.o.ob.len <= OUTBUF_SIZE);
	CHECK(guard_intact());
	close(fd);
}

static void a_reader_that_left_is_epipe(void)
{
	int p[2];

	CHECK(pipe(p) == 0);
	close(p[0]);
	signal(SIGPIPE, SIG_IGN);
	memset(guarded.guard, 0xa5, sizeof(guarded.guard));
	output_init(&guarded.o, p[1], false, OUTPUT_ALL);
	write_everything_after_error(&guarded.o);
	CHECK_INT(ob_flush(&guarded.o.ob), -EPIPE);
	CHECK(guard_intact());
	close(p[1]);
}

/* Reads the pipe slowly to its end; exits with 0 when it got `want` bytes. */
static void slow_reader(int fd, size_t want)
{
	static char chunk[4096];
	size_t got = 0;
	ssize_t n;

	usleep(50000);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		got += (size_t)n;
		if (got % (64 * 1024) < sizeof(chunk))
			usleep(2000);
	}
	_exit(got == want ? 0 : 1);
}

static void a_non_blocking_stdout_is_waited_on(void)
{
	const size_t total = 4 * OUTBUF_SIZE + 123;
	static char block[1000];
	int p[2], status = -1;
	pid_t child;

	CHECK(pipe(p) == 0);
	child = fork();
	if (child == 0) {
		close(p[1]);
		slow_reader(p[0], total);
	}
	close(p[0]);
	fcntl(p[1], F_SETFL, fcntl(p[1], F_GETFL) | O_NONBLOCK);
	memset(block, 'y', sizeof(block));
	output_init(&guarded.o, p[1], false, OUTPUT_ALL);
	for (size_t left = total; left;) {
		size_t n = left < sizeof(block) ? left : sizeof(block);

		ob_write(&guarded.o.ob, block, n);
		left -= n;
	}
	CHECK_INT(ob_flush(&guarded.o.ob), 0); /* EAGAIN is back-pressure, not an error */
	close(p[1]);
	waitpid(child, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* every byte arrived */
}

static void log2_buckets_like_bcc(void)
{
	CHECK_INT(hist_bucket(0), 0);
	CHECK_INT(hist_bucket(1), 0);
	CHECK_INT(hist_bucket(2), 1);
	CHECK_INT(hist_bucket(3), 1);
	CHECK_INT(hist_bucket(1023), 9);
	CHECK_INT(hist_bucket(1024), 10);
	CHECK_INT(hist_bucket(UINT64_MAX), HIST_BUCKETS - 1);
}

static void summary_tables_stay_bounded(void)
{
	static struct summary s;
	struct conn c = sample_conn();

	summary_reset(&s);
	for (uint32_t i = 0; i < SUMMARY_PORTS + 50; i++) {
		c.dport = (uint16_t)(1000 + i);
		c.daddr[3] = (uint8_t)i;
		c.daddr[2] = (uint8_t)(i >> 8);
		add_summary_conn(&s, &c);
	}
	CHECK_INT(s.nports, SUMMARY_PORTS);
	CHECK_INT(s.other_ports, 50);
	CHECK_INT(s.connections, SUMMARY_PORTS + 50);
	CHECK_INT(s.hist[SH_HANDSHAKE_CLIENT].count, SUMMARY_PORTS + 50);
	CHECK_INT(s.hist[SH_FIN_WAIT2].count, SUMMARY_PORTS + 50);
}

int main(void)
{
	RUN(json_escapes_quotes_backslashes_and_controls);
	RUN(json_keeps_valid_utf8_and_replaces_invalid_bytes);
	RUN(json_str_stops_at_maxlen_without_nul);
	RUN(numbers_format_like_printf);
	RUN(decimal_edges_match_printf);
	RUN(addresses_format_like_inet_ntop);
	RUN(conn_record_carries_every_documented_field);
	RUN(unknown_owner_and_durations_are_null);
	RUN(text_conn_line_is_readable);
	RUN(buffer_flushes_whole_records_when_full);
	RUN(writes_after_a_write_error_stay_in_bounds);
	RUN(a_reader_that_left_is_epipe);
	RUN(a_non_blocking_stdout_is_waited_on);
	RUN(log2_buckets_like_bcc);
	RUN(summary_tables_stay_bounded);
	return check_summary("unit/output");
}
