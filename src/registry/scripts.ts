/**
 * Every script this action runs on the registry server, in one place. Each is a fixed text run
 * by `sh -c` with every value as a quoted positional argument (ssh/shell.ts `scriptCommand`), so
 * no input is ever parsed as shell code; file contents travel over stdin. Each comment says what
 * the script guarantees. A unit test runs `sh -n` (dash and bash) and shellcheck over all of them.
 *
 * The server-side layout they work on is described in registry/layout.ts.
 */

export interface ServerScript {
  /** The script's $0: shown by ps on the server and in the shell's own error messages. */
  name: string;
  text: string;
}

/**
 * Takes an flock on `$lock` (a regular file, never a symlink; its directory is made) on fd 9,
 * waiting at most `$timeout` seconds (exit 75 on timeout). A holder may delete the lock file while
 * holding it (to clean up): a waiter then finds that it locked a deleted file, and takes the lock
 * again on the current one. Shared by the lock holders below.
 */
const TAKE_LOCK = `mkdir -p -- "\${lock%/*}" || exit 1
if [ -L "$lock" ]; then echo "$lock is a symbolic link; remove it" >&2; exit 77; fi
while :; do
  exec 9>>"$lock" || exit 1
  flock -w "$timeout" -E 75 9 || exit $?
  # The file locked is still the one at $lock (same device and inode): not a deleted one.
  [ "$(stat -L -c %d:%i -- "$lock" 2>/dev/null)" = "$(stat -L -c %d:%i -- "/proc/$$/fd/9")" ] && break
  exec 9>&-
done`;

/**
 * Takes the upload directory `$dir`'s write lock on fd 8 within `$timeout` seconds (exit 75), in
 * the mode `$1` of flock (`-x`: alone, to reset or read back; `-s`: shared by the run's writers).
 * Refuses (exit 77) a directory or lock file that is a symlink.
 */
const takeWriteLock = (mode: '-x' | '-s'): string =>
  `if [ -L "$dir" ] || [ -L "$dir/.write.lock" ]; then echo "$dir holds a symbolic link where the upload goes" >&2; exit 77; fi
exec 8>>"$dir/.write.lock" || exit 1
flock ${mode} -w "$timeout" -E 75 8 || exit $?`;

/** The lines of a block list that are blocks (`<offset> <length>`, digits only), as every reader takes them. */
const BLOCK_LINES = `grep -xE '[0-9]{1,15} [0-9]{1,15}' < "$file.blocks"`;

/**
 * The registry lock and the live index read under it, in one round trip: takes the lock `$1` with
 * TAKE_LOCK (waiting at most `$2` seconds), prints `$3/streams/v1/images.json` as one line,
 * "index " and its base64 (or "noindex" when there is none yet; a file on one line cannot be
 * mistaken for the line that follows), then "locked PID". It then holds the lock until its stdin
 * closes: when the run releases it, or when its SSH session dies, the lock goes with it.
 */
export const REGISTRY_LOCK: ServerScript = {
  name: 'lxc-publish-registry-lock',
  text: `lock=$1 timeout=$2 ss=$3
${TAKE_LOCK}
live=$ss/streams/v1/images.json
if [ -e "$live" ]; then
  printf 'index '
  base64 -w 0 < "$live" || exit 1
  echo
else
  echo noindex
fi
echo "locked $$"
exec cat >/dev/null`,
};

/**
 * The image's upload lock and what an earlier attempt left, in one round trip: takes the image
 * lock `$1` with TAKE_LOCK (waiting at most `$2` seconds), then, in the upload directory `$3`
 * and under its write lock taken exclusively (a writer left over from a dropped connection may
 * still be draining, and what it wrote is only final once it is gone), reports each file named
 * after `$3` (numbered from 1):
 *   F <n> <size> <sha256>        the complete file is there (an earlier run got that far)
 *   B <n> <offset> <length>      a block recorded as written in `<name>.partial`, sorted
 *   H <n> <sha256>               the sha256 of those blocks' bytes, in that order
 *   N <n>                        nothing usable: a fresh, empty `<name>.partial` is in place
 * then "locked PID" and holds the lock like REGISTRY_LOCK. A block list is read back only from a
 * regular file of its own and only lines of two numbers are kept; nothing here follows a symlink
 * (a partial file is created, never opened through a link). Refuses (exit 77) an upload directory,
 * lock or write lock that is a symlink.
 */
