"""What the benchmark measures with: wall time from the process's start, peak memory, the threads
each framework runs, an op timer on the tape's hooks, and the machine itself."""
import collections
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

from .. import backend
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


def blas_threads():
    """The threads NumPy's BLAS uses, as threadpoolctl finds them; None where it finds no BLAS."""
    from threadpoolctl import threadpool_info
    return next((i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]),
                None)


class OpTimer:
    """Seconds spent in each op of the engine, forward and backward apart, keyed "op (first input
    shape) forward" and "... backward", as Chainer's TimerHook: ops run under `with OpTimer() as t:`
    report to it through the tape's op hooks. The backward of each node recorded meanwhile is timed
    when it runs, later."""

    def __init__(self):
        self.seconds = collections.defaultdict(float)

    def __enter__(self):
        op_hooks.append(self)
        return self

    def __exit__(self, *exc):
        op_hooks.remove(self)
        return False

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


def load_average():
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None
