"""Spark's reading of CSV and JSON files: the oracle lakegate's CSV and JSON tables are checked
against.

Reads a JSON list of cases from the file named by the first argument, each
{"format": "csv"|"json", "path": ..., "options": {...}, "schema": "DDL" or null},
and prints one JSON list: per case, {"columns": [[name, category], ...], "rows": [[...], ...]}
with the rows sorted, structs as objects and values as JSON gives them; or {"error": text}.
"""

import json
import sys

from pyspark.sql import SparkSession
from pyspark.sql import types as T

CATEGORIES = [
    ((T.ByteType, T.ShortType, T.IntegerType, T.LongType), "integer"),
    ((T.FloatType, T.DoubleType, T.DecimalType), "float"),
    ((T.StringType,), "string"),
    ((T.BooleanType,), "boolean"),
    ((T.StructType,), "struct"),
    ((T.ArrayType,), "array"),
]


def category(data_type):
    for types, name in CATEGORIES:
        if isinstance(data_type, types):
            return name
    return data_type.simpleString()


def plain(value):
    if hasattr(value, "asDict"):
        return {k: plain(v) for k, v in value.asDict().items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def main():
    cases = json.load(open(sys.argv[1]))
    spark = (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        # lakegate reads partition values found in directory names as strings.
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .getOrCreate()
    )
    results = []
    for case in cases:
        reader = spark.read.format(case["format"]).options(**case["options"])
        if case.get("schema"):
            reader = reader.schema(case["schema"])
        try:
            frame = reader.load(case["path"])
            rows = [[plain(v) for v in row] for row in frame.collect()]
        except Exception as e:  # the oracle's own failure is reported, not raised
            results.append({"error": str(e).splitlines()[0]})
            continue
        rows.sort(key=lambda r: json.dumps(r, sort_keys=True))
        columns = [[f.name, category(f.dataType)] for f in frame.schema.fields]
        results.append({"columns": columns, "rows": rows})
    spark.stop()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
