"""Benchmarks: a training epoch in this engine against PyTorch, per-op timings, time to 99% test accuracy.

Every measurement runs in a fresh worker process (`python -m tinygrad_mnist.benchmark --worker SPEC`):
its thread count is fixed through the environment before NumPy's BLAS or PyTorch start, and one
framework's allocations cannot inflate the other's peak memory. Epoch workers alternate engine and
PyTorch (A B, then B A) round after round, and the tables report medians with the min–max spread.
PyTorch is optional: where it cannot be imported its columns say "torch not installed".
"""
import argparse
import collections
import contextlib
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import backend

BENCH_MODELS = {"lenet5": "LeNet-5: conv 1→6 5×5, pool, conv 6→16 5×5, pool, 256-120-84-10",
                "mlp": "MLP 784-128-10, ReLU (mlp_v2 without dropout)"}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
NO_TORCH = "torch not installed"
BWD_METHOD = ("backward: the graph is built once, then `out.backward(grad, retain_graph=True)` is timed with "
              "the inputs' .grad reset to None first, as after zero_grad() in training")
_IMPORTED = time.perf_counter()


class BenchmarkError(RuntimeError):
    """A benchmark cannot run; the message says why."""


def engine_model(name):
    """A fresh model of this engine: "lenet5", or "mlp" (mlp_v2 with dropout 0, so no dropout op runs)."""
    from .models import build_model
    return build_model("lenet5") if name == "lenet5" else build_model("mlp_v2", dropout=0.0)


