#!/usr/bin/env bash
# Gets what the system test boots and installs, under build/system/ (re-runs reuse what is already there):
#
#   rootfs-<key>.tar  a Debian 12 root made by debootstrap: minbase, systemd as PID 1, dbus, python3 (what the
#                   package depends on), the lab's broker and serial-line tools (mosquitto, socat) and the
#                   library its reference platform checks Ed25519 signatures with (libsodium23); <key> is a
#                   hash of the suite, the mirror, the architecture and the package list, so a changed list
#                   builds a new root and an unchanged one is made once. A tarball, not a folder: a root's
#                   absolute symlinks (/var/run, /dev/fd) would lead tree walkers under build/, setuptools'
#                   among them, into the host's /run and /proc
#   debs/           two builds of the package: this checkout's version, and the same with "+systest2" appended,
#                   which dpkg orders after it (the upgrade case)
#
#   tests/system/prepare.sh            prints the shell assignments ROOTFS_TAR=... DEB_OLD=... DEB_NEW=...
#
# Needs root (debootstrap), and the Debian mirror and PyPI (the first run; the package builds reuse their
# wheelhouse). Only build/system/ is written.
set -euo pipefail

project=$(cd "$(dirname "$0")/../.." && pwd)
work="$project/build/system"
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
arch=$(dpkg --print-architecture)
packages=systemd,systemd-sysv,dbus,python3,mosquitto,socat,procps,libsodium23

key=$(printf '%s\n' "$suite" "$mirror" "$arch" "$packages" | sha256sum | cut -c1-12)
rootfs="$work/rootfs-$key"
mkdir -p "$work"
# A box that a killed run left behind goes before the packages are built (see above), unless it still runs.
if pgrep -f -- "--directory=$work/box " >/dev/null; then
    echo "system-test: a box from an earlier run still runs on $work/box; power it off first" >&2
    exit 1
fi
rm -rf "$work/box"

if [ ! -e "$rootfs.tar" ]; then
    rm -rf "$rootfs.partial"
    echo "system-test: debootstrap $suite ($packages) into $rootfs" >&2
    debootstrap --variant=minbase --include="$packages" --arch="$arch" "$suite" "$rootfs.partial" "$mirror" >&2
    # debootstrap may leave the chroot's /proc mounted; nothing under build/ may keep a mount.
    umount "$rootfs.partial/proc" 2>/dev/null || true
    rm -f "$rootfs.partial/etc/machine-id"
    apt-get -o RootDir="$rootfs.partial" clean 2>/dev/null || rm -rf "$rootfs.partial/var/cache/apt/archives/"*.deb
    tar --create --numeric-owner --file="$rootfs.tar.partial" --directory="$rootfs.partial" .
    rm -rf "$rootfs.partial"
    mv "$rootfs.tar.partial" "$rootfs.tar"
fi

version=$("$project/.venv/bin/python" -c \
    'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$project/pyproject.toml")
debs="$work/debs"
deb_old=$("$project/packaging/build-deb.sh" --out "$debs" --wheelhouse "$project/build/deb/wheelhouse-$arch" | tail -1)
deb_new=$("$project/packaging/build-deb.sh" --out "$debs" --wheelhouse "$project/build/deb/wheelhouse-$arch" \
    --version "$version+systest2" --offline | tail -1)

echo "ROOTFS_TAR=$rootfs.tar"
echo "DEB_OLD=$deb_old"
echo "DEB_NEW=$deb_new"
