/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The time-wait mini-socket, followed through its timer (included by
 * state.bpf.c: the same rings and filters).
 *
 * No tracepoint names the mini-socket tcp_time_wait() puts in place of a
 * closing socket, but its timer is its life (synfin.h, enum synfin_tw_kind),
 * and the timer tracepoints see every timer of the kernel: a timer whose
 * callback is tw_timer_handler is embedded in an inet_timewait_sock. These
 * tracepoints fire for every timer armed or cancelled on the host (about ten
 * of each per TCP connection), so the callback is compared first and nothing
 * else is read for other timers. Loaded only with tp_btf and when kallsyms
 * gives tw_timer_handler's address (kfeatures.c); otherwise user space
 * follows TIME_WAIT through sock_diag.
 */
#ifndef SYNFIN_TIMEWAIT_BPF_H
#define SYNFIN_TIMEWAIT_BPF_H

/* Weak: resolved from kallsyms by libbpf, 0 where it cannot be (the programs are then not loaded). */
extern const void tw_timer_handler __ksym __weak;

static __always_inline bool is_tw_timer(const struct timer_list *timer)
{
	return (const void *)timer->function == &tw_timer_handler;
}

/*
 * Mini-sockets armed before synfin started are nobody's to follow, and there
 * can be hundreds of thousands (a busy namespace): their ends, which come in
 * bursts (a namespace purged at once, a timer-wheel bucket expiring at once),
 * must not fill the rings. start_jiffies: jiffies when the first timer armed
 * after attach (any timer: within microseconds). tw_timeout_jiffies: the
 * shortest mini-socket timeout armed since (TCP_TIMEWAIT_LEN, or less for a
 * FIN_WAIT2 substate with a short tcp_fin_timeout: the shortest keeps the
 * test on the safe side). A timer due before start + timeout was armed
 * before start.
 */
__u64 start_jiffies = 0;
__u64 tw_timeout_jiffies = 0;

static __always_inline bool armed_before_start(const struct timer_list *timer)
{
	__u64 timeout = tw_timeout_jiffies;

	return !timeout || timer->expires - timeout < start_jiffies;
}

static __always_inline void learn_timeout(const struct timer_list *timer)
{
	__u64 timeout = timer->expires - bpf_jiffies64();

	if (!tw_timeout_jiffies || timeout < tw_timeout_jiffies)
		tw_timeout_jiffies = timeout;
}

static __always_inline void read_tw_tuple(const struct inet_timewait_sock *tw,
					  struct synfin_event *e)
{
	if (e->family == AF_INET) {
		*(__u32 *)e->saddr = BPF_CORE_READ(tw, __tw_common.skc_rcv_saddr);
		*(__u32 *)e->daddr = BPF_CORE_READ(tw, __tw_common.skc_daddr);
	} else {
		bpf_core_read(e->saddr, 16, &tw->__tw_common.skc_v6_rcv_saddr);
		bpf_core_read(e->daddr, 16, &tw->__tw_common.skc_v6_daddr);
	}
}

/*
 * Tuples whose mini-socket was just armed, for the CLOSE of the socket it
 * replaces to find (SF_CLOSE_TW_MADE): in the kernel, because the two records
 * can reach user space out of order when the task moved to another CPU in
 * between. An entry lives microseconds (the CLOSE deletes it); LRU for any
 * whose CLOSE is filtered out. One the CLOSE never deleted tells user space
 * that the kernel ran no program there (struct synfin_tw_key).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct synfin_tw_key);
	__type(value, __u8);
} tw_armed SEC(".maps");

static __always_inline void tw_key_of(const struct synfin_event *e, struct synfin_tw_key *k)
{
	__builtin_memcpy(k->saddr, e->saddr, 16);
	__builtin_memcpy(k->daddr, e->daddr, 16);
	k->netns = e->netns;
	k->sport = e->sport;
	k->dport = e->dport;
	k->family = e->family;
}

static __always_inline void note_armed(const struct synfin_event *e)
{
	struct synfin_tw_key k;
	__u8 one = 1;

	tw_key_of(e, &k);
	bpf_map_update_elem(&tw_armed, &k, &one, BPF_ANY);
}

/* At the CLOSE that hands over to a mini-socket (record e filled): was one armed? */
static __always_inline bool tw_was_armed(const struct synfin_event *e)
{
	struct synfin_tw_key k;

	tw_key_of(e, &k);
	return bpf_map_delete_elem(&tw_armed, &k) == 0;
}

