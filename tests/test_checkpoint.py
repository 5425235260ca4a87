import json
import math
import os
import pathlib
import pickle
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_mnist import checkpoint
from tinygrad_mnist.checkpoint import (FORMAT_VERSION, CheckpointError, load_checkpoint, rng_state,
                                       save_checkpoint, set_rng_state)


def assert_identical(got, want, where="state"):
    """Same structure, same types, same values: arrays bit for bit with their dtype and shape."""
    assert type(got) is type(want), f"{where}: {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, dict):
        assert set(got) == set(want), f"{where}: keys {sorted(got, key=str)} != {sorted(want, key=str)}"
        for key in want:
            assert_identical(got[key], want[key], f"{where}/{key}")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), f"{where}: length {len(got)} != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_identical(g, w, f"{where}[{i}]")
    elif isinstance(want, np.ndarray):
        assert (got.dtype, got.shape) == (want.dtype, want.shape), where
        assert got.tobytes() == want.tobytes(), where
    elif isinstance(want, float) and math.isnan(want):
        assert math.isnan(got), where
    elif isinstance(want, float):
        assert got == want and math.copysign(1, got) == math.copysign(1, want), where
    else:
        assert got == want, where


def ckpt_files(folder):
    return sorted(p.name for p in pathlib.Path(folder).iterdir())


class Trap:
    """Unpickling this creates `marker`: proof that a loader ran code from the file."""

    def __init__(self, marker):
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def sample_state():
    return {
        "model": {
            "conv1.weight": np.random.default_rng(0).standard_normal((4, 1, 3, 3)).astype(np.float32),
            "conv1.bias": np.zeros(4, np.float32),
            "bn.num_batches_tracked": np.array(7, np.int64),
            "empty": np.zeros((0, 3), np.float64),
        },
        "optimizer": {"state": {"0": {"exp_avg": np.full((2, 2), -0.0), "step": 12}}, "lr": 1e-3},
        "dtypes": {
            "f16": np.array([1.5, np.inf, -np.inf, np.nan], np.float16),
            "c128": np.array([1 + 2j, -0.0j]),
            "u64": np.array([2**64 - 1, 0], np.uint64),
            "i8": np.array([[-128, 127]], np.int8),
            "bool": np.array([True, False]),
            "big_endian": np.arange(5, dtype=">f8"),
            "strided": np.arange(24, dtype=np.int32).reshape(4, 6)[::2, ::3].T,
            "text": np.array(["a", "ünï"]),
            "bytes": np.array([b"\x00x", b"y"]),
            "datetime": np.array(["2024-01-01"], "datetime64[D]"),
        },
        "epoch": 3,
        "huge_int": -(2**200) + 1,
        "floats": [0.1, -0.0, math.inf, -math.inf, 5e-324, 1.7976931348623157e308],
        "nan": math.nan,
        "flags": [True, False],
        "nothing": None,
        "name": "lenet5 ✓ \x00 \n \"quoted\"",
        "nested_list": [[1, 2.0], [], [None, "x"]],
        "no_params": {},
    }


def test_nested_state_round_trips_with_exact_types_and_values(tmp_path):
    state = sample_state()
    save_checkpoint(tmp_path / "c.npz", state)
    assert_identical(load_checkpoint(tmp_path / "c.npz"), state)


keys = st.text(st.characters(blacklist_characters="/\\\0", blacklist_categories=("Cs",)), min_size=1, max_size=6)
plain = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))
leaves = st.one_of(
    plain,
    st.lists(st.one_of(st.integers(), st.floats(), st.booleans()), max_size=4),
    hnp.arrays(st.sampled_from(["f2", "f4", ">f8", "c8", "i1", "u2", "<i8", "?", "U3", "S2", "m8[s]"]),
               hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)),
)
trees = st.recursive(leaves, lambda tree: st.one_of(
    st.dictionaries(keys, tree, max_size=3),
    st.dictionaries(st.integers(-5, 10**20), tree, max_size=3),  # PyTorch's optimizer state: {0: {...}}
    st.lists(tree, max_size=3),
    st.lists(tree, max_size=3).map(tuple)), max_leaves=8)
