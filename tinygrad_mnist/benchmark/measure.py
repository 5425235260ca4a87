"""What the benchmark measures with: wall time from the process's start, peak memory, the threads
each framework runs, an op timer on the tape's hooks, and the machine itself."""
import collections
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .. import backend, ops
from ..tensor import op_hooks

_IMPORTED = time.perf_counter()


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


def synchronizer(framework, device):
    """A function that waits for the device's queued work (nothing to wait for on the CPU)."""
    if device != "cuda":
        return lambda: None
    if framework == "torch":
        import torch
        return torch.cuda.synchronize
    return backend.array_module("cuda").cuda.Device().synchronize


def numpy_blas():
    """threadpoolctl's record of NumPy's BLAS (its threads, its kernels, ...); None where it finds none."""
    from threadpoolctl import threadpool_info
    return next((i for i in threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]), None)


def blas_threads():
    """The threads NumPy's BLAS uses, as threadpoolctl finds them; None where it finds no BLAS."""
    blas = numpy_blas()
    return blas["num_threads"] if blas else None


class OpHook:
    """A tool on the tape's op hooks for the length of a `with` block: subclasses define
    forward_pre(fn, arrays) and forward_post(fn, arrays), which every op calls around its forward."""

    def __enter__(self):
        op_hooks.append(self)
        return self

    def __exit__(self, *exc):
        op_hooks.remove(self)
        return False

    def forward_pre(self, fn, arrays):
        pass

    def forward_post(self, fn, arrays):
        pass


class OpTimer(OpHook):
    """Seconds spent in each op of the engine, forward and backward apart, keyed "op (first input
    shape) forward" and "... backward", as Chainer's TimerHook: ops run under `with OpTimer() as t:`
    report to it through the tape's op hooks. The backward of each node recorded meanwhile is timed
    when it runs, later."""

    def __init__(self):
        self.seconds = collections.defaultdict(float)

    def forward_pre(self, fn, arrays):
        self._started = time.perf_counter()

    def forward_post(self, fn, arrays):
        key = f"{type(fn).__name__.lower()} ({','.join(map(str, arrays[0].shape))})"
        self.seconds[key + " forward"] += time.perf_counter() - self._started
        backward = fn.backward

        def timed_backward(g):  # this node's own, not the class's: other nodes stay as they are
            started = time.perf_counter()
            grads = backward(g)
            self.seconds[key + " backward"] += time.perf_counter() - started
            return grads
        fn.backward = timed_backward


class ProductRecorder(OpHook):
    """The matrix products that the engine's Conv2d, Linear and MatMul nodes compute in a training step,
    forward and backward, recorded through the tape's op hooks while the step runs (`with
    ProductRecorder() as r:`) as (form, a, b): form "matmul" (a @ b) or "weight_grad" (ops.weight_grad,
    the form Conv2d's weight gradient takes), each operand as (shape, transposed), where transposed
    means a transposed view of a C-ordered array, as the op passes it. A convolution's products come
    a band of output rows at a time, as the op makes them. Batched or 1-D MatMul operands are left out.
    (CPU arrays: the bands are the CPU's.)"""

    def __init__(self):
        self.products = []

    def forward_post(self, fn, arrays):
        name, grads = type(fn).__name__, fn.needs_input_grad
        if name == "Conv2d":
            self.products += conv_products(fn, arrays)
        elif name == "Linear":
            x, w = arrays[0], arrays[1]
            m, (o, i) = int(np.prod(x.shape[:-1])), w.shape
            self.products.append(("matmul", ((m, i), False), ((i, o), True)))
            if grads[0]:
                self.products.append(("matmul", ((m, o), False), ((o, i), False)))
            if grads[1]:
                self.products.append(("matmul", ((o, m), True), ((m, i), False)))
        elif name == "MatMul" and arrays[0].ndim == arrays[1].ndim == 2:
            (m, k), (_, n) = arrays[0].shape, arrays[1].shape
            self.products.append(("matmul", ((m, k), False), ((k, n), False)))
            if grads[0]:
                self.products.append(("matmul", ((m, n), False), ((n, k), True)))
            if grads[1]:
                self.products.append(("matmul", ((k, m), True), ((m, n), False)))


