/* The holders table: what a /proc scan found, searched by tuple and by listening port. */
#include <stdlib.h>
#include <sys/socket.h>
#include "check.h"
#include "holders.h"

#define NETNS 4026531840u

static struct held_socket sock(uint32_t pid, uint8_t state, uint16_t sport, uint16_t dport)
{
	struct held_socket s = { .netns = NETNS, .pid = pid, .sport = sport, .dport = dport,
				 .family = AF_INET, .state = state,
				 .saddr = { 127, 0, 0, 1 }, .daddr = { 127, 0, 0, 1 } };

	snprintf(s.comm, sizeof(s.comm), "p%u", pid);
	return s;
}

static const uint8_t LOOPBACK[16] = { 127, 0, 0, 1 };

/* A server port with its listener and many children, in the order /proc lists them. */
static void fill(struct holders *h, int children)
{
	for (int i = 0; i < children; i++) {
		struct held_socket s = sock(200 + (uint32_t)(i % 2), SF_TCP_ESTABLISHED, 80,
					    (uint16_t)(40000 + (i * 7919) % 20000));

		holders_add(h, &s);
		if (i == children / 2) {
			struct held_socket l = sock(100, SF_TCP_LISTEN, 80, 0);

			holders_add(h, &l);
		}
	}
}

static void lookups_find_the_same_before_and_after_sorting(void)
{
	struct holders h = { 0 };
	const struct held_socket *unsorted, *sorted;

	fill(&h, 1000);
	for (int pass = 0; pass < 2; pass++) {
		const struct held_socket *l = holders_find_listener(&h, NETNS, 80, 0);

		CHECK(l && l->pid == 100);
		CHECK(!holders_find_listener(&h, NETNS, 81, 0));
		CHECK(!holders_find_listener(&h, NETNS, 80, 100)); /* the exited holder left out */
		CHECK(!holders_find_listener(&h, NETNS + 1, 80, 0));
		for (int i = 0; i < 1000; i += 37) {
			uint16_t dport = (uint16_t)(40000 + (i * 7919) % 20000);
			const struct held_socket *c =
				holders_find_conn(&h, NETNS, AF_INET, LOOPBACK, 80, LOOPBACK, dport, 0);

			CHECK(c && c->dport == dport && c->pid == 200u + (uint32_t)(i % 2));
		}
		holders_sort(&h);
	}
	unsorted = holders_find_conn(&h, NETNS, AF_INET, LOOPBACK, 80, LOOPBACK, 39999, 0);
	sorted = holders_find_conn(&h, NETNS, AF_INET6, LOOPBACK, 80, LOOPBACK, 40000, 0);
	CHECK(!unsorted);
	CHECK(!sorted); /* the family is part of the tuple */
	holders_free(&h);
}

int main(void)
{
	RUN(lookups_find_the_same_before_and_after_sorting);
	return check_summary("unit/holders");
}