export const IMAGE_LOCK: ServerScript = {
  name: 'lxc-publish-image-lock',
  text: `lock=$1 timeout=$2 dir=$3; shift 3
${TAKE_LOCK}
if [ -L "$dir" ]; then echo "$dir is a symbolic link; remove it" >&2; exit 77; fi
mkdir -p -- "$dir" && chmod 700 -- "$dir" || exit 1
${takeWriteLock('-x')}
regular() { [ -f "$1" ] && [ ! -L "$1" ]; }
exec 3>&1
n=0
for name; do
  n=$((n + 1))
  file=$dir/$name
  if regular "$file"; then
    sum=$(sha256sum < "$file") || exit 1
    printf 'F %s %s %s\\n' "$n" "$(stat -c %s -- "$file")" "\${sum%% *}"
  elif regular "$file.partial" && regular "$file.blocks"; then
    blocks=$(${BLOCK_LINES} | sort -n -u)
    sum=$(printf '%s\\n' "$blocks" | while read -r offset length; do
      [ -n "$offset" ] || continue
      printf 'B %s %s %s\\n' "$n" "$offset" "$length" >&3
      dd if="$file.partial" bs=1M iflag=skip_bytes,count_bytes,fullblock skip="$offset" count="$length" status=none
    done | sha256sum) || exit 1
    printf 'H %s %s\\n' "$n" "\${sum%% *}"
  else
    rm -f -- "$file.partial" "$file.blocks" || exit 1
    (set -C; : > "$file.partial" && : > "$file.blocks") || exit 1
    printf 'N %s\\n' "$n"
  fi
done
exec 8>&-
echo "locked $$"
exec cat >/dev/null`,
};

/**
 * Starts the upload of `$3` in the directory `$1` again from nothing, under its write lock
 * (waiting at most `$2` seconds): what was there did not match the runner's file. The new partial
 * file and block list are created, never opened through a link.
 */
export const RESET_UPLOAD: ServerScript = {
  name: 'lxc-publish-reset',
  text: `dir=$1 timeout=$2 name=$3
${takeWriteLock('-x')}
rm -f -- "$dir/$name" "$dir/$name.partial" "$dir/$name.blocks" || exit 1
(set -C; : > "$dir/$name.partial" && : > "$dir/$name.blocks") || exit 1`,
};

/**
 * One of the upload's parallel writers. Under the image's write lock, shared with the run's other
 * writers (taken within `$2` seconds), it reads framed blocks from stdin for the files named after
 * `$2` in the upload directory `$1` (numbered from 1):
 *   "B <n> <offset> <length>\n", then exactly <length> bytes, then ".\n"
 * writes each block at its offset into `<name>.partial` (dd reads exactly <length> bytes from the
 * pipe, and the shell's read builtin reads a pipe byte by byte: nothing past a frame is consumed),
 * and records it in `<name>.blocks` once the closing "." arrived; a block cut short by the end of
 * stdin (a dropped connection) is recorded as far as dd wrote it (its count of bytes copied), so
 * a resume sends only the rest. Then:
 *   "E <n> <size>\n"
 * (sent once every other writer has ended) checks that the recorded blocks tile the file from 0
 * to <size> and that it is that long, and only then gives it its final name. Every number read
 * from a frame must be digits; anything else ends the writer with an error. Nothing here follows
 * a symlink: the partial file and block list must be regular files of their own.
 */
