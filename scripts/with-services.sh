#!/usr/bin/env bash
# scripts/with-services.sh -- make sure the backing services the tests talk to are reachable, then run a command.
#
#   scripts/with-services.sh <command...>     ensure services, export TIDINGS_TEST_*_URL, run the command
#   scripts/with-services.sh --stop           stop private instances left running (TIDINGS_KEEP_SERVICES=1, crashes)
#   TIDINGS_KEEP_SERVICES=1 scripts/with-services.sh      (no command) just bring the services up
#
# For each service in TIDINGS_SERVICES (comma list; default postgres,mariadb,redis,rabbitmq,nats):
#   1. check the address the tests will use (TIDINGS_TEST_*_URL, defaults below) with a real protocol check
#      (TCP connect + pg_isready/psql login, mariadb client login, Redis PING, AMQP handshake, NATS+JetStream
#      request), bounded by a timeout. Usable -> "found at <url>".
#   2. otherwise start a PRIVATE instance on 127.0.0.1 on a non-default port, data under
#      ${TMPDIR:-/tmp}/tidings-services/<service>, after installing the Debian package when its binaries are
#      missing (root, or `sudo -n`), wait until it answers (polling, with a deadline), and export the URL
#      -> "started at <url>". Private instances start in parallel (RabbitMQ's Erlang boot dominates, ~5-10 s).
#   3. run the command with the TIDINGS_TEST_*_URL variables exported (for every ensured service, found or
#      started). When nothing private is involved it is exec'd directly (the fast path: ~0.1-0.2 s).
#
# Environment:
#   TIDINGS_SERVICES        comma list: postgres, mariadb, redis, rabbitmq, nats ("none" = no services)
#   TIDINGS_TEST_PG_URL     default postgres://postgres@127.0.0.1:5432/postgres
#   TIDINGS_TEST_MYSQL_URL  default mysql://root@127.0.0.1:3306/test
#   TIDINGS_TEST_REDIS_URL  default redis://127.0.0.1:6379
#   TIDINGS_TEST_AMQP_URL   default amqp://guest:guest@127.0.0.1:5672
#   TIDINGS_TEST_NATS_URL   default nats://127.0.0.1:4222
#   TIDINGS_FORCE_PRIVATE   comma list of services (or "all") to start privately even when the URL answers
#   TIDINGS_KEEP_SERVICES=1 leave private instances running on exit (a later run reuses them; --stop ends them)
#   TIDINGS_PRIVATE_{PG,MYSQL,REDIS,AMQP,NATS}_PORT  private ports (45432, 43306, 46379, 45672, 44222);
#                           RabbitMQ also uses AMQP+1 (Erlang dist), AMQP+2 (its own epmd), 45680-45690 (CLI)
#   TIDINGS_SERVICE_TIMEOUT seconds to wait for a private instance to answer (default 120)
#   TIDINGS_APT_UPDATED=1   skip `apt-get update` (the caller just ran it)
#
# Lifetime of private instances: an instance is stopped (and its folder removed) when the last run using it
# exits, unless it was started with TIDINGS_KEEP_SERVICES=1. Concurrent runs share private instances: each
# run holds a shared flock on the instance while its command runs; the start phase is serialized by a lock.
#
# Pitfalls (learned the hard way; see also the comments at each service):
#   - apt-get install of a server package normally STARTS the distro's default service (invoke-rc.d), with a
#     config the tests can't use (PostgreSQL scram auth, MariaDB root via unix_socket only) on the default
#     port -- a later run would "find" it and fail to log in. So installs run with a policy-rc.d that
#     forbids starting services (removed again if we created it), and "found" means "logged in", not merely
#     "port open": an unusable server on the default address is reported and a private one is started.
#   - Processes re-parented to PID 1 may linger as zombies for a second or two; liveness is read from
#     /proc/<pid>/stat (state Z = dead), not kill -0. /proc is also used instead of ps (procps may be absent).
#   - Anything started in the background inherits open fds: lock fds are closed before spawning servers, or
#     a server would hold the start lock forever.
#   - A bash background job gets stdin=/dev/null and ignores SIGINT: the command is started with <&0 and
#     signals to this script are forwarded as SIGTERM.
set -euo pipefail

