#include "options.h"
#include <argp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#define CGROUP2_SUPER_MAGIC 0x63677270
#define NSFS_MAGIC 0x6e736673

const char *argp_program_version = "synfin " SYNFIN_VERSION;

enum {
	OPT_SPORT = 256,
	OPT_DPORT,
	OPT_NETNS,
	OPT_CGROUP,
	OPT_LIFE,
	OPT_RINGBUF,
	OPT_MAX_CONNS,
	OPT_HOOK,
};

static const char doc[] =
	"Trace the life of TCP connections: every state transition and, when a\n"
	"connection ends, one lifecycle record (role, owner, states, handshake\n"
	"latency, lifetime).\n"
	"\n"
	"USAGE: synfin [OPTIONS...]\n"
	"\n"
	"EXAMPLES:\n"
	"  synfin                     # every transition and every finished connection\n"
	"  synfin --life              # one line per finished connection (like tcplife)\n"
	"  synfin -j | jq .           # NDJSON for pipelines and dashboards\n"
	"  synfin -P 443              # connections with port 443 on either side\n"
	"  synfin --dport 5432 -4     # IPv4 connections to remote port 5432\n"
	"  synfin -p 1234             # connections owned by process 1234\n"
	"  synfin --netns /run/netns/blue   # one network namespace (path or inode)\n"
	"  synfin --cgroup /sys/fs/cgroup/system.slice  # a cgroup v2 subtree\n"
	"  synfin -d 10 --life -j     # ten seconds of lifecycle records\n"
	"\n"
	"OPTIONS:";

static const struct argp_option option_table[] = {
	{ "pid", 'p', "PID", 0, "Only sockets owned by this process", 0 },
	{ "port", 'P', "PORT", 0, "Only this port, local or remote", 0 },
	{ "sport", OPT_SPORT, "PORT", 0, "Only this local port", 0 },
	{ "dport", OPT_DPORT, "PORT", 0, "Only this remote port", 0 },
	{ "ipv4", '4', NULL, 0, "Only IPv4", 0 },
	{ "ipv6", '6', NULL, 0, "Only IPv6", 0 },
	{ "netns", OPT_NETNS, "INODE|PATH", 0,
	  "Only this network namespace (inode number, or a path like /proc/PID/ns/net)", 0 },
	{ "cgroup", OPT_CGROUP, "PATH", 0, "Only sockets of this cgroup v2 directory and below", 0 },
	{ "duration", 'd', "SECONDS", 0, "Stop after this many seconds", 0 },
	{ "json", 'j', NULL, 0, "NDJSON output, one object per line", 0 },
	{ "life", OPT_LIFE, NULL, 0, "Only finished connections, one line each", 0 },
	{ "ringbuf-size", OPT_RINGBUF, "KIB", 0, "Ring buffer size in KiB (power of two, default 8192)", 0 },
	{ "max-conns", OPT_MAX_CONNS, "N", 0,
	  "Track at most N sockets at once; the oldest are evicted (default 65536)", 0 },
	{ "hook", OPT_HOOK, "auto|tp_btf|tracepoint", 0,
	  "Tracepoint flavour to attach (default auto: probe for tp_btf)", 0 },
	{ "verbose", 'v', NULL, 0, "Show libbpf's debug output", 0 },
	{},
};

static uint64_t parse_number(struct argp_state *state, const char *what, const char *arg,
			     uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-' || v < min || v > max)
		argp_error(state, "invalid %s '%s': expected a number from %llu to %llu", what, arg,
			   (unsigned long long)min, (unsigned long long)max);
	return v;
}

/* An inode number, or a namespace file such as /proc/PID/ns/net or /run/netns/NAME. */
static uint32_t parse_netns(struct argp_state *state, const char *arg)
{
	struct statfs sfs;
	struct stat st;

	if (arg[0] >= '0' && arg[0] <= '9')
		return (uint32_t)parse_number(state, "netns inode", arg, 1, UINT32_MAX);
	if (stat(arg, &st) || statfs(arg, &sfs))
		argp_error(state, "cannot open netns '%s': %s", arg, strerror(errno));
	if ((unsigned long)sfs.f_type != NSFS_MAGIC)
		argp_error(state, "'%s' is not a namespace file (try /proc/PID/ns/net)", arg);
	return (uint32_t)st.st_ino;
}

