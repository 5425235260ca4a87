import dataclasses
import gzip
import hashlib
import os
import socket
import struct
from pathlib import Path

import numpy as np
import pytest

from tinygrad_mnist import data
from hypothesis import HealthCheck, given, settings, strategies as st

from idx_fixtures import dataset_bytes, make_split, serve, sha256_of, write_dataset
from tinygrad_mnist.data import (
    DATASETS, FILES, MNIST_MEAN, MNIST_STD, FASHION_MNIST_MEAN, FASHION_MNIST_STD,
    DatasetNotFound, ElasticTransform, IDXError, RandomAffine, RandomDistortion, augment, cache_dir, find_dataset,
    load_dataset, load_mnist, gaussian_blur_matrix, read_idx, standardize, to_float, train_val_split, warp, write_idx)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test sees the user's data folders, cache or mirrors."""
    monkeypatch.delenv("TINYGRAD_MNIST_DATA", raising=False)
    monkeypatch.delenv("TINYGRAD_MNIST_MIRRORS", raising=False)
    monkeypatch.setenv("TINYGRAD_MNIST_CACHE", str(tmp_path / "cache"))
    for name, spec in DATASETS.items():
        monkeypatch.setitem(DATASETS, name, dataclasses.replace(spec, system_dirs=()))


def idx_bytes(array):
    array = np.asarray(array)
    code = {"u1": 8, "i1": 9, "i2": 11, "i4": 12, "f4": 13, "f8": 14}[array.dtype.str[1:]]
    header = struct.pack(f">BBBB{array.ndim}i", 0, 0, code, array.ndim, *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


# The IDX format

@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (5, 3), (4, 28, 28), (2, 3, 4, 5), (0, 28, 28)])
def test_write_then_read_round_trips(tmp_path, suffix, dtype, shape):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal(shape) * 100).astype(dtype)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == shape
    np.testing.assert_array_equal(back, array)


def test_written_file_follows_the_idx_layout(tmp_path):
    array = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int16)
    write_idx(tmp_path / "a", array)
    assert (tmp_path / "a").read_bytes() == bytes(
        [0, 0, 0x0B, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6])


def test_gzip_is_detected_by_content_not_by_name(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    (tmp_path / "compressed.idx").write_bytes(gzip.compress(idx_bytes(array)))
    (tmp_path / "raw.gz").write_bytes(idx_bytes(array))
    np.testing.assert_array_equal(read_idx(tmp_path / "compressed.idx"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "raw.gz"), array)


def test_read_array_is_writable_and_native_endian(tmp_path):
    write_idx(tmp_path / "a", np.ones((2, 2), np.float32))
    back = read_idx(tmp_path / "a")
    back[0, 0] = 5
    assert back.dtype.isnative


def test_write_rejects_dtypes_idx_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="int64"):
        write_idx(tmp_path / "a", np.zeros(3, np.int64))


def read_error(tmp_path, data, name="bad-idx"):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(IDXError) as info:
        read_idx(path)
    message = str(info.value)
    assert message.startswith(str(path) + ": ") and "\n" not in message
    return message


def test_rejects_nonzero_magic(tmp_path):
    message = read_error(tmp_path, b"\x01\x00\x08\x01\x00\x00\x00\x00")
    assert "not an IDX file" in message and "0x01 0x00" in message


def test_rejects_unknown_type_code(tmp_path):
    assert "unknown IDX type code 0x07" in read_error(tmp_path, b"\x00\x00\x07\x01\x00\x00\x00\x00")


@pytest.mark.parametrize("ndim", [0, 5])
def test_rejects_dimension_counts_outside_1_to_4(tmp_path, ndim):
    data = bytes([0, 0, 8, ndim]) + b"\x00\x00\x00\x01" * ndim
    assert f"{ndim} dimensions, expected 1 to 4" in read_error(tmp_path, data)


def test_rejects_negative_dimension(tmp_path):
    assert "negative dimension" in read_error(tmp_path, b"\x00\x00\x08\x01\xff\xff\xff\xff")


def test_rejects_a_header_cut_short(tmp_path):
    assert "too short" in read_error(tmp_path, b"\x00\x00")
    assert "truncated header" in read_error(tmp_path, b"\x00\x00\x08\x03\x00\x00\x00\x05")


def test_truncated_payload_names_the_shape_and_sizes(tmp_path):
    data = idx_bytes(np.zeros((60000, 28, 28), np.uint8))[:16 + 1000]
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(data))
    with pytest.raises(IDXError) as info:
        read_idx(path)
    assert str(info.value) == (f"{path}: truncated: header says 60000x28x28 (47040000 bytes) "
                               "but only 1000 bytes follow")