def torch_model(name, state):
    """The PyTorch twin of `engine_model(name)`, holding the engine model's initial weights `state`."""
    import torch
    nn, F = torch.nn, torch.nn.functional

    class LeNet5(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
            self.fc1, self.fc2, self.fc3 = nn.Linear(256, 120), nn.Linear(120, 84), nn.Linear(84, 10)

        def forward(self, x):
            x = F.relu(F.max_pool2d(self.conv1(x), 2))
            x = F.relu(F.max_pool2d(self.conv2(x), 2)).flatten(1)
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(784, 128), nn.Linear(128, 10)

        def forward(self, x):
            return self.fc2(F.relu(self.fc1(x.flatten(1))))

    model = LeNet5() if name == "lenet5" else MLP()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    return model


def process_seconds():
    """Seconds since this process started (Linux: its start time in /proc), else since this module loaded."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        return time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return time.perf_counter() - _IMPORTED


def _status_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


class PeakMemory:
    """Peak memory of what runs between start() and stop(), above what was in use at start()."""

    def __init__(self, framework, device):
        self.framework, self.device = framework, device

    def start(self):
        if self.device == "cuda" and self.framework == "torch":
            import torch
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_reserved()
            self.method = "torch.cuda.max_memory_reserved() minus memory_reserved() at the start"
        elif self.device == "cuda":
            self.pool = backend.array_module("cuda").get_default_memory_pool()
            self.base = self.pool.total_bytes()
            self.method = "growth of CuPy's memory pool, which keeps freed blocks and so holds its high-water mark"
        else:
            try:
                self.base = _status_kib("VmRSS") * 1024
                Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak RSS, to the current RSS
                self.method = ("peak RSS (VmHWM, reset through /proc/self/clear_refs) minus the RSS once the data "
                               "were loaded, the framework imported and the model built")
                self.read = lambda: _status_kib("VmHWM") * 1024
            except OSError:
                import resource
                self.read = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
                self.base = self.read()
                self.method = "ru_maxrss at the end minus ru_maxrss after loading (0 where loading peaked higher)"
        return self

    def stop(self):
        """Mebibytes above the start."""
        if self.device == "cuda" and self.framework == "torch":
            import torch
            peak = torch.cuda.max_memory_reserved()
        elif self.device == "cuda":
            peak = self.pool.total_bytes()
        else:
            peak = self.read()
        return max(peak - self.base, 0) / 2**20


def _synchronizer(framework, device):
    if device != "cuda":
        return lambda: None
    if framework == "torch":
        import torch
        return torch.cuda.synchronize
    return backend.array_module("cuda").cuda.Device().synchronize


def blas_threads():
    """The threads NumPy's BLAS uses, asked of threadpoolctl, else of OpenBLAS itself; None if neither can say."""
    try:
        from threadpoolctl import threadpool_info
        return next((i["num_threads"] for i in threadpool_info()
                     if i["user_api"] == "blas" and "numpy" in i["filepath"]), None)
    except ImportError:
        pass
    import ctypes
    try:
        paths = {line.split()[-1] for line in open("/proc/self/maps") if "openblas" in line and "numpy" in line}
    except OSError:
        return None
    for path in paths:
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads"):
            if hasattr(lib, name):
                return int(getattr(lib, name)())
    return None


def _torch(threads):
    """PyTorch with `threads` intra-op threads, or None where it cannot be imported."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def _load(spec):
    """The training and test arrays, scaled as training scales them."""
    from .training import make_config, prepare_data
    config = make_config("lenet5", val_size=0, limit_train=spec.get("limit"), data_dir=spec.get("data_dir"))
    return prepare_data(config)


def _training(spec):
    """(step, optimizer, torch, x, y, batches) for `spec["framework"]`: `step(xb, yb)` runs one
    training step and returns the loss; the same order and initial weights in both frameworks.
    A dict with "error" instead where PyTorch cannot run."""
    framework, device, seed = spec["framework"], spec["device"], spec["seed"]
    torch = _torch(spec["threads"]) if framework == "torch" else None
    if framework == "torch" and torch is None:
        return {"error": NO_TORCH}
    if framework == "torch" and device == "cuda" and not torch.cuda.is_available():
        return {"error": "torch has no CUDA"}
    x, y = _load(spec)["train"]
    backend.manual_seed(seed)
    model = engine_model(spec["model"]).to(device)
    if framework == "engine":
        from . import functional as F
        from . import optim
        from .tensor import Tensor
        optimizer = optim.Adam(list(model.parameters()), lr=spec["lr"])
        forward = lambda xb, yb: F.cross_entropy(model(Tensor(xb, device=device)), yb)  # noqa: E731
    else:
        twin = torch_model(spec["model"], model.state_dict()).to(device)
        optimizer = torch.optim.Adam(twin.parameters(), lr=spec["lr"])
        forward = lambda xb, yb: torch.nn.functional.cross_entropy(  # noqa: E731
            twin(torch.from_numpy(xb).to(device)), torch.from_numpy(yb).to(device))

    def step(xb, yb):
        loss = forward(xb, yb)
        value = loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return value

    order = np.random.default_rng(seed).permutation(len(x))
    batches = [order[i:i + spec["batch_size"]] for i in range(0, len(x), spec["batch_size"])]
    return step, optimizer, torch, x, y, batches


def _epoch_worker(spec):
    """One timed epoch of `spec["framework"]` after a few warm-up steps; the same order and initial
    weights in both frameworks, so their mean losses should agree."""
    setup = _training(spec)
    if isinstance(setup, dict):
        return setup
    step, _, torch, x, y, batches = setup
    sync = _synchronizer(spec["framework"], spec["device"])
    memory = PeakMemory(spec["framework"], spec["device"]).start()
    for index in batches[:spec["warmup_steps"]]:
        step(x[index], y[index])
    sync()
    started = time.perf_counter()
    losses = [step(x[index], y[index]) for index in batches]
    sync()
    seconds = time.perf_counter() - started
    return dict(seconds=seconds, samples=len(x), loss=float(np.mean(losses)), peak_mib=memory.stop(),
                memory_method=memory.method, blas_threads=blas_threads(),
                torch_threads=torch.get_num_threads() if torch else None,
                torch_version=torch.__version__ if torch else None)


def _timed_engine_ops(times):
    """Wrap every op's forward and backward so that their seconds add up in `times`, keyed by
    "op (input shape) forward/backward". For a profiling worker only: it changes the op classes."""
    from .ops import OPS

    def wrap(name, cls):
        forward, backward = cls.forward, cls.backward

        def timed_forward(self, *arrays, **options):
            self.profile_key = f"{name} ({','.join(map(str, arrays[0].shape))})"
            started = time.perf_counter()
            out = forward(self, *arrays, **options)
            times[self.profile_key + " forward"] += time.perf_counter() - started
            return out

        def timed_backward(self, g):
            started = time.perf_counter()
            grads = backward(self, g)
            times[self.profile_key + " backward"] += time.perf_counter() - started
            return grads

        cls.forward, cls.backward = timed_forward, timed_backward

    for name, cls in OPS.items():
        wrap(name, cls)


def _profile_worker(spec):
    """Where the time of a training step goes, in ms per step: the engine's ops (forward and backward
    apart) and its optimizer, timed by wrapping them; PyTorch's ops by torch.profiler (self CPU time).
    "rest" is the step's wall time that no listed entry covers (Python, graph bookkeeping, batching)."""
    setup = _training(spec)
    if isinstance(setup, dict):
        return setup
    step, optimizer, torch, x, y, batches = setup
    sync = _synchronizer(spec["framework"], spec["device"])
    times = collections.defaultdict(float)
    if spec["framework"] == "engine":
        _timed_engine_ops(times)
        update = optimizer.step

        def timed_step(*args, **kwargs):
            started = time.perf_counter()
            result = update(*args, **kwargs)
            times["optimizer step (Adam)"] += time.perf_counter() - started
            return result
        optimizer.step = timed_step
    warmup, steps = spec["warmup_steps"], spec["profile_steps"]
    for index in batches[:warmup]:
        step(x[index], y[index])
    sync()
    times.clear()
    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) if torch else None
    started = time.perf_counter()
    with profiler or contextlib.nullcontext():
        for index in batches[warmup:warmup + steps]:
            step(x[index], y[index])
        sync()
    total = time.perf_counter() - started
    if profiler is not None:
        for event in profiler.key_averages():
            if event.self_cpu_time_total > 0:
                times[event.key] += event.self_cpu_time_total / 1e6
        times.pop("ProfilerStep*", None)
    rows = sorted(((name, 1e3 * seconds / steps) for name, seconds in times.items()), key=lambda r: -r[1])
    return dict(step_ms=1e3 * total / steps, steps=steps, rows=rows)


