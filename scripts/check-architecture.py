#!/usr/bin/env python3
"""Checks the module graph of the library (scripts/module_graph.py reads it from src/: every
module, and an edge to each module whose items it names in a `use` or a `crate::`, `super::`,
`self::` path):

1. No cycle between modules.
2. Each layer (a top-level module) imports only from the layers listed for it below, so every
   import points down (README "Layout").
3. The layer order src/lib.rs's doc states is the one this table makes (`--write` rewrites it):
   the table is the one source of truth, the doc is generated from it.

Before the library, the checker checks itself on a small crate made for it, with a cycle through
a re-export, an upward import and paths in comments and strings that name nothing.

Usage: check-architecture.py [--write] [SRC]   (default: src/ of this repository)
"""
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from module_graph import Crate  # noqa: E402

CRATE = "image_gateway"

# Layer -> the layers it may import from (besides itself). lib.rs (the crate root) wires them all.
ALLOWED = {
    "clock": set(),
    "object_name": set(),
    "metrics": set(),
    "config": set(),
    "telemetry": {"config"},
    "content": {"object_name"},
    "storage": {"config", "object_name", "metrics", "clock"},
    "auth": {"config", "object_name", "clock"},
    "kubernetes": {"config", "storage", "auth", "metrics", "clock"},
    "processing": {"config", "object_name", "metrics", "clock"},
    "rate_limit": {"config", "metrics", "clock"},
    "jobs": {"config", "object_name", "metrics", "clock", "storage", "content", "processing"},
    "http": {"config", "storage", "auth", "metrics", "clock", "object_name", "telemetry", "content", "processing",
             "jobs"},
    "api": {"config", "storage", "auth", "metrics", "clock", "object_name", "telemetry", "http", "content", "processing",
            "jobs", "rate_limit"},
    "commands": {"config", "storage", "object_name", "clock"},
}

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


def problems_of(crate: Crate, allowed: dict[str, set[str]]) -> list[str]:
    edges = crate.edges()
    problems = []
    if cycle := find_cycle(edges):
        problems.append("import cycle: " + " -> ".join(cycle))
    for source, targets in sorted(edges.items()):
        src_layer = layer(source)
        if src_layer == "<crate root>":
            continue
        if src_layer not in allowed:
            problems.append(f"module `{source}` is in no layer of the table in {__file__}")
            continue
        for target in sorted(targets):
            dst_layer = layer(target)
            if dst_layer != src_layer and dst_layer not in allowed[src_layer]:
                problems.append(f"`{source}` imports from `{target}` (layer `{dst_layer}`)")
    return problems


SELF_TEST = {
    "lib.rs": "pub mod low;\npub mod high;\n",
    "low.rs": 'mod inner;\npub use inner::Thing;\n/// crate::high::Nothing in a comment\npub const S: &str = "crate::high::X";\n',
    "low/inner.rs": "pub struct Thing(crate::high::Up);\n#[cfg(test)]\nmod tests { use crate::high::Fine; }\n",
    "high.rs": "use crate::low::{self, Thing};\npub struct Up;\n",
}


def self_test() -> None:
    """The checker must see a cycle through a re-export (high -> low::inner -> high) and the
    upward import, and nothing in comments, strings or test modules."""
    with tempfile.TemporaryDirectory() as folder:
        for name, text in SELF_TEST.items():
            (Path(folder) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(folder) / name).write_text(text)
        crate = Crate(Path(folder))
        edges = {(s, t) for s, ts in crate.edges().items() for t in ts}
        expected = {("image_gateway::high", "image_gateway::low"), ("image_gateway::high", "image_gateway::low::inner"),
                    ("image_gateway::low", "image_gateway::low::inner"), ("image_gateway::low::inner", "image_gateway::high")}
        assert edges == expected, f"self-test: edges {sorted(edges)}"
        problems = problems_of(crate, {"low": set(), "high": {"low"}})
        assert any(p.startswith("import cycle") for p in problems), problems
        assert any("`image_gateway::low::inner` imports from `image_gateway::high`" in p for p in problems), problems


# The paragraph of lib.rs's doc that states the layer order: from its first line to its last.
DOC_FIRST = "//! Layers, each importing only from the ones to its left"
DOC_LAST = "holds the exact table and checks it)."


def layer_order(allowed: dict[str, set[str]]) -> list[list[str]]:
    """The layers by rank: a layer's rank is one more than the highest of those it imports."""
    rank: dict[str, int] = {}

    def of(name: str) -> int:
        if name not in rank:
            rank[name] = 1 + max((of(d) for d in allowed[name]), default=-1)
        return rank[name]

    for name in allowed:
        of(name)
    return [sorted(n for n in allowed if rank[n] == r) for r in range(max(rank.values()) + 1)]


def layer_doc(allowed: dict[str, set[str]], width: int = 100) -> list[str]:
    """lib.rs's layer paragraph, wrapped at `width`."""
    ranks = " → ".join(", ".join(f"`{n}`" for n in names) for names in layer_order(allowed))
    text = (f"{DOC_FIRST[4:]}: {ranks}; [`run`] wires them (`scripts/check-architecture.py` "
            f"{DOC_LAST}")
    lines, line = [], "//!"
    for word in text.split(" "):
        if len(line) + 1 + len(word) > width:
            lines.append(line)
            line = "//!"
        line += " " + word
    return lines + [line]


def check_doc(src: Path, write: bool) -> list[str]:
    """Problems with lib.rs's layer paragraph (none after `write`)."""
    lib = src / "lib.rs"
    lines = lib.read_text().split("\n")
    first = next((i for i, line in enumerate(lines) if line.startswith(DOC_FIRST)), None)
    last = next((i for i, line in enumerate(lines) if first is not None and i >= first and line.endswith(DOC_LAST)),
                None)
    if first is None or last is None:
        return [f"{lib}: no paragraph from {DOC_FIRST!r} to {DOC_LAST!r}"]
    wanted = layer_doc(ALLOWED)
    if lines[first:last + 1] == wanted:
        return []
    if write:
        lib.write_text("\n".join(lines[:first] + wanted + lines[last + 1:]))
        return []
    return [f"{lib}: the layer order differs from the table; run scripts/check-architecture.py --write, "
            "or write:\n" + "\n".join(wanted)]


def main(src: Path, write: bool = False) -> int:
    self_test()
    crate = Crate(src)
    count = sum(len(v) for v in crate.edges().values())
    if count == 0:
        print(f"architecture: no import edge found in {src}", file=sys.stderr)
        return 1
    problems = problems_of(crate, ALLOWED) + check_doc(src, write)
    for p in problems:
        print(f"architecture: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"architecture: {len(crate.files)} modules, {count} import edges, no cycle, every import points down")
    return 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--write"]
    sys.exit(main(Path(args[0]) if args else Path(__file__).resolve().parent.parent / "src", "--write" in sys.argv))