export const WRITE_BLOCKS: ServerScript = {
  name: 'lxc-publish-write',
  text: `dir=$1 timeout=$2; shift 2
${takeWriteLock('-s')}
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
      stats=$(LC_ALL=C dd of="$file.partial" bs=1M iflag=count_bytes,fullblock count="$b" seek="$a" oflag=seek_bytes conv=notrunc 2>&1) || { printf '%s\\n' "$stats" >&2; exit 1; }
      copied=\${stats##*"$nl"}
      copied=\${copied%% *}
      case $copied in ''|*[!0-9]*) printf 'dd: %s\\n' "$stats" >&2; exit 1 ;; esac
      if [ "$copied" = "$b" ] && IFS= read -r end && [ "$end" = . ]; then
        printf '%s %s\\n' "$a" "$b" >> "$file.blocks" || exit 1
      else
        # Cut short by the end of stdin (a dropped connection): the bytes that arrived count.
        if [ "$copied" -gt 0 ] && [ "$copied" -lt "$b" ]; then printf '%s %s\\n' "$a" "$copied" >> "$file.blocks"; fi
        echo "the block at $a of $name was cut short" >&2; exit 1
      fi
      ;;
    E)
      case $a in ''|*[!0-9]*) bad "$kind $n $a" ;; esac
      got=$(stat -c %s -- "$file.partial") || exit 1
      # How far the recorded blocks cover the file from 0 without a gap: only lines of two numbers
      # count (as IMAGE_LOCK reads them), so no arithmetic ever sees anything else.
      end=$(${BLOCK_LINES} | sort -n -k1,1 -k2,2 | {
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
done`,
};

/** What READ_LIVE_INDEX prints on stderr when xdelta3 is missing (a line no login shell prints). */
export const NO_XDELTA3_LINE = 'lxc-publish: no xdelta3 on the PATH';

/** Exit statuses of READ_LIVE_INDEX, each a case the action explains. */
export const READ_LIVE_EXIT = {
  noIndexYet: 3,
  noSimplestreamsDir: 4,
  noTool: 5,
  uploadDirNotWritable: 6,
  simplestreamsDirNotWritable: 7,
  writableByOthers: 8,
} as const;

/**
 * Prints images.json; exits 3 when there is none yet, 4 when simplestreams-dir itself is missing.
 * Before a publish it first checks what the server must offer, so that a missing tool or an
 * unwritable directory is found before a large upload: exit 5 when the convert tool (`$3`) is not
 * on the PATH, 6 when upload-dir (`$2`) cannot be written, 7 when simplestreams-dir cannot be,
 * 8 when one of them (or the state directory, images/ or streams/) can be written by someone
 * else than the SSH user (group or others: the web server's user must only read), or is a
 * symlink inside simplestreams-dir. The directory at fault is printed on stderr. These checks run
 * with `$4` = 1 (before any change: a publish, an alias or a removal); they also make the state
 * directory readable by the SSH user alone. With `$5` = 1 it also prints NO_XDELTA3_LINE on stderr
 * when xdelta3 is not on the PATH (deltas are then skipped).
 */
export const READ_LIVE_INDEX: ServerScript = {
  name: 'lxc-publish-read',
  text: `ss=$1 up=$2 tool=$3 check=$4 deltas=\${5:-}
[ -d "$ss" ] || exit 4
if [ -n "$tool" ]; then command -v "$tool" >/dev/null 2>&1 || exit 5; fi
if [ "$deltas" = 1 ]; then command -v xdelta3 >/dev/null 2>&1 || echo "${NO_XDELTA3_LINE}" >&2; fi
if [ -n "$up" ]; then { mkdir -p -- "$up" && [ -w "$up" ]; } 2>/dev/null || exit 6; fi
if [ "$check" = 1 ]; then
  for dir in "$ss" "$ss/.lxc-publish" "$ss/.lxc-publish/staging" "$ss/images" "$ss/streams/v1"; do
    if [ -e "$dir" ] && [ ! -w "$dir" ]; then echo "$dir" >&2; exit 7; fi
  done
  for dir in \${up:+"$up"} "$ss" "$ss/.lxc-publish" "$ss/.lxc-publish/staging" "$ss/.lxc-publish/locks" "$ss/images" "$ss/streams" "$ss/streams/v1"; do
    case $dir in "$ss"/*) if [ -L "$dir" ]; then echo "$dir" >&2; exit 8; fi ;; esac
    if [ -e "$dir" ] && [ -n "$(find "$dir/" -maxdepth 0 -perm /022 2>/dev/null)" ]; then echo "$dir" >&2; exit 8; fi
  done
  # The state directory is the publishing user's alone: flock needs only read access, so a reader
  # could otherwise hold the registry lock or an image lock.
  { mkdir -p -- "$ss/.lxc-publish" && chmod 700 -- "$ss/.lxc-publish"; } 2>/dev/null || { echo "$ss/.lxc-publish" >&2; exit 7; }
fi
if [ -e "$ss/streams/v1/images.json" ]; then exec cat -- "$ss/streams/v1/images.json"; fi
exit 3`,
};