def test_rejects_trailing_bytes(tmp_path):
    message = read_error(tmp_path, idx_bytes(np.zeros((2, 3), np.int32)) + b"junk")
    assert "4 trailing bytes" in message and "24 bytes of a 2x3 array" in message


def test_rejects_corrupt_gzip(tmp_path):
    data = bytearray(gzip.compress(idx_bytes(np.arange(500, dtype=np.int32))))
    data[len(data) // 2] ^= 0xFF
    assert "corrupt gzip stream" in read_error(tmp_path, bytes(data))


def test_rejects_truncated_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.arange(500, dtype=np.int32)))
    assert "corrupt gzip stream" in read_error(tmp_path, data[:-20])


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def read_or_idx_error(path, data):
    path.write_bytes(data)
    try:
        assert isinstance(read_idx(path), np.ndarray)
    except IDXError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=200), st.binary(max_size=200).map(lambda b: b"\x1f\x8b" + b)))
def test_random_bytes_raise_only_idx_error(fuzz_dir, data):
    read_or_idx_error(fuzz_dir / "random", data)


VALID = [idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4)),
         idx_bytes(np.linspace(-1, 1, 6, dtype=np.float32)),
         gzip.compress(idx_bytes(np.arange(40, dtype=np.int16).reshape(8, 5)))]


@st.composite
def mutated_files(draw):
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(0, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    data = data[:draw(st.integers(0, len(data)))] if draw(st.booleans()) else data
    return bytes(data) + draw(st.binary(max_size=8))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=mutated_files())
def test_mutated_files_raise_only_idx_error(fuzz_dir, data):
    read_or_idx_error(fuzz_dir / "mutated", data)


# Finding and checking a dataset

def test_loads_a_dataset_folder(tmp_path):
    train_x, train_y, test_x, test_y = write_dataset(tmp_path / "d", n_train=120, n_test=30)
    ds = load_dataset("mnist", data_dir=tmp_path / "d", download=False)
    np.testing.assert_array_equal(ds.train_images, train_x)
    np.testing.assert_array_equal(ds.test_labels, test_y)
    assert ds.train_images.dtype == np.uint8 and ds.train_images.shape == (120, 28, 28)
    assert ds.train_labels.dtype == np.int64 and ds.test_labels.dtype == np.int64
    assert ds.class_names == tuple("0123456789")
    assert ds.source_dir == tmp_path / "d"


def test_fashion_mnist_has_its_class_names(tmp_path):
    write_dataset(tmp_path)
    ds = load_dataset("fashion-mnist", data_dir=tmp_path, download=False)
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"


def test_unknown_dataset_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="mnist, fashion-mnist"):
        load_dataset("cifar")


@pytest.mark.parametrize("names", [
    [f.removesuffix(".gz") for f in FILES],
    [f.removesuffix(".gz").replace("-idx", ".idx") for f in FILES],
    [f.replace("-idx", ".idx") for f in FILES],
])
def test_accepts_uncompressed_and_dotted_file_names(tmp_path, names):
    write_dataset(tmp_path, names=names)
    assert len(load_mnist(data_dir=tmp_path, download=False).train_images) == 200


def test_missing_files_in_data_dir_are_named(tmp_path):
    write_dataset(tmp_path)
    (tmp_path / FILES[3]).unlink()
    with pytest.raises(DatasetNotFound, match="t10k-labels-idx1-ubyte.gz") as info:
        load_mnist(data_dir=tmp_path, download=False)
    assert str(tmp_path) in str(info.value)


def test_image_label_count_mismatch_names_both_files_and_counts(tmp_path):
    write_dataset(tmp_path)
    write_idx(tmp_path / FILES[1], np.zeros(150, np.uint8))
    with pytest.raises(IDXError) as info:
        load_mnist(data_dir=tmp_path, download=False)
    assert str(info.value) == (f"{tmp_path / FILES[0]} holds 200 images but "
                               f"{tmp_path / FILES[1]} holds 150 labels")


def test_labels_out_of_range_are_rejected(tmp_path):
    write_dataset(tmp_path)
    labels = np.zeros(50, np.uint8)
    labels[7] = 10
    write_idx(tmp_path / FILES[3], labels)
    with pytest.raises(IDXError, match="label 10 out of range 0..9"):
        load_mnist(data_dir=tmp_path, download=False)


@pytest.mark.parametrize("bad", [np.zeros((200, 28, 27), np.uint8), np.zeros((200, 784), np.uint8),
                                 np.zeros((200, 28, 28), np.float32)])
def test_images_must_be_uint8_n_by_28_by_28(tmp_path, bad):
    write_dataset(tmp_path)
    write_idx(tmp_path / FILES[0], bad)
    with pytest.raises(IDXError, match="expected uint8 images of shape Nx28x28"):
        load_mnist(data_dir=tmp_path, download=False)


