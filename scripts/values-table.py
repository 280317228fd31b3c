#!/usr/bin/env python3
"""values.yaml's `# --` comments are the one description of each chart value: this script
generates the README's table from them and keeps values.schema.json's descriptions equal.

  python3 scripts/values-table.py           # fails when README.md or the schema is out of date
  python3 scripts/values-table.py --write   # rewrites the README table and the schema's descriptions
"""
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
VALUES = ROOT / "charts/image-gateway/values.yaml"
SCHEMA = ROOT / "charts/image-gateway/values.schema.json"
README = ROOT / "README.md"
START, END = "<!-- values-table:start -->", "<!-- values-table:end -->"


def documented():
    """(path, default, description) of every value with a `# --` comment, in file order."""
    values = yaml.safe_load(VALUES.read_text())
    rows, stack, pending = [], [], None
    for line in VALUES.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = stripped[4:].strip()
            continue
        match = re.match(r"^( *)([A-Za-z0-9_]+):", line)
        if not match:
            continue
        depth = len(match.group(1)) // 2
        stack = stack[:depth] + [match.group(2)]
        if pending is not None:
            value = values
            for key in stack:
                value = value[key]
            rows.append((list(stack), value, pending))
            pending = None
    return rows


def table() -> str:
    rows = [f"| `{'.'.join(path)}` | `{json.dumps(default, separators=(', ', ': '))}` | {text} |"
            for path, default, text in documented()]
    return "\n".join(["| value | default | meaning |", "|---|---|---|", *rows])


def schema_node(schema, path):
    node = schema
    for key in path:
        node = node.get("properties", {}).get(key)
        if node is None:
            return None
    return node


def sync_schema(write: bool) -> list:
    """Problems between values.yaml and the schema; with `write`, descriptions are fixed."""
    schema = json.loads(SCHEMA.read_text())
    problems = []
    for path, _, text in documented():
        node = schema_node(schema, path)
        if node is None:
            problems.append(f"{'.'.join(path)} is documented in values.yaml but missing from values.schema.json")
        elif node.get("description") != text:
            if write:
                node["description"] = text
            else:
                problems.append(f"{'.'.join(path)}: the schema's description differs from values.yaml's comment")
    if write:
        SCHEMA.write_text(json.dumps(schema, indent=2) + "\n")
    return problems


def main() -> int:
    write = "--write" in sys.argv
    readme = README.read_text()
    if START not in readme or END not in readme:
        print(f"README.md has no {START} … {END} section", file=sys.stderr)
        return 1
    before, rest = readme.split(START, 1)
    _, after = rest.split(END, 1)
    updated = f"{before}{START}\n{table()}\n{END}{after}"
    problems = sync_schema(write)
    if write:
        README.write_text(updated)
    elif updated != readme:
        problems.append("README.md's values table differs from values.yaml: run python3 scripts/values-table.py --write")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print("README values table and values.schema.json match values.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