/**
 * Makes a new index live, under the registry lock: image files first, then images/SHA256SUMS,
 * then images.json, then index.json, each by rename. The arguments after the lock holder name the
 * new version's files (in images/ of the staging tree, or of the live tree): when one is gone,
 * nothing is changed (exit 76). Everything that grows with the registry comes over stdin, never
 * as an argument: a first line holding index.json (compact JSON has no line break), then the
 * files the new index no longer names, one per line, then an empty line, then the lines of
 * SHA256SUMS (simplestreams/checksums.ts), then an empty line, then images.json.
 * Before the renames it checks that the lock holder (`$4`) is still alive, so a run whose
 * session died mid-way changes nothing. The names of the files moved into images/ are recorded
 * in the staging tree first: if the run dies before the index names them, a later run removes
 * them. The files no longer named are recorded with the time, for housekeeping to remove after
 * a grace time.
 */
export const COMMIT: ServerScript = {
  name: 'lxc-publish-commit',
  text: `set -eu
ss=$1 next=$2 staging=$3 holder=$4; shift 4
for dir in "$ss/images" "$ss/streams" "$ss/streams/v1"; do
  if [ -L "$dir" ]; then echo "$dir is a symbolic link; nothing was changed" >&2; exit 77; fi
done
for name; do
  [ -f "$staging/images/$name" ] || [ -f "$ss/images/$name" ] ||
    { echo "the staged file $name is gone (removed by another run?); nothing was changed" >&2; exit 76; }
done
rm -rf -- "$next"
mkdir -p -- "$next"
IFS= read -r index_json
printf '%s' "$index_json" > "$next/index.json"
: > "$next/retired"
while IFS= read -r path && [ -n "$path" ]; do printf '%s\\n' "$path" >> "$next/retired"; done
while IFS= read -r line && [ -n "$line" ]; do printf '%s\\n' "$line"; done > "$next/SHA256SUMS"
cat > "$next/images.json"
kill -0 "$holder" 2>/dev/null || { echo "the registry lock was lost; nothing was changed" >&2; exit 75; }
mkdir -p -- "$ss/images" "$ss/streams/v1"
for json in images.json index.json; do
  if [ -f "$ss/streams/v1/$json" ]; then chmod --reference="$ss/streams/v1/$json" -- "$next/$json"; fi
done
if [ -n "$staging" ] && [ -d "$staging/images" ]; then
  # Only the files the new index names: anything else made in the staging tree (a delta left
  # out) goes with the tree, never into images/ where nothing would name it.
  : > "$staging/moved"
  for name; do
    [ -f "$staging/images/$name" ] || continue
    printf '%s\\n' "$name" >> "$staging/moved"
    mv -f -- "$staging/images/$name" "$ss/images/$name"
  done
fi
# The checksums of what the new index names, beside the files, before the index names them.
chmod 644 -- "$next/SHA256SUMS"
mv -f -- "$next/SHA256SUMS" "$ss/images/SHA256SUMS"
mv -f -- "$next/images.json" "$ss/streams/v1/images.json"
mv -f -- "$next/index.json" "$ss/streams/v1/index.json"
# The index names the moved files now: a later clean-up of this staging tree must not remove them.
if [ -n "$staging" ]; then rm -f -- "$staging/moved"; fi
now=$(date +%s)
while IFS= read -r path; do printf '%s %s\\n' "$now" "$path"; done < "$next/retired" >> "$ss/.lxc-publish/retired"`,
};

