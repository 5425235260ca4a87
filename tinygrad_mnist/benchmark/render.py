"""The benchmark's tables, as printed on the terminal and as docs/BENCHMARKS.md, from a results dict."""
import numpy as np

from ..loop import ADAM_BETAS, betas
from ..tables import table
from .workers import NO_TORCH

OP_ROUNDS = 2  # per-op rounds: one engine process and one PyTorch process each (A B, then B A)
BWD_METHOD = ("backward: the graph is built once, then `out.backward(grad, retain_graph=True)` is timed with "
              "the inputs' .grad reset to None first, as after zero_grad() in training")


def _spread(values, spec=".3g"):
    """Median, with the min–max range where there are several values."""
    median = format(float(np.median(values)), spec)
    return median if len(values) < 2 else f"{median} ({min(values):{spec}}–{max(values):{spec}})"


MNIST_TRAIN = 60000  # the scaling table's seconds are per epoch of the whole training set

EPOCH_HEADERS = ["model", "batch", "engine ms/step", "torch ms/step", "engine / torch per round", "engine peak MiB",
                 "torch peak MiB", "peak engine / torch", "engine mean loss", "torch mean loss"]
OPS_HEADERS = ["op", "shapes", "engine fwd ms", "torch fwd ms", "fwd engine / torch", "engine bwd ms",
               "torch bwd ms", "bwd engine / torch"]
SCALING_HEADERS = ["engine s/epoch", "torch s/epoch", "engine / torch per round"]


def _per_round(cell, f):
    """f(engine result, torch result) for each round: the two ran back to back under the same load, so
    their ratio is steadier than a ratio of medians, which a change of load between rounds can skew."""
    return [f(a, b) for a, b in zip(cell["engine"], cell["torch"])]


def _ratio(a, b):
    return a / b if b > 0 else float("inf")


def _ms_per_step(r):
    return 1e3 * r["seconds"] / r["steps"]


def epoch_table(epochs):
    rows = []
    for e in epochs:
        ours, theirs = e["engine"], e["torch"]
        cells = [e["model"], e["batch_size"], _spread([_ms_per_step(r) for r in ours])]
        ours_peak = _spread([r["peak_mib"] for r in ours], ".1f")
        ours_loss = f"{np.median([r['loss'] for r in ours]):.4f}"
        if isinstance(theirs, list):
            cells += [_spread([_ms_per_step(r) for r in theirs]),
                      _spread(_per_round(e, lambda a, b: a["seconds"] / b["seconds"]), ".2f"), ours_peak,
                      _spread([r["peak_mib"] for r in theirs], ".1f"),
                      _spread(_per_round(e, lambda a, b: _ratio(a["peak_mib"], b["peak_mib"])), ".2f"), ours_loss,
                      f"{np.median([r['loss'] for r in theirs]):.4f}"]
        else:
            cells += [theirs, "–", ours_peak, theirs, "–", ours_loss, theirs]
        rows.append(cells)
    return table(EPOCH_HEADERS, rows)


def _epoch_seconds(r):
    return r["seconds"] * MNIST_TRAIN / r["samples"]


def scaling_tables(scaling):
    """Two tables: seconds per epoch against the batch size (width ×1), and against the width."""
    def rows(cells, first):
        out = []
        for c in cells:
            row = [first(c), _spread([_epoch_seconds(r) for r in c["engine"]])]
            if isinstance(c["torch"], list):
                row += [_spread([_epoch_seconds(r) for r in c["torch"]]),
                        _spread(_per_round(c, lambda a, b: a["seconds"] / b["seconds"]), ".2f")]
            else:
                row += [c["torch"], "–"]
            out.append(row)
        return out
    by_batch = table(["batch", *SCALING_HEADERS], rows(scaling["batch"], lambda c: c["batch_size"]))
    by_width = table(["width", "conv channels", *SCALING_HEADERS],
                     [[f"×{c['width']}", f"{6 * c['width']}, {16 * c['width']}", *row[1:]]
                      for c, row in zip(scaling["width"], rows(scaling["width"], lambda c: c["width"]))])
    return by_batch, by_width


