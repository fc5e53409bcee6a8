#!/usr/bin/env python3
"""Bound values and SQL text keep their meaning, through ADBC (the driver prepares every
statement, so each arrives as CreatePreparedStatement, then its parameters by DoPut).

Each value of --values (one a line, as hex of its UTF-8 bytes) bound to `SELECT ? AS v`
comes back exactly; a bound value that would escape a spliced-in literal matches nothing;
and SQL text with doubled quotes keeps them.

    .venv/bin/python tests/clients/bound_values.py --url grpc://127.0.0.1:PORT --values FILE
"""

import sys

import adbc_driver_flightsql.dbapi as flightsql

from checks import adbc_kwargs, check, client_parser, summary


def main():
    p = client_parser("bound values through ADBC")
    p.add_argument("--values", required=True, help="file of hex-encoded UTF-8 strings, one a line")
    a = p.parse_args()
    with open(a.values) as f:
        values = [bytes.fromhex(line.strip()).decode("utf-8") for line in f if line.strip()]

    conn = flightsql.connect(a.url, db_kwargs=adbc_kwargs(a))
    with conn.cursor() as cur:
        different = []
        for value in values:
            cur.execute("SELECT ? AS v", (value,))
            got = cur.fetchone()[0]
            if got != value:
                different.append((value, got))
        check(f"{len(values)} bound strings came back unchanged", [], different[:5])

        names = "(VALUES ('a'), ('b')) AS t(name)"
        cur.execute(f"SELECT count(*) FROM {names} WHERE name = ?", ("\\' OR 1=1 --",))
        check("a bound \\' OR 1=1 -- matches no row", [(0,)], cur.fetchall())
        cur.execute(f"SELECT count(*) FROM {names} WHERE name = 'x'' OR ''1''=''1'")
        check("a literal with doubled quotes stays one literal", [(0,)], cur.fetchall())
        cur.execute("SELECT 'it''s' AS v, ? AS w", ("?",))
        check("SELECT 'it''s', ? keeps the quote and binds the ?", [("it's", "?")], cur.fetchall())
    conn.close()
    return summary()


if __name__ == "__main__":
    sys.exit(main())
