"""MNIST-style data: the IDX file format, finding or downloading a dataset, splitting, augmentation.

NumPy only: nothing here knows about the autograd engine (the PyTorch-shaped TensorDataset, DataLoader
and MNIST, which hand out Tensors, are in tinygrad_mnist.utils.data, where PyTorch keeps them). Which
images each training step sees is the training loop's rule (tinygrad_mnist.loop.BatchSampler).

    ds = load_mnist()                        # finds the files, or downloads them once
    x_train, y_train, x_val, y_val = train_val_split(ds.train_images, ds.train_labels)
    x = standardize(to_float(x_train), MNIST_MEAN, MNIST_STD)
"""

import functools
import gzip
import hashlib
import http.client
import math
import os
import struct
import sys
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .files import atomic_write, make_folder, remove_empty_folders


class IDXError(ValueError):
    """A file that is not valid IDX, or IDX files that do not form a dataset."""


class DatasetNotFound(FileNotFoundError):
    """The dataset's files are nowhere to be found and could not be downloaded."""


# IDX stores every multi-byte number big-endian.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dt.newbyteorder("="): code for code, dt in _IDX_DTYPES.items()}
_MAX_DIMS = 4


def _shape_text(shape):
    return "x".join(map(str, shape))


def read_idx(path):
    """Read an IDX file, raw or gzip-compressed (told apart by its first bytes, not its name).

    Returns a writable native-endian array. Malformed content raises IDXError with a one-line
    message that starts with the path; a missing file raises FileNotFoundError as usual.
    """
    data = Path(path).read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise IDXError(f"{path}: corrupt gzip stream: {e}") from None

    if len(data) < 4:
        raise IDXError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    zero0, zero1, code, ndim = data[:4]
    if zero0 or zero1:
        raise IDXError(f"{path}: not an IDX file: first two bytes are "
                       f"{zero0:#04x} {zero1:#04x}, expected 0x00 0x00")
    if code not in _IDX_DTYPES:
        known = ", ".join(f"{c:#04x}" for c in _IDX_DTYPES)
        raise IDXError(f"{path}: unknown IDX type code {code:#04x} (expected one of {known})")
    if not 1 <= ndim <= _MAX_DIMS:
        raise IDXError(f"{path}: IDX header has {ndim} dimensions, expected 1 to {_MAX_DIMS}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(f"{path}: truncated header: {ndim} dimensions need {header} bytes, "
                       f"file has {len(data)}")
    shape = struct.unpack(f">{ndim}i", data[4:header])
    if any(d < 0 for d in shape):
        raise IDXError(f"{path}: negative dimension in header shape {shape}")

    dtype = _IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    payload = len(data) - header
    if payload < expected:
        raise IDXError(f"{path}: truncated: header says {_shape_text(shape)} ({expected} bytes) "
                       f"but only {payload} bytes follow")
    if payload > expected:
        raise IDXError(f"{path}: {payload - expected} trailing bytes after the {expected} bytes "
                       f"of a {_shape_text(shape)} array")
    array = np.frombuffer(data, dtype, count=math.prod(shape), offset=header)
    return array.astype(dtype.newbyteorder("=")).reshape(shape)


def write_idx(path, array):
    """Write `array` as IDX, gzip-compressed when `path` ends in `.gz`."""
    array = np.asarray(array)
    code = _IDX_CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        known = ", ".join(str(dt) for dt in _IDX_CODES)
        raise ValueError(f"IDX cannot hold dtype {array.dtype} (only {known})")
    if not 1 <= array.ndim <= _MAX_DIMS:
        raise ValueError(f"IDX holds 1 to {_MAX_DIMS} dimensions, got shape {array.shape}")
    header = struct.pack(f">BBBB{array.ndim}i", 0, 0, code, array.ndim, *array.shape)
    data = header + array.astype(_IDX_DTYPES[code], copy=False).tobytes()
    with atomic_write(path) as f:
        if str(path).endswith(".gz"):
            # mtime=0 keeps the output byte-identical from run to run.
            with gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as g:
                g.write(data)
        else:
            f.write(data)


# Mean and standard deviation of all training pixels after to_float().
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2860, 0.3530

