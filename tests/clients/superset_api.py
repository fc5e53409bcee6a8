#!/usr/bin/env python3
"""lakegate as a database in a running Apache Superset, through Superset's REST API.

Creates its own table in lakegate (ADBC, CommandStatementUpdate), then in
Superset: logs in, gets a CSRF token, adds a database with sqlalchemy_uri
`datafusion://USER:PASSWORD@HOST:PORT?insecure=True` (flightsql-dbapi's
dialect, installed in Superset's venv), checks the schema list, table list and
table metadata Superset shows, runs a SQL Lab query and checks its rows. Removes
the Superset database and drops the table at the end.

    eval "$(scripts/services/superset.sh start)"
    .venv/bin/python tests/clients/superset_api.py --url grpc://127.0.0.1:PORT \
        --user analyst --password s3cret --superset "$SUPERSET_URL" \
        --superset-user "$SUPERSET_USER" --superset-password "$SUPERSET_PASSWORD"
    scripts/services/superset.sh stop

With --chart SQL --expect JSON, it only adds the database and runs that query in
SQL Lab, checking its rows. With --cache-table TABLE too (an existing lakegate table
over PostgreSQL), it walks through caching, as an analyst would in SQL Lab: --phase cache runs
`CACHE TABLE TABLE` there and then the chart query; --phase cached (run after
the test stopped PostgreSQL) runs only the chart query. Both check its rows
against --expect (JSON). The Superset database is added with DML allowed,
as for any statement that is not a query.

Exits 0 when every check passes; otherwise prints what was expected and what
came back, and exits 1.
"""

import json
import sys
import uuid
from urllib.parse import quote, urlparse

import adbc_driver_flightsql.dbapi as flightsql
import requests

from checks import FAILURES, adbc_kwargs, check, client_parser, sqlalchemy_url, summary


class Superset:
    def __init__(self, base, user, password):
        self.base = base.rstrip("/")
        self.s = requests.Session()
        r = self.s.post(f"{self.base}/api/v1/security/login", timeout=60,
                        json={"username": user, "password": password, "provider": "db", "refresh": True})
        r.raise_for_status()
        self.s.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        r = self.s.get(f"{self.base}/api/v1/security/csrf_token/", timeout=60)
        r.raise_for_status()
        self.s.headers.update({"X-CSRFToken": r.json()["result"], "Referer": self.base})

    def call(self, method, path, **kw):
        r = self.s.request(method, f"{self.base}{path}", timeout=120, **kw)
        try:
            body = r.json()
        except ValueError:
            body = r.text
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> HTTP {r.status_code}: {json.dumps(body)[:2000]}")
        return body


def main():
    p = client_parser("Superset REST API checks against lakegate")
    p.add_argument("--superset", required=True, help="http://127.0.0.1:PORT")
    p.add_argument("--superset-user", default="admin")
    p.add_argument("--superset-password", default="admin")
    p.add_argument("--cache-table", help="walk through CACHE TABLE on this table instead")
    p.add_argument("--phase", choices=["cache", "cached"], default="cache")
    p.add_argument("--chart", help="only run this chart query in SQL Lab (after --cache-table's CACHE TABLE)")
    p.add_argument("--expect", help="the chart query's rows, as a JSON list of objects")
    a = p.parse_args()
    if a.chart:
        return chart_walkthrough(a)

    table = f"lg_superset_{uuid.uuid4().hex[:10]}"
    qualified = f"default.{table}"
    try:
        conn = flightsql.connect(a.url, db_kwargs=adbc_kwargs(a), autocommit=True)
        cur = conn.cursor()
        # executescript(): plain CommandStatementUpdate, no prepare step.
        cur.executescript(f"CREATE TABLE {qualified} (id INT, name STRING)")
    except Exception as e:
        print(f"[FAIL] connect to {a.url} as {a.user} and create {qualified}: {type(e).__name__}: {e}")
        return 1
    db_id = None
    try:
        cur.executescript(f"INSERT INTO {qualified} VALUES (1, 'alpha'), (2, 'beta'), (3, 'gamma')")
        sup = Superset(a.superset, a.superset_user, a.superset_password)
        u = urlparse(a.url)
        uri = sqlalchemy_url(a)
        db_id = sup.call("POST", "/api/v1/database/", json={
            "database_name": f"lakegate-{table}", "sqlalchemy_uri": uri,
            "expose_in_sqllab": True, "allow_run_async": False})["id"]
        print(f"    superset database id {db_id}")
        run_checks(sup, db_id, table, qualified)
    except Exception as e:
        print(f"[FAIL] {type(e).__name__}: {e}")
        FAILURES.append(str(e)[:200])
    finally:
        if db_id is not None:
            try:
                sup.call("DELETE", f"/api/v1/database/{db_id}")
            except Exception as e:
                print(f"[FAIL] deleting the Superset database: {e}")
                FAILURES.append("delete superset database")
        try:
            cur.executescript(f"DROP TABLE {qualified}")
            print(f"dropped {qualified}")
        except Exception as e:
            print(f"[FAIL] DROP TABLE {qualified}: {e}")
            FAILURES.append("drop table")
        cur.close()
        conn.close()
    return summary()


