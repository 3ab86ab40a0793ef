/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The contract between the BPF programs and user space: every record that
 * crosses the ring buffer is declared here, and nowhere else.
 *
 * Layout rules: largest fields first, fixed widths, no padding holes
 * (checked by _Static_assert in user space), so the same bytes mean the same
 * thing to clang -target bpf and to gcc on the host.
 */
#ifndef SYNFIN_H
#define SYNFIN_H

#ifndef __VMLINUX_H__ /* user space: the BPF side gets these from vmlinux.h */
#include <linux/types.h>
#endif

#define SYNFIN_COMM_LEN 16

/* Kernel TCP states (include/net/tcp_states.h); the values are ABI. */
enum synfin_tcp_state {
	SF_TCP_ESTABLISHED = 1,
	SF_TCP_SYN_SENT,
	SF_TCP_SYN_RECV,
	SF_TCP_FIN_WAIT1,
	SF_TCP_FIN_WAIT2,
	SF_TCP_TIME_WAIT,
	SF_TCP_CLOSE,
	SF_TCP_CLOSE_WAIT,
	SF_TCP_LAST_ACK,
	SF_TCP_LISTEN,
	SF_TCP_CLOSING,
	SF_TCP_NEW_SYN_RECV,
	SF_TCP_MAX_STATES,
};

enum synfin_event_type {
	SF_EV_STATE = 1,   /* one tcp_set_state() transition: struct synfin_event */
	SF_EV_SEGMENT = 2, /* one TCP segment on the wire: struct synfin_segment */
	SF_EV_TW = 3,      /* one time-wait mini-socket's timer: struct synfin_event, tw_kind set */
	/*
	 * One RST the kernel sent (tcp:tcp_send_reset): struct synfin_event, with
	 * skaddr the socket it was for (a full socket, a request or a time-wait
	 * mini-socket; 0: none, a segment no socket wanted), oldstate that
	 * socket's state, the tuple local side first, and rst_reason.
	 */
	SF_EV_RST = 4,
	/*
	 * A socket's holder changed where no transition tells: struct
	 * synfin_event, skaddr the socket, pid/comm the process, newstate an
	 * enum synfin_owner_kind; nothing else is set.
	 */
	SF_EV_OWNER = 5,
	/*
	 * A process ended, its last thread gone (sched:sched_process_exit): pid/comm
	 * only. Any socket it held is held by another process now, or by none.
	 */
	SF_EV_EXIT = 6,
	/*
	 * A TCP segment that opens or closes a connection (SYN, SYN-ACK, FIN or
	 * RST) dropped on this host (skb:kfree_skb, with the kernel's reason):
	 * struct synfin_event with saddr/sport the segment's source and
	 * daddr/dport its destination (as on the wire: either may be local),
	 * netns, close_flags its TCP flags byte and drop_reason.
	 */
	SF_EV_DROP = 7,
};

/* SF_EV_OWNER's newstate: how the holder changed. */
enum synfin_owner_kind {
	/* accept() (syscalls:sys_exit_accept4, sys_exit_accept): the process holds it now */
	SF_OWNER_ACCEPTED = 0,
	/*
	 * close() of a descriptor whose file another holds too (syscalls:
	 * sys_enter_close, the file's count above one): a process that forked,
	 * or passed the socket over SCM_RIGHTS, lets go of its copy; the socket
	 * is someone else's now (user space looks whose).
	 */
	SF_OWNER_RELEASED = 1,
};

/*
 * synfin_event.tw_kind of an SF_EV_TW record: what happened to the timer of a
 * time-wait mini-socket (skaddr is the mini-socket; the tuple, netns and
 * family are its own; newstate its substate, SF_TCP_TIME_WAIT or
 * SF_TCP_FIN_WAIT2). The timer is the mini-socket's whole life: tcp_time_wait()
 * arms it just before the socket it replaces reaches CLOSE, it expires at the
 * natural end, and every early end (the tuple reused, a RST, tcp_tw_reuse,
 * the namespace purged) cancels it. Re-arming (a FIN or a retransmitted FIN)
 * is a cancel followed by an arm of the same mini-socket.
 */
enum synfin_tw_kind {
	SF_TW_ARMED = 1,
	/*
	 * Timers that expired: a struct synfin_tw_expiries, not a synfin_event.
	 * A storm's mini-sockets share one timer-wheel bucket (seconds wide) and
	 * expire together, tens of thousands in one softirq run: one slot per
	 * mini-socket would overrun the ring, so their addresses go in batches.
	 */
	SF_TW_EXPIRED,
	SF_TW_CANCELED,
	/*
	 * A FIN reached a time-wait mini-socket (skaddr 0: the segment's tuple,
	 * local side first, and its namespace): one in the FIN_WAIT2 substate
	 * enters TIME_WAIT then. Its timer is re-armed for TCP_TIMEWAIT_LEN, but
	 * within the same timer-wheel bucket (seconds) mod_timer() traces nothing,
	 * so the segment is what tells (bpf/timewait.bpf.h, tw_fin_in).
	 */
	SF_TW_FIN_IN,
	/*
	 * A namespace is going away (its reference count reached 0) and the
	 * kernel purges its time-wait sockets, cancelling their timers in one
	 * burst: one record for the namespace (netns; skaddr 0), instead of one
	 * per mini-socket that would flood the ring. Every mini-socket of that
	 * namespace is gone with it.
	 */
	SF_TW_NETNS_GONE,
};

