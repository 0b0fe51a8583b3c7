#!/bin/sh
# housekeep NAMED [DIR...]: under the registry lock's lease, removes what runs that died left
# behind, then the directories given (this run's own upload and staging directories, done with).
# NAMED lists every file the live index names, one path per line, as the run holding the lock
# made it: a file is kept when its path is a whole line of it (never a substring of the index).
# What dead runs left:
# - staging trees whose image lock is free (no holder, and no operation of a past lease under
#   way: its gate is free too), with any file they had moved into images/ that the index does
#   not name; removed while holding that lock and gate, so that no run can start on it meanwhile;
# - image locks and their gates of keys with no staging tree, taken and removed the same way;
# - lease files of holders that are gone, payload directories of commits whose lease is gone,
#   and output kept aside by fenced.sh, after a while;
# - upload directories untouched for $upload_grace_minutes minutes that no holder marks as in
#   use (".in-use", image-lock.sh), whatever registry they belong to;
# - retired files past their grace time of $retire_grace seconds, in one pass over the list.
# Everything read back from the state directory is checked before use: names are plain file
# names, times are digits; anything else is skipped. Symlinks are removed, never followed.
housekeep() {
  named=$1
  shift
  now=$(date +%s)
  for dir in "$state"/staging/*; do
    [ -e "$dir" ] || [ -L "$dir" ] || continue
    if [ -L "$dir" ] || [ ! -d "$dir" ]; then rm -f -- "$dir"; continue; fi
    with_free_lock "${dir##*/}" drop_staging "$dir" || true
  done
  for key_lock in "$state"/locks/*; do
    [ -e "$key_lock" ] || [ -L "$key_lock" ] || continue
    key=${key_lock##*/}
    key=${key%.gate}
    [ -d "$state/staging/$key" ] && continue
    if [ -L "$key_lock" ]; then rm -f -- "$key_lock"; else with_free_lock "$key" rm -f -- "$state/locks/$key" "$state/locks/$key.gate" || true; fi
  done
  if [ -d "$state/holders" ] && [ ! -L "$state/holders" ]; then
    find "$state/holders" -mindepth 1 -maxdepth 1 -mmin +1 -print | while IFS= read -r file; do
      # Shared, as a fence check takes it: while this looks, an operation of that lease still
      # finds it dead (an exclusive lock here would pass for its holder's).
      if [ -L "$file" ] || [ ! -f "$file" ]; then rm -rf -- "$file"; else (exec 3< "$file" && flock -n -s 3 && rm -f -- "$file"); fi
    done
  fi
  if [ -d "$state/next" ] && [ ! -L "$state/next" ]; then
    find "$state/next" -mindepth 1 -maxdepth 1 -mmin +10 -print | while IFS= read -r dir; do
      alive "${dir##*/}" || rm -rf -- "$dir"
    done
  fi
  find "$state" -mindepth 1 -maxdepth 1 -name '.output.*' -mmin +60 -exec rm -f -- {} + 2> /dev/null
  if [ -d "$up" ]; then
    find -H "$up" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended -regex '.*/[0-9a-f]{64}' \
      -mmin +"$upload_grace_minutes" -print | while IFS= read -r dir; do
      [ -L "$dir/.in-use" ] && continue
      (exec 3>> "$dir/.in-use" && flock -n 3 && rm -rf -- "$dir") 2> /dev/null || true
    done
  fi
  if [ -f "$state/retired" ] && [ ! -L "$state/retired" ]; then
    rm -f -- "$state/retired.next" "$state/retired.remove"
    : > "$state/retired.next" && : > "$state/retired.remove" || return 1
    awk -v now="$now" -v grace="$retire_grace" -v keep="$state/retired.next" -v drop="$state/retired.remove" '
      FILENAME == ARGV[1] { named[$0] = 1; next }
      NF != 2 || $1 !~ /^[0-9]+$/ || $2 !~ /^images\/[A-Za-z0-9._+-]+$/ { next }
      $2 in named { next }
      now - $1 >= grace { print $2 > drop; next }
      { print > keep }
    ' "$named" "$state/retired" || return 1
    (cd -- "$ss" && xargs -r -d '\n' rm -f -- < "$state/retired.remove")
    mv -f -- "$state/retired.next" "$state/retired"
    rm -f -- "$state/retired.remove"
  fi
  [ $# -gt 0 ] && rm -rf -- "$@"
  return 0
}
# Whether the holder of lease $1 is alive (lib/lease.sh).
alive() { (exec 3< "$state/holders/$1" && ! flock -n -s 3) 2> /dev/null; }
# Runs "$@" while holding the image lock of key $1 and its gate, without waiting; fails when
# either is held.
with_free_lock() {
  key_lock=$state/locks/$1
  shift
  if [ -L "$key_lock" ] || [ -L "$key_lock.gate" ]; then return 1; fi
  mkdir -p -- "$state/locks" && (exec 3>> "$key_lock" 4>> "$key_lock.gate" && flock -n 3 && flock -n -x 4 && "$@")
}
# Removes a staging tree of a run that died, and what it had moved into images/ that the index
# does not name.
drop_staging() {
  if [ -f "$1/moved" ] && [ ! -L "$1/moved" ]; then
    while IFS= read -r name; do
      case $name in '' | . | .. | */*) continue ;; esac
      grep -qxF -- "images/$name" "$named" || rm -f -- "$ss/images/$name"
    done < "$1/moved"
  fi
  rm -rf -- "$1"
}