def scaling_series(scaling):
    """What plots.plot_scaling draws: the median seconds per epoch of each framework along each series."""
    def series(cells, x, title):
        median = lambda c, f: float(np.median([_epoch_seconds(r) for r in c[f]]))  # noqa: E731
        measured = all(isinstance(c["torch"], list) for c in cells)
        return dict(x=[x(c) for c in cells], engine=[median(c, "engine") for c in cells],
                    torch=[median(c, "torch") for c in cells] if measured else None, title=title)
    return dict(batch=series(scaling["batch"], lambda c: c["batch_size"], "against the batch size (width ×1)"),
                width=series(scaling["width"], lambda c: c["width"],
                             f"against the width (batch {scaling['width_batch_size']})"))


def ops_table(ops):
    rows = []
    for r in ops["rows"]:
        cells = [r["op"], r["shapes"]]
        for d in ("fwd", "bwd"):
            if "torch_fwd_ms" in r:
                cells += [f"{r[f'engine_{d}_ms']:.3f}", f"{r[f'torch_{d}_ms']:.3f}",
                          f"{r[f'engine_{d}_ms'] / r[f'torch_{d}_ms']:.2f}"]
            else:
                cells += [f"{r[f'engine_{d}_ms']:.3f}", ops["torch_error"], "–"]
        rows.append(cells)
    return table(OPS_HEADERS, rows)


PROFILE_ROWS = 12


def profile_table(result):
    """The largest entries of one framework's step profile, then the rest, in ms per step."""
    if "error" in result:
        return result["error"]
    rows = result["rows"][:PROFILE_ROWS]
    listed = sum(ms for _, ms in result["rows"])
    other = sum(ms for _, ms in result["rows"][PROFILE_ROWS:])
    cells = [[name, f"{ms:.3f}", f"{100 * ms / result['step_ms']:.0f}%"] for name, ms in rows]
    cells.append([f"{len(result['rows']) - len(rows)} smaller entries", f"{other:.3f}",
                  f"{100 * other / result['step_ms']:.0f}%"])
    rest = max(result["step_ms"] - listed, 0.0)
    cells.append(["rest (not in any entry)", f"{rest:.3f}", f"{100 * rest / result['step_ms']:.0f}%"])
    cells.append(["whole step", f"{result['step_ms']:.3f}", "100%"])
    return table(["entry", "ms/step", "share"], cells)


PRODUCTS_HEADERS = ["model", "batch", "products per step", "GFLOP per step", "products alone ms/step", "GFLOP/s",
                    "engine step ms", "torch step ms", "products alone / torch step"]
PRODUCTS_METHOD = (
    "The engine's matrix products (its Conv2d, Linear and MatMul nodes', forward and backward) as one training "
    "step computes them, in the forms ops.py picks and, for a convolution, in the op's own bands of output rows: "
    "recorded through the tape's op hooks in one more step after the profiled ones, then timed alone in the same "
    "process on random float32 operands of the same shapes and layout, the median of 5 passes over the step's "
    "products. No im2col, no col2im, no other op. Products of one shape share their operands, which may then sit "
    "in cache where the op's would not, so this is at most what the step's products cost. The step times are the "
    "profile's own (profilers' overhead included). The engine's step minus its products is what its copies, "
    "its other ops and Python cost; where the products alone take as long as PyTorch's whole step, no change "
    "to those can bring the engine level: that time is NumPy's BLAS multiplying im2col matrices, where PyTorch "
    "runs its convolutions in oneDNN's kernels.")


def products_table(profile):
    """Per profiled model and batch size, the engine's matrix products alone against both frameworks'
    whole steps; None where no entry has them (a GPU run, or a --json from before they were measured)."""
    rows = []
    for entry in profile:
        products, engine, torch = entry["engine"].get("products"), entry["engine"], entry["torch"]
        if not products:
            continue
        torch_ms = torch.get("step_ms")
        rows.append([entry.get("model", "lenet5"), entry["batch_size"], products["products"],
                     f"{products['gflop']:.3g}", f"{products['ms']:.3g}",
                     f"{products['gflop'] / products['ms'] * 1e3:.0f}" if products["ms"] > 0 else "–",
                     f"{engine['step_ms']:.3g}", "–" if torch_ms is None else f"{torch_ms:.3g}",
                     "–" if torch_ms is None else f"{_ratio(products['ms'], torch_ms):.2f}"])
    return table(PRODUCTS_HEADERS, rows) if rows else None