ME=with-services
log() { printf '%s: %s\n' "$ME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }
T_START=$(now_ms)

ALL_SERVICES=(postgres mariadb redis rabbitmq nats)
BASE=${TMPDIR:-/tmp}/tidings-services
DEADLINE_S=${TIDINGS_SERVICE_TIMEOUT:-120}
KEEP=${TIDINGS_KEEP_SERVICES:-0}

# ---------------------------------------------------------------------------------------------------------
# small helpers

# alive PID: process exists and is not a zombie (zombies of orphans linger under PID 1 for a while)
alive() {
  local st
  [[ -n ${1:-} ]] || return 1
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [[ ${st:0:1} != Z ]]
}
# proc_start PID: start time (clock ticks since boot) -- guards pid files against pid reuse
proc_start() { local st; st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; st=${st##*) }; set -- $st; echo "${20}"; }

# port_free PORT: nothing listens on 127.0.0.1:PORT
port_free() { ! (exec 4<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# parse_url URL DEFAULT_PORT -> U_USER U_PASS U_HOST U_PORT U_PATH (user/pass percent-decoded)
urldecode() { printf '%b' "${1//%/\\x}"; }
parse_url() {
  local rest=${1#*://} auth=""
  rest=${rest%%\?*}; rest=${rest%%#*}
  U_PATH=""
  if [[ $rest == */* ]]; then U_PATH=${rest#*/}; rest=${rest%%/*}; fi
  U_USER="" U_PASS=""
  if [[ $rest == *@* ]]; then
    auth=${rest%@*}; rest=${rest##*@}
    U_USER=$(urldecode "${auth%%:*}")
    [[ $auth == *:* ]] && U_PASS=$(urldecode "${auth#*:}")
  fi
  rest=${rest%%,*}                                 # first host of a host list
  if [[ $rest == \[* ]]; then                      # [ipv6]:port
    U_HOST=${rest%%]*}; U_HOST=${U_HOST#[}; U_PORT=${rest#*]}; U_PORT=${U_PORT#:}
  elif [[ $rest == *:* ]]; then U_HOST=${rest%:*}; U_PORT=${rest##*:}
  else U_HOST=$rest; U_PORT=""; fi
  U_HOST=${U_HOST:-127.0.0.1}; U_PORT=${U_PORT:-$2}
}

# ---------------------------------------------------------------------------------------------------------
# protocol checks in pure bash (no client tools needed). They use fd 3 and are run in a subshell.

tcp_ping() { exec 3<>"/dev/tcp/$1/$2"; } 2>/dev/null

# redis_ping HOST PORT [PASS] [USER]: RESP PING must give +PONG ("-LOADING", "-NOAUTH" -> not usable)
redis_ping() {
  local line="" LC_ALL=C
  tcp_ping "$1" "$2" || return 1
  if [[ -n ${3:-} ]]; then
    if [[ -n ${4:-} ]]; then
      printf '*3\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n' "${#4}" "$4" "${#3}" "$3" >&3
    else
      printf '*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n' "${#3}" "$3" >&3
    fi
    IFS= read -r -t 2 line <&3 || true
    [[ $line == +OK* ]] || { echo "AUTH failed: ${line%$'\r'}"; return 1; }
  fi
  printf 'PING\r\n' >&3
  IFS= read -r -t 2 line <&3 || true
  [[ $line == +PONG* ]] || { echo "PING answered: ${line%$'\r'}"; return 1; }
}

# amqp_ping HOST PORT: AMQP 0-9-1 protocol header must be answered by a Connection.Start method frame
amqp_ping() {
  local hex
  tcp_ping "$1" "$2" || return 1
  printf 'AMQP\x00\x00\x09\x01' >&3
  hex=$(timeout 2 head -c 11 <&3 | od -An -tx1 | tr -d ' \n') || true
  [[ $hex == 010000????????000a000a ]] || { echo "no AMQP Connection.Start (got '${hex:0:22}')"; return 1; }
}

# nats_js_ping HOST PORT [USER] [PASS]: CONNECT+PING must give PONG, and a JetStream API request
# ($JS.API.INFO) must return an account_info_response (JetStream enabled and ready)
nats_js_ping() {
  local line auth="" n=0 u=${3:-} p=${4:-}
  tcp_ping "$1" "$2" || return 1
  u=${u//\\/\\\\}; u=${u//\"/\\\"}; p=${p//\\/\\\\}; p=${p//\"/\\\"}
  if [[ -n $u && -n $p ]]; then auth=",\"user\":\"$u\",\"pass\":\"$p\""
  elif [[ -n $u ]]; then auth=",\"auth_token\":\"$u\""; fi
  printf 'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true%s}\r\nPING\r\nSUB _INBOX.tidings_probe 1\r\nPUB $JS.API.INFO _INBOX.tidings_probe 0\r\n\r\n' "$auth" >&3
  while IFS= read -r -t 2 line <&3; do  # INFO {...}, PONG, MSG _INBOX.tidings_probe 1 <len>, {json}
    [[ $line == *io.nats.jetstream.api.v1.account_info_response* ]] && return 0
    [[ $line == -ERR* ]] && { echo "server said: ${line%$'\r'}"; return 1; }
    [[ $line == *NATS/1.0\ 503* ]] && { echo "JetStream is not enabled (no responders for \$JS.API)"; return 1; }
    (( ++n > 20 )) && break
  done
  echo "no JetStream answer"; return 1
}
export -f tcp_ping redis_ping amqp_ping nats_js_ping

# with_timeout SECONDS FUNCTION ARGS...: run an exported check function in its own bash, bounded in time
with_timeout() { local s=$1; shift; timeout "$s" bash -c '"$@"' _ "$@"; }

# ---------------------------------------------------------------------------------------------------------
# service table

svc_norm() {
  case "${1,,}" in
    postgres|postgresql|pg) echo postgres ;;
    mariadb|mysql) echo mariadb ;;
    redis) echo redis ;;
    rabbitmq|rabbit|amqp) echo rabbitmq ;;
    nats) echo nats ;;
    *) return 1 ;;
  esac
}
svc_var() { case $1 in postgres) echo TIDINGS_TEST_PG_URL ;; mariadb) echo TIDINGS_TEST_MYSQL_URL ;;
  redis) echo TIDINGS_TEST_REDIS_URL ;; rabbitmq) echo TIDINGS_TEST_AMQP_URL ;; nats) echo TIDINGS_TEST_NATS_URL ;; esac; }
svc_default_url() { case $1 in postgres) echo postgres://postgres@127.0.0.1:5432/postgres ;;
  mariadb) echo mysql://root@127.0.0.1:3306/test ;; redis) echo redis://127.0.0.1:6379 ;;
  rabbitmq) echo amqp://guest:guest@127.0.0.1:5672 ;; nats) echo nats://127.0.0.1:4222 ;; esac; }
svc_default_port() { case $1 in postgres) echo 5432 ;; mariadb) echo 3306 ;; redis) echo 6379 ;;
  rabbitmq) echo 5672 ;; nats) echo 4222 ;; esac; }
svc_private_port() { case $1 in
  postgres) echo "${TIDINGS_PRIVATE_PG_PORT:-45432}" ;; mariadb) echo "${TIDINGS_PRIVATE_MYSQL_PORT:-43306}" ;;
  redis) echo "${TIDINGS_PRIVATE_REDIS_PORT:-46379}" ;; rabbitmq) echo "${TIDINGS_PRIVATE_AMQP_PORT:-45672}" ;;
  nats) echo "${TIDINGS_PRIVATE_NATS_PORT:-44222}" ;; esac; }
svc_private_url() { local p; p=$(svc_private_port "$1"); case $1 in
  postgres) echo "postgres://postgres@127.0.0.1:$p/postgres" ;; mariadb) echo "mysql://root@127.0.0.1:$p/test" ;;
  redis) echo "redis://127.0.0.1:$p" ;; rabbitmq) echo "amqp://guest:guest@127.0.0.1:$p" ;;
  nats) echo "nats://127.0.0.1:$p" ;; esac; }

# binaries --------------------------------------------------------------------------------------------------
pg_bindir() {
  local d
  [[ -x /usr/lib/postgresql/15/bin/initdb ]] && { echo /usr/lib/postgresql/15/bin; return; }
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [[ -n $d && -x $d/initdb && -x $d/pg_ctl ]] && echo "$d"
}
first_exe() { local f; for f in "$@"; do [[ -x $f ]] && { echo "$f"; return 0; }; done; return 1; }
mysqld_bin() { first_exe /usr/sbin/mariadbd /usr/sbin/mysqld "$(command -v mariadbd 2>/dev/null)"; }
mysql_install_bin() { first_exe /usr/bin/mariadb-install-db /usr/bin/mysql_install_db "$(command -v mariadb-install-db 2>/dev/null)"; }
mysql_client() { first_exe "$(command -v mariadb 2>/dev/null)" "$(command -v mysql 2>/dev/null)" /usr/bin/mariadb /usr/bin/mysql; }
redis_bin() { first_exe /usr/bin/redis-server "$(command -v redis-server 2>/dev/null)"; }
nats_bin() { first_exe /usr/sbin/nats-server /usr/bin/nats-server "$(command -v nats-server 2>/dev/null)"; }
rabbit_bindir() { [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server && -x /usr/bin/epmd ]] && echo /usr/lib/rabbitmq/bin; }

svc_have_binaries() { case $1 in
  postgres) [[ -n $(pg_bindir) ]] ;;
  mariadb) mysqld_bin >/dev/null && mysql_install_bin >/dev/null && mysql_client >/dev/null ;;
  redis) redis_bin >/dev/null ;;
  rabbitmq) [[ -n $(rabbit_bindir) ]] ;;
  nats) nats_bin >/dev/null ;; esac; }
svc_package() { case $1 in
  postgres) if apt-cache show postgresql-15 >/dev/null 2>&1; then echo postgresql-15; else echo postgresql; fi ;;
  mariadb) echo mariadb-server ;; redis) echo redis-server ;; rabbitmq) echo rabbitmq-server ;; nats) echo nats-server ;; esac; }

# ---------------------------------------------------------------------------------------------------------
# "is the service at URL usable?" -- prints a reason on failure

check_url() {  # SERVICE URL
  local svc=$1 url=$2 out cli psql_bin
  parse_url "$url" "$(svc_default_port "$svc")"
  with_timeout 3 tcp_ping "$U_HOST" "$U_PORT" || { echo "nothing listens at $U_HOST:$U_PORT"; return 1; }
  case $svc in
    postgres)
      # the versioned binaries directly: /usr/bin/psql and pg_isready are Perl wrappers (+50 ms each)
      local isready; isready=$(first_exe "$(pg_bindir)/pg_isready" "$(command -v pg_isready 2>/dev/null)") || isready=""
      if [[ -n $isready ]]; then
        out=$(timeout 5 "$isready" -d "$url" -t 3 2>&1) || { echo "pg_isready: $out"; return 1; }
      fi
      psql_bin=$(first_exe "$(pg_bindir)/psql" "$(command -v psql 2>/dev/null)") || return 0
      out=$(PGCONNECT_TIMEOUT=3 timeout 10 "$psql_bin" -X -w -A -t -q -d "$url" -c 'select 1' 2>&1) || true
      [[ $out == 1 ]] || { echo "psql login failed: $(echo "$out" | head -2 | tr '\n' ' ')"; return 1; } ;;
    mariadb)
      cli=$(mysql_client) || return 0   # no client here: the TCP check has to do
      local db=${U_PATH:-test} args
      args=(--no-defaults --protocol=TCP --connect-timeout=3 -h "$U_HOST" -P "$U_PORT" -u "${U_USER:-root}" -N -B)
      # MYSQL_PWD keeps the password off the command line; unset when empty ("using password: NO")
      out=$(if [[ -n $U_PASS ]]; then export MYSQL_PWD=$U_PASS; else unset MYSQL_PWD; fi
            timeout 10 "$cli" "${args[@]}" -D "$db" -e 'select 1' 2>&1) && return 0
      if [[ $out == *"Unknown database"* ]]; then   # server and login fine, database missing: create it
        out=$(if [[ -n $U_PASS ]]; then export MYSQL_PWD=$U_PASS; else unset MYSQL_PWD; fi
              timeout 10 "$cli" "${args[@]}" -e "CREATE DATABASE IF NOT EXISTS \`$db\`" 2>&1) && return 0
      fi
      echo "mariadb login failed: $(echo "$out" | head -2 | tr '\n' ' ')"; return 1 ;;
    redis) with_timeout 6 redis_ping "$U_HOST" "$U_PORT" "$U_PASS" "$U_USER" ;;
    rabbitmq) with_timeout 5 amqp_ping "$U_HOST" "$U_PORT" ;;
    nats) with_timeout 8 nats_js_ping "$U_HOST" "$U_PORT" "$U_USER" "$U_PASS" ;;
  esac
}

# ---------------------------------------------------------------------------------------------------------
# root / apt

SUDO=()
as_root() { "${SUDO[@]}" "$@"; }
need_root() {  # WHY
  if [[ $EUID -eq 0 ]]; then SUDO=()
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=(sudo -n)
  else die "$1 -- this needs root (or password-less sudo). Install it yourself, e.g. as root:
    apt-get update && apt-get install -y --no-install-recommends ${PKGS[*]}
  or point the TIDINGS_TEST_*_URL variables at running servers."; fi
}

APT_UPDATED_HERE=0
apt_update() {  # SERVICES...: apt-get update, then re-resolve the package names now that the lists are there
  as_root "${APT[@]}" update >>"$BASE/apt.log" 2>&1 || { tail -20 "$BASE/apt.log" >&2; die "apt-get update failed"; }
  export TIDINGS_APT_UPDATED=1; APT_UPDATED_HERE=1
  PKGS=(); for svc in "$@"; do PKGS+=("$(svc_package "$svc")"); done
}
apt_install() {  # SERVICES...
  local t0 created=0 rc=0 logf="$BASE/apt.log" svc
  PKGS=()
  for svc in "$@"; do PKGS+=("$(svc_package "$svc")"); done
  need_root "not installed: ${PKGS[*]}"
  command -v apt-get >/dev/null || die "apt-get not found; install ${PKGS[*]} by hand"
  t0=$(now_ms)
  log "installing Debian packages: ${PKGS[*]} (log: $logf)"
  : > "$logf"
  # DPkg::Lock::Timeout: wait for another apt/dpkg (e.g. unattended-upgrades on a fresh VM) instead of failing
  APT=(env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)
  if [[ ${TIDINGS_APT_UPDATED:-0} != 1 ]]; then apt_update "$@"; fi
  # Keep dpkg from starting the distro services (see the pitfalls at the top): policy-rc.d exit 101.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    as_root sh -c 'printf "#!/bin/sh\n# temporary, from tidings scripts/with-services.sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
    created=1; POLICY_RC_CREATED=1
  fi
  as_root "${APT[@]}" install -y --no-install-recommends "${PKGS[@]}" >>"$logf" 2>&1 || rc=$?
  if [[ $rc != 0 && $APT_UPDATED_HERE == 0 ]]; then   # stale or missing package lists despite TIDINGS_APT_UPDATED
    apt_update "$@"; rc=0
    as_root "${APT[@]}" install -y --no-install-recommends "${PKGS[@]}" >>"$logf" 2>&1 || rc=$?
  fi
  if [[ $created == 1 ]]; then as_root rm -f /usr/sbin/policy-rc.d; POLICY_RC_CREATED=0; fi
  [[ $rc == 0 ]] || { tail -30 "$logf" >&2; die "apt-get install ${PKGS[*]} failed (exit $rc)"; }
  log "installed ${PKGS[*]} in $(( $(now_ms) - t0 )) ms"
}

# ---------------------------------------------------------------------------------------------------------
# private instances. Each lives in $BASE/<service>/: data, logs, and `pids` (lines "pid starttime signal", in
# stop order). Starters run in background subshells; they print diagnostics to $BASE/<service>.start.log.

# spawn LOGFILE CMD...: start CMD in its own session (not hit by the terminal's Ctrl-C, survives us when kept),
# with no lock fds and stdin from /dev/null. Sets SPAWNED_PID (setsid execs directly: same pid as the server).
spawn() {
  local logf=$1; shift
  ( close_lock_fds; exec setsid "$@" </dev/null >>"$logf" 2>&1 ) &
  SPAWNED_PID=$!
}
record_pid() {  # DIR PID SIGNAL
  local st; st=$(proc_start "$2") || st=0
  echo "$2 $st $3" >> "$1/pids"
}

deadline_passed() { (( $(now_ms) > DEADLINE_MS )); }

# wait_ready DIR NAME CHECK...: poll CHECK (every 0.1 s) until it succeeds, the deadline passes or a recorded
# process dies
wait_ready() {
  local dir=$1 name=$2 pid st sig; shift 2
  DEADLINE_MS=$(( $(now_ms) + DEADLINE_S * 1000 ))
  while :; do
    ( "$@" ) >/dev/null 2>&1 && return 0   # subshell: the checks leave fd 3 open
    while read -r pid st sig; do
      alive "$pid" || { echo "$name: process $pid exited during start-up"; return 1; }
    done < "$dir/pids"
    deadline_passed && { echo "$name: not answering after ${DEADLINE_S} s"; return 1; }
    sleep 0.1
  done
}

# --- PostgreSQL ---------------------------------------------------------------------------------------------
# Runs as OS user postgres when we are root (postgres refuses to run as root): setpriv switches user without
# PAM or a login shell. Every parent of the data folder must be traversable by that user, and the cwd must be
# readable by it (initdb/pg_ctl complain "could not change directory" otherwise). Trust auth for local and
# TCP, superuser "postgres", UTF8 with C.UTF-8 (the only UTF-8 locale on a minimal Debian). fsync and
# full_page_writes off: only an OS crash could lose data, irrelevant for throwaway test data; synchronous_commit
# stays on so a committed transaction survives a server crash exactly as in production.
start_postgres() {
  local dir=$1 port=$2 bin asuser=() rc=0
  bin=$(pg_bindir) || { echo "no PostgreSQL binaries"; return 1; }
  mkdir -p "$dir/data" "$dir/sock"
  if [[ $EUID -eq 0 ]]; then
    getent passwd postgres >/dev/null || { echo "OS user postgres missing (install postgresql-15)"; return 1; }
    asuser=(setpriv --reuid=postgres --regid=postgres --init-groups)
    chown -R postgres:postgres "$dir"
    "${asuser[@]}" test -w "$dir/data" || { echo "user postgres cannot reach $dir (a parent folder is not traversable; set TMPDIR)"; return 1; }
  fi
  chmod 700 "$dir/data"
  local t0; t0=$(now_ms)
  ( cd "$dir" && "${asuser[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=trust \
      -E UTF8 --locale=C.UTF-8 --no-sync --no-instructions ) > "$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log"; return 1; }
  local t1; t1=$(now_ms)
  # max_connections 300: two test files at once can hold more than the default 100 (the crash matrix's
  # producers park a connection per transaction they are killed in, beside two services' pools).
  # pg_ctl -w polls until the server accepts connections (postmaster.pid + a test connection); the postmaster
  # detaches from pg_ctl, so its pid comes from postmaster.pid.
  ( cd "$dir" && "${asuser[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t "$DEADLINE_S" \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/sock -c fsync=off -c full_page_writes=off -c max_connections=300" start ) \
      > "$dir/pg_ctl.log" 2>&1 </dev/null || rc=$?
  # SIGINT = "fast" shutdown (rolls back, disconnects, clean stop)
  [[ -f $dir/data/postmaster.pid ]] && record_pid "$dir" "$(head -1 "$dir/data/postmaster.pid")" INT
  [[ $rc == 0 ]] || { cat "$dir/pg_ctl.log"; tail -20 "$dir/postgres.log"; return 1; }
  "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -t 10 || { echo "pg_isready failed"; return 1; }
  echo "initdb $((t1 - t0)) ms, server $(( $(now_ms) - t1 )) ms" > "$dir/timing"
}

# --- MariaDB ------------------------------------------------------------------------------------------------
# --no-defaults MUST be the first option of mariadbd/mariadb-install-db/mariadb: otherwise /etc/mysql/my.cnf
# (port 3306, /var/lib/mysql, the system socket and error log) is read and we would fight the system server.
# mariadb-install-db --auth-root-authentication-method=normal creates root@localhost, root@127.0.0.1 and
# root@::1 with no password (the Debian default is unix_socket-only root, unusable over TCP). --skip-name-resolve
# makes TCP logins from 127.0.0.1 match root@127.0.0.1 (not root@localhost, which then means the socket only).
# As root the server runs as root (--user=root: mariadbd refuses root without it), which avoids chown'ing the
# datadir to mysql and the parent-folder traversal problem; as a normal user it runs as that user.
start_mariadb() {
  local dir=$1 port=$2 mysqld inst cli user=()
  mysqld=$(mysqld_bin) && inst=$(mysql_install_bin) && cli=$(mysql_client) || { echo "no MariaDB binaries"; return 1; }
  [[ $EUID -eq 0 ]] && user=(--user=root)
  mkdir -p "$dir/data" "$dir/tmp"
  local t0; t0=$(now_ms)
  "$inst" --no-defaults "${user[@]}" --datadir="$dir/data" --auth-root-authentication-method=normal \
      --skip-test-db --skip-name-resolve > "$dir/install-db.log" 2>&1 || { cat "$dir/install-db.log"; return 1; }
  local t1; t1=$(now_ms)
  spawn "$dir/stdout.log" "$mysqld" --no-defaults "${user[@]}" --datadir="$dir/data" --tmpdir="$dir/tmp" \
      --socket="$dir/mysqld.sock" --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" \
      --bind-address=127.0.0.1 --port="$port" --skip-name-resolve --skip-log-bin \
      --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
      --innodb-flush-log-at-trx-commit=2 --innodb-buffer-pool-size=128M
  record_pid "$dir" "$SPAWNED_PID" TERM
  wait_ready "$dir" mariadb "$cli" --no-defaults -S "$dir/mysqld.sock" -uroot -e 'select 1' \
    || { tail -20 "$dir/error.log"; return 1; }
  "$cli" --no-defaults -S "$dir/mysqld.sock" -uroot -e "
      CREATE DATABASE IF NOT EXISTS \`test\`;
      CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
      GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;" || return 1
  echo "install-db $((t1 - t0)) ms, server $(( $(now_ms) - t1 )) ms" > "$dir/timing"
}

# --- Redis --------------------------------------------------------------------------------------------------
# No config file (built-in defaults + command line); in memory only, like the machine's own Redis.
start_redis() {
  local dir=$1 port=$2 bin
  bin=$(redis_bin) || { echo "no redis-server"; return 1; }
  local t0; t0=$(now_ms)
  spawn "$dir/stdout.log" "$bin" --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize no \
      --save "" --appendonly no --protected-mode yes --logfile "$dir/redis.log"
  record_pid "$dir" "$SPAWNED_PID" TERM
  wait_ready "$dir" redis redis_ping 127.0.0.1 "$port" || { tail -20 "$dir/redis.log"; return 1; }
  echo "server $(( $(now_ms) - t0 )) ms" > "$dir/timing"
}

# --- NATS ---------------------------------------------------------------------------------------------------
# JetStream on, store in the instance folder; ready = a JetStream API request is answered.
start_nats() {
  local dir=$1 port=$2 bin
  bin=$(nats_bin) || { echo "no nats-server"; return 1; }
  mkdir -p "$dir/js"
  local t0; t0=$(now_ms)
  spawn "$dir/stdout.log" "$bin" -a 127.0.0.1 -p "$port" -js -sd "$dir/js" -n tidings-nats \
      -P "$dir/nats.pid" -l "$dir/nats.log"
  record_pid "$dir" "$SPAWNED_PID" TERM
  wait_ready "$dir" nats nats_js_ping 127.0.0.1 "$port" || { tail -20 "$dir/nats.log"; return 1; }
  echo "server $(( $(now_ms) - t0 )) ms" > "$dir/timing"
}

# --- RabbitMQ -----------------------------------------------------------------------------------------------
# Calls the real scripts in /usr/lib/rabbitmq/bin, not the /usr/sbin wrappers (those su to the rabbitmq
# account, which has no login shell, cd to /var/lib/rabbitmq and redirect output to /var/log/rabbitmq).
# All state (mnesia, logs, Erlang cookie in $HOME) in the instance folder; node rabbit@localhost (resolves
# via /etc/hosts whatever the hostname is); a private epmd on AMQP+2 (never the shared one on 4369); the
# inter-node port set explicitly (default AMQP+20000 fails silently above 65535). The server runs in the
# foreground under setsid (-detached would return before boot, and its pid is not ours). Ready = an AMQP
# handshake on the port; the guest user exists before the listener opens (no plugins are enabled).
# disk_free_limit lowered to 10MB: the default 50MB alarm blocks every publisher on a nearly full disk.
start_rabbitmq() {
  local dir=$1 port=$2 bin p
  bin=$(rabbit_bindir) || { echo "no RabbitMQ binaries"; return 1; }
  local dist=$((port + 1)) epmd=$((port + 2))
  for p in "$dist" "$epmd"; do port_free "$p" || { echo "rabbitmq: port $p busy"; return 1; }; done
  mkdir -p "$dir/home" "$dir/mnesia" "$dir/log"
  export HOME="$dir/home" RABBITMQ_NODENAME=rabbit@localhost
  export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
  export RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_PID_FILE="$dir/beam.pid"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$port RABBITMQ_DIST_PORT=$dist
  export ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT=$epmd
  export RABBITMQ_CTL_DIST_PORT_MIN=45680 RABBITMQ_CTL_DIST_PORT_MAX=45690
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  : > "$RABBITMQ_CONF_ENV_FILE"                       # empty: ignore /etc/rabbitmq/rabbitmq-env.conf
  printf 'listeners.tcp.1 = 127.0.0.1:%s\nlog.console = false\nlog.file.level = info\ndisk_free_limit.absolute = 10MB\n' \
    "$port" > "$RABBITMQ_CONFIG_FILE"
  echo '[].' > "$RABBITMQ_ENABLED_PLUGINS_FILE"
  local t0; t0=$(now_ms)
  spawn "$dir/log/epmd.out" /usr/bin/epmd -address 127.0.0.1 -port "$epmd"
  record_pid "$dir" "$SPAWNED_PID" TERM
  spawn "$dir/log/stdout.log" "$bin/rabbitmq-server"   # sh script: SIGTERM -> graceful VM shutdown
  # stop order: the server first, epmd last
  { echo "$SPAWNED_PID $(proc_start "$SPAWNED_PID" || echo 0) TERM"; cat "$dir/pids"; } > "$dir/pids.new"
  mv "$dir/pids.new" "$dir/pids"
  wait_ready "$dir" rabbitmq amqp_ping 127.0.0.1 "$port" || { tail -30 "$dir/log/stdout.log"; return 1; }
  # the Erlang VM itself, in case the script dies without taking it down (stopped after the script, before epmd)
  if [[ -s $dir/beam.pid ]]; then
    local beam; beam=$(cat "$dir/beam.pid")
    { head -1 "$dir/pids"; echo "$beam $(proc_start "$beam" || echo 0) TERM"; tail -n +2 "$dir/pids"; } > "$dir/pids.new"
    mv "$dir/pids.new" "$dir/pids"
  fi
  echo "server $(( $(now_ms) - t0 )) ms" > "$dir/timing"
}

# stop_instance DIR: signal each recorded process (if still the same process), wait up to 30 s, then SIGKILL
stop_instance() {
  local dir=$1 pid st sig i
  [[ -f $dir/pids ]] || return 0
  while read -r pid st sig; do
    alive "$pid" || continue
    [[ $st == 0 || $(proc_start "$pid") == "$st" ]] || continue   # pid reused by something else
    kill -s "$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && { kill -KILL "$pid" 2>/dev/null || true; }
  done < "$dir/pids"
  rm -f "$dir/pids"
}

# ---------------------------------------------------------------------------------------------------------
# locks: $BASE/.lock serializes start-up/shut-down decisions; $BASE/<svc>.users holds one shared flock per run
# using a private instance. A run stops an instance only if it can take that lock exclusively (no other run
# uses it) and the instance was not started with TIDINGS_KEEP_SERVICES=1 (marker file "kept").

LOCK_FDS=()
GLOCK_FD=""
# every process we start must not inherit the lock fds (a server holding $BASE/.lock blocks all later runs)
close_lock_fds() {
  local fd
  [[ -z ${GLOCK_FD:-} ]] || eval "exec ${GLOCK_FD}>&-"
  for fd in "${LOCK_FDS[@]}"; do eval "exec $fd>&-"; done
}
global_lock() { exec {GLOCK_FD}>"$BASE/.lock"; flock -w 600 "$GLOCK_FD" || die "timed out waiting for $BASE/.lock"; }
global_unlock() { [[ -n $GLOCK_FD ]] && { eval "exec ${GLOCK_FD}>&-"; GLOCK_FD=""; }; return 0; }
declare -A USE_FD=()
use_instance() { local fd; exec {fd}>"$BASE/$1.users"; flock -s "$fd"; USE_FD[$1]=$fd; LOCK_FDS+=("$fd"); }

PRIVATE=()            # services whose private instance this run uses (started or reused)
declare -A STARTED=() # services started by this run
STARTERS=()           # pids of starter subshells
POLICY_RC_CREATED=0
CLEANED=0

cleanup() {
  local rc=$? svc fd t0 stopped=()
  [[ $CLEANED == 1 ]] && return $rc
  CLEANED=1
  trap '' INT TERM HUP
  for pid in "${STARTERS[@]}"; do alive "$pid" && { kill -TERM "$pid" 2>/dev/null || true; }; done
  if [[ $POLICY_RC_CREATED == 1 ]]; then as_root rm -f /usr/sbin/policy-rc.d || true; fi
  ((${#PRIVATE[@]})) || return $rc
  t0=$(now_ms)
  [[ -n $GLOCK_FD ]] || exec {GLOCK_FD}>"$BASE/.lock"
  flock -w 120 "$GLOCK_FD" || true
  local pids=()
  for svc in "${PRIVATE[@]}"; do
    fd=${USE_FD[$svc]:-}
    if [[ -z $fd ]]; then                      # start failed or interrupted: stop it, keep the folder
      [[ -n ${STARTED[$svc]:-} ]] || continue
      ( stop_instance "$BASE/$svc" ) & pids+=($!); stopped+=("$svc"); continue
    fi
    if [[ $KEEP == 1 || -e $BASE/$svc/kept ]]; then continue; fi
    flock -xn "$fd" || continue                # another run still uses it: the last one stops it
    ( stop_instance "$BASE/$svc"; rm -rf "${BASE:?}/$svc" "$BASE/$svc.start.log" ) & pids+=($!); stopped+=("$svc")
  done
  for pid in "${pids[@]}"; do wait "$pid" || true; done
  ((${#stopped[@]})) && log "stopped private ${stopped[*]} in $(( $(now_ms) - t0 )) ms"
  return $rc
}

stop_all() {  # --stop
  local svc n=0
  [[ -d $BASE ]] || { log "nothing to stop ($BASE does not exist)"; return 0; }
  global_lock
  for svc in "${ALL_SERVICES[@]}"; do
    [[ -f $BASE/$svc/pids ]] || continue
    stop_instance "$BASE/$svc"; rm -rf "${BASE:?}/$svc" "$BASE/$svc.start.log"; log "$svc: stopped private instance"; n=$((n + 1))
  done
  ((n)) || log "no private instances running under $BASE"
}

# ---------------------------------------------------------------------------------------------------------
# main

case "${1:-}" in
  --stop) stop_all; exit 0 ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac

declare -A WANT=() FORCE=()
SERVICES=()
IFS=', ' read -r -a _list <<< "${TIDINGS_SERVICES-postgres,mariadb,redis,rabbitmq,nats}"
for s in "${_list[@]}"; do
  [[ -z $s || $s == none ]] && continue
  n=$(svc_norm "$s") || die "unknown service '$s' in TIDINGS_SERVICES (known: ${ALL_SERVICES[*]})"
  [[ -n ${WANT[$n]:-} ]] || { WANT[$n]=1; SERVICES+=("$n"); }
done
IFS=', ' read -r -a _list <<< "${TIDINGS_FORCE_PRIVATE:-}"
for s in "${_list[@]}"; do
  [[ -z $s ]] && continue
  if [[ $s == all ]]; then for n in "${ALL_SERVICES[@]}"; do FORCE[$n]=1; done; continue; fi
  n=$(svc_norm "$s") || die "unknown service '$s' in TIDINGS_FORCE_PRIVATE"
  FORCE[$n]=1
done

# 1) check the configured addresses
NEED=()
for svc in "${SERVICES[@]}"; do
  var=$(svc_var "$svc")
  url=${!var:-$(svc_default_url "$svc")}
  if [[ -n ${FORCE[$svc]:-} ]]; then
    NEED+=("$svc"); continue
  fi
  t0=$(now_ms)
  if why=$(check_url "$svc" "$url" 2>&1); then
    export "$var=$url"
    log "$svc: found at $url ($(( $(now_ms) - t0 )) ms)"
  else
    [[ $why == "nothing listens"* ]] || log "$svc: $url is not usable ($why); using a private instance"
    NEED+=("$svc")
  fi
done

if ((${#NEED[@]} == 0)); then
  (($#)) || exit 0
  exec "$@"
fi

# 2) private instances: reuse a running one (kept or in use by a concurrent run), else install + start
trap cleanup EXIT
trap 'exit 130' INT; trap 'exit 143' TERM; trap 'exit 129' HUP
if ! mkdir -p "$BASE" 2>/dev/null || [[ ! -w $BASE ]]; then BASE=$BASE-$(id -u); mkdir -p "$BASE"; fi
chmod 755 "$BASE" 2>/dev/null || true   # the postgres user must be able to traverse it
global_lock

TO_START=()
for svc in "${NEED[@]}"; do
  purl=$(svc_private_url "$svc")
  if check_url "$svc" "$purl" >/dev/null 2>&1; then
    if [[ -f $BASE/$svc/pids ]]; then
      use_instance "$svc"; PRIVATE+=("$svc")
      export "$(svc_var "$svc")=$purl"
      if [[ -e $BASE/$svc/kept ]]; then
        log "$svc: found at $purl (private instance kept running; stop it with scripts/with-services.sh --stop)"
      else
        log "$svc: found at $purl (private instance of another run; the last run using it stops it)"
      fi
      continue
    fi
    die "$svc: something not started by this script answers at $purl; set TIDINGS_PRIVATE_*_PORT to a free port"
  fi
  [[ -d $BASE/$svc ]] && { stop_instance "$BASE/$svc"; rm -rf "${BASE:?}/$svc"; }   # leftovers of a dead one
  port_free "$(svc_private_port "$svc")" || die "$svc: port $(svc_private_port "$svc") is busy; set TIDINGS_PRIVATE_*_PORT"
  TO_START+=("$svc")
done

if ((${#TO_START[@]})); then
  MISSING=()
  for svc in "${TO_START[@]}"; do svc_have_binaries "$svc" || MISSING+=("$svc"); done
  ((${#MISSING[@]} == 0)) || apt_install "${MISSING[@]}"
  for svc in "${TO_START[@]}"; do svc_have_binaries "$svc" || die "$svc: binaries still missing after installing"; done

  declare -A SPID=() ST0=()
  for svc in "${TO_START[@]}"; do
    dir=$BASE/$svc
    mkdir -p "$dir"; : > "$dir/pids"
    [[ $KEEP == 1 ]] && touch "$dir/kept"
    PRIVATE+=("$svc"); STARTED[$svc]=1
    ST0[$svc]=$(now_ms)
    # (close_lock_fds here too: pg_ctl's postmaster is not started through spawn)
    ( trap - EXIT INT TERM HUP; close_lock_fds; "start_$svc" "$dir" "$(svc_private_port "$svc")"
      echo $(( $(now_ms) - ST0[$svc] )) > "$dir/elapsed" ) > "$BASE/$svc.start.log" 2>&1 &
    SPID[$svc]=$!; STARTERS+=($!)
  done
  failed=()
  for svc in "${TO_START[@]}"; do
    if wait "${SPID[$svc]}"; then
      use_instance "$svc"
      purl=$(svc_private_url "$svc")
      export "$(svc_var "$svc")=$purl"
      log "$svc: started at $purl (ready in $(cat "$BASE/$svc/elapsed") ms: $(cat "$BASE/$svc/timing"); data in $BASE/$svc)"
    else
      failed+=("$svc")
      log "$svc: FAILED to start a private instance on port $(svc_private_port "$svc"):"
      sed 's/^/    /' "$BASE/$svc.start.log" >&2
    fi
  done
  STARTERS=()
  ((${#failed[@]} == 0)) || die "could not start: ${failed[*]} (folders kept in $BASE for a look)"
  log "private services ready $(( $(now_ms) - T_START )) ms after start of script"
fi
global_unlock

# 3) run the command
if [[ $KEEP == 1 ]]; then
  trap - EXIT INT TERM HUP
  log "TIDINGS_KEEP_SERVICES=1: private instances stay up; stop them with scripts/with-services.sh --stop"
  (($#)) || exit 0
  exec "$@"     # the shared locks stay with the command (fds survive exec)
fi

(($#)) || exit 0
SIGNALS=0
forward() { SIGNALS=$((SIGNALS + 1)); if ((SIGNALS > 1)); then kill -KILL "$CHILD" 2>/dev/null; else kill -TERM "$CHILD" 2>/dev/null; fi; }
trap forward INT TERM HUP
( close_lock_fds; exec "$@" ) <&0 &
CHILD=$!
rc=0; wait "$CHILD" || rc=$?
while alive "$CHILD"; do rc=0; wait "$CHILD" || rc=$?; done
if ((rc > 128)); then r2=0; wait "$CHILD" 2>/dev/null || r2=$?; [[ $r2 == 127 ]] || rc=$r2; fi
exit "$rc"
