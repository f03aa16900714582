#!/usr/bin/env bash
# Drives samples/http_service with real HTTP clients (curl):
#   1. eight /sum maps at once, each answer checked against its formula;
#   2. /ping answered while maps run (it reports them running);
#   3. a client that gives up mid-map cancels it: the map ends early, and the next map is served;
#   4. SIGTERM: the server exits 0 and leaves no worker process behind.
# Every wait is bounded. Usage: http_service_test.sh HTTP_SERVICE WORK_DIR
set -euo pipefail
server=$1
work=$2
rm -rf "$work"
mkdir -p "$work"

fail() {
  echo "http_service_test: $*" >&2
  echo "--- server output:" >&2
  cat "$work/server.log" >&2 || true
  exit 1
}

"$server" --n-jobs 2 >"$work/server.log" 2>&1 &
pid=$!
trap 'kill -KILL $pid 2>/dev/null || true' EXIT

port=""
for _ in $(seq 300); do
  port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$work/server.log")
  [ -n "$port" ] && break
  kill -0 $pid 2>/dev/null || fail "the server exited before listening"
  sleep 0.1
done
[ -n "$port" ] || fail "the server did not listen within 30 s"
url="http://127.0.0.1:$port"
get() { curl -sS --max-time 120 "$url$1"; }
stat_of() { get /stats | sed -n "s/^$1 //p"; }

# 1 and 2: eight maps at once (n = 300..2400 tasks of 1 ms), and pings while they run.
clients=()
for k in 1 2 3 4 5 6 7 8; do
  get "/sum?n=$((300 * k))&ms=1" >"$work/sum$k" &
  clients+=($!)
done
saw_running=""
for _ in $(seq 100); do
  answer=$(get /ping)
  case $answer in
    "pong ("[1-9]*" maps running)") saw_running=$answer; break ;;
    "pong ("*) sleep 0.05 ;;
    *) fail "/ping answered \"$answer\"" ;;
  esac
done
[ -n "$saw_running" ] || fail "/ping never answered while a map was running"
for c in "${clients[@]}"; do wait "$c" || fail "a /sum client failed"; done
for k in 1 2 3 4 5 6 7 8; do
  n=$((300 * k))
  expected=$(( (n - 1) * n * (2 * n - 1) / 6 ))
  [ "$(cat "$work/sum$k")" = "$expected" ] || fail "/sum?n=$n answered \"$(cat "$work/sum$k")\", expected $expected"
done
echo "8 maps at once: every sum right; $saw_running while they ran"

# 3: a client that leaves after 1 s cancels its map of 1e6 tasks of 1 ms (~8 min on 2 workers).
set +e
curl -sS --max-time 1 "$url/sum?n=1000000&ms=1" >/dev/null 2>&1
rc=$?
set -e
[ $rc -eq 28 ] || fail "the client that should time out exited with $rc"
for _ in $(seq 300); do
  [ "$(stat_of maps_cancelled)" = 1 ] && [ "$(stat_of maps_running)" = 0 ] && break
  sleep 0.1
done
[ "$(stat_of maps_cancelled)" = 1 ] || fail "the map of the client that left was not cancelled within 30 s"
[ "$(stat_of maps_running)" = 0 ] || fail "a map still runs after its client left"
done_tasks=$(stat_of tasks_finished)
# The eight maps before it finished 300 * (1 + ... + 8) tasks.
[ "$done_tasks" -lt $((10800 + 1000000)) ] || fail "the cancelled map ran to its end"
[ "$(get "/sum?n=4")" = 14 ] || fail "no map served after the cancelled one"
echo "a client that left cancelled its map ($done_tasks tasks finished in all)"

# 4: SIGTERM stops the server; its workers go with it.
workers=$(cat /proc/$pid/task/*/children 2>/dev/null | wc -w)
[ "$workers" -ge 1 ] || fail "the server has no worker processes"
kill -TERM $pid
for _ in $(seq 300); do
  kill -0 $pid 2>/dev/null || break
  sleep 0.1
done
kill -0 $pid 2>/dev/null && fail "the server did not stop within 30 s of SIGTERM"
set +e
wait $pid
rc=$?
set -e
trap - EXIT
[ $rc -eq 0 ] || fail "the server exited with $rc after SIGTERM"
leftover=$(pgrep -x -- "$(basename "$server")" || true)
[ -z "$leftover" ] || fail "processes of the server are left: $leftover"
echo "SIGTERM: exit 0, no worker left"
