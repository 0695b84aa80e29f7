# Applies migrations/*.sql in order to the database at URL $1 with psql,
# stopping at the first error: a schema for tools that need no epg binary
# (the sqlx query cache, the checks bench). Source from the repository root.
migrate_with_psql() {
  local f
  for f in migrations/*.sql; do
    psql -q -v ON_ERROR_STOP=1 "$1" -f "$f" >/dev/null
  done
}
