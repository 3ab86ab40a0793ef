#include "loader.h"
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>
#include "state.skel.h"
#include "synfin.h"

#define VMLINUX_BTF "/sys/kernel/btf/vmlinux"
#define CAP_NET_ADMIN_BIT 12
#define CAP_SYS_ADMIN_BIT 21
#define CAP_PERFMON_BIT 38
#define CAP_BPF_BIT 39

static bool verbose;

/* Quiet by default: our own one-line errors say what failed; -v shows libbpf's view. */
static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	(void)level;
	if (!verbose)
		return 0;
	return vfprintf(stderr, fmt, args);
}

static uint64_t effective_caps(void)
{
	char line[256];
	unsigned long long caps = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &caps) == 1)
			break;
	fclose(f);
	return caps;
}

/*
 * File descriptors a run may hold at once: the programs, maps and links
 * (~15), the packet layer's (~10), a sock_diag socket per followed namespace
 * (up to 16), the metrics server's connections. Below this, some part would
 * fail later and less clearly (a load's EMFILE reads as EINVAL).
 */
#define MIN_FDS 64

static bool has_cap(uint64_t caps, int bit)
{
	return caps & (1ull << bit);
}

static bool has_bpf_privileges(uint64_t caps)
{
	if (has_cap(caps, CAP_SYS_ADMIN_BIT))
		return true;
	return has_cap(caps, CAP_BPF_BIT) && has_cap(caps, CAP_PERFMON_BIT);
}

static int check_privileges(const struct options *o)
{
	uint64_t caps = effective_caps();

	if (!has_bpf_privileges(caps)) {
		fprintf(stderr, "synfin: not enough privileges: run as root (sudo synfin) "
				"or grant CAP_BPF and CAP_PERFMON\n");
		return 1;
	}
	if (o->nifaces && !has_cap(caps, CAP_NET_ADMIN_BIT)) {
		fprintf(stderr, "synfin: -i needs CAP_NET_ADMIN to attach XDP and TC programs: run "
				"as root or grant CAP_NET_ADMIN too\n");
		return 1;
	}
	return 0;
}

/*
 * CO-RE relocates against this file: an empty or damaged one fails the load
 * with ESRCH ("No such process"), which says nothing; say what it is. Parsed
 * once: the feature probes read the same copy.
 */
static int check_btf_and_probe(struct kernel_features *f)
{
	struct btf *btf;

	if (access(VMLINUX_BTF, R_OK)) {
		fprintf(stderr, "synfin: this kernel has no BTF (%s: %s): synfin needs a kernel "
				"built with CONFIG_DEBUG_INFO_BTF=y\n", VMLINUX_BTF, strerror(errno));
		return 1;
	}
	btf = btf__parse(VMLINUX_BTF, NULL);
	if (!btf) {
		fprintf(stderr, "synfin: cannot read the kernel's BTF (%s): %s: the file is empty "
				"or damaged\n", VMLINUX_BTF, strerror(errno));
		return 1;
	}
	features_probe(f, btf);
	features_name_reasons(btf);
	btf__free(btf);
	return 0;
}

static int check_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= MIN_FDS)
		return 0;
	fprintf(stderr, "synfin: the open-file limit is %llu (ulimit -n) and synfin needs %d: "
			"raise it (ulimit -n %d)\n", (unsigned long long)rl.rlim_cur, MIN_FDS, MIN_FDS);
	return 1;
}

static int check_machine(struct tracer *t, const struct options *o)
{
	if (check_privileges(o) || check_fd_limit())
		return 1;
	return check_btf_and_probe(&t->features);
}

/* The time-wait timer programs are tp_btf only: without them, sock_diag follows TIME_WAIT. */
static int choose_tw_timers(struct tracer *t, bool on)
{
	struct bpf_program *progs[] = { t->skel->progs.tw_timer_start, t->skel->progs.tw_timer_expire,
					t->skel->progs.tw_timer_cancel,
					t->skel->progs.tw_softirq_entry,
					t->skel->progs.tw_softirq_exit };
	int err = 0;

	t->tw_timers = on;
	t->tw_fin = on && t->features.tw_fin_hook;
	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]) && !err; i++)
		err = bpf_program__set_autoload(progs[i], on);
	return err;
}

/* skb:kfree_skb, for the FIN that ends a FIN_WAIT2 mini-socket and for drops (drop.bpf.h);
 * tcp:tcp_retransmit_synack for the listeners (synack.bpf.h). */