/**
 * Under the registry lock: removes what runs that died left behind, then this run's own
 * directories (the arguments after the first four), and prints the live images.json, so the run
 * can verify it in the same round trip. What dead runs left:
 * - staging trees whose image lock (`.lxc-publish/locks/<key>`, held by the run working on it,
 *   whatever its upload-dir) is free, with any file they had moved into images/ that no index
 *   names; the removal happens while holding that lock, so no run can start on it meanwhile;
 * - image locks of keys with no staging tree, taken and removed the same way;
 * - upload directories untouched for `$4` minutes whose image lock is free;
 * - retired files past their grace time of `$3` seconds.
 * Everything read back from the state directory is checked before use: names are plain file
 * names, times are digits; anything else is skipped. Symlinks are removed, never followed.
 */
export const HOUSEKEEPING: ServerScript = {
  name: 'lxc-publish-housekeeping',
  text: `set -u
ss=$1 up=$2 retire_grace=$3 upload_grace_minutes=$4; shift 4
state=$ss/.lxc-publish
live=$ss/streams/v1/images.json
now=$(date +%s)
named() { [ -f "$live" ] && grep -qF "\\"$1\\"" "$live"; }
plain_name() { case $1 in ''|.|..|*/*) return 1 ;; *) return 0 ;; esac; }
# Runs "$@" while holding the image lock of key $1 (not waiting); fails when it is held.
with_free_lock() {
  lock=$state/locks/$1; shift
  [ -L "$lock" ] && return 1
  mkdir -p -- "$state/locks" && (exec 7>>"$lock" && flock -n 7 && "$@")
}
drop_staging() {
  if [ -f "$1/moved" ] && [ ! -L "$1/moved" ]; then
    while IFS= read -r name; do
      plain_name "$name" || continue
      named "images/$name" || rm -f -- "$ss/images/$name"
    done < "$1/moved"
  fi
  rm -rf -- "$1"
}
for dir in "$state"/staging/*; do
  [ -e "$dir" ] || [ -L "$dir" ] || continue
  if [ -L "$dir" ] || [ ! -d "$dir" ]; then rm -f -- "$dir"; continue; fi
  key=\${dir##*/}
  with_free_lock "$key" drop_staging "$dir" || true
done
for lock in "$state"/locks/*; do
  [ -e "$lock" ] || [ -L "$lock" ] || continue
  key=\${lock##*/}
  [ -d "$state/staging/$key" ] && continue
  if [ -L "$lock" ]; then rm -f -- "$lock"; else with_free_lock "$key" rm -f -- "$lock" || true; fi
done
if [ -d "$up" ]; then
  find -H "$up" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended -regex '.*/[0-9a-f]{64}' \\
    -mmin +"$upload_grace_minutes" -print | while IFS= read -r dir; do
    with_free_lock "\${dir##*/}" rm -rf -- "$dir" || true
  done
fi
if [ -f "$state/retired" ] && [ ! -L "$state/retired" ]; then
  rm -f -- "$state/retired.next"
  : > "$state/retired.next"
  while read -r when path; do
    case $when in ''|*[!0-9]*) continue ;; esac
    case $path in images/*/*|*..*) continue ;; images/?*) ;; *) continue ;; esac
    named "$path" && continue
    if [ $((now - when)) -ge "$retire_grace" ]; then
      rm -f -- "$ss/$path"
    else
      printf '%s %s\\n' "$when" "$path" >> "$state/retired.next"
    fi
  done < "$state/retired"
  mv -f -- "$state/retired.next" "$state/retired"
fi
# This run's own upload and staging directories, done with.
[ $# -gt 0 ] && rm -rf -- "$@"
exec cat -- "$live"`,
};

