#!/bin/sh
# One of the upload's parallel writers. Arguments: $1 the state directory, $2 the image lock,
# $3 its lease token (lib/fence.sh), $4 the upload directory, $5 seconds to wait for its write
# lock, then the names of the image's files. It starts only under the image lock's lease (a next
# holder stops writers left running, image-lock.sh). Under the write lock, shared with the run's
# other writers, it reads framed blocks from stdin for those files (numbered from 1):
#   "B <n> <offset> <length>\n", then exactly <length> bytes, then ".\n"
# writes each block at its offset into <name>.partial (dd reads exactly <length> bytes from the
# pipe, and the shell's read builtin reads a pipe byte by byte: nothing past a frame is consumed),
# and records it in <name>.blocks once the closing "." arrived; a block cut short by the end of
# stdin (a dropped connection), or interrupted by a next lease holder, is recorded as far as dd
# wrote it (its count of bytes copied), so a resume sends only the rest. Then:
#   "E <n> <size>\n"
# (sent once every other writer has ended) checks that the recorded blocks tile the file from 0
# to <size> and that it is that long, and only then gives it its final name. Every number read
# from a frame must be digits; anything else ends the writer with an error. Nothing here follows
# a symlink: the partial file and block list must be regular files of their own.
state=$1 lock=$2 token=$3 dir=$4 timeout=$5; shift 5
. ./lib/write-lock.sh
. ./lib/fence.sh
take_write_lock -s
enter_lease
leave_gate
bad() { echo "bad frame: $*" >&2; exit 1; }
nl='
'
while read -r kind n a b; do
  case $n in ''|*[!0-9]*) bad "$kind $n" ;; esac
  if [ "$n" -lt 1 ] || [ "$n" -gt $# ]; then bad "$kind $n"; fi
  i=0
  for name; do i=$((i + 1)); [ "$i" = "$n" ] && break; done
  file=$dir/$name
  if [ ! -f "$file.partial" ] || [ -L "$file.partial" ] || [ ! -f "$file.blocks" ] || [ -L "$file.blocks" ]; then
    echo "$file.partial or $file.blocks is not a regular file; the upload starts again" >&2; exit 1
  fi
  case $kind in
    B)
      case $a$b in ''|*[!0-9]*) bad "$kind $n $a $b" ;; esac
      # dd's last line counts the bytes it wrote, also when it fails or is interrupted (SIGINT:
      # a next lease holder stopping this writer, image-lock.sh).
      stats=$(LC_ALL=C dd of="$file.partial" bs=1M iflag=count_bytes,fullblock count="$b" seek="$a" oflag=seek_bytes conv=notrunc 2>&1)
      status=$?
      copied=${stats##*"$nl"}
      copied=${copied%% *}
      case $copied in ''|*[!0-9]*) printf 'dd: %s\n' "$stats" >&2; exit 1 ;; esac
      if [ "$status" = 0 ] && [ "$copied" = "$b" ] && IFS= read -r end && [ "$end" = . ]; then
        printf '%s %s\n' "$a" "$b" >> "$file.blocks" || exit 1
      else
        # Cut short by the end of stdin (a dropped connection) or by a next holder: the bytes
        # written count.
        if [ "$copied" -gt 0 ] && [ "$copied" -lt "$b" ]; then printf '%s %s\n' "$a" "$copied" >> "$file.blocks"; fi
        echo "the block at $a of $name was cut short" >&2; exit 1
      fi
      ;;
    E)
      case $a in ''|*[!0-9]*) bad "$kind $n $a" ;; esac
      got=$(stat -c %s -- "$file.partial") || exit 1
      # How far the recorded blocks cover the file from 0 without a gap: only lines of two numbers
      # count (as image-lock.sh reads them), so no arithmetic ever sees anything else.
      end=$(block_lines "$file" | sort -n -k1,1 -k2,2 | {
        next=0
        while read -r offset length; do
          [ "$offset" -gt "$next" ] && break
          [ $((offset + length)) -gt "$next" ] && next=$((offset + length))
        done
        echo "$next"
      })
      if [ "$got" != "$a" ] || [ "$end" != "$a" ]; then
        echo "incomplete upload of $name: $got bytes, blocks up to $end, of $a" >&2; exit 1
      fi
      mv -f -- "$file.partial" "$file" && rm -f -- "$file.blocks" || exit 1
      ;;
    *) bad "$kind" ;;
  esac
done
