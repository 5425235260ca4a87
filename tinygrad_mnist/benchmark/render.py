"""The benchmark's tables, as printed on the terminal and as docs/BENCHMARKS.md, from a results dict."""
import numpy as np

from ..tables import table
from .workers import NO_TORCH

OP_ROUNDS = 2  # per-op rounds: one engine process and one PyTorch process each (A B, then B A)
BWD_METHOD = ("backward: the graph is built once, then `out.backward(grad, retain_graph=True)` is timed with "
              "the inputs' .grad reset to None first, as after zero_grad() in training")


def _spread(values, spec=".3g"):
    """Median, with the min–max range where there are several values."""
    median = format(float(np.median(values)), spec)
    return median if len(values) < 2 else f"{median} ({min(values):{spec}}–{max(values):{spec}})"


EPOCH_HEADERS = ["model", "engine s/epoch", "torch s/epoch", "engine / torch per round", "engine samples/s",
                 "torch samples/s", "engine peak MiB", "torch peak MiB", "engine mean loss", "torch mean loss"]
OPS_HEADERS = ["op", "shapes", "engine fwd ms", "torch fwd ms", "fwd engine / torch", "engine bwd ms",
               "torch bwd ms", "bwd engine / torch"]


def epoch_table(epochs):
    rows = []
    for e in epochs:
        ours, theirs = e["engine"], e["torch"]
        seconds = [r["seconds"] for r in ours]
        cells = [e["model"], _spread(seconds)]
        if isinstance(theirs, list):
            their_seconds = [r["seconds"] for r in theirs]
            # Each round's two epochs run back to back under the same load; their ratio is steadier
            # than a ratio of medians, which a change of load between rounds can skew.
            ratio = _spread([a / b for a, b in zip(seconds, their_seconds)], ".2f")
            cells += [_spread(their_seconds), ratio, f"{ours[0]['samples'] / np.median(seconds):,.0f}",
                      f"{theirs[0]['samples'] / np.median(their_seconds):,.0f}",
                      _spread([r["peak_mib"] for r in ours], ".1f"), _spread([r["peak_mib"] for r in theirs], ".1f"),
                      f"{np.median([r['loss'] for r in ours]):.4f}", f"{np.median([r['loss'] for r in theirs]):.4f}"]
        else:
            cells += [theirs, "–", f"{ours[0]['samples'] / np.median(seconds):,.0f}", theirs,
                      _spread([r["peak_mib"] for r in ours], ".1f"), theirs,
                      f"{np.median([r['loss'] for r in ours]):.4f}", theirs]
        rows.append(cells)
    return table(EPOCH_HEADERS, rows)


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


def time_to_target_text(t):
    c, target = t["config"], t["target"]
    recipe = (f"{c['model']}: {c['epochs']} epochs at most, batch {c['batch_size']}, {c['optimizer']} lr {c['lr']:g}, "
              f"schedule {c['schedule']}" + (", augmented" if c["augment"] else ""))
    rows = [[i + 1, h["epoch"], h["step"], f"{100 * h['accuracy']:.2f}%", f"{h['seconds']:.1f}"]
            for i, h in enumerate(t["history"])]
    if t["reached"]:
        r = t["reached"]
        head = (f"{100 * target:.2f}% test accuracy reached after {r['seconds']:.1f} s from process start "
                f"(epoch {r['epoch']}, step {r['step']}; data loaded at {t['loaded_s']:.1f} s).")
    else:
        best = max((h["accuracy"] for h in t["history"]), default=float("nan"))
        head = (f"{100 * target:.2f}% test accuracy not reached ({t.get('error') or 'all epochs run'}; "
                f"best {100 * best:.2f}%).")
    return "\n".join([f"Recipe {recipe}.", "", head, "",
                      table(["evaluation", "epoch", "step", "test accuracy", "seconds since start"], rows)])


def _memory_method(results):
    return next((r["memory_method"] for e in results["epochs"] or [] for r in e["engine"]), None)


FORMS_HEADERS = ["form", "shapes", "chosen ms", "alternative ms", "alternative / chosen"]


def forms_table(forms):
    return table(FORMS_HEADERS, [[r["form"], r["shapes"], f"{r['chosen_ms']:.3f}", f"{r['alternative_ms']:.3f}",
                                  f"{r['alternative_ms'] / r['chosen_ms']:.2f}"] for r in forms["rows"]])


def format_results(results):
    """The tables as printed on the terminal."""
    parts = []
    if results["epochs"] is not None:
        parts += ["One training epoch (median of rounds, min–max in brackets):", epoch_table(results["epochs"]),
                  f"Peak memory: {_memory_method(results)}."]
    if results["ops"] is not None:
        parts += ["Per-op timings (median, ms):", ops_table(results["ops"]), f"Forward: the op alone; {BWD_METHOD}."]
    if results.get("forms") is not None:
        parts += ["Array forms ops.py chooses between (median, ms):", forms_table(results["forms"])]
    if results.get("profile") is not None:
        for framework, result in results["profile"].items():
            parts += [f"Where a LeNet-5 training step goes, {framework} (ms/step):", profile_table(result)]
    if results["time_to_99"] is not None:
        parts += ["Time to target accuracy:", time_to_target_text(results["time_to_99"])]
    return "\n\n".join(parts)


