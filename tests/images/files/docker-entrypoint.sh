#!/usr/bin/env bash
# testbed stand-in for the official postgres image's docker-entrypoint.sh.
# Same contract: POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB /
# POSTGRES_INITDB_ARGS / POSTGRES_HOST_AUTH_METHOD, PGDATA, initdb on first
# start, /docker-entrypoint-initdb.d/*.sh|*.sql, then exec postgres "$@" as
# the postgres user.
set -Eeo pipefail

log() { printf '%s: %s\n' "${0##*/}" "$*"; }

# `docker run image -c fsync=off` means `postgres -c fsync=off`.
if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

if [ "$1" != 'postgres' ]; then
	exec "$@"
fi

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [ "$(id -u)" = '0' ]; then
	# The data dir may be a fresh tmpfs (root:root 1777) or an empty volume.
	mkdir -p "$PGDATA" /var/run/postgresql
	chown postgres:postgres "$PGDATA" /var/run/postgresql
	chmod 0700 "$PGDATA"
	chmod 3777 /var/run/postgresql
	exec gosu postgres "${BASH_SOURCE[0]}" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != 'trust' ]; then
		cat >&2 <<-'EOE'
			Error: Database is uninitialized and superuser password is not specified.
			       You must specify POSTGRES_PASSWORD to a non-empty value for the
			       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

			       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
			       connections without a password. This is *not* recommended.

			       See PostgreSQL documentation about "trust":
			       https://www.postgresql.org/docs/current/auth-trust.html
		EOE
		exit 1
	fi

	POSTGRES_USER="${POSTGRES_USER:-postgres}"
	POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
	auth_method="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"

	# shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is word-split on purpose
	initdb --username="$POSTGRES_USER" \
		--pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD:-}") \
		${POSTGRES_INITDB_ARGS:-}

	{
		printf '\n# added by testbed docker-entrypoint.sh\n'
		printf "listen_addresses = '*'\n"
	} >>"$PGDATA/postgresql.conf"
	{
		printf '\n# added by testbed docker-entrypoint.sh\n'
		printf 'host all all all %s\n' "$auth_method"
	} >>"$PGDATA/pg_hba.conf"

	# Temporary server on the unix socket only, as the official image does.
	pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p 5432" start

	psql_cmd=(psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc --username "$POSTGRES_USER")
	if [ "$POSTGRES_DB" != 'postgres' ]; then
		"${psql_cmd[@]}" --dbname postgres --set db="$POSTGRES_DB" <<-'EOSQL'
			CREATE DATABASE :"db";
		EOSQL
	fi

	shopt -s nullglob
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
			*.sh)
				log "running $f"
				if [ -x "$f" ]; then "$f"; else . "$f"; fi
				;;
			*.sql)
				log "running $f"
				"${psql_cmd[@]}" --dbname "$POSTGRES_DB" -f "$f"
				;;
			*) log "ignoring $f" ;;
		esac
	done
	shopt -u nullglob

	pg_ctl -D "$PGDATA" -m fast -w stop
	log 'PostgreSQL init process complete; ready for start up.'
fi

exec "$@"
