"""torch.save / torch.load for what the engine saves (state dicts: names → tensors, nested dicts and plain
values), on the no-pickle .npz checkpoint format: loading a file never runs code."""
import os
import zipfile

import numpy as np

from . import backend
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .tensor import Tensor


def _to_arrays(obj):
    if isinstance(obj, Tensor):
        return backend.to_numpy(obj.array).copy()
    if isinstance(obj, dict):
        return {k: _to_arrays(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) and any(isinstance(v, (Tensor, np.ndarray, dict)) for v in obj):
        raise TypeError("save: lists of tensors are not supported; put them in a dict with str keys")
    return obj


def _to_tensors(obj):
    if isinstance(obj, np.ndarray):
        return Tensor(obj)
    return {k: _to_tensors(v) for k, v in obj.items()} if isinstance(obj, dict) else obj


def save(obj, f):
    """Write `obj` (a state dict, or a dict of them and plain values) to the path `f`, atomically."""
    if not isinstance(obj, dict):
        raise TypeError(f"save: expected a dict (a state_dict, or a dict of them), got {type(obj).__name__}; "
                        "whole modules are not saved (that would need pickle): save model.state_dict()")
    save_checkpoint(f, _to_arrays(obj))


def load(f, map_location=None, weights_only=True):
    """What `save` wrote to `f`, arrays as CPU Tensors (or on `map_location`). A plain .npz of named arrays
    also loads, as a flat dict: e.g. a PyTorch state dict exported with
    `np.savez(path, **{k: v.numpy() for k, v in model.state_dict().items()})`."""
    path = os.fspath(f)
    try:
        with np.load(path, allow_pickle=False) as npz:
            ours = "__format_version__" in npz.files
            flat = None if ours else {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path}: not an .npz file that loads without pickle ({e})") from None
    tree = _to_tensors(load_checkpoint(path) if ours else flat)
    if map_location is not None:
        tree = _moved(tree, map_location)
    return tree


def _moved(tree, device):
    if isinstance(tree, Tensor):
        return tree.to(str(device))
    return {k: _moved(v, device) for k, v in tree.items()} if isinstance(tree, dict) else tree