# The canonical file names, as the mirrors serve them.
FILES = TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = (
    "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@dataclass(frozen=True)
class DatasetSpec:
    """What is known about a dataset before its files are found.

    `sha256` maps each name in FILES to the SHA-256 of the gzip file the mirrors serve
    (None skips the check). Only downloads are checked: copies found on disk may have been
    recompressed (Debian's Fashion-MNIST has), so those are validated by content instead.
    """

    name: str
    sha256: dict
    class_names: tuple
    mirrors: tuple
    mean: float
    std: float
    system_dirs: tuple = ()


DATASETS = {
    "mnist": DatasetSpec(
        name="mnist",
        sha256={
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
        class_names=tuple("0123456789"),
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/",
                 "http://yann.lecun.com/exdb/mnist/"),
        mean=MNIST_MEAN,
        std=MNIST_STD,
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        sha256={
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        mean=FASHION_MNIST_MEAN,
        std=FASHION_MNIST_STD,
        # Debian's dataset-fashion-mnist package installs the four files here.
        system_dirs=("/usr/share/datasets/fashion-mnist",),
    ),
}


@dataclass(frozen=True)
class Dataset:
    """Images are uint8 (N, 28, 28); labels are int64 (N,)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple
    source_dir: Path


def _spec(name):
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def _variants(filename):
    """Names a file may have on disk: compressed or not, and the dotted `t10k-images.idx3-ubyte`."""
    stem = filename.removesuffix(".gz")
    dotted = stem.replace("-idx", ".idx")
    return (stem + ".gz", stem, dotted, dotted + ".gz")


def _find_files(folder):
    """Map each name in FILES to the path holding it in `folder`, or None where none does."""
    found = {}
    for filename in FILES:
        paths = (Path(folder) / v for v in _variants(filename))
        found[filename] = next((p for p in paths if p.is_file()), None)
    return found


def cache_dir(name="mnist"):
    """Where downloads go: `$TINYGRAD_MNIST_CACHE/<name>`, else `$XDG_CACHE_HOME/tinygrad_mnist/<name>`,
    else `~/.cache/tinygrad_mnist/<name>`."""
    root = os.environ.get("TINYGRAD_MNIST_CACHE")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(xdg) / "tinygrad_mnist"
    return Path(root) / name


def candidate_dirs(name="mnist"):
    """The folders searched when no data_dir is given, in order (see load_dataset)."""
    spec = _spec(name)
    dirs = []
    env = os.environ.get("TINYGRAD_MNIST_DATA")
    if env:
        dirs.append(Path(env) / name)
        # The variable is shared by all datasets, so a bare folder of files is taken for MNIST only.
        if name == "mnist":
            dirs.append(Path(env))
    dirs.append(cache_dir(name))
    dirs.extend(Path(d) for d in spec.system_dirs)
    return dirs


def find_dataset(name="mnist"):
    """The first folder of candidate_dirs(name) that holds all four files, or None."""
    for folder in candidate_dirs(name):
        if all(_find_files(folder).values()):
            return folder
    return None


def _mirrors(spec, mirrors):
    if mirrors is None:
        env = os.environ.get("TINYGRAD_MNIST_MIRRORS")
        mirrors = [m.strip() for m in env.split(",") if m.strip()] if env else spec.mirrors
    return [m if m.endswith("/") else m + "/" for m in mirrors]


class _ChecksumMismatch(Exception):
    pass


def _fetch(url, dest, sha256, progress, timeout):
    """Download `url` to `dest` by files.atomic_write; None on success, the reason on a checksum
    mismatch, and network errors propagate. A failed download leaves nothing behind."""
    digest, size, live = hashlib.sha256(), 0, progress and sys.stderr.isatty()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_write(dest) as f:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(total=total, desc=dest.name, unit="B", unit_scale=True, unit_divisor=1024,
                      disable=not live) as bar:
                while chunk := response.read(1 << 16):
                    f.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
            if sha256 is not None and digest.hexdigest() != sha256:
                raise _ChecksumMismatch(f"checksum mismatch (got sha256 {digest.hexdigest()}, expected {sha256})")
    except _ChecksumMismatch as e:
        return str(e)
    if progress and not live:  # a log or a pipe gets one line per file instead of a bar
        print(f"downloaded {dest.name} ({tqdm.format_sizeof(size, 'B', 1024)}) from {url}", file=sys.stderr)
    return None


def _fetch_with_retries(url, dest, sha256, progress, timeout, tries):
    """_fetch, repeated on network errors and server errors; None on success, else the reason."""
    for _ in range(tries):
        try:
            return _fetch(url, dest, sha256, progress, timeout)
        except urllib.error.HTTPError as e:
            reason = f"HTTP {e.code} {e.reason}"
            if e.code < 500:
                return reason
        except (OSError, http.client.HTTPException) as e:
            reason = f"{type(e).__name__}: {e}"
    return reason


def download_dataset(name="mnist", dest=None, mirrors=None, progress=True, timeout=30, tries=2):
    """Download whichever of the four files `dest` (default: cache_dir(name)) lacks.

    Each mirror is tried up to `tries` times on network errors, then the next one; a 404 or a
    checksum mismatch moves on at once. Files appear in `dest` only complete and verified.
    Raises DatasetNotFound, listing every URL that failed, when no mirror delivers a file.
    """
    spec = _spec(name)
    dest = Path(dest) if dest is not None else cache_dir(name)
    bases = _mirrors(spec, mirrors)
    created = make_folder(dest)
    try:
        for filename, path in _find_files(dest).items():
            if path is None:
                _download_file(name, filename, dest, bases, spec.sha256[filename], progress, timeout, tries)
    except BaseException:
        remove_empty_folders(created)  # a download that failed before its first file leaves no empty folder
        raise
    return dest


def _download_file(name, filename, dest, bases, sha256, progress, timeout, tries):
    failures = []
    for base in bases:
        reason = _fetch_with_retries(base + filename, dest / filename, sha256, progress, timeout, tries)
        if reason is None:
            return
        failures.append(f"  {base + filename}: {reason}")
    raise DatasetNotFound(f"could not download {name} file {filename}; tried:\n" + "\n".join(failures)
                          + "\n" + _manual_hint(name, dest))


def _manual_hint(name, folder):
    return (f"Download the files by hand and put them in {folder}: {', '.join(FILES)} "
            f"(compressed or not), or point TINYGRAD_MNIST_DATA or --data-dir at a folder that "
            f"holds them.")


def load_dataset(name="mnist", data_dir=None, download=True, progress=True, mirrors=None):
    """Load a dataset's four IDX files, downloading them first if they are nowhere to be found.

    Where the files are looked for, first complete folder wins:
      1. `data_dir`, if given, and nothing else: the files must be in that folder itself
         (so give each dataset its own folder). If they are missing they are downloaded into
         it when `download` is true; otherwise DatasetNotFound names the missing files.
      2. `$TINYGRAD_MNIST_DATA/<name>/`, then, for "mnist" only, `$TINYGRAD_MNIST_DATA` itself:
         a bare folder of files named like MNIST's is never taken for Fashion-MNIST.
      3. the per-user cache, cache_dir(name).
      4. system folders: /usr/share/datasets/fashion-mnist (Debian) for "fashion-mnist".
    If none holds them, they are downloaded into the cache when `download` is true.

    A folder holds a file if it has it as `X.gz`, as `X` uncompressed, or in the dotted form
    (`t10k-images.idx3-ubyte`). `mirrors` (or `$TINYGRAD_MNIST_MIRRORS`, comma-separated) replaces
    the download base URLs.
    """
    spec = _spec(name)
    if data_dir is not None:
        folder = Path(data_dir)
        missing = [f for f, p in _find_files(folder).items() if p is None]
        if missing and not download:
            raise DatasetNotFound(f"{folder} lacks {name} files {', '.join(missing)}. "
                                  + _manual_hint(name, folder))
        if missing:
            download_dataset(name, folder, mirrors, progress)
    else:
        folder = find_dataset(name)
        if folder is None and not download:
            searched = ", ".join(map(str, candidate_dirs(name)))
            raise DatasetNotFound(f"no folder holds the {name} files (searched {searched}) and "
                                  f"download is off. " + _manual_hint(name, cache_dir(name)))
        if folder is None:
            folder = download_dataset(name, None, mirrors, progress)

    paths = _find_files(folder)
    num_classes = len(spec.class_names)
    train = _read_split(paths[TRAIN_IMAGES], paths[TRAIN_LABELS], num_classes)
    test = _read_split(paths[TEST_IMAGES], paths[TEST_LABELS], num_classes)
    return Dataset(*train, *test, spec.class_names, folder)


def load_mnist(**kwargs):
    """load_dataset("mnist", ...)."""
    return load_dataset("mnist", **kwargs)


def _read_split(images_path, labels_path, num_classes):
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise IDXError(f"{images_path}: expected uint8 images of shape Nx28x28, found "
                       f"{images.dtype} {_shape_text(images.shape)}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise IDXError(f"{labels_path}: expected 1-D uint8 labels, found "
                       f"{labels.dtype} {_shape_text(labels.shape)}")
    if len(images) != len(labels):
        raise IDXError(f"{images_path} holds {len(images)} images but {labels_path} holds "
                       f"{len(labels)} labels")
    if labels.size and labels.max() >= num_classes:
        raise IDXError(f"{labels_path}: label {labels.max()} out of range 0..{num_classes - 1}")
    return images, labels.astype(np.int64)


def train_val_split(images, labels, val_size=10000, seed=0):
    """Hold out `val_size` samples chosen by `seed`; both parts keep the original order.

    Returns (train_images, train_labels, val_images, val_labels). With no samples held out, the training
    part is `images` and `labels` themselves, not a copy (47 MB for MNIST's images).
    """
    n = len(images)
    if not 0 <= val_size <= n:
        raise ValueError(f"val_size must be in 0..{n}, got {val_size}")
    if val_size == 0:
        return images, labels, images[:0], labels[:0]
    is_val = np.zeros(n, dtype=bool)
    is_val[np.random.default_rng(seed).permutation(n)[:val_size]] = True
    return images[~is_val], labels[~is_val], images[is_val], labels[is_val]


def to_float(images):
    """uint8 pixels 0..255 to float32 in [0, 1]."""
    if images.dtype != np.uint8:
        raise ValueError(f"to_float expects uint8 pixels, got {images.dtype}")
    return images.astype(np.float32) / np.float32(255)


def standardize(x, mean, std):
    """(x - mean) / std in float32."""
    return ((x - np.float32(mean)) / np.float32(std)).astype(np.float32, copy=False)


def warp(images, shift, angle, scale=None, displacement=None):
    """Move, rotate and scale each image about its centre, then (optionally) distort it elastically,
    in one bilinear sampling, zero outside.

    images: (B, H, W). shift: (B, 2) pixels as (dx, dy), positive moves content right and down.
    angle: (B,) degrees, positive turns content counter-clockwise as displayed. scale: (B,) or
    None for 1. displacement: (B, 2, H, W) pixels or None: output pixel p shows the moved, turned
    and scaled image at p + displacement[:, :, p] (torchvision's elastic_transform after its affine,
    sampled once instead of twice). Returns float32 (B, H, W).
    """
    images = np.asarray(images, dtype=np.float32)
    b, h, w = images.shape
    shift = np.asarray(shift, dtype=np.float32).reshape(b, 2, 1, 1)
    theta = np.deg2rad(np.asarray(angle, dtype=np.float32)).reshape(b, 1, 1)
    scale = np.asarray(1.0 if scale is None else scale, dtype=np.float32)
    scale = np.broadcast_to(scale, (b,)).reshape(b, 1, 1)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)

    # Inverse map: for every output pixel, the input point it comes from.
    if displacement is not None:
        displacement = np.asarray(displacement, dtype=np.float32)
        xs, ys = xs + displacement[:, 0], ys + displacement[:, 1]
    x = xs - cx - shift[:, 0]
    y = ys - cy - shift[:, 1]
    cos, sin = np.cos(theta), np.sin(theta)
    src_x = (cos * x - sin * y) / scale + cx
    src_y = (sin * x + cos * y) / scale + cy
    return _bilinear(images, src_x, src_y).astype(np.float32, copy=False)


def _bilinear(images, src_x, src_y):
    """Each image of `images` (B, H, W) read at the points (src_x, src_y) (pixel indices, broadcasting to
    (B, H', W')) by bilinear interpolation, zero outside (the arithmetic's dtype is the inputs')."""
    b, h, w = images.shape
    # A one-pixel zero border makes every out-of-range neighbour read zero after clipping.
    padded = np.zeros((b, h + 2, w + 2), images.dtype)
    padded[:, 1:-1, 1:-1] = images
    padded = padded.reshape(-1)
    fx = np.floor(src_x)
    fy = np.floor(src_y)
    wx = src_x - fx
    wy = src_y - fy
    # np.minimum/np.maximum rather than np.clip, whose Python wrapper costs more than a 28x28 image's work
    x0, x1 = (np.minimum(np.maximum(fx.astype(np.int64) + d, -1), w) + 1 for d in (0, 1))
    y0, y1 = (np.minimum(np.maximum(fy.astype(np.int64) + d, -1), h) + 1 for d in (0, 1))
    base = (np.arange(b) * (h + 2) * (w + 2)).reshape(b, 1, 1)

    def at(yy, xx):
        return padded[base + yy * (w + 2) + xx]

    top = (1 - wx) * at(y0, x0) + wx * at(y0, x1)
    bottom = (1 - wx) * at(y1, x0) + wx * at(y1, x1)
    return (1 - wy) * top + wy * bottom


@functools.lru_cache(maxsize=16)
def _centred(n):
    """Pixel positions 0..n-1 from the middle, (n - 1) / 2; made once per size, read-only."""
    positions = np.arange(n) - (n - 1) / 2
    positions.flags.writeable = False
    return positions


def affine(images, matrix, interpolation="nearest", fill=0.0):
    """torchvision's affine resampling (its tensor path: grid_sample with align_corners=False) of a batch
    (B, H, W) of float images, one map for all: output pixel (x, y), in pixels from the image's centre, shows
    the input at (m0 x + m1 y + m2, m3 x + m4 y + m5) from the centre, where `matrix` is (m0, ..., m5).

    "nearest" takes the pixel the point rounds to (half to even) and `fill` where that lies outside;
    "bilinear" reads zeros outside, then blends in `fill` by how much of each output pixel's weight fell
    outside, as torchvision does. `fill` is a number or one per image. Returns the images' dtype."""
    images = np.asarray(images)
    b, h, w = images.shape
    m0, m1, m2, m3, m4, m5 = (float(v) for v in matrix)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    xs, ys = _centred(w), _centred(h)[:, None]
    # Pixel indices of the source points; the constants go into the rows and columns before they meet.
    src_x = (m0 * xs + (m2 + cx)) + m1 * ys
    src_y = (m3 * xs + (m5 + cy)) + m4 * ys
    fill = np.asarray(fill, dtype=images.dtype)
    fill = fill.reshape(-1, 1, 1) if fill.ndim else fill
    if interpolation == "nearest":
        ix, iy = np.rint(src_x), np.rint(src_y)
        inside = (np.abs(ix - cx) <= cx) & (np.abs(iy - cy) <= cy)  # in [0, w - 1] and [0, h - 1]; False for NaN
        at = np.where(inside, iy * w + ix, 0).astype(np.intp)
        return np.where(inside, images.reshape(b, h * w)[:, at], fill)
    if interpolation != "bilinear":
        raise ValueError(f"affine: interpolation must be 'nearest' or 'bilinear', got {interpolation!r}")
    # A plane of ones sampled beside the images: how much of each output pixel's weight fell inside.
    sampled = _bilinear(np.concatenate([images, np.ones((1, h, w), images.dtype)]), src_x, src_y)
    covered = sampled[-1:]
    return (sampled[:-1] * covered + (1 - covered) * fill).astype(images.dtype, copy=False)


def augment(images, rng, max_shift=2.0, max_rotate=10.0, max_scale=0.0, elastic=None):
    """Random shifts (uniform in ±max_shift pixels, subpixel), rotations (±max_rotate degrees)
    and scalings (1 ± max_scale) of a batch (B, H, W), then an elastic distortion if `elastic` (an
    ElasticTransform) is given; deterministic given `rng`, which gives the affine draws first, so a
    batch without `elastic` draws what it always did."""
    b = len(images)
    shift = rng.uniform(-max_shift, max_shift, size=(b, 2))  # max_shift: a number, or an (x, y) array
    angle = rng.uniform(-max_rotate, max_rotate, size=b)
    scale = 1 + rng.uniform(-max_scale, max_scale, size=b)
    if elastic is None:
        return warp(images, shift, angle, scale)
    return warp(images, shift, angle, scale, displacement=elastic.displacement(np.shape(images), rng))


@functools.lru_cache(maxsize=16)
def gaussian_blur_matrix(n, sigma):
    """The (n, n) matrix that blurs a length-n signal as torchvision's gaussian_blur does along one
    axis: a kernel of int(8σ + 1) taps (made odd), weights exp(-x²/2σ²) summing to 1, and the signal
    reflected at its ends (without repeating the edge sample) where the kernel reaches past them.
    Made once per size and blur (every training batch asks for the same two), and read-only."""
    size = int(8 * sigma + 1)
    size += size % 2 == 0
    radius = size // 2
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    # Row i of the reflect-padded identity picks the sample that padded position i reads.
    padded = np.pad(np.eye(n), ((radius, radius), (0, 0)), mode="reflect")
    matrix = sum(w * padded[k:k + n] for k, w in enumerate(taps))
    matrix.flags.writeable = False
    return matrix


class ElasticTransform:
    """torchvision's ElasticTransform (Simard et al. 2003) for whole batches: each image gets its own
    displacement field, uniform noise in [-1, 1] per pixel and axis, Gaussian-blurred with `sigma`
    pixels, times alpha / 2 pixels (torchvision scales by alpha / size in grid units that span two per
    image size). Simard et al.'s α = 34, σ = 4 is alpha = 68 here; Cireşan et al.'s σ = 6, α = 36 is
    `ElasticTransform(72, 6)`.

    Differences from torchvision, for batches: one field per image rather than one per call, and
    `data.RandomDistortion` samples an affine map and this distortion once, not twice.
    """

    def __init__(self, alpha=50.0, sigma=5.0):
        if not (alpha >= 0 and math.isfinite(alpha)):
            raise ValueError(f"elastic alpha must be >= 0, got {alpha}")
        if not (sigma > 0 and math.isfinite(sigma)):
            raise ValueError(f"elastic sigma must be positive (pixels of blur), got {sigma}")
        self.alpha, self.sigma = float(alpha), float(sigma)

    def displacement(self, shape, rng):
        """(B, 2, H, W) pixels, (dx, dy) for each output pixel of a batch of `shape` (B, H, W)."""
        b, h, w = shape
        noise = rng.uniform(-1, 1, size=(b, 2, h, w))
        blur_y, blur_x = gaussian_blur_matrix(h, self.sigma), gaussian_blur_matrix(w, self.sigma)
        return (self.alpha / 2 * (blur_y @ noise @ blur_x.T)).astype(np.float32)

    def __call__(self, images, rng):
        b = len(images)
        return warp(images, np.zeros((b, 2)), np.zeros(b), displacement=self.displacement(np.shape(images), rng))

    def __repr__(self):
        return f"ElasticTransform(alpha={self.alpha:g}, sigma={self.sigma:g})"


class RandomAffine:
    """torchvision's RandomAffine for whole batches: each image turned by an angle uniform in
    ±degrees, moved by a shift uniform in ±translate × its width (x) and height (y), and scaled by
    a factor uniform in 1 ± scale, about its centre, zero outside.

    `RandomAffine(15, translate=0.1, scale=0.1)(images, rng)` transforms a batch (B, H, W) with one
    vectorised warp (no loop per image), drawing from `rng`, so the same generator state gives the
    same batch (a resumed run replays its augmentation exactly). Differences from torchvision, for
    batches: `translate` is one fraction for both axes or an (x, y) pair, shifts are subpixel
    (bilinear, not rounded to whole pixels), `scale` is the half-width s of the range (1 - s, 1 + s),
    and there is no shear. The defaults are the training loop's: ±10°, ±2 pixels of 28, no scaling.
    """

    def __init__(self, degrees=10.0, translate=2 / 28, scale=0.0):
        pair = np.broadcast_to(np.asarray(translate, dtype=np.float64), (2,))
        if not 0 <= degrees <= 180:
            raise ValueError(f"rotation range must be 0 to 180 degrees, got {degrees}")
        if not ((0 <= pair) & (pair < 1)).all():
            raise ValueError(f"translate must be a fraction of the image size in [0, 1), got {translate}")
        if not 0 <= scale < 1:
            raise ValueError(f"scale must be in [0, 1) (the factor is drawn from 1 ± scale), got {scale}")
        self.degrees, self.translate, self.scale = float(degrees), tuple(float(t) for t in pair), float(scale)

    def __call__(self, images, rng, elastic=None):
        h, w = np.shape(images)[1:]
        max_x, max_y = self.translate[0] * w, self.translate[1] * h
        max_shift = max_x if max_x == max_y else np.array([max_x, max_y])
        return augment(images, rng, max_shift=max_shift, max_rotate=self.degrees, max_scale=self.scale,
                       elastic=elastic)

    def __repr__(self):
        return f"RandomAffine(degrees={self.degrees:g}, translate={self.translate}, scale={self.scale:g})"


class RandomDistortion:
    """A RandomAffine, then an ElasticTransform, as torchvision's Compose([affine, elastic]) applies
    them, but with one bilinear sampling of each image instead of two (which would blur it twice).
    The affine draws come first from `rng`, so with the same generator the affine part is the one
    `affine` alone would draw."""

    def __init__(self, affine, elastic):
        self.affine, self.elastic = affine, elastic

    def __call__(self, images, rng):
        return self.affine(images, rng, elastic=self.elastic)

    def __repr__(self):
        return f"RandomDistortion({self.affine!r}, {self.elastic!r})"
