"""The package's shape, kept: each layer imports only the layers below it (docs/design.md),
and no function grows past what a reader takes in at once."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "jupyter_repro"
#: what each layer may import from the package; the top-level modules (the adapters) may import anything
BELOW = {
    "run": {"run", "model", "store", "seeding", "values", "errors"},
    "model": {"model", "values", "errors"},
    "store": {"store", "values", "errors"},
    "seeding": {"seeding", "model", "values", "errors"},
    "values": {"values", "errors"},
    "datasets": {"datasets", "errors"},
}
LONGEST = 60  # lines of one function, decorators and docstring included


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, path.relative_to(PACKAGE).with_suffix("").parts


def imported(path, parts):
    """The first name under the package of each package module ``path`` imports (lazily too)."""
    package = list(parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - node.level + 1]
            names = base + (node.module.split(".") if node.module else [])
            if names:
                yield node.lineno, names[0]
            else:  # from . import a, b at the top: modules or names of the package itself
                yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, a.name.split(".")[1]) for a in node.names
                        if a.name.startswith("jupyter_repro."))


def test_each_layer_imports_only_the_layers_below_it():
    wrong = []
    for path, parts in modules():
        layer = parts[0] if len(parts) > 1 else None
        if layer not in BELOW:
            continue
        wrong += [f"{'/'.join(parts)}.py:{line} imports {name}" for line, name in imported(path, parts)
                  if name not in BELOW[layer] and name != "__name__"]
    assert wrong == []


def test_no_function_is_longer_than_a_reader_takes_in():
    long = [f"{'/'.join(parts)}.py:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path, parts in modules() for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > LONGEST]
    assert long == []


@pytest.mark.parametrize("layer", ["run", "model"])
def test_the_twin_a_wrong_import_is_seen(tmp_path, layer):
    """The check can fail: a lower layer reaching up is reported."""
    folder = tmp_path / "values"
    folder.mkdir()
    (folder / "bad.py").write_text(f"from ..{layer}.x import y\n")
    assert [name for _, name in imported(folder / "bad.py", ("values", "bad"))] == [layer]


def test_the_public_names_still_import():
    """What users and other tools import, whatever folder the code lives in."""
    from importlib.metadata import entry_points

    import jupyter_repro
    from jupyter_repro.tracking import MlflowTracker

    assert all(getattr(jupyter_repro, name) for name in jupyter_repro.__all__)
    assert callable(jupyter_repro.load_ipython_extension) and callable(jupyter_repro.unload_ipython_extension)
    assert MlflowTracker.__module__ == "jupyter_repro.tracking"
    (plugin,) = [e for e in entry_points(group="pytest11") if e.value.startswith("jupyter_repro")]
    assert plugin.load().__name__ == "jupyter_repro.pytest_plugin" and hasattr(plugin.load(), "pytest_addoption")
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "jupyter-repro"]
    assert callable(script.load())
