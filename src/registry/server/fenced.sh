#!/bin/sh
# Runs a command under a lease (lib/fence.sh): $1 the state directory, $2 the lock, $3 its lease
# token, then the command and its arguments (the owner's convert-command under the registry lock;
# a clean-up under an image lock). The command reads nothing from the run; what it prints is kept
# aside and shown once the lock's next holder may go on, so that a link gone silent cannot hold
# that holder up. Exits with the command's status.
state=$1 lock=$2 token=$3; shift 3
. ./lib/fence.sh
enter_lease
out=$(mktemp -p "$state" .output.XXXXXX) && err=$(mktemp -p "$state" .output.XXXXXX) || exit 1
"$@" < /dev/null > "$out" 2> "$err"
status=$?
leave_gate
cat -- "$err" >&2
cat -- "$out"
rm -f -- "$out" "$err"
exit "$status"
