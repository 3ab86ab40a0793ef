// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * synfin state layer: every tcp_set_state() transition, through the
 * sock:inet_sock_set_state tracepoint, as a compact record in a ring buffer.
 *
 * Two twins share one handler: tp_btf (BTF-typed, cheaper) and the classic
 * tracepoint. User space probes which one the kernel accepts and switches the
 * other off with bpf_program__set_autoload() before load.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "synfin.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define MAX_CGROUP_DEPTH 16
#define RCV_SHUTDOWN 1
#define SEND_SHUTDOWN 2

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Filters: set by user space between open and load; 0 means "any". */
const volatile __u16 filter_port = 0;  /* local or remote */
const volatile __u16 filter_sport = 0; /* local */
const volatile __u16 filter_dport = 0; /* remote */
const volatile __u32 filter_pid = 0;   /* owner tgid */
const volatile __u8 filter_family = 0;
const volatile __u32 filter_netns = 0;
const volatile __u64 filter_cgroup = 0; /* this cgroup and below */
/*
 * Records are submitted without waking the reader (user space drains the
 * ring on a short timer): a wake-up per record costs ~10 us on a virtual
 * machine. Once this many bytes are waiting, wake it anyway so a burst
 * cannot fill the ring between two timer ticks.
 */
const volatile __u64 wakeup_bytes = 1 << 20;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* resized by user space */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SF_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct sf_owner {
	__u32 pid;
	char comm[SYNFIN_COMM_LEN];
};

/* socket address -> the process that owns it; LRU so it can never fill. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); /* resized by user space */
	__type(key, __u64);
	__type(value, struct sf_owner);
} owners SEC(".maps");

struct sf_listener_key {
	__u32 netns;
	__u32 port;
};

struct sf_listener {
	__u64 skaddr;
	struct sf_owner owner;
};

/*
 * (netns, local port) -> the listening socket's owner. An accepted child is
 * born in softirq context when the final ACK arrives, so the task running
 * then is unrelated; the listener's owner is the right answer.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct sf_listener_key);
	__type(value, struct sf_listener);
} listeners SEC(".maps");

/* Before 6.2 (commit 7f203bc89eb6) struct cgroup held ancestor ids, not pointers. */
struct cgroup___pre62 {
	int level;
	__u64 ancestor_ids[];
} __attribute__((preserve_access_index));

static __always_inline void count(__u32 idx)
{
	__u64 *val = bpf_map_lookup_elem(&counters, &idx);

	if (val)
		*val += 1;
}

static __always_inline __u64 cgroup_ancestor_id(struct cgroup *cg, int level)
{
	__u64 id = 0;

	if (bpf_core_field_exists(cg->ancestors)) {
		struct cgroup *anc = NULL;

		bpf_core_read(&anc, sizeof(anc), &cg->ancestors[level]);
		return BPF_CORE_READ(anc, kn, id);
	}
	struct cgroup___pre62 *old = (void *)cg;

	bpf_core_read(&id, sizeof(id), &old->ancestor_ids[level]);
	return id;
}

static __always_inline bool cgroup_matches(struct cgroup *cg)
{
	int level;

	if (!filter_cgroup)
		return true;
	if (!cg)
		return false;
	level = BPF_CORE_READ(cg, level);
	for (int i = 0; i < MAX_CGROUP_DEPTH; i++) {
		if (i > level)
			break;
		if (cgroup_ancestor_id(cg, i) == filter_cgroup)
			return true;
	}
	return false;
}

static __always_inline bool ports_match(__u16 sport, __u16 dport)
{
	if (filter_port && sport != filter_port && dport != filter_port)
		return false;
	if (filter_sport && sport != filter_sport)
		return false;
	if (filter_dport && dport != filter_dport)
		return false;
	return true;
}

/*
 * Transitions that only a system call makes, so the current task is the
 * socket's owner: connect(), listen(), and close()/shutdown() of an
 * established or half-closed socket. Everything else may run in softirq on
 * top of whatever task the CPU was executing.
 */