TIME_TO_TARGET_HEADERS = ["seed", "reached", "seconds since start", "test accuracy", "epoch", "step",
                          "data loaded at s"]


def time_to_target_text(run):
    """One time-to-target run: its recipe, how many seeds reached the target and their median time, and
    a row per seed (its first evaluation at or above the target; else its best, and why it stopped)."""
    target, seeds = run["target"], run["seeds"]
    c = seeds[0]["config"]
    recipe = (f"{c['model']}: {c['epochs']} epoch{'s' if c['epochs'] != 1 else ''} at most, batch {c['batch_size']}, "
              f"{c['optimizer']} lr {c['lr']:g}, "
              + (f"betas ({', '.join(f'{b:g}' for b in betas(c))}), " if betas(c) != ADAM_BETAS else "")
              + f"schedule {c['schedule']}" + (", augmented" if c["augment"] else "")
              + (f", label smoothing {c['label_smoothing']:g}" if c["label_smoothing"] else ""))
    every = seeds[0].get("eval_every")  # absent from the JSON of an older run
    if every is not None:
        recipe += f"; the test set scored {f'every {every} steps and ' if every else ''}at each epoch's end"
    rows, reached = [], []
    for t in seeds:
        r = t["reached"]
        if r:
            reached.append(r)
            rows.append([t["seed"], "yes", f"{r['seconds']:.1f}", f"{100 * r['accuracy']:.2f}%", r["epoch"], r["step"],
                         f"{t['loaded_s']:.1f}"])
        else:
            best = max(t["history"], key=lambda h: h["accuracy"], default=None)
            rows.append([t["seed"], f"no ({t.get('error') or 'all epochs run'})", "–",
                         f"best {100 * best['accuracy']:.2f}%" if best else "–", best["epoch"] if best else "–",
                         best["step"] if best else "–", f"{t['loaded_s']:.1f}"])
    head = f"{len(reached)} of {len(seeds)} seeds reached {100 * target:.2f}% test accuracy"
    if reached:
        head += (f"; median {_spread([r['seconds'] for r in reached], '.1f')} s from process start"
                 + ("" if len(reached) == len(seeds) else " over the seeds that reached it")
                 + f", median test accuracy there {100 * float(np.median([r['accuracy'] for r in reached])):.2f}%")
    return "\n".join([f"Recipe {recipe}.", "", head + ".", "", table(TIME_TO_TARGET_HEADERS, rows)])


def _memory_method(results):
    cells = (results["epochs"] or []) + (results["scaling"] or {}).get("batch", [])
    return next((r["memory_method"] for e in cells for r in e["engine"]), None)


FORMS_HEADERS = ["form", "shapes", "chosen ms", "alternative ms", "alternative / chosen"]


def forms_table(forms):
    return table(FORMS_HEADERS, [[r["form"], r["shapes"], f"{r['chosen_ms']:.3f}", f"{r['alternative_ms']:.3f}",
                                  f"{r['alternative_ms'] / r['chosen_ms']:.2f}"] for r in forms["rows"]])


def _batches(results):
    return ", ".join(map(str, results["settings"]["batch_sizes"]))


