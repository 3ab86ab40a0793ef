/*
 * The TIME_WAIT follower's parts that need no kernel: matching netlink replies
 * to requests, and how the timer path reads a sequence of timer records (the
 * kernel's side of that is tested against the real kernel in the suite).
 */
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>
#include <netinet/in.h>
#include "check.h"
#include "timewait.h"

/* One datagram holding one netlink header with this sequence number. */
static void send_reply(int fd, uint32_t seq, uint16_t type)
{
	struct nlmsghdr nh = { .nlmsg_len = sizeof(nh), .nlmsg_type = type, .nlmsg_seq = seq };

	CHECK(send(fd, &nh, sizeof(nh), 0) == (ssize_t)sizeof(nh));
}

/*
 * A dump given up half-way leaves its remaining datagrams queued; the next
 * request's answer comes after them. Taking the first datagram would read
 * the old dump's sockets as the new lookup's answer.
 */
static void stale_replies_are_skipped_by_sequence_number(void)
{
	struct nlmsghdr got;
	int sv[2];
	ssize_t n;

	CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
	send_reply(sv[1], 5, 20); /* the rest of an aborted dump, request 5 */
	send_reply(sv[1], 5, 20);
	send_reply(sv[1], 5, NLMSG_DONE);
	send_reply(sv[1], 6, NLMSG_ERROR); /* the answer to request 6 */
	n = tw_recv_reply(sv[0], 6, &got, sizeof(got));
	CHECK_INT(n, sizeof(got));
	CHECK_INT(got.nlmsg_seq, 6);
	CHECK_INT(got.nlmsg_type, NLMSG_ERROR);
	close(sv[0]);
	close(sv[1]);
}

#define MS 1000000ull

struct ends {
	int n;
	enum tw_end how;
	uint64_t at_ns, entered_ns;
	uint8_t substate;
};

static void record_end(void *ctx, const struct tw_entry *e, enum tw_end how, uint64_t now_ns)
{
	struct ends *got = ctx;

	got->n++;
	got->how = how;
	got->at_ns = now_ns;
	got->entered_ns = e->entered_ns;
	got->substate = e->substate;
}

/* A timer record of mini-socket tw for 127.0.0.1:port -> 127.0.0.1:80 in namespace 7. */
static struct synfin_event tw_event(uint8_t kind, uint64_t tw, uint16_t port, uint64_t ts_ns)
{
	struct synfin_event ev = { .ts_ns = ts_ns, .skaddr = tw, .netns = 7, .sport = port,
				   .dport = 80, .type = SF_EV_TW, .family = AF_INET,
				   .oldstate = SF_TCP_TIME_WAIT, .newstate = SF_TCP_TIME_WAIT,
				   .tw_kind = kind };

	ev.saddr[0] = ev.daddr[0] = 127;
	ev.saddr[3] = ev.daddr[3] = 1;
	return ev;
}

/* The connection that closed into it. */
static struct conn closed_conn(uint16_t port, uint64_t ts_ns)
{
	struct synfin_event ev = tw_event(0, 0, port, ts_ns);
	struct conn c = { .state_ns = ts_ns, .netns = 7, .sport = port, .dport = 80,
			  .family = AF_INET, .pid = 42,
			  .close_flags = SF_CLOSE_TIME_WAIT | SF_CLOSE_TW_MADE };

	memcpy(c.saddr, ev.saddr, 16);
	memcpy(c.daddr, ev.daddr, 16);
	return c;
}

/* Expiries come in batches (struct synfin_tw_expiries), stamped when the batch went out. */
static void feed_expiries(struct tw_table *t, struct ends *got, const uint64_t *tw, uint8_t n,
			  uint64_t first_ns)
{
	struct synfin_tw_expiries batch = { .ts_ns = first_ns + 5000, .type = SF_EV_TW,
					    .count = n, .tw_kind = SF_TW_EXPIRED,
					    .first_ns = first_ns };
	struct synfin_event ev;

	memcpy(batch.tw, tw, n * sizeof(*tw));
	memcpy(&ev, &batch, sizeof(ev));
	tw_timer_event(t, &ev, record_end, got);
}

