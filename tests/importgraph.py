"""The package's import rules, checked on every module's source: who may import whom, and no cycles.

Why a checker of our own instead of a convention? The book's promise is that chapter N can be read,
run and tested with chapters 0..N alone, and that the ``minidocker`` command is a client of the API
like docker's CLI. Both break silently: one lazy ``from minidocker.network import ...`` inside a
function of chapter 04 and the promise is false without any test failing. So every module of the
package is parsed (``ast``), every import at any depth is an edge (lazy ones in functions, those
under ``if TYPE_CHECKING:`` too), and ``from minidocker.x import y`` where ``y`` is a module is an edge
to ``minidocker.x.y``.

The rules, by the *part* a module belongs to (its first name under ``minidocker``):

- ``core`` imports only ``core``;
- a chapter package (``CHAPTERS``) imports ``core`` and chapters up to its own;
- ``client`` (chapter 11) imports only ``core``: it speaks to the daemon over HTTP, as docker's CLI;
- ``compose`` (chapter 13) imports only ``core`` and ``client``: another client of the API;
- ``desktop`` (chapter 15) imports only ``core``, ``client`` and ``compose``: a client in the browser;
- ``daemon`` is imported by the daemon and by chapters from 12 on, which plug into it
  (``daemon/plugins.py``: the daemon discovers them and never names them); nothing else names it;
  the daemon itself is imported by the daemon only (``minidockerd`` is ``minidocker.daemon.server:main`` and
  ``python -m minidocker.daemon`` its ``__main__``, both inside the package); nothing else names it;
- ``rootfs`` (the busybox root filesystem the book runs) and ``testing`` (fixtures for tests and
  notebooks) import only ``core``, and so stand beside it: a chapter may use them (chapter 06's
  attacks and chapter 07's push need the busybox rootfs, chapter 07's ``images seed`` starts the
  local registry as a program); the client may not;
- ``doctor`` (a host tool) imports ``core`` and the runtime chapters it reports on (01-06);
- ``exercises`` (the teachers' tool, which grades every chapter) imports ``core`` at import time and
  any part but the daemon and the client lazily, inside functions;
- the top-level ``minidocker/__main__.py`` (the ``minidocker`` console script) is the assembler: the
  client, the host tools (``doctor``, ``rootfs``, ``exercises``), chapter 09's registry server,
  chapter 08's ``build`` commands (the context tar), chapter 13's ``compose``, chapter 15's ``desktop``
  and chapter 16's ``trust``, each lazily; never
  the daemon;
- ``minidocker/__init__.py`` imports nothing of ours (``import minidocker`` stays instant);
- no cycle between modules, counting every edge above.

Example::

    >>> graph = ImportGraph.of(Path("minidocker"))
    >>> graph.violations() + graph.cycles()
    []
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

CHAPTERS = {"chroot": 1, "namespaces": 2, "cgroups": 3, "overlay": 4, "network": 5, "security": 6,
            "images": 7, "build": 8, "registry": 9, "daemon": 10, "client": 11,
            "networks": 12, "compose": 13, "oci": 14, "desktop": 15, "trust": 16}
RUNTIME = {name for name, number in CHAPTERS.items() if number <= 6}
CLIENTS = {"compose", "desktop"}  # later chapters that are clients of the API, like the CLI
BESIDE_CORE = {"rootfs", "testing"}  # import only core; any chapter may import them


@dataclass(frozen=True)
class Edge:
    """One import statement's target, where it is, and whether it runs at import time."""

    source: str  # the importing module, dotted
    target: str  # the imported module, dotted (a module of the package, or the package itself)
    line: int
    lazy: bool  # inside a function (runs when called, not at import)
    text: str  # the statement, as written


def _part(module: str) -> str:
    """The part a module is in: ``minidocker.overlay.layers`` -> ``overlay``; the package itself ''."""
    names = module.split(".")
    return names[1] if len(names) > 1 else ""


def _allowed(edge: Edge) -> str | None:
    """The rule ``edge`` breaks, or None: see the module's docstring."""
    mine, theirs = _part(edge.source), _part(edge.target)
    if mine == theirs:
        return None
    if theirs == "":  # ``from minidocker import __version__``: the package imports nothing (next rule)
        return None
    if mine == "":
        return "minidocker/__init__.py imports nothing of ours (import minidocker stays instant)"
    if theirs == "daemon":
        # a later chapter plugs into the daemon (daemon/plugins.py); compose is a client only
        if CHAPTERS.get(mine, 0) >= 12 and mine not in CLIENTS:
            return None
        return "only the daemon imports minidocker.daemon (it is reached over its API)"
    if theirs == "core":
        return None
    if mine == "core":
        return "core imports only core"
    if mine == "compose":  # chapter 13: another client of the API
        if theirs == "client":
            return None
        return "compose imports only core and client (it is a client of the API, like docker compose)"
    if mine == "desktop":  # chapter 15: a client in the browser, which can run Compose projects
        if theirs in ("client", "compose"):
            return None
        return "desktop imports only core, client and compose (a client of the API, like Docker Desktop)"
    if mine == "client":
        return "the client imports only core (it is a client of the API, like docker's CLI)"
    if mine in BESIDE_CORE:
        return f"{mine} imports only core (chapters may import it)"
    if mine in CHAPTERS:
        if theirs in BESIDE_CORE:
            return None
        if theirs not in CHAPTERS:
            return (f"chapter {CHAPTERS[mine]:02} ({mine}) imports only core, rootfs, testing and chapters, "
                    f"not {theirs}")
        if CHAPTERS[theirs] > CHAPTERS[mine]:
            return (f"chapter {CHAPTERS[mine]:02} ({mine}) imports only chapters <= {CHAPTERS[mine]:02}, "
                    f"not chapter {CHAPTERS[theirs]:02} ({theirs})")
        return None
    if mine == "doctor":
        if theirs in RUNTIME:
            return None
        return "doctor imports only core and the runtime chapters 01-06 it reports on"
    if mine == "exercises":
        if theirs == "client":
            return "exercises never import the client"
        if not edge.lazy:
            return "exercises import only core at import time (the chapters lazily, inside functions)"
        return None
    if mine == "__main__":
        if theirs in ("client", "doctor", "rootfs", "exercises", "registry", "build", "compose", "desktop",
                      "trust"):
            return None
        return f"the minidocker command assembles the client and host tools, not {theirs}"
    return f"{mine} is not a part the import rules know (add it to tests/importgraph.py)"


