#!/bin/sh
# Checks the files the index names, for the check sub-action (registry/check.ts), read-only, run
# while the run holds the registry lock. Arguments: $1 simplestreams-dir, $2 seconds to spend
# hashing. On stdin: the files' paths relative to simplestreams-dir, one per line, in the order to
# hash them (the runner sends only paths it checked: plain characters, no "..", no leading "/").
# Prints, first for every path: "size BYTES PATH", "gone PATH" (no regular file there) or "link
# PATH" (a component of the path is a symbolic link: never followed); then "sha256 HEX PATH" for
# the files of "size" lines hashed in turn while the time lasts, "unreadable PATH" for those the
# SSH user cannot read, and "late PATH" for each it did not reach. Only builtins run per file;
# the rest is a handful of processes whatever the number of files.
ss=$1 budget=$2
case $budget in '' | *[!0-9]*) echo "lxc-publish-hash: invalid time ($budget)" >&2; exit 2 ;; esac
cd -- "$ss" || exit 1
work=$(mktemp -d) || exit 1
trap 'rm -rf -- "$work"' EXIT
: > "$work/plain"
grep -E '^[A-Za-z0-9._+-][A-Za-z0-9._+/-]*$' | grep -v -E '(^|/)\.\.?(/|$)' | awk '!seen[$0]++' > "$work/paths"
while IFS= read -r path; do
  # Each component in turn, with test -L: nothing is resolved, so no link is ever followed.
  at=. rest=$path linked=
  while [ -n "$rest" ]; do
    at=$at/${rest%%/*}
    case $rest in */*) rest=${rest#*/} ;; *) rest= ;; esac
    if [ -L "$at" ]; then linked=1; break; fi
  done
  if [ -n "$linked" ]; then echo "link $path"; elif [ -f "$path" ]; then echo "$path" >> "$work/plain"; else echo "gone $path"; fi
done < "$work/paths"
# Sizes, in one stat per batch of paths (plain characters only: the line splits on blanks).
xargs -r -d '\n' stat -c '%s %n' -- < "$work/plain" 2> /dev/null > "$work/sizes"
awk -v todo="$work/todo" '
  FILENAME == ARGV[1] { if (NF == 2) size[$2] = $1; next }
  $0 in size { print "size " size[$0] " " $0; print > todo; next }
  { print "gone " $0 }
' "$work/sizes" "$work/plain"
: >> "$work/todo"
: > "$work/hashed"
if [ "$budget" -gt 0 ]; then
  # One line per file as soon as it is hashed (stdbuf), so that what was done before the time ran
  # out counts.
  line=
  if command -v stdbuf > /dev/null 2>&1; then line='stdbuf -oL'; fi
  # shellcheck disable=SC2086 # $line is empty or two words
  timeout "$budget" xargs -r -d '\n' $line sha256sum -- < "$work/todo" > "$work/hashed" 2> /dev/null
fi
awk -v left="$work/left" '
  FILENAME == ARGV[1] { if (NF == 2 && $1 ~ /^[0-9a-f]+$/) { hashed[$2] = 1; print "sha256 " $1 " " $2 }; next }
  !($0 in hashed) { print > left }
' "$work/hashed" "$work/todo"
: >> "$work/left"
while IFS= read -r path; do
  if [ -r "$path" ]; then echo "late $path"; else echo "unreadable $path"; fi
done < "$work/left"