static void feed(struct tw_table *t, struct ends *got, uint8_t kind, uint64_t tw, uint16_t port,
		 uint64_t ts_ns)
{
	struct synfin_event ev = tw_event(kind, tw, port, ts_ns);

	if (kind == SF_TW_EXPIRED)
		feed_expiries(t, got, &tw, 1, ts_ns);
	else
		tw_timer_event(t, &ev, record_end, got);
}

/* Armed, then the close: followed; expiry ends it then, not when it was read. */
static void timer_expiry_is_the_natural_end_at_its_moment(void)
{
	struct tw_table *t = tw_new(64, TW_VIA_TIMERS);
	struct ends got = { 0 };
	struct conn c = closed_conn(1000, 10 * MS);

	feed(t, &got, SF_TW_ARMED, 0xa000, 1000, 10 * MS - 1000);
	CHECK_INT(tw_add(t, &c, record_end, &got), TW_FOLLOWED);
	CHECK_INT(tw_held(t), 1);
	feed(t, &got, SF_TW_EXPIRED, 0xa000, 1000, 60010 * MS);
	CHECK_INT(got.n, 1);
	CHECK_INT(got.how, TW_END_EXPIRED);
	CHECK_INT(got.at_ns - got.entered_ns, 60000 * MS);
	CHECK_INT(tw_held(t), 0);
	tw_free(t);
}

/* One batch of expiries ends each followed mini-socket it names, at the first expiry's moment. */
static void a_batch_of_expiries_ends_each_it_names(void)
{
	struct tw_table *t = tw_new(64, TW_VIA_TIMERS);
	struct ends got = { 0 };
	const uint64_t expired[] = { 0xa00b, 0xdead, 0xa00a }; /* 0xdead: not followed */

	for (uint16_t p = 1010; p < 1013; p++) {
		struct conn c = closed_conn(p, 10 * MS);

		feed(t, &got, SF_TW_ARMED, 0xa000u + p - 1000u, p, 10 * MS - 1000);
		CHECK_INT(tw_add(t, &c, record_end, &got), TW_FOLLOWED);
	}
	feed_expiries(t, &got, expired, 3, 62000 * MS);
	CHECK_INT(got.n, 2);
	CHECK_INT(got.how, TW_END_EXPIRED);
	CHECK_INT(got.at_ns, 62000 * MS);
	CHECK_INT(tw_held(t), 1); /* 0xa00c: its timer has not expired */
	feed_expiries(t, &got, expired, 3, 62100 * MS); /* the same again: nothing left to end */
	CHECK_INT(got.n, 2);
	tw_free(t);
}

/*
 * A mini-socket's address taken by a new one while the old one's end was
 * lost: the old one is called unseen, and the next expiry is the new one's.
 */
static void an_address_reused_ends_the_stale_entry_unseen(void)
{
	struct tw_table *t = tw_new(64, TW_VIA_TIMERS);
	struct ends got = { 0 };
	struct conn old = closed_conn(1020, 10 * MS), fresh = closed_conn(1021, 70000 * MS);
	const uint64_t addr = 0xa020;

	feed(t, &got, SF_TW_ARMED, addr, 1020, 10 * MS - 1000);
	tw_add(t, &old, record_end, &got);
	feed(t, &got, SF_TW_ARMED, addr, 1021, 70000 * MS - 1000);
	CHECK_INT(got.n, 1);
	CHECK_INT(got.how, TW_END_UNSEEN);
	CHECK_INT(tw_add(t, &fresh, record_end, &got), TW_FOLLOWED);
	feed_expiries(t, &got, &addr, 1, 130000 * MS);
	CHECK_INT(got.n, 2);
	CHECK_INT(got.how, TW_END_EXPIRED);
	CHECK_INT(got.entered_ns, 70000 * MS);
	CHECK_INT(tw_held(t), 0);
	tw_free(t);
}

/* Freed at a cancel (tcp_tw_reuse) and its address taken before the cancel settled: early. */
static void an_address_reused_after_a_cancel_ends_it_early(void)
{
	struct tw_table *t = tw_new(64, TW_VIA_TIMERS);
	struct ends got = { 0 };
	struct conn old = closed_conn(1030, 10 * MS);
	const uint64_t addr = 0xa030;

	feed(t, &got, SF_TW_ARMED, addr, 1030, 10 * MS - 1000);
	tw_add(t, &old, record_end, &got);
	feed(t, &got, SF_TW_CANCELED, addr, 1030, 1010 * MS);
	feed(t, &got, SF_TW_ARMED, addr, 1031, 1012 * MS);
	CHECK_INT(got.n, 1);
	CHECK_INT(got.how, TW_END_EARLY);
	CHECK_INT(got.at_ns, 1010 * MS);
	tw_poll(t, 1100 * MS, record_end, &got);
	CHECK_INT(got.n, 1); /* ended once */
	tw_free(t);
}