states = st.dictionaries(keys.filter(lambda k: k not in ("__meta__", "__format_version__", "__kinds__")), trees,
                         max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=states)
def test_generated_nested_states_round_trip_exactly(tmp_path_factory, state):
    path = tmp_path_factory.mktemp("gen") / "c.npz"
    save_checkpoint(path, state)
    assert_identical(load_checkpoint(path), state)


def test_a_pytorch_optimizer_state_dict_round_trips_with_int_keys_a_list_of_groups_and_tuples(tmp_path):
    state = {"optimizer": {
        "state": {0: {"step": np.array(3.0, np.float32), "exp_avg": np.ones((2, 2))}, 1: {}},
        "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "foreach": None, "params": [0, 1]},
                         {"lr": 0.01, "betas": (0.8, 0.9), "foreach": None, "params": []}]},
        "nested": ((1, 2.5), [np.zeros(3, np.int8), {"a": (None,)}], ()), "empty": []}
    save_checkpoint(tmp_path / "c.npz", state)
    assert_identical(load_checkpoint(tmp_path / "c.npz"), state)


def test_int_keys_lists_and_tuples_are_listed_in_kinds_and_the_rest_stays_json(tmp_path):
    save_checkpoint(tmp_path / "c.npz", {"state": {0: {"m": np.ones(2)}}, "groups": [{"betas": (0.9, 0.99)}]})
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["__format_version__", "__kinds__", "__meta__", "state/0/m"]
        assert json.loads(npz["__kinds__"].item()) == {"state": "int_keys", "groups": "list",
                                                        "groups/0/betas": "tuple"}
        assert json.loads(npz["__meta__"].item()) == {"state": {"0": {}}, "groups": {"0": {"betas": [0.9, 0.99]}}}


def test_a_format_1_file_with_a_key_named_kinds_keeps_it_as_an_ordinary_key(tmp_path):
    np.savez(tmp_path / "c.npz", __kinds__=np.ones(2), __meta__=np.array(json.dumps({"state": {"0": 1}})),
             __format_version__=np.array(1))
    assert_identical(load_checkpoint(tmp_path / "c.npz"), {"state": {"0": 1}, "__kinds__": np.ones(2)})


@pytest.mark.parametrize("kinds, meta, problem", [
    ({"state": "int_keys"}, {"state": {"x": 1}}, "'state' should have int keys"),
    ({"state": "int_keys"}, {"state": {"01": 1}}, "'state' should have int keys"),
    ({"groups": "list"}, {"groups": {"0": 1, "2": 2}}, "'groups' should be a list of items 0, 1"),
    ({"groups": "tuple"}, {"groups": 3}, "'groups' is a int, which cannot be made 'tuple'"),
    ({"missing/deeper": "list"}, {}, "'missing/deeper' is a NoneType"),
    ({"state": "set"}, {"state": {}}, "cannot be made 'set'"),
    (["state"], {"state": {}}, "holds a list, not a dict"),
    ({"": "list"}, {"0": 1}, "the top level is made a list"),
])
def test_garbled_kinds_are_refused_as_corrupt(tmp_path, kinds, meta, problem):
    np.savez(tmp_path / "c.npz", __kinds__=np.array(json.dumps(kinds)), __meta__=np.array(json.dumps(meta)),
             __format_version__=np.array(2))
    with pytest.raises(CheckpointError, match=problem):
        load_checkpoint(tmp_path / "c.npz")


def test_layout_is_a_plain_npz_with_slash_keys_meta_json_and_version(tmp_path):
    save_checkpoint(tmp_path / "c.npz", {"model": {"fc.weight": np.ones(2)}, "epoch": 3, "opt": {}})
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["__format_version__", "__meta__", "model/fc.weight"]
        assert npz["__format_version__"] == FORMAT_VERSION
        assert json.loads(npz["__meta__"].item()) == {"model": {}, "epoch": 3, "opt": {}}


