#!/usr/bin/env bash
# Runs a command as root inside a throwaway qemu VM booting another kernel,
# with the host's root filesystem shared read-only over 9p (under a tmpfs
# overlay, so the guest may write anywhere) and this checkout shared
# read-write at the same absolute path; exits with the command's status.
#
#   tests/vm/vmtest.sh [CMD ARGS...]        default CMD: uname -r
#
# See tests/vm/README.md for the environment variables and exit codes.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECKOUT=$(git -C "$SCRIPT_DIR" rev-parse --show-toplevel 2>/dev/null ||
	{ cd "$SCRIPT_DIR/../.." && pwd; })
CACHE_DIR=$CHECKOUT/.output/vm
GUEST_INIT=$SCRIPT_DIR/vmtest-init.sh
VM_ACCEL=${VM_ACCEL:-tcg}
VM_TIMEOUT=${VM_TIMEOUT:-900}
VM_MEM=${VM_MEM:-2G}
VM_CPUS=${VM_CPUS:-2}
EXIT_NO_STATUS=125
# depmod/modprobe live in sbin, which a non-root PATH may lack.
PATH=$PATH:/usr/sbin:/sbin

die() {
	echo "vmtest: $1" >&2
	exit "${2:-2}"
}

# One line naming every missing Debian package, exit 2.
require_host_tools() {
	local missing=()
	command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
	# The initramfs needs a static busybox (also for its cpio); the dynamic
	# "busybox" package would need its libc copied in too.
	if [[ ! -x /bin/busybox ]] || LC_ALL=C grep -q '/lib64/ld-linux' /bin/busybox; then
		missing+=(busybox-static)
	fi
	command -v modprobe >/dev/null && command -v depmod >/dev/null || missing+=(kmod)
	command -v xz >/dev/null || missing+=(xz-utils)
	command -v timeout >/dev/null || missing+=(coreutils)
	if [[ -z ${KERNEL:-} ]]; then
		command -v apt-get >/dev/null || missing+=(apt)
		command -v dpkg-deb >/dev/null || missing+=(dpkg)
	fi
	((${#missing[@]} == 0)) ||
		die "missing host tools; install them with: apt-get install ${missing[*]}"
}

# linux-image-amd64 is a metapackage depending on the versioned image of
# the day (linux-image-6.1.0-NN-amd64); never hard-code that version.
debian_kernel_package() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1
}

# Without apt lists (offline, no apt-get update) fall back to the newest
# kernel already in the cache.
newest_cached_kernel() {
	local d
	d=$(find "$CACHE_DIR/kernel" -mindepth 2 -maxdepth 2 -name .complete 2>/dev/null |
		sort -V | tail -n 1)
	[[ -n $d ]] && basename "$(dirname "$d")"
}

# Decompresses the kernel payload of a bzImage/vmlinuz into an ELF vmlinux,
# like the kernel's scripts/extract-vmlinux: try each compression magic at
# each offset until the output is ELF.  An ELF vmlinux boots through PVH,
# which skips the in-guest decompression (~3 s under TCG).
extract_vmlinux() {
	local image=$1 out=$2 magic unpack offset
	while read -r magic unpack; do
		while read -r offset; do
			# Trailing data after the payload makes the decompressor complain.
			tail -c "+$((offset + 1))" "$image" | $unpack >"$out" 2>/dev/null || true
			is_elf "$out" && return 0
		done < <(LC_ALL=C grep -aboP "$magic" "$image" | cut -d: -f1)
	done <<-'EOF'
		\xfd7zXZ\x00 xz -dc
		\x1f\x8b\x08 gzip -dc
		\x28\xb5\x2f\xfd zstd -dc
		\x5d\x00\x00\x00 xz -dc --format=lzma
		\x02\x21\x4c\x18 lz4 -dc
	EOF
	rm -f "$out"
	return 1
}

is_elf() {
	[[ -s $1 && $(head -c 4 "$1" | od -An -tx1 | tr -d ' \n') == 7f454c46 ]]
}

# Fetches and unpacks (never installs) a Debian kernel package into
# $CACHE_DIR/kernel/<release>/: vmlinux, config, lib/modules/<release>/.
fetch_debian_kernel() {
	local pkg=$1 release=${1#linux-image-}
	local dir=$CACHE_DIR/kernel/$release staging
	[[ -e $dir/.complete ]] && return 0
	echo "vmtest: fetching $pkg (once; cached in ${dir#"$CHECKOUT"/})" >&2
	staging=$(mktemp -d "$CACHE_DIR/kernel/.fetch.XXXXXX")
	# Sandbox::User=root: the _apt user may not write into our cache dir.
	(cd "$staging" && apt-get download -qq -o APT::Sandbox::User=root "$pkg") >&2 ||
		die "apt-get download $pkg failed (run apt-get update?)"
	dpkg-deb -x "$staging"/*.deb "$staging/pkg"
	mkdir -p "$staging/out/lib/modules"
	extract_vmlinux "$staging/pkg/boot/vmlinuz-$release" "$staging/out/vmlinux" ||
		die "cannot extract vmlinux from vmlinuz-$release"
	cp "$staging/pkg/boot/config-$release" "$staging/out/config"
	mv "$staging/pkg/lib/modules/$release" "$staging/out/lib/modules/"
	prune_modules "$staging/out/lib/modules/$release"
	# The package ships no modules.dep: dpkg's postinst would run depmod.
	depmod -b "$staging/out" "$release"
	touch "$staging/out/.complete"
	rm -rf "$dir"
	mv "$staging/out" "$dir"
	rm -rf "$staging"
}

# Drops hardware drivers a VM never loads: ~390 MB of modules down to ~100.
prune_modules() {
	local k=$1/kernel
	rm -rf "$k/sound" "$k/drivers/"{gpu,media,infiniband,staging,scsi,usb,bluetooth,iio,hid,input,isdn,mtd,video,net/wireless,net/ethernet} \
		"$k/net/"{wireless,mac80211,bluetooth}
}

# The boot modules (virtio-pci, 9p transport, 9p, overlayfs) plus their
# dependencies, in load order; prints nothing for built-in ones.
boot_module_paths() {
	local modroot=$1 release=$2 mod
	for mod in virtio_pci 9pnet_virtio 9p overlay; do
		modprobe -d "$modroot" -S "$release" --show-depends "$mod" 2>/dev/null |
			awk '$1 == "insmod" { print $2 }'
	done | awk '!seen[$0]++'
}

# A small uncompressed (faster to unpack under TCG) newc initramfs: static
# busybox, the boot modules and the stage-1 init.  Cached by content.
build_initramfs() {
	local modroot=$1 release=$2 key out staging ko
	key=$({
		echo "$release $modroot"
		boot_module_paths "$modroot" "$release"
		cat "$GUEST_INIT" /bin/busybox
	} | sha256sum | cut -c1-16)
	out=$CACHE_DIR/initramfs-$release-$key.cpio
	if [[ ! -s $out ]]; then
		staging=$(mktemp -d "$CACHE_DIR/.initramfs.XXXXXX")
		mkdir -p "$staging"/{bin,dev,proc,sys,mnt,newroot,modules}
		cp /bin/busybox "$staging/bin/busybox"
		cp "$GUEST_INIT" "$staging/init"
		chmod 0755 "$staging/init"
		while read -r ko; do
			cp "$ko" "$staging/modules/"
			basename "$ko" >>"$staging/modules/order"
		done < <(boot_module_paths "$modroot" "$release")
		(cd "$staging" && find . | LC_ALL=C sort |
			/bin/busybox cpio -o -H newc -R 0:0 2>/dev/null) >"$out.tmp"
		mv "$out.tmp" "$out"
		rm -rf "$staging"
	fi
	echo "$out"
}

# Kernel release of a bzImage (its header points at the version string) or
# an ELF vmlinux ("Linux version ..." in its rodata).
kernel_release_of() {
	local image=$1 ptr
	if is_elf "$image"; then
		LC_ALL=C grep -aom1 'Linux version [^ ]*' "$image" | cut -d' ' -f3
	else
		ptr=$(od -An -tu2 -j 526 -N 2 "$image" | tr -d ' ')
		dd if="$image" bs=1 skip=$((ptr + 512)) count=64 2>/dev/null |
			LC_ALL=C tr '\0' ' ' | cut -d' ' -f1
	fi
}

# The guest runs this with bash: %q quoting survives any argument.  The
# host's PATH comes along so the same tools (and python) are found.
write_guest_command() {
	local file=$1 var
	shift
	{
		printf 'export PATH=%q\n' "$PATH:/usr/local/sbin:/usr/sbin:/sbin"
		printf 'export HOME=/root LANG=C.UTF-8 VMTEST=1\n'
		for var in CI ${VM_ENV:-}; do
			[[ -v $var ]] && printf 'export %s=%q\n' "$var" "${!var}"
		done
		printf 'exec'
		printf ' %q' "$@"
		printf '\n'
	} >"$file"
}

accel_options() {
	case $VM_ACCEL in
	tcg) echo "-accel tcg,thread=multi -cpu max" ;;
	kvm) echo "-accel kvm -cpu host" ;;
	*) die "VM_ACCEL must be tcg or kvm, not '$VM_ACCEL'" ;;
	esac
}

# Boots the kernel; the guest's command output streams to our stdout.
boot_vm() {
	local kernel=$1 initrd=$2 modules=$3 rundir=$4 append
	append="console=ttyS0 quiet loglevel=0 panic=-1 8250.nr_uarts=3 mitigations=off"
	append+=" rdinit=/init VMTEST_CHECKOUT=\"$CHECKOUT\" VMTEST_RUNDIR=\"$rundir\""
	append+=" VMTEST_MODULES=\"$modules\""
	# shellcheck disable=SC2046 # accel_options is meant to split into words
	timeout --kill-after=10 "$VM_TIMEOUT" qemu-system-x86_64 \
		$(accel_options) -m "$VM_MEM" -smp "$VM_CPUS" \
		-nodefaults -no-user-config -display none -vga none -monitor none \
		-no-reboot -net none \
		-kernel "$kernel" -initrd "$initrd" -append "$append" \
		-chardev "file,id=console,path=$rundir/console.log" -serial chardev:console \
		-chardev stdio,id=output,signal=off -serial chardev:output \
		-chardev "file,id=status,path=$rundir/status" -serial chardev:status \
		-fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
		-device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
		-fsdev "local,id=checkout,path=$CHECKOUT,security_model=none,multidevs=remap" \
		-device virtio-9p-pci,fsdev=checkout,mount_tag=checkout \
		</dev/null
}

# virtme-ng does the same job when present and asked for.
run_with_vng() {
	local kernel=$1 accel=()
	shift
	[[ $VM_ACCEL == tcg ]] && accel=(--disable-kvm)
	exec timeout --kill-after=10 "$VM_TIMEOUT" vng --run "$kernel" "${accel[@]}" \
		--user root --cwd "$CHECKOUT" --rwdir "$CHECKOUT" \
		--memory "$VM_MEM" --cpus "$VM_CPUS" \
		-- env VMTEST=1 "$@"
}

# The status line the guest wrote on its ttyS2; empty if it never did.
guest_exit_status() {
	sed -n 's/^VMTEST_EXIT_STATUS=\([0-9][0-9]*\).*/\1/p' "$1" 2>/dev/null | tail -n 1
}

main() {
	(($# > 0)) || set -- uname -r
	mkdir -p "$CACHE_DIR/kernel"
	local kernel initrd modules="" release label rundir status qemu_rc=0 pkg

	if [[ -n ${KERNEL:-} ]]; then
		[[ -r $KERNEL ]] || die "KERNEL=$KERNEL is not readable"
		if [[ ${VM_USE_VNG:-} == 1 ]] && command -v vng >/dev/null; then
			run_with_vng "$KERNEL" "$@"
		fi
		require_host_tools
		kernel=$KERNEL
		release=$(kernel_release_of "$KERNEL")
		label="${release:-unknown} ($KERNEL)"
		# Boot modules from the host's /lib/modules/<release> if it has them.
		initrd=$(build_initramfs / "${release:-none}")
	else
		require_host_tools
		pkg=$(debian_kernel_package)
		if [[ -n $pkg ]]; then
			release=${pkg#linux-image-}
			# One fetch at a time; concurrent runs wait for the cache.
			exec 9>"$CACHE_DIR/.lock"
			flock 9
			fetch_debian_kernel "$pkg"
			flock -u 9
		else
			release=$(newest_cached_kernel) ||
				die "cannot resolve linux-image-amd64 (run apt-get update)"
		fi
		kernel=$CACHE_DIR/kernel/$release/vmlinux
		modules=$CACHE_DIR/kernel/$release/lib/modules/$release
		label="$release (debian linux-image-amd64)"
		if [[ ${VM_USE_VNG:-} == 1 ]] && command -v vng >/dev/null; then
			run_with_vng "$kernel" "$@"
		fi
		initrd=$(build_initramfs "$CACHE_DIR/kernel/$release" "$release")
	fi
	if [[ -n ${INITRD:-} ]]; then
		# Concatenated newc archives unpack as one: INITRD adds files (e.g.
		# lib/modules/<release>/...) to ours.
		[[ -r $INITRD ]] || die "INITRD=$INITRD is not readable"
		rundir_initrd=1
	fi
	echo "vmtest: kernel $label, accel $VM_ACCEL" >&2

	rundir=$(mktemp -d "$CACHE_DIR/run.XXXXXX")
	# shellcheck disable=SC2064 # expand rundir now
	trap "cp -f '$rundir/console.log' '$CACHE_DIR/last-console.log' 2>/dev/null; rm -rf '$rundir'" EXIT
	if [[ -n ${rundir_initrd:-} ]]; then
		cat "$initrd" "$INITRD" >"$rundir/initrd"
		initrd=$rundir/initrd
	fi
	write_guest_command "$rundir/cmd.sh" "$@"
	boot_vm "$kernel" "$initrd" "$modules" "$rundir" || qemu_rc=$?

	status=$(guest_exit_status "$rundir/status")
	if [[ -z $status ]]; then
		local why="qemu exited with $qemu_rc"
		((qemu_rc == 124 || qemu_rc == 137)) && why="timed out after ${VM_TIMEOUT}s"
		echo "vmtest: guest produced no exit status ($why: crash, panic or hang); console: ${CACHE_DIR#"$CHECKOUT"/}/last-console.log" >&2
		exit "$EXIT_NO_STATUS"
	fi
	exit "$status"
}

main "$@"
