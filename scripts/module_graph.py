"""The library's module graph, read from its source: every module (from `mod` declarations, as
rustc finds their files), and an edge from a module to each module whose items it names (`use`
trees and inline `crate::`/`super::`/`self::` paths), an item re-exported by `pub use` counting
as its defining module's. Test code (`#[cfg(test)]` items) is left out, as rustc leaves it out of
a normal build.

It replaces cargo-modules (rust-analyzer as a library, 12 CPU-minutes to build on a fresh
machine, a fifth of the test command's cold budget) for scripts/check-architecture.py, which
only needs which module names which.
"""
import re
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
MOD_DECL = re.compile(rf"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+({IDENT})\s*;", re.M)
INLINE_MOD = re.compile(rf"(?:pub(?:\([^)]*\))?\s+)?\bmod\s+({IDENT})\s*\{{")
USE = re.compile(r"\b(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);")
INLINE_PATH = re.compile(rf"(?<![A-Za-z0-9_:])(crate|super|self)((?:\s*::\s*{IDENT})+)")


def strip_comments_and_strings(text: str) -> str:
    """The source with comments, string and char literals blanked (paths in them name nothing)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif (m := re.match(r'b?r(#*)"', text[i:])) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = text.find('"' + m.group(1), i + len(m.group(0)))
            i = n if end < 0 else end + 1 + len(m.group(1))
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and (m := re.match(r"'(?:\\.|\\u\{[0-9a-fA-F]+\}|[^\\'])'", text[i:])):
            i += len(m.group(0))
            out.append("' '")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def item_end(text: str, start: int) -> int:
    """Where the item starting at `start` ends: after its `;`, or its balanced `{...}` block."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        elif text[i] == ";" and depth == 0:
            return i + 1
    return len(text)


TEST_CFG = re.compile(r"#\[cfg\((?:test|all\(test\b[^\]]*)\)\]")


def strip_test_items(text: str) -> str:
    """The code without test-only items (`#[cfg(test)]`, `#[cfg(all(test, …))]`)."""
    while (m := TEST_CFG.search(text)):
        text = text[:m.start()] + text[item_end(text, m.end()):]
    return text


def use_paths(tree: str, prefix=()) -> list[tuple[tuple[str, ...], str]]:
    """A `use` tree's leaves: (full path, the name it binds); `self` in a group is the prefix."""
    tree = tree.strip()
    if tree.endswith("}") and "{" in tree:
        head, body = tree[:tree.index("{")], tree[tree.index("{") + 1:-1]
        base = prefix + tuple(s.strip() for s in head.split("::") if s.strip())
        parts, depth, current = [], 0, ""
        for ch in body:
            if ch == "," and depth == 0:
                parts.append(current)
                current = ""
                continue
            depth += (ch == "{") - (ch == "}")
            current += ch
        parts.append(current)
        return [leaf for part in parts if part.strip() for leaf in use_paths(part, base)]
    alias = None
    if " as " in tree:
        tree, alias = (s.strip() for s in tree.split(" as ", 1))
    path = prefix + tuple(s.strip() for s in tree.split("::") if s.strip())
    if path and path[-1] == "self":
        path = path[:-1]
    return [(path, alias or (path[-1] if path else ""))]


class Crate:
    def __init__(self, src: Path):
        self.files: dict[str, Path] = {}  # module path ("image_gateway::api::routes") -> file
        self.code: dict[str, str] = {}
        self._walk("image_gateway", src / "lib.rs", src)
        self.exports = {m: self._exports(m) for m in self.files}

    def _walk(self, module: str, file: Path, folder: Path):
        code = strip_test_items(strip_comments_and_strings(file.read_text(encoding="utf-8")))
        self._module(module, file, code)
        for name in MOD_DECL.findall(self.code[module]):
            child = folder / f"{name}.rs"
            if child.is_file():
                self._walk(f"{module}::{name}", child, folder / name)
            else:
                self._walk(f"{module}::{name}", folder / name / "mod.rs", folder / name)

    def _module(self, module: str, file: Path, code: str):
        """A module's code, its inline `mod name { … }` modules taken out as modules of their own."""
        while (m := INLINE_MOD.search(code)):
            end = item_end(code, m.start())
            self._module(f"{module}::{m.group(1)}", file, code[m.end():end - 1])
            code = code[:m.start()] + code[end:]
        self.files[module] = file
        self.code[module] = code

    def absolute(self, module: str, path: tuple[str, ...]) -> tuple[str, ...] | None:
        """A path as segments from the crate root, or None for another crate's path."""
        here = tuple(module.split("::")[1:])
        if not path:
            return None
        if path[0] == "crate":
            return path[1:]
        if path[0] in ("self", "super"):
            while path and path[0] in ("self", "super"):
                if path[0] == "super":
                    here = here[:-1]
                path = path[1:]
            return here + path
        # A path starting with a child module's name (`use routes::Route` in its parent).
        if "::".join(("image_gateway",) + here + (path[0],)) in self.files:
            return here + path
        return None

    def _exports(self, module: str) -> dict[str, tuple[str, ...]]:
        """Names a module re-exports (`pub use`, any visibility) -> their absolute paths."""
        found = {}
        for visibility, tree in USE.findall(self.code[module]):
            if not visibility:
                continue
            for path, name in use_paths(tree):
                if (absolute := self.absolute(module, path)) is not None:
                    found[name] = absolute
        return found

    def resolve(self, path: tuple[str, ...], seen=()) -> str:
        """The module defining what an absolute path names (through re-exports)."""
        for cut in range(len(path), -1, -1):
            module = "::".join(("image_gateway",) + path[:cut])
            if module in self.files:
                rest = path[cut:]
                if rest and rest[0] in self.exports[module] and (module, rest[0]) not in seen:
                    return self.resolve(self.exports[module][rest[0]] + rest[1:], seen + ((module, rest[0]),))
                return module
        return "image_gateway"

    def edges(self) -> dict[str, set[str]]:
        graph: dict[str, set[str]] = {}
        for module, code in self.code.items():
            paths = []
            for _, tree in USE.findall(code):
                paths += [p for p, _ in use_paths(tree)]
            without_uses = USE.sub("", code)
            paths += [tuple(s.strip() for s in (m.group(1) + m.group(2)).split("::"))
                      for m in INLINE_PATH.finditer(without_uses)]
            for path in paths:
                if (absolute := self.absolute(module, path)) is None:
                    continue
                target = self.resolve(absolute)
                if target != module:
                    graph.setdefault(module, set()).add(target)
        return graph