def test_file_written_with_np_savez_in_the_same_layout_loads(tmp_path):
    np.savez(tmp_path / "c.npz", **{"model/w": np.eye(2)}, __meta__=np.array(json.dumps({"epoch": 1})),
             __format_version__=np.array(1))
    assert_identical(load_checkpoint(tmp_path / "c.npz"), {"model": {"w": np.eye(2)}, "epoch": 1})


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.PCG64DXSM, np.random.MT19937,
                                           np.random.Philox, np.random.SFC64])
def test_rng_state_round_trip_continues_bit_for_bit(tmp_path, bit_generator):
    rng = np.random.Generator(bit_generator(1234))
    rng.standard_normal(7)
    rng.integers(0, 10, dtype=np.uint32)  # leaves half a 64-bit draw buffered in has_uint32/uinteger
    save_checkpoint(tmp_path / "c.npz", {"rng": rng_state(rng)})
    expected = (rng.random(5), rng.integers(0, 2**32, 5, dtype=np.uint32), rng.standard_normal(3))

    resumed = np.random.Generator(bit_generator(99))
    set_rng_state(resumed, load_checkpoint(tmp_path / "c.npz")["rng"])
    got = (resumed.random(5), resumed.integers(0, 2**32, 5, dtype=np.uint32), resumed.standard_normal(3))
    for g, e in zip(got, expected):
        assert g.tobytes() == e.tobytes()


def test_rng_state_is_a_copy_that_later_draws_do_not_change():
    rng = np.random.default_rng(5)
    state = rng_state(rng)
    before = json.dumps(state)
    rng.random(10)
    assert json.dumps(state) == before


def test_set_rng_state_refuses_a_state_from_another_bit_generator():
    other = rng_state(np.random.Generator(np.random.MT19937(0)))
    with pytest.raises(CheckpointError, match="is for bit generator 'MT19937', this generator uses 'PCG64'"):
        set_rng_state(np.random.default_rng(0), other)


@pytest.mark.parametrize("state, problem", [
    ({"model/w": np.ones(1)}, "without '/'"),
    ({"model": {"a/b": 1}}, "without '/'"),
    ({"": 1}, "non-empty"),
    ({1.5: np.ones(1)}, "must be non-empty str"),
    ({True: np.ones(1)}, "must be non-empty str"),
    ({"state": {0: 1, "0": 2}}, "'state' mixes int and str keys"),
    ({"__kinds__": 1}, "reserved"),
    ({"__meta__": 1}, "reserved"),
    ({"w": np.array([{}, None], dtype=object)}, "only pickle could store"),
    ({"lr": np.float64(0.1)}, r"numpy.float64.*x.item\(\)"),
    ({"step": np.int64(3)}, r"numpy.int64.*x.item\(\)"),
    ({"shape": [(2, 3), {1, 2}]}, "'shape/1' is a set"),
    ({"xs": [1, [np.float32(2)]]}, r"'xs/1/0' is a numpy.float32"),
    ({"cfg": {"set": {1, 2}}}, "'cfg/set' is a set"),
    ([("w", np.ones(1))], "must be a dict"),
])
def test_unstorable_state_raises_value_error_before_touching_disk(tmp_path, state, problem):
    with pytest.raises(ValueError, match=problem):
        save_checkpoint(tmp_path / "c.npz", state)
    assert ckpt_files(tmp_path) == []


def test_saving_over_an_existing_checkpoint_replaces_it(tmp_path):
    save_checkpoint(tmp_path / "c.npz", {"epoch": 1, "w": np.zeros(3)})
    save_checkpoint(tmp_path / "c.npz", {"epoch": 2, "v": np.ones(2)})
    assert_identical(load_checkpoint(tmp_path / "c.npz"), {"epoch": 2, "v": np.ones(2)})
    assert ckpt_files(tmp_path) == ["c.npz"]