/*
 * The key of the tw_armed map (bpf/timewait.bpf.h): a connection's tuple as
 * its records give it. Its mini-socket's arm puts it there and the CLOSE that
 * hands over to that mini-socket takes it out, whether or not the CLOSE's
 * record found room in the ring. A key still there when user space looks,
 * long after the arm, is a CLOSE the kernel never ran synfin's program for.
 */
struct synfin_tw_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 netns;
	__u16 sport;
	__u16 dport;
	__u32 family;
};

/* synfin_event.close_flags: what the socket looked like when it reached CLOSE. */
enum synfin_close_flag {
	SF_CLOSE_FIN_RCVD = 1 << 0,   /* the peer's FIN arrived (SOCK_DONE) */
	SF_CLOSE_FIN_SENT = 1 << 1,   /* we sent our FIN (SEND_SHUTDOWN) */
	/*
	 * FIN_WAIT2 or CLOSING -> CLOSE with both FINs exchanged and no error:
	 * tcp_time_wait() replaced the socket by a time-wait mini-socket.
	 */
	SF_CLOSE_TIME_WAIT = 1 << 2,
	/*
	 * FIN_WAIT2 -> CLOSE of an orphan (close() already called) before the
	 * peer's FIN: handed to a time-wait mini-socket in FIN_WAIT2 substate,
	 * which enters TIME_WAIT when that FIN comes.
	 */
	SF_CLOSE_TW_FIN_WAIT2 = 1 << 3,
	/*
	 * With either of the two above: the mini-socket's timer was armed for this
	 * tuple just before (bpf/timewait.bpf.h). Without it, and with the timer
	 * programs attached, the kernel made no mini-socket (its table full).
	 */
	SF_CLOSE_TW_MADE = 1 << 4,
};

/* The key of the per-listener maps: its namespace and local port. */
struct sf_listener_port {
	__u32 netns;
	__u32 port;
};

/* Indexes of the per-CPU counter array. */
enum synfin_counter {
	SF_CNT_LOST = 0,    /* ring buffer full: state record dropped */
	SF_CNT_TW_LOST,     /* ring buffer full: SF_EV_TW record dropped */
	SF_CNT_RST_LOST,    /* ring buffer full: SF_EV_RST record dropped */
	SF_CNT_OWNER_LOST,  /* ring buffer full: SF_EV_OWNER or SF_EV_EXIT record dropped */
	SF_CNT_DROP_LOST,   /* ring buffer full: SF_EV_DROP record dropped */
	SF_CNT_MAX,
};

/*
 * One state transition of one TCP socket.
 *
 * saddr/daddr: network byte order; IPv4 uses the first 4 bytes.
 * sport/dport: host byte order. saddr/sport are always the local side.
 * pid/comm: the current task where a system call made the transition
 * (connect(), listen(), close() or shutdown()), which then holds the socket;
 * 0 where the transition ran in softirq (user space knows the holder).
 */
struct synfin_event {
	__u64 ts_ns;     /* bpf_ktime_get_ns() at the transition */
	__u64 skaddr;    /* struct sock address: the lifecycle key */
	__u64 cgroup_id; /* cgroup v2 id of the socket (its creator's cgroup) */
	__u64 bytes_acked;    /* at CLOSE: bytes we sent that the peer acknowledged */
	__u64 bytes_received; /* at CLOSE: bytes received in sequence */
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 pid;   /* owner tgid */
	__u32 netns; /* network namespace inode */
	__u32 local_isn;  /* at ESTABLISHED: our SYN's seq (host order) */
	__u32 remote_isn; /* at ESTABLISHED: the peer's SYN's seq (host order) */
	union {
		__u32 srtt_us;    /* at ESTABLISHED: smoothed RTT; on a child, the SYN-ACK RTT sample */
		__u32 rst_reason; /* SF_EV_RST: the kernel's enum sk_rst_reason value */
		__u32 drop_reason; /* SF_EV_DROP: the kernel's enum skb_drop_reason value */
	};
	__u16 sport;
	__u16 dport;
	__u8 type;   /* enum synfin_event_type */
	__u8 family; /* AF_INET or AF_INET6 */
	__u8 oldstate;
	__u8 newstate;
	__u8 sk_err;      /* at CLOSE: the socket's error (an errno), 0 if none */
	__u8 close_flags; /* at CLOSE: enum synfin_close_flag bits */
	__u8 retrans;     /* at ESTABLISHED and CLOSE: retransmissions so far (SYNs/SYN-ACKs in a handshake) */
	__u8 tw_kind;     /* SF_EV_TW only: enum synfin_tw_kind; 0 otherwise */
	char comm[SYNFIN_COMM_LEN];
};

