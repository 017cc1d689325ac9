#!/bin/sh
# Writes the auth file from the database password (DB_USER, DB_PASSWORD or DB_PASSWORD_FILE), then runs
# PgBouncer in the foreground with /etc/pgbouncer/pgbouncer.ini (mounted from deploy/pgbouncer/).
set -eu
if [ -n "${DB_PASSWORD_FILE:-}" ]; then DB_PASSWORD=$(cat "$DB_PASSWORD_FILE"); fi
: "${DB_USER:=desk}" "${DB_PASSWORD:?set DB_PASSWORD or DB_PASSWORD_FILE}"
umask 077
printf '"%s" "%s"\n' "$DB_USER" "$DB_PASSWORD" > /run/pgbouncer/userlist.txt
exec pgbouncer /etc/pgbouncer/pgbouncer.ini
