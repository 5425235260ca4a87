"""The benchmark's workers: each measurement runs in a fresh process (`python -m tinygrad_mnist.benchmark
--worker SPEC`), whose thread count is fixed through the environment before NumPy's BLAS or PyTorch
start, so that one framework's allocations cannot inflate the other's peak memory either. A worker
prints its result as one line of JSON.

Training workers train through the shared loop (tinygrad_mnist.loop) and torch_twin's two steps:
the same batches in the same order, the same initial weights, the same optimizer made by the same code.
"""
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

from .. import backend, ops
from ..loop import BatchSampler, augmentation, take_batch
from ..models import build_model
from ..tensor import Tensor
from ..torch_twin import EngineStep, TorchStep, torch_model
from ..training import evaluate, make_config, prepare_data
from .measure import OpTimer, PeakMemory, ProductRecorder, blas_threads, process_seconds, synchronizer, time_products

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
NO_TORCH = "torch not installed"
# The width multipliers of LeNet-5 in the scaling table (models.cnn.LeNet5's width)
SCALING_WIDTHS = (1, 2, 4)
SCALING_BATCH_SIZES = (32, 64, 128, 256, 512)


class BenchmarkError(RuntimeError):
    """A benchmark cannot run; the message says why."""


def _torch(threads):
    """PyTorch with `threads` intra-op threads, or None where it cannot be imported."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def _torch_or_error(spec):
    """(torch, None), or (None, the reason it cannot run the spec)."""
    torch = _torch(spec["threads"])
    if torch is None:
        return None, NO_TORCH
    if spec["device"] == "cuda" and not torch.cuda.is_available():
        return None, "torch has no CUDA"
    return torch, None


def bench_config(spec):
    """The epoch benchmark's training config: the model as its recipe builds it (dropout included), trained by
    Adam at a constant rate, nothing held out, no augmentation."""
    return make_config(spec["model"], optimizer="adam", lr=spec["lr"], schedule="constant", weight_decay=0.0,
                       label_smoothing=0.0, augment=False, warmup_epochs=0,
                       batch_size=spec["batch_size"], val_size=0, limit_train=spec.get("limit"),
                       data_dir=spec.get("data_dir"), device=spec["device"], seed=spec["seed"])


def _training(spec):
    """(step, torch, x, y, batches) for spec["framework"]: `step(xb, yb)` trains one batch and returns its
    loss; `batches` are the first epoch's indices. A dict with "error" instead where PyTorch cannot run."""
    torch = None
    if spec["framework"] == "torch":
        torch, error = _torch_or_error(spec)
        if error:
            return {"error": error}
    config = bench_config(spec)
    x, y = prepare_data(config)["train"]
    x = np.asarray(x)  # scaled once, so that the timed steps take their batches as float arrays
    backend.manual_seed(config["seed"])
    options = {"width": spec["width"]} if spec.get("width", 1) != 1 else {}
    model = build_model(config["model"], dropout=config["dropout"], **options).to(config["device"]).train()
    sampler = BatchSampler(len(x), config["batch_size"])
    if sampler.batch_size != config["batch_size"]:
        raise ValueError(f"batch size {config['batch_size']} needs at least as many training images, and there are "
                         f"{len(x)}: raise --limit or lower --batch-size")
    if torch is None:
        step = EngineStep(model, config, sampler.steps_per_epoch)
    else:
        step = TorchStep(torch_model(config["model"], model), config, sampler.steps_per_epoch)
    order = sampler.order(np.random.default_rng(config["seed"]))
    return step, torch, x, y, [index for _, index in sampler.batches(order)]


