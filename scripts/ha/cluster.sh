#!/usr/bin/env bash
# scripts/ha/cluster.sh -- a throwaway highly available PostgreSQL on one machine, to see what Tidings does when
# its primary dies: one etcd member, two Patroni nodes (a primary and a SYNCHRONOUS standby), and HAProxy in
# front that routes to whichever node Patroni's REST API calls the primary.
#
#   scripts/ha/cluster.sh start  <dir>   make <dir>, start everything, wait until HAProxy reaches a writable
#                                        primary and the other node is its sync_standby; print the URL and pids
#   scripts/ha/cluster.sh status <dir>   one line per process/node (key=value words), roles from Patroni
#   scripts/ha/cluster.sh stop   <dir>   SIGKILL everything started under <dir>, remove <dir>
#
# Output of start and status (one record a line, for people and for packages/testkit/src/haCluster.ts):
#   url postgres://postgres@127.0.0.1:<haproxy port>/postgres
#   etcd pid=<pid> client=<port> peer=<port>
#   haproxy pid=<pid> port=<port>
#   node name=node1 role=leader|sync_standby|replica|down patroni=<pid> postmaster=<pid|-> pg=<port> rest=<port>
#
# Environment:
#   HA_TIMEOUT     seconds `start` waits for the cluster to be ready (default 90)
#   HA_PORT_BASE   lowest port tried (default 20000; 7 free ports are picked at random below 32000, under
#                  Linux's ephemeral range so that no outgoing connection takes one meanwhile)
#
# Timing (Patroni's rule: loop_wait + 2 * retry_timeout <= ttl): ttl 8 s, loop_wait 1 s, retry_timeout 3 s.
# The leader key lives in an etcd lease of ttl seconds that the leader renews every loop; when the primary's
# machine dies, the lease runs out within ttl and the sync standby promotes on its next loop: promotion comes
# 1-9 s after the death (see docs/operations.md for measured figures). HAProxy asks each node's GET /primary
# every 300 ms, marks a node down after 2 failures and up after 1 success, and cuts the sessions of a node it
# marks down (on-marked-down shutdown-sessions): a client of a dead machine gets a closed connection, not a
# TCP connection that hangs until its keepalive gives up. While no node is up, HAProxy refuses connections at
# once instead of queueing them: clients fail fast and retry, which is what Tidings answers 503 for.
#
# synchronous_mode: true (not strict): a commit returns only once the standby has flushed it, so anything a
# client saw committed is on the node that gets promoted. Not strict: once alone, the new primary accepts
# writes without a standby (Patroni empties synchronous_standby_names), instead of blocking every commit.
#
# Pitfalls:
#   - PostgreSQL refuses to run as root: as root, every process here runs as OS user postgres (setpriv: no PAM,
#     no login shell, execs in place so the pid we record is the server's). <dir> must be reachable by that user.
#   - Every daemon gets stdout/stderr redirected to a log file and stdin from /dev/null: a daemon that
#     inherited our stdout would keep a caller's pipe open (a Node execFile would wait for it forever).
#   - Daemons run in their own session (setsid): a Ctrl-C meant for the caller does not kill the cluster
#     half-way; `stop` ends it.
#   - Liveness is read from /proc/<pid>/stat (state Z = dead), not kill -0, as in scripts/with-services.sh.
set -euo pipefail

