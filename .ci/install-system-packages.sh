#!/usr/bin/env bash
# Installs the system packages the tests, the demo and the benchmark need (Debian 12).
# incus-extra (incus-simplestreams), incus-client and incus (the daemon) come from
# bookworm-backports; lxd (the 5.0 daemon), busybox-static (the init of the images the tests boot),
# xdelta3 (the daemons' delta downloads) and iproute2 (network namespaces for the bastion test) from
# bookworm.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi

stable=(time iproute2 openssh-server openssh-client nginx-light openssl squashfs-tools squashfs-tools-ng xz-utils zstd qemu-utils lxd-client lxd busybox-static xdelta3 procps shellcheck tcsh)
backports=(incus-extra incus-client incus)

missing_from() {
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || echo "$pkg"
  done
}

# Debian's lxd package appends a second root range to /etc/subuid and /etc/subgid
# (root:1001000000:10000001) next to the one incus uses (root:1000000:1000000000). An incusd
# started with both fails every container start ("newuidmap: write to uid_map failed: Invalid
# argument"); with one range both daemons start containers. Keep the first root line, drop the
# others; nothing changes when there is one already.
single_root_range() {
  local file=$1
  [ -f "$file" ] || return 0
  [ "$(grep -c '^root:' "$file")" -gt 1 ] || return 0
  local kept
  kept=$(awk -F: '$1 != "root" || !seen++' "$file")
  printf '%s\n' "$kept" | $SUDO tee "$file" >/dev/null
  echo "$file: kept one root range ($(grep '^root:' "$file"))"
}

mapfile -t missing_stable < <(missing_from "${stable[@]}")
mapfile -t missing_backports < <(missing_from "${backports[@]}")

if [ ${#missing_stable[@]} -gt 0 ] || [ ${#missing_backports[@]} -gt 0 ]; then
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo 'deb http://deb.debian.org/debian bookworm-backports main' | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  if [ ${#missing_stable[@]} -gt 0 ]; then
    $SUDO apt-get install -y -qq --no-install-recommends "${missing_stable[@]}" >/dev/null
  fi
  if [ ${#missing_backports[@]} -gt 0 ]; then
    $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports "${missing_backports[@]}" >/dev/null
  fi
fi

single_root_range /etc/subuid
single_root_range /etc/subgid
