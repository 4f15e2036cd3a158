#!/usr/bin/env bash
# The postgres image runs this once, when its data volume is empty (/docker-entrypoint-initdb.d):
# the role the lakehouse connects as and its three databases, named as deployment/cluster.env
# names them (LAKEHOUSE_CATALOG_URI .../iceberg, LAKEHOUSE_SOURCE_URL .../shop, DAGSTER_PG_DB).
# The role owns its databases, so it may create tables in their public schema (PostgreSQL 15+
# no longer lets every role do that) and never needs the superuser.
#
# The image sources a file that is not executable (a Swarm config is mode 0444): nothing here
# may exit or change shell options. The password is read by psql itself (\set with backquotes),
# so it is on no command line and in no log.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  --set=password_file="${LAKEHOUSE_DB_PASSWORD_FILE:-/run/secrets/lakehouse_db_password}" <<'SQL'
\set password `cat :'password_file'`
CREATE ROLE lakehouse LOGIN PASSWORD :'password';
CREATE DATABASE iceberg OWNER lakehouse;
CREATE DATABASE shop OWNER lakehouse;
CREATE DATABASE dagster OWNER lakehouse;
SQL