/* The kernel armed no mini-socket for the close (the BPF program's flag): skipped. */
static void close_without_arm_is_skipped_by_the_kernel(void)
{
	struct tw_table *t = tw_new(64, TW_VIA_TIMERS);
	struct ends got = { 0 };
	struct conn c = closed_conn(1001, 10 * MS);

	c.close_flags &= (uint8_t)~SF_CLOSE_TW_MADE;
	CHECK_INT(tw_add(t, &c, record_end, &got), TW_SKIPPED);
	CHECK_INT(tw_skipped(t), 1);
	CHECK_INT(tw_held(t), 0);
	tw_free(t);
}

/* A cancel is an end once no re-arm follows; a cancel and an arm is a re-arm (a FIN). */
static void cancel_ends_early_unless_rearmed(void)
{
	struct tw_table *t = tw_new(64, TW_VIA_TIMERS);
	struct ends got = { 0 };
	struct conn a = closed_conn(1002, 10 * MS), b = closed_conn(1003, 10 * MS);

	feed(t, &got, SF_TW_ARMED, 0xa002, 1002, 10 * MS);
	feed(t, &got, SF_TW_ARMED, 0xa003, 1003, 10 * MS);
	tw_add(t, &a, record_end, &got);
	tw_add(t, &b, record_end, &got);
	feed(t, &got, SF_TW_CANCELED, 0xa002, 1002, 500 * MS);
	feed(t, &got, SF_TW_CANCELED, 0xa003, 1003, 500 * MS);
	feed(t, &got, SF_TW_ARMED, 0xa003, 1003, 500 * MS + 3000);
	tw_poll(t, 505 * MS, record_end, &got);
	CHECK_INT(got.n, 0); /* too soon to tell */
	tw_poll(t, 600 * MS, record_end, &got);
	CHECK_INT(got.n, 1);
	CHECK_INT(got.how, TW_END_EARLY);
	CHECK_INT(got.at_ns, 500 * MS); /* when it was cancelled */
	CHECK_INT(tw_held(t), 1);       /* the re-armed one goes on */
	tw_free(t);
}

/* The tuple's next mini-socket: its previous one ended (reused) even if its cancel was not seen. */
static void new_mini_socket_on_the_tuple_ends_the_old(void)
{
	struct tw_table *t = tw_new(64, TW_VIA_TIMERS);
	struct ends got = { 0 };
	struct conn c1 = closed_conn(1004, 10 * MS), c2 = closed_conn(1004, 900 * MS);

	feed(t, &got, SF_TW_ARMED, 0xa004, 1004, 10 * MS);
	tw_add(t, &c1, record_end, &got);
	feed(t, &got, SF_TW_ARMED, 0xb004, 1004, 900 * MS);
	CHECK_INT(got.n, 1);
	CHECK_INT(got.how, TW_END_EARLY);
	CHECK_INT(tw_add(t, &c2, record_end, &got), TW_FOLLOWED);
	CHECK_INT(tw_held(t), 1);
	tw_free(t);
}

/* Our table full: arms refused are counted, and the closes not called skipped. */
static void full_table_counts_instead_of_guessing(void)
{
	struct tw_table *t = tw_new(2, TW_VIA_TIMERS);
	struct ends got = { 0 };

	for (uint16_t p = 2000; p < 2004; p++) {
		struct conn c = closed_conn(p, 10 * MS + p);

		feed(t, &got, SF_TW_ARMED, 0xc000 + p, p, 10 * MS + p - 1);
		tw_add(t, &c, record_end, &got);
	}
	CHECK_INT(tw_held(t), 2);
	CHECK_INT(tw_skipped(t), 0);
	CHECK_INT(tw_untracked(t), 2);
	tw_free(t);
}