static __always_inline bool in_owner_context(int oldstate, int newstate)
{
	return (oldstate == SF_TCP_CLOSE && newstate == SF_TCP_SYN_SENT) ||
	       newstate == SF_TCP_LISTEN ||
	       (oldstate == SF_TCP_ESTABLISHED && newstate == SF_TCP_FIN_WAIT1) ||
	       (oldstate == SF_TCP_CLOSE_WAIT && newstate == SF_TCP_LAST_ACK);
}

/*
 * The local port. inet_num is 0 once the socket has left its bind bucket
 * (at CLOSE), inet_sport until listen()/connect() publish it: take whichever
 * is set. Before connect() picks a port (SYN_SENT) both are 0.
 */
static __always_inline __u16 local_port(const struct sock *sk)
{
	__u16 num = BPF_CORE_READ(sk, __sk_common.skc_num);

	if (num)
		return num;
	return bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
}

/* An accepted child: born as a clone of its listener, so its first state
 * change reads LISTEN -> SYN_RECV (CLOSE -> SYN_RECV on older kernels). */
static __always_inline bool is_child_birth(int oldstate, int newstate)
{
	return newstate == SF_TCP_SYN_RECV &&
	       (oldstate == SF_TCP_CLOSE || oldstate == SF_TCP_LISTEN);
}

static __always_inline void remember_listener(__u64 skaddr, __u32 netns, __u16 port,
					      const struct sf_owner *owner)
{
	struct sf_listener_key key = { .netns = netns, .port = port };
	struct sf_listener val = { .skaddr = skaddr, .owner = *owner };

	bpf_map_update_elem(&listeners, &key, &val, BPF_ANY);
}

static __always_inline void forget_listener(__u64 skaddr, __u32 netns, __u16 port)
{
	struct sf_listener_key key = { .netns = netns, .port = port };
	struct sf_listener *l = bpf_map_lookup_elem(&listeners, &key);

	/* SO_REUSEPORT: only the socket that registered may unregister. */
	if (l && l->skaddr == skaddr)
		bpf_map_delete_elem(&listeners, &key);
}

/* Fills *owner; returns false when the owner is not known. */
static __always_inline bool resolve_owner(__u64 skaddr, int oldstate, int newstate,
					  __u32 netns, __u16 sport, struct sf_owner *owner)
{
	struct sf_owner *known = bpf_map_lookup_elem(&owners, &skaddr);

	if (known && newstate != SF_TCP_SYN_SENT) {
		*owner = *known;
		return true;
	}
	if (in_owner_context(oldstate, newstate)) {
		owner->pid = bpf_get_current_pid_tgid() >> 32;
		if (!owner->pid) /* never the idle task */
			return false;
		bpf_get_current_comm(owner->comm, sizeof(owner->comm));
		bpf_map_update_elem(&owners, &skaddr, owner, BPF_ANY);
		if (newstate == SF_TCP_LISTEN)
			remember_listener(skaddr, netns, sport, owner);
		return true;
	}
	if (is_child_birth(oldstate, newstate)) {
		struct sf_listener_key key = { .netns = netns, .port = sport };
		struct sf_listener *l = bpf_map_lookup_elem(&listeners, &key);

		if (!l)
			return false;
		*owner = l->owner;
		bpf_map_update_elem(&owners, &skaddr, owner, BPF_ANY);
		return true;
	}
	return false;
}

