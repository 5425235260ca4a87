"""Checkpoints: nested dicts of arrays and plain values, in .npz files that never run code when loaded.

`{"model": {"conv1.weight": w}, "epoch": 3}` is stored as the array member `model/conv1.weight`,
a `__meta__` member holding the JSON of everything that is not an array (`{"model": {}, "epoch": 3}`)
and `__format_version__`. Loading uses `allow_pickle=False` and refuses anything that would need pickle.

What JSON and member names cannot say is listed in a `__kinds__` member (format 2), by "/"-joined path:
"int_keys" for a dict with int keys (PyTorch's optimizer state: `{"state": {0: ...}}`), "list" or "tuple"
for a list or tuple stored as a dict of "0", "1", ... because it holds dicts, arrays or tuples (its
`param_groups`), and "tuple" for a tuple of plain values kept as a JSON list (`betas`).

This module is the one place that knows that layout, and (`run_weights`, `inference_weights`) which
checkpoint of a run folder and which weights in it its results describe.
"""
import copy
import json
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .files import atomic_write

FORMAT_VERSION = 2

_VERSION = "__format_version__"
_META = "__meta__"
_KINDS = "__kinds__"
_PLAIN = (type(None), bool, int, float, str)
# What zipfile, numpy's .npy reader and json raise on damaged bytes; anything else is a bug here.
_DAMAGE = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error,
           NotImplementedError, RecursionError, MemoryError, OverflowError)


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the one-line message names the file and the problem."""


def save_checkpoint(path, state):
    """Write `state` to `path` atomically: the file is the old checkpoint or the new one, never a mix.

    `state` is a dict whose keys are non-empty str without "/", "\\" or NUL ("/" joins nested keys), or
    all int, and whose values are dicts, NumPy arrays of any dtype but object, int, float, bool, str,
    None, and lists and tuples of any of these. They come back with the same types (a tuple as a
    tuple). Anything else raises ValueError before the disk is touched.
    """
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint state must be a dict, got {_type_name(state)}")
    arrays, kinds = {}, {}
    meta = _split(state, "", arrays, kinds)
    members = {_VERSION: np.array(FORMAT_VERSION), _META: np.array(json.dumps(meta)), **arrays}
    if kinds:
        members[_KINDS] = np.array(json.dumps(kinds))
    with atomic_write(path) as f:
        _write_npz(f, members)


def load_checkpoint(path):
    """The nested dict that save_checkpoint wrote to `path`. Every failure is a CheckpointError.

    Key order within a dict comes back as stored for dicts and plain values, with arrays after them.
    """
    path = os.fspath(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read it ({e.strerror or e})") from None
    with f:
        try:
            return _assemble(path, *_read_members(path, f))
        except CheckpointError:
            raise
        except _DAMAGE as e:
            raise CheckpointError(f"{path}: corrupt checkpoint ({_one_line(e)})") from e


def run_weights(run_dir):
    """The checkpoint of a run folder that holds the weights its results describe: the one results.json
    names (last.npz, the final weights of a fixed schedule; best.npz, with early stopping), else, for a
    run that has not finished, its latest (last.npz, or best.npz if that is all there is). None when
    the folder holds no checkpoint. evaluate, predict, the plots and the report all go by this."""
    run_dir = Path(run_dir)
    try:
        reported = json.loads((run_dir / "results.json").read_text())["weights"]
    except (OSError, ValueError, KeyError, TypeError):
        reported = "last"
    names = [reported, "last", "best"] if reported in ("last", "best") else ["last", "best"]
    return next((run_dir / f"{name}.npz" for name in names if (run_dir / f"{name}.npz").is_file()), None)


def inference_weights(state):
    """The model weights a training checkpoint is judged by: the moving average (the "module."
    entries of its "ema" part) for a run trained with --ema, else its "model" part."""
    ema = state.get("ema")
    if ema:
        return {k[len("module."):]: v for k, v in ema.items() if k.startswith("module.")}
    return state.get("model", {})


def rng_state(rng):
    """A copy of `rng`'s bit generator state; save_checkpoint stores it exactly, 128-bit ints included."""
    return copy.deepcopy(rng.bit_generator.state)


def set_rng_state(rng, state):
    """Put `rng` back where rng_state found it, so that it continues bit for bit."""
    expected = type(rng.bit_generator).__name__
    found = state.get("bit_generator") if isinstance(state, dict) else None
    if found != expected:
        raise CheckpointError(f"rng state is for bit generator {found!r}, this generator uses {expected!r}")
    rng.bit_generator.state = state


