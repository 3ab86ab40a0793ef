#!/usr/bin/env bash
# Runs a command inside a qemu VM booting another kernel, with the host's root
# filesystem shared read-only (9p) and this checkout shared read-write at the
# same path, and returns the command's exit status.
#
#   tests/vm/run-vm.sh [CMD ARGS...]       default CMD: uname -r
#
# Kernel: the image that Debian's meta-package KERNEL_PACKAGE (default
# linux-image-amd64, the 6.1 series; linux-image-6.12-amd64 the 6.12 one)
# depends on today (resolved at run time with apt, fetched with apt-get
# download, unpacked, never installed), or KERNEL=/path/bzImage
# (then its 9p/virtio drivers must be built in, or give INITRD=). If
# VM_USE_VNG=1 and virtme-ng's vng is installed, vng runs the command instead.
# VM_ACCEL=tcg (default; KVM cannot boot a normal kernel on our CI machines)
# or kvm. VM_TIMEOUT seconds (default 1500), VM_IDLE_TIMEOUT seconds of a silent
# console (default 420) before the guest is taken for hung. VM_MEM (default 2G). VM_KERNEL_LOG:
# the kernel's log options (default "quiet loglevel=4": a panic, a lockup or an
# RCU stall reaches the console, whose last lines are printed when the guest
# gives no status; "loglevel=7" shows everything).
# A guest that gives no exit status is run once more. Exit status: the
# command's; 125 when neither guest gave one (crash, panic, hang, timeout); 2
# when the host lacks a tool.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=$REPO/.output/vm
ACCEL=${VM_ACCEL:-tcg}
TIMEOUT=${VM_TIMEOUT:-1500}
IDLE=${VM_IDLE_TIMEOUT:-420}
MEM=${VM_MEM:-2G}
MARKER=SYNFIN-VM-EXIT-STATUS

die() {
	echo "run-vm: $*" >&2
	exit "${2:-2}"
}

