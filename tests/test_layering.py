"""Which way the imports run (../STYLE.md's arrows), read from the source: a module that reaches the
wrong way fails here, lazy imports inside functions included."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGINE = {"tensor", "ops", "backend", "autograd"}
# The package's own __init__ re-exports the engine, so importing it counts as importing the engine.
BUILT_ON_THE_ENGINE = ENGINE | {"tinygrad_mnist", "functional", "nn", "optim", "gradcheck"}


def module_files():
    """name → path for every module of the package: "tensor", "benchmark.workers", "models.cnn", ..."""
    files = {}
    for folder, prefix in ((ROOT / "tinygrad_mnist", ""), (ROOT / "models", "models.")):
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = prefix + ".".join(parts) if parts else prefix.rstrip(".") or "tinygrad_mnist"
            files[name] = path
    return files


MODULES = module_files()


def imports(name):
    """The package modules that module `name` imports (directly), by the names MODULES uses."""
    path = MODULES[name]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    if name == "tinygrad_mnist":
        package = []
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [_local(alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                stem = ".".join([*package[:len(package) - node.level + 1], *filter(None, [node.module])])
            else:
                stem = _local(node.module)
            # `from a import b` imports module a.b if there is one, else the name b from module a
            full = [_local(f"{stem}.{alias.name}") if stem else alias.name for alias in node.names]
            targets = [m if m in MODULES else stem for m in full]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


def _local(module):
    return module if module == "tinygrad_mnist" else module.removeprefix("tinygrad_mnist.")


def reachable(name):
    """Every package module that importing `name` runs, itself excluded."""
    seen, todo = set(), [name]
    while todo:
        for target in imports(todo.pop()) - seen:
            seen.add(target)
            todo.append(target)
    return seen - {name}


def test_the_layering_test_sees_the_imports_it_checks():
    assert {"tensor", "ops", "backend", "loop", "benchmark.workers", "models.cnn"} <= set(MODULES)
    assert imports("ops") == {"backend", "tensor"}
    assert {"loop", "optim", "tensor", "checkpoint"} <= imports("training")
    assert {"torch_twin", "loop", "benchmark.measure"} <= imports("benchmark.workers")
    assert imports("models.cnn") == {"nn", "functional"}


@pytest.mark.parametrize("name", sorted(ENGINE))
def test_the_engine_imports_only_the_engine(name):
    assert imports(name) <= ENGINE, imports(name) - ENGINE


@pytest.mark.parametrize("name", ["data", "plots", "checkpoint", "metrics", "report", "tables", "files"])
def test_data_plots_checkpoint_and_metrics_reach_no_engine_module(name):
    assert not reachable(name) & BUILT_ON_THE_ENGINE, reachable(name) & BUILT_ON_THE_ENGINE


def test_the_training_core_is_framework_neutral():
    assert not reachable("loop") & BUILT_ON_THE_ENGINE, reachable("loop") & BUILT_ON_THE_ENGINE


@pytest.mark.parametrize("name", ["plots", "report"])
def test_plots_and_the_report_read_the_run_folder_rather_than_reaching_into_training(name):
    assert not reachable(name) & {"training", "loop", "cli", "models"}


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith("models.")))
def test_models_import_nn_and_functional_only(name):
    assert imports(name) <= {"nn", "functional"}, imports(name)
