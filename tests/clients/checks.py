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
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    return p
