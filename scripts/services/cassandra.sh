#!/usr/bin/env bash
# A throw-away Apache Cassandra 5.0 on 127.0.0.1, for lakegate's Cassandra
# source tests and benchmark. Cassandra comes from Maven Central
# (org.apache.cassandra:cassandra-all and its runtime dependencies) and runs on
# JDK 17; nothing is installed system-wide.
#
#   scripts/services/cassandra.sh install  resolve the jars into
#                                          $LAKEGATE_CASSANDRA_HOME
#                                          (~/.cache/lakegate/cassandra/<version>);
#                                          does nothing when they are there
#   scripts/services/cassandra.sh start    install, then start one node on free
#                                          loopback ports with its data in a temp
#                                          dir; waits until CQL answers, then prints
#                                          CASSANDRA_CONTACT_POINT=127.0.0.1:PORT,
#                                          CASSANDRA_PID=... and CASSANDRA_DIR=...
#   scripts/services/cassandra.sh start --auth
#                                          the same, with password authentication and
#                                          authorization on (PasswordAuthenticator,
#                                          CassandraAuthorizer): waits until the default
#                                          superuser can sign in, then also prints
#                                          CASSANDRA_USER=cassandra and
#                                          CASSANDRA_PASSWORD=cassandra (create your own roles
#                                          with it)
#   scripts/services/cassandra.sh stop     stop it (by its pid) and remove the temp dir
#   scripts/services/cassandra.sh status
#
# Each instance is recorded in a state file, $LAKEGATE_CASSANDRA_STATE
# (~/.cache/lakegate/cassandra.state), holding its temp dir; point that variable
# elsewhere to run a second instance beside the first.
#
# Settings (environment):
#   LAKEGATE_CASSANDRA_VERSION        5.0.6
#   LAKEGATE_CASSANDRA_HEAP           1G (-Xms and -Xmx)
#   LAKEGATE_CASSANDRA_START_TIMEOUT  180 (seconds until CQL must answer)
#   JAVA                              the java binary, else JAVA_HOME's, else PATH's;
#                                     it must be Java 17 (Cassandra 5.0 runs on 11 or 17)
set -euo pipefail

version="${LAKEGATE_CASSANDRA_VERSION:-5.0.6}"
cache="$HOME/.cache/lakegate"
home="${LAKEGATE_CASSANDRA_HOME:-$cache/cassandra/$version}"
state="${LAKEGATE_CASSANDRA_STATE:-$cache/cassandra.state}"
heap="${LAKEGATE_CASSANDRA_HEAP:-1G}"
start_timeout="${LAKEGATE_CASSANDRA_START_TIMEOUT:-180}"

die() { echo "cassandra.sh: $*" >&2; exit 1; }

