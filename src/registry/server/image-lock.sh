#!/bin/sh
# An image's upload lock, held as a lease, and what an earlier attempt left, in one round trip.
# Arguments: $1 the state directory, $2 the lock file, $3 seconds to wait for it, $4 the lease in
# seconds, $5 the lease token (lib/lease.sh), $6 the upload directory, then the names of the
# image's files in it.
# Under the lease, it marks the upload directory as in use for as long as it holds the lock
# (".in-use", locked shared on fd 4: a clean-up removes an upload directory only when it can take
# that exclusively), stops what writers of an earlier lease still run (their run stopped, or its
# link went silent: they would hold the write lock for hours), and, under the write lock taken
# exclusively, reports each file (numbered from 1):
#   F <n> <size> <sha256>        the complete file is there (an earlier run got that far)
#   B <n> <offset> <length>      a block recorded as written in <name>.partial, sorted
#   H <n> <sha256>               the sha256 of those blocks' bytes, in that order
#   N <n>                        nothing usable: a fresh, empty <name>.partial is in place
# then "locked", and holds the lock like registry-lock.sh. A block list is read back only from a
# regular file of its own and only lines of two numbers are kept; nothing here follows a symlink
# (a partial file is created, never opened through a link). Refuses (exit 77) an upload
# directory, lock or write lock that is a symlink.
state=$1 lock=$2 timeout=$3 lease=$4 token=$5 dir=$6; shift 6
. ./lib/take-lock.sh
. ./lib/lease.sh
. ./lib/write-lock.sh
lock_file 9 -x "$lock"
begin_lease
if [ -L "$dir" ]; then echo "$dir is a symbolic link; remove it" >&2; exit 77; fi
lock_file 4 -s "$dir/.in-use"
chmod 700 -- "$dir" || exit 1
# Writers of an earlier lease: every process of this user holding the write lock open (writers
# keep it on fd 8, and so do the dd they run). This holder has the lock, so none of them is its
# own run's. A writer whose link dropped ends by itself and records what arrived; one whose link
# went silent waits for bytes that never come. So: interrupt their dd (GNU dd reports what it
# wrote before it dies, and the writer records that much), give them a moment to record it, and
# kill what still holds the lock (writers blocked between blocks, with nothing left to record).
writers() {
  [ -e "$dir/.write.lock" ] || return 0
  target=$(readlink -f -- "$dir/.write.lock")
  for fd in /proc/[0-9]*/fd/8; do
    [ "$(readlink -- "$fd" 2>/dev/null)" = "$target" ] || continue
    pid=${fd#/proc/}
    pid=${pid%%/*}
    [ "$pid" = "$$" ] || echo "$pid"
  done
}
for pid in $(writers); do
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dd ] && kill -INT "$pid" 2>/dev/null
done
if [ -n "$(writers)" ]; then
  (timeout=2 && take_write_lock -x) || for pid in $(writers); do kill -KILL "$pid" 2>/dev/null; done
fi
take_write_lock -x
regular() { [ -f "$1" ] && [ ! -L "$1" ]; }
exec 3>&1
n=0
for name; do
  n=$((n + 1))
  file=$dir/$name
  if regular "$file"; then
    sum=$(sha256sum < "$file") || exit 1
    printf 'F %s %s %s\n' "$n" "$(stat -c %s -- "$file")" "${sum%% *}"
  elif regular "$file.partial" && regular "$file.blocks"; then
    blocks=$(block_lines "$file" | sort -n -u)
    sum=$(printf '%s\n' "$blocks" | while read -r offset length; do
      [ -n "$offset" ] || continue
      printf 'B %s %s %s\n' "$n" "$offset" "$length" >&3
      dd if="$file.partial" bs=1M iflag=skip_bytes,count_bytes,fullblock skip="$offset" count="$length" status=none
    done | sha256sum) || exit 1
    printf 'H %s %s\n' "$n" "${sum%% *}"
  else
    rm -f -- "$file.partial" "$file.blocks" || exit 1
    (set -C; : > "$file.partial" && : > "$file.blocks") || exit 1
    printf 'N %s\n' "$n"
  fi
done
exec 8>&-
echo locked
hold_lease