/* A cgroup v2 directory's inode number is its cgroup id. */
static uint64_t parse_cgroup(struct argp_state *state, const char *arg)
{
	struct statfs sfs;
	struct stat st;

	if (stat(arg, &st) || statfs(arg, &sfs))
		argp_error(state, "cannot open cgroup '%s': %s", arg, strerror(errno));
	if (sfs.f_type != CGROUP2_SUPER_MAGIC || !S_ISDIR(st.st_mode))
		argp_error(state, "'%s' is not a cgroup v2 directory (e.g. /sys/fs/cgroup/...)", arg);
	return st.st_ino;
}

static enum hook_choice parse_hook(struct argp_state *state, const char *arg)
{
	if (!strcmp(arg, "auto"))
		return HOOK_AUTO;
	if (!strcmp(arg, "tp_btf"))
		return HOOK_TP_BTF;
	if (!strcmp(arg, "tracepoint"))
		return HOOK_TRACEPOINT;
	argp_error(state, "invalid --hook '%s': expected auto, tp_btf or tracepoint", arg);
	return HOOK_AUTO;
}

static uint64_t parse_ringbuf_kib(struct argp_state *state, const char *arg)
{
	uint64_t kib = parse_number(state, "ring buffer size (KiB)", arg, 4, 1 << 20);

	if (kib & (kib - 1))
		argp_error(state, "invalid ring buffer size '%s': must be a power of two", arg);
	return kib << 10;
}

static error_t parse_option(int key, char *arg, struct argp_state *state)
{
	struct options *o = state->input;

	switch (key) {
	case 'p':
		o->pid = (uint32_t)parse_number(state, "pid", arg, 1, INT32_MAX);
		break;
	case 'P':
		o->port = (uint16_t)parse_number(state, "port", arg, 1, 65535);
		break;
	case OPT_SPORT:
		o->sport = (uint16_t)parse_number(state, "local port", arg, 1, 65535);
		break;
	case OPT_DPORT:
		o->dport = (uint16_t)parse_number(state, "remote port", arg, 1, 65535);
		break;
	case '4':
	case '6':
		if (o->family)
			argp_error(state, "-4 and -6 exclude each other");
		o->family = key == '4' ? AF_INET : AF_INET6;
		break;
	case OPT_NETNS:
		o->netns = parse_netns(state, arg);
		break;
	case OPT_CGROUP:
		o->cgroup_path = arg;
		o->cgroup_id = parse_cgroup(state, arg);
		break;
	case 'd':
		o->duration_s = (uint32_t)parse_number(state, "duration", arg, 1, 100000000);
		break;
	case 'j':
		o->json = true;
		break;
	case OPT_LIFE:
		o->life = true;
		break;
	case OPT_RINGBUF:
		o->ringbuf_bytes = parse_ringbuf_kib(state, arg);
		break;
	case OPT_MAX_CONNS:
		o->max_conns = (uint32_t)parse_number(state, "max-conns", arg, 16, 1 << 24);
		break;
	case OPT_HOOK:
		o->hook = parse_hook(state, arg);
		break;
	case 'v':
		o->verbose = true;
		break;
	case ARGP_KEY_ARG:
		argp_error(state, "unexpected argument '%s'", arg);
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

void options_parse(int argc, char **argv, struct options *opts)
{
	static const struct argp argp = { option_table, parse_option, NULL, doc, NULL, NULL, NULL };

	memset(opts, 0, sizeof(*opts));
	opts->ringbuf_bytes = 8u << 20;
	opts->max_conns = 65536;
	argp_err_exit_status = 2;
	argp_parse(&argp, argc, argv, 0, NULL, opts);
}
