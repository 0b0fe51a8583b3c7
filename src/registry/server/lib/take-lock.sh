#!/bin/sh
# Takes an flock on "$lock" (a regular file, never a symlink; its directory is made) on fd 9,
# waiting at most "$timeout" seconds (exit 75 on timeout). A holder may delete the lock file while
# holding it (to clean up): a waiter then finds that it locked a deleted file, and takes the lock
# again on the current one.
mkdir -p -- "${lock%/*}" || exit 1
if [ -L "$lock" ]; then echo "$lock is a symbolic link; remove it" >&2; exit 77; fi
while :; do
  exec 9>>"$lock" || exit 1
  flock -w "$timeout" -E 75 9 || exit $?
  # The file locked is still the one at $lock (same device and inode): not a deleted one.
  [ "$(stat -L -c %d:%i -- "$lock" 2>/dev/null)" = "$(stat -L -c %d:%i -- "/proc/$$/fd/9")" ] && break
  exec 9>&-
done
