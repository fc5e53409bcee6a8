"""What the client checks share: their command line, a check that records failures,
and the summary line the Rust tests look for."""

import argparse

FAILURES = []


def check(what, expected, got):
    ok = expected == got
    print(f"[{'ok' if ok else 'FAIL'}] {what}")
    if not ok:
        print(f"    expected: {expected!r}\n    got:      {got!r}")
        FAILURES.append(what)
    return ok


def summary():
    """Prints the outcome; returns the exit status."""
    print("all checks passed" if not FAILURES else f"{len(FAILURES)} check(s) failed: {FAILURES}")
    return 1 if FAILURES else 0


def client_parser(description):
    """The arguments every client check takes: where lakegate is and who signs in."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--url", required=True, help="lakegate, grpc://127.0.0.1:PORT")
    # Without --user, clients connect exactly as the README's no-user URLs say.
    p.add_argument("--user", default="", help="empty: connect with no credentials")
    p.add_argument("--password", default="")
    return p


def adbc_kwargs(a):
    """ADBC's db_kwargs for the arguments: none at all without a user."""
    return {"username": a.user, "password": a.password} if a.user else {}


def sqlalchemy_url(a):
    """flightsql-dbapi's URL: `datafusion://HOST:PORT?insecure=True` without a user, as the
    README writes it."""
    from urllib.parse import quote, urlparse
    u = urlparse(a.url)
    auth = f"{quote(a.user, safe='')}:{quote(a.password, safe='')}@" if a.user else ""
    return f"datafusion://{auth}{u.hostname}:{u.port}?insecure=True"
