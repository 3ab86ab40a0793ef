#include "options.h"
#include "metrics.h"
#include <argp.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#define CGROUP2_SUPER_MAGIC 0x63677270
#define NSFS_MAGIC 0x6e736673
/*
 * Upper bounds, each with what it costs. A tracked connection takes ~230 bytes,
 * all in user space: the kernel keeps nothing per socket (measured: --max-conns
 * 1048576 -> 232 MiB resident + 2 MiB of maps, either hook).
 */
#define MAX_CONNS_LIMIT (1u << 20)
#define RINGBUF_KIB_LIMIT (256u << 10)

/* Set once a message has been printed, so ARGP_KEY_ERROR does not add a second. */
static bool error_reported;
/* Set when help or the version was printed. */
static bool info_printed;

/* Our own one-line errors: argp's would add a second "Try --help" line. */
__attribute__((format(printf, 1, 2))) static error_t fail(const char *fmt, ...)
{
	va_list ap;

	if (error_reported)
		return EINVAL;
	fputs("synfin: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see synfin --help)\n", stderr);
	error_reported = true;
	return EINVAL;
}

enum {
	OPT_SPORT = 256,
	OPT_DPORT,
	OPT_NETNS,
	OPT_CGROUP,
	OPT_LIFE,
	OPT_RINGBUF,
	OPT_MAX_CONNS,
	OPT_HOOK,
	OPT_USAGE,
	OPT_STUCK,
	OPT_ALL_SEGMENTS,
	OPT_LADDER,
	OPT_RELATIVE,
	OPT_SUMMARY,
	OPT_INTERVAL,
	OPT_METRICS,
};

static const char doc[] =
	"Trace the life of TCP connections: every state transition and, when a\n"
	"connection ends, one lifecycle record (role, owner, states, handshake\n"
	"latency, lifetime).\n"
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
	"  synfin -i eth0 --ladder    # each connection as a sequence diagram, from the wire\n"
	"  synfin --summary --interval 10   # histograms every ten seconds, like tcptop\n"
	"\n"
	"OPTIONS:"
	"\v"
	"Run as root, or with CAP_BPF and CAP_PERFMON; -i needs CAP_NET_ADMIN too, and\n"
	"following TIME_WAIT in other network namespaces CAP_SYS_ADMIN. The kernel\n"
	"needs BTF.\n"
	"Signals: SIGINT, SIGTERM, SIGHUP and every other signal that would end the\n"
	"process end tracing cleanly (drain, flush, exit 0); SIGUSR1 writes out what\n"
	"is buffered (with --summary, the summary so far).\n"
	"Exit status: 0 when tracing ended normally (a signal, --duration, or the\n"
	"reader of stdout went away), 1 when tracing could not start or writing the\n"
	"output failed, 2 for a bad command line.";

static const struct argp_option option_table[] = {
	{ "pid", 'p', "PID", 0, "Only sockets this process holds (as ss -p names it)", 0 },
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
	{ "iface", 'i', "IFACE", 0,
	  "Also watch TCP segments on this interface (XDP in, TC out; repeatable; lo works)", 0 },
	{ "all-segments", OPT_ALL_SEGMENTS, NULL, 0,
	  "With -i: every TCP segment, not only those that open and close connections", 0 },
	{ "ladder", OPT_LADDER, NULL, 0,
	  "With -i: draw each finished connection as a sequence diagram", 0 },
	{ "relative", OPT_RELATIVE, NULL, 0, "With --ladder: seq/ack relative to each ISN", 0 },
	{ "summary", OPT_SUMMARY, NULL, 0,
	  "Histograms and counts (handshake, lifetime, teardown times; outcomes, closers, ports, "
	  "talkers) instead of a line per event", 0 },
	{ "interval", OPT_INTERVAL, "SECONDS", 0, "With --summary: print one every SECONDS", 0 },
	{ "metrics", OPT_METRICS, "[ADDR:]PORT", 0,
	  "Serve Prometheus metrics on http://ADDR:PORT/metrics (default address 127.0.0.1)", 0 },
	{ "stuck", OPT_STUCK, "SECONDS", 0,
	  "Report connections in CLOSE_WAIT, FIN_WAIT2 or SYN_SENT, and listeners with a full accept queue, for longer than this", 0 },
	{ "ringbuf-size", OPT_RINGBUF, "KIB", 0,
	  "Size of the per-CPU rings in KiB, all CPUs together (power of two, 4 to 262144; "
	  "default 8192; each CPU's ring holds 16 to 32768 records of 120 bytes)", 0 },
	{ "max-conns", OPT_MAX_CONNS, "N", 0,
	  "Track at most N sockets at once, 16 to 1048576; the oldest are evicted (default "
	  "65536). Each costs ~230 bytes of memory: 15 MiB by default, 232 MiB at most", 0 },
	{ "hook", OPT_HOOK, "auto|tp_btf|tracepoint", 0,
	  "Tracepoint flavour to attach (default auto: probe for tp_btf); with tracepoint, "
	  "TIME_WAIT is followed through sock_diag, not its timer", 0 },
	{ "verbose", 'v', NULL, 0, "Show libbpf's debug output and the kernel features found", 0 },
	{ "help", 'h', NULL, 0, "Show this help", -1 },
	{ "usage", OPT_USAGE, NULL, 0, "Show a short usage message", -1 },
	{ "version", 'V', NULL, 0, "Print the version", -1 },
	{},
};

