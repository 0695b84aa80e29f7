#!/usr/bin/env bash
# scripts/bench checks: what the payments table's rules cost an UPDATE as
# CHECK constraints, and as the domains they are since migration 0035.
#
# PostgreSQL 15 reads every CHECK constraint's stored expression tree and
# compiles it again for each INSERT or UPDATE statement, whatever columns
# it changes (the node's profile: ExecConstraints, about a fifth of the
# database's CPU on the card path; docs/performance.md, fifth round). A
# domain's constraints are kept in the type cache, and an UPDATE checks
# only the columns it assigns. This runs pgbench (prepared) updating one
# row by primary key, as the node's payment updates do, on four copies of
# `payments` (10,000 rows) in a scratch database migrated to the current
# schema:
#
#   checks      every rule as a table CHECK (the schema before migration 0035:
#               each domain's rule restated on its column, over base types)
#   one check   the same rules as one CHECK (is it the count or the trees?)
#   domains     the table as migrated: single-column rules as domains, the
#               multi-column ones as CHECKs
#   none        base types and no CHECK at all: the floor
#
# The copies are derived from the migrated table, so they follow it.
# Options: --seconds N (per run, default 6), --rounds N (default 2),
# --clients N (pgbench clients, default the machine's core count, so that
# the figure is the database's CPU per UPDATE; one client mostly measures
# the wait of each round trip).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=6
rounds=2
clients=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --quick) seconds=3; rounds=1; shift ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
admin_url="${EPG_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db="epg_bench_checks_$$"
url="${admin_url%/*}/$db"
psql -q "$admin_url" -c "CREATE DATABASE $db"
trap 'psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
# shellcheck source=scripts/lib/migrate-psql.sh
source scripts/lib/migrate-psql.sh
migrate_with_psql "$url"

psql -q -v ON_ERROR_STOP=1 "$url" >/dev/null <<'SQL'
CREATE TABLE bench_domains (LIKE payments INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
CREATE TABLE bench_checks (LIKE payments INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
CREATE TABLE bench_one (LIKE payments INCLUDING DEFAULTS);
CREATE TABLE bench_none (LIKE payments INCLUDING DEFAULTS);
DO $$
DECLARE
    col RECORD;
    rule TEXT;
    rules TEXT;
BEGIN
    FOR col IN
        SELECT a.attname, t.oid AS domain, format_type(t.typbasetype, t.typtypmod) AS base
          FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
         WHERE a.attrelid = 'payments'::regclass AND a.attnum > 0 AND NOT a.attisdropped
           AND t.typtype = 'd'
    LOOP
        EXECUTE format('ALTER TABLE bench_checks ALTER %I TYPE %s', col.attname, col.base);
        EXECUTE format('ALTER TABLE bench_one ALTER %I TYPE %s', col.attname, col.base);
        EXECUTE format('ALTER TABLE bench_none ALTER %I TYPE %s', col.attname, col.base);
        FOR rule IN SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE contypid = col.domain
        LOOP
            EXECUTE format('ALTER TABLE bench_checks ADD %s',
                           regexp_replace(rule, '\mVALUE\M', quote_ident(col.attname), 'g'));
        END LOOP;
    END LOOP;
    SELECT string_agg('(' || pg_get_expr(conbin, conrelid) || ')', ' AND ')
      INTO rules FROM pg_constraint
     WHERE conrelid = 'bench_checks'::regclass AND contype = 'c';
    EXECUTE format('ALTER TABLE bench_one ADD CHECK (%s)', rules);
END
$$;

INSERT INTO bench_checks (id, merchant_id, amount, currency, status, capture_method,
        payment_method_types, client_secret, metadata, created_at)
SELECT 'pay_' || lpad(g::text, 24, '0'), 'mer_bench', 1000, 'usd', 'requires_payment_method',
       'automatic', '{card}', 'secret', '{}', now()
  FROM generate_series(1, 10000) g;
INSERT INTO bench_none SELECT * FROM bench_checks;
INSERT INTO bench_one SELECT * FROM bench_checks;
INSERT INTO bench_domains SELECT * FROM bench_checks;
ALTER TABLE bench_checks ADD PRIMARY KEY (id);
ALTER TABLE bench_none ADD PRIMARY KEY (id);
ALTER TABLE bench_one ADD PRIMARY KEY (id);
ALTER TABLE bench_domains ADD PRIMARY KEY (id);
VACUUM ANALYZE bench_checks, bench_none, bench_one, bench_domains;
SQL

counts=$(psql -At -F ' ' "$url" -c "SELECT
    (SELECT count(*) FROM pg_constraint WHERE conrelid = 'bench_checks'::regclass AND contype = 'c'),
    (SELECT count(*) FROM pg_constraint WHERE conrelid = 'payments'::regclass AND contype = 'c'),
    (SELECT count(*) FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
      WHERE a.attrelid = 'payments'::regclass AND t.typtype = 'd')")
read -r as_checks table_checks domain_columns <<<"$counts"
echo "checks bench: UPDATE of one payments row by id, pgbench -M prepared, ${clients} client(s), ${seconds} s per run, ${rounds} round(s)"
echo "payments as migrated: $domain_columns domain columns and $table_checks CHECK constraints; as CHECKs only: $as_checks"
printf '%-10s %s\n' table "tps per round"
dir=$(mktemp -d)
for table in checks one domains none; do
  cat >"$dir/$table.sql" <<EOF
\set n random(1, 10000)
UPDATE bench_$table SET amount_capturable = 0, updated_at = now()
 WHERE id = 'pay_' || lpad(:n::text, 24, '0');
EOF
done
declare -A results
for _ in $(seq "$rounds"); do
  for table in checks one domains none; do
    tps=$(pgbench -n -M prepared -c "$clients" -j "$clients" -T "$seconds" -f "$dir/$table.sql" "$url" 2>/dev/null |
      sed -n 's/^tps = \([0-9]*\).*/\1/p')
    results[$table]="${results[$table]:-} $tps"
  done
done
rm -rf "$dir"
for table in checks one domains none; do
  printf '%-10s%s\n' "$table" "${results[$table]}"
done
