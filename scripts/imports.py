"""The import graph of the `meetsync` package, from its source (``ast``; nothing is imported):
its circles, and its arrows that run back up the layers below.

    python scripts/imports.py            # summary, circles and back-arrows; exit 1 if any
    python scripts/imports.py --edges    # every module-to-module arrow too

Every module imported at any depth counts (a function-level import is still an arrow), except
under ``if TYPE_CHECKING:``. A module is named by its dotted path; ``webhooks/``, ``worker/``
and ``store/`` sit at the repository's top and are ``meetsync.webhooks`` and so on.

Layers, bottom up: a module may import its own layer and the ones below, never above.
``webhooks`` and ``worker`` are siblings: neither imports the other (they meet at the queue).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOPS = {"webhooks": ROOT / "webhooks", "worker": ROOT / "worker", "store": ROOT / "store"}

# (layer name, module prefixes), bottom up. The first matching prefix wins (longest first).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("meetsync",)),  # meetsync/*.py: events, errors, settings, queue, log, metrics...
    ("dev", ("meetsync.dev",)),  # the Redis and PostgreSQL servers that dev, demo and tests start
    ("store", ("meetsync.store",)),
    ("providers", ("meetsync.providers", "meetsync.simulator")),
    ("webhooks", ("meetsync.webhooks",)),
    ("worker", ("meetsync.worker",)),
    ("cli", ("meetsync.cli", "meetsync.demo")),
    ("face", ()),  # meetsync/__init__.py: the public names, over everything
]
SIBLINGS = {frozenset({"webhooks", "worker"})}


def modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    found: dict[str, Path] = {}
    roots = [(ROOT / "meetsync", "meetsync")] + [(path, f"meetsync.{name}")
                                                 for name, path in TOPS.items()]
    for base, prefix in roots:
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if parts and parts[0] in TOPS and prefix == "meetsync":
                continue  # the symlinks: read once, under their own name
            found[".".join([prefix, *parts])] = path
    return found


def _imports(tree: ast.Module, name: str, is_package: bool) -> Iterator[str]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from package import module` is an arrow to the module, not to the package
            yield from (f"{base}.{alias.name}" for alias in node.names)


def graph() -> dict[str, set[str]]:
    found = modules()
    edges: dict[str, set[str]] = {name: set() for name in found}
    for name, path in found.items():
        tree = ast.parse(path.read_text(), str(path))
        for target in _imports(tree, name, path.name == "__init__.py"):
            # the deepest module of ours that the import names
            while target and target not in found:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges[name].add(target)
    return edges


def layer(module: str) -> int:
    if module == "meetsync":
        return len(LAYERS) - 1
    best, rank = -1, 0
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    return rank


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def back_arrows(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    wrong = []
    for source, targets in edges.items():
        for target in targets:
            a, b = layer(source), layer(target)
            names = frozenset({LAYERS[a][0], LAYERS[b][0]})
            if b > a or (a != b and names in SIBLINGS):
                wrong.append((source, target))
    return sorted(wrong)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edges", action="store_true", help="print every arrow")
    args = parser.parse_args()
    edges = graph()
    found_circles, wrong = circles(edges), back_arrows(edges)
    arrows = sum(len(targets) for targets in edges.values())
    print(f"modules {len(edges)}, arrows {arrows}, circles {len(found_circles)}, "
          f"arrows back up {len(wrong)}")
    for number, component in enumerate(found_circles, 1):
        print(f"circle {number}: " + " <-> ".join(component))
    for source, target in wrong:
        print(f"back up: {source} -> {target} "
              f"({LAYERS[layer(source)][0]} -> {LAYERS[layer(target)][0]})")
    if args.edges:
        for source in sorted(edges):
            for target in sorted(edges[source]):
                print(f"{source} -> {target}")
    return 1 if found_circles or wrong else 0


if __name__ == "__main__":
    sys.exit(main())