def conv_products(fn, arrays):
    """A Conv2d node's products, as ops.Conv2d computes them: out = W X over the im2col columns X
    (C·kh·kw [+ 1 for the bias], N·Ho·Wo), W with its rows padded as gemm_weights pads them; dW = G Xᵀ by
    weight_grad; dX = Wᵀ G; each a band of output rows at a time, in the bands the op makes
    (Conv2d.band_plan). In the general form (groups, dilation, uneven padding), one
    product per group, over all the columns at once, as the op makes them."""
    x, w = arrays[0], arrays[1]
    has_b = int(len(arrays) > 2)  # the bias, when there is one, is the third input
    n, _, h, wd = x.shape
    o, c, kh, kw = w.shape
    rows = c * kh * kw
    if fn.general:
        (s_h, s_w), (d_h, d_w) = (ops._pair(fn.stride), ops._pair(fn.dilation))
        top, bottom, left, right = fn.padding
        ho = (h + top + bottom - d_h * (kh - 1) - 1) // s_h + 1
        wo = (wd + left + right - d_w * (kw - 1) - 1) // s_w + 1
        g, k = fn.groups, n * ho * wo
        products = [("matmul", ((g, o // g, rows), False), ((g, rows, k), False))]
        if fn.needs_input_grad[1]:
            products.append(("matmul", ((g, o // g, k), False), ((g, k, rows), True)))
        if fn.needs_input_grad[0]:
            products.append(("matmul", ((g, rows, o // g), True), ((g, o // g, k), False)))
        return products
    ho, wo = (h + 2 * fn.padding - kh) // fn.stride + 1, (wd + 2 * fn.padding - kw) // fn.stride + 1
    rows_out = ops.gemm_weights(w[:, :1, :1, :1]).shape[0]  # o, or the 8 rows it pads 5 to 7 to
    k_rows = rows + has_b

    def bands(height):
        return [min(height, ho - y) * wo * n for y in range(0, ho, height)]
    forward, _, backward = ops.Conv2d.band_plan(k_rows, ho, wo * n, x, any(fn.needs_input_grad[1:]))
    products = [("matmul", ((rows_out, k_rows), False), ((k_rows, k), False)) for k in bands(forward)]
    for k in bands(backward):
        if any(fn.needs_input_grad[1:]):
            products.append(("weight_grad", ((o, k), False), ((k_rows, k), False)))
        if fn.needs_input_grad[0]:
            products.append(("matmul", ((rows, o), False), ((o, k), False)))
    return products


def time_products(products, dtype=np.float32, reps=5):
    """Milliseconds that the `products` (ProductRecorder's) take alone, each on random operands of its
    shapes and layout: the median of `reps` timings of the whole list, after one untimed pass. Also
    their floating-point operations, in billions."""
    rng = np.random.default_rng(0)

    def operand(shape, transposed):
        if not transposed:
            return rng.standard_normal(shape, dtype=np.float32).astype(dtype)
        return rng.standard_normal((*shape[:-2], shape[-1], shape[-2]), dtype=np.float32).astype(dtype).swapaxes(-1, -2)

    # one pair of operands per distinct product, made once; each product then runs as often as the step has it
    calls = [(ops.weight_grad if form == "weight_grad" else np.matmul, operand(*a), operand(*b), count)
             for (form, a, b), count in collections.Counter(products).items()]
    times = []
    for _ in range(reps + 1):
        started = time.perf_counter()
        for f, left, right, count in calls:
            for _ in range(count):
                f(left, right)
        times.append(time.perf_counter() - started)
    flops = sum(2 * np.prod(a[0][:-1]) * a[0][-1] * b[0][-1] if form == "matmul" else 2 * np.prod(a[0]) * b[0][0]
                for form, a, b in products)
    return dict(ms=1e3 * float(np.median(times[1:])), products=len(products), gflop=float(flops) / 1e9)


def machine_info():
    """What a table's figures depend on beyond the code: the CPU (its caches and vector extensions, which
    decide how fast the copies and the BLAS kernels run), the libraries, the date and the commit (naming
    any uncommitted files, so that a table measured beside a regenerated doc is not taken for changed
    code)."""
    info = dict(cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                python=platform.python_version(), numpy=np.__version__, blas="unknown")
    # Whether a fresh process reads the package's compiled bytecode or compiles its source again (about
    # 0.1 s of each time-to-target run's start on the 2-core EPYC): PYTHONDONTWRITEBYTECODE turns the cache off.
    info["bytecode_cache"] = "off (PYTHONDONTWRITEBYTECODE)" if sys.dont_write_bytecode else "on"
    info.update(cpu_details())
    info["date"] = time.strftime("%Y-%m-%d %H:%M %Z")
    info["commit"] = commit_stamp()
    if hasattr(os, "sched_getaffinity"):
        info["usable_cores"] = len(os.sched_getaffinity(0))
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy has no mode="dicts"
        pass
    info["blas_kernels"] = blas_architecture()
    return info


def cpu_details():
    """The CPU's name, family and model, widest vector extension and cache sizes, as Linux reports them
    (/proc/cpuinfo, /sys/devices/system/cpu/cpu0/cache); {} elsewhere."""
    details = {}
    try:
        first_cpu = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
        fields = {key.strip(): value.strip() for key, value in
                  (line.split(":", 1) for line in first_cpu.splitlines() if ":" in line)}
        if "model name" in fields:
            details["cpu"] = fields["model name"]
        if "cpu family" in fields and "model" in fields:
            details["cpu_family_model"] = f"family {fields['cpu family']}, model {fields['model']}"
        flags = set(fields.get("flags", "").split())
        details["simd"] = next((name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"),
                                                         ("sse4_2", "SSE4.2")) if flag in flags), None)
    except OSError:
        pass
    caches = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind, size = ((index / name).read_text().strip() for name in ("level", "type", "size"))
        except OSError:
            continue
        if kind != "Instruction":
            caches.append(f"L{level} {size}")
    if caches:
        details["caches"] = "caches " + ", ".join(caches)
    return details


def blas_architecture():
    """The kernels NumPy's BLAS chose for this CPU (OpenBLAS's core name, e.g. Haswell or SkylakeX), or None."""
    try:
        blas = numpy_blas()
    except Exception:  # threadpoolctl missing or failing: the name is only informative
        return None
    return blas.get("architecture") if blas else None


def commit_stamp():
    """HEAD's short hash, with the uncommitted files named (the first three, then how many more)."""
    try:
        here = Path(__file__).parent
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=here).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True,
                                cwd=here).stdout.splitlines()
    except OSError:
        return "n/a"
    if not head:
        return "n/a"
    paths = [line[3:].strip() for line in status if line.strip()]
    if not paths:
        return head
    named = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    return f"{head} (with uncommitted changes: {named})"


def load_average():
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None
