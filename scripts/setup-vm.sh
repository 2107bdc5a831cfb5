#!/usr/bin/env bash
# Make this machine able to boot stock Debian kernels under qemu (TCG) for `cargo xtask vm`.
# Installs qemu-system-x86 from bookworm-backports (bookworm's own 7.2 would silently remove the
# machine's qemu-utils 10.x), busybox-static (the guest's userland) and libbpf-dev (for the probe
# that tells which BPF program types load, attach and fire on each kernel). When bookworm-backports
# is not in the apt sources, apt is pointed at a private source list and private package lists
# under $VM_APT_DIR, so nothing in /etc changes. Idempotent: a second run checks the installed
# packages and downloads nothing. Must run as root.
set -euo pipefail

VM_APT_DIR=${VM_APT_DIR:-/var/cache/verifier-vm/apt}
SYSTEM_SOURCES=${SYSTEM_SOURCES:-/etc/apt/sources.list.d/debian.sources}
BACKPORTS=bookworm-backports

log() { printf '[setup-vm] %s\n' "$*" >&2; }

require_root() {
  if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (installs packages)"
    exit 1
  fi
}

installed_version() {
  dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null | sed -n 's/^install ok installed //p'
}

# True when qemu-system-x86 comes from backports (its version carries ~bpo12) and the others are there.
already_set_up() {
  local qemu busybox
  qemu=$(installed_version qemu-system-x86)
  busybox=$(installed_version busybox-static)
  [[ "$qemu" == *bpo12* ]] && [ -n "$busybox" ] && [ -n "$(installed_version libbpf-dev)" ] &&
    command -v qemu-system-x86_64 >/dev/null
}

backports_in_system_sources() {
  apt-cache policy 2>/dev/null | grep -q " ${BACKPORTS}/main "
}

# The private apt configuration: the system's Debian sources plus bookworm-backports, with lists of
# its own. (`cargo xtask vm` keeps its own per-release lists for kernels under $VM_APT_DIR/kernels.)
write_private_sources() {
  mkdir -p "$VM_APT_DIR/sources.list.d" "$VM_APT_DIR/lists/partial"
  if [ ! -f "$SYSTEM_SOURCES" ]; then
    log "cannot find $SYSTEM_SOURCES to copy"
    exit 1
  fi
  # Add the backports suite to the stanza that carries plain `bookworm`; keep the others (security).
  sed -E '/^Suites:/{/(^|[[:space:]])bookworm([[:space:]]|$)/{/bookworm-backports/!s/$/ bookworm-backports/}}' \
    "$SYSTEM_SOURCES" >"$VM_APT_DIR/sources.list.d/debian.sources"
}

private_apt_options() {
  printf '%s\n' \
    -o "Dir::Etc::SourceParts=$VM_APT_DIR/sources.list.d" \
    -o "Dir::Etc::SourceList=/dev/null" \
    -o "Dir::State::Lists=$VM_APT_DIR/lists" \
    -o "Dir::Cache::pkgcache=$VM_APT_DIR/pkgcache.bin" \
    -o "Dir::Cache::srcpkgcache=$VM_APT_DIR/srcpkgcache.bin"
}

install_packages() {
  export DEBIAN_FRONTEND=noninteractive
  local options=()
  if backports_in_system_sources; then
    log "bookworm-backports is in the system apt sources"
  else
    log "using a private source list with bookworm-backports in $VM_APT_DIR"
    write_private_sources
    mapfile -t options < <(private_apt_options)
    apt-get "${options[@]}" update -qq
  fi
  log "installing qemu-system-x86 (from ${BACKPORTS}), busybox-static and libbpf-dev"
  apt-get "${options[@]}" install -y -qq --no-install-recommends --no-remove \
    -t "$BACKPORTS" qemu-system-x86 >/dev/null
  # From bookworm itself: the guest gets libbpf.so.1 from the host, whatever its kernel.
  apt-get "${options[@]}" install -y -qq --no-install-recommends --no-remove \
    busybox-static libbpf-dev >/dev/null
}

main() {
  require_root
  if already_set_up; then
    log "qemu-system-x86 $(installed_version qemu-system-x86), busybox-static, libbpf-dev present"
  else
    install_packages
  fi
  log "ready: $(qemu-system-x86_64 --version | head -n1)"
}

main "$@"
