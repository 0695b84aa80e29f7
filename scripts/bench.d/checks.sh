#!/usr/bin/env bash
# scripts/bench checks: what the payments table's CHECK constraints cost an
# UPDATE, and what the same rules would cost as domains.
#
# PostgreSQL 15 reads every CHECK constraint's stored expression tree and
# compiles it again for each INSERT or UPDATE statement, whatever columns
# it changes (the node's profile: ExecConstraints, about a fifth of the
# database's CPU on the card path; docs/performance.md, fifth round). A
# domain's constraints are kept in the type cache, and an UPDATE checks
# only the columns it assigns. This runs pgbench (prepared, 1 client)
# updating one row by primary key, as the node's payment updates do, on
# four copies of `payments` (10,000 rows) in a scratch database migrated
# to the current schema:
#
#   checks      the table's own CHECK constraints (LIKE … INCLUDING CONSTRAINTS)
#   one check   the same rules as one CHECK (is it the count or the trees?)
#   domains     single-column rules as domains, the multi-column ones as CHECKs
#   none        no CHECK at all: the floor
#
# The domains mirror the single-column CHECKs of `payments` as migrated
# today (the script prints how many the table has, to notice a drift).
# Options: --seconds N (per run, default 6), --rounds N (default 2).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=6
rounds=2
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
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
CREATE TABLE bench_checks (LIKE payments INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
CREATE TABLE bench_none (LIKE payments INCLUDING DEFAULTS);
CREATE TABLE bench_one (LIKE payments INCLUDING DEFAULTS);
CREATE TABLE bench_domains (LIKE payments INCLUDING DEFAULTS);

CREATE DOMAIN bench_nonneg AS bigint CHECK (VALUE >= 0);
CREATE DOMAIN bench_count AS integer CHECK (VALUE >= 0);
CREATE DOMAIN bench_positive AS bigint CHECK (VALUE > 0);
CREATE DOMAIN bench_capture AS text CHECK (VALUE IN ('automatic', 'manual'));
CREATE DOMAIN bench_currency AS text CHECK (VALUE ~ '^[a-z]{3}$');
CREATE DOMAIN bench_payment_id AS text CHECK (VALUE ~ '^pay_[A-Za-z0-9]{24}$');
CREATE DOMAIN bench_key AS text CHECK (length(VALUE) BETWEEN 1 AND 255);
CREATE DOMAIN bench_url AS text CHECK (length(VALUE) <= 2048 AND VALUE ~ '^https?://');
CREATE DOMAIN bench_score AS smallint CHECK (VALUE BETWEEN 0 AND 100);
CREATE DOMAIN bench_status AS text CHECK (VALUE IN ('requires_payment_method',
    'requires_action', 'processing', 'requires_capture', 'succeeded', 'canceled', 'failed'));
ALTER TABLE bench_domains
    ALTER id TYPE bench_payment_id, ALTER amount TYPE bench_positive,
    ALTER currency TYPE bench_currency, ALTER status TYPE bench_status,
    ALTER capture_method TYPE bench_capture, ALTER amount_capturable TYPE bench_nonneg,
    ALTER amount_received TYPE bench_nonneg, ALTER amount_refunded TYPE bench_nonneg,
    ALTER amount_disputed TYPE bench_nonneg, ALTER confirm_attempts TYPE bench_count,
    ALTER risk_score TYPE bench_score, ALTER idempotency_key TYPE bench_key,
    ALTER return_url TYPE bench_url,
    ADD CHECK (amount_received + amount_capturable <= amount),
    ADD CHECK (amount_refunded + amount_disputed <= amount_received);

INSERT INTO bench_checks (id, merchant_id, amount, currency, status, capture_method,
        payment_method_types, client_secret, metadata, created_at)
SELECT 'pay_' || lpad(g::text, 24, '0'), 'mer_bench', 1000, 'usd', 'requires_payment_method',
       'automatic', '{card}', 'secret', '{}', now()
  FROM generate_series(1, 10000) g;
INSERT INTO bench_none SELECT * FROM bench_checks;
INSERT INTO bench_one SELECT * FROM bench_checks;
INSERT INTO bench_domains SELECT * FROM bench_checks;
DO $$
DECLARE
    rules TEXT;
BEGIN
    SELECT string_agg('(' || pg_get_expr(conbin, conrelid) || ')', ' AND ')
      INTO rules FROM pg_constraint
     WHERE conrelid = 'bench_checks'::regclass AND contype = 'c';
    EXECUTE format('ALTER TABLE bench_one ADD CHECK (%s)', rules);
END
$$;
ALTER TABLE bench_checks ADD PRIMARY KEY (id);
ALTER TABLE bench_none ADD PRIMARY KEY (id);
ALTER TABLE bench_one ADD PRIMARY KEY (id);
ALTER TABLE bench_domains ADD PRIMARY KEY (id);
VACUUM ANALYZE bench_checks, bench_none, bench_one, bench_domains;
SQL

count=$(psql -At "$url" -c "SELECT count(*) FROM pg_constraint
    WHERE conrelid = 'payments'::regclass AND contype = 'c'")
echo "checks bench: UPDATE of one payments row by id, pgbench -M prepared, 1 client, ${seconds} s per run, ${rounds} round(s)"
echo "payments has $count CHECK constraints; the domains copy mirrors 13 single-column ones as domains and keeps 2 multi-column CHECKs"
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
    tps=$(pgbench -n -M prepared -c 1 -T "$seconds" -f "$dir/$table.sql" "$url" 2>/dev/null |
      sed -n 's/^tps = \([0-9]*\).*/\1/p')
    results[$table]="${results[$table]:-} $tps"
  done
done
rm -rf "$dir"
for table in checks one domains none; do
  printf '%-10s%s\n' "$table" "${results[$table]}"
done