def test_crash_between_write_and_rename_keeps_the_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "c.npz", {"epoch": 1, "w": np.zeros(3)})

    def crash(src, dst):
        assert os.path.getsize(src) > 0  # the new checkpoint was fully written when the "power" went
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(checkpoint.os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(tmp_path / "c.npz", {"epoch": 2, "w": np.ones(3)})
    monkeypatch.undo()
    assert_identical(load_checkpoint(tmp_path / "c.npz"), {"epoch": 1, "w": np.zeros(3)})
    assert ckpt_files(tmp_path) == ["c.npz"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_checkpoint_file_gets_the_usual_umask_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "c.npz", {"epoch": 1})
    finally:
        os.umask(umask)
    assert (tmp_path / "c.npz").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("files,weights,expected", [
    (["last.npz", "best.npz"], "last", "last.npz"),  # a fixed schedule reports its final weights
    (["last.npz", "best.npz"], "best", "best.npz"),  # early stopping reports the best epoch's
    (["last.npz", "best.npz"], None, "last.npz"),    # not finished: the latest weights
    (["best.npz"], None, "best.npz"),
    (["last.npz"], "best", "last.npz"),              # whatever is there, rather than nothing
    ([], "last", None)])
def test_a_run_s_weights_are_those_its_results_describe(tmp_path, files, weights, expected):
    for name in files:
        save_checkpoint(tmp_path / name, {"model": {}})
    if weights is not None:
        (tmp_path / "results.json").write_text(json.dumps({"weights": weights}))
    assert checkpoint.run_weights(tmp_path) == (None if expected is None else tmp_path / expected)


def write_trapped_npz(path, marker):
    np.savez(path, __format_version__=np.array(1), __meta__=np.array("{}"),
             w=np.array([Trap(marker)], dtype=object), allow_pickle=True)


def test_trapped_npz_runs_code_when_loaded_with_pickle_allowed(tmp_path):
    write_trapped_npz(tmp_path / "c.npz", tmp_path / "ran")
    with np.load(tmp_path / "c.npz", allow_pickle=True) as npz:
        npz["w"]
    assert (tmp_path / "ran").exists()


def test_npz_member_holding_a_pickled_object_is_refused_without_running_it(tmp_path):
    write_trapped_npz(tmp_path / "c.npz", tmp_path / "ran")
    with pytest.raises(CheckpointError, match=r"c.npz: refusing to load: member 'w' contains a pickled object$"):
        load_checkpoint(tmp_path / "c.npz")
    assert not (tmp_path / "ran").exists()


def test_pickle_file_renamed_to_npz_is_refused_without_running_it(tmp_path):
    assert pickle.loads(pickle.dumps(Trap(tmp_path / "armed"))) is None and (tmp_path / "armed").exists()
    (tmp_path / "c.npz").write_bytes(pickle.dumps({"model": Trap(tmp_path / "ran")}))
    with pytest.raises(CheckpointError, match="c.npz: refusing to load: a pickle file, not a checkpoint$"):
        load_checkpoint(tmp_path / "c.npz")
    assert not (tmp_path / "ran").exists()


def test_plain_npy_renamed_to_npz_is_refused(tmp_path):
    with open(tmp_path / "c.npz", "wb") as f:
        np.save(f, np.ones(3))
    with pytest.raises(CheckpointError, match=r"c.npz: a plain .npy array, not a checkpoint \(.npz\)$"):
        load_checkpoint(tmp_path / "c.npz")


def test_newer_format_version_is_refused_with_upgrade_message(tmp_path):
    np.savez(tmp_path / "c.npz", __format_version__=np.array(7), __meta__=np.array("{}"))
    with pytest.raises(CheckpointError, match=r"c.npz: written by a newer tinygrad_mnist "
                                              r"\(format 7, this one reads up to 2\): upgrade$"):
        load_checkpoint(tmp_path / "c.npz")


def test_npz_without_format_version_is_refused(tmp_path):
    np.savez(tmp_path / "c.npz", w=np.ones(2))
    with pytest.raises(CheckpointError, match=r"not a tinygrad_mnist checkpoint \(no __format_version__\)$"):
        load_checkpoint(tmp_path / "c.npz")


@pytest.mark.parametrize("version", [np.array("1"), np.array([1, 1]), np.array(1.0), np.array(0)])
def test_garbled_format_version_is_refused(tmp_path, version):
    np.savez(tmp_path / "c.npz", __format_version__=version, __meta__=np.array("{}"))
    with pytest.raises(CheckpointError, match="garbled __format_version__"):
        load_checkpoint(tmp_path / "c.npz")


def test_missing_file_is_reported_as_no_such_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"missing.npz: no such file$"):
        load_checkpoint(tmp_path / "missing.npz")


