#!/usr/bin/env bash
# kill-compile.sh SPEC OUTPUT: starts `granule compile SPEC -o OUTPUT`, waits until one of its
# temporary files (OUTPUT.tmp-*) exists, sends SIGTERM, and checks that the compile ended with
# status 143 and left no temporary file behind. Exits 1 with a message otherwise.
set -u
spec=$1
output=$2
rm -f "$output" "$output".tmp-*
granule compile "$spec" -o "$output" --jobs 1 > /dev/null 2>&1 &
pid=$!
seen=""
for _ in $(seq 1 3000); do  # up to 60 s
    if compgen -G "$output.tmp-*" > /dev/null; then seen=yes; break; fi
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.02
done
if [[ -z $seen ]]; then
    wait "$pid"
    echo "no temporary file appeared while compiling (exit $?)"
    exit 1
fi
kill -TERM "$pid"
wait "$pid"
status=$?
left=$(compgen -G "$output.tmp-*")
if [[ $status -ne 143 || -n $left ]]; then
    echo "status $status, left behind: ${left:-nothing}"
    exit 1
fi
echo "stopped with status 143, no temporary files left"
