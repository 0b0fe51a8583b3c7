#!/usr/bin/env bash
# Fails when the committed dist/ differs from a fresh build of src/ (what `uses:` runs is dist/).
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build --silent >/dev/null
if ! git diff --quiet --exit-code -- dist; then
  echo "dist/ is out of date: run 'npm run build' and commit dist/." >&2
  git diff --stat -- dist >&2
  exit 1
fi
if [ -n "$(git status --porcelain --untracked-files=all -- dist)" ]; then
  echo "dist/ has files that are not committed:" >&2
  git status --porcelain --untracked-files=all -- dist >&2
  exit 1
fi
echo "dist/ matches a fresh build."
