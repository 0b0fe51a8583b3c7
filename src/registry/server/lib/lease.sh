#!/bin/sh
# A lock held as a lease, by the holder that took "$lock" on fd 9 (lib/take-lock.sh).
# begin_lease: waits (at most $timeout seconds, exit 75) until the operations started under the
# lock's previous lease have ended (each holds "$lock.gate" shared while it works, lib/fence.sh),
# then takes the lease $token: the file "$state/holders/$token", locked on fd 6 for as long as
# this holder lives. A lock that a dead holder cannot keep: a process that ended, zombie or not,
# holds no lock, so no operation can mistake it for alive.
# hold_lease: keeps the lock while something (the run's heartbeats) arrives on stdin at most
# $lease seconds apart, then lets it go: when the run releases it (its stdin ends), when its
# connection dies, and when the run stops answering (a runner suspended, a link gone silent),
# which would otherwise hold the lock until TCP gives up, hours later.
check_token() {
  case $token in '' | *[!0-9a-f]*) echo "invalid lease token" >&2; exit 2 ;; esac
}
begin_lease() {
  check_token
  if [ -L "$lock.gate" ] || [ -L "$state/holders" ]; then echo "$lock.gate or $state/holders is a symbolic link; remove it" >&2; exit 77; fi
  exec 7>>"$lock.gate" || exit 1
  flock -x -w "$timeout" -E 75 7 || exit $?
  mkdir -p -- "$state/holders" || exit 1
  exec 6>"$state/holders/$token" || exit 1
  flock -x 6 || exit 1
  exec 7>&-
}
hold_lease() {
  # Neither the reader nor the subshell around it keeps any of the locks: if this holder is
  # killed, they go with it at once.
  while n=$(exec 4>&- 6>&- 9>&-; timeout "$lease" dd bs=4096 count=1 status=none 2>/dev/null | wc -c) && [ "$n" -gt 0 ]; do :; done
  rm -f -- "$state/holders/$token"
}
