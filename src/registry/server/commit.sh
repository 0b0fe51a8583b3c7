#!/bin/sh
# Makes a new index live, under the registry lock: image files first, then images/SHA256SUMS,
# then images.json, then index.json, each by rename. The arguments after the lock holder name the
# new version's files (in images/ of the staging tree, or of the live tree): when one is gone,
# nothing is changed (exit 76). Everything that grows with the registry comes over stdin, never
# as an argument: a first line holding index.json (compact JSON has no line break), then the
# files the new index no longer names, one per line, then an empty line, then the lines of
# SHA256SUMS (simplestreams/checksums.ts), then an empty line, then images.json.
# Before the renames it checks that the lock holder ($4) is still alive, so a run whose
# session died mid-way changes nothing. The names of the files moved into images/ are recorded
# in the staging tree first: if the run dies before the index names them, a later run removes
# them. The files no longer named are recorded with the time, for housekeeping to remove after
# a grace time.
set -eu
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
while IFS= read -r path && [ -n "$path" ]; do printf '%s\n' "$path" >> "$next/retired"; done
while IFS= read -r line && [ -n "$line" ]; do printf '%s\n' "$line"; done > "$next/SHA256SUMS"
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
    printf '%s\n' "$name" >> "$staging/moved"
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
while IFS= read -r path; do printf '%s %s\n' "$now" "$path"; done < "$next/retired" >> "$ss/.lxc-publish/retired"
