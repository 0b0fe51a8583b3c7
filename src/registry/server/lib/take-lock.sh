#!/bin/sh
# lock_file FD MODE FILE: takes an flock in MODE (-x alone, -s shared) on FILE, a regular file of
# its own (never a symlink; its directory is made), on the file descriptor FD, waiting at most
# $timeout seconds (exit 75 on timeout). Whoever removes such a file (a clean-up) holds its lock
# exclusively while doing so: a waiter then finds that it locked a deleted file, and takes the lock
# again on the current one.
lock_file() {
  if [ -L "$3" ]; then echo "$3 is a symbolic link; remove it" >&2; exit 77; fi
  while :; do
    mkdir -p -- "${3%/*}" || exit 1
    eval "exec $1>>\"\$3\"" || exit 1
    flock "$2" -w "$timeout" -E 75 "$1" || exit $?
    # The file locked is still the one at FILE (same device and inode): not a deleted one.
    [ "$(stat -L -c %d:%i -- "$3" 2>/dev/null)" = "$(stat -L -c %d:%i -- "/proc/$$/fd/$1")" ] && return 0
    eval "exec $1>&-"
  done
}