def _split(tree, prefix, arrays, kinds):
    """Move the arrays out of dict `tree` into `arrays`, under their "/"-joined keys, note in `kinds` what
    JSON would lose, and return the rest."""
    path = prefix.rstrip("/")
    ints = [isinstance(k, int) and not isinstance(k, bool) for k in tree]
    if any(ints) and not all(ints):
        raise ValueError(f"checkpoint dict {path or '(top level)'!r} mixes int and str keys: use one kind")
    if any(ints):
        kinds[path] = "int_keys"
    rest = {}
    for key, value in tree.items():
        if isinstance(key, int) and not isinstance(key, bool):
            key = str(key)
        elif not isinstance(key, str) or not key or any(c in key for c in "/\\\0"):
            # "/" would make the flat key ambiguous; zipfile rewrites "\\" on Windows and cuts names at NUL
            raise ValueError(f"checkpoint key {prefix + str(key)!r}: keys must be non-empty str "
                             "without '/', '\\' or NUL ('/' joins nested keys), or int")
        if not prefix and key in (_VERSION, _META, _KINDS):
            raise ValueError(f"checkpoint key {key!r} is reserved for the file format")
        name = prefix + key
        if type(value) in (list, tuple) and not _is_plain_list(value):
            kinds[name] = type(value).__name__
            value = {str(i): v for i, v in enumerate(value)}
        if isinstance(value, dict):
            rest[key] = _split(value, name + "/", arrays, kinds)
        elif isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise ValueError(f"checkpoint value {name!r} holds Python objects (dtype {value.dtype}), "
                                 "which only pickle could store")
            arrays[name] = value
        else:
            if type(value) is tuple:
                kinds[name] = "tuple"
                value = list(value)
            _check_plain(value, name)
            rest[key] = value
    return rest


def _is_plain_list(value):
    """Whether `value` holds only plain values and lists of them, so that JSON keeps it as it is (a tuple
    of those is stored as a list, its kind noted); anything else in it is stored like a dict."""
    return all(type(v) in _PLAIN or (type(v) is list and _is_plain_list(v)) for v in value)


def _check_plain(value, name):
    # exact types: a numpy scalar or an int subclass would come back from JSON as another type
    if type(value) in _PLAIN:
        return
    if type(value) is list:
        for i, item in enumerate(value):
            _check_plain(item, f"{name}[{i}]")
        return
    hint = ("; use x.item() or np.asarray(x)" if isinstance(value, np.generic) else
            "; use x.numpy(), or tinygrad_mnist.save, which stores tensors" if hasattr(value, "numpy") else "")
    raise ValueError(f"checkpoint value {name!r} is a {_type_name(value)}, which a checkpoint cannot give back "
                     f"as such: use a dict, a NumPy array, int, float, bool, str, None, or lists and tuples of "
                     f"those{hint}")


def _type_name(value):
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _write_npz(f, members):
    # What np.savez does, minus its keyword arguments: a key named "file" or "allow_pickle" would clash
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in members.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def _read_members(path, f):
    head = f.read(8)
    f.seek(0)
    if not head:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")
    if head.startswith(b"\x93NUMPY"):
        raise CheckpointError(f"{path}: a plain .npy array, not a checkpoint (.npz)")
    if head.startswith(b"\x80"):
        raise CheckpointError(f"{path}: refusing to load: a pickle file, not a checkpoint")
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise CheckpointError(f"{path}: not a checkpoint (not an .npz archive)")
    with np.load(f, allow_pickle=False) as npz:
        broken = npz.zip.testzip()
        if broken is not None:
            raise CheckpointError(f"{path}: corrupt checkpoint (member {broken!r} fails its CRC check)")
        if _VERSION not in npz.files:
            raise CheckpointError(f"{path}: not a tinygrad_mnist checkpoint (no {_VERSION})")
        version = _read_array(path, npz, _VERSION)
        _check_version(path, version)
        return int(version), {name: _read_array(path, npz, name) for name in npz.files if name != _VERSION}


