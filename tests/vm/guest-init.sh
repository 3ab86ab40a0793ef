#!/bin/sh
# PID 1 of the test VM (busybox): mount the host's root read-only and the
# checkout read-write over 9p, give the kernel's own modules a place where
# modprobe finds them, run the command in a chroot, report its exit status
# on the console for run-vm.sh, power off.
export PATH=/bin
/bin/busybox --install -s /bin
MARKER=SYNFIN-VM-EXIT-STATUS

param() {
	for word in $(cat /proc/cmdline); do
		case "$word" in "$1="*) echo "${word#*=}" ;; esac
	done
}

finish() {
	echo "$MARKER=$1"
	sync
	poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules/order 2>/dev/null); do
	insmod "/modules/$m" || echo "guest-init: insmod $m failed"
done

NR=/newroot
REPO=$(param synfin.repo)
MODULES=$(param synfin.modules)
P9="trans=virtio,version=9p2000.L,msize=262144"
mount -t 9p -o "$P9,ro" hostroot $NR || finish 125
mount -t proc proc $NR/proc
mount -t sysfs sys $NR/sys
mount -t devtmpfs dev $NR/dev
mkdir -p $NR/dev/pts $NR/dev/shm
mount -t devpts devpts $NR/dev/pts
mount -t tmpfs tmpfs $NR/dev/shm
for d in /tmp /run /var/tmp /root; do
	mount -t tmpfs tmpfs "$NR$d"
done
# After the tmpfs mounts: the checkout may live under one of them (CI clones into /tmp).
mkdir -p "$NR$REPO" 2>/dev/null
mount -t 9p -o "$P9" repo "$NR$REPO" || finish 125
mount -t bpf bpf $NR/sys/fs/bpf
mount -t tracefs tracefs $NR/sys/kernel/tracing
mount -t debugfs debugfs $NR/sys/kernel/debug
mount -t cgroup2 cgroup2 $NR/sys/fs/cgroup
# The host's /lib/modules knows nothing of this kernel (and may not exist):
# the unpacked package's modules are in the checkout. The kernel runs its
# modprobe helper in PID 1's root (this initramfs), so point it at a wrapper
# that runs the host's modprobe in the new root with that module tree:
# autoloading (veth, nf_tables, tcp_diag, ...) then just works.
if [ -n "$MODULES" ]; then
	printf '#!/bin/sh\nexec /bin/chroot %s /sbin/modprobe -d %s "$@"\n' "$NR" "$MODULES" \
		>/bin/modprobe-in-root
	chmod +x /bin/modprobe-in-root
	echo /bin/modprobe-in-root >/proc/sys/kernel/modprobe
fi

CMD=$(param synfin.cmd | base64 -d)
echo "SYNFIN-VM-BEGIN"
CI_FLAG=$(param synfin.ci)
chroot $NR /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root LANG=C.UTF-8 VMTEST=1 CI="$CI_FLAG" PYTHONDONTWRITEBYTECODE=1 \
	/bin/bash -c "ip link set lo up; cd '$REPO' && $CMD"
finish $?
