#!/usr/bin/env bash
# What the release workflow (.github/workflows/release.yml) checks before it releases a pushed
# tag, and the release notes it publishes:
#
#   bash scripts/release-notes.sh v1.2.3 > notes.md
#
# Fails, saying what to fix, unless the tag is vX.Y.Z, package.json's version is X.Y.Z, and
# CHANGELOG.md has a "## [X.Y.Z]" section with something in it; prints that section's body (the
# notes). The dist/ check is scripts/check-dist.sh, run beside it.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "release: $*" >&2
  exit 1
}

tag=${1:-}
[[ $tag =~ ^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$ ]] || die "the tag '$tag' is not vX.Y.Z"
version=${tag#v}
package=$(node -p 'require("./package.json").version')
[ "$package" = "$version" ] ||
  die "the tag is $tag but package.json says $package: release with scripts/release.sh $version, which sets both"
notes=$(awk -v version="$version" '
  index($0, "## [" version "]") == 1 { inside = 1; next }
  inside && /^## \[/ { exit }
  inside { print }
' CHANGELOG.md)
[ -n "$(printf '%s' "$notes" | tr -d '[:space:]')" ] ||
  die "CHANGELOG.md has no \"## [$version]\" section with entries: move the Unreleased entries into one"
printf '%s\n' "$notes" | sed -e '/./,$!d'
