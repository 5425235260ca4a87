"""`tinygrad-mnist benchmark`: a training epoch in this engine against PyTorch for every model and batch
size, how the cost grows with the batch and with LeNet-5's width (a table and a plot), per-op timings,
the array forms ops.py chooses between, where a training step's time goes, and the time to a test
accuracy (99%, 99.5%) over several seeds.

Every measurement runs in a fresh worker process (workers.py); epoch and op workers alternate engine
and PyTorch (A B, then B A) round after round, and the tables (render.py) report medians with the
min–max spread. PyTorch is optional: where it cannot be imported its columns say "torch not installed",
and the command says how to install it.
"""
import json
import os
import shlex
from pathlib import Path

import numpy as np

from .. import plots
from ..files import atomic_write
from ..models import MODELS
from ..torch_twin import INSTALL_HINT
from .measure import load_average, machine_info
from .render import OP_ROUNDS, format_results, render_markdown, scaling_series
from .workers import NO_TORCH, SCALING_BATCH_SIZES, SCALING_WIDTHS, BenchmarkError, spawn, spawn_alternating

__all__ = ["BenchmarkError", "DEFAULT_BATCH_SIZES", "NO_TORCH", "benchmark", "format_results", "render_markdown",
           "run"]

DEFAULT_BATCH_SIZES = (32, 128, 512)

EPOCH_SETTINGS = ("lr", "limit", "device", "seed", "warmup_steps", "data_dir")
SCALING_WIDTH_BATCH = 128  # the batch size of the scaling table's width series


def _cell(model, batch_size, width=1):
    return dict(model=model, batch_size=batch_size, width=width)


def scaling_cells():
    """The scaling table's cells: LeNet-5 at every scaling batch size, then wider at SCALING_WIDTH_BATCH."""
    return dict(batch=[_cell("lenet5", b) for b in SCALING_BATCH_SIZES],
                width=[_cell("lenet5", SCALING_WIDTH_BATCH, w) for w in SCALING_WIDTHS])


def run_epochs(cells, settings, progress=print):
    """Per cell (model, batch size, width), the results of every round of each framework, the order
    flipping each round; a cell asked for twice is measured once."""
    keys = list(dict.fromkeys(tuple(c.values()) for c in cells))
    results = {k: {"engine": [], "torch": []} for k in keys}
    torch_error = None
    for r in range(settings["rounds"]):
        for key in keys:
            cell = dict(zip(("model", "batch_size", "width"), key))
            spec = dict(task="epoch", **cell, **{k: settings[k] for k in EPOCH_SETTINGS})
            for framework, result in spawn_alternating(spec, r, settings["threads"], skip_torch=bool(torch_error)):
                if "error" in result:
                    torch_error = result["error"]
                    continue
                results[key][framework].append(result)
                label = cell["model"] + (f" ×{cell['width']}" if cell["width"] != 1 else "")
                progress(f"round {r + 1}/{settings['rounds']}  {label:16s} batch {cell['batch_size']:4d} "
                         f"{framework:6s} {result['seconds']:7.2f} s  loss {result['loss']:.4f}  "
                         f"peak {result['peak_mib']:.1f} MiB")
    return [dict(cell, engine=results[k]["engine"], torch=results[k]["torch"] or torch_error or NO_TORCH)
            for k, cell in ((tuple(c.values()), c) for c in cells)]


def run_ops(settings, batch_size, progress=print):
    """Per-op medians over OP_ROUNDS rounds of one engine process and one PyTorch process (A B, then B A)."""
    times, torch_error, version = {}, None, None
    spec = dict(task="ops", device=settings["device"], warmup=3, batch_size=batch_size, reps=settings["op_reps"])
    for r in range(OP_ROUNDS):
        for framework, result in spawn_alternating(spec, r, settings["threads"], skip_torch=bool(torch_error)):
            if "error" in result:
                torch_error = result["error"]
                continue
            version = result["version"] or version
            for i, row in enumerate(result["rows"]):
                entry = times.setdefault(i, dict(op=row["op"], shapes=row["shapes"]))
                for d in ("fwd", "bwd"):
                    entry.setdefault(f"{framework}_{d}", []).extend(row[f"{d}_ms"])
        progress(f"per-op round {r + 1}/{OP_ROUNDS} at batch {batch_size} done")
    rows = [dict(op=e["op"], shapes=e["shapes"], **{f"{k}_ms": float(np.median(v)) for k, v in e.items()
                                                      if k not in ("op", "shapes")})
            for _, e in sorted(times.items())]
    return dict(rows=rows, torch_version=version, torch_error=torch_error)