static __always_inline const struct inet_timewait_sock *tw_of(const struct timer_list *timer)
{
	return (const void *)timer - bpf_core_field_offset(struct inet_timewait_sock, tw_timer);
}

/* What the filters need of a mini-socket: false when they leave it out. */
static __always_inline bool read_tw_filtered(const struct inet_timewait_sock *tw,
					     struct synfin_event *rec)
{
	rec->family = BPF_CORE_READ(tw, __tw_common.skc_family);
	rec->sport = BPF_CORE_READ(tw, __tw_common.skc_num);
	rec->dport = bpf_ntohs(BPF_CORE_READ(tw, __tw_common.skc_dport));
	rec->netns = BPF_CORE_READ(tw, __tw_common.skc_net.net, ns.inum);
	return !tuple_filtered_out(rec);
}

static __always_inline int emit_tw(const struct timer_list *timer, __u8 kind)
{
	const struct inet_timewait_sock *tw = tw_of(timer);
	struct synfin_event rec = {};

	if (!read_tw_filtered(tw, &rec))
		return 0;
	read_tw_tuple(tw, &rec);
	rec.skaddr = (__u64)tw;
	rec.type = SF_EV_TW;
	rec.oldstate = SF_TCP_TIME_WAIT;
	rec.newstate = BPF_CORE_READ(tw, tw_substate);
	rec.tw_kind = kind;
	if (kind == SF_TW_ARMED)
		note_armed(&rec); /* whether or not the ring has room for the record */
	publish_copy(&rec, SF_CNT_TW_LOST);
	return 0;
}

SEC("tp_btf/timer_start")
int BPF_PROG(tw_timer_start, struct timer_list *timer)
{
	if (!start_jiffies)
		start_jiffies = bpf_jiffies64();
	if (!is_tw_timer(timer))
		return 0;
	learn_timeout(timer);
	return emit_tw(timer, SF_TW_ARMED);
}

/*
 * Expiries come in bursts: a storm's mini-sockets were armed within seconds,
 * the timer wheel files a 60 s timer in a bucket seconds wide, and the whole
 * bucket expires in one softirq run (measured: 40,000 in one or two runs, and
 * one record each overran the rings). So this CPU's expiries are gathered
 * here and published SF_TW_EXPIRY_BATCH to a slot: when the batch is full,
 * and when the timer softirq that expired them ends. Only the timer softirq
 * on this CPU writes it: timers expire in no other context.
 */
struct tw_timer_softirq {
	struct synfin_tw_expiries batch;
	__u32 running; /* this CPU is in its timer softirq (between entry and exit) */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tw_timer_softirq);
} tw_softirq SEC(".maps");

static __always_inline struct tw_timer_softirq *this_cpu_softirq(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&tw_softirq, &zero);
}

static __always_inline void publish_expiries(struct synfin_tw_expiries *batch)
{
	struct synfin_event *slot = cpu_ring_reserve(SF_CNT_TW_LOST, cpu_ring_mask);

	if (!slot) { /* the reservation counted one lost record: these are count */
		counter_add(&counters, SF_CNT_TW_LOST, batch->count - 1);
		batch->count = 0;
		return;
	}
	batch->type = SF_EV_TW;
	batch->tw_kind = SF_TW_EXPIRED;
	__builtin_memcpy(slot, batch, sizeof(*batch)); /* ts_ns 0: unpublished until stamped */
	batch->count = 0;
	cpu_ring_submit(slot, bpf_ktime_get_ns());
}

