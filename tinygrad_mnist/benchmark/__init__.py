"""`tinygrad-mnist benchmark`: a training epoch in this engine against PyTorch, per-op timings, the array
forms ops.py chooses between, where a training step's time goes, and the time to 99% test accuracy.

Every measurement runs in a fresh worker process (workers.py); epoch and op workers alternate engine
and PyTorch (A B, then B A) round after round, and the tables (render.py) report medians with the
min–max spread. PyTorch is optional: where it cannot be imported its columns say "torch not installed",
and the command says how to install it.
"""
import json
import shlex

import numpy as np

from ..files import atomic_write
from ..torch_twin import INSTALL_HINT
from .measure import load_average, machine_info
from .render import OP_ROUNDS, format_results, render_markdown
from .workers import BENCH_MODELS, NO_TORCH, BenchmarkError, spawn, spawn_alternating

__all__ = ["BENCH_MODELS", "BenchmarkError", "NO_TORCH", "benchmark", "format_results", "render_markdown", "run"]

EPOCH_SETTINGS = ("batch_size", "lr", "limit", "device", "seed", "warmup_steps", "data_dir")


def run_epochs(models, settings, progress=print):
    """Per model and framework, the results of every round, the order flipping each round."""
    results = {m: {"engine": [], "torch": []} for m in models}
    torch_error = None
    for r in range(settings["rounds"]):
        for model in models:
            spec = dict(task="epoch", model=model, **{k: settings[k] for k in EPOCH_SETTINGS})
            for framework, result in spawn_alternating(spec, r, settings["threads"], skip_torch=bool(torch_error)):
                if "error" in result:
                    torch_error = result["error"]
                    continue
                results[model][framework].append(result)
                progress(f"round {r + 1}/{settings['rounds']}  {model:6s} {framework:6s} "
                         f"{result['seconds']:7.2f} s  loss {result['loss']:.4f}  peak {result['peak_mib']:.1f} MiB")
    return [dict(model=m, engine=results[m]["engine"], torch=results[m]["torch"] or torch_error or NO_TORCH)
            for m in models]


def run_ops(settings, progress=print):
    """Per-op medians over OP_ROUNDS rounds of one engine process and one PyTorch process (A B, then B A)."""
    times, torch_error, version = {}, None, None
    spec = dict(task="ops", device=settings["device"], warmup=3, batch_size=settings["batch_size"],
                reps=settings["op_reps"])
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
        progress(f"per-op round {r + 1}/{OP_ROUNDS} done")
    rows = [dict(op=e["op"], shapes=e["shapes"], **{f"{k}_ms": float(np.median(v)) for k, v in e.items()
                                                      if k not in ("op", "shapes")})
            for _, e in sorted(times.items())]
    return dict(rows=rows, torch_version=version, torch_error=torch_error)


def run(args, progress=print):
    """Everything `args` asks for, as one results dict (what the tables and the markdown are made of)."""
    threads = args.threads
    settings = dict(threads=args.threads, rounds=args.rounds, batch_size=args.batch_size or 128, lr=args.lr or 1e-3,
                    limit=args.limit, device=args.device, seed=args.seed, warmup_steps=args.warmup_steps,
                    data_dir=args.data_dir, op_reps=args.op_reps)
    results = dict(machine=machine_info(), settings=settings, load_before=load_average(),
                   command=shlex.join(["tinygrad-mnist", *args.argv]),
                   epochs=None, ops=None, forms=None, profile=None, time_to_99=None)
    if args.train:
        models = list(BENCH_MODELS) if args.model == "all" else [args.model]
        results["epochs"] = run_epochs(models, settings, progress)
    if args.ops:
        progress(f"per-op timings: {args.op_reps} repetitions each, {OP_ROUNDS} rounds")
        results["ops"] = run_ops(settings, progress)
        if args.device == "cpu":  # the forms are chosen for the CPU's BLAS; CuPy always gets the plain one
            results["forms"] = spawn(dict(task="forms", batch_size=settings["batch_size"], warmup=3,
                                          reps=args.op_reps), threads)
    if args.profile:
        progress(f"profiling {args.profile_steps} lenet5 training steps in each framework")
        results["profile"] = {framework: spawn(dict(task="profile", framework=framework, model="lenet5",
                                                    profile_steps=args.profile_steps,
                                                    **{k: settings[k] for k in EPOCH_SETTINGS}), threads)
                              for framework in ("engine", "torch")}
    if args.time_to_99:
        progress(f"time to {100 * args.target:.2f}%: training {args.time_to_99}")
        results["time_to_99"] = spawn(dict(task="time_to_target", model=args.time_to_99, epochs=args.epochs,
                                           lr=args.lr, batch_size=args.batch_size, schedule=args.schedule,
                                           limit=args.limit, data_dir=args.data_dir, device=args.device,
                                           seed=args.seed, eval_every=args.eval_every, target=args.target), threads)
        results["time_to_99"]["target"] = args.target
    results["load_after"] = load_average()
    versions = [r.get("torch_version") for e in results["epochs"] or [] if isinstance(e["torch"], list)
                for r in e["torch"]] + [(results["ops"] or {}).get("torch_version")]
    torch_asked = results["epochs"] is not None or results["ops"] is not None or results["profile"] is not None
    results["machine"]["torch"] = next((v for v in versions if v), NO_TORCH if torch_asked else "not used")
    return results


def benchmark(args, out=print, progress=print):
    """`tinygrad-mnist benchmark`: run what args ask for, print the tables, write --markdown and --json."""
    results = run(args, progress=progress)
    out(format_results(results))
    if results["machine"]["torch"] == NO_TORCH:
        progress(f"{INSTALL_HINT} (its columns stay empty until then)")
    if args.markdown:
        with atomic_write(args.markdown, "w") as f:
            f.write(render_markdown(results))
        out(f"wrote {args.markdown}")
    if args.json:
        with atomic_write(args.json, "w") as f:
            f.write(json.dumps(results, indent=2) + "\n")
    return results
