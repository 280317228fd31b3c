#!/usr/bin/env python3
"""The README's table of chart values, generated from the `# --` comments in values.yaml.

  python3 scripts/values-table.py           # fails when README.md's table is out of date
  python3 scripts/values-table.py --write   # rewrites the table in README.md
"""
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
VALUES = ROOT / "charts/image-gateway/values.yaml"
README = ROOT / "README.md"
START, END = "<!-- values-table:start -->", "<!-- values-table:end -->"


def table() -> str:
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
            default = json.dumps(value, separators=(", ", ": "))
            rows.append(f"| `{'.'.join(stack)}` | `{default}` | {pending} |")
            pending = None
    return "\n".join(["| value | default | meaning |", "|---|---|---|", *rows])


def main() -> int:
    readme = README.read_text()
    if START not in readme or END not in readme:
        print(f"README.md has no {START} … {END} section", file=sys.stderr)
        return 1
    before, rest = readme.split(START, 1)
    _, after = rest.split(END, 1)
    updated = f"{before}{START}\n{table()}\n{END}{after}"
    if "--write" in sys.argv:
        README.write_text(updated)
        return 0
    if updated != readme:
        print("README.md's values table differs from values.yaml: run python3 scripts/values-table.py --write", file=sys.stderr)
        return 1
    print("README values table matches values.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