static int choose_drop_hook(struct tracer *t)
{
	int err;

	t->synacks = t->features.synack_hook;
	t->drops = t->features.drop_reasons;
	t->skel->rodata->want_tw_fin = t->tw_fin;
	t->skel->rodata->want_drops = t->drops;
	err = bpf_program__set_autoload(t->skel->progs.synack_retransmitted, t->synacks);
	return err ? err : bpf_program__set_autoload(t->skel->progs.skb_dropped, t->tw_fin || t->drops);
}

/* accept() and process exits tell who holds a socket (owner.bpf.h), where the kernel has them. */
static int choose_owner_hooks(struct tracer *t)
{
	int err;

	t->accept = t->features.accept_hook;
	t->exits = t->features.exit_hook;
	err = bpf_program__set_autoload(t->skel->progs.owner_accept4, t->accept);
	if (!err)
		err = bpf_program__set_autoload(t->skel->progs.owner_accept, t->accept);
	if (!err)
		err = bpf_program__set_autoload(t->skel->progs.owner_close, t->accept);
	return err ? err : bpf_program__set_autoload(t->skel->progs.owner_exit, t->exits);
}

/* Loads one twin, and the programs that are not twins where the kernel has their hooks. */
static int choose_hook(struct tracer *t, enum hook_choice choice)
{
	bool btf = choice == HOOK_TP_BTF || (choice == HOOK_AUTO && t->features.tp_btf_set_state);
	struct state_bpf *skel = t->skel;
	int err;

	t->hook = btf ? "tp_btf" : "tracepoint";
	err = bpf_program__set_autoload(btf ? skel->progs.set_state_tp : skel->progs.set_state_btf,
					false);
	t->rst = t->features.rst_reason; /* tp_btf, but no twin to choose: on either hook */
	if (!err)
		err = bpf_program__set_autoload(skel->progs.rst_sent, t->rst);
	if (!err)
		err = choose_owner_hooks(t);
	if (!err)
		err = choose_tw_timers(t, btf && t->features.tw_timer_hooks);
	return err ? err : choose_drop_hook(t);
}

static void set_filters(struct state_bpf *skel, const struct options *o)
{
	skel->rodata->filter_port = o->port;
	skel->rodata->filter_sport = o->sport;
	skel->rodata->filter_dport = o->dport;
	skel->rodata->filter_family = o->family;
	skel->rodata->filter_netns = o->netns;
	skel->rodata->filter_cgroup = o->cgroup_id;
}

/* SYNFIN_TEST_SKIP_HANDOVER=1, for tests only: test_skip_handover in bpf/state.bpf.c. */
static void set_test_faults(struct state_bpf *skel)
{
	const char *skip = getenv("SYNFIN_TEST_SKIP_HANDOVER");

	if (!skip || strcmp(skip, "1"))
		return;
	skel->rodata->test_skip_handover = true;
	fprintf(stderr, "synfin: SYNFIN_TEST_SKIP_HANDOVER=1: FIN_WAIT1->FIN_WAIT2 and "
			"FIN_WAIT2->CLOSE are not traced (a test of inferred closes)\n");
}

/* One ring per possible CPU (the key is the CPU number), sized from --ringbuf-size. */
static int size_cpu_rings(struct state_bpf *skel, const struct options *o)
{
	int ncpus = libbpf_num_possible_cpus();
	uint64_t slots;
	int err;

	if (ncpus <= 0)
		return ncpus ? ncpus : -EINVAL;
	/*
	 * By default 2048 to 8192 slots per CPU (the budget split; 8192 on 2
	 * CPUs, 75 ms of a storm's records on one CPU, and the reader is woken
	 * at a quarter): larger rings measured ~50 ns more per record here, their
	 * slots being cold in cache when written. With the packet layer the
	 * reader joins every segment too and falls behind for longer (8192 lost
	 * records in storms): the whole budget, up to 32768. --ringbuf-size is
	 * taken as asked.
	 */
	if (o->ringbuf_auto)
		slots = cpu_ring_slots(o->ringbuf_bytes, (uint32_t)ncpus, 2048,
				       o->nifaces ? SF_CPU_RING_MAX_SLOTS : 8192);
	else
		slots = cpu_ring_slots(o->ringbuf_bytes, (uint32_t)ncpus, 16, SF_CPU_RING_MAX_SLOTS);
	skel->rodata->cpu_ring_mask = slots - 1;
	err = bpf_map__set_max_entries(skel->maps.cpu_rings, (__u32)ncpus);
	if (!err)
		err = bpf_map__set_value_size(skel->maps.cpu_rings, (__u32)cpu_ring_bytes(slots));
	return err;
}

