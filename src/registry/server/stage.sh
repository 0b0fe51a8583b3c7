#!/bin/sh
# Stages an uploaded image under the image lock's lease: incus-simplestreams add in an empty
# staging tree of the image's own, whose version the run then merges into the live index under
# the registry lock. Arguments: $1 the state directory, $2 the image lock, $3 its lease token
# (lib/fence.sh), $4 the staging tree, then the uploaded files (metadata first).
# The tool's output goes to stderr. On stdout: "sum SHA256 NAME" for each file the tool wrote into
# the tree's images/, hashed here from the copies themselves (the tool hashes a file through one
# descriptor and then copies it by its path: what it recorded need not be what it copied), then
# "index " and the base64 of the tree's images.json on one line.
state=$1 lock=$2 token=$3 staging=$4; shift 4
. ./lib/fence.sh
enter_lease
rm -rf -- "$staging" && mkdir -p -- "$staging" && cd -- "$staging" || exit 1
# Aliases are applied by the action when it merges the version into the live index.
env TZ=UTC incus-simplestreams add --no-default-alias -- "$@" >&2 || exit $?
for file in images/*; do
  if [ -L "$file" ] || [ ! -f "$file" ]; then continue; fi
  sum=$(sha256sum < "$file") || exit 1
  echo "sum ${sum%% *} ${file#images/}"
done
printf 'index '
base64 -w 0 < streams/v1/images.json || exit 1
echo