java_bin() {
    if [[ -n ${JAVA:-} ]]; then echo "$JAVA"
    elif [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then echo "$JAVA_HOME/bin/java"
    else command -v java || die "java not found: install openjdk-17-jdk-headless"
    fi
}

check_java() {
    local java major
    java="$(java_bin)"
    major="$("$java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
    [[ $major == 17 || $major == 11 ]] ||
        die "Cassandra $version needs Java 17 (or 11), but $java is Java ${major:-unknown}: set JAVA or JAVA_HOME"
}

install() {
    if [[ -f $home/lib/.complete ]]; then
        echo "cassandra $version present: $home" >&2
        return
    fi
    command -v mvn >/dev/null 2>&1 || die "mvn not found: install maven"
    local t0=$SECONDS
    mkdir -p "$home"
    rm -rf "$home/lib"
    # A pom with one dependency: Maven resolves cassandra-all's runtime tree.
    cat >"$home/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>lakegate.services</groupId>
  <artifactId>cassandra-runtime</artifactId>
  <version>$version</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>$version</version>
    </dependency>
  </dependencies>
</project>
EOF
    echo "resolving org.apache.cassandra:cassandra-all:$version with Maven" >&2
    mvn -q -B -f "$home/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$home/lib" -DincludeScope=runtime >&2 ||
        die "Maven could not resolve cassandra-all:$version"
    ls "$home"/lib/jamm-*.jar >/dev/null 2>&1 || die "no jamm jar among the resolved dependencies"
    touch "$home/lib/.complete"
    echo "cassandra $version installed in $((SECONDS - t0)) s: $home" >&2
}

running_pid() {
    [[ -f $state ]] || return 1
    local dir pid; dir="$(cat "$state")"
    pid="$(cat "$dir/cassandra.pid" 2>/dev/null)" || return 1
    kill -0 "$pid" 2>/dev/null && echo "$pid"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# True once the node answers a CQL OPTIONS request with SUPPORTED (protocol v4):
# the native transport is the last thing Cassandra starts.
cql_ready() {
    python3 - "$1" <<'EOF' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(bytes([0x04, 0, 0, 0, 0x05, 0, 0, 0, 0]))
header = s.recv(9)
sys.exit(0 if len(header) >= 5 and header[0] == 0x84 and header[4] == 0x06 else 1)
EOF
}

# True once user $2 with password $3 can sign in over CQL (SASL PLAIN, protocol v4): with
# PasswordAuthenticator the default superuser is created a moment after CQL answers.
cql_login_ready() {
    python3 - "$1" "$2" "$3" <<'EOF' 2>/dev/null
import socket, struct, sys
port, user, password = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode()
s = socket.create_connection(("127.0.0.1", port), timeout=5)
def request(opcode, body):
    s.sendall(struct.pack(">BBhBi", 0x04, 0, 0, opcode, len(body)) + body)
    header = b""
    while len(header) < 9:
        chunk = s.recv(9 - len(header))
        if not chunk:
            sys.exit(1)
        header += chunk
    _, _, _, op, length = struct.unpack(">BBhBi", header)
    while length > 0:
        chunk = s.recv(length)
        if not chunk:
            sys.exit(1)
        length -= len(chunk)
    return op
string = lambda b: struct.pack(">H", len(b)) + b
# STARTUP -> AUTHENTICATE (0x03), then AUTH_RESPONSE -> AUTH_SUCCESS (0x10).
if request(0x01, struct.pack(">H", 1) + string(b"CQL_VERSION") + string(b"3.0.0")) != 0x03:
    sys.exit(1)
token = b"\0" + user + b"\0" + password
sys.exit(0 if request(0x0F, struct.pack(">i", len(token)) + token) == 0x10 else 1)
EOF
}

write_config() {
    local dir=$1 cql_port=$2 storage_port=$3 auth=$4
    local authenticator=AllowAllAuthenticator authorizer=AllowAllAuthorizer
    if [[ $auth == true ]]; then
        authenticator=PasswordAuthenticator
        authorizer=CassandraAuthorizer
    fi
    cat >"$dir/cassandra.yaml" <<EOF
cluster_name: lakegate-test
num_tokens: 16
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: $storage_port
native_transport_port: $cql_port
start_native_transport: true
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:$storage_port"
data_file_directories:
  - $dir/data
commitlog_directory: $dir/commitlog
saved_caches_directory: $dir/saved_caches
hints_directory: $dir/hints
cdc_raw_directory: $dir/cdc_raw
commitlog_sync: periodic
commitlog_sync_period: 10000ms
commitlog_segment_size: 8MiB
memtable_heap_space: 128MiB
memtable_offheap_space: 128MiB
concurrent_reads: 8
concurrent_writes: 8
concurrent_compactors: 1
authenticator: $authenticator
authorizer: $authorizer
disk_access_mode: mmap_index_only
storage_compatibility_mode: NONE
read_request_timeout: 20000ms
range_request_timeout: 30000ms
write_request_timeout: 10000ms
EOF
    cat >"$dir/logback.xml" <<EOF
<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>$dir/cassandra.log</file>
    <encoder><pattern>%-5level %date{ISO8601} [%thread] %logger{36}: %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>
EOF
}

start() {
    local auth=false
    case "${1:-}" in
        --auth) auth=true ;;
        "") ;;
        *) die "unknown option to start: $1 (known: --auth)" ;;
    esac
    if pid="$(running_pid)"; then die "already running (pid $pid, $(cat "$state")): stop it first"; fi
    check_java
    install
    local t0=$SECONDS dir cql_port storage_port jamm
    dir="$(mktemp -d "${TMPDIR:-/tmp}/lakegate-cassandra.XXXXXX")"
    cql_port="$(free_port)"
    storage_port="$(free_port)"
    while [[ $storage_port == "$cql_port" ]]; do storage_port="$(free_port)"; done
    write_config "$dir" "$cql_port" "$storage_port" "$auth"
    jamm="$(ls "$home"/lib/jamm-*.jar | head -n 1)"
    # The JDK 17 flags are those of Cassandra's own conf/jvm17-server.options;
    # without the module exports and the jamm agent the JVM exits at start-up.
    local jvm=(
        -Xms"$heap" -Xmx"$heap" -Xss512k
        -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1
        -XX:+ExitOnOutOfMemoryError
        -Djava.net.preferIPv4Stack=true
        -Djdk.attach.allowAttachSelf=true
        -javaagent:"$jamm"
        --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
        --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
        --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
        --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
        --add-exports java.sql/java.sql=ALL-UNNAMED
        --add-exports java.base/java.lang.ref=ALL-UNNAMED
        --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
        --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
        --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
        --add-opens java.base/java.lang.module=ALL-UNNAMED
        --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
        --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
        --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
        --add-opens java.base/jdk.internal.math=ALL-UNNAMED
        --add-opens java.base/jdk.internal.module=ALL-UNNAMED
        --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
        --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
        --add-opens java.base/sun.nio.ch=ALL-UNNAMED
        --add-opens java.base/java.io=ALL-UNNAMED
        --add-opens java.base/java.lang.reflect=ALL-UNNAMED
        --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
        --add-opens java.base/java.lang=ALL-UNNAMED
        --add-opens java.base/java.util=ALL-UNNAMED
        -Dio.netty.tryReflectionSetAccessible=true
        -Dcassandra.config="file://$dir/cassandra.yaml"
        -Dcassandra.storagedir="$dir"
        -Dcassandra.logdir="$dir"
        -Dlogback.configurationFile="$dir/logback.xml"
        -Dcassandra-foreground=yes
        # A single node: no gossip to wait for, no ring to settle.
        -Dcassandra.skip_wait_for_gossip_to_settle=0
        -Dcassandra.ring_delay_ms=0
        -Dcassandra.superuser_setup_delay_ms=0
    )
    nohup "$(java_bin)" "${jvm[@]}" -cp "$home/lib/*" org.apache.cassandra.service.CassandraDaemon \
        >"$dir/stdout.log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$dir/cassandra.pid"
    echo "$cql_port" >"$dir/cql.port"
    echo "$dir" >"$state"
    ready() {
        if [[ $auth == true ]]; then cql_login_ready "$cql_port" cassandra cassandra; else cql_ready "$cql_port"; fi
    }
    until ready; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$dir/stdout.log" "$dir/cassandra.log" >&2 2>/dev/null || true
            rm -f "$state"
            die "cassandra exited during start-up (logs: $dir)"
        fi
        if (( SECONDS - t0 >= start_timeout )); then
            tail -n 30 "$dir/cassandra.log" >&2 2>/dev/null || true
            stop
            die "CQL port $cql_port not answering after ${start_timeout} s"
        fi
        sleep 0.5
    done
    echo "cassandra $version ready in $((SECONDS - t0)) s on 127.0.0.1:$cql_port (logs: $dir)" >&2
    printf 'CASSANDRA_CONTACT_POINT=127.0.0.1:%s\nCASSANDRA_PID=%s\nCASSANDRA_DIR=%s\n' "$cql_port" "$pid" "$dir"
    if [[ $auth == true ]]; then
        printf 'CASSANDRA_USER=cassandra\nCASSANDRA_PASSWORD=cassandra\n'
    fi
}

stop() {
    [[ -f $state ]] || { echo "cassandra not running" >&2; return 0; }
    local dir pid; dir="$(cat "$state")"
    if pid="$(cat "$dir/cassandra.pid" 2>/dev/null)" && kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        echo "stopped cassandra (pid $pid)" >&2
    fi
    rm -rf "$dir" "$state"
}

case "${1:-}" in
    install) install ;;
    start) start "${2:-}" ;;
    stop) stop ;;
    status)
        if pid="$(running_pid)"; then
            echo "running: pid $pid, CQL on 127.0.0.1:$(cat "$(cat "$state")/cql.port"), dir $(cat "$state")"
        else
            echo "not running"; exit 1
        fi ;;
    *) echo "usage: $0 install|start [--auth]|stop|status" >&2; exit 2 ;;
esac
