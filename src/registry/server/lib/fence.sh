#!/bin/sh
# enter_lease: the rest of the script runs only under the lease $token on "$lock" (lib/lease.sh).
# It holds "$lock.gate" shared on fd 7, so that the lock's next holder waits until this operation
# has ended, then checks that the lease's holder is alive: it keeps "$state/holders/$token" locked.
# Exit 73 when it is not: the lease was lost (the run stopped sending heartbeats, or its connection
# died), another run may hold the lock now, and nothing here may change what that run reads.
# leave_gate: lets the next holder go on (for an operation that only needs to start under the
# lease, or that is done with what the lock guards).
enter_lease() {
  case $token in '' | *[!0-9a-f]*) echo "invalid lease token" >&2; exit 2 ;; esac
  if [ -L "$lock.gate" ]; then echo "$lock.gate is a symbolic link; remove it" >&2; exit 77; fi
  exec 7>>"$lock.gate" || exit 1
  flock -s 7 || exit 1
  if ! (exec 5<"$state/holders/$token" && ! flock -n -s 5) 2>/dev/null; then
    echo "lxc-publish: the lease on $lock was lost" >&2
    exit 73
  fi
}
leave_gate() { exec 7>&-; }