/* The arm record after the close (the task moved CPUs in between): followed all the same. */
static void arm_after_its_close_is_followed(void)
{
	struct tw_table *t = tw_new(64, TW_VIA_TIMERS);
	struct ends got = { 0 };
	struct conn c = closed_conn(1006, 10 * MS);

	CHECK_INT(tw_add(t, &c, record_end, &got), TW_FOLLOWED);
	feed(t, &got, SF_TW_ARMED, 0xa006, 1006, 10 * MS - 500);
	CHECK_INT(tw_held(t), 1);
	feed(t, &got, SF_TW_EXPIRED, 0xa006, 1006, 60010 * MS);
	CHECK_INT(got.n, 1);
	CHECK_INT(got.how, TW_END_EXPIRED);
	tw_free(t);
}

/* An end whose record was lost: reported unseen once it is long overdue, not held for ever. */
static void end_never_seen_is_reported_unseen_when_overdue(void)
{
	struct tw_table *t = tw_new(64, TW_VIA_TIMERS);
	struct ends got = { 0 };
	struct conn c = closed_conn(1005, 10 * MS);

	feed(t, &got, SF_TW_ARMED, 0xa005, 1005, 10 * MS);
	tw_add(t, &c, record_end, &got);
	tw_poll(t, 120010 * MS, record_end, &got);
	CHECK_INT(got.n, 0); /* a FIN_WAIT2 substate may still be running */
	tw_poll(t, 190010 * MS, record_end, &got);
	CHECK_INT(got.n, 1);
	CHECK_INT(got.how, TW_END_UNSEEN);
	CHECK_INT(tw_held(t), 0);
	tw_free(t);
}

/* What tw_hold_conn() gave back: the lifecycle as it was released. */
struct released {
	int n;
	struct conn c;
	int ends_before; /* ends reported before this release (must be 0: lifecycle first) */
	struct ends *ends;
};

static void record_release(void *ctx, const struct conn *c)
{
	struct released *r = ctx;

	r->n++;
	r->c = *c;
	r->ends_before = r->ends ? r->ends->n : 0;
}

/* A close() before the peer's FIN: handed to a mini-socket in the FIN_WAIT2 substate. */
static struct conn fin_wait2_handoff(uint16_t port, uint64_t ts_ns)
{
	struct conn c = closed_conn(port, ts_ns);

	c.close_flags = SF_CLOSE_TW_FIN_WAIT2 | SF_CLOSE_TW_MADE;
	c.nstates = 4;
	c.states[0] = SF_TCP_SYN_SENT, c.states[1] = SF_TCP_ESTABLISHED;
	c.states[2] = SF_TCP_FIN_WAIT1, c.states[3] = SF_TCP_FIN_WAIT2;
	c.state_us[0] = 50, c.state_us[1] = 100, c.state_us[2] = 40, c.state_us[3] = 10;
	c.first_ns = ts_ns - 200 * 1000;
	return c;
}

static void feed_fin_wait2_arm(struct tw_table *t, struct ends *got, uint64_t tw, uint16_t port,
			       uint64_t ts_ns)
{
	struct synfin_event ev = tw_event(SF_TW_ARMED, tw, port, ts_ns);

	ev.newstate = SF_TCP_FIN_WAIT2;
	tw_timer_event(t, &ev, record_end, got);
}

/* The peer's FIN 300 ms on: the held lifecycle goes out then, in TIME_WAIT from that FIN. */
static void peer_fin_turns_a_held_fin_wait2_into_time_wait(void)
{
	struct tw_table *t = tw_new(64, TW_VIA_TIMERS);
	struct ends got = { 0 };
	struct released r = { .ends = &got };
	struct conn c = fin_wait2_handoff(1100, 10 * MS);

	feed_fin_wait2_arm(t, &got, 0xa100, 1100, 10 * MS - 1000);
	CHECK_INT(tw_add(t, &c, record_end, &got), TW_FOLLOWED);
	CHECK(tw_hold_conn(t, &c, 1010 * MS, record_release, &r));
	tw_poll(t, 200 * MS, record_end, &got);
	CHECK_INT(r.n, 0); /* still waiting for the FIN */
	feed(t, &got, SF_TW_FIN_IN, 0, 1100, 310 * MS);
	CHECK_INT(r.n, 1);
	CHECK_INT(r.c.nstates, 5);
	CHECK_INT(r.c.states[4], SF_TCP_TIME_WAIT);
	CHECK_INT(r.c.state_us[3], 10 + 300 * 1000); /* FIN_WAIT2 ran to the FIN */
	CHECK(r.c.close_flags & SF_CLOSE_TIME_WAIT);
	CHECK(!(r.c.close_flags & SF_CLOSE_TW_FIN_WAIT2));
	CHECK_INT(conn_duration_us(&r.c), 200 + 300 * 1000);
	feed(t, &got, SF_TW_EXPIRED, 0xa100, 1100, 60310 * MS);
	CHECK_INT(got.n, 1);
	CHECK_INT(got.at_ns - got.entered_ns, 60000 * MS); /* TIME_WAIT proper, from the FIN */
	tw_free(t);
}