/* After load: the rings are read through a shared mapping of the array. */
static int map_cpu_rings(struct tracer *t)
{
	const struct bpf_map *map = t->skel->maps.cpu_rings;
	uint32_t nrings = bpf_map__max_entries(map);
	uint64_t slots = t->skel->rodata->cpu_ring_mask + 1;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	void *mem;

	t->cpu_mem_len = (cpu_rings_span(nrings, slots) + page - 1) & ~(page - 1);
	mem = mmap(NULL, t->cpu_mem_len, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(map), 0);
	if (mem == MAP_FAILED)
		return -errno;
	t->cpu_mem = mem;
	return cpu_rings_init(&t->cpu, mem, nrings, slots) ? -ENOMEM : 0;
}

static int configure(struct tracer *t, const struct options *o)
{
	int err;

	set_filters(t->skel, o);
	set_test_faults(t->skel);
	err = size_cpu_rings(t->skel, o);
	if (!err)
		err = choose_hook(t, o->hook);
	return err;
}

static void explain_load_error(int err)
{
	struct rlimit rl;

	if (err == -EPERM && !getrlimit(RLIMIT_MEMLOCK, &rl) && rl.rlim_cur != RLIM_INFINITY) {
		fprintf(stderr, "synfin: failed to load BPF programs: %s: the locked-memory limit "
				"is too low for this kernel; raise it (ulimit -l unlimited)\n",
			strerror(-err));
		return;
	}
	fprintf(stderr, "synfin: failed to load BPF programs: %s (run with -v for the "
			"verifier's log)\n", strerror(-err));
}

/* libbpf finds a classic tracepoint's id through tracefs, which a bare system may not mount. */
static bool tracefs_mounted(void)
{
	return access("/sys/kernel/tracing/events", F_OK) == 0 ||
	       access("/sys/kernel/debug/tracing/events", F_OK) == 0;
}

/*
 * libbpf attaches the classic tracepoints (the state twin, the accept hooks)
 * through their ids in tracefs. Where it is not mounted (a bare system, or
 * under `ip netns exec`, which mounts a new /sys), synfin mounts one in a mount
 * namespace of its own: nothing changes for the rest of the system, and it goes
 * away with synfin. Before any thread starts (unshare() needs that). Where even
 * that fails (no tracefs in the kernel), the features that need it say so.
 */
static void ensure_tracefs(void)
{
	if (tracefs_mounted())
		return;
	/* A change of propagation ignores source and type: "none", not NULL, for checkers. */
	if (unshare(CLONE_NEWNS) || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) ||
	    mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, NULL)) {
		if (verbose)
			fprintf(stderr, "synfin: no tracefs, and none could be mounted for synfin "
					"alone: %s\n", strerror(errno));
		return;
	}
	if (verbose)
		fprintf(stderr, "synfin: tracefs was not mounted: mounted at /sys/kernel/tracing "
				"for synfin alone (its own mount namespace)\n");
}

static void explain_attach_error(const char *hook, int err)
{
	if (err == -ENOENT && strcmp(hook, "tracepoint") == 0 && !tracefs_mounted()) {
		fprintf(stderr, "synfin: the classic tracepoint needs tracefs: run "
				"'mount -t tracefs nodev /sys/kernel/tracing' (or use --hook tp_btf)\n");
		return;
	}
	fprintf(stderr, "synfin: failed to attach to sock:inet_sock_set_state (%s): %s\n", hook,
		strerror(-err));
}

