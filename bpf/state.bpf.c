// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * synfin state layer: every tcp_set_state() transition, through the
 * sock:inet_sock_set_state tracepoint, as a compact record in this CPU's ring.
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
#include "common.bpf.h"

#define MAX_CGROUP_DEPTH 16
#define SEND_SHUTDOWN 2

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Filters: set by user space between open and load; 0 means "any". */
const volatile __u16 filter_port = 0;  /* local or remote */
const volatile __u16 filter_sport = 0; /* local */
const volatile __u16 filter_dport = 0; /* remote */
const volatile __u8 filter_family = 0;
const volatile __u32 filter_netns = 0;
const volatile __u64 filter_cgroup = 0; /* this cgroup and below */
/* Slots per per-CPU ring - 1 (set by user space). */
const volatile __u64 cpu_ring_mask = 0;
/*
 * Tests only (SYNFIN_TEST_SKIP_HANDOVER): runs as if the kernel had not
 * called this program for FIN_WAIT1 -> FIN_WAIT2 and FIN_WAIT2 -> CLOSE, as
 * it was seen not to, now and then, without counting a miss (README).
 */
const volatile bool test_skip_handover = false;

/*
 * State records go to the per-CPU rings (cpu_rings). The shared ring only
 * carries wake-ups: 4-byte records when a per-CPU ring fills (see
 * cpu_ring_reserve()), so user space can wait on it with epoll.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

/*
 * One element per possible CPU: a struct synfin_cpu_ring, then the slots.
 * Untyped, so user space can size the value to --ringbuf-size.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);   /* set to the number of possible CPUs */
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 4096); /* set by user space */
} cpu_rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SF_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 idx)
{
	counter_inc(&counters, idx);
}