static __always_inline void read_addrs(const struct sock *sk, __u16 family,
				       struct synfin_event *e)
{
	if (family == AF_INET) {
		bpf_core_read(e->saddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(e->daddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(e->saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(e->daddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

/* Initial sequence numbers, RTT and handshake retransmissions, at ESTABLISHED. */
static __always_inline void read_handshake(const struct sock *sk, struct synfin_event *e)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u32 retrans = BPF_CORE_READ(tp, total_retrans);

	/*
	 * Our SYN and the peer's SYN each take one sequence number and nothing
	 * else has been acknowledged or received yet (no Fast Open data), so
	 * the ISNs are one below snd_una and rcv_nxt.
	 */
	e->local_isn = BPF_CORE_READ(tp, snd_una) - 1;
	e->remote_isn = BPF_CORE_READ(tp, rcv_nxt) - 1;
	e->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3; /* stored as 8 x srtt */
	e->retrans = retrans > 255 ? 255 : retrans;
}

/*
 * How the socket reached CLOSE, from its own fields. tcp_fin() sets
 * RCV_SHUTDOWN before tcp_time_wait(); tcp_reset() and tcp_write_err() set
 * sk_err before tcp_done(); so at this tracepoint the two are decisive.
 */
static __always_inline void read_close(const struct sock *sk, int oldstate,
				       struct synfin_event *e)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u8 shutdown = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_shutdown);
	int err = BPF_CORE_READ(sk, sk_err);
	__u32 retrans = BPF_CORE_READ(tp, total_retrans);
	__u8 flags = 0;

	if (shutdown & RCV_SHUTDOWN)
		flags |= SF_CLOSE_FIN_RCVD;
	if (shutdown & SEND_SHUTDOWN)
		flags |= SF_CLOSE_FIN_SENT;
	if (!err && (oldstate == SF_TCP_CLOSING ||
		     (oldstate == SF_TCP_FIN_WAIT2 && (flags & SF_CLOSE_FIN_RCVD))))
		flags |= SF_CLOSE_TIME_WAIT;
	else if (!err && oldstate == SF_TCP_FIN_WAIT2)
		flags |= SF_CLOSE_TW_FIN_WAIT2;
	e->close_flags = flags;
	e->sk_err = err > 0 && err < 256 ? err : 0;
	e->retrans = retrans > 255 ? 255 : retrans;
	e->bytes_acked = BPF_CORE_READ(tp, bytes_acked);
	e->bytes_received = BPF_CORE_READ(tp, bytes_received);
}

static __always_inline void submit(struct synfin_event *e)
{
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
	count(SF_CNT_EMITTED);
}

static __always_inline int handle_set_state(const struct sock *sk, int oldstate,
					    int newstate, __u16 protocol)
{
	struct sf_owner owner = {};
	struct synfin_event *e;
	__u64 skaddr = (__u64)sk;
	struct cgroup *cg;
	__u16 family, sport, dport;
	__u32 netns;
	bool known;

	if (protocol != IPPROTO_TCP)
		return 0;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (filter_family && family != filter_family)
		return 0;
	sport = local_port(sk);
	dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);

	/* Owner bookkeeping runs before filtering so it never misses a socket. */
	known = resolve_owner(skaddr, oldstate, newstate, netns, sport, &owner);
	if (newstate == SF_TCP_CLOSE) {
		bpf_map_delete_elem(&owners, &skaddr);
		if (oldstate == SF_TCP_LISTEN)
			forget_listener(skaddr, netns, sport);
	}

	if (!ports_match(sport, dport))
		return 0;
	if (filter_netns && netns != filter_netns)
		return 0;
	if (filter_pid && (!known || owner.pid != filter_pid))
		return 0;
	/* sk_cgrp_data.cgroup is copied from the listener into accepted children. */
	cg = BPF_CORE_READ(sk, sk_cgrp_data.cgroup);
	if (!cgroup_matches(cg))
		return 0;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(SF_CNT_LOST);
		return 0;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->skaddr = skaddr;
	e->cgroup_id = cg ? BPF_CORE_READ(cg, kn, id) : 0;
	read_addrs(sk, family, e);
	e->pid = owner.pid;
	e->netns = netns;
	e->sport = sport;
	e->dport = dport;
	e->type = SF_EV_STATE;
	e->family = family;
	e->oldstate = oldstate;
	e->newstate = newstate;
	__builtin_memcpy(e->comm, owner.comm, sizeof(e->comm));
	e->local_isn = e->remote_isn = e->srtt_us = 0;
	e->bytes_acked = e->bytes_received = 0;
	e->sk_err = e->close_flags = e->retrans = e->pad = 0;
	if (newstate == SF_TCP_ESTABLISHED)
		read_handshake(sk, e);
	else if (newstate == SF_TCP_CLOSE)
		read_close(sk, oldstate, e);
	submit(e);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(set_state_btf, const struct sock *sk, const int oldstate, const int newstate)
{
	return handle_set_state(sk, oldstate, newstate, BPF_CORE_READ(sk, sk_protocol));
}

SEC("tracepoint/sock/inet_sock_set_state")
int set_state_tp(struct trace_event_raw_inet_sock_set_state *ctx)
{
	return handle_set_state(ctx->skaddr, ctx->oldstate, ctx->newstate, ctx->protocol);
}
