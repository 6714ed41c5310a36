#!/usr/bin/env bash
# The physical floor for (a): the same three servers, started in parallel by hand, each polled until it
# answers (pg_isready, redis-cli PING, NATS /healthz?js-enabled-only). Usage: baseline_native.sh up|down DIR
set -euo pipefail
action=$1 dir=$2
pg=/usr/lib/postgresql/15/bin
as_user() { if [ "$(id -u)" = 0 ]; then runuser -u testbed -- "$@"; else "$@"; fi; }
redis=$(command -v redis-server || echo /usr/bin/redis-server)
nats=$(command -v nats-server || echo /usr/sbin/nats-server)
if [ "$action" = up ]; then
  mkdir -p "$dir" && chmod 755 "$dir"
  install -d -m 700 -o "$(id -u testbed 2>/dev/null || id -u)" "$dir/pg" "$dir/redis" "$dir/nats"
  # setsid -f: each server detaches into its own session, as testbed's launcher does.
  ( as_user "$pg/initdb" -D "$dir/pg" -U bench --auth=trust --no-sync --no-locale -E UTF8 >/dev/null \
    && as_user setsid -f "$pg/postgres" -D "$dir/pg" -p 25433 -k "$dir/pg" -c listen_addresses=127.0.0.1 \
         -c fsync=off >"$dir/pg.log" 2>&1 < /dev/null ) &
  as_user setsid -f "$redis" --port 26380 --bind 127.0.0.1 --save '' --dir "$dir/redis" \
    --pidfile "$dir/redis/redis.pid" >"$dir/redis.log" 2>&1 < /dev/null
  as_user setsid -f "$nats" -a 127.0.0.1 -p 24222 -m 28222 -js -sd "$dir/nats" -P "$dir/nats/nats.pid" \
    >"$dir/nats.log" 2>&1 < /dev/null
  wait
  until "$pg/pg_isready" -q -h 127.0.0.1 -p 25433; do sleep 0.02; done &
  until redis-cli -p 26380 ping >/dev/null 2>&1; do sleep 0.02; done &
  until curl -fs "http://127.0.0.1:28222/healthz?js-enabled-only=true" >/dev/null; do sleep 0.02; done &
  wait
else
  # redis-server rewrites its process title, so stop by pidfile (postgres keeps its pid in postmaster.pid).
  pids=$(cat "$dir/redis/redis.pid" "$dir/nats/nats.pid" 2>/dev/null; head -1 "$dir/pg/postmaster.pid" 2>/dev/null)
  kill -INT $(head -1 "$dir/pg/postmaster.pid") 2>/dev/null || true
  kill $(cat "$dir/redis/redis.pid" "$dir/nats/nats.pid" 2>/dev/null) 2>/dev/null || true
  # Alive until exited: a zombie (exited, not yet reaped by init) counts as stopped, as in testbed.
  running() { [ -r "/proc/$1/stat" ] && ! sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | grep -q '^Z'; }
  for pid in $pids; do while running "$pid"; do sleep 0.005; done; done
  rm -rf "$dir"
fi
