#!/bin/sh
# tests/c/run_examples.sh: runs examples/c_echo_server.c and
# examples/c_echo_client.c against each other over loopback.
#   run_examples.sh <c_echo_server> <c_echo_client> [emulator [arguments...]]
# The server picks a free port and serves two connections; the client runs
# twice (small and large messages). Fails unless every echo is verified and
# the server reports both connections. With an emulator (a cross build's
# CMAKE_CROSSCOMPILING_EMULATOR, e.g. wine64) both run through it.
set -u
server="$1"
client="$2"
shift 2 # what remains: the emulator command, if any
out="$(mktemp)"
trap 'rm -f "$out"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null' EXIT

"$@" "$server" 0 2 127.0.0.1 >"$out" 2>&1 &
pid=$!

port=""
i=0
while [ $i -lt 600 ] && [ -z "$port" ]; do
    port="$(sed -n 's/^listening on port \([0-9][0-9]*\).*$/\1/p' "$out")" # .*: a Windows \r
    [ -n "$port" ] || sleep 0.1
    i=$((i + 1))
done
if [ -z "$port" ]; then
    echo "the server did not report its port"; cat "$out"; exit 1
fi
echo "server listening on port $port"

"$@" "$client" 127.0.0.1 "$port" 500 100 || { echo "client run 1 failed"; exit 1; }
"$@" "$client" 127.0.0.1 "$port" 20 200000 || { echo "client run 2 failed"; exit 1; }

wait "$pid"
status=$?
pid=""
cat "$out"
[ $status -eq 0 ] || { echo "the server exited with $status"; exit 1; }
grep -q '^served 2 connections' "$out" || { echo "the server did not serve both connections"; exit 1; }
echo "examples ok"