def op_cases(n):
    """(op, shapes, inputs, call) at LeNet-5's shapes for a batch of n (and the MLP's 784-128 layer).

    Inputs are (array, requires_grad) as in training: the images need no gradient. `call(F, *inputs)`
    works with this engine's functional module and with torch.nn.functional alike."""
    rng = np.random.default_rng(0)

    def a(*shape, grad=True):
        return rng.standard_normal(shape).astype(np.float32), grad

    conv = lambda F, x, w, b: F.conv2d(x, w, b)
    pool = lambda F, x: F.max_pool2d(x, 2)
    linear = lambda F, x, w, b: F.linear(x, w, b)
    relu = lambda F, x: F.relu(x)
    xent = lambda F, z, t: F.cross_entropy(z, t)
    return [
        ("conv2d", f"({n},1,28,28)*(6,1,5,5)", [a(n, 1, 28, 28, grad=False), a(6, 1, 5, 5), a(6)], conv),
        ("conv2d", f"({n},6,12,12)*(16,6,5,5)", [a(n, 6, 12, 12), a(16, 6, 5, 5), a(16)], conv),
        ("max_pool2d", f"({n},6,24,24) k2", [a(n, 6, 24, 24)], pool),
        ("max_pool2d", f"({n},16,8,8) k2", [a(n, 16, 8, 8)], pool),
        ("linear", f"({n},256)→120", [a(n, 256), a(120, 256), a(120)], linear),
        ("linear", f"({n},120)→84", [a(n, 120), a(84, 120), a(84)], linear),
        ("linear", f"({n},84)→10", [a(n, 84), a(10, 84), a(10)], linear),
        ("linear", f"({n},784)→128", [a(n, 784, grad=False), a(128, 784), a(128)], linear),
        ("relu", f"({n},6,12,12)", [a(n, 6, 12, 12)], relu),
        ("relu", f"({n},16,4,4)", [a(n, 16, 4, 4)], relu),
        ("relu", f"({n},120)", [a(n, 120)], relu),
        ("cross_entropy", f"({n},10)", [a(n, 10), (rng.integers(0, 10, n), False)], xent),
    ]


