"""Checks that the main crate's modules import one way, as the README's architecture says.

Each top-level module of src/ (and each source folder, src/sources/<kind>/) has a layer; a
module may import its own layer's modules or lower ones, and the imports must have no cycle.
Exits 1 naming every import that breaks the rule.

    python3 scripts/check-layers.py
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

# Higher layers may import lower ones, never the reverse.
LAYERS = {
    "main": 6,
    "config": 5,  # composes every part's own section
    "repl": 5,
    "demo": 5,
    "flight": 5,
    "session": 4,
    "cluster": 3,  # Ballista roles, codecs and planning: over sources and storage
    "access": 3,
    "history": 3,
    "sql": 3,
    "metastore": 3,  # catalogs that live elsewhere: reads through sources
    "write": 2,
    "sources": 1,  # sources/<kind> too
    "storage": 0,
    "output": -1,  # leaves: anything may use them
    "metrics": -1,
    "telemetry": -1,
    "error": -1,
    "lib": 7,
}


def module_of(path: Path) -> str:
    parts = path.relative_to(SRC).parts
    if parts[0] == "sources" and len(parts) > 2:
        return f"sources/{parts[1]}"
    return parts[0].removesuffix(".rs")


def imported(text: str) -> set[str]:
    """The crate modules `text` names: `crate::a::b`, `crate::{a, b::c}`."""
    names = set()
    for match in re.finditer(r"crate::(\{[^}]*\}|[a-z_]+(?:::[a-z_]+)?)", text):
        body = match.group(1)
        items = body.strip("{}").split(",") if body.startswith("{") else [body]
        for item in items:
            path = [p for p in item.strip().split("::") if p]
            if not path or not path[0].islower() or path[0] in ("self",):
                continue
            if path[0] == "sources" and len(path) > 1 and (SRC / "sources" / path[1]).is_dir():
                names.add(f"sources/{path[1]}")
            else:
                names.add(path[0])
    return names


def layer(module: str) -> int:
    return LAYERS[module.split("/")[0]]


def main() -> int:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in sorted(SRC.rglob("*.rs")):
        source = module_of(path)
        # Tests may reach anywhere.
        text = path.read_text().split("#[cfg(test)]")[0]
        for target in imported(text):
            if target != source and target.split("/")[0] in LAYERS:
                edges[source].add(target)
    problems = []
    for source, targets in sorted(edges.items()):
        for target in sorted(targets):
            if layer(target) > layer(source):
                problems.append(f"{source} imports {target}, a higher layer")
    # Cycles within a layer.
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                problems.append("cycle: " + " -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    for source, targets in sorted(edges.items()):
        print(f"{source:18} -> {' '.join(sorted(targets))}")
    if problems:
        print("\n".join(["", "module imports that break the layering:"] + problems), file=sys.stderr)
        return 1
    print("module imports point one way")
    return 0


if __name__ == "__main__":
    sys.exit(main())
