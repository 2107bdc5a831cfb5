#!/bin/bash
# Runs the recorder tests that need no package manager on stock Debian kernels under qemu (TCG),
# to prove the kernel object is portable: the struct layouts come from each kernel's own BTF.
#
# Usage: tests/vm/recorder-kernels.sh [cache-dir]   (as root; see /work/shared/docs/vm-testing.md)
# Kernels: the Debian 6.12 and 6.1 cloud images (METAS: their metapackages), downloaded (not
# installed) into the cache.
# Prints one `VMTEST <kernel> RC=<rc>` line per kernel; exits non-zero if any failed.
set -euo pipefail

CACHE=${1:-/var/cache/verifier-vm}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TESTS="file_operations relative_dirfd ia32_syscalls io_uring_use files_open_for_write a_full_ring_buffer"
mkdir -p "$CACHE"

kernel_packages() {
    for meta in ${METAS:-linux-image-6.12-cloud-amd64 linux-image-cloud-amd64}; do
        apt-cache depends "$meta" | awk '/Depends: linux-image-/ {print $2; exit}'
    done
}

fetch_kernel() { # package → path of its vmlinuz
    local pkg=$1 dir="$CACHE/$1"
    if [ ! -d "$dir/boot" ]; then
        (cd "$CACHE" && apt-get download "$pkg" >/dev/null 2>&1)
        mkdir -p "$dir"
        dpkg-deb -x "$CACHE/${pkg}"_*.deb "$dir"
    fi
    ls "$dir"/boot/vmlinuz-*
}

# The test binary and the actor it runs, at the paths they were built at.
cd "$ROOT"
TEST_BIN=$(cargo test -p tests --test recorder --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*recorder-[^"]*\)".*/\1/p' | tail -1)
ACTOR="$ROOT/target/debug/rec-actor"
[ -x "$TEST_BIN" ] && [ -x "$ACTOR" ] || { echo "test binaries not built" >&2; exit 1; }

build_initramfs() { # → path of the initramfs
    local dir="$CACHE/initramfs" out="$CACHE/initramfs.cpio.gz"
    rm -rf "$dir"
    mkdir -p "$dir"/{bin,dev,proc,sys,tmp,run}
    cp /bin/busybox "$dir/bin/busybox"
    for applet in sh mount mkdir poweroff cat echo sleep; do ln -s busybox "$dir/bin/$applet"; done
    for bin in "$TEST_BIN" "$ACTOR"; do
        mkdir -p "$dir$(dirname "$bin")"
        cp "$bin" "$dir$bin"
        ldd "$bin" | grep -o '/[^ ]*' | while read -r lib; do
            mkdir -p "$dir$(dirname "$lib")"
            cp -L "$lib" "$dir$lib"
        done
    done
    cat > "$dir/init" <<INIT
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
cd /tmp
rc=0
for t in $TESTS; do
    TMPDIR=/tmp $TEST_BIN --test-threads=1 \$t || rc=1
done
echo "VMTEST_RC=\$rc"
poweroff -f
INIT
    chmod 755 "$dir/init"
    (cd "$dir" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 > "$out")
    echo "$out"
}

INITRAMFS=$(build_initramfs)
failed=0
for pkg in $(kernel_packages); do
    vmlinuz=$(fetch_kernel "$pkg")
    log="$CACHE/$pkg.log"
    timeout 900 qemu-system-x86_64 -accel tcg -cpu max -m 2G -smp 2 -M pc -nodefaults \
        -no-user-config -display none -no-reboot -serial stdio -monitor none \
        -kernel "$vmlinuz" -initrd "$INITRAMFS" \
        -append "console=ttyS0 panic=-1 quiet loglevel=4" > "$log" 2>&1 || true
    rc=$(sed -n 's/.*VMTEST_RC=\([0-9]*\).*/\1/p' "$log" | tail -1)
    grep -E "^test |test result" "$log" | sed "s/^/  [$pkg] /" || true
    echo "VMTEST $pkg RC=${rc:-none}"
    [ "${rc:-1}" = 0 ] || failed=1
done
exit $failed
