#!/bin/sh
# Starts the upload of $6 in the directory $4 again from nothing, under the image lock's lease
# ($1 the state directory, $2 the lock, $3 the lease token: lib/fence.sh) and the directory's
# write lock (waiting at most $5 seconds): what was there did not match the runner's file. The new
# partial file and block list are created, never opened through a link.
state=$1 lock=$2 token=$3 dir=$4 timeout=$5 name=$6
. ./lib/write-lock.sh
. ./lib/fence.sh
enter_lease
take_write_lock -x
rm -f -- "$dir/$name" "$dir/$name.partial" "$dir/$name.blocks" || exit 1
(set -C; : > "$dir/$name.partial" && : > "$dir/$name.blocks") || exit 1
