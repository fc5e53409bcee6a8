#!/usr/bin/env bash
# A throw-away Apache Hive standalone metastore (Thrift) on 127.0.0.1, for lakegate's
# Hive metastore tests: Hive 3.1.3 by default, or 4.x (LAKEGATE_HMS_VERSION). The metastore
# comes from Maven Central (org.apache.hive:hive-standalone-metastore for 3.x,
# hive-standalone-metastore-server for 4.x, and its runtime dependencies, with a
# Hadoop 3.3 client and hadoop-aws in place of the Hadoop its poms drag in, and the
# Derby schema scripts taken from the -bin.tar.gz beside it) and runs on JDK 17 with
# embedded Derby; nothing is installed system-wide.
#
#   scripts/services/hive-metastore.sh install  resolve the jars into
#                                               $LAKEGATE_HMS_HOME
#                                               (~/.cache/lakegate/hive-metastore/
#                                               <version>-hadoop<hadoop version>);
#                                               does nothing when they are there
#   scripts/services/hive-metastore.sh start    install, then create a Derby metastore
#                                               in a temp dir (schematool -initSchema),
#                                               start the metastore on a free loopback
#                                               port, wait until its Thrift API answers,
#                                               then print
#                                               HIVE_METASTORE_URI=thrift://127.0.0.1:PORT,
#                                               HIVE_METASTORE_PID=... and
#                                               HIVE_METASTORE_DIR=...
#   scripts/services/hive-metastore.sh stop     stop it (by its pid) and remove the temp dir
#   scripts/services/hive-metastore.sh status
#
# Each instance is recorded in a state file, $LAKEGATE_HMS_STATE
# (~/.cache/lakegate/hive-metastore.state), holding its temp dir; point that variable
# elsewhere to run a second instance beside the first.
#
# The warehouse is $HIVE_METASTORE_DIR/warehouse unless LAKEGATE_HMS_WAREHOUSE says
# otherwise. With LAKEGATE_HMS_S3_ENDPOINT set (e.g. moto_server's http://127.0.0.1:PORT)
# the metastore also reaches S3 through Hadoop's s3a filesystem (path-style, no TLS,
# credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment, never
# written to disk): tables and databases may then have s3a://bucket/... locations (the
# bucket must exist; the metastore creates the directories), and LAKEGATE_HMS_WAREHOUSE
# may be s3a://bucket/warehouse.
#
# Clients: Spark's built-in Hive 2.3 client works with the default 3.1.3 as it is
# (tables are stored as Spark sends them, MANAGED_TABLE included). Hive 4 dropped the
# old Thrift calls (get_table, get_table_objects_by_name) that a Hive 2.3 client makes,
# so against 4.x Spark's built-in client can list and create databases but fails on
# tables with "Invalid method name: 'get_table'"; give Spark
# spark.sql.hive.metastore.version=4.0.1 and spark.sql.hive.metastore.jars=maven (or a
# path to Hive 4.0 client jars). Tables created by clients that declare no capabilities
# (Hive 2/3, Spark) as MANAGED_TABLE are stored by Hive 4 as EXTERNAL_TABLE with
# external.table.purge=true, by its MetastoreDefaultTransformer.
#
# Hive 3.1's standalone metastore needs no hive-exec here: it runs with
# metastore.expression.proxy=DefaultPartitionExpressionProxy, so it answers
# get_partitions_by_filter but not get_partitions_by_expr; and as it has no setting for
# its listening address, a small Java agent, compiled at install (so a JDK is needed,
# javac and jar), binds it to 127.0.0.1.
#
# Settings (environment):
#   LAKEGATE_HMS_VERSION         3.1.3 (Hive 3.x), or 4.0.1 (Hive 4.x)
#   LAKEGATE_HMS_HADOOP_VERSION  3.3.6 (Hive 4.0's own, and it serves Hive 3.1 too;
#                                hadoop-aws 3.3 needs the AWS SDK v1)
#   LAKEGATE_HMS_AWS_SDK_VERSION 1.12.367 (the SDK v1 that hadoop-aws 3.3.6 is built on)
#   LAKEGATE_HMS_HEAP            512M (-Xmx)
#   LAKEGATE_HMS_START_TIMEOUT   180 (seconds until the Thrift API must answer)
#   LAKEGATE_HMS_WAREHOUSE       metastore.warehouse.dir; default file://DIR/warehouse
#   LAKEGATE_HMS_S3_ENDPOINT     unset: no S3; else fs.s3a.endpoint
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY  needed with LAKEGATE_HMS_S3_ENDPOINT
#   AWS_REGION                   fs.s3a.endpoint.region; default us-east-1
#   JAVA                         the java binary, else JAVA_HOME's, else PATH's;
#                                it must be Java 17 (or 11)
set -euo pipefail

