#!/usr/bin/env bash
# `npm test`: unit tests, then integration tests against a real loopback registry. The
# integration tests run even when a unit test fails, so one failure does not hide the rest;
# the script fails at the end if either project failed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# The server scripts as the bundle embeds them (src/registry/server/*.sh).
npx tsx scripts/embed.ts
export NODE_OPTIONS="${NODE_OPTIONS:+$NODE_OPTIONS }--experimental-vm-modules --no-warnings=ExperimentalWarning"
failed=()
npx jest --selectProjects unit "$@" || failed+=(unit)
npx jest --selectProjects integration --runInBand "$@" || failed+=(integration)
if [ ${#failed[@]} -gt 0 ]; then
  echo "npm test: failed: ${failed[*]}" >&2
  exit 1
fi
