#!/usr/bin/env python3
"""The Jupyter path against a running lakegate Flight SQL server.

Uses the ADBC Flight SQL driver's DB-API as a notebook would: DDL and INSERT
through cursor.execute (the driver prepares every statement, so these arrive as
CreatePreparedStatement + CommandPreparedStatementQuery; the final DROP goes
through executescript(), i.e. CommandStatementUpdate), a SELECT read back with
fetch_arrow_table() and fetch_df(), a query with `?` parameters (prepared statement), executemany,
adbc_get_objects() / adbc_get_table_schema() for the catalog, and polars reading
through the same connection. Creates and drops its own table.

    .venv/bin/python tests/clients/adbc_client.py --url grpc://127.0.0.1:PORT \
        --user analyst --password s3cret

Exits 0 when every check passes; otherwise prints what was expected and what
came back, and exits 1.
"""

import sys
import uuid

import adbc_driver_flightsql.dbapi as flightsql
import pandas as pd
import polars as pl
import pyarrow as pa

from checks import FAILURES, adbc_kwargs, check, client_parser, sqlalchemy_url, summary


def main():
    p = client_parser("ADBC Flight SQL client checks")
    a = p.parse_args()

    table = f"lg_adbc_{uuid.uuid4().hex[:10]}"
    qualified = f"default.{table}"
    try:
        conn = flightsql.connect(a.url, db_kwargs=adbc_kwargs(a))
    except Exception as e:
        print(f"[FAIL] connect to {a.url} as {a.user}: {type(e).__name__}: {e}")
        return 1
    created = False
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {qualified} (id INT, name STRING)")
            created = True
            cur.execute(f"INSERT INTO {qualified} VALUES (1, 'alpha'), (2, 'beta'), (3, 'gamma')")
            run_checks(conn, cur, table, qualified)
    except Exception as e:  # a driver error is a failed check, with its text
        print(f"[FAIL] {type(e).__name__}: {e}")
        FAILURES.append(str(e))
    finally:
        try:
            if created:
                with conn.cursor() as cur:
                    # executescript() skips the prepare step: CommandStatementUpdate.
                    cur.executescript(f"DROP TABLE {qualified}")
                print(f"dropped {qualified}")
        except Exception as e:
            print(f"[FAIL] DROP TABLE {qualified}: {e}")
            FAILURES.append("drop table")
        conn.close()
    return summary()


def run_checks(conn, cur, table, qualified):
    rows = [(1, "alpha"), (2, "beta"), (3, "gamma")]

    cur.execute(f"SELECT id, name FROM {qualified} ORDER BY id")
    t = cur.fetch_arrow_table()
    check("SELECT: arrow column types", [pa.int32(), pa.string()], t.schema.types)
    check("SELECT: rows via fetch_arrow_table()", rows, list(zip(*t.to_pydict().values())))

    cur.execute(f"SELECT id, name FROM {qualified} ORDER BY id")
    df = cur.fetch_df()
    check("SELECT: fetch_df() is a pandas DataFrame", True, isinstance(df, pd.DataFrame))
    check("SELECT: rows via fetch_df()", rows, [tuple(r) for r in df.itertuples(index=False)])

    cur.execute(f"SELECT name FROM {qualified} WHERE id >= ? AND name <> ? ORDER BY id", (2, "gamma"))
    check("prepared SELECT with ? parameters", [("beta",)], cur.fetchall())

    cur.executemany(f"INSERT INTO {qualified} VALUES (?, ?)", [(4, "delta"), (5, "epsilon")])
    cur.execute(f"SELECT count(*) AS n, max(name) AS top FROM {qualified}")
    check("executemany INSERT with parameters, then count(*)", [(5, "gamma")], cur.fetchall())

    objects = conn.adbc_get_objects(depth="all", catalog_filter="lakegate", db_schema_filter="default",
                                    table_name_filter=table).read_all().to_pylist()
    found = [
        (c["catalog_name"], s["db_schema_name"], t["table_name"], t["table_type"],
         [col["column_name"] for col in (t["table_columns"] or [])])
        for c in objects for s in (c["catalog_db_schemas"] or []) for t in (s["db_schema_tables"] or [])
    ]
    check("adbc_get_objects(): the table and its columns",
          [("lakegate", "default", table, "TABLE", ["id", "name"])], found)

    schema = conn.adbc_get_table_schema(table, catalog_filter="lakegate", db_schema_filter="default")
    check("adbc_get_table_schema()", pa.schema([("id", pa.int32()), ("name", pa.string())]),
          pa.schema([(f.name, f.type) for f in schema]))

    types = conn.adbc_get_table_types()
    check("adbc_get_table_types() lists TABLE", True, "TABLE" in types)

    info = conn.adbc_get_info()
    print(f"    adbc_get_info: vendor={info.get('vendor_name')!r} version={info.get('vendor_version')!r} "
          f"driver={info.get('driver_name')!r} {info.get('driver_version')!r}")

    frame = pl.read_database(f"SELECT id, name FROM {qualified} WHERE id <= 3 ORDER BY id", connection=conn)
    check("polars.read_database(): dtypes", [pl.Int32, pl.String], frame.dtypes)
    check("polars.read_database(): rows", rows, frame.rows())
    check("polars.from_arrow(fetch_arrow_table())", rows, pl.from_arrow(t).rows())


if __name__ == "__main__":
    sys.exit(main())
