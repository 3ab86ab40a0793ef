/* The listener table's joins: which local listener a client reached, and the namespace's
 * SYN cookie counters read from a /proc/net/netstat text. */
#include <string.h>
#include <sys/socket.h>
#include "check.h"
#include "listeners.h"

#define SEC 1000000000ull

static const uint8_t LOOPBACK[16] = { 127, 0, 0, 1 };
static const uint8_t OTHER[16] = { 10, 0, 0, 2 };

static struct listener_health *add(struct listener_table *t, uint32_t netns, uint16_t port,
				   const uint8_t *addr, uint64_t full_since_ns)
{
	struct listener_health *l = &t->l[t->n++];

	memset(l, 0, sizeof(*l));
	l->netns = netns;
	l->port = port;
	l->family = AF_INET;
	l->queue = 2;
	l->backlog = 1;
	l->full_since_ns = full_since_ns;
	if (addr)
		memcpy(l->addr, addr, 4);
	return l;
}

static void a_full_listener_in_the_clients_namespace_is_named(void)
{
	struct listener_table t = { 0 };
	const struct listener_health *l = add(&t, 1, 80, NULL, 5 * SEC);

	add(&t, 2, 80, NULL, 5 * SEC); /* the same port elsewhere: the client's own wins */
	CHECK(listeners_full_for(&t, 1, AF_INET, LOOPBACK, 80, 5 * SEC) == l);
	CHECK(listeners_full_for(&t, 1, AF_INET, LOOPBACK, 81, 5 * SEC) == NULL);
	/* Full only from 2 s after the client began (a look is a second apart): not all along. */
	CHECK(listeners_full_for(&t, 1, AF_INET, LOOPBACK, 80, 3 * SEC - 1) == NULL);
}

static void another_namespaces_listener_only_when_it_is_the_only_one(void)
{
	struct listener_table t = { 0 };
	const struct listener_health *l = add(&t, 2, 80, OTHER, SEC);

	CHECK(listeners_full_for(&t, 1, AF_INET, OTHER, 80, SEC) == l);
	CHECK(listeners_full_for(&t, 1, AF_INET, LOOPBACK, 80, SEC) == NULL); /* not its address */
	add(&t, 3, 80, NULL, SEC); /* a second candidate: ambiguous, nobody named */
	CHECK(listeners_full_for(&t, 1, AF_INET, OTHER, 80, SEC) == NULL);
}

static void reuseport_twins_all_full_or_none_named(void)
{
	struct listener_table t = { 0 };

	add(&t, 1, 80, NULL, SEC);
	add(&t, 1, 80, NULL, 0); /* its twin has room: the SYN may have gone there */
	CHECK(listeners_full_for(&t, 1, AF_INET, LOOPBACK, 80, SEC) == NULL);
	t.l[1].full_since_ns = SEC;
	CHECK(listeners_full_for(&t, 1, AF_INET, LOOPBACK, 80, SEC) == &t.l[0]);
	t.l[0].gone = t.l[1].gone = 1; /* closed since */
	CHECK(listeners_full_for(&t, 1, AF_INET, LOOPBACK, 80, SEC) == NULL);
}

static void cookie_counters_are_read_from_netstat(void)
{
	const char *text =
		"TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed EmbryonicRsts\n"
		"TcpExt: 17 15 2 0\n"
		"IpExt: InNoRoutes\nIpExt: 0\n";
	uint64_t v[COOKIE_COUNTERS] = { 0 };

	CHECK(netstat_cookies(text, v));
	CHECK(v[COOKIES_SENT] == 17 && v[COOKIES_VALIDATED] == 15 && v[COOKIES_FAILED] == 2);
	CHECK(!netstat_cookies("TcpExt: SyncookiesSent\nTcpExt: 1\n", v)); /* not all there */
	CHECK(!netstat_cookies("IpExt: InNoRoutes\nIpExt: 0\n", v));
	CHECK(!netstat_cookies("TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed\n", v));
}

static void cookies_count_from_the_first_read(void)
{
	struct listener_netns n = { .cookies_known = true,
				    .cookies_first = { 10, 5, 1 }, .cookies = { 14, 9, 1 } };

	CHECK(listener_netns_cookies(&n, COOKIES_SENT) == 4);
	CHECK(listener_netns_cookies(&n, COOKIES_VALIDATED) == 4);
	CHECK(listener_netns_cookies(&n, COOKIES_FAILED) == 0);
}

int main(void)
{
	RUN(a_full_listener_in_the_clients_namespace_is_named);
	RUN(another_namespaces_listener_only_when_it_is_the_only_one);
	RUN(reuseport_twins_all_full_or_none_named);
	RUN(cookie_counters_are_read_from_netstat);
	RUN(cookies_count_from_the_first_read);
	return check_summary("unit/listeners");
}