ME=ha-cluster
log() { printf '%s: %s\n' "$ME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
CMD=${1:-}
DIR=${2:-}
[[ -n $CMD && -n $DIR ]] || { usage >&2; exit 2; }
[[ $DIR == /* ]] || DIR=$PWD/$DIR

PG_BIN=/usr/lib/postgresql/15/bin
TIMEOUT_S=${HA_TIMEOUT:-90}
PORT_BASE=${HA_PORT_BASE:-20000}

alive() {
  local st
  [[ -n ${1:-} ]] || return 1
  { read -r st < "/proc/$1/stat"; } 2>/dev/null || return 1
  st=${st##*) }
  [[ ${st:0:1} != Z ]]
}
port_free() { ! (exec 4<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# the user the daemons run as: postgres when we are root, else ourselves
ASUSER=()
if [[ $EUID -eq 0 ]]; then ASUSER=(setpriv --reuid=postgres --regid=postgres --init-groups); fi

# spawn NAME LOGFILE CMD...: start a daemon in its own session as that user; records "NAME PID" in $DIR/pids
spawn() {
  local name=$1 logf=$2 pid; shift 2
  ( cd "$DIR" && exec setsid "${ASUSER[@]}" "$@" </dev/null >>"$logf" 2>&1 ) &
  pid=$!
  echo "$name $pid" >> "$DIR/pids"
  echo "$pid"
}

# pick_ports N: N distinct free ports from [PORT_BASE, 32000), random so concurrent clusters rarely collide
pick_ports() {
  local n=$1 got=() p i tries=0
  while (( ${#got[@]} < n )); do
    (( ++tries < 500 )) || die "no free ports found from $PORT_BASE"
    p=$(( PORT_BASE + RANDOM % (32000 - PORT_BASE) ))
    for i in "${got[@]}"; do [[ $i == "$p" ]] && continue 2; done
    port_free "$p" && got+=("$p")
  done
  echo "${got[*]}"
}

# http_get PORT PATH: prints the body of GET http://127.0.0.1:PORT/PATH (status 200 only), within 2 s
http_get() {
  python3 - "$1" "$2" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}{sys.argv[2]}", timeout=2) as r:
        sys.stdout.write(r.read().decode())
except Exception:
    sys.exit(1)
PY
}

# roles REST_PORT: "name role" per member, from Patroni's GET /cluster (role: leader, sync_standby, replica)
roles() {
  http_get "$1" /cluster | python3 -c '
import json, sys
for m in json.load(sys.stdin).get("members", []):
    print(m["name"], m.get("role", "?"), m.get("state", "?"))'
}

# psql_at PORT SQL: one value, via TCP as superuser postgres (trust on 127.0.0.1), bounded in time
psql_at() { PGCONNECT_TIMEOUT=2 timeout 5 "$PG_BIN/psql" -X -w -A -t -q -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2" 2>/dev/null; }

pid_of() { awk -v n="$1" '$1 == n { print $2 }' "$DIR/pids" | tail -1; }
postmaster_of() { [[ -f $DIR/$1/data/postmaster.pid ]] && head -1 "$DIR/$1/data/postmaster.pid" || echo -; }

# wait_until WHAT CHECK...: poll CHECK every 0.2 s until it succeeds; fails past the deadline or when a
# recorded daemon died
wait_until() {
  local what=$1 name pid; shift
  while :; do
    "$@" >/dev/null 2>&1 && return 0
    while read -r name pid; do
      alive "$pid" || { log "$name (pid $pid) exited while waiting for $what; its log:"; tail -20 "$DIR/$name.log" >&2 || true; return 1; }
    done < "$DIR/pids"
    (( $(now_ms) < DEADLINE_MS )) || { log "timed out after ${TIMEOUT_S} s waiting for $what"; return 1; }
    sleep 0.2
  done
}

# writes a Patroni configuration for NODE (pg port, rest port)
patroni_config() {
  local node=$1 pg=$2 rest=$3
  mkdir -p "$DIR/$node"
  cat > "$DIR/$node.yml" <<EOF
scope: $SCOPE
namespace: /tidings-ha/
name: $node
log:
  level: WARNING
restapi:
  listen: 127.0.0.1:$rest
  connect_address: 127.0.0.1:$rest
etcd3:
  hosts: 127.0.0.1:$ETCD_CLIENT
bootstrap:
  dcs:
    ttl: 8
    loop_wait: 1
    retry_timeout: 3
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    synchronous_mode_strict: false
    postgresql:
      use_pg_rewind: false
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        max_wal_senders: 5
        max_replication_slots: 5
        wal_keep_size: 64MB
        max_connections: 200
        shared_buffers: 32MB
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
    - auth-local: trust
    - auth-host: trust
postgresql:
  listen: 127.0.0.1:$pg
  connect_address: 127.0.0.1:$pg
  data_dir: $DIR/$node/data
  bin_dir: $PG_BIN
  pgpass: $DIR/$node/pgpass
  # trust on 127.0.0.1 only: nothing else can reach these servers
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
  authentication:
    superuser:
      username: postgres
      password: unused-trust-auth
    replication:
      username: replicator
      password: unused-trust-auth
  parameters:
    unix_socket_directories: $DIR/$node
EOF
}

haproxy_config() {
  cat > "$DIR/haproxy.cfg" <<EOF
global
  maxconn 400
defaults
  mode tcp
  timeout connect 2s
  # PostgreSQL sessions stay idle for long (a LISTEN connection, an idle pool): only a dead peer ends them,
  # which the TCP keepalives find
  timeout client 1h
  timeout server 1h
  timeout check 1s
  option clitcpka
  option srvtcpka
listen postgres
  bind 127.0.0.1:$HAPROXY_PORT
  option httpchk GET /primary
  http-check expect status 200
  # no primary (during a failover): refuse at once rather than hold the client until timeout connect
  tcp-request connection reject if { nbsrv(postgres) lt 1 }
  default-server inter 300ms fastinter 300ms downinter 300ms fall 2 rise 1 on-marked-down shutdown-sessions
  server node1 127.0.0.1:$PG1 maxconn 180 check port $REST1
  server node2 127.0.0.1:$PG2 maxconn 180 check port $REST2
EOF
}

# --- binaries -------------------------------------------------------------------------------------------------
# missing_packages: the Debian packages whose binaries are absent
missing_packages() {
  local m=()
  command -v patroni >/dev/null || m+=(patroni)
  command -v etcd >/dev/null || m+=(etcd-server)
  command -v haproxy >/dev/null || m+=(haproxy)
  [[ -x $PG_BIN/initdb ]] || m+=(postgresql-15)
  command -v python3 >/dev/null || m+=(python3)
  echo "${m[*]}"
}

# Installs what is missing when we may (root, or password-less sudo); exit 3 names the packages when not (the
# test skips on 3). The install runs under a policy-rc.d that forbids starting services: etcd-server and
# haproxy would otherwise start the distro's own instances (etcd on 2379) and leave them running.
ensure_binaries() {
  local missing sudo=() created=0 rc=0
  missing=$(missing_packages)
  [[ -z $missing ]] && return 0
  if [[ $EUID -ne 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=(sudo -n); else
      log "missing: $missing -- not root and no password-less sudo; install them: apt-get install -y --no-install-recommends $missing"
      exit 3
    fi
  fi
  log "installing $missing"
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    "${sudo[@]}" sh -c 'printf "#!/bin/sh\n# temporary, from tidings scripts/ha/cluster.sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
    created=1
  fi
  # shellcheck disable=SC2086
  { [[ ${TIDINGS_APT_UPDATED:-0} == 1 ]] || "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q update; } >"${TMPDIR:-/tmp}/ha-cluster-apt.log" 2>&1 &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300 install -y --no-install-recommends $missing \
      >>"${TMPDIR:-/tmp}/ha-cluster-apt.log" 2>&1 || rc=$?
  [[ $created == 1 ]] && "${sudo[@]}" rm -f /usr/sbin/policy-rc.d
  missing=$(missing_packages)
  [[ $rc == 0 && -z $missing ]] || { log "missing: $missing -- apt-get install failed (see ${TMPDIR:-/tmp}/ha-cluster-apt.log)"; exit 3; }
}

# --- start ----------------------------------------------------------------------------------------------------
start() {
  local t0 pe pp
  t0=$(now_ms)
  DEADLINE_MS=$(( t0 + TIMEOUT_S * 1000 ))
  ensure_binaries
  [[ ! -e $DIR/pids ]] || die "$DIR already holds a cluster (stop it first)"
  mkdir -p "$DIR"
  : > "$DIR/pids"
  read -r ETCD_CLIENT ETCD_PEER PG1 PG2 REST1 REST2 HAPROXY_PORT <<< "$(pick_ports 7)"
  SCOPE=tidings-$(basename "$DIR" | tr -c 'a-zA-Z0-9\n' -)-$$
  printf 'ETCD_CLIENT=%s\nETCD_PEER=%s\nPG1=%s\nPG2=%s\nREST1=%s\nREST2=%s\nHAPROXY_PORT=%s\n' \
    "$ETCD_CLIENT" "$ETCD_PEER" "$PG1" "$PG2" "$REST1" "$REST2" "$HAPROXY_PORT" > "$DIR/ports"
  patroni_config node1 "$PG1" "$REST1"
  patroni_config node2 "$PG2" "$REST2"
  haproxy_config
  if [[ $EUID -eq 0 ]]; then
    chown -R postgres:postgres "$DIR"
    "${ASUSER[@]}" test -w "$DIR" || die "user postgres cannot write $DIR (a parent folder is not traversable)"
  fi
  chmod 700 "$DIR/node1" "$DIR/node2"

  spawn etcd "$DIR/etcd.log" etcd --name etcd0 --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
    --initial-cluster "etcd0=http://127.0.0.1:$ETCD_PEER" --initial-cluster-state new \
    --initial-cluster-token "$SCOPE" --log-level warn >/dev/null
  wait_until "etcd" http_get "$ETCD_CLIENT" /health || return 1
  log "etcd up at $(( $(now_ms) - t0 )) ms"

  # node1 first, alone, so that it is the one that bootstraps (initdb) and leads; node2 then copies it
  spawn node1 "$DIR/node1.log" patroni "$DIR/node1.yml" >/dev/null
  wait_until "node1 to lead" http_get "$REST1" /primary || return 1
  log "node1 leads at $(( $(now_ms) - t0 )) ms"
  spawn node2 "$DIR/node2.log" patroni "$DIR/node2.yml" >/dev/null
  spawn haproxy "$DIR/haproxy.log" haproxy -db -f "$DIR/haproxy.cfg" >/dev/null

  wait_until "node2 to be the sync standby" sync_standby_ready || return 1
  wait_until "a write through HAProxy" writable || return 1
  log "ready in $(( $(now_ms) - t0 )) ms"
  status
}

sync_standby_ready() { roles "$REST1" | grep -q '^node2 sync_standby streaming$\|^node2 sync_standby running$'; }
writable() { [[ $(psql_at "$HAPROXY_PORT" "select not pg_is_in_recovery() and txid_current() > 0") == t ]]; }

# --- status ---------------------------------------------------------------------------------------------------
status() {
  local node pg rest role member_roles
  # shellcheck disable=SC1091
  . "$DIR/ports"
  echo "url postgres://postgres@127.0.0.1:$HAPROXY_PORT/postgres"
  echo "etcd pid=$(pid_of etcd) client=$ETCD_CLIENT peer=$ETCD_PEER"
  echo "haproxy pid=$(pid_of haproxy) port=$HAPROXY_PORT"
  # roles as any live node's REST API sees them (both are asked: one of them may be dead)
  member_roles=$(roles "$REST1" 2>/dev/null || roles "$REST2" 2>/dev/null || true)
  for node in node1 node2; do
    if [[ $node == node1 ]]; then pg=$PG1 rest=$REST1; else pg=$PG2 rest=$REST2; fi
    role=$(awk -v n="$node" '$1 == n && $3 != "stopped" { print $2 }' <<< "$member_roles")
    alive "$(pid_of "$node")" || role=down
    echo "node name=$node role=${role:-down} patroni=$(pid_of "$node") postmaster=$(postmaster_of "$node") pg=$pg rest=$rest"
  done
}

# --- stop -----------------------------------------------------------------------------------------------------
# children PID: the pids whose parent is PID (from /proc: procps may be absent)
children() {
  local f st
  for f in /proc/[0-9]*/stat; do
    { read -r st < "$f"; } 2>/dev/null || continue   # read, not $(cat): no fork for each of hundreds
    st=${st##*) }              # "<state> <ppid> ..."
    st=${st#* }
    [[ ${st%% *} == "$1" ]] || continue
    f=${f#/proc/}; echo "${f%/stat}"
  done
}

# SIGKILL: nothing here is worth a clean shutdown. Every recorded daemon, each postmaster and each of its
# children (backends, walsender, checkpointer...) at once, as when the machine is switched off.
stop() {
  local name pid all=() node i
  [[ -f $DIR/pids ]] || { [[ -d $DIR ]] && rm -rf "$DIR"; return 0; }
  while read -r name pid; do all+=("$pid"); done < "$DIR/pids"
  for node in node1 node2; do
    pid=$(postmaster_of "$node")
    [[ $pid == - ]] && continue
    all+=("$pid")
    all+=($(children "$pid"))
  done
  for pid in "${all[@]}"; do alive "$pid" && { kill -KILL "$pid" 2>/dev/null || true; }; done
  for ((i = 0; i < 100; i++)); do
    for pid in "${all[@]}"; do alive "$pid" && { sleep 0.1; continue 2; }; done
    break
  done
  rm -rf "$DIR"
}

case $CMD in
  start)
    # (not `start || ...`: that would turn off set -e inside start)
    trap 'rc=$?; if [[ $rc != 0 && $rc != 3 ]]; then log "start failed; logs in $DIR; end what did start with: $0 stop $DIR"; fi' EXIT
    start ;;
  status) [[ -f $DIR/ports ]] || die "no cluster in $DIR"; status ;;
  stop) stop ;;
  *) usage >&2; exit 2 ;;
esac