static error_t parse_number(const char *what, const char *arg, uint64_t min, uint64_t max,
			    uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-' || v < min || v > max)
		return fail("invalid %s '%s': expected a number from %llu to %llu", what, arg,
			    (unsigned long long)min, (unsigned long long)max);
	*out = v;
	return 0;
}

/* parse_number into a narrower field. */
#define PARSE_INTO(field, what, arg, min, max)                                  \
	({                                                                      \
		uint64_t v_ = 0;                                                \
		error_t e_ = parse_number(what, arg, min, max, &v_);            \
		if (!e_)                                                        \
			field = (__typeof__(field))v_;                          \
		e_;                                                             \
	})

/* CLONE_NEWNET, CLONE_NEWNS, ... for a namespace file; -1 when the kernel cannot say. */
static int namespace_type(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int type;

	if (fd < 0)
		return -1;
	type = ioctl(fd, NS_GET_NSTYPE);
	close(fd);
	return type;
}

/* An inode number, or a namespace file such as /proc/PID/ns/net or /run/netns/NAME. */
static error_t parse_netns(const char *arg, uint32_t *netns)
{
	struct statfs sfs;
	struct stat st;

	if (arg[0] >= '0' && arg[0] <= '9')
		return PARSE_INTO(*netns, "netns inode", arg, 1, UINT32_MAX);
	if (stat(arg, &st) || statfs(arg, &sfs))
		return fail("cannot open netns '%s': %s", arg, strerror(errno));
	if ((unsigned long)sfs.f_type != NSFS_MAGIC)
		return fail("'%s' is not a namespace file (try /proc/PID/ns/net)", arg);
	if (namespace_type(arg) != CLONE_NEWNET)
		return fail("'%s' is not a network namespace (try /proc/PID/ns/net)", arg);
	*netns = (uint32_t)st.st_ino;
	return 0;
}

/* A cgroup v2 directory's inode number is its cgroup id. */
static error_t parse_cgroup(const char *arg, uint64_t *cgroup_id)
{
	struct statfs sfs;
	struct stat st;

	if (stat(arg, &st) || statfs(arg, &sfs))
		return fail("cannot open cgroup '%s': %s", arg, strerror(errno));
	if (sfs.f_type != CGROUP2_SUPER_MAGIC || !S_ISDIR(st.st_mode))
		return fail("'%s' is not a cgroup v2 directory (e.g. /sys/fs/cgroup/...)", arg);
	*cgroup_id = st.st_ino;
	return 0;
}

static error_t parse_hook(const char *arg, enum hook_choice *hook)
{
	if (!strcmp(arg, "auto"))
		*hook = HOOK_AUTO;
	else if (!strcmp(arg, "tp_btf"))
		*hook = HOOK_TP_BTF;
	else if (!strcmp(arg, "tracepoint"))
		*hook = HOOK_TRACEPOINT;
	else
		return fail("invalid --hook '%s': expected auto, tp_btf or tracepoint", arg);
	return 0;
}

static error_t parse_ringbuf_kib(const char *arg, uint64_t *bytes)
{
	uint64_t kib;
	error_t err = parse_number("ring buffer size (KiB)", arg, 4, RINGBUF_KIB_LIMIT, &kib);

	if (err)
		return err;
	if (kib & (kib - 1))
		return fail("invalid ring buffer size '%s': must be a power of two", arg);
	*bytes = kib << 10;
	return 0;
}

static error_t set_family(struct options *o, int key)
{
	uint8_t family = key == '4' ? AF_INET : AF_INET6;

	if (o->family && o->family != family)
		return fail("-4 and -6 exclude each other");
	o->family = family;
	return 0;
}

/* An interface named twice is watched once: its XDP slot holds one program. */
static error_t add_iface(struct options *o, const char *name)
{
	for (int i = 0; i < o->nifaces; i++)
		if (!strcmp(o->ifaces[i], name))
			return 0;
	if (o->nifaces == MAX_IFACES)
		return fail("at most %d interfaces (-i)", MAX_IFACES);
	if (!*name || strlen(name) >= 16)
		return fail("invalid interface name '%s'", name);
	o->ifaces[o->nifaces++] = name;
	return 0;
}

/* The packet-layer options mean nothing without an interface. */
static error_t check_combination(const struct options *o)
{
	if (!o->nifaces && (o->all_segments || o->ladder))
		return fail("--all-segments and --ladder need -i IFACE (the packet layer)");
	if (o->relative && !o->ladder)
		return fail("--relative goes with --ladder");
	if (o->interval_s && !o->summary)
		return fail("--interval goes with --summary");
	if (o->summary && (o->life || o->ladder))
		return fail("--summary replaces the per-connection output: drop --life/--ladder");
	return 0;
}