def time_to_target_runs(args):
    """(model, target, seeds, epochs, lr, eval_every, label_smoothing, augment) of each time-to-target run:
    --time-to-99, --target, --seeds, --epochs, --lr, --eval-every, --label-smoothing and --augment pair up by
    position, and a single value serves every run (no --epochs, --lr, --label-smoothing or --augment: each
    recipe's own)."""
    lists = {"models": args.time_to_99, "targets": args.target, "seeds": args.seeds, "epochs": args.epochs or [None],
             "lr": args.lr or [None], "--eval-every values": args.eval_every,
             "--label-smoothing values": args.label_smoothing or [None], "--augment values": args.augment or [None]}
    runs = max(len(v) for v in lists.values())
    for name, values in lists.items():
        if len(values) not in (1, runs):
            raise BenchmarkError(f"--time-to-99, --target, --seeds, --epochs, --lr, --eval-every, --label-smoothing "
                                 f"and --augment pair up by position: {len(values)} {name} for {runs} runs; give one "
                                 "value (for every run) or one per run")
    pick = lambda values, i: values[i if len(values) > 1 else 0]  # noqa: E731
    return [tuple(pick(values, i) for values in lists.values()) for i in range(runs)]


def run_time_to_target(args, threads, progress=print):
    """Each run's recipe trained once per seed, every seed in a fresh process; the seeds are --seed, --seed + 1, ...
    One --batch-size is used here too; a list (the epoch table's) leaves each recipe its own, so that one
    command can write every table."""
    batch_size = args.batch_size[0] if args.batch_size and len(args.batch_size) == 1 else None
    results = []
    for model, target, seeds, epochs, lr, eval_every, label_smoothing, augment in time_to_target_runs(args):
        runs = []
        for seed in range(args.seed, args.seed + seeds):
            progress(f"time to {100 * target:.2f}%: training {model}, seed {seed} ({seed - args.seed + 1}/{seeds})")
            runs.append(spawn(dict(task="time_to_target", model=model, epochs=epochs, lr=lr,
                                   batch_size=batch_size, schedule=args.schedule, limit=args.limit,
                                   data_dir=args.data_dir, device=args.device, seed=seed,
                                   eval_every=eval_every, label_smoothing=label_smoothing, augment=augment,
                                   target=target),
                               threads))
            runs[-1]["seed"] = seed
        results.append(dict(model=model, target=target, seeds=runs))
    return results


def run(args, progress=print):
    """Everything `args` asks for, as one results dict (what the tables and the markdown are made of)."""
    threads = args.threads
    batch_sizes = args.batch_size or list(DEFAULT_BATCH_SIZES)
    if args.lr and len(args.lr) > 1 and (args.train or args.scaling or args.ops or args.profile):
        raise BenchmarkError(f"--lr {','.join(map(str, args.lr))}: several rates pair up with --time-to-99's models "
                             "only; the epoch, scaling, op and profile tables take one")
    settings = dict(threads=args.threads, rounds=args.rounds, batch_sizes=batch_sizes, lr=(args.lr or [1e-3])[0],
                    limit=args.limit, device=args.device, seed=args.seed, warmup_steps=args.warmup_steps,
                    data_dir=args.data_dir, op_reps=args.op_reps)
    results = dict(machine=machine_info(), settings=settings, load_before=load_average(),
                   command=shlex.join(["tinygrad-mnist", *args.argv]),
                   epochs=None, scaling=None, ops=None, forms=None, profile=None, time_to_target=None)
    if args.time_to_99:
        time_to_target_runs(args)  # what cannot run is reported before anything runs
    else:
        unused = [option for option, value in (("--epochs", args.epochs), ("--schedule", args.schedule),
                                               ("--label-smoothing", args.label_smoothing),
                                               ("--augment", args.augment)) if value is not None]
        if unused:
            raise BenchmarkError(f"{', '.join(unused)} set{'s' if len(unused) == 1 else ''} the time-to-99 recipe; "
                                 "add --time-to-99 MODEL, or leave it out")
    models = list(MODELS) if "all" in args.model else list(dict.fromkeys(args.model))
    trained = [*(batch_sizes if args.train or args.profile else []), *(SCALING_BATCH_SIZES if args.scaling else [])]
    largest = max(trained, default=0)
    if args.limit is not None and args.limit < largest:
        raise BenchmarkError(f"--limit {args.limit} is below batch size {largest}: its epoch would train smaller "
                             f"batches than its row says; raise --limit to at least {largest}")
    epoch_cells = [_cell(m, b) for m in models for b in batch_sizes] if args.train else []
    scaling = scaling_cells() if args.scaling else dict(batch=[], width=[])
    if epoch_cells or args.scaling:
        measured = run_epochs(epoch_cells + scaling["batch"] + scaling["width"], settings, progress)
        results["epochs"] = measured[:len(epoch_cells)] if args.train else None
        if args.scaling:
            rest = measured[len(epoch_cells):]
            results["scaling"] = dict(batch=rest[:len(scaling["batch"])], width=rest[len(scaling["batch"]):],
                                      width_batch_size=SCALING_WIDTH_BATCH)
    if args.ops:
        progress(f"per-op timings: {args.op_reps} repetitions each, {OP_ROUNDS} rounds per batch size")
        per_batch = [run_ops(settings, b, progress) for b in batch_sizes]
        results["ops"] = dict(rows=[row for o in per_batch for row in o["rows"]],
                              torch_version=next((o["torch_version"] for o in per_batch if o["torch_version"]), None),
                              torch_error=next((o["torch_error"] for o in per_batch if o["torch_error"]), None))
        if args.device == "cpu":  # the forms are chosen for the CPU's BLAS; CuPy always gets the plain one
            results["forms"] = dict(rows=[row for b in batch_sizes for row in spawn(
                dict(task="forms", batch_size=b, warmup=3, reps=args.op_reps), threads)["rows"]])
    if args.profile:
        results["profile"] = []
        for model in dict.fromkeys(args.profile):
            for b in batch_sizes:
                progress(f"profiling {args.profile_steps} {model} training steps at batch {b} in each framework")
                results["profile"].append(dict(model=model, batch_size=b, **{
                    framework: spawn(dict(task="profile", framework=framework, model=model, batch_size=b,
                                          profile_steps=args.profile_steps,
                                          **{k: settings[k] for k in EPOCH_SETTINGS}),
                                     threads) for framework in ("engine", "torch")}))
    if args.time_to_99:
        results["time_to_target"] = run_time_to_target(args, threads, progress)
    results["load_after"] = load_average()
    timed = (results["epochs"] or []) + [c for series in (results["scaling"] or {}).values()
                                         if isinstance(series, list) for c in series]
    versions = [r.get("torch_version") for e in timed if isinstance(e["torch"], list)
                for r in e["torch"]] + [(results["ops"] or {}).get("torch_version")]
    versions += [p["torch"].get("torch_version") for p in results["profile"] or [] if isinstance(p["torch"], dict)]
    torch_asked = bool(timed) or results["ops"] is not None or results["profile"] is not None
    results["machine"]["torch"] = next((v for v in versions if v), NO_TORCH if torch_asked else "not used")
    return results


