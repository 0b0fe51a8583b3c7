#!/usr/bin/env bash
# Installs the system packages the tests, the demo and the benchmark need (Debian 12).
# incus-extra (incus-simplestreams) and incus-client come from bookworm-backports.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi

stable=(openssh-server openssh-client nginx-light openssl squashfs-tools squashfs-tools-ng xz-utils qemu-utils lxd-client procps shellcheck)
backports=(incus-extra incus-client)

missing_from() {
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || echo "$pkg"
  done
}
mapfile -t missing_stable < <(missing_from "${stable[@]}")
mapfile -t missing_backports < <(missing_from "${backports[@]}")
[ ${#missing_stable[@]} -eq 0 ] && [ ${#missing_backports[@]} -eq 0 ] && exit 0

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