/* The entry of option_table that `word` ("-p", "--pid", "--pid=") names, or NULL. */
static const struct argp_option *option_named(const char *word)
{
	size_t n;

	if (word[0] != '-')
		return NULL;
	if (word[1] != '-') {
		for (const struct argp_option *opt = option_table; opt->name; opt++)
			if (word[1] && !word[2] && opt->key == word[1])
				return opt;
		return NULL;
	}
	n = strcspn(word + 2, "=");
	for (const struct argp_option *opt = option_table; opt->name; opt++)
		if (n && strlen(opt->name) == n && !strncmp(opt->name, word + 2, n))
			return opt;
	return NULL;
}

/* What getopt refused (argp has already moved past it): an option it does not
 * know, or one of ours whose argument is missing. */
static error_t report_unknown_option(const struct argp_state *state)
{
	int idx = state->next > 0 ? state->next - 1 : 0;
	const char *word = idx < state->argc ? state->argv[idx] : "?";
	const struct argp_option *opt = option_named(word);

	if (opt && opt->arg)
		return fail("option '%s' needs an argument (%s)", word, opt->arg);
	return fail("unrecognized option '%s'", word);
}

static error_t parse_option(int key, char *arg, struct argp_state *state);
static const struct argp argp = { option_table, parse_option, NULL, doc, NULL, NULL, NULL };

/* argp_state_help() stays silent under ARGP_NO_ERRS, so print through argp_help(). */
static error_t print_help(unsigned flags)
{
	argp_help(&argp, stdout, flags, (char *)"synfin");
	info_printed = true;
	return 0;
}

static error_t parse_option(int key, char *arg, struct argp_state *state)
{
	struct options *o = state->input;

	switch (key) {
	case 'p':
		return PARSE_INTO(o->pid, "pid", arg, 1, INT32_MAX);
	case 'P':
		return PARSE_INTO(o->port, "port", arg, 1, 65535);
	case OPT_SPORT:
		return PARSE_INTO(o->sport, "local port", arg, 1, 65535);
	case OPT_DPORT:
		return PARSE_INTO(o->dport, "remote port", arg, 1, 65535);
	case '4':
	case '6':
		return set_family(o, key);
	case OPT_NETNS:
		return parse_netns(arg, &o->netns);
	case OPT_CGROUP:
		o->cgroup_path = arg;
		return parse_cgroup(arg, &o->cgroup_id);
	case 'd':
		return PARSE_INTO(o->duration_s, "duration", arg, 1, 100000000);
	case 'j':
		o->json = true;
		return 0;
	case OPT_LIFE:
		o->life = true;
		return 0;
	case 'i':
		return add_iface(o, arg);
	case OPT_ALL_SEGMENTS:
		o->all_segments = true;
		return 0;
	case OPT_LADDER:
		o->ladder = true;
		return 0;
	case OPT_RELATIVE:
		o->relative = true;
		return 0;
	case OPT_SUMMARY:
		o->summary = true;
		return 0;
	case OPT_INTERVAL:
		return PARSE_INTO(o->interval_s, "interval", arg, 1, 100000000);
	case OPT_METRICS: {
		char why[160];

		o->metrics = arg;
		if (metrics_parse_addr(arg, o->metrics_host, sizeof(o->metrics_host), &o->metrics_port,
				       why, sizeof(why)))
			return fail("%s", why);
		return 0;
	}
	case OPT_STUCK:
		return PARSE_INTO(o->stuck_s, "stuck threshold", arg, 1, 100000000);
	case OPT_RINGBUF:
		return parse_ringbuf_kib(arg, &o->ringbuf_bytes);
	case OPT_MAX_CONNS:
		return PARSE_INTO(o->max_conns, "max-conns", arg, 16, MAX_CONNS_LIMIT);
	case OPT_HOOK:
		return parse_hook(arg, &o->hook);
	case 'v':
		o->verbose = true;
		return 0;
	case 'h':
		return print_help(ARGP_HELP_STD_HELP);
	case OPT_USAGE:
		return print_help(ARGP_HELP_USAGE);
	case 'V':
		printf("synfin %s\n", SYNFIN_VERSION);
		info_printed = true;
		return 0;
	case ARGP_KEY_ARG:
		return fail("unexpected argument '%s'", arg);
	case ARGP_KEY_ERROR:
		return report_unknown_option(state);
	case ARGP_KEY_END:
		o->ringbuf_auto = !o->ringbuf_bytes;
		if (!o->ringbuf_bytes)
			o->ringbuf_bytes = 8u << 20;
		return check_combination(o);
	default:
		return ARGP_ERR_UNKNOWN;
	}
}

enum options_result options_parse(int argc, char **argv, struct options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->max_conns = 65536;
	/* ARGP_NO_ERRS: every error is ours, on one line; help and version are ours too. */
	error_reported = info_printed = false;
	if (argp_parse(&argp, argc, argv, ARGP_NO_ERRS | ARGP_NO_EXIT | ARGP_NO_HELP, NULL, opts)) {
		if (!error_reported)
			fail("invalid command line");
		return OPTIONS_INVALID;
	}
	return info_printed ? OPTIONS_DONE : OPTIONS_RUN;
}