def scaling_plot_path(args):
    """Where the scaling plot goes: --scaling-plot, else scaling.png beside --markdown; None without --scaling."""
    if not args.scaling:
        return None
    if args.scaling_plot:
        return Path(args.scaling_plot).absolute()
    return Path(args.markdown).absolute().parent / "scaling.png" if args.markdown else None


def benchmark(args, out=print, progress=print):
    """`tinygrad-mnist benchmark`: run what args ask for (or read an earlier run's --json back with
    --from-json), print the tables, write --json, the scaling plot and --markdown."""
    for option, path in (("--markdown", args.markdown), ("--json", args.json), ("--scaling-plot", args.scaling_plot)):
        folder = Path(path).absolute().parent if path else None
        if folder is not None and not folder.is_dir():  # found now, not after hours of measuring
            raise BenchmarkError(f"{option} {path}: the folder {folder} does not exist; create it or choose another")
    results = None
    if args.from_json:
        try:
            results = json.loads(Path(args.from_json).read_text())
        except (OSError, ValueError) as e:
            raise BenchmarkError(f"--from-json {args.from_json}: cannot read it ({e})") from None
        if not isinstance(results, dict) or "settings" not in results or "batch_sizes" not in results["settings"]:
            raise BenchmarkError(f"--from-json {args.from_json}: not the --json of a `tinygrad-mnist benchmark` run")
        args.scaling = results.get("scaling") is not None
    plot = scaling_plot_path(args)
    if plot is not None:
        plots.require_matplotlib()  # before hours of measuring, not after
    if results is None:
        results = run(args, progress=progress)
    if args.json:  # first: the measurements survive whatever goes wrong below
        with atomic_write(args.json, "w") as f:
            f.write(json.dumps(results, indent=2) + "\n")
    out(format_results(results))
    if results["machine"]["torch"] == NO_TORCH:
        progress(f"{INSTALL_HINT} (its columns stay empty until then)")
    if plot is not None:
        out(f"wrote {plots.plot_scaling(scaling_series(results['scaling']), plot)}")
    if args.markdown:
        # the page names the plot by its path from the page's folder, as a link in docs/ does
        plot_link = None if plot is None else os.path.relpath(plot, Path(args.markdown).absolute().parent)
        with atomic_write(args.markdown, "w") as f:
            f.write(render_markdown(results, scaling_plot=plot_link))
        out(f"wrote {args.markdown}")
    return results