def _ops_worker(spec):
    """Forward and backward times (ms) of every op case in one framework, `reps` of each after `warmup`.

    Each framework times its ops in a process of its own: in one process, the threads that one
    framework's BLAS leaves spinning after its call take the cores from the other's next op."""
    framework, device = spec["framework"], spec["device"]
    if framework == "torch":
        torch = _torch(spec["threads"])
        if torch is None:
            return {"error": NO_TORCH}
        if device == "cuda" and not torch.cuda.is_available():
            return {"error": "torch has no CUDA"}
        module, make = torch.nn.functional, lambda arr, grad: torch.from_numpy(arr).to(device).requires_grad_(grad)
    else:
        from . import functional as module
        from .tensor import Tensor
        make = lambda arr, grad: Tensor(arr, requires_grad=grad, device=device)  # noqa: E731
    sync = _synchronizer(framework, device)
    rows = []
    for op, shapes, inputs, call in op_cases(spec["batch_size"]):
        tensors = [make(arr, grad) for arr, grad in inputs]
        out = call(module, *tensors)
        grad = make(np.random.default_rng(1).standard_normal(tuple(out.shape)).astype(np.float32), False) \
            if out.ndim else None
        forward, backward = [], []
        for rep in range(spec["warmup"] + spec["reps"]):
            started = time.perf_counter()
            call(module, *tensors)
            sync()
            middle = time.perf_counter()
            for t in tensors:
                t.grad = None
            started_bwd = time.perf_counter()
            out.backward(grad, retain_graph=True)
            sync()
            if rep >= spec["warmup"]:
                forward.append(1e3 * (middle - started))
                backward.append(1e3 * (time.perf_counter() - started_bwd))
        rows.append(dict(op=op, shapes=shapes, fwd_ms=forward, bwd_ms=backward))
    return dict(rows=rows, version=torch.__version__ if framework == "torch" else None)


OP_ROUNDS = 2


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


def _time_to_target_worker(spec):
    """Train a recipe, evaluating on the test set every `eval_every` steps and at each epoch's end, until
    the test accuracy reaches the target; wall time counts from this process's start."""
    from . import data
    from . import functional as F
    from .models import build_model
    from .tensor import Tensor
    from .training import evaluate, make_config, make_optimizer, make_schedule, prepare_data
    config = make_config(spec["model"], epochs=spec["epochs"], lr=spec["lr"], batch_size=spec["batch_size"],
                         schedule=spec["schedule"], val_size=0, limit_train=spec["limit"],
                         data_dir=spec["data_dir"], device=spec["device"], seed=spec["seed"])
    backend.manual_seed(config["seed"])
    rng = np.random.default_rng(config["seed"])
    arrays = prepare_data(config)
    (x, y), (test_x, test_y) = arrays["train"], arrays["test"]
    loaded = process_seconds()
    device = config["device"]
    model = build_model(config["model"], dropout=config["dropout"]).to(device)
    bs = min(config["batch_size"] or len(x), len(x))
    steps = math.ceil(len(x) / bs)
    optimizer = make_optimizer(config, list(model.parameters()))
    schedule = make_schedule(config, optimizer, steps)
    history, global_step = [], 0
    for epoch in range(1, config["epochs"] + 1):
        order = rng.permutation(len(x))
        model.train()
        for step in range(steps):
            index = order[step * bs:(step + 1) * bs]
            xb = x[index]
            if config["augment"]:
                xb = data.augment(xb[:, 0], rng)[:, None]
            loss = F.cross_entropy(model(Tensor(xb, device=device)), y[index],
                                   label_smoothing=config["label_smoothing"])
            if not math.isfinite(loss.item()):
                return dict(config=config, loaded_s=loaded, history=history, reached=None,
                            error=f"the loss became {loss.item()} at step {global_step + 1}")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            global_step += 1
            if (spec["eval_every"] and global_step % spec["eval_every"] == 0) or step == steps - 1:
                accuracy = evaluate(model, test_x, test_y, config["eval_batch_size"], device)[1]
                model.train()
                history.append(dict(epoch=epoch, step=global_step, accuracy=accuracy, seconds=process_seconds()))
                if accuracy >= spec["target"]:
                    return dict(config=config, loaded_s=loaded, history=history, reached=history[-1])
    return dict(config=config, loaded_s=loaded, history=history, reached=None)


