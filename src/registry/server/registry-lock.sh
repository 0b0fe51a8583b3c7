#!/bin/sh
# The registry lock and the live index read under it, in one round trip: takes the lock $1 with
# lib/take-lock.sh (waiting at most $2 seconds), prints $3/streams/v1/images.json as one line,
# "index " and its base64 (or "noindex" when there is none yet; a file on one line cannot be
# mistaken for the line that follows), then "locked PID". It then holds the lock until its stdin
# closes: when the run releases it, or when its SSH session dies, the lock goes with it.
lock=$1 timeout=$2 ss=$3
. ./lib/take-lock.sh
live=$ss/streams/v1/images.json
if [ -e "$live" ]; then
  printf 'index '
  base64 -w 0 < "$live" || exit 1
  echo
else
  echo noindex
fi
echo "locked $$"
exec cat >/dev/null
