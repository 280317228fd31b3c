#!/usr/bin/env python3
"""Checks the module graph of the library, as cargo-modules prints it (Graphviz `dot`, modules
only: every `use` of an item becomes an edge between the two modules).

1. No cycle between modules (through `uses` edges).
2. Each layer (a top-level module) imports only from the layers listed for it below, so every
   import points down (README "Layout").

cargo-modules' own `--acyclic` cannot do (1): it runs on the unfiltered item graph, where every
`impl T { fn new() -> T }` is a cycle (T owns `new`, `new` uses T).

Usage: check-architecture.py GRAPH.dot
"""
import re
import sys

CRATE = "image_gateway"

# Layer -> the layers it may import from (besides itself). lib.rs (the crate root) wires them all.
ALLOWED = {
    "clock": set(),
    "object_name": set(),
    "metrics": set(),
    "config": set(),
    "telemetry": {"config"},
    "storage": {"config", "object_name", "metrics", "clock"},
    "auth": {"config", "object_name", "clock"},
    "kubernetes": {"config", "storage", "auth", "metrics", "clock"},
    "processing": {"config", "object_name", "metrics", "clock"},
    "rate_limit": {"config", "metrics", "clock"},
    "http": {"config", "storage", "auth", "metrics", "clock", "object_name", "telemetry"},
    "api": {"config", "storage", "auth", "metrics", "clock", "object_name", "telemetry", "http", "processing", "rate_limit"},
    "commands": {"config", "storage", "object_name", "clock"},
}

EDGE = re.compile(r'^\s*"([^"]+)" -> "([^"]+)" \[label="uses"')


def layer(module: str) -> str:
    parts = module.split("::")
    return parts[1] if len(parts) > 1 else "<crate root>"


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def main(path: str) -> int:
    edges: dict[str, set[str]] = {}
    modules = set()
    for line in open(path, encoding="utf-8"):
        if '"mod" node' in line or '"crate" node' in line:
            modules.add(line.split('"')[1])
        m = EDGE.match(line)
        if m and m.group(1) != m.group(2):
            edges.setdefault(m.group(1), set()).add(m.group(2))
    count = sum(len(v) for v in edges.values())
    if count == 0:
        print("architecture: the graph has no `uses` edge; is it cargo-modules output?", file=sys.stderr)
        return 1
    problems = []
    if cycle := find_cycle(edges):
        problems.append("import cycle: " + " -> ".join(cycle))
    for source, targets in sorted(edges.items()):
        src_layer = layer(source)
        if src_layer == "<crate root>":
            continue
        if src_layer not in ALLOWED:
            problems.append(f"module `{source}` is in no layer of the table in {__file__}")
            continue
        for target in sorted(targets):
            dst_layer = layer(target)
            if dst_layer != src_layer and dst_layer not in ALLOWED[src_layer]:
                problems.append(f"`{source}` imports from `{target}` (layer `{dst_layer}`)")
    for p in problems:
        print(f"architecture: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"architecture: {len(modules)} modules, {count} import edges, no cycle, every import points down")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