int tracer_start(struct tracer *t, const struct options *o, ring_buffer_sample_fn on_event,
		 void *ctx)
{
	int err;

	verbose = o->verbose;
	libbpf_set_print(libbpf_print);
	err = check_machine(t, o);
	if (err)
		return err;
	ensure_tracefs();
	features_probe_tracefs(&t->features);
	if (o->verbose)
		features_print(&t->features, stderr);
	t->skel = state_bpf__open();
	if (!t->skel) {
		fprintf(stderr, "synfin: failed to open BPF object: %s\n", strerror(errno));
		return 1;
	}
	err = configure(t, o);
	if (err) {
		fprintf(stderr, "synfin: failed to configure BPF object: %s\n", strerror(-err));
		goto fail;
	}
	err = state_bpf__load(t->skel);
	if (err) {
		explain_load_error(err);
		goto fail;
	}
	err = state_bpf__attach(t->skel);
	if (err) {
		explain_attach_error(t->hook, err);
		goto fail;
	}
	if (o->verbose)
		fprintf(stderr, "synfin: attached to sock:inet_sock_set_state via %s%s%s%s%s%s%s\n",
			t->hook, t->tw_timers ? ", and to timer:timer_start/_expire_entry/_cancel and irq:softirq_entry/_exit" : "",
			t->tw_fin || t->drops ? ", and to skb:kfree_skb" : "",
			t->rst ? ", and to tcp:tcp_send_reset" : "",
			t->accept ? ", and to syscalls:sys_exit_accept4/_accept" : "",
			t->exits ? ", and to sched:sched_process_exit" : "",
			t->synacks ? ", and to tcp:tcp_retransmit_synack" : "");
	t->rb = ring_buffer__new(bpf_map__fd(t->skel->maps.events), on_event, ctx, NULL);
	if (!t->rb) {
		fprintf(stderr, "synfin: failed to create ring buffer reader: %s\n", strerror(errno));
		goto fail;
	}
	err = map_cpu_rings(t);
	if (err) {
		fprintf(stderr, "synfin: failed to map the per-CPU rings: %s\n", strerror(-err));
		goto fail;
	}
	return 0;
fail:
	tracer_stop(t);
	return 1;
}

void tracer_stop(struct tracer *t)
{
	ring_buffer__free(t->rb);
	t->rb = NULL;
	cpu_rings_free(&t->cpu);
	if (t->cpu_mem)
		munmap(t->cpu_mem, t->cpu_mem_len);
	t->cpu_mem = NULL;
	state_bpf__destroy(t->skel);
	t->skel = NULL;
}

int percpu_array_sum(int map_fd, uint32_t nkeys, uint64_t *sums)
{
	int ncpus = libbpf_num_possible_cpus();

	if (ncpus <= 0)
		return -EINVAL;
	uint64_t vals[ncpus];
	for (uint32_t key = 0; key < nkeys; key++) {
		/* The kernel fills vals; valgrind cannot see that through bpf(). */
		memset(vals, 0, sizeof(vals));
		if (bpf_map_lookup_elem(map_fd, &key, vals))
			return -errno;
		sums[key] = 0;
		for (int cpu = 0; cpu < ncpus; cpu++)
			sums[key] += vals[cpu];
	}
	return 0;
}

/* Runs the kernel skipped because the program was already running on that CPU. */
static uint64_t recursion_misses(const struct bpf_program *prog)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (!prog || bpf_program__fd(prog) < 0 ||
	    bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len))
		return 0;
	return info.recursion_misses;
}

int64_t tracer_synack_retrans(struct tracer *t, uint32_t netns, uint16_t port)
{
	struct sf_listener_port key = { .netns = netns, .port = port };
	uint64_t count = 0;

	if (!t->synacks)
		return -1;
	bpf_map_lookup_elem(bpf_map__fd(t->skel->maps.synack_retrans), &key, &count);
	return (int64_t)count;
}

bool tracer_take_armed(struct tracer *t, const struct synfin_tw_key *k)
{
	return t->tw_timers && !bpf_map_delete_elem(bpf_map__fd(t->skel->maps.tw_armed), k);
}

int tracer_counters(struct tracer *t, struct tracer_counts *c)
{
	uint64_t totals[SF_CNT_MAX];
	int err = percpu_array_sum(bpf_map__fd(t->skel->maps.counters), SF_CNT_MAX, totals);

	if (err)
		return err;
	c->skipped = recursion_misses(t->skel->progs.set_state_btf) +
		     recursion_misses(t->skel->progs.set_state_tp);
	c->lost = totals[SF_CNT_LOST] + c->skipped;
	c->tw_lost = totals[SF_CNT_TW_LOST];
	if (t->tw_timers)
		c->tw_lost += recursion_misses(t->skel->progs.tw_timer_start) +
			      recursion_misses(t->skel->progs.tw_timer_expire) +
			      recursion_misses(t->skel->progs.tw_timer_cancel);
	/* skb_dropped's runs the kernel skipped: a FIN for a mini-socket, or a drop (not told apart) */
	if (t->tw_fin || t->drops)
		c->drop_lost = recursion_misses(t->skel->progs.skb_dropped);
	c->drop_lost += totals[SF_CNT_DROP_LOST];
	c->rst_lost = totals[SF_CNT_RST_LOST] + (t->rst ? recursion_misses(t->skel->progs.rst_sent) : 0);
	c->owner_lost = totals[SF_CNT_OWNER_LOST] +
			(t->exits ? recursion_misses(t->skel->progs.owner_exit) : 0) +
			(t->accept ? recursion_misses(t->skel->progs.owner_close) : 0);
	return 0;
}
