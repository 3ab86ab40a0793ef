/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Who holds a socket, where no state transition tells: accept() in a process
 * that never called listen() (a pre-forking server's worker), a holder that
 * closes its copy of a socket another holds too (fork, SCM_RIGHTS), and a
 * holder that exits. They fire per accept, close and process exit, never per
 * packet.
 *
 * The accept hooks are the syscall exit tracepoints: the new descriptor is
 * the return value, resolved through the task's own file table (no kprobe,
 * no fentry). Included by state.bpf.c: the same rings and filters.
 */
#ifndef SYNFIN_OWNER_BPF_H
#define SYNFIN_OWNER_BPF_H

#define S_IFMT_BITS 00170000
#define S_IFSOCK_BITS 0140000

/* Kernels before file_ref_t (6.13) count a file's references in f_count. */
struct file___f_count {
	atomic_long_t f_count;
} __attribute__((preserve_access_index));

/* The file behind descriptor fd of the current task, or NULL. */
static __always_inline struct file *current_fd_file(long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;

	if (fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	bpf_core_read(&file, sizeof(file), &fds[fd]);
	return file;
}

static __always_inline bool is_socket_file(const struct file *file)
{
	return file && (BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT_BITS) == S_IFSOCK_BITS;
}

/* The socket file behind descriptor fd of the current task, or NULL. */
static __always_inline struct file *current_fd_socket_file(long fd)
{
	struct file *file = current_fd_file(fd);

	return is_socket_file(file) ? file : NULL;
}

static __always_inline const struct sock *file_sock(const struct file *file)
{
	struct socket *sock = file ? BPF_CORE_READ(file, private_data) : NULL;

	return sock ? BPF_CORE_READ(sock, sk) : NULL;
}

/* More than one reference: another descriptor (another process's, mostly) holds it too. */
static __always_inline bool file_shared(const struct file *file)
{
	const struct file___f_count *old = (const void *)file;

	if (bpf_core_field_exists(old->f_count))
		return BPF_CORE_READ(old, f_count.counter) > 1;
	/* file_ref_t counts from 0 (one reference); dead values are negative */
	return BPF_CORE_READ(file, f_ref.refcnt.counter) > 0;
}

static __always_inline bool is_tcp(const struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	return (family == AF_INET || family == AF_INET6) &&
	       BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP;
}

/*
 * The record names the socket by its address only: user space keeps it for a
 * socket it tracks (so the filters have already been applied to that socket),
 * and reading the tuple here would double the program's cost for nothing.
 */
static __always_inline int note_holder(const struct sock *sk, __u8 kind)
{
	struct synfin_event rec = {};

	if (!sk || !is_tcp(sk))
		return 0;
	rec.type = SF_EV_OWNER;
	rec.newstate = kind;
	rec.skaddr = (__u64)sk;
	rec.pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(rec.comm, sizeof(rec.comm));
	publish_copy(&rec, SF_CNT_OWNER_LOST);
	return 0;
}

static __always_inline int note_accept(long fd)
{
	return note_holder(file_sock(current_fd_socket_file(fd)), SF_OWNER_ACCEPTED);
}

/*
 * A close() that is not the socket's last (its file shared): a holder lets
 * go of a socket another process holds too (after fork(), after passing it
 * over SCM_RIGHTS). One descriptor lookup per close() on the host; a record
 * only for a shared TCP socket.
 */
SEC("tracepoint/syscalls/sys_enter_close")
int owner_close(struct trace_event_raw_sys_enter *ctx)
{
	struct file *file = current_fd_file((long)ctx->args[0]);

	/* Shared first: most closes are a file's last, and then its inode is never read. */
	if (!file || !file_shared(file) || !is_socket_file(file))
		return 0;
	return note_holder(file_sock(file), SF_OWNER_RELEASED);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int owner_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return note_accept(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int owner_accept(struct trace_event_raw_sys_exit *ctx)
{
	return note_accept(ctx->ret);
}

/* Called once per exiting thread; the process is gone with its last (signal->live 0). */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(owner_exit, struct task_struct *task)
{
	struct synfin_event rec = {};

	if (task->signal->live.counter)
		return 0;
	rec.type = SF_EV_EXIT;
	rec.pid = task->tgid;
	bpf_probe_read_kernel_str(rec.comm, sizeof(rec.comm), task->comm);
	publish_copy(&rec, SF_CNT_OWNER_LOST);
	return 0;
}

#endif
