#!/usr/bin/env bash
# `npm run demo`: bootstrap what is missing, then publish a tiny image to a throwaway registry.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec npx tsx scripts/demo.ts
