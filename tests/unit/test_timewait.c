/* The TIME_WAIT follower's netlink plumbing that needs no kernel: matching replies to requests. */
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>
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

int main(void)
{
	RUN(stale_replies_are_skipped_by_sequence_number);
	return check_summary("unit/timewait");
}
