"""The import graph of ltcmh_jax/, experiments/ and benchmarks/: no cycle, and no module imports a
private (`_name`) name of another module, at the top or inside a function."""

import ast
import os

from conftest import ROOT

PACKAGES = ("ltcmh_jax", "experiments", "benchmarks")


def _modules() -> dict[str, str]:
    """`{dotted module name: path}` of every Python file of the project's packages."""
    modules = {}
    for package in PACKAGES:
        for folder, _, names in os.walk(os.path.join(ROOT, package)):
            for name in names:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, ROOT)[: -len(".py")].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imports(name: str, path: str):
    """`(imported module, imported names or None, line)` of each project import in a module."""
    with open(path) as stream:
        tree = ast.parse(stream.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in MODULES:
                yield node.module, [alias.name for alias in node.names], node.lineno


def _edges() -> dict[str, set[str]]:
    """Module -> the project modules it imports (a name that is a submodule counts as that)."""
    edges = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for module, names, _ in _imports(name, path):
            if names is None:
                edges[name].add(module)
                continue
            for imported in names:
                submodule = f"{module}.{imported}"
                # A name that is not a submodule comes from the package's __init__; a submodule
                # reading its own package's re-exports is a cycle, and is reported as one.
                edges[name].add(submodule if submodule in MODULES else module)
    return edges


def test_the_import_graph_has_no_cycle():
    edges = _edges()
    # A package's __init__ importing its own submodules is how re-exports work; what must not
    # happen is a path back from a module to one it imports.
    state, stack, cycles = {}, [], []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target) :] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module)
    assert not cycles, cycles[:3]


def test_no_module_imports_a_private_name_of_another():
    offences = []
    for name, path in MODULES.items():
        for module, names, line in _imports(name, path):
            for imported in names or ():
                if imported.startswith("_") and module != name:
                    offences.append(f"{path}:{line}: {module}.{imported}")
        with open(path) as stream:
            tree = ast.parse(stream.read(), path)
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in MODULES:
                        aliases[alias.asname or alias.name] = alias.name
            elif isinstance(node, ast.ImportFrom) and node.module in MODULES and node.level == 0:
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in MODULES:
                        aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                offences.append(f"{path}:{node.lineno}: {aliases[node.value.id]}.{node.attr}")
    assert not offences, offences


def test_the_checks_see_the_modules_they_should():
    assert {"ltcmh_jax.train.loop", "ltcmh_jax.train", "experiments.main"} <= set(MODULES)
    assert "ltcmh_jax.train.steps" in _edges()["ltcmh_jax.train.compile"]
