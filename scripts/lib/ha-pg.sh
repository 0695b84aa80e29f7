# PostgreSQL for scripts/ha-devnet and scripts/faults (sourced).
#
#   ha_pg_formation DIR MONITOR_PORT PORT1 PORT2
#       a pg_auto_failover formation: a monitor and two nodes (primary and
#       synchronous standby), every data folder under DIR, WAL archived to
#       DIR/wal-archive. Sets HA_PG_URL (multi-host, read-write),
#       HA_PG_PGDATA (the nodes' data folders, in the URL's order) and
#       HA_PG_MONITOR (the monitor's data folder).
#   ha_pg_single DIR PORT
#       one plain server with the same WAL archiving (quick fault runs);
#       sets the same variables (no monitor).
#   ha_pg_fast_detection DIR MONITOR_PORT
#       a lost primary is replaced in ~15 s instead of ~40 s: the monitor
#       declares a silent node failed sooner, and waits less for a lost
#       primary to have demoted itself, as its keeper does sooner too
#       (the devnet: one machine, no network to be wrong about).
#   ha_pg_stop DIR       stops whatever the above started under DIR.
#   ha_pg_as CMD…        runs a PostgreSQL tool as `postgres` (it refuses root).
#   ha_pg_basebackup URL DEST     a base backup (the PITR starting point).
#   ha_pg_restore BACKUP DIR PORT TARGET
#       restores BACKUP into DIR and replays the archive up to the restore
#       point TARGET, then serves it on PORT (see docs/operations.md).

ha_pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

ha_pg_as() {
  local env=(env "PATH=$(ha_pg_bin):$PATH" "XDG_CONFIG_HOME=${HA_PG_DIR:-/tmp}/xdg/config"
    "XDG_DATA_HOME=${HA_PG_DIR:-/tmp}/xdg/data" "XDG_RUNTIME_DIR=${HA_PG_DIR:-/tmp}/xdg/run")
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u postgres -- "${env[@]}" "$@")
  else
    "${env[@]}" "$@"
  fi
}

ha_pg_prepare_dir() {
  HA_PG_DIR=$(realpath -m "$1")
  mkdir -p "$HA_PG_DIR/xdg/config" "$HA_PG_DIR/xdg/data" "$HA_PG_DIR/xdg/run" "$HA_PG_DIR/wal-archive"
  if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$HA_PG_DIR"; fi
  # PostgreSQL (as `postgres`) must reach the folder through its parents.
  local d=$HA_PG_DIR
  while [ "$d" != / ]; do d=$(dirname "$d"); chmod o+x "$d" 2>/dev/null || true; done
}

# Settings every node gets: WAL archived for point-in-time recovery, and
# room for the nodes' pools.
ha_pg_archive_conf() {
  cat >>"$1/postgresql.conf" <<CONF
# scripts/lib/ha-pg.sh: WAL archiving (docs/operations.md, Backups and PITR)
archive_mode = on
archive_command = 'test ! -f $HA_PG_DIR/wal-archive/%f && cp %p $HA_PG_DIR/wal-archive/%f'
max_connections = 300
CONF
}