def _read_array(path, npz, name):
    try:
        value = npz[name]
    except ValueError as e:
        if "allow_pickle" in str(e):  # numpy's way of saying the member is a pickled object array
            raise CheckpointError(f"{path}: refusing to load: member {name!r} contains a pickled object") from None
        raise
    if not isinstance(value, np.ndarray):  # npz gives a member without the .npy magic as raw bytes
        raise CheckpointError(f"{path}: corrupt checkpoint (member {name!r} is not an .npy array)")
    return value


def _check_version(path, version):
    if version.ndim != 0 or version.dtype.kind not in "iu" or version < 1:
        raise CheckpointError(f"{path}: garbled {_VERSION}: {_one_line(repr(version))[:80]}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer tinygrad_mnist (format {int(version)}, "
                              f"this one reads up to {FORMAT_VERSION}): upgrade")


def _assemble(path, version, members):
    """Put the arrays back into the dict that __meta__ holds, at the places their keys name, then give
    back the int keys, lists and tuples that __kinds__ lists."""
    meta = members.pop(_META, None)
    kinds = members.pop(_KINDS, None) if version >= 2 else None  # format 1 had no kinds: an ordinary key there
    if meta is None:
        raise CheckpointError(f"{path}: corrupt checkpoint (no {_META})")
    state = _json_member(path, _META, meta)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: corrupt checkpoint ({_META} holds a {type(state).__name__}, not a dict)")
    for name, array in members.items():
        *parents, leaf = keys = name.split("/")
        if "" in keys:
            raise CheckpointError(f"{path}: corrupt checkpoint (member {name!r} has an empty key)")
        node = state
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise CheckpointError(f"{path}: corrupt checkpoint (member {name!r} lies under a non-dict value)")
        if leaf in node:
            raise CheckpointError(f"{path}: corrupt checkpoint ({name!r} is stored twice)")
        node[leaf] = array
    if kinds is not None:
        kinds = _json_member(path, _KINDS, kinds)
        if not isinstance(kinds, dict):
            raise CheckpointError(f"{path}: corrupt checkpoint ({_KINDS} holds a {type(kinds).__name__}, not a dict)")
        state = _restore_kinds(path, state, kinds)
    return state


def _json_member(path, name, member):
    if member.ndim != 0 or member.dtype.kind != "U":
        raise CheckpointError(f"{path}: corrupt checkpoint ({name} is a {member.dtype} array, not a str)")
    return json.loads(member.item())


def _restore_kinds(path, state, kinds):
    """`state` with each path that `kinds` names made an int-keyed dict, a list or a tuple, deepest first
    (so that the parents of a path are still the dicts its keys name)."""
    def corrupt(why):
        return CheckpointError(f"{path}: corrupt checkpoint ({_KINDS}: {why})")

    if not all(isinstance(where, str) for where in kinds):
        raise corrupt("a path that is not a str")
    root = {"": state}
    for where in sorted(kinds, key=lambda where: -(where.count("/") + 1 if where else 0)):
        *parents, key = ["", *where.split("/")] if where else [""]
        parent = root
        for part in parents:
            parent = parent.get(part) if isinstance(parent, dict) else None
        node, kind = parent.get(key) if isinstance(parent, dict) else None, kinds[where]
        if kind == "int_keys" and isinstance(node, dict):
            if not all(_is_int_key(k) for k in node):
                raise corrupt(f"{where!r} should have int keys, has {sorted(node)[:3]}")
            parent[key] = {int(k): v for k, v in node.items()}
        elif kind in ("list", "tuple") and isinstance(node, dict):
            if set(node) != {str(i) for i in range(len(node))}:
                raise corrupt(f"{where!r} should be a {kind} of items 0, 1, ..., has keys {sorted(node)[:3]}")
            items = [node[str(i)] for i in range(len(node))]
            parent[key] = items if kind == "list" else tuple(items)
        elif kind == "tuple" and isinstance(node, list):
            parent[key] = tuple(node)
        else:
            raise corrupt(f"{where!r} is a {type(node).__name__}, which cannot be made {_one_line(repr(kind))[:40]}")
    if not isinstance(root[""], dict):
        raise corrupt("the top level is made a list or tuple, not a dict")
    return root[""]


def _is_int_key(key):
    try:
        return str(int(key)) == key  # not " 1", "01", "1_0" or "١": those were str keys
    except ValueError:
        return False


def _one_line(e):
    text = f"{type(e).__name__}: {e}" if isinstance(e, BaseException) else str(e)
    return " ".join(text.split())
