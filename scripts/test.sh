#!/usr/bin/env bash
# `npm test`: unit tests, then integration tests against a real loopback registry.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export NODE_OPTIONS="${NODE_OPTIONS:+$NODE_OPTIONS }--experimental-vm-modules --no-warnings=ExperimentalWarning"
npx jest --selectProjects unit "$@"
npx jest --selectProjects integration --runInBand "$@"
