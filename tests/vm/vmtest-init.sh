#!/bin/busybox sh
# shellcheck shell=dash # busybox ash; stty -F, mount --move are applets
# Guest side of tests/vm/vmtest.sh (tests/vm/guest-init.sh belongs to
# run-vm.sh).  Runs as PID 1 in two stages:
#
#   stage 1 (no argument): /init inside the initramfs.  Loads the virtio/9p/
#     overlay modules, builds the guest root (host root over 9p, read-only,
#     under a tmpfs overlay so every path is writable and changes vanish at
#     power-off), mounts the checkout read-write at its host path and
#     switch_roots into it.
#   stage 2 ("stage2"): run from the shared checkout after switch_root with
#     the host's /bin/busybox.  Mounts the pseudo filesystems tests need, runs
#     the command and reports its exit status on ttyS2.
#
# Parameters arrive as environment variables from the kernel command line
# (VMTEST_CHECKOUT, VMTEST_RUNDIR, VMTEST_MODULES); dotted names would be
# swallowed by the kernel as module parameters, hence the underscores.
#
# Serial ports: ttyS0 = kernel console (a log file on the host),
#               ttyS1 = command stdout+stderr (host stdout),
#               ttyS2 = "VMTEST_EXIT_STATUS=<n>" line (a file on the host).

msize=262144 # 9p payload size; the 8 KiB default makes 9p I/O crawl

fail() {
	echo "vmtest guest: $*" >&2
	# Without a status line the host reports "no exit status" (125).
	poweroff -f
}

load_boot_modules() {
	# /modules/order lists the .ko files dependency-first (the host computed
	# it with modprobe --show-depends); absent when all is built in.
	[ -f /modules/order ] || return 0
	while read -r ko; do
		insmod "/modules/$ko" || echo "vmtest guest: insmod $ko failed" >&2
	done </modules/order
}

mount_scratch_tmpfs() {
	# Fresh, empty scratch space (the host's /tmp would show through the
	# overlay otherwise).  /var/run is a symlink to /run on Debian, and
	# `ip netns add` needs /run/netns.
	for d in /tmp /run /var/tmp; do
		mkdir -p "$1$d"
		mount -t tmpfs -o mode=1777 tmpfs "$1$d"
	done
	chmod 0755 "$1/run"
	mkdir -p "$1/run/netns" "$1/run/lock"
}

mount_guest_root() {
	mkdir -p /mnt/host /mnt/rw /newroot
	mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=$msize \
		hostroot /mnt/host || fail "cannot mount host root over 9p"
	mount -t tmpfs -o mode=0755 rw /mnt/rw
	mkdir -p /mnt/rw/upper /mnt/rw/work
	# The overlay makes /etc, /root, /var ... writable without touching the
	# host.  Fall back to the bare read-only root if overlayfs is missing.
	if ! mount -t overlay -o lowerdir=/mnt/host,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work \
		overlay /newroot 2>/dev/null; then
		echo "vmtest guest: overlayfs unavailable, root is read-only" >&2
		mount --bind /mnt/host /newroot
	fi
	mount_scratch_tmpfs /newroot
	# After the tmpfs mounts: the checkout may live under one of them (CI
	# clones into /tmp).  cache=mmap allows writable shared mmaps.
	mkdir -p "/newroot$VMTEST_CHECKOUT"
	mount -t 9p -o trans=virtio,version=9p2000.L,cache=mmap,msize=$msize \
		checkout "/newroot$VMTEST_CHECKOUT" || fail "cannot mount checkout over 9p"
}

stage1() {
	export PATH=/bin
	/bin/busybox --install -s /bin
	mount -t proc proc /proc
	mount -t sysfs sysfs /sys
	mount -t devtmpfs devtmpfs /dev
	# The initramfs has no /dev/console node, so the kernel could not give
	# us stdio; take it now that devtmpfs is there.
	exec </dev/console >/dev/console 2>&1
	load_boot_modules
	mount_guest_root
	for fs in proc sys dev; do
		mount --move "/$fs" "/newroot/$fs"
	done
	exec switch_root /newroot /bin/busybox sh \
		"$VMTEST_CHECKOUT/tests/vm/vmtest-init.sh" stage2
}

mount_pseudo_filesystems() {
	[ -L /var/run ] || [ -d /var/run ] || ln -s /run /var/run
	mkdir -p /dev/pts /dev/shm
	mount -t tmpfs -o mode=1777 tmpfs /dev/shm
	mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
	mount -t bpf -o mode=0700 bpf /sys/fs/bpf
	mount -t tracefs tracefs /sys/kernel/tracing
	mount -t debugfs debugfs /sys/kernel/debug
	mount -t cgroup2 cgroup2 /sys/fs/cgroup
	mount -t securityfs securityfs /sys/kernel/security 2>/dev/null || true
}

expose_kernel_modules() {
	# The Debian kernel's modules live in the host-side cache; bind them to
	# /lib/modules/$(uname -r) so on-demand loading (veth, sch_*, ...) works.
	[ -n "$VMTEST_MODULES" ] && [ -d "$VMTEST_MODULES" ] || return 0
	dir=/lib/modules/$(uname -r)
	mkdir -p "$dir" && mount --bind "$VMTEST_MODULES" "$dir"
}

configure_system() {
	hostname vmtest
	ip link set lo up
	ulimit -l unlimited # RLIMIT_MEMLOCK for BPF map/prog loads on old kernels
	# Raw output on the command port: no \n -> \r\n translation, no echo.
	stty -F /dev/ttyS1 raw -echo
}

run_command() {
	# The command's stdout/stderr go through a pipe (not a tty), like in CI:
	# no colour codes, and stdin is /dev/null.
	cd "$VMTEST_CHECKOUT" || return 126
	rc_file=/run/vmtest-rc
	echo 125 >"$rc_file"
	(
		/bin/bash "$VMTEST_RUNDIR/cmd.sh" </dev/null 2>&1
		echo $? >"$rc_file"
	) | cat >/dev/ttyS1
	cat "$rc_file"
}

stage2() {
	export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	mount_pseudo_filesystems
	expose_kernel_modules
	configure_system
	rc=$(run_command)
	sync
	# A unique marker on a dedicated port: kernel messages cannot mix in.
	echo "VMTEST_EXIT_STATUS=$rc" >/dev/ttyS2
	poweroff -f
}

if [ "$1" = stage2 ]; then
	stage2
else
	stage1
fi
