/*
 * synstorm: SYNs to 127.0.0.1:PORT as fast as one raw socket sends them, for
 * measuring what a firewall-dropped SYN flood costs a tracer whose program
 * sits on skb:kfree_skb (issue 17). Run it in a namespace whose nftables
 * drops them: each SYN is one kfree_skb(NETFILTER_DROP) and nothing else (no
 * socket, no request sock, no SYN-ACK).
 *
 * Sources vary over 127.1.0.0/16 and ports 1024..65535 (distinct tuples, as
 * a flood has). Stops after --count SYNs or --seconds, whichever is first, and
 * prints one JSON line: {"sent":N,"seconds":S,"syn_per_s":R,"errors":E}; SIGINT
 * or SIGTERM end it early the same way (a flood beside another load ends with it).
 * Traffic never leaves 127.0.0.0/8.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct syn_packet {
	uint8_t ver_ihl, tos;
	uint16_t total_len, id, frag;
	uint8_t ttl, proto;
	uint16_t ip_sum;
	uint32_t saddr, daddr;
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t doff, flags;
	uint16_t win, sum, urg;
} __attribute__((packed));

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static uint32_t add16(uint32_t sum, const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(b[i] << 8 | b[i + 1]);
	return sum;
}

/* The TCP checksum over the pseudo-header (RFC 9293 3.1): the kernel checks it. */
static uint16_t tcp_checksum(const struct syn_packet *p)
{
	uint32_t sum = add16(0, &p->saddr, 8) + 6 + 20;

	return htons(fold(add16(sum, &p->sport, 20)));
}

static void make_syn(struct syn_packet *p, uint64_t i, uint16_t dport)
{
	memset(p, 0, sizeof(*p));
	p->ver_ihl = 0x45;
	p->total_len = htons(sizeof(*p));
	p->id = htons((uint16_t)i);
	p->ttl = 64;
	p->proto = IPPROTO_TCP;
	p->saddr = htonl(0x7f010000u | (uint32_t)((i / 64511) % 65536));
	p->daddr = htonl(INADDR_LOOPBACK);
	p->sport = htons((uint16_t)(1024 + i % 64511));
	p->dport = htons(dport);
	p->seq = htonl((uint32_t)(i * 2654435761u));
	p->doff = 5 << 4;
	p->flags = 0x02; /* SYN */
	p->win = htons(65535);
	p->sum = tcp_checksum(p); /* the IP header's sum is the kernel's (IP_HDRINCL) */
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(void)
{
	fprintf(stderr, "usage: synstorm --port P [--count N] [--seconds S]\n");
	return 2;
}

int main(int argc, char **argv)
{
	unsigned long long count = 100000, sent = 0, errors = 0;
	double seconds = 30, start, elapsed;
	long port = 0;
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct syn_packet p;
	int fd;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--port"))
			port = strtol(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--count"))
			count = strtoull(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--seconds"))
			seconds = strtod(argv[i + 1], NULL);
		else
			return usage();
	}
	if (argc % 2 == 0 || port < 1 || port > 65535 || !count || seconds <= 0)
		return usage();
	fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
	if (fd < 0) {
		fprintf(stderr, "synstorm: raw socket: %s\n", strerror(errno));
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	fprintf(stderr, "synstorm: sending\n"); /* from here a signal ends it with its line */
	start = now_s();
	for (elapsed = 0; sent < count && elapsed < seconds && !stop; sent++) {
		make_syn(&p, sent, (uint16_t)port);
		if (sendto(fd, &p, sizeof(p), 0, (struct sockaddr *)&to, sizeof(to)) < 0)
			errors++;
		if (!(sent & 1023))
			elapsed = now_s() - start;
	}
	elapsed = now_s() - start;
	printf("{\"sent\":%llu,\"seconds\":%.3f,\"syn_per_s\":%.0f,\"errors\":%llu}\n", sent - errors,
	       elapsed, (double)(sent - errors) / elapsed, errors);
	close(fd);
	return 0;
}