def test_empty_file_is_refused(tmp_path):
    (tmp_path / "c.npz").write_bytes(b"")
    with pytest.raises(CheckpointError, match="c.npz: empty file, not a checkpoint$"):
        load_checkpoint(tmp_path / "c.npz")


def test_random_bytes_are_refused(tmp_path):
    (tmp_path / "c.npz").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match=r"c.npz: not a checkpoint \(not an .npz archive\)$"):
        load_checkpoint(tmp_path / "c.npz")


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_truncated_checkpoint_is_refused_as_corrupt(tmp_path, keep):
    save_checkpoint(tmp_path / "c.npz", sample_state())
    data = (tmp_path / "c.npz").read_bytes()
    (tmp_path / "c.npz").write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(CheckpointError, match=r"c.npz: corrupt checkpoint \(.*\)$"):
        load_checkpoint(tmp_path / "c.npz")


def test_flipped_byte_in_array_data_fails_the_crc_check(tmp_path):
    save_checkpoint(tmp_path / "c.npz", {"w": np.zeros(1000, np.uint8)})
    data = bytearray((tmp_path / "c.npz").read_bytes())
    data[data.index(bytes(1000)) + 500] = 1
    (tmp_path / "c.npz").write_bytes(data)
    with pytest.raises(CheckpointError, match=r"corrupt checkpoint \(member 'w.npy' fails its CRC check\)$"):
        load_checkpoint(tmp_path / "c.npz")


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


@pytest.fixture(scope="module")
def valid_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("valid") / "c.npz"
    save_checkpoint(path, {"model": {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(0)},
                           "epoch": 3, "lr": 0.1, "history": [1, 2.5, None],
                           "rng": rng_state(np.random.default_rng(0))})
    return path.read_bytes()


@st.composite
def damaged(draw, data):
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(buf)))
        kind = draw(st.sampled_from(["set", "set", "truncate", "insert", "delete"]))
        if kind == "set" and at < len(buf):
            buf[at] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del buf[at:]
        elif kind == "insert":
            buf[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del buf[at:at + draw(st.integers(1, 16))]
    return bytes(buf)


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_checkpoint_loads_or_raises_checkpoint_error_only(tmp_path_factory, valid_bytes, data):
    path = tmp_path_factory.mktemp("fuzz") / "c.npz"
    path.write_bytes(data.draw(damaged(valid_bytes)))
    try:
        load_checkpoint(path)
    except CheckpointError as e:
        assert "\n" not in str(e) and str(e).startswith(str(path))


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=10)


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(meta=st.one_of(json_values.map(json.dumps), st.text(max_size=40)),
       members=st.lists(st.sampled_from(["w", "a/w", "a/b/w", "a//w", "x.npy"]), max_size=3, unique=True))
def test_garbled_meta_loads_or_raises_checkpoint_error_only(tmp_path_factory, meta, members):
    path = tmp_path_factory.mktemp("meta") / "c.npz"
    np.savez(path, **{name: np.ones(1) for name in members}, __meta__=np.array(meta),
             __format_version__=np.array(1))
    try:
        load_checkpoint(path)
    except CheckpointError as e:
        assert "\n" not in str(e)


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(kinds=st.one_of(json_values, st.dictionaries(st.sampled_from(["", "a", "a/b", "a/0", "w", "a//b"]),
                                                    st.sampled_from(["int_keys", "list", "tuple", "x", 1]),
                                                    max_size=4)),
       meta=json_values, members=st.lists(st.sampled_from(["w", "a/w", "a/0", "a/b/1"]), max_size=3, unique=True))
def test_garbled_kinds_load_or_raise_checkpoint_error_only(tmp_path_factory, kinds, meta, members):
    path = tmp_path_factory.mktemp("kinds") / "c.npz"
    np.savez(path, **{name: np.ones(1) for name in members}, __meta__=np.array(json.dumps(meta)),
             __kinds__=np.array(json.dumps(kinds)), __format_version__=np.array(2))
    try:
        load_checkpoint(path)
    except CheckpointError as e:
        assert "\n" not in str(e)
