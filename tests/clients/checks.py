"""What the client checks share: a check that records failures, and the summary line
the Rust tests look for."""

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
