# A private PostgreSQL cluster for test runs (sourced by scripts/test).
# PostgreSQL refuses to run as root, so as root it runs as `postgres`.

pg_bin_dir() {
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

test_pg_as() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_test_pg() {
  TEST_PG_DIR=$1
  local port=$2 bin
  bin=$(pg_bin_dir)
  TEST_PG_CTL="$bin/pg_ctl"
  if [ ! -f "$TEST_PG_DIR/PG_VERSION" ]; then
    mkdir -p "$TEST_PG_DIR"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$TEST_PG_DIR"
    chmod 700 "$TEST_PG_DIR"
    test_pg_as "$bin/initdb" -D "$TEST_PG_DIR" -U postgres --auth=trust --no-locale -E UTF8 >/dev/null
  fi
  # pg_stat_statements: the idle-node test and `scripts/bench api` count
  # the statements a node issues.
  # A run that was killed may have left its server up.
  test_pg_as "$TEST_PG_CTL" -D "$TEST_PG_DIR" -m immediate -w stop >/dev/null 2>&1 || true
  test_pg_as "$TEST_PG_CTL" -D "$TEST_PG_DIR" -l "$TEST_PG_DIR/server.log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.max=10000" \
    start >/dev/null
  echo "PostgreSQL for tests on 127.0.0.1:$port ($TEST_PG_DIR)"
}

stop_test_pg() {
  test_pg_as "$TEST_PG_CTL" -D "$TEST_PG_DIR" -m fast -w stop >/dev/null 2>&1 || true
}
