#!/bin/sh
# The image's upload lock and what an earlier attempt left, in one round trip: takes the image
# lock $1 with lib/take-lock.sh (waiting at most $2 seconds), then, in the upload directory $3
# and under its write lock taken exclusively (a writer left over from a dropped connection may
# still be draining, and what it wrote is only final once it is gone), reports each file named
# after $3 (numbered from 1):
#   F <n> <size> <sha256>        the complete file is there (an earlier run got that far)
#   B <n> <offset> <length>      a block recorded as written in <name>.partial, sorted
#   H <n> <sha256>               the sha256 of those blocks' bytes, in that order
#   N <n>                        nothing usable: a fresh, empty <name>.partial is in place
# then "locked PID" and holds the lock like registry-lock.sh. A block list is read back only from
# a regular file of its own and only lines of two numbers are kept; nothing here follows a
# symlink (a partial file is created, never opened through a link). Refuses (exit 77) an upload
# directory, lock or write lock that is a symlink.
lock=$1 timeout=$2 dir=$3; shift 3
. ./lib/take-lock.sh
. ./lib/write-lock.sh
if [ -L "$dir" ]; then echo "$dir is a symbolic link; remove it" >&2; exit 77; fi
mkdir -p -- "$dir" && chmod 700 -- "$dir" || exit 1
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
echo "locked $$"
exec cat >/dev/null
