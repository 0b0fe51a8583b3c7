#!/usr/bin/env bash
# Makes a fresh clone ready for `npm test`, `npm run demo` and `npm run bench`: the system
# packages of the loopback registry (sshd, nginx, incus-simplestreams, incus and lxc clients,
# squashfs-tools, qemu-utils, Ceph's radosgw) and the npm dependencies. Safe to run again; it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

bash .ci/install-system-packages.sh

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # --ignore-scripts: no install scripts, so the bundle stays pure JavaScript and reproducible.
  npm ci --ignore-scripts --no-audit --no-fund
fi