def sql_lab(sup, db_id, sql):
    return sup.call("POST", "/api/v1/sqllab/execute/", json={
        "database_id": db_id, "sql": sql, "schema": "default", "runAsync": False, "queryLimit": 1000,
        "client_id": uuid.uuid4().hex[:10], "tab": "lakegate"})


def chart_walkthrough(a):
    sup = Superset(a.superset, a.superset_user, a.superset_password)
    db_id = sup.call("POST", "/api/v1/database/", json={
        "database_name": f"lakegate-cache-{uuid.uuid4().hex[:10]}", "sqlalchemy_uri": sqlalchemy_url(a),
        "expose_in_sqllab": True, "allow_run_async": False, "allow_dml": True})["id"]
    try:
        if a.cache_table and a.phase == "cache":
            res = sql_lab(sup, db_id, f"CACHE TABLE {a.cache_table}")
            check(f"SQL Lab: CACHE TABLE {a.cache_table}", "success", res.get("status"))
        res = sql_lab(sup, db_id, a.chart)
        check(f"SQL Lab chart query ({a.phase})", "success", res.get("status"))
        check(f"SQL Lab chart rows ({a.phase})", json.loads(a.expect), res.get("data"))
    except Exception as e:
        print(f"[FAIL] {type(e).__name__}: {e}")
        FAILURES.append(str(e)[:200])
    finally:
        sup.call("DELETE", f"/api/v1/database/{db_id}")
    return summary()


def run_checks(sup, db_id, table, qualified):
    schemas = sup.call("GET", f"/api/v1/database/{db_id}/schemas/")["result"]
    check("Superset lists schema 'default'", True, "default" in schemas)

    q = "(schema_name:default,force:!t)"
    tables = [t["value"] for t in sup.call("GET", f"/api/v1/database/{db_id}/tables/?q={q}")["result"]]
    check(f"Superset lists table {table} in 'default'", True, table in tables)

    meta = sup.call("GET", f"/api/v1/database/{db_id}/table_metadata/?name={table}&schema=default")
    cols = [(c["column_name"] if "column_name" in c else c["name"], c["type"]) for c in meta["columns"]]
    check("Superset table metadata: columns and types", [("id", "INTEGER"), ("name", "TEXT")], cols)

    res = sup.call("POST", "/api/v1/sqllab/execute/", json={
        "database_id": db_id, "sql": f"SELECT id, name FROM {qualified} ORDER BY id",
        "schema": "default", "runAsync": False, "queryLimit": 100,
        "client_id": uuid.uuid4().hex[:10], "tab": "lakegate"})
    check("SQL Lab query status", "success", res.get("status") or res.get("query", {}).get("state"))
    check("SQL Lab columns", ["id", "name"], [c["column_name"] for c in res.get("columns", [])])
    check("SQL Lab rows", [{"id": 1, "name": "alpha"}, {"id": 2, "name": "beta"}, {"id": 3, "name": "gamma"}],
          res.get("data"))


if __name__ == "__main__":
    sys.exit(main())