version="${LAKEGATE_HMS_VERSION:-3.1.3}"
# Hive 3 and 4 ship the metastore under different names, with schematool in a
# different package.
case $version in
    3.*)
        artifact=hive-standalone-metastore
        schematool_class=org.apache.hadoop.hive.metastore.tools.MetastoreSchemaTool ;;
    4.*)
        artifact=hive-standalone-metastore-server
        schematool_class=org.apache.hadoop.hive.metastore.tools.schematool.MetastoreSchemaTool ;;
    *) echo "hive-metastore.sh: LAKEGATE_HMS_VERSION=$version: only 3.x and 4.x are known" >&2; exit 1 ;;
esac
hadoop_version="${LAKEGATE_HMS_HADOOP_VERSION:-3.3.6}"
aws_sdk_version="${LAKEGATE_HMS_AWS_SDK_VERSION:-1.12.367}"
cache="$HOME/.cache/lakegate"
home="${LAKEGATE_HMS_HOME:-$cache/hive-metastore/$version-hadoop$hadoop_version}"
state="${LAKEGATE_HMS_STATE:-$cache/hive-metastore.state}"
heap="${LAKEGATE_HMS_HEAP:-512M}"
start_timeout="${LAKEGATE_HMS_START_TIMEOUT:-180}"
s3_endpoint="${LAKEGATE_HMS_S3_ENDPOINT:-}"

die() { echo "hive-metastore.sh: $*" >&2; exit 1; }

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
        die "the Hive metastore $version needs Java 17 (or 11), but $java is Java ${major:-unknown}: set JAVA or JAVA_HOME"
}

