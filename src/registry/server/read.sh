#!/bin/sh
# Prints images.json; exits 3 when there is none yet, 4 when simplestreams-dir itself is missing.
# Before a publish it first checks what the server must offer, so that a missing tool or an
# unwritable directory is found before a large upload: exit 5 when the convert tool ($3) is not
# on the PATH, 6 when upload-dir ($2) cannot be written, 7 when simplestreams-dir cannot be,
# 8 when one of them (or the state directory, images/ or streams/) can be written by someone
# else than the SSH user (group or others: the web server's user must only read), or is a
# symlink inside simplestreams-dir. The directory at fault is printed on stderr. These checks run
# with $4 = 1 (before any change: a publish, an alias or a removal); they also make the state
# directory readable by the SSH user alone. With $5 = 1 it also prints
# "lxc-publish: no xdelta3 on the PATH" on stderr when xdelta3 is not on the PATH (deltas are then
# skipped). With $6 = 1 (a dry run) it changes nothing: a missing upload-dir is not made, and the
# state directory is neither made nor chmodded. The exit statuses are READ_LIVE_EXIT in
# registry/scripts.ts.
ss=$1 up=$2 tool=$3 check=$4 deltas=${5:-} dry=${6:-}
[ -d "$ss" ] || exit 4
if [ -n "$tool" ]; then command -v "$tool" >/dev/null 2>&1 || exit 5; fi
if [ "$deltas" = 1 ]; then command -v xdelta3 >/dev/null 2>&1 || echo "lxc-publish: no xdelta3 on the PATH" >&2; fi
if [ -n "$up" ]; then
  if [ "$dry" = 1 ]; then
    # What mkdir -p needs: the directory, or else its nearest existing ancestor, a writable directory.
    at=$up
    while [ ! -e "$at" ] && [ ! -L "$at" ]; do at=$(dirname -- "$at"); done
    { [ -d "$at" ] && [ -w "$at" ]; } || exit 6
  else { mkdir -p -- "$up" && [ -w "$up" ]; } 2>/dev/null || exit 6; fi
fi
if [ "$check" = 1 ]; then
  for dir in "$ss" "$ss/.lxc-publish" "$ss/.lxc-publish/staging" "$ss/images" "$ss/streams/v1"; do
    if [ -e "$dir" ] && [ ! -w "$dir" ]; then echo "$dir" >&2; exit 7; fi
  done
  for dir in ${up:+"$up"} "$ss" "$ss/.lxc-publish" "$ss/.lxc-publish/staging" "$ss/.lxc-publish/locks" "$ss/.lxc-publish/holders" "$ss/.lxc-publish/next" "$ss/.lxc-publish/previous" "$ss/images" "$ss/streams" "$ss/streams/v1"; do
    case $dir in "$ss"/*) if [ -L "$dir" ]; then echo "$dir" >&2; exit 8; fi ;; esac
    if [ -e "$dir" ] && [ -n "$(find "$dir/" -maxdepth 0 -perm /022 2>/dev/null)" ]; then echo "$dir" >&2; exit 8; fi
  done
  # The state directory is the publishing user's alone: flock needs only read access, so a reader
  # could otherwise hold the registry lock or an image lock.
  if [ "$dry" = 1 ]; then
    # What the chmod below needs: a directory the SSH user owns (or none yet).
    if [ -e "$ss/.lxc-publish" ] && { [ ! -d "$ss/.lxc-publish" ] || [ ! -O "$ss/.lxc-publish" ]; }; then
      echo "$ss/.lxc-publish" >&2
      exit 7
    fi
  else
    { mkdir -p -- "$ss/.lxc-publish" && chmod 700 -- "$ss/.lxc-publish"; } 2>/dev/null || { echo "$ss/.lxc-publish" >&2; exit 7; }
  fi
fi
if [ -e "$ss/streams/v1/images.json" ]; then exec cat -- "$ss/streams/v1/images.json"; fi
exit 3