def epoch_worker(spec):
    """One timed epoch of spec["framework"] after a few warm-up steps; both frameworks train the same
    model from the same weights on the same batches, so their mean losses should agree."""
    setup = _training(spec)
    if isinstance(setup, dict):
        return setup
    step, torch, x, y, batches = setup
    sync = synchronizer(spec["framework"], spec["device"])
    memory = PeakMemory(spec["framework"], spec["device"]).start()
    for index in batches[:spec["warmup_steps"]]:
        step(x[index], y[index])
    sync()
    started = time.perf_counter()
    losses = [step(x[index], y[index]) for index in batches]
    sync()
    seconds = time.perf_counter() - started
    return dict(seconds=seconds, samples=len(x), steps=len(batches), loss=float(np.mean(losses)),
                peak_mib=memory.stop(),
                memory_method=memory.method, blas_threads=blas_threads(),
                torch_threads=torch.get_num_threads() if torch else None,
                torch_version=torch.__version__ if torch else None)


def profile_worker(spec):
    """Where the time of a training step goes, in ms per step: the engine's ops (forward and backward
    apart, through the tape's op hooks) and its optimizer; PyTorch's ops by torch.profiler (self CPU
    time). "rest" is the step's wall time that no listed entry covers (Python, graph bookkeeping, batching)."""
    setup = _training(spec)
    if isinstance(setup, dict):
        return setup
    step, torch, x, y, batches = setup
    sync = synchronizer(spec["framework"], spec["device"])
    warmup, steps = spec["warmup_steps"], spec["profile_steps"]
    for index in batches[:warmup]:
        step(x[index], y[index])
    sync()
    if torch is None:
        recorder = timer = OpTimer()
        optimizer_step = step.optimizer.step

        def timed_optimizer_step():
            started = time.perf_counter()
            optimizer_step()
            timer.seconds["optimizer step (Adam)"] += time.perf_counter() - started
        step.optimizer.step = timed_optimizer_step
    else:
        recorder = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
    # As many steps as asked, going round the epoch's batches again when --limit leaves fewer.
    profiled = [batches[(warmup + k) % len(batches)] for k in range(steps)]
    started = time.perf_counter()
    with recorder:
        for index in profiled:
            step(x[index], y[index])
        sync()
    total = time.perf_counter() - started
    if torch is None:
        times = dict(timer.seconds)
    else:
        times = {event.key: event.self_cpu_time_total / 1e6 for event in recorder.key_averages()
                 if event.self_cpu_time_total > 0 and event.key != "ProfilerStep*"}
    rows = sorted(((name, 1e3 * seconds / steps) for name, seconds in times.items()), key=lambda r: -r[1])
    result = dict(step_ms=1e3 * total / steps, steps=steps, rows=rows,
                  torch_version=torch.__version__ if torch else None)
    if torch is None and spec["device"] == "cpu":  # one more step, to record its matrix products, then time them alone
        with ProductRecorder() as recorder:
            step(x[profiled[0]], y[profiled[0]])
        result["products"] = time_products(recorder.products)
    return result


def op_cases(n):
    """(op, shapes, inputs, call) at LeNet-5's shapes for a batch of n (and the MLP's 784-128 layer).

    Inputs are (array, requires_grad) as in training: the images need no gradient. `call(F, *inputs)`
    works with this engine's functional module and with torch.nn.functional alike."""
    rng = np.random.default_rng(0)

    def a(*shape, grad=True):
        return rng.standard_normal(shape).astype(np.float32), grad

    conv = lambda F, x, w, b: F.conv2d(x, w, b)  # noqa: E731
    pool = lambda F, x: F.max_pool2d(x, 2)  # noqa: E731
    linear = lambda F, x, w, b: F.linear(x, w, b)  # noqa: E731
    relu = lambda F, x: F.relu(x)  # noqa: E731
    xent = lambda F, z, t: F.cross_entropy(z, t)  # noqa: E731
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


def ops_worker(spec):
    """Forward and backward times (ms) of every op case in one framework, `reps` of each after `warmup`.

    Each framework times its ops in a process of its own: in one process, the threads that one
    framework's BLAS leaves spinning after its call take the cores from the other's next op."""
    framework, device = spec["framework"], spec["device"]
    if framework == "torch":
        torch, error = _torch_or_error(spec)
        if error:
            return {"error": error}
        module, make = torch.nn.functional, lambda arr, grad: torch.from_numpy(arr).to(device).requires_grad_(grad)
    else:
        from .. import functional as module
        from ..tensor import Tensor
        make = lambda arr, grad: Tensor(arr, requires_grad=grad, device=device)  # noqa: E731
    sync = synchronizer(framework, device)
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