install() {
    if [[ -f $home/lib/.complete ]]; then
        echo "hive metastore $version present: $home" >&2
        return
    fi
    command -v mvn >/dev/null 2>&1 || die "mvn not found: install maven"
    local t0=$SECONDS
    mkdir -p "$home"
    # (target/ holds the Maven plugin's markers: left there, they stop it unpacking again)
    rm -rf "$home/lib" "$home/scripts" "$home/dist" "$home/target" "$home/agent"
    # The metastore's Hadoop dependencies are optional or provided, and the one that is
    # left (through dropwizard-metrics-hadoop-metrics2-reporter) is Hadoop 2.6, whose
    # hadoop-annotations wants the system-scoped jdk.tools:1.6 (a JDK 8 tools.jar), so
    # Maven stops there. Hence: drop that Hadoop (and jdk.tools, and the shaded
    # hadoop-client-api that orc-shims brings, as Hive's own -bin.tar.gz does), add a
    # Hadoop 3.3 client with hadoop-aws on the slim AWS SDK v1 modules instead of the
    # 280 MB aws-java-sdk-bundle, keep the versions Hive ships where Hadoop's are older,
    # and leave out ZooKeeper's logback (the metastore logs through log4j2). The
    # -bin.tar.gz is only unpacked for schematool's Derby scripts (neither version has
    # them in a jar). Hive 3.1 takes the same pom, with its own pins; there the reporter
    # brings Hadoop 2.2's hadoop-hdfs (which the one below replaces) and log4j 1.2 (left
    # out: log4j-1.2-api stands in).
    managed_versions() {
        if [[ $version == 3.* ]]; then
            # Hive 3.1's commons-lang3 3.2 would win over Hadoop 3.3's 3.12.
            cat <<EOP
      <dependency><groupId>org.apache.commons</groupId><artifactId>commons-lang3</artifactId><version>3.12.0</version></dependency>
EOP
        else
            cat <<EOP
      <dependency><groupId>com.fasterxml.jackson.core</groupId><artifactId>jackson-annotations</artifactId><version>2.16.1</version></dependency>
      <dependency><groupId>commons-cli</groupId><artifactId>commons-cli</artifactId><version>1.5.0</version></dependency>
      <dependency><groupId>commons-io</groupId><artifactId>commons-io</artifactId><version>2.11.0</version></dependency>
      <dependency><groupId>org.apache.zookeeper</groupId><artifactId>zookeeper</artifactId><version>3.8.3</version></dependency>
      <dependency><groupId>org.apache.zookeeper</groupId><artifactId>zookeeper-jute</artifactId><version>3.8.3</version></dependency>
      <dependency><groupId>org.apache.yetus</groupId><artifactId>audience-annotations</artifactId><version>0.12.0</version></dependency>
      <dependency><groupId>io.netty</groupId><artifactId>netty-buffer</artifactId><version>4.1.94.Final</version></dependency>
      <dependency><groupId>io.netty</groupId><artifactId>netty-codec</artifactId><version>4.1.94.Final</version></dependency>
      <dependency><groupId>io.netty</groupId><artifactId>netty-common</artifactId><version>4.1.94.Final</version></dependency>
      <dependency><groupId>io.netty</groupId><artifactId>netty-handler</artifactId><version>4.1.94.Final</version></dependency>
      <dependency><groupId>io.netty</groupId><artifactId>netty-resolver</artifactId><version>4.1.94.Final</version></dependency>
      <dependency><groupId>io.netty</groupId><artifactId>netty-transport</artifactId><version>4.1.94.Final</version></dependency>
      <dependency><groupId>io.netty</groupId><artifactId>netty-transport-native-epoll</artifactId><version>4.1.94.Final</version></dependency>
      <dependency><groupId>io.netty</groupId><artifactId>netty-transport-native-unix-common</artifactId><version>4.1.94.Final</version></dependency>
EOP
        fi
    }
    cat >"$home/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>lakegate.services</groupId>
  <artifactId>hive-metastore-runtime</artifactId>
  <version>$version</version>
  <packaging>pom</packaging>
  <dependencyManagement>
    <dependencies>
$(managed_versions)
    </dependencies>
  </dependencyManagement>
  <dependencies>
    <dependency>
      <groupId>org.apache.hive</groupId>
      <artifactId>$artifact</artifactId>
      <version>$version</version>
      <exclusions>
        <exclusion><groupId>jdk.tools</groupId><artifactId>jdk.tools</artifactId></exclusion>
        <exclusion><groupId>log4j</groupId><artifactId>log4j</artifactId></exclusion>
        <exclusion><groupId>org.apache.hadoop</groupId><artifactId>hadoop-common</artifactId></exclusion>
        <exclusion><groupId>org.apache.hadoop</groupId><artifactId>hadoop-client-api</artifactId></exclusion>
        <exclusion><groupId>ch.qos.logback</groupId><artifactId>logback-classic</artifactId></exclusion>
        <exclusion><groupId>ch.qos.logback</groupId><artifactId>logback-core</artifactId></exclusion>
      </exclusions>
    </dependency>
    <dependency>
      <groupId>org.apache.hadoop</groupId>
      <artifactId>hadoop-common</artifactId>
      <version>$hadoop_version</version>
      <exclusions>
        <exclusion><groupId>jdk.tools</groupId><artifactId>jdk.tools</artifactId></exclusion>
        <exclusion><groupId>log4j</groupId><artifactId>log4j</artifactId></exclusion>
        <exclusion><groupId>ch.qos.reload4j</groupId><artifactId>reload4j</artifactId></exclusion>
        <exclusion><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId></exclusion>
        <exclusion><groupId>org.slf4j</groupId><artifactId>slf4j-log4j12</artifactId></exclusion>
        <exclusion><groupId>ch.qos.logback</groupId><artifactId>logback-classic</artifactId></exclusion>
        <exclusion><groupId>ch.qos.logback</groupId><artifactId>logback-core</artifactId></exclusion>
      </exclusions>
    </dependency>
    <dependency>
      <groupId>org.apache.hadoop</groupId>
      <artifactId>hadoop-hdfs-client</artifactId>
      <version>$hadoop_version</version>
    </dependency>
    <dependency>
      <!-- only the jar, for org.apache.hadoop.hdfs.protocol.SnapshotException, which
           the metastore's MetastoreDefaultTransformer loads on every get_database; its
           own dependencies are a DataNode's (netty-all 4.1.89 among them) -->
      <groupId>org.apache.hadoop</groupId>
      <artifactId>hadoop-hdfs</artifactId>
      <version>$hadoop_version</version>
      <exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion></exclusions>
    </dependency>
    <dependency>
      <groupId>org.apache.hadoop</groupId>
      <artifactId>hadoop-aws</artifactId>
      <version>$hadoop_version</version>
      <exclusions>
        <exclusion><groupId>com.amazonaws</groupId><artifactId>aws-java-sdk-bundle</artifactId></exclusion>
      </exclusions>
    </dependency>
    <dependency>
      <groupId>com.amazonaws</groupId>
      <artifactId>aws-java-sdk-s3</artifactId>
      <version>$aws_sdk_version</version>
    </dependency>
    <dependency>
      <groupId>com.amazonaws</groupId>
      <artifactId>aws-java-sdk-sts</artifactId>
      <version>$aws_sdk_version</version>
    </dependency>
    <dependency>
      <groupId>org.apache.hive</groupId>
      <artifactId>$artifact</artifactId>
      <version>$version</version>
      <classifier>bin</classifier>
      <type>tar.gz</type>
      <exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion></exclusions>
    </dependency>
  </dependencies>
</project>
EOF
    echo "resolving org.apache.hive:$artifact:$version (Hadoop $hadoop_version) with Maven" >&2
    mvn -q -B -f "$home/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$home/lib" -DincludeScope=runtime -DexcludeTypes=tar.gz >&2 ||
        die "Maven could not resolve $artifact:$version"
    mvn -q -B -f "$home/pom.xml" dependency:unpack-dependencies \
        -DoutputDirectory="$home/dist" -DincludeTypes=tar.gz \
        -Dmdep.unpack.includes='*/scripts/metastore/upgrade/derby/**' >&2 ||
        die "Maven could not unpack $artifact-$version-bin.tar.gz"
    # schematool reads its scripts from \$METASTORE_HOME/scripts/metastore/upgrade/derby.
    mv "$home"/dist/*/scripts "$home/scripts"
    rm -rf "$home/dist"
    ls "$home"/scripts/metastore/upgrade/derby/hive-schema-*.derby.sql >/dev/null 2>&1 ||
        die "no Derby schema scripts in $artifact-$version-bin.tar.gz"
    ls "$home"/lib/hadoop-common-*.jar "$home"/lib/derby-*.jar >/dev/null 2>&1 ||
        die "no hadoop-common or derby jar among the resolved dependencies"
    [[ $version != 3.* ]] || build_loopback_agent
    touch "$home/lib/.complete"
    echo "hive metastore $version installed in $((SECONDS - t0)) s: $home" >&2
}

# javac or jar beside the java that runs the metastore, else on PATH.
jdk_tool() {
    local bin; bin="$(dirname "$(readlink -f "$(java_bin)")")"
    if [[ -x $bin/$1 ]]; then echo "$bin/$1"
    else command -v "$1" || die "$1 not found (Hive 3 needs a JDK, not a JRE): install openjdk-17-jdk-headless"
    fi
}

# Hive 3's metastore has no setting for the address it listens on (Hive 4 has
# metastore.thrift.bind.host) and binds to every address. This Java agent, built here with
# the JDK's own copy of ASM, makes it bind to the address given as the agent's argument.
build_loopback_agent() {
    local src="$home/agent/src"
    rm -rf "$home/agent"
    mkdir -p "$src/classes"
    cat >"$src/LoopbackAgent.java" <<'EOF'
import java.lang.instrument.ClassFileTransformer;
import java.lang.instrument.Instrumentation;
import java.security.ProtectionDomain;
import jdk.internal.org.objectweb.asm.ClassReader;
import jdk.internal.org.objectweb.asm.ClassVisitor;
import jdk.internal.org.objectweb.asm.ClassWriter;
import jdk.internal.org.objectweb.asm.MethodVisitor;
import jdk.internal.org.objectweb.asm.Opcodes;

/** Binds Hive 3's metastore to the host given as the agent argument (it has no setting for
 * that and listens on every address): the first argument of SecurityUtils.getServerSocket
 * and getServerSSLSocket, the host to bind, is set to it on entry. */
public class LoopbackAgent {
    static final String TARGET = "org/apache/hadoop/hive/metastore/utils/SecurityUtils";

    public static void premain(String arg, Instrumentation inst) {
        String host = arg == null || arg.isEmpty() ? "127.0.0.1" : arg;
        inst.addTransformer(new ClassFileTransformer() {
            @Override
            public byte[] transform(ClassLoader loader, String name, Class<?> redefined,
                    ProtectionDomain domain, byte[] bytes) {
                if (!TARGET.equals(name)) return null;
                ClassReader reader = new ClassReader(bytes);
                ClassWriter writer = new ClassWriter(reader, 0);
                reader.accept(new ClassVisitor(Opcodes.ASM7, writer) {
                    @Override
                    public MethodVisitor visitMethod(int access, String method, String desc,
                            String signature, String[] exceptions) {
                        MethodVisitor mv = super.visitMethod(access, method, desc, signature, exceptions);
                        boolean bind = (access & Opcodes.ACC_STATIC) != 0
                            && (method.equals("getServerSocket") || method.equals("getServerSSLSocket"))
                            && desc.startsWith("(Ljava/lang/String;I");
                        if (!bind) return mv;
                        return new MethodVisitor(Opcodes.ASM7, mv) {
                            @Override
                            public void visitCode() {
                                super.visitCode();
                                super.visitLdcInsn(host);
                                super.visitVarInsn(Opcodes.ASTORE, 0);
                            }
                        };
                    }
                }, 0);
                System.err.println("loopback agent: the metastore binds to " + host);
                return writer.toByteArray();
            }
        });
    }
}
EOF
    printf 'Premain-Class: LoopbackAgent\n' >"$src/manifest.txt"
    "$(jdk_tool javac)" -nowarn --add-exports java.base/jdk.internal.org.objectweb.asm=ALL-UNNAMED \
        -d "$src/classes" "$src/LoopbackAgent.java" >&2 || die "could not compile the loopback agent"
    "$(jdk_tool jar)" cfm "$home/agent/loopback-agent.jar" "$src/manifest.txt" -C "$src/classes" . ||
        die "could not package the loopback agent"
}