def test_labels_must_be_1d_uint8(tmp_path):
    write_dataset(tmp_path)
    write_idx(tmp_path / FILES[1], np.zeros((200, 1), np.uint8))
    with pytest.raises(IDXError, match="expected 1-D uint8 labels"):
        load_mnist(data_dir=tmp_path, download=False)


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    assert cache_dir("mnist") == tmp_path / "cache" / "mnist"
    monkeypatch.delenv("TINYGRAD_MNIST_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir("fashion-mnist") == tmp_path / "xdg" / "tinygrad_mnist" / "fashion-mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir("mnist") == Path.home() / ".cache" / "tinygrad_mnist" / "mnist"


def test_data_env_subfolder_comes_before_the_folder_itself(tmp_path, monkeypatch):
    write_dataset(tmp_path / "data")
    write_dataset(tmp_path / "data" / "mnist")
    monkeypatch.setenv("TINYGRAD_MNIST_DATA", str(tmp_path / "data"))
    assert find_dataset("mnist") == tmp_path / "data" / "mnist"


def test_bare_data_env_folder_counts_for_mnist_only(tmp_path, monkeypatch):
    write_dataset(tmp_path / "data")
    monkeypatch.setenv("TINYGRAD_MNIST_DATA", str(tmp_path / "data"))
    assert find_dataset("mnist") == tmp_path / "data"
    assert find_dataset("fashion-mnist") is None


def test_data_env_comes_before_the_cache(tmp_path, monkeypatch):
    write_dataset(cache_dir("mnist"))
    assert find_dataset("mnist") == cache_dir("mnist")
    write_dataset(tmp_path / "data" / "mnist")
    monkeypatch.setenv("TINYGRAD_MNIST_DATA", str(tmp_path / "data"))
    assert find_dataset("mnist") == tmp_path / "data" / "mnist"


def test_system_folder_is_searched_last(tmp_path, monkeypatch):
    spec = DATASETS["fashion-mnist"]
    monkeypatch.setitem(DATASETS, "fashion-mnist",
                        dataclasses.replace(spec, system_dirs=(str(tmp_path / "system"),)))
    write_dataset(tmp_path / "system")
    assert find_dataset("fashion-mnist") == tmp_path / "system"
    write_dataset(cache_dir("fashion-mnist"))
    assert find_dataset("fashion-mnist") == cache_dir("fashion-mnist")


def test_nothing_found_without_download_says_where_it_looked():
    with pytest.raises(DatasetNotFound) as info:
        load_mnist(download=False)
    assert str(cache_dir("mnist")) in str(info.value)
    assert "TINYGRAD_MNIST_DATA" in str(info.value)


# Downloading

UMASK = os.umask(0)
os.umask(UMASK)

@pytest.fixture
def fake_files(tmp_path, monkeypatch):
    """Small gzip files that the mnist registry entry takes as canonical."""
    files = dataset_bytes(tmp_path, n_train=100, n_test=20)
    spec = DATASETS["mnist"]
    monkeypatch.setitem(DATASETS, "mnist", dataclasses.replace(spec, sha256=sha256_of(files)))
    return files


def routes(prefix, files):
    return {f"{prefix}/{name}": data for name, data in files.items()}


def corrupted(files):
    return {name: data[:-1] + bytes([data[-1] ^ 1]) for name, data in files.items()}


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/mnist/"


def test_download_lands_verified_files_in_the_cache(fake_files):
    with serve(routes("/mnist", fake_files)) as base:
        ds = load_mnist(mirrors=[base + "/mnist/"], progress=False)
    assert ds.source_dir == cache_dir("mnist")
    assert sorted(os.listdir(cache_dir("mnist"))) == sorted(FILES)
    for name, data in fake_files.items():
        assert (cache_dir("mnist") / name).read_bytes() == data
        assert (cache_dir("mnist") / name).stat().st_mode & 0o777 == 0o666 & ~UMASK  # like any new file
    assert ds.train_images.shape == (100, 28, 28)


def test_download_progress_prints_one_line_per_file_off_a_terminal(fake_files, capsys):
    with serve(routes("/mnist", fake_files)) as base:
        load_mnist(mirrors=[base + "/mnist/"])
    lines = capsys.readouterr().err.splitlines()
    assert [line.split()[1] for line in lines] == list(FILES)
    assert all(line.startswith("downloaded ") and f"from {base}/mnist/" in line for line in lines)


def test_download_goes_into_an_explicit_data_dir(tmp_path, fake_files):
    with serve(routes("/m", fake_files)) as base:
        ds = load_mnist(data_dir=tmp_path / "mine", mirrors=[base + "/m"], progress=False)
    assert ds.source_dir == tmp_path / "mine"
    assert sorted(os.listdir(tmp_path / "mine")) == sorted(FILES)
    assert not cache_dir("mnist").exists()


def test_checksum_mismatch_is_rejected_and_leaves_nothing(fake_files):
    with serve(routes("/mnist", corrupted(fake_files))) as base:
        with pytest.raises(DatasetNotFound, match="checksum mismatch"):
            load_mnist(mirrors=[base + "/mnist/"], progress=False)
    assert not cache_dir("mnist").exists()  # not even the folder it would have gone into


@pytest.mark.parametrize("first", ["missing", "corrupted"])
def test_falls_back_to_the_next_mirror(fake_files, first):
    bad = {} if first == "missing" else routes("/bad", corrupted(fake_files))
    with serve({**bad, **routes("/good", fake_files)}) as base:
        ds = load_mnist(mirrors=[base + "/bad/", base + "/good/"], progress=False)
    assert len(ds.train_labels) == 100
    assert sorted(os.listdir(cache_dir("mnist"))) == sorted(FILES)


def test_mirrors_come_from_the_environment(fake_files, monkeypatch):
    with serve(routes("/env", fake_files)) as base:
        monkeypatch.setenv("TINYGRAD_MNIST_MIRRORS", f"{closed_port_url()}, {base}/env/")
        assert len(load_mnist(progress=False).test_labels) == 20


def test_all_mirrors_down_names_urls_folder_and_file_names(fake_files):
    down = closed_port_url()
    with serve({}) as base:
        with pytest.raises(DatasetNotFound) as info:
            load_mnist(mirrors=[down, base + "/none/"], progress=False)
    message = str(info.value)
    assert down + FILES[0] in message and f"{base}/none/{FILES[0]}: HTTP 404" in message
    assert str(cache_dir("mnist")) in message
    assert all(name in message for name in FILES)
    assert "TINYGRAD_MNIST_DATA" in message and "--data-dir" in message
    assert not cache_dir("mnist").exists()


def test_a_failed_download_into_a_new_data_dir_creates_no_folder(tmp_path, fake_files):
    with serve({}) as base:
        with pytest.raises(DatasetNotFound):
            load_mnist(data_dir=tmp_path / "new" / "mnist", mirrors=[base + "/none/"], progress=False)
    assert not (tmp_path / "new").exists()


def test_a_download_that_fails_after_a_file_keeps_the_verified_file(fake_files):
    first = {FILES[0]: fake_files[FILES[0]]}
    with serve(routes("/m", first)) as base:
        with pytest.raises(DatasetNotFound, match=FILES[1]):
            load_mnist(mirrors=[base + "/m/"], progress=False)
    assert os.listdir(cache_dir("mnist")) == [FILES[0]]


def test_only_missing_files_are_downloaded(fake_files):
    folder = cache_dir("mnist")
    folder.mkdir(parents=True)
    (folder / FILES[0]).write_bytes(fake_files[FILES[0]])
    with serve(routes("/m", {n: d for n, d in fake_files.items() if n != FILES[0]})) as base:
        assert len(load_mnist(mirrors=[base + "/m/"], progress=False).train_images) == 100


# Preparing the arrays

def test_split_is_deterministic_by_seed():
    x, y = np.arange(100).reshape(100, 1), np.arange(100)
    a, b = train_val_split(x, y, val_size=20, seed=3), train_val_split(x, y, val_size=20, seed=3)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    other = train_val_split(x, y, val_size=20, seed=4)
    assert not np.array_equal(a[3], other[3])


def test_split_partitions_the_samples():
    x, y = np.arange(100).reshape(100, 1), np.arange(100)
    tx, ty, vx, vy = train_val_split(x, y, val_size=30, seed=0)
    assert len(ty) == 70 and len(vy) == 30
    assert sorted(np.concatenate([ty, vy])) == list(range(100))
    np.testing.assert_array_equal(tx[:, 0], ty)
    np.testing.assert_array_equal(vx[:, 0], vy)


def test_split_of_zero_keeps_everything_in_order():
    x, y = np.arange(10).reshape(10, 1), np.arange(10)
    tx, ty, vx, vy = train_val_split(x, y, val_size=0)
    np.testing.assert_array_equal(ty, y)
    assert vx.shape == (0, 1) and vy.shape == (0,)
    assert tx is x and ty is y  # nothing held out: no copy


def test_split_rejects_a_val_size_larger_than_the_data():
    with pytest.raises(ValueError, match="val_size"):
        train_val_split(np.zeros(5), np.zeros(5), val_size=6)


def test_to_float_maps_uint8_to_unit_interval():
    x = to_float(np.array([0, 51, 255], np.uint8))
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, [0, 0.2, 1])