static __always_inline void stage_expiry(const struct inet_timewait_sock *tw)
{
	struct tw_timer_softirq *sirq = this_cpu_softirq();
	struct synfin_tw_expiries *batch;
	__u8 n;

	if (!sirq)
		return;
	batch = &sirq->batch;
	n = batch->count;
	if (n >= SF_TW_EXPIRY_BATCH) /* cannot be: published when full (for the verifier) */
		return;
	if (!n)
		batch->first_ns = bpf_ktime_get_ns();
	batch->tw[n] = (__u64)tw;
	batch->count = n + 1;
	if (n + 1 == SF_TW_EXPIRY_BATCH)
		publish_expiries(batch);
}

SEC("tp_btf/timer_expire_entry")
int BPF_PROG(tw_timer_expire, struct timer_list *timer)
{
	struct synfin_event rec = {};

	if (is_tw_timer(timer) && !armed_before_start(timer) && read_tw_filtered(tw_of(timer), &rec))
		stage_expiry(tw_of(timer));
	return 0;
}

SEC("tp_btf/softirq_entry")
int BPF_PROG(tw_softirq_entry, unsigned int vec_nr)
{
	struct tw_timer_softirq *sirq;

	if (vec_nr == TIMER_SOFTIRQ && (sirq = this_cpu_softirq()))
		sirq->running = 1;
	return 0;
}

/* The end of a timer softirq run: this CPU's expiries go out, however few. */
SEC("tp_btf/softirq_exit")
int BPF_PROG(tw_softirq_exit, unsigned int vec_nr)
{
	struct tw_timer_softirq *sirq;

	if (vec_nr != TIMER_SOFTIRQ || !(sirq = this_cpu_softirq()))
		return 0;
	sirq->running = 0;
	if (sirq->batch.count)
		publish_expiries(&sirq->batch);
	return 0;
}

/* The last namespace found going away, per CPU: its purge runs on one CPU, in one loop. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} netns_gone SEC(".maps");

static __always_inline bool netns_dying(const struct net *net)
{
	if (bpf_core_field_exists(net->ns.__ns_ref))
		return BPF_CORE_READ(net, ns.__ns_ref.refs.counter) == 0;
	return BPF_CORE_READ((const struct net___count *)net, ns.count.refs.counter) == 0;
}

/* The first cancel of a purged namespace's mini-sockets says it for all of them. */
static __always_inline int note_netns_gone(__u32 netns)
{
	struct synfin_event rec = {};
	__u32 zero = 0, *last = bpf_map_lookup_elem(&netns_gone, &zero);

	if (!last || *last == netns)
		return 0;
	*last = netns;
	rec.type = SF_EV_TW;
	rec.tw_kind = SF_TW_NETNS_GONE;
	rec.netns = netns;
	if (!(filter_netns && netns != filter_netns))
		publish_copy(&rec, SF_CNT_TW_LOST);
	return 0;
}

/*
 * The timer wheel traces the expiry of a timer as a cancel too: expire_timers()
 * detaches it just before it runs it, in the timer softirq. A mini-socket's
 * timer due and cancelled there is being expired; due is not enough alone,
 * as the wheel runs a bucket up to an eighth of its timeout late, and a
 * cancel in that time (a RST, the tuple reused) is a real early end. Nothing
 * else cancels a mini-socket's timer from a timer's callback.
 */
static __always_inline bool being_expired(const struct timer_list *timer)
{
	struct tw_timer_softirq *sirq = this_cpu_softirq();

	return sirq && sirq->running && (__s64)(bpf_jiffies64() - timer->expires) >= 0;
}

SEC("tp_btf/timer_cancel")
int BPF_PROG(tw_timer_cancel, struct timer_list *timer)
{
	const struct inet_timewait_sock *tw;
	const struct net *net;

	if (!is_tw_timer(timer) || armed_before_start(timer))
		return 0;
	tw = tw_of(timer);
	net = BPF_CORE_READ(tw, __tw_common.skc_net.net);
	if (netns_dying(net))
		return note_netns_gone(BPF_CORE_READ(net, ns.inum));
	if (being_expired(timer))
		return 0; /* its expiry follows */
	return emit_tw(timer, SF_TW_CANCELED);
}

#endif
