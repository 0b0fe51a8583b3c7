#!/bin/sh
# Describes the registry tree for the check sub-action (registry/check.ts), read-only, run while
# the run holds the registry lock. Arguments: $1 simplestreams-dir, $2 the state directory.
# Prints NUL-terminated records, since a file name may hold any byte but NUL and '/':
#   now SECONDS                     the server's clock
#   open DIR                        a directory that others than the SSH user can write, or a
#                                   symbolic link where a directory belongs (read.sh's rule)
#   entry TYPE SIZE MTIME NAME      each entry of images/ (TYPE as find's %y: f, d, l, …)
#   staging held|free|link MTIME NAME  each staging tree, and whether its image lock (or the lock's
#                                   gate) is held, or is a symbolic link (which the clean-up
#                                   leaves alone)
#   moved NAME                      each file a staging tree records as moved into images/ by a
#                                   commit that has not made it live yet (commit.sh)
#   sums HEX | nosums               the sha256 of images/SHA256SUMS
#   streams BASE64 | nostreams      streams/v1/index.json
#   retired BASE64 | noretired      the list of retired files
# Run after read.sh's checks (no registry directory is a symbolic link). Image locks with
# no staging tree are not listed: each publish leaves its own until the next commit, and a lock
# whose holder died holds nothing.
ss=$1 state=$2
record() { printf '%s\0' "$*"; }
# Whether anyone holds lock $1 or its gate: a holder keeps the lock exclusively, fenced operations
# of a past lease keep the gate shared (lib/fence.sh), and the clean-up needs both free.
held() {
  { [ -f "$1" ] && (exec 3< "$1" && ! flock -n -s 3) 2> /dev/null; } ||
    { [ -f "$1.gate" ] && (exec 3< "$1.gate" && ! flock -n -x 3) 2> /dev/null; }
}
record "now $(date +%s)"
for dir in "$ss" "$state" "$state/staging" "$state/locks" "$state/holders" "$state/next" "$state/previous" "$ss/images" "$ss/streams" "$ss/streams/v1"; do
  case $dir in "$ss"/*) if [ -L "$dir" ]; then record "open $dir"; continue; fi ;; esac
  if [ -e "$dir" ] && [ -n "$(find "$dir/" -maxdepth 0 -perm /022 2> /dev/null)" ]; then record "open $dir"; fi
done
if [ -d "$ss/images" ] && [ ! -L "$ss/images" ]; then
  find "$ss/images/" -mindepth 1 -maxdepth 1 -printf 'entry %y %s %T@ %f\0'
fi
if [ -d "$state/staging" ] && [ ! -L "$state/staging" ]; then
  for dir in "$state"/staging/*; do
    [ -e "$dir" ] || [ -L "$dir" ] || continue
    name=${dir##*/}
    if [ -L "$state/locks/$name" ] || [ -L "$state/locks/$name.gate" ]; then
      lock="link"
    elif held "$state/locks/$name"; then lock=held; else lock=free; fi
    record "staging $lock $(stat -c %Y -- "$dir") $name"
    if [ -f "$dir/moved" ] && [ ! -L "$dir/moved" ]; then
      while IFS= read -r moved; do record "moved $moved"; done < "$dir/moved"
    fi
  done
fi
sums=$ss/images/SHA256SUMS
if [ -f "$sums" ] && [ ! -L "$sums" ]; then sum=$(sha256sum < "$sums") && record "sums ${sum%% *}"; else record nosums; fi
streams=$ss/streams/v1/index.json
if [ -f "$streams" ] && [ ! -L "$streams" ]; then record "streams $(base64 -w 0 < "$streams")"; else record nostreams; fi
if [ -f "$state/retired" ] && [ ! -L "$state/retired" ]; then record "retired $(base64 -w 0 < "$state/retired")"; else record noretired; fi