def test_to_float_refuses_scaling_twice():
    with pytest.raises(ValueError, match="uint8"):
        to_float(np.zeros(3, np.float32))


def test_standardize_gives_zero_mean_unit_std_float32():
    x = np.random.default_rng(0).uniform(0, 1, 10000).astype(np.float32)
    z = standardize(x, x.mean(), x.std())
    assert z.dtype == np.float32
    assert abs(z.mean()) < 1e-5 and abs(z.std() - 1) < 1e-5


# Augmentation

@pytest.fixture
def digits():
    return to_float(make_split(16, np.random.default_rng(1))[0])


def centre_of_mass(images):
    ys, xs = np.mgrid[0:images.shape[1], 0:images.shape[2]]
    mass = images.sum(axis=(1, 2))
    return (images * xs).sum(axis=(1, 2)) / mass, (images * ys).sum(axis=(1, 2)) / mass


def test_augment_keeps_shape_and_dtype(digits):
    out = augment(digits, np.random.default_rng(0), max_scale=0.1)
    assert out.shape == digits.shape and out.dtype == np.float32


def test_augment_is_deterministic_by_seed(digits):
    a = augment(digits, np.random.default_rng(5))
    np.testing.assert_array_equal(a, augment(digits, np.random.default_rng(5)))
    assert not np.array_equal(a, augment(digits, np.random.default_rng(6)))