def format_results(results):
    """The tables as printed on the terminal."""
    parts = []
    if results["epochs"] is not None:
        parts += ["One training epoch (median of rounds, min–max in brackets):", epoch_table(results["epochs"]),
                  f"Peak memory: {_memory_method(results)}."]
    if results["scaling"] is not None:
        by_batch, by_width = scaling_tables(results["scaling"])
        parts += ["Seconds per epoch of LeNet-5 against the batch size:", by_batch,
                  f"Against the width (batch {results['scaling']['width_batch_size']}):", by_width]
    if results["ops"] is not None:
        parts += ["Per-op timings (median, ms):", ops_table(results["ops"]), f"Forward: the op alone; {BWD_METHOD}."]
    if results["forms"] is not None:
        parts += ["Array forms ops.py chooses between (median, ms):", forms_table(results["forms"])]
    products = products_table(results["profile"] or [])
    if products:
        parts += ["The engine's matrix products alone (ms per step):", products]
    for entry in results["profile"] or []:
        for framework in ("engine", "torch"):
            parts += [f"Where a {entry.get('model', 'lenet5')} training step goes at batch {entry['batch_size']}, "
                      f"{framework} (ms/step):",
                      profile_table(entry[framework])]
    for run in results["time_to_target"] or []:
        parts += [f"Time to {100 * run['target']:.2f}% test accuracy:", time_to_target_text(run)]
    return "\n\n".join(parts)