/* No FIN within the hold: the lifecycle goes as it was, before the mini-socket's own end. */
static void held_lifecycle_goes_as_it_is_when_no_fin_comes(void)
{
	struct tw_table *t = tw_new(64, TW_VIA_TIMERS);
	struct ends got = { 0 };
	struct released r = { .ends = &got };
	struct conn a = fin_wait2_handoff(1101, 10 * MS), b = fin_wait2_handoff(1102, 10 * MS);

	feed_fin_wait2_arm(t, &got, 0xa101, 1101, 10 * MS);
	feed_fin_wait2_arm(t, &got, 0xa102, 1102, 10 * MS);
	tw_add(t, &a, record_end, &got);
	tw_add(t, &b, record_end, &got);
	CHECK(tw_hold_conn(t, &a, 1010 * MS, record_release, &r));
	CHECK(tw_hold_conn(t, &b, 1010 * MS, record_release, &r));
	tw_poll(t, 1020 * MS, record_end, &got);
	CHECK_INT(r.n, 2);
	CHECK_INT(r.c.nstates, 4);
	CHECK(r.c.close_flags & SF_CLOSE_TW_FIN_WAIT2);
	tw_free(t);

	t = tw_new(64, TW_VIA_TIMERS);
	memset(&got, 0, sizeof(got));
	r = (struct released){ .ends = &got };
	feed_fin_wait2_arm(t, &got, 0xa103, 1103, 10 * MS);
	a = fin_wait2_handoff(1103, 10 * MS);
	tw_add(t, &a, record_end, &got);
	CHECK(tw_hold_conn(t, &a, 1010 * MS, record_release, &r));
	feed(t, &got, SF_TW_CANCELED, 0xa103, 1103, 50 * MS); /* a RST, say */
	tw_poll(t, 100 * MS, record_end, &got);
	CHECK_INT(r.n, 1);
	CHECK_INT(r.ends_before, 0); /* the lifecycle before its end */
	CHECK_INT(got.n, 1);
	tw_free(t);
}

/* A FIN for a tuple nobody follows, or at a mini-socket already in TIME_WAIT: nothing. */
static void fin_for_no_fin_wait2_changes_nothing(void)
{
	struct tw_table *t = tw_new(64, TW_VIA_TIMERS);
	struct ends got = { 0 };
	struct released r = { 0 };
	struct conn c = closed_conn(1104, 10 * MS);

	feed(t, &got, SF_TW_ARMED, 0xa104, 1104, 10 * MS);
	tw_add(t, &c, record_end, &got);
	feed(t, &got, SF_TW_FIN_IN, 0, 1104, 20 * MS); /* a retransmitted FIN in TIME_WAIT */
	feed(t, &got, SF_TW_FIN_IN, 0, 4242, 20 * MS);
	feed(t, &got, SF_TW_EXPIRED, 0xa104, 1104, 60010 * MS);
	CHECK_INT(got.at_ns - got.entered_ns, 60000 * MS);
	CHECK(!tw_hold_conn(t, &c, 0, record_release, &r)); /* no longer followed */
	tw_free(t);
}