def test_augment_changes_each_image_differently(digits):
    same = np.repeat(digits[:1], 8, axis=0)
    out = augment(same, np.random.default_rng(0))
    assert len({o.tobytes() for o in out}) == 8


def test_zero_shift_and_rotation_is_identity(digits):
    np.testing.assert_array_equal(augment(digits, np.random.default_rng(0), 0, 0), digits)
    np.testing.assert_array_equal(warp(digits, np.zeros((16, 2)), np.zeros(16)), digits)


@pytest.mark.parametrize("dx, dy", [(1, 0), (0, 1), (-1, 0), (0.5, -0.25)])
def test_shift_moves_the_centre_of_mass_by_the_shift(digits, dx, dy):
    out = warp(digits, np.tile([dx, dy], (16, 1)), np.zeros(16))
    (x0, y0), (x1, y1) = centre_of_mass(digits), centre_of_mass(out)
    np.testing.assert_allclose(x1 - x0, dx, atol=1e-4)
    np.testing.assert_allclose(y1 - y0, dy, atol=1e-4)


def test_integer_shift_moves_pixels_exactly(digits):
    out = warp(digits, np.tile([2, -1], (16, 1)), np.zeros(16))
    np.testing.assert_array_equal(out[:, :-1, 2:], digits[:, 1:, :-2])
    assert not out[:, :, :2].any() and not out[:, -1, :].any()


def test_rotation_turns_content_counter_clockwise():
    bar = np.zeros((1, 9, 9), np.float32)
    bar[0, 4, 4:8] = 1
    up = np.zeros_like(bar)
    up[0, 1:5, 4] = 1
    np.testing.assert_allclose(warp(bar, [[0, 0]], [90]), up, atol=1e-6)


def test_small_rotations_keep_the_ink(digits):
    out = warp(digits, np.zeros((16, 2)), np.full(16, 10.0))
    np.testing.assert_allclose(out.sum(axis=(1, 2)), digits.sum(axis=(1, 2)), rtol=0.02)


def drawn_transforms(monkeypatch, transform, images, seed=0):
    """The shifts, angles and scales that `transform` asks warp for, and its output."""
    seen = {}
    real_warp = data.warp

    def spy(images, shift, angle, scale=None, displacement=None):
        seen.update(shift=np.asarray(shift), angle=np.asarray(angle), scale=np.asarray(scale),
                    displacement=displacement)
        return real_warp(images, shift, angle, scale, displacement)
    monkeypatch.setattr(data, "warp", spy)
    return seen, transform(images, np.random.default_rng(seed))


@pytest.mark.parametrize("degrees, translate, scale", [(20, 0.2, 0.0), (15, 0.1, 0.1), (0, 0.05, 0.2), (45, 0, 0)])
def test_random_affine_draws_fill_exactly_the_ranges_asked_for(monkeypatch, degrees, translate, scale):
    images = np.zeros((4000, 28, 28), np.float32)
    seen, _ = drawn_transforms(monkeypatch, RandomAffine(degrees, translate, scale), images)
    for values, bound in ((seen["shift"], translate * 28), (seen["angle"], degrees), (seen["scale"] - 1, scale)):
        assert np.abs(values).max() <= bound
        assert np.abs(values).max() >= 0.99 * bound  # and reach its ends: the range is the one asked for
        assert abs(values.mean()) <= 0.05 * bound + 1e-12  # symmetric about no change


