#!/usr/bin/env bash
# Installs, with apt, whatever synfin needs that this Debian machine lacks.
#   tools/install-deps.sh build   what `make` needs
#   tools/install-deps.sh test    that, plus what `make check` needs
# Idempotent and quiet: does nothing when everything is there.
set -euo pipefail

BUILD_PKGS=(make gcc libc6-dev clang llvm libbpf-dev libelf-dev zlib1g-dev pkg-config bpftool libmicrohttpd-dev)
TEST_PKGS=(python3 python3-pytest python3-jsonschema jq curl iproute2 util-linux procps nftables valgrind man-db groff-base prometheus libclang-rt-14-dev qemu-system-x86 busybox-static kmod xz-utils cpio nginx-light)

missing_packages() {
	local pkg
	for pkg in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
			echo "$pkg"
		fi
	done
}

main() {
	local profile=${1:-build} pkgs missing
	pkgs=("${BUILD_PKGS[@]}")
	[ "$profile" = test ] && pkgs+=("${TEST_PKGS[@]}")
	if ! command -v dpkg-query >/dev/null; then
		echo "install-deps: not a Debian system; install by hand: ${pkgs[*]}" >&2
		return 0
	fi
	mapfile -t missing < <(missing_packages "${pkgs[@]}")
	[ "${#missing[@]}" -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: missing packages: ${missing[*]}; run as root (sudo make ...) or install them" >&2
		return 1
	fi
	echo "install-deps: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

main "$@"