WORKERS = {"epoch": _epoch_worker, "ops": _ops_worker, "profile": _profile_worker,
           "time_to_target": _time_to_target_worker}


def _worker(spec_json):
    spec = json.loads(spec_json)
    print(json.dumps(WORKERS[spec["task"]](spec)))
    return 0


def spawn(spec, threads):
    """Run one worker in a fresh process with `threads` threads everywhere; its result as a dict."""
    env = dict(os.environ, **{name: str(threads) for name in THREAD_VARIABLES})
    spec = dict(spec, threads=threads)
    proc = subprocess.run([sys.executable, "-m", "tinygrad_mnist.benchmark", "--worker", json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"]
        raise BenchmarkError(f"{spec['task']} worker ({spec.get('framework', 'both')}) failed: {lines[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


EPOCH_SETTINGS = ("batch_size", "lr", "limit", "device", "seed", "warmup_steps", "data_dir")


def spawn_alternating(spec, round_index, threads, skip_torch=False):
    """(framework, result) for the engine and PyTorch each running `spec` in a worker, the engine first
    in even rounds and PyTorch first in odd ones (A B, then B A); PyTorch not at all with skip_torch."""
    order = ("engine", "torch") if round_index % 2 == 0 else ("torch", "engine")
    for framework in order:
        if not (framework == "torch" and skip_torch):
            yield framework, spawn(dict(spec, framework=framework), threads)


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


def machine_info():
    info = dict(cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                python=platform.python_version(), numpy=np.__version__, blas="unknown")
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info["date"] = time.strftime("%Y-%m-%d %H:%M %Z")
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True,
                               cwd=Path(__file__).parent).stdout.strip()
        info["commit"] = f"{head} (with uncommitted changes)" if head and dirty else head or "n/a"
    except OSError:
        pass
    if hasattr(os, "sched_getaffinity"):
        info["usable_cores"] = len(os.sched_getaffinity(0))
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy has no mode="dicts"
        pass
    return info


def _load_average():
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def run(args, progress=print):
    """Everything `args` asks for, as one results dict (what the tables and the markdown are made of)."""
    threads = args.threads
    settings = dict(threads=args.threads, rounds=args.rounds, batch_size=args.batch_size or 128, lr=args.lr or 1e-3,
                    limit=args.limit, device=args.device, seed=args.seed, warmup_steps=args.warmup_steps,
                    data_dir=args.data_dir, op_reps=args.op_reps)
    results = dict(machine=machine_info(), settings=settings, load_before=_load_average(),
                   command=shlex.join(["python", "scripts/benchmark.py", *args.argv]),
                   epochs=None, ops=None, profile=None, time_to_99=None)
    if args.train:
        models = list(BENCH_MODELS) if args.model == "all" else [args.model]
        results["epochs"] = run_epochs(models, settings, progress)
    if args.ops:
        progress(f"per-op timings: {args.op_reps} repetitions each, {OP_ROUNDS} rounds")
        results["ops"] = run_ops(settings, progress)
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
    results["load_after"] = _load_average()
    versions = [r.get("torch_version") for e in results["epochs"] or [] if isinstance(e["torch"], list)
                for r in e["torch"]] + [(results["ops"] or {}).get("torch_version")]
    torch_asked = results["epochs"] is not None or results["ops"] is not None
    results["machine"]["torch"] = next((v for v in versions if v), NO_TORCH if torch_asked else "not used")
    return results


def table(headers, rows):
    """A GitHub-flavoured markdown table; it reads as well in a terminal."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


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


def format_results(results):
    """The tables as printed on the terminal."""
    parts = []
    if results["epochs"] is not None:
        parts += ["One training epoch (median of rounds, min–max in brackets):", epoch_table(results["epochs"]),
                  f"Peak memory: {_memory_method(results)}."]
    if results["ops"] is not None:
        parts += ["Per-op timings (median, ms):", ops_table(results["ops"]), f"Forward: the op alone; {BWD_METHOD}."]
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
        "Generated by `tinygrad_mnist/benchmark.py`; do not edit by hand, rerun the command instead.", "",
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
    lines += ["", "## Where a training step's time goes", ""]
    if results.get("profile") is None:
        lines += [f"{not_run} Add `--profile`."]
    else:
        steps = next((r["steps"] for r in results["profile"].values() if "steps" in r), 0)
        lines += [f"LeNet-5, batch {s['batch_size']}, {steps} training steps after {s['warmup_steps']} warm-up ones, "
                  "one process per framework. The engine's ops are timed by wrapping each op's forward and backward "
                  "(keyed by the op's first input shape); PyTorch's by torch.profiler (each aten op's self CPU time). "
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


def build_parser(prog=None):
    from .models import RECIPES
    from .training import SCHEDULES
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=[*BENCH_MODELS, "all"], default="all", help="model(s) of the epoch benchmark")
    p.add_argument("--batch-size", type=int, help="default 128 (time-to-99: the recipe's)")
    p.add_argument("--device", choices=backend.DEVICES, default="cpu")
    p.add_argument("--rounds", type=int, default=3, help="alternating engine/PyTorch rounds (default 3)")
    p.add_argument("--threads", type=int, default=1,
                   help="threads for both frameworks (default 1: like for like, and steady on a shared machine)")
    p.add_argument("--limit", type=int, help="use the first N training images only")
    p.add_argument("--lr", type=float, help="default 1e-3 (time-to-99: the recipe's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warmup-steps", type=int, default=5, help="untimed steps before the timed epoch (default 5)")
    p.add_argument("--op-reps", type=int, default=20, help="repetitions per op timing (default 20)")
    p.add_argument("--data-dir", help="folder holding the MNIST files (default: $TINYGRAD_MNIST_DATA, the cache, "
                                      "a download)")
    p.add_argument("--train", action=argparse.BooleanOptionalAction, default=None,
                   help="the epoch benchmark (default: on, unless --time-to-99 is given)")
    p.add_argument("--ops", action=argparse.BooleanOptionalAction, default=None,
                   help="the per-op table (default: on, unless --time-to-99 is given)")
    p.add_argument("--profile", action="store_true", help="profile LeNet-5 training steps by op in both frameworks")
    p.add_argument("--profile-steps", type=int, default=200, help="steps to profile (default 200)")
    p.add_argument("--time-to-99", nargs="?", const="lenet5", choices=sorted(RECIPES), metavar="MODEL",
                   help="train MODEL's recipe (default lenet5) until the test accuracy reaches --target")
    p.add_argument("--epochs", type=int, help="time-to-99: most epochs (default: the recipe's)")
    p.add_argument("--schedule", choices=SCHEDULES, help="time-to-99: lr schedule (default: the recipe's)")
    p.add_argument("--eval-every", type=int, default=0, help="time-to-99: also evaluate every K steps")
    p.add_argument("--target", type=float, default=0.99, help="time-to-99: test accuracy to reach (default 0.99)")
    p.add_argument("--markdown", metavar="PATH", help="rewrite PATH (e.g. docs/BENCHMARKS.md) from the results")
    p.add_argument("--json", metavar="PATH", help="write the raw results as JSON")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p


def main(argv=None, prog=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(args.worker)
    for name in ("rounds", "threads", "limit", "batch_size", "op_reps", "epochs", "profile_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.warmup_steps < 0 or args.eval_every < 0 or not 0 <= args.target <= 1:
        parser.error("--warmup-steps and --eval-every must be >= 0, and --target within [0, 1]")
    args.argv = argv
    args.train = args.train if args.train is not None else not args.time_to_99
    args.ops = args.ops if args.ops is not None else not args.time_to_99
    try:
        backend.array_module(args.device)
        results = run(args, progress=lambda text: print(text, file=sys.stderr, flush=True))
    except (BenchmarkError, backend.DeviceError) as e:
        print(f"benchmark: error: {e}", file=sys.stderr)
        return 2
    print(format_results(results))
    if args.markdown:
        Path(args.markdown).write_text(render_markdown(results))
        print(f"wrote {args.markdown}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
