/* Reset lifecycles waiting for their RST record, and the join of both ends on one host. */
#include <errno.h>
#include <netinet/in.h>
#include "check.h"
#include "rstlog.h"

#define MS 1000000ull

struct out {
	int n;
	struct conn last;
};

static void record_out(void *ctx, const struct conn *c)
{
	struct out *o = ctx;

	o->n++;
	o->last = *c;
}

/* One end of 127.0.0.1:local <-> 127.0.0.1:remote, reset, closed at ts_ns. */
static struct conn reset_conn(uint64_t sk, uint16_t local, uint16_t remote, uint8_t sk_err,
			      uint64_t ts_ns)
{
	struct conn c = { .key = sk, .family = AF_INET, .sport = local, .dport = remote,
			  .sk_err = sk_err, .state_ns = ts_ns, .first_ns = ts_ns - 100,
			  .flags = CONN_CLOSED, .nstates = 2 };

	c.saddr[0] = c.daddr[0] = 127;
	c.saddr[3] = c.daddr[3] = 1;
	c.states[0] = SF_TCP_SYN_SENT;
	c.states[1] = SF_TCP_ESTABLISHED;
	return c;
}

static struct synfin_event rst_from(uint64_t sk, uint16_t local, uint16_t remote, uint32_t reason,
				    uint64_t ts_ns)
{
	struct synfin_event e = { .type = SF_EV_RST, .skaddr = sk, .family = AF_INET,
				  .sport = local, .dport = remote, .ts_ns = ts_ns,
				  .rst_reason = reason };

	e.saddr[0] = e.daddr[0] = 127;
	e.saddr[3] = e.daddr[3] = 1;
	return e;
}

/* The RST traced after both ends closed (loopback): both get its reason, both go out. */
static void one_rst_gives_both_ends_their_reason(void)
{
	static struct rst_await w;
	struct out o = { 0 };
	struct conn sender = reset_conn(0xa1, 5000, 80, 0, 10 * MS);
	struct conn receiver = reset_conn(0xb2, 80, 5000, ECONNRESET, 10 * MS + 50);
	struct synfin_event rst = rst_from(0xa1, 5000, 80, 7, 10 * MS + 90);

	rst_await_add(&w, &sender, 10 * MS, record_out, &o);
	rst_await_add(&w, &receiver, 10 * MS, record_out, &o);
	CHECK(rst_await_take(&w, &rst, record_out, &o));
	CHECK_INT(o.n, 2);
	CHECK_INT(o.last.rst_reason, 8); /* 1 + the kernel's value */
	CHECK(!(o.last.flags & CONN_RESET_SENT)); /* the receiver did not send it */
	rst_await_flush(&w, UINT64_MAX, record_out, &o);
	CHECK_INT(o.n, 2); /* not twice */
}

/* No record comes (the peer is elsewhere): out as it is once the wait is over, in order. */
static void unanswered_wait_ends_on_time(void)
{
	static struct rst_await w;
	struct out o = { 0 };
	struct conn a = reset_conn(0xa1, 5001, 80, ECONNRESET, 10 * MS);
	struct conn b = reset_conn(0xa2, 5002, 80, ECONNRESET, 20 * MS);

	rst_await_add(&w, &a, 10 * MS, record_out, &o);
	rst_await_add(&w, &b, 20 * MS, record_out, &o);
	rst_await_flush(&w, 10 * MS + RST_WAIT_NS - 1, record_out, &o);
	CHECK_INT(o.n, 0);
	rst_await_flush(&w, 10 * MS + RST_WAIT_NS, record_out, &o);
	CHECK_INT(o.n, 1);
	CHECK_INT(o.last.sport, 5001);
	CHECK_INT(o.last.rst_reason, 0);
	rst_await_flush(&w, UINT64_MAX, record_out, &o);
	CHECK_INT(o.n, 2);
}

/* A full queue lets its oldest go at once: nothing is dropped. */
static void full_queue_lets_the_oldest_go(void)
{
	static struct rst_await w;
	struct out o = { 0 };

	for (uint32_t i = 0; i <= RST_AWAIT_LEN; i++) {
		struct conn c = reset_conn(0x1000 + i, (uint16_t)(1000 + i), 80, ECONNRESET, 10 * MS);

		rst_await_add(&w, &c, 10 * MS, record_out, &o);
	}
	CHECK_INT(o.n, 1);
	CHECK_INT(o.last.sport, 1000);
	rst_await_flush(&w, UINT64_MAX, record_out, &o);
	CHECK_INT(o.n, RST_AWAIT_LEN + 1);
}

/* A RST sent before the receiver's CLOSE was read: the log answers for it. */
static void log_finds_the_rst_sent_to_us(void)
{
	static struct rst_log l;
	struct conn receiver = reset_conn(0xb2, 80, 5003, ECONNRESET, 10 * MS);
	struct synfin_event other = rst_from(0xa9, 5004, 80, 3, 9 * MS);
	struct synfin_event ours = rst_from(0xa1, 5003, 80, 9, 9 * MS);
	struct synfin_event stale = rst_from(0xa1, 5003, 80, 2, 10 * MS - RST_LOG_WINDOW_NS - 1);

	rst_log_add(&l, &stale);
	rst_log_add(&l, &other);
	CHECK(rst_log_sent_to(&l, &receiver) == NULL);
	rst_log_add(&l, &ours);
	CHECK(rst_log_sent_to(&l, &receiver) != NULL);
	CHECK_INT(rst_log_sent_to(&l, &receiver)->rst_reason, 9);
}

int main(void)
{
	RUN(one_rst_gives_both_ends_their_reason);
	RUN(unanswered_wait_ends_on_time);
	RUN(full_queue_lets_the_oldest_go);
	RUN(log_finds_the_rst_sent_to_us);
	return check_summary("unit/rstlog");
}