def render_markdown(results, scaling_plot=None):
    """docs/BENCHMARKS.md, wholly from `results`; `scaling_plot` is the scaling plot's path from the page's folder."""
    m, s = results["machine"], results["settings"]
    load = lambda l: "n/a" if not l else ", ".join(f"{v:.2f}" for v in l)  # noqa: E731, E741
    not_run = "Not measured by the command above."
    lines = [
        "# Benchmarks", "",
        "Generated by this command (with `TINYGRAD_MNIST_DATA` pointing at the MNIST files); do not edit by hand, "
        "rerun it instead:", "",
        "```sh", results["command"], "```", "",
        f"Measured {m.get('date', 'n/a')} on commit {m.get('commit', 'n/a')}.", "",
        "## Machine", "",
        f"- CPU: {m['cpu']}" + "".join(f", {m[key]}" for key in ("cpu_family_model", "simd", "caches") if m.get(key))
        + f"; {m['cores']} cores ({m.get('usable_cores', m['cores'])} usable)",
        f"- Python {m['python']}" + (f" (bytecode cache {m['bytecode_cache']})" if m.get("bytecode_cache") else "")
        + f", NumPy {m['numpy']} with BLAS {m['blas']}"
        + (f" ({m['blas_kernels']} kernels)" if m.get("blas_kernels") else "") + f", PyTorch {m['torch']}",
        f"- Threads: {s['threads']} in both frameworks (OMP/OPENBLAS/MKL_NUM_THREADS set before each worker "
        f"starts, and torch.set_num_threads)",
        f"- Load average (1, 5, 15 min) before: {load(results['load_before'])}; after: {load(results['load_after'])} "
        f"(near or above the core count, other processes shared the CPU: the min–max ranges show what that did)",
        "", "## One training epoch: engine against PyTorch", "",
    ]
    samples = next((r["samples"] for e in (results["epochs"] or []) + (results["scaling"] or {}).get("batch", [])
                    for r in e["engine"]), 0)
    epoch_setup = (f"Each epoch runs in a fresh process: {samples:,} training images, Adam lr {s['lr']:g}, float32, "
                   f"device {s['device']}, {s['threads']} thread(s), the same "
                   f"shuffled order and the same initial weights in both frameworks, after {s['warmup_steps']} "
                   "untimed warm-up steps. Engine and PyTorch alternate (A B, then B A); each ratio is the median "
                   "of the rounds' own engine / torch ratios, each from two epochs run back to back. Peak memory, "
                   f"warm-up included (so PyTorch's one-time initialisation counts): {_memory_method(results)}.")
    if results["epochs"] is None:
        lines += [f"{not_run} Add `--train`."]
    else:
        models = ", ".join(dict.fromkeys(e["model"] for e in results["epochs"]))
        lines += [f"{models}, each as its recipe builds it (dropout included), at batch sizes "
                  f"{_batches(results)}. Each cell is the median of {s['rounds']} rounds (min–max in brackets). "
                  + epoch_setup, "", epoch_table(results["epochs"])]
    lines += ["", "## Scaling: seconds per epoch against the work", ""]
    if results["scaling"] is None:
        lines += [f"{not_run} Add `--scaling`."]
    else:
        by_batch, by_width = scaling_tables(results["scaling"])
        lines += [f"LeNet-5 at batch sizes {', '.join(str(c['batch_size']) for c in results['scaling']['batch'])}, "
                  f"then with ×{', ×'.join(str(c['width']) for c in results['scaling']['width'])} the channels of "
                  f"both convolutions (models.cnn.LeNet5's width) at batch {results['scaling']['width_batch_size']}: "
                  f"seconds per epoch of all 60,000 training images (from the timed epoch, scaled by 60,000 over "
                  f"the images it trained on), median of {s['rounds']} rounds (min–max in brackets). "
                  + epoch_setup, ""]
        if scaling_plot:
            lines += [f"![Seconds per epoch against the batch size and the width]({scaling_plot})", ""]
        lines += [by_batch, "", f"By width, batch {results['scaling']['width_batch_size']}:", "", by_width]
    lines += ["", "## Per-op timings", ""]
    if results["ops"] is None:
        lines += [f"{not_run} Add `--ops`."]
    else:
        lines += [f"LeNet-5's shapes at batch {_batches(results)} (and the MLP's 784→128 layer), median of "
                  f"{s['op_reps']} repetitions after 3 warm-up ones in each of {OP_ROUNDS} rounds; each round times "
                  f"the engine and PyTorch in a process of their own (A B, then B A), so that neither framework's "
                  f"idle BLAS threads spin while the other runs. Forward: the op on inputs that require grad, as in "
                  f"training (graph recording included); {BWD_METHOD}.", "",
                  ops_table(results["ops"])]
    lines += ["", "## Array forms", ""]
    if results["forms"] is None:
        lines += [f"{not_run} It comes with `--ops` on the CPU."]
    else:
        lines += [f"Where ops.py computes one result in a form chosen for OpenBLAS rather than the plain one (see "
                  f"its docstrings), both forms at the shapes named (LeNet-5's, the PyTorch example's conv2, resnet's "
                  f"7×7 conv) at batch {_batches(results)}: the median of "
                  f"{s['op_reps']} repetitions after 3 warm-up ones, the two alternating, in one engine process.", "",
                  forms_table(results["forms"])]
    lines += ["", "## Where a training step's time goes", ""]
    if results["profile"] is None:
        lines += [f"{not_run} Add `--profile`."]
    else:
        steps = next((e[f]["steps"] for e in results["profile"] for f in ("engine", "torch") if "steps" in e[f]), 0)
        profiled = ", ".join(dict.fromkeys(e.get("model", "lenet5") for e in results["profile"]))
        lines += [f"{profiled}: {steps} training steps after {s['warmup_steps']} warm-up ones, at each batch size, "
                  "one process per framework. The engine's ops are timed through the tape's op hooks, forward and "
                  "backward apart (keyed by the op's first input shape); PyTorch's by torch.profiler (each aten "
                  "op's self CPU time). "
                  "\"rest\" is the step's wall time outside every entry: Python, graph bookkeeping, batching, "
                  "and for PyTorch its dispatcher. The profilers add their own overhead, so the whole-step times "
                  "here run above the epoch table's."]
        products = products_table(results["profile"])
        if products:
            lines += ["", "### The engine's matrix products alone", "", PRODUCTS_METHOD, "", products]
        for entry in results["profile"]:
            for framework in ("engine", "torch"):
                lines += ["", f"{entry.get('model', 'lenet5')}, batch {entry['batch_size']}, {framework}:", "",
                          profile_table(entry[framework])]
    lines += ["", "## Time to a test accuracy", ""]
    if results["time_to_target"] is None:
        lines += [f"{not_run} Add `--time-to-99 MODEL --seeds 5` (and `--target 0.995` for 99.5%)."]
    else:
        lines += ["Each seed trains the recipe in a fresh process. Seconds from that process's start (imports "
                  "and data loading included) to its first evaluation on the 10,000 test images at or above the "
                  "target; evaluation time counts. The median is over the seeds that reached the target."]
        for run in results["time_to_target"]:
            lines += ["", f"### {100 * run['target']:.2f}%, {run['model']}", "", time_to_target_text(run)]
    return "\n".join(lines) + "\n"
