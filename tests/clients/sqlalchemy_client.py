#!/usr/bin/env python3
"""The Superset path against a running lakegate Flight SQL server.

flightsql-dbapi's SQLAlchemy dialect (`datafusion://`) is what Superset loads
for a Flight SQL database. This checks what Superset asks of it: the inspector's
schema, table and column listings, table reflection, SQL through an engine
connection (a Core select with a literal, which the dialect inlines), the
DB-API cursor with `?` parameters (a prepared statement), and pandas.read_sql
of a query. Creates and
drops its own table (DDL and INSERT as CommandStatementUpdate).

    .venv/bin/python tests/clients/sqlalchemy_client.py --url grpc://127.0.0.1:PORT \
        --user analyst --password s3cret

Exits 0 when every check passes; otherwise prints what was expected and what
came back, and exits 1.

pandas >= 2.2 only takes SQLAlchemy >= 2 engines in read_sql, and flightsql-dbapi
needs SQLAlchemy < 2, so read_sql gets the engine's DB-API connection, which is
also how Superset runs SQL Lab queries (engine.raw_connection() + cursor).
"""

import sys
import uuid
import warnings
from urllib.parse import quote, urlparse

import pandas as pd
import sqlalchemy as sa

from checks import FAILURES, adbc_kwargs, check, client_parser, sqlalchemy_url, summary


def type_name(t):
    return (t if isinstance(t, type) else type(t)).__name__


def main():
    p = client_parser("flightsql-dbapi / SQLAlchemy client checks")
    a = p.parse_args()
    warnings.filterwarnings("ignore", message=".*SQLAlchemy connectable.*")  # read_sql on a DB-API conn

    u = urlparse(a.url)
    url = sqlalchemy_url(a)
    table = f"lg_sqla_{uuid.uuid4().hex[:10]}"
    qualified = f"default.{table}"

    try:
        engine = sa.create_engine(url)  # the dialect connects (handshake) here
    except Exception as e:
        shown = url.replace(quote(a.password, safe=''), '***') if a.password else url
        print(f"[FAIL] create_engine({shown}): {type(e).__name__}: {e}")
        return 1
    client = engine.raw_connection().connection.client  # flightsql.FlightSQLClient
    created = False
    try:
        client.execute_update(f"CREATE TABLE {qualified} (id INT, name STRING)")
        created = True
        n = client.execute_update(f"INSERT INTO {qualified} VALUES (1, 'alpha'), (2, 'beta'), (3, 'gamma')")
        check("INSERT reports 3 rows", 3, n)
        run_checks(engine, table, qualified)
    except Exception as e:
        print(f"[FAIL] {type(e).__name__}: {e}")
        FAILURES.append(str(e))
    finally:
        if created:
            try:
                client.execute_update(f"DROP TABLE {qualified}")
                print(f"dropped {qualified}")
            except Exception as e:
                print(f"[FAIL] DROP TABLE {qualified}: {e}")
                FAILURES.append("drop table")
        engine.dispose()
    return summary()


def run_checks(engine, table, qualified):
    rows = [(1, "alpha"), (2, "beta"), (3, "gamma")]

    insp = sa.inspect(engine)
    print(f"    dialect: {engine.dialect.name}, server: {engine.dialect.sql_info}")
    schemas = insp.get_schema_names()
    check("inspector.get_schema_names() has 'default'", True, "default" in schemas)
    check(f"inspector.get_table_names('default') has {table}", True, table in insp.get_table_names("default"))
    cols = [(c["name"], type_name(c["type"]), c["nullable"]) for c in insp.get_columns(table, "default")]
    check("inspector.get_columns(): names and SQLAlchemy types",
          [("id", "INTEGER"), ("name", "TEXT")], [c[:2] for c in cols])
    check("dialect.has_table()", True, engine.dialect.has_table(engine.connect(), table, "default"))

    with engine.connect() as conn:
        got = [tuple(r) for r in conn.execute(sa.text(f"SELECT id, name FROM {qualified} ORDER BY id"))]
        check("engine SELECT rows", rows, got)
        # A Core query on the reflected table, as Superset builds for charts. The
        # dialect inlines the literal 2 (text() parameters given at execute time
        # are inlined as NULL by flightsql-dbapi 0.2.2, so none are used here).
        t = sa.Table(table, sa.MetaData(), autoload_with=conn, schema="default")
        got = [tuple(r) for r in conn.execute(sa.select(t.c.name).where(t.c.id == 2))]
        check("Core select() on the reflected table, with a literal", [("beta",)], got)

    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(f"SELECT name FROM {qualified} WHERE id >= ? AND name <> ? ORDER BY id", (2, "gamma"))
        check("DB-API cursor with ? parameters (prepared statement)", [["beta"]], cur.fetchall())
        check("cursor.description names", ["name"], [d[0] for d in cur.description])

        df = pd.read_sql(f"SELECT id, name FROM {qualified} ORDER BY id", raw)
        check("pandas.read_sql(): columns", ["id", "name"], list(df.columns))
        check("pandas.read_sql(): rows", rows, [(int(i), n) for i, n in df.itertuples(index=False)])
    finally:
        raw.close()


if __name__ == "__main__":
    sys.exit(main())