def form_cases(n):
    """(what, shapes, chosen, alternative) at LeNet-5's shapes for a batch of n: the two ways of
    computing one result that ops.py chooses between on the CPU, as functions of no argument."""
    rng = np.random.default_rng(0)
    a = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    k1, k2 = 24 * 24 * n, 8 * 8 * n  # the columns of conv1 and conv2: output pixels × batch
    g1, cols1, g2, cols2 = a(6, k1), a(26, k1), a(16, k2), a(151, k2)  # 25 (or 150) kernel rows and the bias row
    cases = [("conv1 weight gradient: a matrix-vector product per channel, or one GEMM", f"g (6,{k1}) colsᵀ",
              lambda: ops.weight_grad(g1, cols1), lambda: g1 @ cols1.T),
             ("conv2 weight gradient: (cols gᵀ)ᵀ, or g colsᵀ", f"g (16,{k2}) colsᵀ",
              lambda: ops.weight_grad(g2, cols2), lambda: g2 @ cols2.T)]
    for rows in (5, 6, 7):
        w = a(rows, 26)
        cases.append((f"forward product with {rows} output channels: padded to 8 rows, or as it is",
                      f"w ({rows},26) cols (26,{k1})", lambda w=w: (ops.gemm_weights(w) @ cols1)[:len(w)], lambda w=w: w @ cols1))
    # The convolution's band sizes (ops.FORWARD_BAND_BYTES, ops.BACKWARD_BAND_BYTES) against half, twice,
    # and all the columns in one band; LeNet-5's conv2 and the PyTorch example's conv2 (32→64, 3×3, 26×26).
    # Then the least columns in a band (ops.MIN_BAND_COLUMNS) against none, on resnet's 64→64 convolution
    # at 7×7, where one output row's columns already pass the byte budget.
    chosen = (ops.FORWARD_BAND_BYTES, ops.BACKWARD_BAND_BYTES, ops.MIN_BAND_COLUMNS)
    for label, x_shape, w_shape in (("LeNet-5 conv2", (n, 6, 12, 12), (16, 6, 5, 5)),
                                    ("example conv2", (n, 32, 26, 26), (64, 32, 3, 3))):
        conv = conv_step(a(*x_shape), a(*w_shape))
        for name, factor in (("half that", 0.5), ("twice that", 2), ("all the columns at once", math.inf)):
            cases.append((f"{label} forward and backward: columns in bands of {chosen[0] >> 20} and "
                          f"{chosen[1] >> 20} MiB, or {name}", f"x {x_shape} w {w_shape}",
                          lambda conv=conv: conv(*chosen),
                          lambda conv=conv, f=factor: conv(f * chosen[0], f * chosen[1], chosen[2])))
    x_shape, w_shape = (n, 64, 7, 7), (64, 64, 3, 3)
    conv = conv_step(a(*x_shape), a(*w_shape), padding=1)
    cases.append((f"resnet 64→64 conv forward and backward: bands of at least {chosen[2]} columns, or no least",
                  f"x {x_shape} w {w_shape}", lambda: conv(*chosen), lambda: conv(chosen[0], chosen[1], 0)))
    x = a(6, 12, 12, n).transpose(3, 0, 1, 2)  # laid out as conv and pool leave it: batch innermost
    cases.append(("ReLU forward: maximum against an array of zeros, or against the scalar 0",
                  f"({n},6,12,12), batch innermost", lambda: ops.ReLU(()).forward(x), lambda: np.maximum(x, 0)))
    return cases


