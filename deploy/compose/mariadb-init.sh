#!/bin/bash
# First start of the demo MariaDB container: the Sales and Accounting databases from the legacy DDL,
# and a SELECT-only `bizfed` user for the API replicas (the seed job connects as root).
set -euo pipefail

sql() { mariadb --protocol=socket -uroot -p"${MARIADB_ROOT_PASSWORD}" "$@"; }

for db in sales accounting; do
    sql -e "CREATE DATABASE IF NOT EXISTS \`${db}\` CHARACTER SET utf8mb4"
    sql "${db}" < "/legacy/${db}.sql"
done

sql <<SQL
CREATE USER IF NOT EXISTS 'bizfed'@'%' IDENTIFIED BY '${BIZFED_DEMO_PASSWORD}';
GRANT SELECT ON \`sales\`.* TO 'bizfed'@'%';
GRANT SELECT ON \`accounting\`.* TO 'bizfed'@'%';
FLUSH PRIVILEGES;
SQL