running_pid() {
    [[ -f $state ]] || return 1
    local dir pid; dir="$(cat "$state")"
    pid="$(cat "$dir/metastore.pid" 2>/dev/null)" || return 1
    kill -0 "$pid" 2>/dev/null && echo "$pid"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# True once the metastore answers a Thrift get_all_databases call (binary protocol,
# unframed, as HiveMetaStoreClient speaks it) with a REPLY: the Thrift server is the
# last thing the metastore starts, and a reply means Derby and the schema are usable.
thrift_ready() {
    python3 - "$1" <<'EOF' 2>/dev/null
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
name = b"get_all_databases"
# strict header: version 1 | CALL (1), method name, seqid; then the empty args struct.
s.sendall(struct.pack(">Ii", 0x80010001, len(name)) + name + struct.pack(">i", 1) + b"\x00")
reply = b""
while len(reply) < 4:
    chunk = s.recv(4096)
    if not chunk:
        sys.exit(1)
    reply += chunk
# Close our side and read the rest, so that the server sees an end of stream rather
# than a reset (which it logs as an error).
s.shutdown(socket.SHUT_WR)
while s.recv(4096):
    pass
sys.exit(0 if struct.unpack(">I", reply[:4])[0] == 0x80010002 else 1)
EOF
}

property() { printf '  <property><name>%s</name><value>%s</value></property>\n' "$1" "$2"; }

write_config() {
    local dir=$1 port=$2 warehouse=$3
    mkdir -p "$dir/conf"
    {
        echo '<?xml version="1.0"?>'
        echo '<configuration>'
        property javax.jdo.option.ConnectionURL "jdbc:derby:;databaseName=$dir/metastore_db;create=true"
        property javax.jdo.option.ConnectionDriverName org.apache.derby.jdbc.EmbeddedDriver
        property javax.jdo.option.ConnectionUserName APP
        property javax.jdo.option.ConnectionPassword mine
        property metastore.thrift.bind.host 127.0.0.1
        property metastore.thrift.port "$port"
        property metastore.warehouse.dir "$warehouse"
        property metastore.warehouse.external.dir "$warehouse"
        # schematool made the schema: let the metastore check it, never alter it.
        property metastore.schema.verification true
        property datanucleus.schema.autoCreateAll false
        # A test server: no auth on the notification API, no storage-based
        # authorization, no compactor, housekeeping or metrics threads.
        property hive.metastore.event.db.notification.api.auth false
        property metastore.authorization.storage.checks false
        property metastore.compactor.initiator.on false
        property metastore.compactor.cleaner.on false
        property metastore.housekeeping.threads.on false
        property metastore.metrics.enabled false
        # The default list less the tasks that live in hive-exec (not a metastore jar):
        # left in, their ClassNotFoundException is logged at start (Hive 4's
        # HiveProtoEventsCleanerTask, Hive 3's repl.DumpDirCleanerTask).
        if [[ $version == 3.* ]]; then
            # Hive 3's default, PartitionExpressionForMetastore, is in hive-exec too:
            # without it the metastore does not start. The standalone one serves
            # get_partitions_by_filter but not get_partitions_by_expr.
            property metastore.expression.proxy org.apache.hadoop.hive.metastore.DefaultPartitionExpressionProxy
            property metastore.task.threads.always \
                org.apache.hadoop.hive.metastore.events.EventCleanerTask,org.apache.hadoop.hive.metastore.RuntimeStatsCleanerTask
        else
            property metastore.task.threads.always "$(
                printf 'org.apache.hadoop.hive.metastore.%s,' events.EventCleanerTask RuntimeStatsCleanerTask \
                    metrics.AcidMetricService metrics.AcidMetricLogger ScheduledQueryExecutionsMaintTask \
                    ReplicationMetricsMaintTask | sed 's/,$//')"
        fi
        property metastore.server.min.threads 4
        property metastore.server.max.threads 64
        echo '</configuration>'
    } >"$dir/conf/metastore-site.xml"
    # Hadoop's own settings (FileSystem, s3a) go in core-site.xml, which every Hadoop
    # Configuration loads, the metastore's included.
    {
        echo '<?xml version="1.0"?>'
        echo '<configuration>'
        property hadoop.tmp.dir "$dir/hadoop-tmp"
        if [[ -n $s3_endpoint ]]; then
            property fs.s3a.impl org.apache.hadoop.fs.s3a.S3AFileSystem
            property fs.AbstractFileSystem.s3a.impl org.apache.hadoop.fs.s3a.S3A
            property fs.s3a.endpoint "$s3_endpoint"
            property fs.s3a.endpoint.region "${AWS_REGION:-us-east-1}"
            property fs.s3a.path.style.access true
            property fs.s3a.connection.ssl.enabled false
            property fs.s3a.aws.credentials.provider com.amazonaws.auth.EnvironmentVariableCredentialsProvider
            property fs.s3a.buffer.dir "$dir/s3a-buffer"
            property fs.s3a.attempts.maximum 3
            property fs.s3a.retry.limit 3
        fi
        echo '</configuration>'
    } >"$dir/conf/core-site.xml"
    cat >"$dir/conf/metastore-log4j2.properties" <<EOF
status = WARN
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $dir/metastore.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %-5level %date{ISO8601} [%thread] %logger{36}: %msg%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.datanucleus.name = DataNucleus
logger.datanucleus.level = WARN
EOF
}

