#!/bin/sh
# Makes a new index live under the registry lock's lease, whole or not at all, cleans up after
# earlier runs (lib/housekeeping.sh) and says what is live, in one round trip.
# Arguments: $1 the state directory, $2 the registry lock, $3 its lease token (lib/fence.sh),
# $4 simplestreams-dir, $5 the staging tree ('' for none), $6 upload-dir, $7 the grace time of
# retired files in seconds, $8 that of abandoned uploads in minutes; then the count of payload
# parts and, for each, its name, length and sha256; then the count of staged files and, for each,
# its name in the staging tree's images/ and the name it is published under in images/; then this
# run's own directories, removed once done. Nothing that grows with the registry is an argument.
# The payload, on stdin, is the parts one after the other (registry/commit.ts builds it):
#   images.json, index.json   the new index (both or neither)
#   SHA256SUMS                images/SHA256SUMS for the index that will be live
#   retired                   files the new index no longer names, one per line
#   named                     every file the live index will name, one per line
# Nothing is changed unless the payload arrived whole: every part of its stated length and
# sha256 (a dropped link leaves a short one: exit 79). Then, under the lease: when a staged file
# is gone (exit 76) or a different file already has its published name (exit 78), nothing is
# changed either. The live index and SHA256SUMS are kept in .lxc-publish/previous/ before they
# are replaced (to roll back a bad one by hand); the staged files are moved into images/ first
# (their names recorded in the staging tree until the index names them, so that a later run
# removes them if this one dies meanwhile), then images.json, index.json and last SHA256SUMS are
# renamed into place, so that SHA256SUMS is never ahead of the index. Hang-ups and broken pipes
# are ignored: a link that drops after the payload arrived cannot stop the renames half done.
# Prints "live SHA256" of the live images.json (or "live none") at the end.
set -u
trap '' HUP PIPE
state=$1 lock=$2 token=$3 ss=$4 staging=$5 up=$6 retire_grace=$7 upload_grace_minutes=$8
shift 8
. ./lib/fence.sh
. ./lib/housekeeping.sh
bad() { echo "lxc-publish-commit: invalid arguments ($*); nothing was changed" >&2; exit 2; }
digits() { case $1 in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac; }
sha256() { sum=$(sha256sum < "$1") && echo "${sum%% *}"; }
case $token in '' | *[!0-9a-f]*) bad token ;; esac
if ! digits "$retire_grace" || ! digits "$upload_grace_minutes"; then bad grace; fi

