#!/usr/bin/env bash
# Installs the system packages the tests, the demo and the benchmark need (Debian 12).
# incus-extra (incus-simplestreams), incus-client and incus (the daemon) come from
# bookworm-backports; lxd (the 5.0 daemon), busybox-static (the init of the images the tests boot),
# xdelta3 (the daemons' delta downloads), iproute2 (network namespaces for the bastion test) and
# Ceph's monitor, manager, OSD and radosgw (a real S3 store for the bucket tests) from bookworm;
# distrobuilder (the real builds the tests publish) and its distrobuilder-images alone from trixie, which is added at a low priority so that nothing else ever comes from it: never
# `-t trixie`, which would upgrade libc, perl and dpkg, and the machine would no longer be the
# Debian 12 that users and CI have.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi

stable=(time iproute2 ceph-mon ceph-osd ceph-mgr radosgw ceph-common openssh-server openssh-client nginx-light openssl squashfs-tools squashfs-tools-ng xz-utils zstd qemu-utils lxd-client lxd busybox-static xdelta3 procps shellcheck tcsh)
backports=(incus-extra incus-client incus)
from_trixie=(distrobuilder distrobuilder-images)

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

# Trixie as a source, pinned below bookworm (500): apt takes from it only what is asked for by
# name and release (pkg/trixie).
add_trixie_low() {
  if [ ! -f /etc/apt/sources.list.d/trixie.list ]; then
    echo 'deb http://deb.debian.org/debian trixie main' | $SUDO tee /etc/apt/sources.list.d/trixie.list >/dev/null
  fi
  printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' | $SUDO tee /etc/apt/preferences.d/trixie-low >/dev/null
}

mapfile -t missing_stable < <(missing_from "${stable[@]}")
mapfile -t missing_backports < <(missing_from "${backports[@]}")
mapfile -t missing_trixie < <(missing_from "${from_trixie[@]}")

if [ ${#missing_stable[@]} -gt 0 ] || [ ${#missing_backports[@]} -gt 0 ] || [ ${#missing_trixie[@]} -gt 0 ]; then
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo 'deb http://deb.debian.org/debian bookworm-backports main' | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
  fi
  add_trixie_low
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  if [ ${#missing_stable[@]} -gt 0 ]; then
    $SUDO apt-get install -y -qq --no-install-recommends "${missing_stable[@]}" >/dev/null
  fi
  if [ ${#missing_backports[@]} -gt 0 ]; then
    $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports "${missing_backports[@]}" >/dev/null
  fi
  if [ ${#missing_trixie[@]} -gt 0 ]; then
    $SUDO apt-get install -y -qq --no-install-recommends "${missing_trixie[@]/%//trixie}" >/dev/null
  fi
fi

# What came from trixie is only what was asked for: libc is still bookworm's.
libc=$(dpkg-query -W -f='${Version}' libc6)
case $libc in
  2.36-*) ;;
  *) echo "libc6 $libc is not Debian 12's: something was installed from trixie with its dependencies" >&2; exit 1 ;;
esac

single_root_range /etc/subuid
single_root_range /etc/subgid