static __always_inline __u64 cgroup_ancestor_id(struct cgroup *cg, int level)
{
	__u64 id = 0;

	if (bpf_core_field_exists(cg->ancestors)) {
		struct cgroup *anc = NULL;

		bpf_core_read(&anc, sizeof(anc), &cg->ancestors[level]);
		return BPF_CORE_READ(anc, kn, id);
	}
	struct cgroup___ancestor_ids *old = (void *)cg;

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
 * Transitions that only a system call makes, so the current task holds the
 * socket: connect(), listen(), and close()/shutdown() of an established or
 * half-closed socket. Everything else may run in softirq on top of whatever
 * task the CPU was executing: there pid stays 0 and user space, which follows
 * every socket's holder (accept() and process exits included), names it.
 */
static __always_inline bool in_owner_context(int oldstate, int newstate)
{
	return (oldstate == SF_TCP_CLOSE && newstate == SF_TCP_SYN_SENT) ||
	       newstate == SF_TCP_LISTEN ||
	       (oldstate == SF_TCP_ESTABLISHED && newstate == SF_TCP_FIN_WAIT1) ||
	       (oldstate == SF_TCP_CLOSE_WAIT && newstate == SF_TCP_LAST_ACK);
}

/*
 * Field reads. The handler below is inlined into both twins with `btf` a
 * constant: tp_btf gets plain loads through its BTF-typed socket pointer
 * (the verifier turns them into checked loads, no helper call), the classic
 * tracepoint gets bpf_probe_read_kernel() through BPF_CORE_READ. Both are
 * CO-RE-relocated.
 */
#define RD(btf, ptr, ...) ((btf) ? __RD_DIRECT(ptr, __VA_ARGS__) : BPF_CORE_READ(ptr, __VA_ARGS__))
#define __RD_DIRECT(ptr, a) ((ptr)->a)

static __always_inline void read_addrs(const struct sock *sk, bool btf, __u16 family,
				       struct synfin_event *e)
{
	if (family == AF_INET) {
		/*
		 * The slot keeps what an earlier record wrote: an IPv6 address's
		 * last 12 bytes must not stay behind an IPv4 one's 4, where
		 * whole-array keys (tw_armed's; user space's) would differ.
		 */
		__builtin_memset(e->saddr, 0, 16);
		__builtin_memset(e->daddr, 0, 16);
		*(__u32 *)e->saddr = RD(btf, sk, __sk_common.skc_rcv_saddr);
		*(__u32 *)e->daddr = RD(btf, sk, __sk_common.skc_daddr);
	} else if (btf) {
		__builtin_memcpy(e->saddr, sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8, 16);
		__builtin_memcpy(e->daddr, sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, 16);
	} else {
		bpf_core_read(e->saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(e->daddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

static __always_inline __u8 clamp_u8(__u32 v)
{
	return v > 255 ? 255 : v;
}

/* Initial sequence numbers, RTT and handshake retransmissions, at ESTABLISHED. */
static __always_inline void read_handshake(const struct tcp_sock *tp, bool btf,
					   struct synfin_event *e)
{
	/*
	 * Our SYN and the peer's SYN each take one sequence number and nothing
	 * else has been acknowledged or received yet (no Fast Open data), so
	 * the ISNs are one below snd_una and rcv_nxt.
	 */
	e->local_isn = RD(btf, tp, snd_una) - 1;
	e->remote_isn = RD(btf, tp, rcv_nxt) - 1;
	e->srtt_us = RD(btf, tp, srtt_us) >> 3; /* stored as 8 x srtt */
	e->retrans = clamp_u8(RD(btf, tp, total_retrans));
}

/*
 * How the socket reached CLOSE, from its own fields. tcp_fin() marks the
 * socket SOCK_DONE before tcp_time_wait() (sk_shutdown will not do: close()
 * sets RCV_SHUTDOWN without any FIN), and tcp_reset() and tcp_write_err() set
 * sk_err before tcp_done(): at this tracepoint the two are decisive.
 */
static __always_inline void read_close(const struct sock *sk, const struct tcp_sock *tp,
				       bool btf, int oldstate, struct synfin_event *e)
{
	__u8 shutdown = btf ? BPF_CORE_READ_BITFIELD(sk, sk_shutdown) :
			      BPF_CORE_READ_BITFIELD_PROBED(sk, sk_shutdown);
	unsigned long sk_flags = RD(btf, sk, __sk_common.skc_flags);
	int err = RD(btf, sk, sk_err);
	__u8 flags = 0;

	if (sk_flags & (1UL << bpf_core_enum_value(enum sock_flags, SOCK_DONE)))
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
	e->retrans = clamp_u8(RD(btf, tp, total_retrans));
	e->bytes_acked = RD(btf, tp, bytes_acked);
	e->bytes_received = RD(btf, tp, bytes_received);
}

/* Reservation attempts before giving up: each failure means a run on this CPU
 * interrupted ours and took the slot, so more than a couple cannot happen. */
#define CPU_RING_RESERVE_TRIES 4

/*
 * Reserves this CPU's next slot: NULL (counted in lost_counter) when the ring
 * holds more than max_fill unread records (cpu_ring_mask: full). A
 * compare-and-swap rather than a plain store, so that a run nesting on this
 * CPU takes the next slot instead of the same one (see synfin.h).
 */
static __always_inline struct synfin_event *cpu_ring_reserve(__u32 lost_counter, __u64 max_fill)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct synfin_cpu_ring *r = bpf_map_lookup_elem(&cpu_rings, &cpu);
	__u64 head = 0, tail = 0;
	bool reserved = false;

	if (!r)
		return NULL;
	for (int i = 0; i < CPU_RING_RESERVE_TRIES && !reserved; i++) {
		head = *(volatile __u64 *)&r->head;
		tail = *(volatile __u64 *)&r->tail;
		if (head - tail > max_fill)
			break;
		reserved = __sync_val_compare_and_swap(&r->head, head, head + 1) == head;
	}
	if (!reserved) {
		count(lost_counter);
		return NULL;
	}
	/*
	 * User space drains on a 10 ms timer; in a burst, wake it through the
	 * shared ring (which it waits on) once this ring is a quarter full. Once
	 * per tail: the reader moves the tail by whole batches, so the fill
	 * level can jump past any exact value.
	 */
	if (head - tail >= (cpu_ring_mask + 1) / 4 && r->woke != tail + 1) {
		r->woke = tail + 1;
		bpf_ringbuf_output(&events, &cpu, sizeof(cpu), BPF_RB_FORCE_WAKEUP);
	}
	return (void *)(r + 1) + (head & cpu_ring_mask) * SF_CPU_SLOT;
}

/*
 * Publishes the slot by storing its stamp (never 0) last. The exchange is a
 * full barrier on every JIT, so the record's other stores are visible first.
 * Nothing counts what is published: the ring's head does.
 */
static __always_inline void cpu_ring_submit(struct synfin_event *e, __u64 ts_ns)
{
	__sync_lock_test_and_set(&e->ts_ns, ts_ns);
}

/* The time-wait mini-socket's programs and map: they use the rings and filters above. */
/* A record outside the filters the socket-less programs can apply (no owner, no cgroup). */
static __always_inline bool tuple_filtered_out(const struct synfin_event *rec)
{
	return (filter_family && rec->family != filter_family) ||
	       !ports_match(rec->sport, rec->dport) || (filter_netns && rec->netns != filter_netns);
}

/*
 * Secondary records (drops, resets' reasons, owners: a SYN flood or a port
 * scan makes them at any rate) never take the last half of a ring: the state
 * and time-wait records keep it, and a flood's records are lost first, counted.
 */
static __always_inline bool secondary_record(__u32 lost_counter)
{
	return lost_counter == SF_CNT_DROP_LOST || lost_counter == SF_CNT_RST_LOST ||
	       lost_counter == SF_CNT_OWNER_LOST;
}

/* A record built on the stack, into this CPU's ring (or counted in lost_counter). */
static __always_inline void publish_copy(const struct synfin_event *rec, __u32 lost_counter)
{
	struct synfin_event *e = cpu_ring_reserve(lost_counter, secondary_record(lost_counter) ?
								cpu_ring_mask / 2 : cpu_ring_mask);

	if (!e)
		return;
	__builtin_memcpy(e, rec, sizeof(*rec)); /* ts_ns 0: unpublished until stamped */
	cpu_ring_submit(e, bpf_ktime_get_ns());
}

#include "segment.bpf.h"
#include "timewait.bpf.h"
#include "reset.bpf.h"
#include "owner.bpf.h"
#include "drop.bpf.h"
#include "synack.bpf.h"

/*
 * The local port. inet_num is 0 once the socket has left its bind bucket
 * (at CLOSE), inet_sport until listen()/connect() publish it: take whichever
 * is set. Before connect() picks a port (SYN_SENT) both are 0.
 */
static __always_inline __u16 local_port(const struct sock *sk, const struct tcp_sock *tp, bool btf)
{
	__u16 num = RD(btf, sk, __sk_common.skc_num);

	if (num)
		return num;
	return bpf_ntohs(RD(btf, tp, inet_conn.icsk_inet.inet_sport));
}

static __always_inline void fill_event(struct synfin_event *e, const struct sock *sk,
				       const struct tcp_sock *tp, bool btf, int oldstate,
				       int newstate)
{
	e->pid = 0;
	e->comm[0] = 0;
	if (in_owner_context(oldstate, newstate)) {
		e->pid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
	}
	e->type = SF_EV_STATE;
	e->oldstate = oldstate;
	e->newstate = newstate;
	e->local_isn = e->remote_isn = e->srtt_us = 0;
	e->bytes_acked = e->bytes_received = 0;
	e->sk_err = e->close_flags = e->retrans = e->tw_kind = 0;
	if (newstate == SF_TCP_ESTABLISHED)
		read_handshake(tp, btf, e);
	else if (newstate == SF_TCP_CLOSE)
		read_close(sk, tp, btf, oldstate, e);
}

/* One transition of one socket, as the handler has read it so far. */
struct transition {
	const struct sock *sk;
	const struct tcp_sock *tp;
	struct cgroup *cg;
	__u64 ts_ns;
	__u32 netns;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u8 oldstate;
	__u8 newstate;
};

static __always_inline void fill_record(struct synfin_event *e, const struct transition *t,
					bool btf)
{
	struct cgroup *cg = t->cg;

	e->ts_ns = 0; /* stamped by the caller, last (see cpu_ring_submit()) */
	e->skaddr = (__u64)t->sk;
	e->cgroup_id = !cg ? 0 : btf ? cg->kn->id : BPF_CORE_READ(cg, kn, id);
	read_addrs(t->sk, btf, t->family, e);
	e->netns = t->netns;
	e->sport = t->sport;
	e->dport = t->dport;
	e->family = t->family;
	fill_event(e, t->sk, t->tp, btf, t->oldstate, t->newstate);
}

static __always_inline bool skipped_for_test(int oldstate, int newstate)
{
	return test_skip_handover &&
	       ((oldstate == SF_TCP_FIN_WAIT1 && newstate == SF_TCP_FIN_WAIT2) ||
		(oldstate == SF_TCP_FIN_WAIT2 && newstate == SF_TCP_CLOSE));
}

/*
 * A CLOSE that hands over to a mini-socket and found the ring full: its
 * tuple leaves tw_armed all the same, so that user space, inferring the
 * close, counts it among the ring's losses and not as a run never made.
 */
static __always_inline void forget_armed(const struct transition *t, bool btf)
{
	struct synfin_event rec = {};

	if (t->newstate != SF_TCP_CLOSE ||
	    (t->oldstate != SF_TCP_FIN_WAIT2 && t->oldstate != SF_TCP_CLOSING))
		return;
	read_addrs(t->sk, btf, t->family, &rec);
	rec.netns = t->netns;
	rec.sport = t->sport;
	rec.dport = t->dport;
	rec.family = t->family;
	tw_was_armed(&rec);
}

static __always_inline int handle_set_state(const struct sock *sk, const struct tcp_sock *tp,
					    bool btf, int oldstate, int newstate)
{
	struct synfin_event *e;
	struct transition t;
	struct cgroup *cg;
	__u16 family, sport, dport;
	__u32 netns;

	if (skipped_for_test(oldstate, newstate))
		return 0;
	family = RD(btf, sk, __sk_common.skc_family);
	if (filter_family && family != filter_family)
		return 0;
	sport = local_port(sk, tp, btf);
	dport = bpf_ntohs(RD(btf, sk, __sk_common.skc_dport));
	netns = btf ? sk->__sk_common.skc_net.net->ns.inum :
		      BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);

	if (!ports_match(sport, dport))
		return 0;
	if (filter_netns && netns != filter_netns)
		return 0;
	/* sk_cgrp_data.cgroup is copied from the listener into accepted children. */
	cg = RD(btf, sk, sk_cgrp_data.cgroup);
	if (!cgroup_matches(cg))
		return 0;

	t.sk = sk;
	t.tp = tp;
	t.cg = cg;
	t.netns = netns;
	t.sport = sport;
	t.dport = dport;
	t.family = family;
	t.oldstate = oldstate;
	t.newstate = newstate;
	t.ts_ns = bpf_ktime_get_ns();
	e = cpu_ring_reserve(SF_CNT_LOST, cpu_ring_mask);
	if (!e) {
		forget_armed(&t, btf);
		return 0;
	}
	fill_record(e, &t, btf);
	if (e->close_flags & (SF_CLOSE_TIME_WAIT | SF_CLOSE_TW_FIN_WAIT2) && tw_was_armed(e))
		e->close_flags |= SF_CLOSE_TW_MADE;
	cpu_ring_submit(e, t.ts_ns);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(set_state_btf, const struct sock *sk, const int oldstate, const int newstate)
{
	/* NULL unless this is a TCP socket: the protocol filter and the cast in one. */
	struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);

	if (!tp || sk->sk_protocol != IPPROTO_TCP)
		return 0;
	return handle_set_state(sk, tp, true, oldstate, newstate);
}

SEC("tracepoint/sock/inet_sock_set_state")
int set_state_tp(struct trace_event_raw_inet_sock_set_state *ctx)
{
	const struct sock *sk = ctx->skaddr;

	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	return handle_set_state(sk, (const struct tcp_sock *)sk, false, ctx->oldstate,
				ctx->newstate);
}
