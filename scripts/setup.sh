#!/usr/bin/env bash
# Make a fresh Debian 12 machine ready to build, run and test verifier. Idempotent: a second
# run checks each step and skips it, downloading nothing. Must run as root.
set -euo pipefail

BPF_LINKER_VERSION=0.13.0
LLVM_MAJOR=22
APT_PACKAGES=(
  # eBPF toolchain: bpf-linker links against Debian's LLVM 22.
  "llvm-${LLVM_MAJOR}-dev" "libpolly-${LLVM_MAJOR}-dev" clang-${LLVM_MAJOR}
  # Build and tests: package managers whose databases we read and whose transactions we watch.
  build-essential pkg-config dpkg-dev fakeroot rpm debsums
  # libcrypto's MD5 (the audit is bound by md5 speed).
  libssl-dev
  # Kernel inspection and mail tests.
  bpftool postfix mailutils
  # A small real package with a stable point-release update (two versions in the sources), for
  # the scenario that upgrades a real Debian package with apt.
  unzip
)

log() { printf '[setup] %s\n' "$*" >&2; }

require_root() {
  if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (loads eBPF programs, installs packages)"
    exit 1
  fi
}

install_apt_packages() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "apt packages present"
    return
  fi
  log "installing apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # postfix asks questions; answer them for a local-only MTA.
  echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
  echo "postfix postfix/mailname string $(hostname -f 2>/dev/null || hostname)" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_toolchain() {
  local root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  local channel
  channel=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$root/rust-toolchain.toml")
  if rustup toolchain list | grep -q "^${channel}-"; then
    log "rust ${channel} present"
  else
    log "installing rust ${channel}"
    (cd "$root" && rustup toolchain install)
  fi
  # rust-toolchain.toml lists components; make sure they are there even on an existing toolchain.
  rustup component add --toolchain "$channel" rust-src rustfmt clippy >/dev/null 2>&1
}

install_bpf_linker() {
  if command -v bpf-linker >/dev/null 2>&1 &&
    bpf-linker --version 2>/dev/null | grep -q "${BPF_LINKER_VERSION}"; then
    log "bpf-linker ${BPF_LINKER_VERSION} present"
    return
  fi
  log "building bpf-linker ${BPF_LINKER_VERSION} against LLVM ${LLVM_MAJOR}"
  LLVM_PREFIX="/usr/lib/llvm-${LLVM_MAJOR}" PATH="/usr/lib/llvm-${LLVM_MAJOR}/bin:$PATH" \
    cargo +stable install --locked "bpf-linker@${BPF_LINKER_VERSION}" \
    --no-default-features --features "llvm-${LLVM_MAJOR}" --force
}

mount_if_missing() {
  local fstype=$1 target=$2
  if mountpoint -q "$target"; then
    return
  fi
  log "mounting ${fstype} on ${target}"
  mkdir -p "$target"
  mount -t "$fstype" "$fstype" "$target"
}

mount_kernel_filesystems() {
  mount_if_missing tracefs /sys/kernel/tracing
  mount_if_missing bpf /sys/fs/bpf
  mount_if_missing securityfs /sys/kernel/security
}

start_mail_transport() {
  # Tests deliver alert mail to a local mailbox through a real MTA.
  if ! pgrep -x master >/dev/null 2>&1; then
    log "starting postfix"
    postfix start >/dev/null 2>&1 || log "postfix did not start; mail tests will fail"
  fi
}

main() {
  require_root
  install_apt_packages
  install_toolchain
  install_bpf_linker
  mount_kernel_filesystems
  start_mail_transport
  # qemu and busybox for the kernel matrix (`cargo xtask vm`).
  bash "$(dirname "${BASH_SOURCE[0]}")/setup-vm.sh"
  log "ready"
}

main "$@"
