#!/usr/bin/env bash
# kill-compile.sh SPEC OUTPUT [link|symlink]: starts `granule compile SPEC -o OUTPUT`, waits until
# one of its temporary files (OUTPUT.tmp-*) exists, sends SIGTERM, and checks that the compile
# ended with status 143 and that no temporary file exists, also after a linker would have
# finished, and no child process is left running. With "link" the `cc` on PATH is
# slow-linker/cc, whose link creates OUTPUT.tmp-link, takes 2 s and then writes it, and the signal
# comes while it runs; "symlink" does the same with OUTPUT a symbolic link to OUTPUT.target/out,
# where the linker writes. Exits 1 with a message otherwise.
set -u
spec=$1
output=$2
mode=${3:-}
# The processes whose command line holds the text $1 in one argument. The last character goes in
# brackets so that grep's own command line does not match.
running_with() {
    local escaped
    escaped=$(printf '%s' "${1%?}" | sed 's/[][\.*^$+?(){}|]/\\&/g')
    grep -lsE -- "$escaped[${1: -1}]" /proc/[0-9]*/cmdline | cut -d/ -f3
}
rm -rf "$output" "$output".tmp-* "$output.target"
linked=$output  # where the linker writes its output
if [[ $mode == symlink ]]; then
    mkdir "$output.target"
    ln -s "$output.target/out" "$output"
    linked=$output.target/out
fi
if [[ $mode == link || $mode == symlink ]]; then
    # The stand-in is the `cc` on PATH, so $CC must not name another compiler; it runs the real one.
    REAL_CC=$(command -v cc) PATH="$(cd "$(dirname "$0")" && pwd)/slow-linker:$PATH" \
        env -u CC granule compile "$spec" -o "$output" --jobs 1 > /dev/null 2>&1 &
else
    granule compile "$spec" -o "$output" --jobs 1 > /dev/null 2>&1 &
fi
pid=$!
seen=""
for _ in $(seq 1 6000); do  # 6000 polls, at least 60 s
    if [[ -n $mode ]]; then
        [[ -n $(running_with "$linked.tmp-link") ]] && { seen=yes; break; }
    elif compgen -G "$output.tmp-*" > /dev/null; then
        seen=yes
        break
    fi
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.01
done
if [[ -z $seen ]]; then
    wait "$pid"
    echo "no ${mode:-temporary file} appeared while compiling (exit $?)"
    exit 1
fi
kill -TERM "$pid"
wait "$pid"
status=$?
[[ -n $mode ]] && sleep 3  # a surviving linker would write its file in this time
left=$(compgen -G "$output.tmp-*"; compgen -G "$linked.tmp-*")
running=$(running_with "$linked.tmp-")
if [[ $status -ne 143 || -n $left || -n $running ]]; then
    echo "status $status, left behind: ${left:-no file}, running: ${running:-nothing}"
    exit 1
fi
echo "stopped with status 143, no temporary files left"