/* One record for a purged namespace ends every mini-socket of it, and only those. */
static void a_purged_namespace_ends_all_its_followed_sockets(void)
{
	struct tw_table *t = tw_new(64, TW_VIA_TIMERS);
	struct ends got = { 0 };
	struct synfin_event gone = { .ts_ns = 700 * MS, .type = SF_EV_TW, .netns = 7,
				     .tw_kind = SF_TW_NETNS_GONE };
	struct conn other = closed_conn(1102, 10 * MS);
	struct synfin_event other_arm = tw_event(SF_TW_ARMED, 0xa102, 1102, 10 * MS);

	for (uint16_t port = 1100; port < 1102; port++) {
		struct conn c = closed_conn(port, 10 * MS);

		feed(t, &got, SF_TW_ARMED, 0xa000 + port, port, 10 * MS);
		tw_add(t, &c, record_end, &got);
	}
	other.netns = other_arm.netns = 8;
	tw_timer_event(t, &other_arm, record_end, &got);
	tw_add(t, &other, record_end, &got);
	CHECK_INT(tw_held(t), 3);
	tw_timer_event(t, &gone, record_end, &got);
	CHECK_INT(got.n, 2);
	CHECK_INT(got.how, TW_END_NETNS_GONE);
	CHECK_INT(got.at_ns, 700 * MS);
	CHECK_INT(tw_held(t), 1); /* namespace 8's goes on */
	tw_free(t);
}

/*
 * A mini-socket armed with no CLOSE of its connection (the kernel ran no
 * program for it): claimed, as it was armed, once a CLOSE is long overdue,
 * by a connection whose last transition came before it; then followed.
 */
static void an_arm_whose_close_never_came_is_claimed_as_armed(void)
{
	struct tw_table *t = tw_new(64, TW_VIA_TIMERS);
	struct ends got = { 0 };
	struct released r = { .ends = &got };
	struct conn c = fin_wait2_handoff(1200, 5 * MS), later = c;
	struct mini_socket_arm arm = { 0 };

	feed_fin_wait2_arm(t, &got, 0xa200, 1200, 10 * MS);
	feed(t, &got, SF_TW_FIN_IN, 0, 1200, 310 * MS);
	CHECK(tw_unclaimed(t));
	CHECK(!tw_arm_of(t, &c, 500 * MS, &arm)); /* its CLOSE may still be on its way */
	later.state_ns = 20 * MS;
	CHECK(!tw_arm_of(t, &later, 1100 * MS, &arm)); /* armed before that one's last change */
	CHECK(tw_arm_of(t, &c, 1100 * MS, &arm));
	CHECK_INT(arm.ts_ns, 10 * MS);
	CHECK_INT(arm.substate, SF_TCP_FIN_WAIT2); /* as armed, though the FIN has come since */
	c.state_ns = arm.ts_ns;
	CHECK_INT(tw_add(t, &c, record_end, &got), TW_FOLLOWED);
	CHECK(!tw_unclaimed(t));
	CHECK(tw_hold_conn(t, &c, 2000 * MS, record_release, &r));
	CHECK_INT(r.n, 1); /* its FIN had come: out at once, in TIME_WAIT from that FIN */
	CHECK_INT(r.c.states[r.c.nstates - 1], SF_TCP_TIME_WAIT);
	CHECK_INT(r.c.state_ns, 310 * MS);
	tw_free(t);
}

int main(void)
{
	RUN(a_purged_namespace_ends_all_its_followed_sockets);
	RUN(stale_replies_are_skipped_by_sequence_number);
	RUN(timer_expiry_is_the_natural_end_at_its_moment);
	RUN(a_batch_of_expiries_ends_each_it_names);
	RUN(an_address_reused_ends_the_stale_entry_unseen);
	RUN(an_address_reused_after_a_cancel_ends_it_early);
	RUN(close_without_arm_is_skipped_by_the_kernel);
	RUN(cancel_ends_early_unless_rearmed);
	RUN(new_mini_socket_on_the_tuple_ends_the_old);
	RUN(full_table_counts_instead_of_guessing);
	RUN(end_never_seen_is_reported_unseen_when_overdue);
	RUN(arm_after_its_close_is_followed);
	RUN(peer_fin_turns_a_held_fin_wait2_into_time_wait);
	RUN(held_lifecycle_goes_as_it_is_when_no_fin_comes);
	RUN(fin_for_no_fin_wait2_changes_nothing);
	RUN(an_arm_whose_close_never_came_is_claimed_as_armed);
	return check_summary("unit/timewait");
}
