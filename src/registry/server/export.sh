#!/bin/sh
# Prints (part of) a file of the registry for a bucket's copy of it (bucket/sync.ts), read-only,
# while the run holds the registry lock. Arguments: $1 simplestreams-dir, $2 the file's path in
# it: streams/v1/images.json, streams/v1/index.json, .lxc-publish/retired or images/NAME (plain
# characters only); $3 the first byte and $4 how many bytes to print ('' for the rest). Exits 3
# when there is no regular file there, 4 when a component of the path is a symbolic link (never
# followed), 2 for arguments of another form.
ss=$1 path=$2 offset=$3 count=$4
bad() { echo "lxc-publish-export: invalid arguments ($1)" >&2; exit 2; }
case $path in
  streams/v1/images.json | streams/v1/index.json | .lxc-publish/retired) ;;
  images/*)
    case ${path#images/} in '' | . | .. | -* | *[!A-Za-z0-9._+-]*) bad path ;; esac
    ;;
  *) bad path ;;
esac
case $offset in '' | *[!0-9]*) bad offset ;; esac
case $count in *[!0-9]*) bad count ;; esac
cd -- "$ss" || exit 1
# Each component in turn, with test -L: nothing is resolved, so no link is ever followed.
at=. rest=$path
while [ -n "$rest" ]; do
  at=$at/${rest%%/*}
  case $rest in */*) rest=${rest#*/} ;; *) rest= ;; esac
  if [ -L "$at" ]; then exit 4; fi
done
[ -f "$path" ] || exit 3
if [ -z "$count" ]; then
  tail -c +"$((offset + 1))" -- "$path"
else
  dd if="$path" bs=1M iflag=skip_bytes,count_bytes skip="$offset" count="$count" status=none
fi