class _Collector(ast.NodeVisitor):
    """Every import statement of one file, with whether it is inside a function."""

    def __init__(self) -> None:
        self.found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []
        self._depth = 0

    def _function(self, node: ast.AST) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import) -> None:
        self.found.append((node, self._depth > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.found.append((node, self._depth > 0))


@dataclass
class ImportGraph:
    """The package's modules (dotted name -> file) and the import edges between them."""

    root: Path  # the package directory (its name is the top-level name)
    files: dict[str, Path] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    @classmethod
    def of(cls, root: Path) -> ImportGraph:
        """Parse every ``*.py`` under ``root`` (recursively) and collect its imports."""
        graph = cls(root)
        for path in sorted(root.rglob("*.py")):
            names = [root.name, *path.relative_to(root).with_suffix("").parts]
            if names[-1] == "__init__":
                names.pop()
            graph.files[".".join(names)] = path
        for module, path in graph.files.items():
            graph.edges += graph._edges_of(module, path)
        return graph

    def _resolve(self, base: str, name: str) -> str:
        """``from base import name``: the submodule ``base.name`` if it exists, else ``base``."""
        return f"{base}.{name}" if f"{base}.{name}" in self.files else base

    def _edges_of(self, module: str, path: Path) -> list[Edge]:
        source = path.read_text()
        collector = _Collector()
        collector.visit(ast.parse(source, str(path)))
        top = self.root.name
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        edges = []
        for node, lazy in collector.found:
            text = ast.get_source_segment(source, node) or ""
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name == top or a.name.startswith(top + ".")]
            else:
                base = node.module or ""
                if node.level:  # relative: from .x import y
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                if base == top or base.startswith(top + "."):
                    targets = [self._resolve(base, a.name) for a in node.names]
            for target in dict.fromkeys(targets):
                edges.append(Edge(module, target, node.lineno, lazy, " ".join(text.split())))
        return edges

    def where(self, edge: Edge) -> str:
        """``minidocker/overlay/layers.py:12`` for an edge's statement."""
        return f"{self.files[edge.source].relative_to(self.root.parent)}:{edge.line}"

    def violations(self) -> list[str]:
        """One line per import that breaks a rule: ``file:line: statement: the rule``."""
        found = []
        for edge in self.edges:
            rule = _allowed(edge)
            if rule:
                found.append(f"{self.where(edge)}: {edge.text}: {rule}")
        return found

    def cycles(self) -> list[str]:
        """One line per import cycle between modules, as a path ``a (file:line) -> b ... -> a``.

        Each strongly connected component of the module graph (Tarjan's algorithm) is one cycle
        reported, walked from its first module back to itself.
        """
        graph: dict[str, dict[str, Edge]] = {m: {} for m in self.files}
        for edge in self.edges:
            if edge.target != edge.source and edge.target in self.files:
                graph[edge.source].setdefault(edge.target, edge)
        found = []
        for component in _components(graph):
            if len(component) > 1:
                found.append(self._walk(graph, sorted(component)[0], component))
        return found

    def _walk(self, graph: dict[str, dict[str, Edge]], start: str, component: set[str]) -> str:
        """The shortest path from ``start`` back to itself inside ``component``, as one line."""
        previous: dict[str, str] = {}
        queue, seen = [start], {start}
        while queue:
            node = queue.pop(0)
            for nxt in sorted(graph[node]):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    path.reverse()
                    pairs = zip(path, [*path[1:], start], strict=True)
                    steps = [f"{a} ({self.where(graph[a][b])})" for a, b in pairs]
                    return "import cycle: " + " -> ".join([*steps, start])
                if nxt in component and nxt not in seen:
                    seen.add(nxt)
                    previous[nxt] = node
                    queue.append(nxt)
        raise AssertionError(f"no cycle through {start}")  # a component of more than one has one


def _components(graph: dict[str, dict[str, Edge]]) -> list[set[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                found.append(component)
    return found
