#!/bin/sh
# Under the registry lock: removes what runs that died left behind, then this run's own
# directories (the arguments after the first four), and prints the live images.json, so the run
# can verify it in the same round trip. What dead runs left:
# - staging trees whose image lock (.lxc-publish/locks/<key>, held by the run working on it,
#   whatever its upload-dir) is free, with any file they had moved into images/ that no index
#   names; the removal happens while holding that lock, so no run can start on it meanwhile;
# - image locks of keys with no staging tree, taken and removed the same way;
# - upload directories untouched for $4 minutes whose image lock is free;
# - retired files past their grace time of $3 seconds.
# Everything read back from the state directory is checked before use: names are plain file
# names, times are digits; anything else is skipped. Symlinks are removed, never followed.
set -u
ss=$1 up=$2 retire_grace=$3 upload_grace_minutes=$4; shift 4
state=$ss/.lxc-publish
live=$ss/streams/v1/images.json
now=$(date +%s)
named() { [ -f "$live" ] && grep -qF "\"$1\"" "$live"; }
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
  key=${dir##*/}
  with_free_lock "$key" drop_staging "$dir" || true
done
for lock in "$state"/locks/*; do
  [ -e "$lock" ] || [ -L "$lock" ] || continue
  key=${lock##*/}
  [ -d "$state/staging/$key" ] && continue
  if [ -L "$lock" ]; then rm -f -- "$lock"; else with_free_lock "$key" rm -f -- "$lock" || true; fi
done
if [ -d "$up" ]; then
  find -H "$up" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended -regex '.*/[0-9a-f]{64}' \
    -mmin +"$upload_grace_minutes" -print | while IFS= read -r dir; do
    with_free_lock "${dir##*/}" rm -rf -- "$dir" || true
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
      printf '%s %s\n' "$when" "$path" >> "$state/retired.next"
    fi
  done < "$state/retired"
  mv -f -- "$state/retired.next" "$state/retired"
fi
# This run's own upload and staging directories, done with.
[ $# -gt 0 ] && rm -rf -- "$@"
exec cat -- "$live"