def test_random_affine_translates_each_axis_by_its_own_fraction_of_its_size(monkeypatch):
    images = np.zeros((2000, 20, 40), np.float32)
    seen, out = drawn_transforms(monkeypatch, RandomAffine(0, translate=(0.1, 0.25)), images)
    assert out.shape == images.shape
    np.testing.assert_allclose(np.abs(seen["shift"]).max(axis=0), [4.0, 5.0], rtol=0.01)


def test_random_affine_moves_a_dot_to_where_its_drawn_transform_sends_it(monkeypatch):
    dot = np.zeros((64, 28, 28), np.float32)
    dot[:, 9, 18] = 1  # 4.5 right of and 4.5 above the centre (13.5, 13.5)
    seen, out = drawn_transforms(monkeypatch, RandomAffine(30, translate=0.1, scale=0.2), dot, seed=3)
    theta = np.deg2rad(seen["angle"])
    x, y = 4.5 * seen["scale"], -4.5 * seen["scale"]  # scaled about the centre, y down as displayed
    # counter-clockwise as displayed, with y pointing down
    tx = np.cos(theta) * x + np.sin(theta) * y + 13.5 + seen["shift"][:, 0]
    ty = -np.sin(theta) * x + np.cos(theta) * y + 13.5 + seen["shift"][:, 1]
    cx, cy = centre_of_mass(out)
    np.testing.assert_allclose(cx, tx, atol=0.35)  # bilinear splats the dot over its neighbours
    np.testing.assert_allclose(cy, ty, atol=0.35)


def test_frontier_ranges_keep_a_centred_digit_inside_the_frame(digits):
    # MNIST's digits fit a 20 × 20 box in the middle of the frame; up to 15° and 10% shifts leave
    # all of the ink inside: without scaling, warping keeps the total ink unless some leaves the frame.
    centred = np.zeros_like(digits)
    centred[:, 4:24, 4:24] = digits[:, 4:24, 4:24]
    out = RandomAffine(15, translate=0.1)(np.repeat(centred, 32, axis=0), np.random.default_rng(0))
    ink = np.repeat(centred.sum(axis=(1, 2)), 32)
    np.testing.assert_allclose(out.sum(axis=(1, 2)), ink, rtol=0.005)  # bilinear resampling's rounding only


def test_shifts_beyond_the_margin_push_ink_out_of_the_frame(digits):
    # the property above is not vacuous: 30% shifts move up to 8.4 pixels, past the 4-pixel margin
    centred = np.zeros_like(digits)
    centred[:, 4:24, 4:24] = digits[:, 4:24, 4:24]
    out = RandomAffine(0, translate=0.3)(np.repeat(centred, 32, axis=0), np.random.default_rng(0))
    lost = 1 - out.sum(axis=(1, 2)) / np.repeat(centred.sum(axis=(1, 2)), 32)
    assert lost.max() > 0.1


def test_random_affine_defaults_replay_the_loops_original_augmentation(digits):
    np.testing.assert_array_equal(RandomAffine()(digits, np.random.default_rng(4)),
                                  augment(digits, np.random.default_rng(4)))