def conv_step(x, w, padding=0):
    """A function of (forward band bytes, backward band bytes, least band columns) that runs
    conv2d(x, w, padding=padding) forward and backward with the columns built in bands so sized."""
    x, w = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    names = ("FORWARD_BAND_BYTES", "BACKWARD_BAND_BYTES", "MIN_BAND_COLUMNS")

    def step(forward_bytes, backward_bytes, min_columns):
        chosen = [getattr(ops, name) for name in names]
        for name, value in zip(names, (forward_bytes, backward_bytes, min_columns)):
            setattr(ops, name, value)
        try:
            x.grad = w.grad = None
            ops.Conv2d.apply(x, w, padding=padding).sum().backward()
        finally:
            for name, value in zip(names, chosen):
                setattr(ops, name, value)
    return step


def forms_worker(spec):
    """The median ms of each form_cases pair, the two forms alternating rep by rep after `warmup` reps."""
    rows = []
    for what, shapes, chosen, alternative in form_cases(spec["batch_size"]):
        times = {"chosen": [], "alternative": []}
        for rep in range(spec["warmup"] + spec["reps"]):
            for name, form in (("chosen", chosen), ("alternative", alternative)):
                started = time.perf_counter()
                form()
                if rep >= spec["warmup"]:
                    times[name].append(1e3 * (time.perf_counter() - started))
        rows.append(dict(form=what, shapes=shapes, chosen_ms=float(np.median(times["chosen"])),
                         alternative_ms=float(np.median(times["alternative"]))))
    return dict(rows=rows)


def time_to_target_worker(spec):
    """Train a recipe, evaluating on the test set every `eval_every` steps and at each epoch's end, until
    the test accuracy reaches the target; wall time counts from this process's start."""
    config = make_config(spec["model"], epochs=spec["epochs"], lr=spec["lr"], batch_size=spec["batch_size"],
                         schedule=spec["schedule"], label_smoothing=spec.get("label_smoothing"),
                         augment=spec.get("augment"), val_size=0,
                         limit_train=spec["limit"],
                         data_dir=spec["data_dir"], device=spec["device"], seed=spec["seed"])
    backend.manual_seed(config["seed"])
    rng = np.random.default_rng(config["seed"])
    arrays = prepare_data(config)
    (x, y), (test_x, test_y) = arrays["train"], arrays["test"]
    loaded = process_seconds()
    model = build_model(config["model"], dropout=config["dropout"]).to(config["device"]).train()
    sampler = BatchSampler(len(x), config["batch_size"])
    step = EngineStep(model, config, sampler.steps_per_epoch)
    history, global_step = [], 0
    result = lambda **more: dict(config=config, eval_every=spec["eval_every"], loaded_s=loaded,  # noqa: E731
                                 history=history, reached=None, **more)
    for epoch, k, index in sampler.epochs(rng, config["epochs"]):
        loss = step(*take_batch(x, y, index, rng, augmentation(config)))
        global_step += 1
        if not math.isfinite(loss):
            return result(error=f"the loss became {loss} at step {global_step}")
        if (spec["eval_every"] and global_step % spec["eval_every"] == 0) or k == sampler.steps_per_epoch - 1:
            accuracy = evaluate(model, test_x, test_y, config["eval_batch_size"], config["device"]).accuracy
            model.train()
            history.append(dict(epoch=epoch + 1, step=global_step, accuracy=accuracy, seconds=process_seconds()))
            if accuracy >= spec["target"]:
                return dict(result(), reached=history[-1])
    return result()


WORKERS = {"epoch": epoch_worker, "ops": ops_worker, "forms": forms_worker, "profile": profile_worker,
           "time_to_target": time_to_target_worker}


def run_worker(spec_json):
    """What a worker process runs: the spec's worker, its result printed as one line of JSON."""
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


def spawn_alternating(spec, round_index, threads, skip_torch=False):
    """(framework, result) for the engine and PyTorch each running `spec` in a worker, the engine first
    in even rounds and PyTorch first in odd ones (A B, then B A); PyTorch not at all with skip_torch."""
    order = ("engine", "torch") if round_index % 2 == 0 else ("torch", "engine")
    for framework in order:
        if not (framework == "torch" and skip_torch):
            yield framework, spawn(dict(spec, framework=framework), threads)
