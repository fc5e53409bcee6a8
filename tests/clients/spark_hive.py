#!/usr/bin/env python3
"""Spark SQL against a Hive metastore: the writer and reader that lakegate's Hive catalog
is checked against.

Runs each --sql statement in order in one local Spark session with Hive support
(Spark's built-in Hive 2.3 metastore client unless --conf says otherwise), the catalog
being the Thrift metastore at --metastore, and prints per statement one JSON line,
{"sql": ..., "rows": [[...], ...]} (rows as Spark returns them, in its order; values
JSON can't hold as text), or {"sql": ..., "error": "..."} and stops there with exit 1
(with --keep-going it goes on, and still exits 1).

    .venv/bin/python tests/clients/spark_hive.py --metastore thrift://127.0.0.1:PORT \
        --warehouse /tmp/warehouse --sql 'CREATE DATABASE sales' \
        --sql 'SHOW DATABASES' [--conf spark.sql.hive.metastore.version=4.0.1 ...]

--warehouse is spark.sql.warehouse.dir: where Spark puts a database created without a
LOCATION (a path, or a URI such as file:///... or s3a://...).

--s3-endpoint http://127.0.0.1:PORT (moto) gives Spark Hadoop's s3a filesystem on that
endpoint (path-style, no TLS, credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY):
hadoop-aws matching pyspark's Hadoop and the AWS SDK v2 modules it uses (not the 690 MB
bundle), fetched once with Maven into ~/.cache/lakegate/spark-s3a (--fetch-s3a-jars does
only that; scripts/setup.sh runs it).
"""

import argparse
import datetime
import decimal
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from pyspark.sql import SparkSession


def plain(value):
    if hasattr(value, "asDict"):
        return {k: plain(v) for k, v in value.asDict().items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (datetime.date, datetime.datetime, decimal.Decimal)):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return value


HADOOP = "3.5.0"     # pyspark 4.3's hadoop-client-api
AWS_SDK = "2.35.4"   # what hadoop-aws 3.5.0 is built on


def s3a_jars():
    """hadoop-aws and the AWS SDK v2 modules it loads, less what pyspark already ships."""
    home = Path.home() / ".cache/lakegate/spark-s3a" / HADOOP
    lib = home / "lib"
    if not (lib / ".complete").exists():
        home.mkdir(parents=True, exist_ok=True)
        sdk = "".join(
            f"<dependency><groupId>software.amazon.awssdk</groupId><artifactId>{m}</artifactId>"
            f"<version>{AWS_SDK}</version></dependency>"
            for m in ("s3", "s3-transfer-manager", "sts"))
        (home / "pom.xml").write_text(f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>lakegate.tests</groupId><artifactId>spark-s3a</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.hadoop</groupId><artifactId>hadoop-aws</artifactId>
      <version>{HADOOP}</version>
      <exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion></exclusions>
    </dependency>{sdk}
    <dependency><groupId>software.amazon.s3.analyticsaccelerator</groupId>
      <artifactId>analyticsaccelerator-s3</artifactId><version>1.3.1</version>
      <exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion></exclusions>
    </dependency>
  </dependencies>
</project>
""")
        fetched = subprocess.run(["mvn", "-q", "-B", "-f", str(home / "pom.xml"), "dependency:copy-dependencies",
                                  f"-DoutputDirectory={lib}", "-DincludeScope=runtime"],
                                 capture_output=True, text=True)
        if fetched.returncode != 0:
            sys.exit(f"fetching the s3a jars with Maven failed:\n{fetched.stdout}{fetched.stderr}")
        (lib / ".complete").touch()
    import pyspark
    artifact = lambda name: re.sub(r"-\d[\w.]*\.jar$", "", name)
    shipped = {artifact(j.name) for j in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    return sorted(str(j) for j in lib.glob("*.jar")
                  if artifact(j.name) not in shipped and not j.name.startswith(("netty-", "slf4j-")))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--metastore", help="thrift://HOST:PORT")
    p.add_argument("--warehouse", help="spark.sql.warehouse.dir")
    p.add_argument("--sql", action="append", default=[], help="a statement; repeat in order")
    p.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                   help="another Spark setting; repeatable")
    p.add_argument("--keep-going", action="store_true", help="run the rest after an error")
    p.add_argument("--s3-endpoint", help="s3a:// on this S3 endpoint (moto's http://HOST:PORT)")
    p.add_argument("--fetch-s3a-jars", action="store_true",
                   help="only fetch the s3a jars (the test set-up does), and print where they are")
    a = p.parse_args()
    if a.fetch_s3a_jars:
        print(f"s3a jars: {len(s3a_jars())} in {Path.home() / '.cache/lakegate/spark-s3a' / HADOOP}")
        return 0
    if not (a.metastore and a.warehouse):
        p.error("--metastore and --warehouse are required")

    warehouse = a.warehouse
    if "://" not in warehouse:
        warehouse = "file://" + os.path.abspath(warehouse)
    builder = (
        SparkSession.builder.master("local[1]")
        .appName("lakegate-spark-hive")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.warehouse.dir", warehouse)
        # Spark hands spark.hadoop.* to its Hive client's configuration: this is
        # hive.metastore.uris there.
        .config("spark.hadoop.hive.metastore.uris", a.metastore)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
    )
    if a.s3_endpoint:
        s3a = {
            "endpoint": a.s3_endpoint,
            "path.style.access": "true",
            "connection.ssl.enabled": "false",
            "endpoint.region": os.environ.get("AWS_REGION", "us-east-1"),
            "access.key": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            "secret.key": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        }
        builder = builder.config("spark.jars", ",".join(s3a_jars()))
        for key, value in s3a.items():
            builder = builder.config(f"spark.hadoop.fs.s3a.{key}", value)
    for setting in a.conf:
        key, sep, value = setting.partition("=")
        if not sep:
            p.error(f"--conf {setting}: expected KEY=VALUE")
        builder = builder.config(key, value)
    spark = builder.enableHiveSupport().getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")

    failed = False
    for statement in a.sql:
        try:
            rows = [plain(list(row)) for row in spark.sql(statement).collect()]
            print(json.dumps({"sql": statement, "rows": rows}), flush=True)
        except Exception as e:  # reported, not raised: the caller compares the lines
            failed = True
            message = " ".join(str(e).split())[:2000]
            print(json.dumps({"sql": statement, "error": f"{type(e).__name__}: {message}"}),
                  flush=True)
            if not a.keep_going:
                break
    spark.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
