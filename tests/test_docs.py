"""The README and docs/ are true as written: every Python snippet runs, every `tinygrad-mnist` command
parses, every command and environment variable is documented, every file a run writes is described."""
import re
import shlex
import sys
from pathlib import Path

import pytest

from tinygrad_mnist import cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]


def blocks(path, language):
    return re.findall(rf"^```{language}\n(.*?)^```", path.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)


def commands(path):
    """Every `tinygrad-mnist ...` command in the file's sh blocks and tables, as argument lists."""
    lines = [line for block in blocks(path, "sh") for line in block.splitlines()]
    lines += [cell for row in path.read_text(encoding="utf-8").splitlines() if row.startswith("| ")
              for cell in re.findall(r"`(tinygrad-mnist [^`]*)`", row)]
    found = []
    for line in lines:
        for part in line.split("&&"):
            words = shlex.split(part, comments=True)
            if words[:1] == ["tinygrad-mnist"]:
                found.append(words[1:])
    return found


@pytest.mark.parametrize("path", [p for p in DOCS if blocks(p, "python")], ids=lambda p: p.name)
def test_every_python_snippet_runs_as_written(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__snippet__"}
    for snippet in blocks(path, "python"):  # in order, sharing names, as a reader would type them
        exec(compile(snippet, f"{path.name} snippet", "exec"), namespace)


def test_the_readme_has_python_snippets_and_commands_to_check():
    assert blocks(README, "python") and len(commands(README)) >= 8


@pytest.mark.parametrize("argv", [argv for path in DOCS for argv in commands(path)], ids=shlex.join)
def test_every_documented_command_parses(argv):
    cli.build_parser().parse_args(argv)  # an unknown option or a bad value exits with status 2


def test_the_readme_shows_every_subcommand():
    shown = {argv[0] for argv in commands(README)}
    parser = cli.build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(subcommands) <= shown, set(subcommands) - shown


def test_each_readme_command_uses_only_run_folders_that_a_command_before_it_made():
    made = set()
    for argv in commands(README):
        out = argv[argv.index("--out") + 1] if argv[0] == "train" and "--out" in argv else None
        for folder in re.findall(r"(?<![\w/])runs/[\w-]+", " ".join(argv[1:])):
            assert folder == out or folder in made, f"{shlex.join(argv)}: no command before it makes {folder}"
        made.add(out)
    assert {"runs/lenet5", "runs/cnn_bn"} <= made


def environment_variables():
    names = set()
    for path in (ROOT / "tinygrad_mnist").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        names.update(re.findall(r"environ(?:\.get)?\(?\[?\"([A-Z_]+)\"", text))
    from tinygrad_mnist.benchmark.workers import THREAD_VARIABLES
    return names | set(THREAD_VARIABLES)


def test_every_environment_variable_is_documented():
    names = environment_variables()
    assert {"TINYGRAD_MNIST_DATA", "TINYGRAD_MNIST_MIRRORS", "TINYGRAD_MNIST_DEVICE"} <= names
    readme = README.read_text(encoding="utf-8")
    assert not {name for name in names if f"`{name}`" not in readme}


def test_every_file_a_run_writes_is_in_the_run_folder_doc(dataset, tmp_path, monkeypatch):
    run = tmp_path / "run"
    assert cli.main(["train", "--model", "lenet5", "--epochs", "1", "--limit-train", "64", "--val-size", "32",
                     "--data-dir", str(dataset), "--out", str(run), "--no-progress", "--no-plots"]) == 0
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # the page without its plots is quicker
    assert cli.main(["report", str(run)]) == 0
    doc = (ROOT / "docs" / "RUN_FOLDER.md").read_text(encoding="utf-8")
    for name in ["plots/", *(path.name for path in run.iterdir())]:  # plots/ unless --no-plots
        assert f"`{name}`" in doc, name


def test_the_readme_op_table_lists_exactly_the_registered_ops():
    from tinygrad_mnist.ops import OPS
    section = README.read_text().split("### The op table")[1]
    listed = section.split("`")[1].split()
    assert sorted(listed) == sorted(OPS)
    assert f"{len(OPS)} ops" in section.split("\n\n")[1]


def _readme_table(header):
    """The rows of the README table whose first header cell is `header`, as lists of cells."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_readme_speed_table_says_what_docs_benchmarks_json_holds():
    """Each cell of the README's speed table is the median engine / PyTorch ratio that docs/BENCHMARKS.md
    shows for that model and batch size (a row naming several models: the range of their medians), so the
    README cannot drift from the measurements."""
    import json

    import numpy as np

    epochs = json.loads((ROOT / "docs" / "benchmarks.json").read_text())["epochs"]
    ratio = {(e["model"], e["batch_size"]): np.median([a["seconds"] / b["seconds"] for a, b in zip(e["engine"], e["torch"])])
             for e in epochs if e.get("width", 1) == 1 and isinstance(e["torch"], list)}
    rows = _readme_table("engine / PyTorch, one epoch")
    assert len(rows) >= 8
    covered = set()
    for model_cell, *cells in rows:
        models = [m.strip() for m in model_cell.split(" (")[0].split(",")]
        for batch, cell in zip((32, 128, 512), cells):
            values = [ratio[(m, batch)] for m in models]
            low, high = f"{min(values):.2f}", f"{max(values):.2f}"
            assert cell == (low if low == high else f"{low}–{high}"), (model_cell, batch, cell, low, high)
            covered.update((m, batch) for m in models)
    assert covered == set(ratio), set(ratio) - covered


def test_the_readme_products_table_says_what_docs_benchmarks_json_holds():
    """Each cell of the README's table of the engine's matrix products alone is the ratio that docs/BENCHMARKS.md
    shows for that model and batch size ("products alone / torch step"), for every profiled model."""
    import json

    profile = json.loads((ROOT / "docs" / "benchmarks.json").read_text())["profile"]
    ratio = {(p["model"], p["batch_size"]): p["engine"]["products"]["ms"] / p["torch"]["step_ms"] for p in profile}
    rows = _readme_table("matrix products alone / PyTorch's whole step")
    cells = {(model, batch): cell for model, *row in rows for batch, cell in zip((32, 128, 512), row)}
    assert cells == {key: f"{value:.2f}" for key, value in ratio.items()}


def test_the_readme_time_to_target_rows_say_what_docs_time_to_99_json_holds():
    """The README's rows "time to 99.0%" and "time to 99.5%", one for each model that docs/TIME_TO_99.md timed,
    name it, how many of its seeds reached the target, and their median and range of seconds, as
    docs/time_to_99.json holds."""
    import json
    import re

    import numpy as np

    runs = json.loads((ROOT / "docs" / "time_to_99.json").read_text())["time_to_target"]
    rows = dict(_readme_table("other figures"))
    assert len([label for label in rows if label.startswith("time to ")]) == len(runs) >= 2
    for run in runs:
        (label, cell), = [row for row in rows.items() if row[0].startswith(f"time to {100 * run['target']:.1f}%")
                          and f"`{run['model']}`" in row[0]]
        seconds = [s["reached"]["seconds"] for s in run["seeds"] if s["reached"]]
        assert cell.startswith(f"{len(seconds)} of {len(run['seeds'])} seeds"), cell
        median, low, high = re.search(r"median ([\d.]+) s \(([\d.]+)–([\d.]+)\)", cell).groups()
        for shown, value in ((median, np.median(seconds)), (low, min(seconds)), (high, max(seconds))):
            decimals = len(shown.split(".")[1]) if "." in shown else 0
            assert shown == f"{value:.{decimals}f}", (cell, shown, value)