/**
 * Makes vcdiff deltas from earlier releases to a staged squashfs, in the staging tree `$2`, under
 * the image's lock and outside the registry lock. `$3` names the new squashfs in `$2/images`, and
 * `$6` is its sha256 as incus-simplestreams recorded it when staging (not read again); each pair
 * after `$6` is a base serial (digits) and the name of its squashfs in `$1/images`, then that
 * squashfs's sha256 as the index records it: a base whose bytes differ (restored from the wrong
 * file, say) is skipped, as its delta would pass the decode check here and fail on every client. For each
 * base, `xdelta3 -e -9` writes `$2/images/<stem>.<serial>.vcdiff` within `$4` seconds; a delta over
 * `$5` bytes is dropped; the delta is then decoded against its base and kept only when that gives
 * the new squashfs byte for byte (sha256). It prints `ok SERIAL SIZE SHA256 NAME` or
 * `skip SERIAL REASON` per base. Every value is checked first (digits, plain file names); bases
 * and the new file must be regular files, never symlinks. Exit 5 when xdelta3 is missing.
 */
export const DELTA: ServerScript = {
  name: 'lxc-publish-delta',
  text: `set -u
ss=$1 staging=$2 new=$3 limit=$4 max=$5 want=$6; shift 6
digits() { case $1 in ''|*[!0-9]*) return 1 ;; *) return 0 ;; esac; }
plain() { case $1 in ''|.|..|-*|*/*) return 1 ;; *) return 0 ;; esac; }
case $want in *[!0-9a-f]*) want= ;; esac
if ! digits "$limit" || ! digits "$max" || ! plain "$new" || [ \${#want} -ne 64 ]; then echo "invalid arguments" >&2; exit 2; fi
newfile=$staging/images/$new
for path in "$ss/images" "$staging" "$staging/images" "$newfile"; do
  if [ -L "$path" ]; then echo "$path is a symbolic link" >&2; exit 77; fi
done
[ -f "$newfile" ] || { echo "$newfile is not a regular file" >&2; exit 2; }
command -v xdelta3 >/dev/null 2>&1 || { echo "xdelta3 is not on the PATH" >&2; exit 5; }
stem=\${new%.squashfs}
while [ $# -ge 3 ]; do
  serial=$1 base=$2 basesum=$3; shift 3
  if ! digits "$serial" || ! plain "$base"; then echo "skip - invalid-arguments"; continue; fi
  basefile=$ss/images/$base
  if [ -L "$basefile" ] || [ ! -f "$basefile" ]; then echo "skip $serial base-missing"; continue; fi
  got=$(sha256sum < "$basefile") || { echo "skip $serial base-missing"; continue; }
  if [ "\${got%% *}" != "$basesum" ]; then echo "skip $serial base-changed"; continue; fi
  out=$staging/images/$stem.$serial.vcdiff
  rm -f -- "$out"
  timeout "$limit" xdelta3 -e -9 -f -s "$basefile" "$newfile" "$out" 2>/dev/null
  status=$?
  if [ "$status" -ne 0 ]; then
    rm -f -- "$out"
    if [ "$status" -eq 124 ]; then echo "skip $serial timed-out"; else echo "skip $serial encode-failed"; fi
    continue
  fi
  size=$(stat -c %s -- "$out") || { rm -f -- "$out"; echo "skip $serial encode-failed"; continue; }
  if [ "$size" -gt "$max" ]; then rm -f -- "$out"; echo "skip $serial too-large $size"; continue; fi
  got=$(timeout "$limit" xdelta3 -d -c -s "$basefile" "$out" 2>/dev/null | sha256sum)
  if [ "\${got%% *}" != "$want" ]; then rm -f -- "$out"; echo "skip $serial decode-mismatch"; continue; fi
  sum=$(sha256sum < "$out") || { rm -f -- "$out"; echo "skip $serial encode-failed"; continue; }
  echo "ok $serial $size \${sum%% *} \${out##*/}"
done`,
};

/** Every script above, for the test that checks them with sh -n and shellcheck. */
export const ALL_SCRIPTS: readonly ServerScript[] = [
  REGISTRY_LOCK,
  IMAGE_LOCK,
  RESET_UPLOAD,
  WRITE_BLOCKS,
  READ_LIVE_INDEX,
  COMMIT,
  HOUSEKEEPING,
  DELTA,
];
