"""What checkpoints looked like before format 2 and PyTorch's optimizer layout, written as that code wrote
them, so that tests can check that they still load."""
import json

import numpy as np


def old_optimizer_layout(state):
    """An optimizer state dict as state_dict gave it before PyTorch's layout: str keys, a dict of groups,
    NumPy arrays, the step an int, tuples as lists."""
    def plain(value):
        value = value.numpy() if hasattr(value, "numpy") else value
        if isinstance(value, np.ndarray) and value.ndim == 0:
            return value.item()
        return list(value) if isinstance(value, tuple) else value

    return {"state": {str(i): {k: int(plain(v)) if k == "step" else np.array(plain(v)) for k, v in s.items()}
                      for i, s in state["state"].items()},
            "param_groups": {str(i): {k: plain(v) for k, v in g.items()} for i, g in enumerate(state["param_groups"])}}


def save_as_format_1(path, state):
    """What save_checkpoint wrote before format 2: every array a member under its "/"-joined keys (all
    str), the rest the JSON in __meta__, and no __kinds__."""
    arrays = {}

    def split(tree, prefix):
        rest = {}
        for key, value in tree.items():
            if isinstance(value, dict):
                rest[key] = split(value, f"{prefix}{key}/")
            elif isinstance(value, np.ndarray):
                arrays[prefix + key] = value
            else:
                rest[key] = value
        return rest

    meta = split(state, "")
    np.savez(path, **arrays, __meta__=np.array(json.dumps(meta)), __format_version__=np.array(1))