/*
 * An SF_TW_EXPIRED record: the mini-sockets (their addresses, as the
 * SF_TW_ARMED records' skaddr) whose timers expired on one CPU in one
 * softirq run, from first_ns on, SF_TW_EXPIRY_BATCH at most. It fills a ring
 * slot as a synfin_event does, its type and tw_kind at the same offsets
 * (checked in user space).
 */
#define SF_TW_EXPIRY_BATCH 11
struct synfin_tw_expiries {
	__u64 ts_ns; /* the slot's stamp (synfin_event.ts_ns) */
	__u64 tw[SF_TW_EXPIRY_BATCH];
	__u8 type;   /* SF_EV_TW */
	__u8 count;  /* tw[0..count) */
	__u8 pad[5];
	__u8 tw_kind; /* SF_TW_EXPIRED */
	__u64 first_ns; /* bpf_ktime_get_ns() at the first of these expiries */
	__u64 pad2;
};

/*
 * Per-CPU rings (user/cpuring.c): state records go to one ring per CPU, in an
 * mmap-able array map, instead of the shared BPF ring buffer, whose spinlock
 * both CPUs fight over with interrupts off (measured: most of the program's
 * cost in a storm). Each array element is one CPU's ring: this header, then
 * slots of one struct synfin_event each, a power of two of them (at most
 * 32768: an array element cannot exceed 4 MiB).
 *
 * head: slots reserved, moved by the BPF program with a compare-and-swap;
 * tail: slots consumed, written only by user space. Both only grow.
 * woke: tail + 1 when the program last woke the reader (BPF-only).
 *
 * A slot is published by its ts_ns: the program fills the record with ts_ns
 * 0 and stores the stamp last, with an atomic exchange (a full barrier);
 * user space takes slots in order up to the first with ts_ns 0 and zeroes
 * ts_ns again before it gives the slot back. Nothing here assumes one
 * producer per CPU: a run that interrupts another on the same CPU (softirq
 * over a system call, on a kernel without the tracing recursion guard)
 * reserves the next slot, and a slot reserved and not yet stamped only makes
 * the reader wait for it.
 */
struct synfin_cpu_ring {
	__u64 head;
	__u64 woke;
	__u64 pad0[6]; /* head and tail on their own cache lines */
	__u64 tail;
	__u64 pad1[7];
};

#define SF_CPU_SLOT sizeof(struct synfin_event)
#define SF_CPU_RING_MAX_SLOTS 32768

/* synfin_segment.flags: the TCP header's flag byte (RFC 9293). */
enum synfin_tcp_flag {
	SF_TCPF_FIN = 0x01,
	SF_TCPF_SYN = 0x02,
	SF_TCPF_RST = 0x04,
	SF_TCPF_PSH = 0x08,
	SF_TCPF_ACK = 0x10,
};

/* synfin_segment.opts: which TCP options the segment carried. */
enum synfin_tcp_opt {
	SF_OPT_MSS = 1 << 0,
	SF_OPT_WSCALE = 1 << 1,
	SF_OPT_SACK_OK = 1 << 2,
	SF_OPT_TS = 1 << 3,
};

/* Indexes of the packet layer's per-CPU counter array. */
enum synfin_seg_counter {
	SF_SEG_SEEN = 0, /* TCP segments parsed */
	SF_SEG_SYN,
	SF_SEG_SYNACK,
	SF_SEG_RST,
	SF_SEG_FIN,
	SF_SEG_MALFORMED, /* truncated or inconsistent headers: counted, passed */
	SF_SEG_EMITTED,
	SF_SEG_LOST,
	SF_SEG_MAX,
};

/*
 * One TCP segment, from XDP (ingress) or TC (egress). The tuple is as on the
 * wire: source and destination, not local and remote.
 * saddr/daddr: network byte order; everything else host order.
 */
struct synfin_segment {
	__u64 ts_ns;
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 ifindex;
	__u32 seq;
	__u32 ack;
	__u32 ts_val; /* timestamp option, when SF_OPT_TS */
	__u32 ts_ecr;
	__u16 sport;
	__u16 dport;
	__u16 win; /* the raw window field (unscaled) */
	__u16 len; /* payload bytes */
	__u16 mss; /* when SF_OPT_MSS */
	__u8 type; /* SF_EV_SEGMENT */
	__u8 family;
	__u8 flags; /* the TCP header's flag byte: enum synfin_tcp_flag bits */
	__u8 opts;  /* enum synfin_tcp_opt bits */
	__u8 wscale;
	__u8 dir;   /* 0 ingress (XDP), 1 egress (TC) */
	__u8 pad[4];
};

#endif /* SYNFIN_H */
