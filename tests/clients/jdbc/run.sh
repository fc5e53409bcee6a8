#!/bin/sh
# Builds (when its sources changed) and runs the JDBC client check against a
# running lakegate Flight SQL server: the Tableau/DBeaver path.
#
#   tests/clients/jdbc/run.sh --url grpc://127.0.0.1:PORT --user analyst --password s3cret
#
# Needs Java 17+ and Maven; the driver comes from Maven Central into ~/.m2.
# Classes go to ~/.cache/lakegate/jdbc-client, so a second run starts the JVM
# straight away. Exit status is the check's: 0 when every check passes.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build=${LAKEGATE_JDBC_BUILD_DIR:-$HOME/.cache/lakegate/jdbc-client}
stamp=$build/sources.sha256
want=$(cat "$here/pom.xml" "$here"/src/main/java/lakegate/*.java | sha256sum | cut -d' ' -f1)

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -f "$build/classpath.txt" ]; then
    echo "building the JDBC client into $build" >&2
    mvn -q -B -f "$here/pom.xml" -Dlakegate.build.dir="$build" compile >&2
    echo "$want" >"$stamp"
fi

exec java --add-opens=java.base/java.nio=ALL-UNNAMED \
    -cp "$build/classes:$(cat "$build/classpath.txt")" lakegate.JdbcClient "$@"
