#!/bin/sh
# The registry lock, held as a lease, and the live index read under it, in one round trip.
# Arguments: $1 the state directory, $2 the lock file, $3 seconds to wait for it, $4 the lease in
# seconds, $5 the lease token (lib/lease.sh), $6 simplestreams-dir.
# Prints the live images.json as one line, "index " and its base64 (or "noindex" when there is
# none yet; a file on one line cannot be mistaken for the line that follows), "sums " and the
# sha256 of images/SHA256SUMS (or "nosums"), then "locked", and holds the lock for as long as the
# run's heartbeats arrive (hold_lease). Exits 4, creating nothing, when simplestreams-dir is missing.
state=$1 lock=$2 timeout=$3 lease=$4 token=$5 ss=$6
[ -d "$ss" ] || exit 4
. ./lib/take-lock.sh
. ./lib/lease.sh
lock_file 9 -x "$lock"
begin_lease
live=$ss/streams/v1/images.json
if [ -e "$live" ]; then
  printf 'index '
  base64 -w 0 < "$live" || exit 1
  echo
else
  echo noindex
fi
if [ -f "$ss/images/SHA256SUMS" ] && [ ! -L "$ss/images/SHA256SUMS" ]; then
  sum=$(sha256sum < "$ss/images/SHA256SUMS") || exit 1
  echo "sums ${sum%% *}"
else
  echo nosums
fi
echo locked
hold_lease
