"""The backend switch: NumPy arrays on "cpu", CuPy arrays on "cuda".

Every op asks `get_array_module(*arrays)` for its array module, so the same op code runs on both.
"""
import os

import numpy as np

DEVICES = ("cpu", "cuda")


class DeviceError(RuntimeError):
    """A device that cannot be used, or tensors on different devices in one op."""


def _cupy():
    try:
        import cupy
    except ImportError:
        raise DeviceError("device 'cuda' needs CuPy and an NVIDIA GPU: pip install 'tinygrad_mnist[gpu]' "
                          "(or the cupy-cudaXXx wheel matching your CUDA), or use device='cpu'") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CuPy raises its own CUDA errors when no driver or GPU is present
        raise DeviceError(f"device 'cuda': CuPy is installed but no GPU is usable ({e}); use device='cpu'") from None
    if count == 0:
        raise DeviceError("device 'cuda': CuPy found no GPU; use device='cpu'")
    return cupy


class device(str):
    """torch.device: "cpu" or "cuda" ("cuda:0" names the one GPU we drive). A str, so it goes wherever
    a device name does."""

    def __new__(cls, type, index=None):
        return super().__new__(cls, normalize_device(str(type)))

    @property
    def type(self):
        return str(self)

    @property
    def index(self):
        return 0 if self == "cuda" else None


def cuda_available():
    try:
        _cupy()
    except DeviceError:
        return False
    return True


def default_device():
    """The device tensors get when none is named: $TINYGRAD_MNIST_DEVICE, else "cpu"."""
    return normalize_device(os.environ.get("TINYGRAD_MNIST_DEVICE") or "cpu")


def normalize_device(device):
    if device is None:
        return default_device()
    name = str(device).lower()
    if name.startswith("cuda:"):  # one GPU is all we drive; accept the PyTorch spelling of it
        name = "cuda"
    if name not in DEVICES:
        raise DeviceError(f"unknown device {device!r}: use 'cpu' or 'cuda'")
    return name


def array_module(device):
    """numpy for "cpu", cupy for "cuda" (raising a clear DeviceError when CuPy or a GPU is missing)."""
    return _cupy() if normalize_device(device) == "cuda" else np


def is_cupy_array(array):
    kind = type(array)
    return kind is not np.ndarray and kind.__module__.split(".")[0] == "cupy"  # asked of every op's arrays


def get_array_module(*arrays):
    """The array module of the given arrays, in the spirit of cupy.get_array_module."""
    for a in arrays:
        if is_cupy_array(a):
            import cupy
            return cupy
    return np


def device_of(array):
    return "cuda" if is_cupy_array(array) else "cpu"


def to_numpy(array):
    return array.get() if is_cupy_array(array) else np.asarray(array)


def to_device(array, device):
    device = normalize_device(device)
    if device == device_of(array):
        return array
    if device == "cpu":
        return array.get()
    return _cupy().asarray(array)


_seed = 0
_generators = {}


def manual_seed(seed):
    """Reseed the random generators that ops (dropout) draw from, on every device."""
    global _seed
    _seed = int(seed)
    _generators.clear()


def generator(device):
    """The random generator that ops on `device` draw from."""
    device = normalize_device(device)
    if device not in _generators:
        _generators[device] = array_module(device).random.default_rng(_seed)
    return _generators[device]


def get_rng_state():
    """The CPU generator's state (a plain dict), for checkpoints that must resume bit for bit."""
    return {"seed": _seed, "cpu": generator("cpu").bit_generator.state}


def set_rng_state(state):
    manual_seed(state["seed"])
    generator("cpu").bit_generator.state = state["cpu"]