def render_markdown(results):
    """docs/BENCHMARKS.md, wholly from `results`."""
    m, s = results["machine"], results["settings"]
    load = lambda l: "n/a" if not l else ", ".join(f"{v:.2f}" for v in l)
    not_run = "Not measured by the command above."
    lines = [
        "# Benchmarks", "",
        "Generated by `tinygrad-mnist benchmark` (tinygrad_mnist/benchmark/); do not edit by hand, rerun the "
        "command instead.", "",
        f"Measured {m.get('date', 'n/a')} on commit {m.get('commit', 'n/a')}.", "",
        "## Machine", "",
        f"- CPU: {m['cpu']}, {m['cores']} cores ({m.get('usable_cores', m['cores'])} usable)",
        f"- Python {m['python']}, NumPy {m['numpy']} with BLAS {m['blas']}, PyTorch {m['torch']}",
        f"- Threads: {s['threads']} in both frameworks (OMP/OPENBLAS/MKL_NUM_THREADS set before each worker "
        f"starts, and torch.set_num_threads)",
        f"- Load average (1, 5, 15 min) before: {load(results['load_before'])}; after: {load(results['load_after'])} "
        f"(near or above the core count, other processes shared the CPU: the min–max ranges show what that did)",
        "", "## Command", "",
        "With `TINYGRAD_MNIST_DATA` pointing at the MNIST files:", "",
        "```sh", results["command"], "```", "",
        "## One training epoch: engine against PyTorch", "",
    ]
    if results["epochs"] is None:
        lines += [not_run]
    else:
        samples = results["epochs"][0]["engine"][0]["samples"]
        lines += [f"Each cell is the median of {s['rounds']} rounds (min–max in brackets). Each epoch runs in a "
                  f"fresh process: {samples:,} training images, batch {s['batch_size']}, Adam lr {s['lr']:g}, "
                  f"float32, device {s['device']}, {s['threads']} thread(s), the same shuffled order and the same "
                  f"initial weights in both frameworks, after {s['warmup_steps']} untimed warm-up steps. Engine and "
                  f"PyTorch alternate (A B, then B A); the ratio is the median of the rounds' own engine / torch "
                  f"ratios, each from two epochs run back to back. Peak memory, warm-up included (so PyTorch's "
                  f"one-time initialisation counts): {_memory_method(results)}.", "", epoch_table(results["epochs"])]
    lines += ["", "## Per-op timings", ""]
    if results["ops"] is None:
        lines += [not_run]
    else:
        lines += [f"LeNet-5's shapes at batch {s['batch_size']} (and the MLP's 784→128 layer), median of "
                  f"{s['op_reps']} repetitions after 3 warm-up ones in each of {OP_ROUNDS} rounds; each round times "
                  f"the engine and PyTorch in a process of their own (A B, then B A), so that neither framework's "
                  f"idle BLAS threads spin while the other runs. Forward: the op on inputs that require grad, as in "
                  f"training (graph recording included); {BWD_METHOD}.", "",
                  ops_table(results["ops"])]
    lines += ["", "## Array forms", ""]
    if results.get("forms") is None:
        lines += [f"{not_run} It comes with `--ops` on the CPU."]
    else:
        lines += [f"Where ops.py computes one result in a form chosen for OpenBLAS rather than the plain one (see "
                  f"its docstrings), both forms at LeNet-5's shapes at batch {s['batch_size']}: the median of "
                  f"{s['op_reps']} repetitions after 3 warm-up ones, the two alternating, in one engine process.", "",
                  forms_table(results["forms"])]
    lines += ["", "## Where a training step's time goes", ""]
    if results.get("profile") is None:
        lines += [f"{not_run} Add `--profile`."]
    else:
        steps = next((r["steps"] for r in results["profile"].values() if "steps" in r), 0)
        lines += [f"LeNet-5, batch {s['batch_size']}, {steps} training steps after {s['warmup_steps']} warm-up ones, "
                  "one process per framework. The engine's ops are timed through the tape's op hooks, forward and "
                  "backward apart (keyed by the op's first input shape); PyTorch's by torch.profiler (each aten "
                  "op's self CPU time). "
                  "\"rest\" is the step's wall time outside every entry: Python, graph bookkeeping, batching, "
                  "and for PyTorch its dispatcher. The profilers add their own overhead, so the whole-step times "
                  "here run above the epoch table's."]
        for framework, result in results["profile"].items():
            lines += ["", f"{framework}:", "", profile_table(result)]
    lines += ["", "## Time to 99% test accuracy", ""]
    if results["time_to_99"] is None:
        lines += [f"{not_run} Add `--time-to-99` (and `--train --ops` to keep the tables above)."]
    else:
        lines += ["Wall seconds from the worker process's start (imports and data loading included) to the first "
                  "evaluation on the 10,000 test images at or above the target; evaluation time counts.", "",
                  time_to_target_text(results["time_to_99"])]
    return "\n".join(lines) + "\n"
