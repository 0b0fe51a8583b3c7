#!/bin/sh
# Checks the files the index names, for the check sub-action (registry/check.ts), read-only, run
# while the run holds the registry lock. Arguments: $1 simplestreams-dir, $2 seconds to spend
# hashing. On stdin: the files' paths relative to simplestreams-dir, one per line, in the order to
# hash them (the runner sends only paths it checked: plain characters, no "..", no leading "/").
# Prints, first for every path: "size BYTES PATH", "gone PATH" (no regular file there) or "link
# PATH" (the path leads through a symbolic link: never followed); then "sha256 HEX PATH" for the
# files of "size" lines hashed in turn while the time lasts, and "late PATH" for each it did not
# reach. A handful of processes whatever the number of files: a registry of thousands of
# releases is checked in seconds.
ss=$1 budget=$2
case $budget in '' | *[!0-9]*) echo "lxc-publish-hash: invalid time ($budget)" >&2; exit 2 ;; esac
cd -- "$ss" || exit 1
root=$(pwd -P) || exit 1
work=$(mktemp -d) || exit 1
trap 'rm -rf -- "$work"' EXIT
grep -E '^[A-Za-z0-9._+-][A-Za-z0-9._+/-]*$' | grep -v -E '(^|/)\.\.(/|$)' | awk '!seen[$0]++' > "$work/paths"
# Where each path leads, in the same order: a path that leads elsewhere goes through a link.
xargs -r -d '\n' readlink -m -- < "$work/paths" > "$work/resolved" || exit 1
awk -v root="$root" -v plain="$work/plain" '
  FILENAME == ARGV[1] { resolved[FNR] = $0; next }
  resolved[FNR] == root "/" $0 { print > plain; next }
  { print "link " $0 }
' "$work/resolved" "$work/paths"
touch "$work/plain"
# Sizes of the regular files among them (lstat: a link at the end is caught above already).
xargs -r -d '\n' stat -c '%A %s %n' -- < "$work/plain" 2> /dev/null |
  awk 'NF == 3 && substr($1, 1, 1) == "-" { print $2 " " $3 }' > "$work/sizes"
awk -v sizes="$work/sizes" -v todo="$work/todo" '
  FILENAME == ARGV[1] { size[$2] = $1; next }
  $0 in size { print "size " size[$0] " " $0; print > todo; next }
  { print "gone " $0 }
' "$work/sizes" "$work/plain"
touch "$work/todo"
if [ "$budget" -gt 0 ]; then
  # One line per file as soon as it is hashed, so that what was done before the time ran out counts.
  timeout "$budget" xargs -r -d '\n' stdbuf -oL sha256sum -- < "$work/todo" > "$work/hashed" 2> /dev/null
fi
touch "$work/hashed"
awk -v todo="$work/todo" '
  FILENAME == ARGV[1] { if (NF == 2 && $1 ~ /^[0-9a-f]+$/) { hashed[$2] = 1; print "sha256 " $1 " " $2 }; next }
  !($0 in hashed) { print "late " $0 }
' "$work/hashed" "$work/todo"
