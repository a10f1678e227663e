#!/usr/bin/env bash
# A private PostgreSQL cluster for tests: Unix socket in DIR only, trust auth,
# server and tool output in DIR/pg.log.
#
#   pg-private.sh start DIR    create the cluster if needed, start it if stopped,
#                              create database "gorgone" if missing, print the conninfo
#   pg-private.sh restart DIR  fast restart (drops every connection), print the conninfo
#   pg-private.sh stop DIR     fast stop; nothing to do when not running
#
# As root the server runs as the "postgres" user (PostgreSQL refuses to run as root),
# so DIR is given to postgres and every parent directory must be traversable by it.
set -euo pipefail

die() { echo "pg-private: $*" >&2; exit 1; }

[[ $# -eq 2 ]] || { echo "usage: $0 start|restart|stop DIR" >&2; exit 2; }
action=$1
dir=$2

# The path ends up in postgresql.conf and in the conninfo, both unquoted.
[[ $dir =~ ^[A-Za-z0-9._/+-]+$ ]] || die "DIR must be made of [A-Za-z0-9._/+-] only: '$dir'"
[[ $dir == /* ]] || dir=$PWD/$dir
data=$dir/data
log=$dir/pg.log

find_bindir() {
  local d
  d=$(pg_config --bindir 2>/dev/null || true)
  if [[ -n $d && -x $d/initdb && -x $d/pg_ctl ]]; then echo "$d"; return; fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x $d/initdb && -x $d/pg_ctl ]]; then echo "$d"; return; fi
  done
  die "cannot find the PostgreSQL server binaries (initdb, pg_ctl)"
}
bin=$(find_bindir)

# Runs a command as the cluster owner, from DIR (the caller's cwd may be unreadable
# for postgres). fd 9 holds the start lock: the server must not inherit it.
if [[ $(id -u) -eq 0 ]]; then
  as_owner() { (cd "$dir" && runuser -u postgres -- "$@" 9>&-); }
else
  as_owner() { (cd "$dir" && "$@" 9>&-); }
fi

fail_with_log() {
  echo "pg-private: $1; last lines of $log:" >&2
  tail -n 20 "$log" >&2 || true
  exit 1
}

prepare_dir() {
  mkdir -p "$dir"
  if [[ $(id -u) -eq 0 ]]; then
    chown postgres: "$dir"
    runuser -u postgres -- test -w "$dir" -a -x "$dir" ||
      die "$dir is not reachable by the postgres user" \
        "(make its parent directories traversable, e.g. chmod 755)"
  fi
  as_owner touch "$log"
}

port_of() { sed -n 's/^port = \([0-9][0-9]*\)$/\1/p' "$data/postgresql.conf" | tail -n 1; }

init_cluster() {
  # Nothing listens on TCP, so the port only names the socket file inside the
  # private DIR: any number is free there. Pick one at random rather than a fixed one.
  local port=$((20000 + RANDOM % 40000))
  local sock="$dir/.s.PGSQL.$port"
  ((${#sock} <= 107)) || die "socket path too long for a Unix socket: $sock"
  as_owner "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-locale >>"$log" 2>&1 ||
    fail_with_log "initdb failed"
  # fsync off: throw-away test data; a fast stop still writes everything out.
  cat >>"$data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
fsync = off
shared_buffers = 32MB
max_connections = 50
EOF
}

is_running() { as_owner "$bin/pg_ctl" status -D "$data" >/dev/null 2>&1; }

ensure_database() {
  local port=$1 found
  found=$(as_owner "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -XtAq \
    -c "SELECT 1 FROM pg_database WHERE datname = 'gorgone'" 2>>"$log") ||
    fail_with_log "cannot query the cluster"
  if [[ -z $found ]]; then
    as_owner "$bin/createdb" -h "$dir" -p "$port" -U postgres gorgone >>"$log" 2>&1 ||
      fail_with_log "cannot create database gorgone"
  fi
}

print_conninfo() { echo "host=$dir port=$(port_of) dbname=gorgone user=postgres"; }

start() {
  prepare_dir
  exec 9>>"$dir/.lock"
  flock 9  # two concurrent starts of the same DIR: the second waits, then sees it running
  [[ -f $data/PG_VERSION ]] || init_cluster
  if ! is_running; then
    as_owner "$bin/pg_ctl" start -D "$data" -l "$log" -w -t 60 >>"$log" 2>&1 ||
      fail_with_log "cannot start PostgreSQL"
  fi
  ensure_database "$(port_of)"
  print_conninfo
}

restart() {
  [[ -f $data/PG_VERSION ]] || die "no cluster in $dir (run start first)"
  as_owner "$bin/pg_ctl" restart -D "$data" -l "$log" -m fast -w -t 60 >>"$log" 2>&1 ||
    fail_with_log "cannot restart PostgreSQL"
  print_conninfo
}

stop() {
  [[ -f $data/PG_VERSION ]] || return 0
  is_running || return 0
  as_owner "$bin/pg_ctl" stop -D "$data" -m fast -w -t 60 >>"$log" 2>&1 ||
    fail_with_log "cannot stop PostgreSQL"
}

case $action in
  start) start ;;
  restart) restart ;;
  stop) stop ;;
  *) die "unknown action '$action' (start, restart or stop)" ;;
esac
