#!/bin/sh
# Starts the upload of $3 in the directory $1 again from nothing, under its write lock (waiting
# at most $2 seconds): what was there did not match the runner's file. The new partial file and
# block list are created, never opened through a link.
dir=$1 timeout=$2 name=$3
. ./lib/write-lock.sh
take_write_lock -x
rm -f -- "$dir/$name" "$dir/$name.partial" "$dir/$name.blocks" || exit 1
(set -C; : > "$dir/$name.partial" && : > "$dir/$name.blocks") || exit 1
