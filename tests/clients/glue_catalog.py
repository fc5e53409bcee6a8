#!/usr/bin/env python3
"""An AWS Glue Data Catalog's other client, for lakegate's Glue catalog tests: boto3 for the
catalog, pyarrow for the files, both against one moto server (Glue and S3 on one endpoint).

    .venv/bin/python tests/clients/glue_catalog.py --endpoint http://127.0.0.1:PORT COMMAND

Commands:
  setup       creates bucket `lake`, database `sales` (at s3://lake/sales.db), the
              partitioned Parquet table `sales.events` (uid bigint, type string; dt string),
              with three days of files written by pyarrow and registered as partitions, and
              the view `sales.clicks` (its clicks' uid and dt)
  totals DB.T per partition the catalog lists: its values, rows and sum of the first column, read by
              pyarrow from the partition's own location; one JSON line [[dt, rows, sum], ...]
  table DB.T  the table as Glue returns it, one JSON line (null when it does not exist)
  clicks      the rows `sales.clicks` holds, from the data `setup` wrote

Credentials are moto's: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are set to "testing".
"""

import argparse
import io
import json
import sys
from urllib.parse import urlparse

import boto3
import pyarrow as pa
import pyarrow.fs
import pyarrow.parquet as pq

PARQUET = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
}
COLUMNS = [{"Name": "uid", "Type": "bigint"}, {"Name": "type", "Type": "string"}]
DAYS = {
    "2024-01-01": [(1, "click"), (2, "view")],
    "2024-01-02": [(3, "click")],
    "2024-01-03": [(4, "it's"), (5, "click")],
}


def clients(endpoint):
    kwargs = dict(endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
    return boto3.client("glue", **kwargs), boto3.client("s3", **kwargs)


def setup(glue, s3):
    s3.create_bucket(Bucket="lake")
    glue.create_database(DatabaseInput={"Name": "sales", "LocationUri": "s3://lake/sales.db"})
    root = "s3://lake/sales.db/events"
    glue.create_table(DatabaseName="sales", TableInput={
        "Name": "events",
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"EXTERNAL": "TRUE", "classification": "parquet"},
        "PartitionKeys": [{"Name": "dt", "Type": "string"}],
        "StorageDescriptor": dict(PARQUET, Columns=COLUMNS, Location=root),
    })
    partitions = []
    for day, rows in DAYS.items():
        table = pa.table({"uid": pa.array([r[0] for r in rows], pa.int64()),
                          "type": pa.array([r[1] for r in rows], pa.string())})
        body = io.BytesIO()
        pq.write_table(table, body)
        s3.put_object(Bucket="lake", Key=f"sales.db/events/dt={day}/part-0.parquet", Body=body.getvalue())
        partitions.append({"Values": [day],
                           "StorageDescriptor": dict(PARQUET, Columns=COLUMNS, Location=f"{root}/dt={day}")})
    glue.batch_create_partition(DatabaseName="sales", TableName="events", PartitionInputList=partitions)
    # A view as Spark on EMR (Glue as its metastore) stores one: its SQL as written.
    clicks = "SELECT uid, dt FROM events WHERE type = 'click'"
    glue.create_table(DatabaseName="sales", TableInput={
        "Name": "clicks",
        "TableType": "VIRTUAL_VIEW",
        "ViewOriginalText": clicks,
        "ViewExpandedText": clicks,
        "StorageDescriptor": {"Columns": [{"Name": "uid", "Type": "bigint"}, {"Name": "dt", "Type": "string"}]},
    })


def totals(glue, endpoint, name):
    database, table = name.split(".")
    parsed = urlparse(endpoint)
    fs = pyarrow.fs.S3FileSystem(endpoint_override=parsed.netloc, scheme=parsed.scheme,
                                 access_key="testing", secret_key="testing", region="us-east-1")
    out = []
    pages = glue.get_paginator("get_partitions").paginate(DatabaseName=database, TableName=table)
    for page in pages:
        for partition in page["Partitions"]:
            location = partition["StorageDescriptor"]["Location"]
            path = location.removeprefix("s3://").rstrip("/")
            # Hadoop's rule, as Spark reads: no file or directory starting with _ or . is data.
            files = [f.path for f in fs.get_file_info(pyarrow.fs.FileSelector(path, recursive=True))
                     if f.is_file and not any(part.startswith(("_", "."))
                                              for part in f.path[len(path):].split("/"))]
            rows, total = 0, 0
            for f in files:
                data = pq.read_table(f, filesystem=fs)
                rows += data.num_rows
                total += sum(v for v in data.column(0).to_pylist() if v is not None)
            out.append([partition["Values"][0], rows, total])
    print(json.dumps(sorted(out)))


def clicks():
    """What `sales.clicks` holds, from the rows `setup` wrote: one JSON line [[uid, dt], ...]."""
    print(json.dumps(sorted([uid, day] for day, rows in DAYS.items() for uid, kind in rows if kind == "click")))


def describe(glue, name):
    database, table = name.split(".")
    try:
        answer = glue.get_table(DatabaseName=database, Name=table)["Table"]
    except glue.exceptions.EntityNotFoundException:
        print("null")
        return
    print(json.dumps(answer, default=str))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", required=True, help="moto's http://127.0.0.1:PORT")
    p.add_argument("command", choices=["setup", "totals", "table", "clicks"])
    p.add_argument("name", nargs="?", help="DB.TABLE for totals and table")
    a = p.parse_args()
    glue, s3 = clients(a.endpoint)
    if a.command == "setup":
        setup(glue, s3)
    elif a.command == "clicks":
        clicks()
    elif a.command == "totals":
        totals(glue, a.endpoint, a.name)
    else:
        describe(glue, a.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