require_tools() {
	local missing=()
	command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
	[ -x /bin/busybox ] && /bin/busybox --list | grep -x cpio >/dev/null || missing+=(busybox-static)
	command -v depmod >/dev/null || missing+=(kmod)
	command -v dpkg-deb >/dev/null || missing+=(dpkg)
	[ ${#missing[@]} -eq 0 ] || die "missing host tools: apt-get install ${missing[*]}"
}

# A meta-package (linux-image-amd64) depends on the versioned image package of the day.
debian_kernel_package() {
	apt-cache depends "${KERNEL_PACKAGE:-linux-image-amd64}" 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n 1
}

# Unpacks Debian's kernel once into $CACHE/<package>/ (never installed).
fetch_debian_kernel() {
	local pkg=$1 dir=$CACHE/$1
	if [ ! -f "$dir/.unpacked" ]; then
		mkdir -p "$dir"
		(cd "$CACHE" && apt-get download -qq "$pkg" 2>/dev/null) ||
			{ apt-get update -qq >/dev/null && (cd "$CACHE" && apt-get download -qq "$pkg"); }
		dpkg-deb -x "$CACHE/${pkg}"_*.deb "$dir"
		rm -f "$CACHE/${pkg}"_*.deb
		depmod -b "$dir" "${pkg#linux-image-}"
		touch "$dir/.unpacked"
	fi
	echo "$dir"
}

# The modules that mounting a 9p root needs, in load order, for busybox insmod.
root_modules() {
	local dir=$1 ver=$2 mod
	for mod in virtio_pci 9pnet_virtio 9p; do
		modprobe -d "$dir" -S "$ver" --show-depends "$mod" | awk '$1 == "insmod" { print $2 }'
	done | awk '!seen[$0]++'
}

# A small initramfs: static busybox, those modules, and the guest's init.
build_initramfs() {
	local dir=$1 ver=$2 out=$3 staging
	staging=$(mktemp -d)
	mkdir -p "$staging"/{bin,dev,proc,sys,newroot,modules}
	cp /bin/busybox "$staging/bin/busybox"
	ln -s busybox "$staging/bin/sh"
	root_modules "$dir" "$ver" | while read -r ko; do
		cp "$ko" "$staging/modules/"
		basename "$ko" >>"$staging/modules/order"
	done
	cp "$REPO/tests/vm/guest-init.sh" "$staging/init"
	chmod +x "$staging/init"
	(cd "$staging" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$out"
	rm -rf "$staging"
}

run_with_vng() {
	exec timeout "$TIMEOUT" vng --run "${KERNEL:-}" --rwdir "$REPO" -- \
		bash -c "cd '$REPO' && VMTEST=1 $(printf '%q ' "$@")"
}

# Stops the guest (its pid in pidfile) once its console has been silent for
# IDLE seconds: a hung guest (QEMU TCG's stale int3, README) is known in
# minutes, not at TIMEOUT. Every test prints its name and its result, and none
# runs near IDLE without a word.
watch_console() {
	local log=$1 pidfile=$2 idle
	while sleep 15; do
		[ -s "$pidfile" ] && [ -f "$log" ] || continue
		idle=$(($(date +%s) - $(stat -c %Y "$log")))
		if [ "$idle" -ge "$IDLE" ]; then
			echo "run-vm: the guest's console has been silent for ${idle}s: stopping it" >&2
			kill "$(cat "$pidfile")" 2>/dev/null
			return 0
		fi
	done
}

boot() {
	local kernel=$1 initrd=$2 modules=$3 log=$4 watchdog
	shift 4
	# The command travels base64-encoded on the kernel command line: no quoting games.
	local cmd
	cmd=$(printf '%q ' "$@" | base64 -w0)
	rm -f "$CACHE/qemu.pid" "$log"
	watch_console "$log" "$CACHE/qemu.pid" &
	watchdog=$!
	timeout "$TIMEOUT" qemu-system-x86_64 -accel "$ACCEL" -m "$MEM" -smp 2 -no-reboot \
		-nodefaults -display none -serial stdio -net none -pidfile "$CACHE/qemu.pid" \
		-kernel "$kernel" -initrd "$initrd" \
		-append "console=ttyS0 ${VM_KERNEL_LOG:-quiet loglevel=4} panic=-1 synfin.repo=$REPO synfin.modules=$modules synfin.cmd=$cmd synfin.ci=${CI:-}" \
		-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
		-virtfs "local,path=$REPO,mount_tag=repo,security_model=none,multidevs=remap" \
		</dev/null | tee "$log" | sed -u -n "/^SYNFIN-VM-BEGIN/,\$ { /^SYNFIN-VM-BEGIN/d; /^$MARKER=/d; p }"
	kill "$watchdog" 2>/dev/null || true
	wait "$watchdog" 2>/dev/null || true
}

# Why a guest gave no exit status, with the console's end (CI keeps only what
# was printed).
report_no_status() {
	local log=$1
	if ! grep -q '^SYNFIN-VM-BEGIN' "$log"; then
		echo "run-vm: the guest died before the command began" >&2
	else
		echo "run-vm: the guest gave no exit status (a crash, a panic, a hang, or past ${TIMEOUT}s)" >&2
	fi
	echo "run-vm: the console's last lines:" >&2
	tail -n 25 "$log" | sed 's/^/  console: /' >&2
}

main() {
	[ $# -gt 0 ] || set -- uname -r
	if [ "${VM_USE_VNG:-}" = 1 ] && command -v vng >/dev/null; then
		run_with_vng "$@"
	fi
	require_tools
	mkdir -p "$CACHE"
	local kernel initrd modules="" label pkg dir ver status attempt
	if [ -n "${KERNEL:-}" ]; then
		kernel=$KERNEL initrd=${INITRD:-} label="$KERNEL"
		[ -n "$initrd" ] || { initrd=$CACHE/initrd-builtin.gz; build_initramfs /nonexistent none "$initrd" 2>/dev/null || true; }
	else
		pkg=$(debian_kernel_package)
		if [ -z "$pkg" ]; then
			apt-get update -qq >/dev/null 2>&1 || true
			pkg=$(debian_kernel_package)
		fi
		[ -n "$pkg" ] || die "cannot resolve ${KERNEL_PACKAGE:-linux-image-amd64} (apt-get update?)"
		dir=$(fetch_debian_kernel "$pkg")
		ver=${pkg#linux-image-}
		kernel=$(echo "$dir"/boot/vmlinuz-*)
		initrd=$CACHE/initrd-$ver.gz
		[ -f "$initrd" ] || build_initramfs "$dir" "$ver" "$initrd"
		modules=$dir # modprobe -d: the tree that holds lib/modules/$ver
		label="$ver (Debian $pkg)"
	fi
	echo "run-vm: kernel $label, accel $ACCEL" >&2
	# QEMU TCG's stale int3 (README) can kill or hang a guest at any patch of
	# the kernel's text, booting included: a guest that gives no status is run
	# once more, said, with the first one's console kept and its end printed.
	for attempt in 1 2; do
		boot "$kernel" "$initrd" "$modules" "$CACHE/console.log" "$@" || true
		status=$(sed -n "s/^$MARKER=\([0-9]*\).*/\1/p" "$CACHE/console.log" | tail -n 1)
		[ -z "$status" ] || exit "$status"
		report_no_status "$CACHE/console.log"
		mv "$CACHE/console.log" "$CACHE/console-attempt-$attempt.log"
		[ "$attempt" -eq 2 ] || echo "run-vm: running the command once more in a new guest" >&2
	done
	die "two guests gave no exit status; see $CACHE/console-attempt-{1,2}.log" 125
}

main "$@"