start() {
    [[ -z ${1:-} ]] || die "unknown option to start: $1"
    if pid="$(running_pid)"; then die "already running (pid $pid, $(cat "$state")): stop it first"; fi
    if [[ -n $s3_endpoint ]]; then
        [[ -n ${AWS_ACCESS_KEY_ID:-} && -n ${AWS_SECRET_ACCESS_KEY:-} ]] ||
            die "LAKEGATE_HMS_S3_ENDPOINT is set but AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is not"
    fi
    check_java
    install
    local t0=$SECONDS dir port warehouse
    dir="$(mktemp -d "${TMPDIR:-/tmp}/lakegate-hive-metastore.XXXXXX")"
    port="$(free_port)"
    warehouse="${LAKEGATE_HMS_WAREHOUSE:-file://$dir/warehouse}"
    write_config "$dir" "$port" "$warehouse"
    [[ $warehouse == file://* ]] && mkdir -p "${warehouse#file://}"
    local jvm=(
        -Xmx"$heap"
        -XX:+UseSerialGC -XX:TieredStopAtLevel=1
        -XX:+ExitOnOutOfMemoryError
        -Djava.net.preferIPv4Stack=true
        # Hive 4.0 is built for Java 8: DataNucleus and Hadoop reflect into these.
        --add-opens java.base/java.lang=ALL-UNNAMED
        --add-opens java.base/java.util=ALL-UNNAMED
        --add-opens java.base/java.util.concurrent=ALL-UNNAMED
        --add-opens java.base/java.net=ALL-UNNAMED
        --add-opens java.base/java.nio=ALL-UNNAMED
        --add-opens java.base/sun.nio.ch=ALL-UNNAMED
        --add-opens java.sql/java.sql=ALL-UNNAMED
        -Dlog4j.configurationFile="$dir/conf/metastore-log4j2.properties"
        -Dderby.system.home="$dir"
        -Dderby.stream.error.file="$dir/derby.log"
        -Djava.io.tmpdir="$dir"
    )
    # Hive 3 listens on 127.0.0.1 only through the loopback agent (see build_loopback_agent).
    local agent=()
    if [[ $version == 3.* ]]; then
        agent=(-javaagent:"$home/agent/loopback-agent.jar=127.0.0.1"
            --add-exports java.base/jdk.internal.org.objectweb.asm=ALL-UNNAMED)
    fi
    # conf/ first on the class path: metastore-site.xml and core-site.xml are found there.
    local cp="$dir/conf:$home/lib/*"
    echo "$dir" >"$state"
    (cd "$dir" && METASTORE_HOME="$home" "$(java_bin)" "${jvm[@]}" -cp "$cp" \
        "$schematool_class" \
        -initSchema -dbType derby >"$dir/schematool.log" 2>&1 </dev/null) || {
        tail -n 30 "$dir/schematool.log" "$dir/metastore.log" >&2 2>/dev/null || true
        rm -f "$state"
        die "schematool -initSchema failed (logs: $dir)"
    }
    echo "hive metastore schema created in $((SECONDS - t0)) s" >&2
    (cd "$dir" && METASTORE_HOME="$home" exec nohup "$(java_bin)" "${jvm[@]}" "${agent[@]}" -cp "$cp" \
        org.apache.hadoop.hive.metastore.HiveMetaStore -p "$port" \
        >"$dir/stdout.log" 2>&1 </dev/null) &
    local pid=$!
    echo "$pid" >"$dir/metastore.pid"
    echo "$port" >"$dir/thrift.port"
    until thrift_ready "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$dir/stdout.log" "$dir/metastore.log" >&2 2>/dev/null || true
            rm -f "$state"
            die "the metastore exited during start-up (logs: $dir)"
        fi
        if (( SECONDS - t0 >= start_timeout )); then
            tail -n 30 "$dir/stdout.log" "$dir/metastore.log" >&2 2>/dev/null || true
            stop
            die "Thrift port $port not answering after ${start_timeout} s"
        fi
        sleep 0.5
    done
    if [[ $version == 3.* ]] && ! grep -q '^loopback agent: the metastore binds to' "$dir/stdout.log"; then
        stop
        die "the loopback agent did not rewrite Hive $version's SecurityUtils: it listened on every address"
    fi
    echo "hive metastore $version ready in $((SECONDS - t0)) s on 127.0.0.1:$port (logs: $dir)" >&2
    printf 'HIVE_METASTORE_URI=thrift://127.0.0.1:%s\nHIVE_METASTORE_PID=%s\nHIVE_METASTORE_DIR=%s\n' "$port" "$pid" "$dir"
}

stop() {
    [[ -f $state ]] || { echo "hive metastore not running" >&2; return 0; }
    local dir pid; dir="$(cat "$state")"
    if pid="$(cat "$dir/metastore.pid" 2>/dev/null)" && kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        echo "stopped hive metastore (pid $pid)" >&2
    fi
    rm -rf "$dir" "$state"
}

case "${1:-}" in
    install) install ;;
    start) start "${2:-}" ;;
    stop) stop ;;
    status)
        if pid="$(running_pid)"; then
            echo "running: pid $pid, Thrift on 127.0.0.1:$(cat "$(cat "$state")/thrift.port"), dir $(cat "$state")"
        else
            echo "not running"; exit 1
        fi ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
