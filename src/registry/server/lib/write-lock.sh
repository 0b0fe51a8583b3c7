#!/bin/sh
# take_write_lock MODE: takes the upload directory "$dir"'s write lock on fd 8 within "$timeout"
# seconds (exit 75), in the flock mode MODE (-x: alone, to reset or read back; -s: shared by the
# run's writers). Refuses (exit 77) a directory or lock file that is a symlink.
# block_lines FILE: the lines of FILE.blocks that are blocks ("<offset> <length>", digits only),
# as every reader takes them.
take_write_lock() {
  if [ -L "$dir" ] || [ -L "$dir/.write.lock" ]; then echo "$dir holds a symbolic link where the upload goes" >&2; exit 77; fi
  exec 8>>"$dir/.write.lock" || exit 1
  flock "$1" -w "$timeout" -E 75 8 || exit $?
}
block_lines() { grep -xE '[0-9]{1,15} [0-9]{1,15}' < "$1.blocks"; }
