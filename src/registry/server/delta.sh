#!/bin/sh
# Makes vcdiff deltas from earlier releases to a staged squashfs, under the image lock's lease
# and outside the registry lock. The first three arguments are the state directory, the image
# lock and its lease token (lib/fence.sh); then $1 is simplestreams-dir and $2 the staging tree,
# $3 names the new squashfs in $2/images, and
# $6 is its sha256 as incus-simplestreams recorded it when staging (not read again); each triple
# after $6 is a base serial (digits), the name of its squashfs in $1/images, then that squashfs's
# sha256 as the index records it: a base whose bytes differ (restored from the wrong file, say) is
# skipped, as its delta would pass the decode check here and fail on every client. For each base,
# `xdelta3 -e -9` writes $2/images/<stem>.<serial>.vcdiff within $4 seconds; a delta over $5
# bytes is dropped; the delta is then decoded against its base and kept only when that gives the
# new squashfs byte for byte (sha256). It prints "ok SERIAL SIZE SHA256 NAME" or
# "skip SERIAL REASON" per base. Every value is checked first (digits, plain file names); bases
# and the new file must be regular files, never symlinks. Exit 5 when xdelta3 is missing.
set -u
state=$1 lock=$2 token=$3; shift 3
. ./lib/fence.sh
enter_lease
ss=$1 staging=$2 new=$3 limit=$4 max=$5 want=$6; shift 6
digits() { case $1 in ''|*[!0-9]*) return 1 ;; *) return 0 ;; esac; }
plain() { case $1 in ''|.|..|-*|*/*) return 1 ;; *) return 0 ;; esac; }
case $want in *[!0-9a-f]*) want= ;; esac
if ! digits "$limit" || ! digits "$max" || ! plain "$new" || [ ${#want} -ne 64 ]; then echo "invalid arguments" >&2; exit 2; fi
newfile=$staging/images/$new
for path in "$ss/images" "$staging" "$staging/images" "$newfile"; do
  if [ -L "$path" ]; then echo "$path is a symbolic link" >&2; exit 77; fi
done
[ -f "$newfile" ] || { echo "$newfile is not a regular file" >&2; exit 2; }
command -v xdelta3 >/dev/null 2>&1 || { echo "xdelta3 is not on the PATH" >&2; exit 5; }
stem=${new%.squashfs}
while [ $# -ge 3 ]; do
  serial=$1 base=$2 basesum=$3; shift 3
  if ! digits "$serial" || ! plain "$base"; then echo "skip - invalid-arguments"; continue; fi
  basefile=$ss/images/$base
  if [ -L "$basefile" ] || [ ! -f "$basefile" ]; then echo "skip $serial base-missing"; continue; fi
  got=$(sha256sum < "$basefile") || { echo "skip $serial base-missing"; continue; }
  if [ "${got%% *}" != "$basesum" ]; then echo "skip $serial base-changed"; continue; fi
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
  if [ "${got%% *}" != "$want" ]; then rm -f -- "$out"; echo "skip $serial decode-mismatch"; continue; fi
  sum=$(sha256sum < "$out") || { rm -f -- "$out"; echo "skip $serial encode-failed"; continue; }
  echo "ok $serial $size ${sum%% *} ${out##*/}"
done
