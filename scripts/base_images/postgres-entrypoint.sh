#!/bin/sh
# PostgreSQL started as the official image starts it, for the image that scripts/containers.py
# builds from Debian's packages: on an empty data folder, make the cluster with POSTGRES_USER
# and POSTGRES_PASSWORD and the database POSTGRES_DB, then run the server on the container's
# network (password required from other hosts, trusted on the local socket).
set -eu
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
: "${PGDATA:=/var/lib/postgresql/data}" "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    password_file=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:?Set POSTGRES_PASSWORD}" > "$password_file"
    "$bin/initdb" --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$password_file" \
        --auth-local=trust --auth-host=scram-sha-256 > /dev/null
    rm -f "$password_file"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    if [ "$POSTGRES_DB" != postgres ]; then
        echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\";" \
            | "$bin/postgres" --single -D "$PGDATA" postgres > /dev/null
    fi
fi
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' \
    -c unix_socket_directories=/run/postgresql "$@"
