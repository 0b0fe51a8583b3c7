#!/usr/bin/env bash
# Makes a release commit and tags, locally; prints the push commands instead of pushing.
#
#   bash scripts/release.sh 1.2.3
#
# Checks: a clean tree on main, dist/ equal to a fresh build (scripts/check-dist.sh; dist/ also
# ships dist/licenses.txt, the licenses of the bundled dependencies), and a "## [1.2.3]" section
# in CHANGELOG.md (move the Unreleased entries there first). Then: package.json version (npm
# version --no-git-tag-version), a commit, the tag v1.2.3, and the major tag v1 moved to it.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "release: $*" >&2
  exit 1
}

version=${1:-}
version=${version#v}
[[ $version =~ ^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$ ]] ||
  die "usage: scripts/release.sh X.Y.Z (got '${1:-}')"
major=v${BASH_REMATCH[1]}
tag=v$version

branch=$(git rev-parse --abbrev-ref HEAD)
[ "$branch" = main ] || die "releases are made from main, not '$branch'"
[ -z "$(git status --porcelain --untracked-files=all)" ] ||
  die "the working tree is not clean:
$(git status --short)"
! git rev-parse -q --verify "refs/tags/$tag" >/dev/null || die "tag $tag exists already"

grep -Eq "^## \[$version\]( |$)" CHANGELOG.md ||
  die "CHANGELOG.md has no '## [$version] - $(date -u +%Y-%m-%d)' section: move the Unreleased entries into one"

bash scripts/check-dist.sh || die "dist/ does not match a fresh build"
[ -s dist/licenses.txt ] || die "dist/licenses.txt is missing (npm run build writes it)"

npm version "$version" --no-git-tag-version --allow-same-version >/dev/null
git add package.json package-lock.json
git commit -q -m "Release $tag"
git tag -a "$tag" -m "lxc-publish $tag"
git tag -f -a "$major" -m "lxc-publish $tag" >/dev/null

echo "Released $tag locally (commit $(git rev-parse --short HEAD)); $major now points to it."
echo "Push with:"
echo "  git push origin main"
echo "  git push origin $tag"
echo "  git push --force origin $major"
