"""The gateway's packages import each other in one direction: no module of agent/ or drivers/ reaches itself.

The graph is read from the source with `ast`, imports inside functions and `TYPE_CHECKING` blocks included, so
a cycle cannot hide behind a lazy import; a strongly connected component of more than one module (or a module
importing itself) is a cycle, and the failure names its modules in order. A second check keeps the validation
modules (pydantic) at the edges: the commands that read a config or a profile file, never the agent process.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agent", "drivers")
VALIDATION = ("agent.config_validation", "drivers.profile_validation", "drivers.hj212.profile_validation")
EDGES = ("agent.cli", "agent.setup", "agent.web.app")
"""The modules that may import a validation module: the command line, the first stage of `run`, the web page's
sheet (its own process, which reads the config file as `sheet` does) and the installer's tools (`TOOLS`)."""
TOOLS = "agent.tools."

Graph = dict[str, set[str]]


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(tree: ast.Module, module: str, is_package: bool, known: set[str]) -> Iterator[str]:
    """The known modules an import statement anywhere in the module names: `from a import b` is a.b when b is a
    module, else a; the parent packages Python runs on the way are left out, as each imports nothing back."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                named = f"{base}.{alias.name}"
                if named in known:
                    yield named
                elif base in known:
                    yield base


def import_graph(root: Path = ROOT) -> Graph:
    """Module -> the modules of agent/ and drivers/ it imports."""
    files = {module_name(path, root): path for package in PACKAGES for path in sorted((root / package).rglob("*.py"))}
    known = set(files)
    graph: Graph = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[module] = set(imported_modules(tree, module, path.name == "__init__.py", known))
    return graph


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's components (iterative, so a deep graph cannot hit the recursion limit), each in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def cycle_in(component: list[str], graph: Graph) -> list[str]:
    """One closed path through a component, for the failure message: a -> b -> ... -> a."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        node = frontier.pop(0)
        for successor in sorted(graph[node] & members):
            if successor == start:
                return [*paths[node], start]
            if successor not in paths:
                paths[successor] = [*paths[node], successor]
                frontier.append(successor)
    raise AssertionError(f"{component} is not a cycle")


def is_edge(module: str) -> bool:
    return module in EDGES or module.startswith(TOOLS)


@functools.cache
def repository_graph() -> Graph:
    return import_graph()


def cycles(graph: Graph) -> list[list[str]]:
    components = strongly_connected(graph)
    return [
        cycle_in(component, graph)
        for component in components
        if len(component) > 1 or component[0] in graph[component[0]]
    ]


def test_agent_and_drivers_have_no_import_cycle() -> None:
    """No module of agent/ or drivers/ imports itself through others, lazily or not; the message names the cycle."""
    found = cycles(repository_graph())
    assert found == [], "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in found)


def test_the_finder_names_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    """A cycle closed by an import inside a function, or by a relative import, is found and named in order."""
    package = tmp_path / "agent"
    package.mkdir()
    (tmp_path / "drivers").mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from agent import b\n")
    (package / "b.py").write_text("def late() -> None:\n    from .c import thing\n")
    (package / "c.py").write_text("import agent.a\nthing = 1\n")
    (package / "d.py").write_text("from agent.a import b\n")
    graph = import_graph(tmp_path)
    assert cycles(graph) == [["agent.a", "agent.b", "agent.c", "agent.a"]]


def test_a_module_importing_itself_is_a_cycle(tmp_path: Path) -> None:
    """The smallest cycle, a module naming itself, is reported too."""
    (tmp_path / "agent").mkdir()
    (tmp_path / "drivers").mkdir()
    (tmp_path / "drivers" / "loop.py").write_text("from drivers import loop\n")
    assert cycles(import_graph(tmp_path)) == [["drivers.loop", "drivers.loop"]]


def test_only_the_edges_import_the_validation_modules() -> None:
    """pydantic's modules are imported by the command line, setup and tools, never by what the agent runs."""
    importers = sorted(
        module
        for module, imports in repository_graph().items()
        if imports & set(VALIDATION) and module not in VALIDATION and not is_edge(module)
    )
    assert importers == []


def test_the_agent_process_reaches_no_edge() -> None:
    """Nothing `agent.process` imports, lazily or not, leads to setup, the validation modules or the tools."""
    graph = repository_graph()
    reached: set[str] = set()
    frontier = ["agent.process"]
    while frontier:
        module = frontier.pop()
        if module not in reached:
            reached.add(module)
            frontier.extend(graph[module] - reached)
    assert sorted(module for module in reached if module in VALIDATION or is_edge(module)) == []


def test_the_contract_package_stands_alone() -> None:
    """agent/contract/ (the record types, their bytes and their framing) imports no other part of the agent or of
    the drivers: the ledger, the uplink, the station and the lab's receiver all build on it, never the reverse."""
    outside = sorted(
        f"{module} -> {imported}"
        for module, imports in repository_graph().items()
        if module.startswith("agent.contract")
        for imported in imports
        if not imported.startswith("agent.contract")
    )
    assert outside == []