@pytest.mark.parametrize("kwargs, message", [
    (dict(degrees=-1), "rotation range must be 0 to 180"),
    (dict(translate=1.0), "translate must be a fraction"),
    (dict(translate=(0.1, -0.1)), "translate must be a fraction"),
    (dict(scale=1.0), "scale must be in"),
])
def test_random_affine_refuses_ranges_it_cannot_draw(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RandomAffine(**kwargs)


@pytest.mark.parametrize("n, sigma", [(28, 6.0), (28, 4.0), (20, 2.5), (9, 1.0), (5, 0.3)])
def test_gaussian_blur_matrix_is_a_normalised_kernel_over_the_reflected_signal(n, sigma):
    signal = np.random.default_rng(0).uniform(-1, 1, n)
    size = int(8 * sigma + 1) + (int(8 * sigma + 1) % 2 == 0)  # torchvision's kernel size, odd
    radius = size // 2
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    reflected = np.pad(signal, radius, mode="reflect")  # d c b | a b c d | c b a: the edge not repeated
    expected = np.convolve(reflected, taps / taps.sum(), mode="valid")
    np.testing.assert_allclose(gaussian_blur_matrix(n, sigma) @ signal, expected, atol=1e-12)
    np.testing.assert_allclose(gaussian_blur_matrix(n, sigma).sum(axis=1), 1.0)  # a constant stays constant


def test_zero_alpha_elastic_distortion_is_identity(digits):
    np.testing.assert_array_equal(ElasticTransform(0, 5)(digits, np.random.default_rng(0)), digits)


def test_elastic_displacements_are_smooth_centred_and_scale_with_alpha():
    shape = (2000, 28, 28)
    field = ElasticTransform(72, 6).displacement(shape, np.random.default_rng(0))
    assert field.shape == (2000, 2, 28, 28) and field.dtype == np.float32
    np.testing.assert_allclose(ElasticTransform(36, 6).displacement(shape, np.random.default_rng(0)), field / 2,
                               rtol=1e-6, atol=1e-6)
    assert abs(field.mean()) < 0.05 * field.std()
    neighbours = np.corrcoef(field[..., :-1].ravel(), field[..., 1:].ravel())[0, 1]
    assert neighbours > 0.95  # a smooth field: each pixel moves almost as its neighbour does
    raw = ElasticTransform(72, 0.05).displacement(shape, np.random.default_rng(0))  # next to no blur
    assert abs(np.corrcoef(raw[..., :-1].ravel(), raw[..., 1:].ravel())[0, 1]) < 0.05
    np.testing.assert_allclose(np.abs(raw).max(), 36, rtol=0.01)  # alpha / 2 pixels times noise in [-1, 1]


def constant_field(monkeypatch, dx, dy):
    """Make every ElasticTransform displace every pixel by (dx, dy), after drawing its noise as usual."""
    real = ElasticTransform.displacement

    def constant(self, shape, rng):
        field = real(self, shape, rng)
        field[:, 0], field[:, 1] = dx, dy
        return field
    monkeypatch.setattr(ElasticTransform, "displacement", constant)


def test_a_displacement_shows_each_pixel_the_image_at_its_displaced_point(digits, monkeypatch):
    constant_field(monkeypatch, 2, -1)
    out = ElasticTransform(50, 5)(digits, np.random.default_rng(0))
    np.testing.assert_array_equal(out[:, 1:, :-2], digits[:, :-1, 2:])  # out[y, x] = image[y - 1, x + 2]
    assert not out[:, 0].any() and not out[:, :, -2:].any()


def test_distortion_is_the_affine_image_distorted_in_one_sampling(digits, monkeypatch):
    affine = RandomAffine(15, translate=0.1, scale=0.1)
    moved = affine(digits, np.random.default_rng(7))
    constant_field(monkeypatch, -1, 3)
    out = RandomDistortion(affine, ElasticTransform(50, 5))(digits, np.random.default_rng(7))
    # the affine draws come first, so they are the ones above; then each pixel reads the moved image
    np.testing.assert_allclose(out[:, :-3, 1:], moved[:, 3:, :-1], atol=1e-6)


def test_distortion_draws_the_affine_part_first(digits):
    with pytest.MonkeyPatch.context() as patch:
        seen, _ = drawn_transforms(patch, RandomDistortion(RandomAffine(15, 0.1, 0.1), ElasticTransform()), digits)
    with pytest.MonkeyPatch.context() as patch:
        alone, _ = drawn_transforms(patch, RandomAffine(15, 0.1, 0.1), digits)
    for key in ("shift", "angle", "scale"):
        np.testing.assert_array_equal(seen[key], alone[key])
    assert seen["displacement"].shape == (16, 2, 28, 28) and alone["displacement"] is None


def test_distortion_is_deterministic_by_seed_and_differs_per_image(digits):
    distort = RandomDistortion(RandomAffine(15, 0.1, 0.1), ElasticTransform(72, 6))
    a = distort(digits, np.random.default_rng(5))
    np.testing.assert_array_equal(a, distort(digits, np.random.default_rng(5)))
    assert not np.array_equal(a, distort(digits, np.random.default_rng(6)))
    out = ElasticTransform(72, 6)(np.repeat(digits[:1], 8, axis=0), np.random.default_rng(0))
    assert len({o.tobytes() for o in out}) == 8


def test_elastic_distortion_keeps_a_centred_digit_inside_the_frame(digits):
    # Cireşan et al.'s σ = 6, α = 36 moves pixels by about 1.3 on average: it moves ink rather than
    # making or losing it (a smooth field squeezes some strokes and stretches others), and a digit in
    # MNIST's middle 20 × 20 box reaches the outermost pixels only rarely.
    centred = np.zeros_like(digits)
    centred[:, 4:24, 4:24] = digits[:, 4:24, 4:24]
    out = ElasticTransform(72, 6)(np.repeat(centred, 32, axis=0), np.random.default_rng(0))
    ratio = out.sum(axis=(1, 2)) / np.repeat(centred.sum(axis=(1, 2)), 32)
    assert abs(ratio.mean() - 1) < 0.03
    border = np.ones((28, 28), bool)
    border[1:-1, 1:-1] = False
    assert (out[:, border].max(axis=1) > 0.1).mean() < 0.05


@pytest.mark.parametrize("kwargs, message", [
    (dict(alpha=-1), "elastic alpha must be >= 0"),
    (dict(alpha=float("nan")), "elastic alpha must be >= 0"),
    (dict(sigma=0), "elastic sigma must be positive"),
])
def test_elastic_transform_refuses_what_it_cannot_draw(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ElasticTransform(**kwargs)


# The real files, when present

def real_mnist_dir():
    env = os.environ.get("TINYGRAD_MNIST_DATA")
    candidates = [Path(env), Path(env) / "mnist"] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist")
    return next((d for d in candidates if all((d / f).is_file() for f in FILES)), None)


REAL_MNIST = real_mnist_dir()
needs_mnist = pytest.mark.skipif(REAL_MNIST is None, reason="real MNIST files not found")


@pytest.fixture(scope="module")
def mnist():
    return load_mnist(data_dir=REAL_MNIST, download=False)


@needs_mnist
def test_real_mnist_has_the_known_shapes_and_label_counts(mnist):
    assert mnist.train_images.shape == (60000, 28, 28) and mnist.test_images.shape == (10000, 28, 28)
    assert np.bincount(mnist.train_labels).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(mnist.test_labels).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@needs_mnist
def test_real_mnist_matches_the_registry_checksums():
    for name, digest in DATASETS["mnist"].sha256.items():
        assert hashlib.sha256((REAL_MNIST / name).read_bytes()).hexdigest() == digest


@needs_mnist
def test_mnist_mean_and_std_are_those_of_the_training_set(mnist):
    x = to_float(mnist.train_images)
    assert abs(x.mean() - MNIST_MEAN) < 1e-4 and abs(x.std() - MNIST_STD) < 1e-4


DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not all((DEBIAN_FASHION / f).is_file() for f in FILES),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist_loads_with_its_statistics():
    ds = load_dataset("fashion-mnist", data_dir=DEBIAN_FASHION, download=False)
    assert np.bincount(ds.train_labels).tolist() == [6000] * 10
    assert np.bincount(ds.test_labels).tolist() == [1000] * 10
    x = to_float(ds.train_images)
    assert abs(x.mean() - FASHION_MNIST_MEAN) < 1e-4 and abs(x.std() - FASHION_MNIST_STD) < 1e-4


def test_dataloader_batches_a_tensor_dataset_by_indexing_whole_arrays():
    from tinygrad_mnist.utils.data import DataLoader, TensorDataset
    x, y = np.arange(10.0).reshape(5, 2), np.arange(5)
    loader = DataLoader(TensorDataset(x, y), batch_size=2)
    batches = list(loader)
    assert len(loader) == 3 and len(loader.dataset) == 5
    assert [b[1].tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    assert batches[0][0].dtype == np.float64 and batches[0][1].dtype == np.int64


def test_dataloader_shuffles_every_sample_once_and_repeats_under_manual_seed():
    from tinygrad_mnist import manual_seed
    from tinygrad_mnist.utils.data import DataLoader, TensorDataset
    loader = DataLoader(TensorDataset(np.arange(10)), batch_size=3, shuffle=True, drop_last=False)
    manual_seed(0)
    first = np.concatenate([b[0].numpy() for b in loader])
    manual_seed(0)
    again = np.concatenate([b[0].numpy() for b in loader])
    assert sorted(first) == list(range(10)) and first.tolist() == again.tolist() and first.tolist() != list(range(10))
    assert len(DataLoader(TensorDataset(np.arange(10)), batch_size=3, drop_last=True)) == 3


def test_dataloader_stacks_the_samples_of_any_other_dataset():
    from tinygrad_mnist.utils.data import DataLoader
    samples = [(np.full(2, i, np.float32), i) for i in range(3)]
    (x, y), = list(DataLoader(samples, batch_size=3))
    assert x.shape == (3, 2) and y.tolist() == [0, 1, 2]


def test_tensor_dataset_refuses_tensors_of_different_lengths():
    from tinygrad_mnist.utils.data import TensorDataset
    with pytest.raises(ValueError, match="different lengths"):
        TensorDataset(np.zeros(3), np.zeros(4))



def test_mnist_dataset_gives_standardised_image_tensors_and_int64_labels(dataset):
    """utils.data.MNIST, kept for code written against it, gives what vision's MNIST gives through
    ToTensor() and Normalize() (and a DataLoader batches it by whole-array indexing)."""
    from tinygrad_mnist.data import MNIST_MEAN, MNIST_STD
    from tinygrad_mnist.utils.data import MNIST
    train, test = MNIST(dataset, train=True), MNIST(dataset, train=False, normalize=False)
    images, labels = train[0:4]
    assert images.shape == (4, 1, 28, 28) and images.dtype == np.float32 and labels.dtype == np.int64
    assert len(train) == 600 and len(test) == 200 and float(test.tensors[0].max()) <= 1.0
    np.testing.assert_allclose(float(images.min()), -MNIST_MEAN / MNIST_STD, rtol=1e-6)