ha_pg_wait() { # SECONDS CMD… : retries CMD once a second
  local n=$1; shift
  for _ in $(seq "$n"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  "$@"
}

ha_pg_formation() {
  ha_pg_prepare_dir "$1"
  local mport=$2 p1=$3 p2=$4 d=$HA_PG_DIR
  local monitor_uri="postgres://autoctl_node@127.0.0.1:$mport/pg_auto_failover"
  if [ ! -f "$d/monitor/PG_VERSION" ]; then
    ha_pg_as pg_autoctl create monitor --pgdata "$d/monitor" --pgport "$mport" \
      --hostname 127.0.0.1 --auth trust --no-ssl >"$d/monitor.log" 2>&1
  fi
  ha_pg_as pg_autoctl run --pgdata "$d/monitor" >>"$d/monitor.log" 2>&1 &
  ha_pg_wait 60 ha_pg_as pg_autoctl show state --pgdata "$d/monitor"
  # The nodes reach the monitor over TCP on 127.0.0.1. When that port is
  # taken on IPv4 (any outgoing connection may hold a port of Linux's
  # ephemeral range, 32768-60999), PostgreSQL listens on IPv6 only and
  # `pg_autoctl create postgres` would wait for it for ever.
  if ! ha_pg_wait 30 psql "$monitor_uri" -Atc 'SELECT 1'; then
    echo "error: the monitor does not answer on 127.0.0.1:$mport (taken on IPv4? see $d/monitor/log); choose another port base" >&2
    return 1
  fi
  if [ ! -f "$d/node1/PG_VERSION" ]; then
    ha_pg_as pg_autoctl create postgres --pgdata "$d/node1" --pgport "$p1" \
      --hostname 127.0.0.1 --auth trust --no-ssl --dbname epg --monitor "$monitor_uri" \
      >"$d/node1.log" 2>&1
    ha_pg_archive_conf "$d/node1"
  fi
  ha_pg_as pg_autoctl run --pgdata "$d/node1" >>"$d/node1.log" 2>&1 &
  ha_pg_wait 120 psql "postgres://postgres@127.0.0.1:$p1/epg" -Atc 'SELECT 1'
  if [ ! -f "$d/node2/PG_VERSION" ]; then
    ha_pg_as pg_autoctl create postgres --pgdata "$d/node2" --pgport "$p2" \
      --hostname 127.0.0.1 --auth trust --no-ssl --dbname epg --monitor "$monitor_uri" \
      --run >"$d/node2.log" 2>&1 &
  else
    ha_pg_as pg_autoctl run --pgdata "$d/node2" >>"$d/node2.log" 2>&1 &
  fi
  # The standby's base backup waits for a checkpoint; ask for one now
  # rather than waiting for the next timed one.
  local ok=""
  for _ in $(seq 180); do
    local state
    state=$(ha_pg_as pg_autoctl show state --pgdata "$d/monitor" 2>/dev/null || true)
    if [ "$(grep -cE '\| +(primary|secondary) +\| +(primary|secondary) *$' <<<"$state")" -eq 2 ]; then
      ok=1; break
    fi
    psql "postgres://postgres@127.0.0.1:$p1/postgres" -Atc CHECKPOINT >/dev/null 2>&1 || true
    psql "postgres://postgres@127.0.0.1:$p2/postgres" -Atc CHECKPOINT >/dev/null 2>&1 || true
    sleep 1
  done
  if [ -z "$ok" ]; then
    ha_pg_as pg_autoctl show state --pgdata "$d/monitor" >&2 || true
    echo "error: the pg_auto_failover formation did not reach primary + secondary (logs in $d)" >&2
    return 1
  fi
  HA_PG_URL="postgres://postgres@127.0.0.1:$p1,127.0.0.1:$p2/epg?target_session_attrs=read-write"
  HA_PG_PGDATA="$d/node1,$d/node2"
  HA_PG_MONITOR="$d/monitor"
  export HA_PG_DIR HA_PG_URL HA_PG_PGDATA HA_PG_MONITOR
}

ha_pg_single() {
  ha_pg_prepare_dir "$1"
  local port=$2 d=$HA_PG_DIR bin
  bin=$(ha_pg_bin)
  if [ ! -f "$d/single/PG_VERSION" ]; then
    ha_pg_as "$bin/initdb" -D "$d/single" -U postgres --auth=trust --no-locale -E UTF8 >/dev/null
    ha_pg_archive_conf "$d/single"
  fi
  ha_pg_as "$bin/pg_ctl" -D "$d/single" -m immediate -w stop >/dev/null 2>&1 || true
  ha_pg_as "$bin/pg_ctl" -D "$d/single" -l "$d/single.log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=" start >/dev/null
  psql "postgres://postgres@127.0.0.1:$port/postgres" -Atc \
    "SELECT 1 FROM pg_database WHERE datname = 'epg'" | grep -q 1 ||
    psql "postgres://postgres@127.0.0.1:$port/postgres" -qc "CREATE DATABASE epg"
  HA_PG_URL="postgres://postgres@127.0.0.1:$port/epg"
  HA_PG_PGDATA="$d/single"
  HA_PG_MONITOR=""
  export HA_PG_DIR HA_PG_URL HA_PG_PGDATA HA_PG_MONITOR
}

ha_pg_fast_detection() {
  local d monitor="postgres://postgres@127.0.0.1:$2/pg_auto_failover"
  d=$(realpath -m "$1")
  # A primary cut off from the monitor and its standby demotes itself
  # after this; the monitor must wait longer than that before it lets
  # the standby take writes, or both would.
  for node in node1 node2; do
    ha_pg_as pg_autoctl config set --pgdata "$d/$node" timeout.network_partition_timeout 4 >/dev/null
  done
  psql "$monitor" -qAt >/dev/null <<SQL
ALTER SYSTEM SET pgautofailover.health_check_period = 1000;
ALTER SYSTEM SET pgautofailover.health_check_timeout = 1000;
ALTER SYSTEM SET pgautofailover.health_check_max_retries = 2;
ALTER SYSTEM SET pgautofailover.health_check_retry_delay = 500;
ALTER SYSTEM SET pgautofailover.node_considered_unhealthy_timeout = 5000;
ALTER SYSTEM SET pgautofailover.primary_demote_timeout = 8000;
SELECT pg_reload_conf();
SQL
}

ha_pg_stop() {
  local d bin
  d=$(realpath -m "$1"); bin=$(ha_pg_bin)
  HA_PG_DIR=$d
  for node in node2 node1 monitor; do
    if [ -f "$d/$node/PG_VERSION" ]; then
      ha_pg_as pg_autoctl stop --pgdata "$d/$node" >/dev/null 2>&1 || true
    fi
  done
  for node in single restore; do
    if [ -f "$d/$node/postmaster.pid" ]; then
      ha_pg_as "$bin/pg_ctl" -D "$d/$node" -m fast -w stop >/dev/null 2>&1 || true
    fi
  done
}

ha_pg_basebackup() {
  local url=$1 dest=$2
  rm -rf "$dest"; mkdir -p "$dest"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$dest"
  ha_pg_as "$(ha_pg_bin)/pg_basebackup" -d "$url" -D "$dest" -c fast -X stream
}

ha_pg_restore() {
  local backup=$1 dir=$2 port=$3 target=$4 bin
  bin=$(ha_pg_bin)
  rm -rf "$dir"; cp -a "$backup" "$dir"
  # The copy must not archive into the formation's archive.
  sed -i '/^archive_mode\|^archive_command/d' "$dir/postgresql.conf" "$dir/postgresql.auto.conf" 2>/dev/null || true
  rm -f "$dir/standby.signal" "$dir/postmaster.pid"
  cat >>"$dir/postgresql.auto.conf" <<CONF
restore_command = 'cp $HA_PG_DIR/wal-archive/%f %p'
recovery_target_name = '$target'
recovery_target_action = 'promote'
primary_conninfo = ''
primary_slot_name = ''
CONF
  touch "$dir/recovery.signal"
  chmod 700 "$dir"
  [ "$(id -u)" -ne 0 ] || chown -R postgres: "$dir"
  ha_pg_as "$bin/pg_ctl" -D "$dir" -l "$dir.log" -w -t 120 \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c archive_mode=off" start >/dev/null
  ha_pg_wait 120 ha_pg_promoted "$port"
}

ha_pg_promoted() {
  [ "$(psql "postgres://postgres@127.0.0.1:$1/postgres" -Atc 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]
}