# The payload, whole, before anything else.
digits "${1:-}" || bad parts
parts=$1
shift
specs='' total=0
while [ "$parts" -gt 0 ]; do
  [ $# -ge 3 ] || bad parts
  case $1 in images.json | index.json | SHA256SUMS | retired | named) ;; *) bad "part $1" ;; esac
  digits "$2" || bad "length of $1"
  case $3 in *[!0-9a-f]*) bad "sha256 of $1" ;; esac
  [ ${#3} -eq 64 ] || bad "sha256 of $1"
  specs="$specs $1:$2:$3"
  total=$((total + $2))
  parts=$((parts - 1))
  shift 3
done
next=$state/next/$token
rm -rf -- "$next" && mkdir -p -- "$next" || exit 1
timeout 600 cat > "$next/payload"
got=$(stat -c %s -- "$next/payload") || exit 1
if [ "$got" != "$total" ]; then
  echo "lxc-publish-commit: the new index arrived incomplete ($got of $total bytes; the connection dropped?); nothing was changed" >&2
  rm -rf -- "$next"
  exit 79
fi
offset=0
for spec in $specs; do
  name=${spec%%:*} rest=${spec#*:}
  length=${rest%%:*} want=${rest#*:}
  dd if="$next/payload" of="$next/$name" bs=1M iflag=skip_bytes,count_bytes skip="$offset" count="$length" status=none || exit 1
  if [ "$(sha256 "$next/$name")" != "$want" ]; then
    echo "lxc-publish-commit: $name arrived damaged (its sha256 differs); nothing was changed" >&2
    rm -rf -- "$next"
    exit 79
  fi
  offset=$((offset + length))
done
rm -f -- "$next/payload"
[ -f "$next/named" ] || bad "no named part"
if [ -f "$next/images.json" ]; then has_images=1; else has_images=0; fi
if [ -f "$next/index.json" ]; then has_index=1; else has_index=0; fi
[ "$has_images" = "$has_index" ] || bad "images.json and index.json go together"

# The staged files: NAME PUBLISHED pairs.
digits "${1:-}" || bad files
files=$1
shift
pairs=''
while [ "$files" -gt 0 ]; do
  [ $# -ge 2 ] || bad files
  for name in "$1" "$2"; do case $name in '' | . | .. | -* | *[!A-Za-z0-9._+-]*) bad "file name $name" ;; esac; done
  pairs="$pairs $1/$2"
  files=$((files - 1))
  shift 2
done

enter_lease
for dir in "$ss/images" "$ss/streams" "$ss/streams/v1"; do
  if [ -L "$dir" ]; then echo "$dir is a symbolic link; nothing was changed" >&2; exit 77; fi
done
for pair in $pairs; do
  src=$staging/images/${pair%/*} dst=$ss/images/${pair#*/}
  if [ -f "$src" ] && [ ! -L "$src" ]; then
    if [ -e "$dst" ] && ! cmp -s -- "$src" "$dst"; then
      echo "lxc-publish-commit: collision ${pair#*/}: images/ already has a different file of that name; nothing was changed" >&2
      exit 78
    fi
  elif [ ! -f "$dst" ]; then
    echo "the staged file ${pair%/*} is gone (removed by another run?); nothing was changed" >&2
    exit 76
  fi
done
mkdir -p -- "$ss/images" "$ss/streams/v1" "$state/previous" || exit 1
if [ -f "$next/images.json" ]; then
  for file in streams/v1/images.json streams/v1/index.json images/SHA256SUMS; do
    if [ -f "$ss/$file" ] && [ ! -L "$ss/$file" ]; then ln -f -- "$ss/$file" "$state/previous/${file##*/}" || exit 1; fi
  done
  if [ -n "$pairs" ]; then
    : > "$staging/moved" || exit 1
    for pair in $pairs; do
      src=$staging/images/${pair%/*} dst=$ss/images/${pair#*/}
      # Checked above, but the index must never name a file that is not there: gone since
      # (nothing should remove it under this lease), the old index stays live.
      if [ ! -f "$src" ]; then
        [ -f "$dst" ] && continue
        echo "the staged file ${pair%/*} is gone (removed by another run?); nothing was changed" >&2
        exit 76
      fi
      # The same bytes under that name already (checked above): nothing to move.
      if [ -e "$dst" ]; then rm -f -- "$src" && continue; fi
      printf '%s\n' "${pair#*/}" >> "$staging/moved" && mv -- "$src" "$dst" || exit 1
    done
  fi
  for json in images.json index.json; do
    if [ -f "$ss/streams/v1/$json" ]; then chmod --reference="$ss/streams/v1/$json" -- "$next/$json"; else chmod 644 -- "$next/$json"; fi
  done
  mv -f -- "$next/images.json" "$ss/streams/v1/images.json" || exit 1
  mv -f -- "$next/index.json" "$ss/streams/v1/index.json" || exit 1
  # The index names the moved files now: a later clean-up of this staging tree must not remove them.
  if [ -n "$pairs" ]; then rm -f -- "$staging/moved"; fi
fi
if [ -f "$next/SHA256SUMS" ]; then
  chmod 644 -- "$next/SHA256SUMS" && mv -f -- "$next/SHA256SUMS" "$ss/images/SHA256SUMS" || exit 1
fi
if [ -s "$next/retired" ]; then
  now=$(date +%s)
  while IFS= read -r path; do printf '%s %s\n' "$now" "$path"; done < "$next/retired" >> "$state/retired"
fi

housekeep "$next/named" "$@"
live=$ss/streams/v1/images.json
if [ -f "$live" ]; then sum=$(sha256 "$live") || exit 1; else sum=none; fi
leave_gate
rm -rf -- "$next"
echo "live $sum"
