"""torchvision's datasets and transforms for MNIST code: `from tinygrad_mnist.vision import datasets, transforms`
then runs PyTorch's MNIST data lines as written.

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    dataset1 = datasets.MNIST('../data', train=True, download=True, transform=transform)

The files are found, downloaded and checksummed by tinygrad_mnist.data, in torchvision's place for them
(root/MNIST/raw). A sample's image is an `Image`: the (28, 28) uint8 pixels where torchvision gives a PIL image
(there is no Pillow dependency); ToTensor takes it, and so do the geometric transforms, which resample as
torchvision's tensor path does. Random transforms draw from the engine's generator, so manual_seed repeats them.
A transform of ToTensor and Normalize alone is applied to the whole split at once, and the DataLoader batches it
by indexing (tinygrad_mnist.utils.data), with the values image-by-image transforms give.
"""
import enum
import math
import numbers
import operator
import os
import sys
import types
import warnings

import numpy as np

from . import backend, data, nn
from .tensor import Tensor
from .utils.data import Dataset

__all__ = ["datasets", "transforms", "Image"]


class Image:
    """One grayscale image as a dataset hands it to its transform: torchvision's PIL image in mode 'L', here its
    (H, W) uint8 pixels. `np.asarray(img)` gives them; `size` is (width, height) as PIL's; PIL's methods are not
    there, and asking for one says so rather than doing something else."""

    mode = "L"

    def __init__(self, pixels):
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8 or pixels.ndim != 2:
            raise TypeError(f"Image: expected (H, W) uint8 pixels, got {pixels.dtype} of shape {pixels.shape}")
        self._pixels = pixels

    @property
    def size(self):
        return self._pixels.shape[1], self._pixels.shape[0]

    @property
    def width(self):
        return self._pixels.shape[1]

    @property
    def height(self):
        return self._pixels.shape[0]

    def __array__(self, dtype=None, copy=None):
        if copy:
            return np.array(self._pixels, dtype=dtype)
        return np.asarray(self._pixels, dtype=dtype)

    def __repr__(self):
        return f"<tinygrad_mnist.vision.Image mode=L size={self.width}x{self.height}>"

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"Image.{name}: a dataset's image here is its uint8 pixels, not a PIL image (no Pillow "
                             f"dependency), so PIL's methods are not there: np.asarray(img) gives the (H, W) array; "
                             f"use the transforms of tinygrad_mnist.vision, or put ToTensor() first and work on the "
                             f"tensor")


# Datasets

class MNIST(Dataset):
    """torchvision.datasets.MNIST: one split, `data` (N, 28, 28) uint8 and `targets` (N,) int64 as Tensors, and
    dataset[i] = (transform(image), target_transform(label)) with the image an `Image` and the label an int.

    The files live in root/MNIST/raw, torchvision's place (a torchvision download there is used as it is);
    download=True fetches what is missing into it through tinygrad_mnist.data (checksummed). root=None, which
    torchvision does not take, uses the files the loader finds (TINYGRAD_MNIST_DATA, the cache; downloaded into
    the cache with download=True)."""

    _dataset = "mnist"  # the name tinygrad_mnist.data knows it by
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
               "8 - eight", "9 - nine"]

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        self.root = os.path.expanduser(root) if isinstance(root, str) else root
        self.train, self.transform, self.target_transform = train, transform, target_transform
        split = self._load(download)
        self._source = str(split.source_dir)
        images, labels = (split.train_images, split.train_labels) if train else (split.test_images, split.test_labels)
        self.data, self.targets = Tensor._wrap(images), Tensor._wrap(labels)
        self._whole = None  # the array the last _whole_rows() wrote its images into

    @property
    def raw_folder(self):
        """root/MNIST/raw (root/FashionMNIST/raw, ...), or with root=None the folder the files were found in."""
        return self._source if self.root is None else os.path.join(self.root, type(self).__name__, "raw")

    def _load(self, download):
        if self.root is None:
            return data.load_dataset(self._dataset, download=download)
        try:
            return data.load_dataset(self._dataset, data_dir=self.raw_folder, download=download)
        except data.DatasetNotFound as e:
            if download:
                raise
            flat = " (the root itself holds them: move them there)" if all(data._find_files(self.root).values()) else ""
            raise DatasetNotFoundError(
                f"Dataset not found: {self.raw_folder} lacks the {type(self).__name__} files{flat}; pass "
                f"download=True to download them there, or root=None to use the files tinygrad_mnist finds "
                f"(TINYGRAD_MNIST_DATA, its cache)") from e

    @property
    def class_to_idx(self):
        return {name: i for i, name in enumerate(self.classes)}

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        try:
            index = operator.index(index)
        except TypeError:
            raise TypeError(f"{type(self).__name__}: an index is one int (one sample), got {type(index).__name__}: "
                            f"take several through a DataLoader or a Subset") from None
        img = Image(np.array(_array(self.data)[index]))  # a copy: a transform that writes into it leaves data alone
        target = int(_array(self.targets)[index])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def _whole_rows(self):
        """[images, targets] of every sample at once, for the DataLoader (tinygrad_mnist.utils.data._rows), when
        the transform is ToTensor then Normalizes (per pixel, no random draws): the values image by image gives.
        Made afresh from data, targets and the transform as they are at each call (each pass of a DataLoader),
        in place in the array the last call made; None when samples must be made one by one."""
        if type(self).__getitem__ is not MNIST.__getitem__ or self.target_transform is not None:
            return None
        steps = _flatten(self.transform)
        if not steps or type(steps[0]) is not ToTensor or any(type(t) is not Normalize for t in steps[1:]):
            return None
        images, targets = _array(self.data), _array(self.targets)
        if images.dtype != np.uint8 or images.ndim != 3 or len(targets) != len(images):
            return None
        x = steps[0]._batch(images, out=self._whole)
        for normalize in steps[1:]:
            normalize._batch_(x)
        self._whole = x.array
        return [x, Tensor._wrap(targets.astype(np.int64, copy=False))]

    def _deprecated(self, old):
        warnings.warn(f"{old} has been renamed {'data' if old.endswith('data') else 'targets'}")
        return self.data if old.endswith("data") else self.targets

    train_data = property(lambda self: self._deprecated("train_data"))
    test_data = property(lambda self: self._deprecated("test_data"))
    train_labels = property(lambda self: self._deprecated("train_labels"))
    test_labels = property(lambda self: self._deprecated("test_labels"))

    def __repr__(self):
        lines = [f"Number of datapoints: {len(self)}", f"Root location: {self.root}",
                 f"Split: {'Train' if self.train else 'Test'}"]
        for name in ("transform", "target_transform"):
            if getattr(self, name) is not None:
                text = repr(getattr(self, name)).splitlines()
                label = "Transform: " if name == "transform" else "Target transform: "
                lines += [label + text[0], *(" " * len(label) + line for line in text[1:])]
        return "\n".join([f"Dataset {type(self).__name__}", *("    " + line for line in lines)])


class FashionMNIST(MNIST):
    """torchvision.datasets.FashionMNIST: MNIST's interface over Zalando's Fashion-MNIST (root/FashionMNIST/raw)."""

    _dataset = "fashion-mnist"
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]


class DatasetNotFoundError(data.DatasetNotFound, RuntimeError):
    """A dataset's files are not in root and download is off: torchvision's RuntimeError, and the loader's
    DatasetNotFound."""


def _array(x):
    return x.array if isinstance(x, Tensor) else np.asarray(x)


# Transforms

class InterpolationMode(enum.Enum):
    """torchvision's interpolation modes; the transforms here resample with NEAREST and BILINEAR."""
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _interpolation(mode, name):
    mode = InterpolationMode(mode) if isinstance(mode, str) else mode
    if mode not in (InterpolationMode.NEAREST, InterpolationMode.BILINEAR):
        raise ValueError(f"{name}: interpolation {mode} is not supported here, only InterpolationMode.NEAREST and "
                         f"BILINEAR (the two torchvision's tensor path has): pass one of them")
    return mode


class Compose:
    """The transforms one after another, as torchvision.transforms.Compose."""

    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self):
        return "\n".join([f"{type(self).__name__}(", *(f"    {t}" for t in self.transforms), ")"])


def _flatten(transform):
    """The transforms a Compose (nested or not) applies, in order; [transform] for any other one."""
    if type(transform) is Compose:
        return [step for t in transform.transforms for step in _flatten(t)]
    return [] if transform is None else [transform]


def _to_float(pixels):
    """uint8 pixels to float32 in [0, 1], as torchvision's ToTensor divides them."""
    out = pixels.astype(np.float32)
    out /= np.float32(255)  # in place: a new array costs more than the division
    return out


class ToTensor:
    """torchvision.transforms.ToTensor: an image (H, W) or NumPy array (H, W) or (H, W, C) to a Tensor (C, H, W);
    uint8 pixels become float32 in [0, 1], other dtypes are kept unscaled. A PIL image works too where Pillow is
    installed."""

    def __call__(self, pic):
        if isinstance(pic, Image):
            return Tensor._wrap(_to_float(pic._pixels[None]))
        if type(pic).__module__.startswith("PIL."):
            pixels = np.asarray(pic)
            if pixels.dtype == np.bool_:  # mode '1': 0 or 255, as torchvision reads it
                pixels = pixels.astype(np.uint8) * np.uint8(255)
        elif isinstance(pic, np.ndarray):
            pixels = pic
        else:
            raise TypeError(f"ToTensor: pic should be an Image, a PIL image or an ndarray, got {type(pic).__name__}"
                            f"{': it is a tensor already, drop ToTensor()' if isinstance(pic, Tensor) else ''}")
        if pixels.ndim not in (2, 3):
            raise ValueError(f"ToTensor: pic should be 2/3 dimensional (H, W) or (H, W, C). Got {pixels.ndim} "
                             f"dimensions.")
        chw = np.ascontiguousarray((pixels[:, :, None] if pixels.ndim == 2 else pixels).transpose(2, 0, 1))
        return Tensor._wrap(_to_float(chw) if chw.dtype == np.uint8 else chw)

    def _batch(self, images, out=None):
        """ToTensor of each image of (N, H, W) uint8, as one Tensor (N, 1, H, W), written into `out` if it has that
        shape (a new array costs more than the arithmetic)."""
        n, h, w = images.shape
        if out is None or out.shape != (n, 1, h, w):
            out = np.empty((n, 1, h, w), np.float32)
        out[:, 0] = images
        out /= np.float32(255)  # _to_float's arithmetic
        return Tensor._wrap(out)

    def __repr__(self):
        return "ToTensor()"


class Normalize(nn.Module):
    """torchvision.transforms.Normalize: (tensor - mean) / std per channel of a float Tensor (..., C, H, W), with a
    mean and std for each channel (or one for all), converted to the tensor's dtype first. inplace=True writes into
    the tensor. Recorded on the tape when the tensor requires grad."""

    def __init__(self, mean, std, inplace=False):
        super().__init__()
        self.mean, self.std, self.inplace = mean, std, inplace
        self._converted = None  # (dtype, channels and device, mean, std, and them as arrays) of the last _values

    def _values(self, tensor):
        """mean and std as arrays of the tensor's dtype and device, shaped (C, 1, 1) to broadcast over (..., C, H, W);
        kept for the next image while mean and std are the same numbers or tuples (which cannot change)."""
        key = (tensor.dtype, tensor.shape[-3], tensor.device)
        made = self._converted
        if made is not None and made[0] == key and made[1] is self.mean and made[2] is self.std:
            return made[3]
        xp, channels, out = backend.get_array_module(tensor.array), tensor.shape[-3], []
        for name, given in (("mean", self.mean), ("std", self.std)):
            values = np.asarray(given, dtype=tensor.dtype)
            if values.size not in (1, channels) or values.ndim > 1:
                raise ValueError(f"Normalize: {name} {given} has {values.size} values for an image of {channels} "
                                 f"channel(s): give one per channel, or one")
            out.append(xp.asarray(values.reshape(-1, 1, 1) if values.ndim == 1 else values))
        if (out[1] == 0).any():
            raise ValueError(f"Normalize: std evaluated to zero after conversion to {tensor.dtype}, leading to "
                             f"division by zero: give std > 0")
        if all(_constant(v) for v in (self.mean, self.std)):
            self._converted = (key, self.mean, self.std, out)
        return out

    def forward(self, tensor):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"Normalize: img should be a Tensor image, got {type(tensor).__name__}: put ToTensor() "
                            f"before Normalize")
        if not tensor.is_floating_point():
            raise TypeError(f"Normalize: input tensor should be a float tensor. Got {tensor.dtype}: convert it "
                            f"(ToTensor() scales uint8 images to float32)")
        if tensor.ndim < 3:
            raise ValueError(f"Normalize: expected a tensor image of size (..., C, H, W). Got tensor.size() = "
                             f"{tuple(tensor.shape)}")
        mean, std = self._values(tensor)
        if self.inplace:
            return tensor.sub_(Tensor._wrap(mean)).div_(Tensor._wrap(std))
        if tensor.requires_grad:
            return (tensor - Tensor._wrap(mean)) / Tensor._wrap(std)
        out = tensor.array - mean
        out /= std
        return Tensor._wrap(out)

    def _batch_(self, tensor):
        """forward of a float32 batch (N, C, H, W) that nothing else holds, in place: the same arithmetic."""
        mean, std = self._values(tensor)
        tensor.array -= mean
        tensor.array /= std

    def __repr__(self):
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


def _constant(values):
    """Whether `values` cannot change: a number, or a tuple of numbers."""
    return isinstance(values, numbers.Number) or (isinstance(values, tuple) and
                                                  all(isinstance(v, numbers.Number) for v in values))


class Lambda:
    """torchvision.transforms.Lambda: a function as a transform."""

    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError(f"Argument lambd should be callable, got {type(lambd).__name__!r}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)

    def __repr__(self):
        return "Lambda()"


def _pixels(img, name):
    """(array (..., H, W), make) for a geometric transform's input, where make(array) gives back its kind: an
    Image's pixels, or a CPU Tensor's array."""
    if isinstance(img, Image):
        return img._pixels, Image
    if isinstance(img, Tensor):
        if img.ndim < 2:
            raise ValueError(f"{name}: a tensor image has shape (..., H, W), got {tuple(img.shape)}")
        if img.requires_grad:
            raise RuntimeError(f"{name} is not recorded on the tape: pass img.detach(), or transform before "
                               f"requiring grad")
        if img.device != "cpu":
            raise RuntimeError(f"{name} runs on the CPU: transform before .to('{img.device}')")
        return img.array, Tensor._wrap
    raise TypeError(f"{name}: img should be an Image (as the datasets give) or a Tensor (..., H, W), got "
                    f"{type(img).__name__}" + (": np.asarray(img) comes from an Image; pass the Image itself"
                                               if isinstance(img, np.ndarray) else ""))


def _fill_value(fill, dtype, name):
    if not isinstance(fill, numbers.Number) or isinstance(fill, bool):
        raise TypeError(f"{name}: fill should be a number here, got {fill!r}")
    if dtype.kind in "iu":
        low, high = (0, 255) if dtype == np.uint8 else (np.iinfo(dtype).min, np.iinfo(dtype).max)
        if not (fill == int(fill) and low <= fill <= high):
            raise ValueError(f"{name}: fill {fill} does not fit {dtype} pixels: give a whole number in "
                             f"[{low}, {high}]")
    return fill


def _padding(padding):
    """(left, top, right, bottom) of torchvision's padding: an int, or a sequence of 1, 2 or 4."""
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        padding = [padding]
    if not isinstance(padding, (tuple, list)) or not all(isinstance(p, numbers.Integral) for p in padding):
        raise TypeError(f"Pad: padding should be an int or a tuple of ints, got {padding!r}")
    if len(padding) not in (1, 2, 4):
        raise ValueError(f"Padding must be an int or a 1, 2, or 4 element tuple, not a {len(padding)} element tuple")
    if min(padding) < 0:
        raise ValueError(f"Pad: padding {padding} is negative: to cut an image, use RandomCrop or index the tensor")
    left, top, right, bottom = (padding * 4)[:4] if len(padding) == 1 else \
        (*padding, *padding) if len(padding) == 2 else padding
    return int(left), int(top), int(right), int(bottom)


def _pad(img, padding, fill, padding_mode, name="Pad"):
    pixels, make = _pixels(img, name)
    left, top, right, bottom = _padding(padding)
    if padding_mode != "constant":
        return make(np.pad(pixels, [(0, 0)] * (pixels.ndim - 2) + [(top, bottom), (left, right)], mode=padding_mode))
    *lead, h, w = pixels.shape  # np.pad's constant mode, without its Python overhead for one small image
    out = np.full((*lead, top + h + bottom, left + w + right), _fill_value(fill, pixels.dtype, name), pixels.dtype)
    out[..., top:top + h, left:left + w] = pixels
    return make(out)


_PADDING_MODES = ("constant", "edge", "reflect", "symmetric")


class Pad(nn.Module):
    """torchvision.transforms.Pad: `padding` pixels round the image (an int for all sides, (left/right,
    top/bottom) or (left, top, right, bottom)), `fill` in 'constant' mode, or 'edge', 'reflect' or 'symmetric'."""

    def __init__(self, padding, fill=0, padding_mode="constant"):
        super().__init__()
        _padding(padding)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"Padding mode should be either constant, edge, reflect or symmetric, got "
                             f"{padding_mode!r}")
        self.padding, self.fill, self.padding_mode = padding, fill, padding_mode

    def forward(self, img):
        return _pad(img, self.padding, self.fill, self.padding_mode)

    def __repr__(self):
        return f"{type(self).__name__}(padding={self.padding}, fill={self.fill}, padding_mode={self.padding_mode})"


def _size(size):
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        return int(size), int(size)
    if isinstance(size, (tuple, list)) and len(size) in (1, 2) and all(isinstance(s, numbers.Integral) for s in size):
        return (int(size[0]), int(size[-1]))
    raise ValueError(f"RandomCrop: size should be an int or a sequence of one or two ints (h, w), got {size!r}")


class RandomCrop(nn.Module):
    """torchvision.transforms.RandomCrop: a size (h, w) window at a random place, after `padding` (as Pad's) and,
    with pad_if_needed, padding both sides of an axis shorter than the size by the shortfall (as torchvision
    does). The place is drawn from the engine's generator (manual_seed repeats it)."""

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant"):
        super().__init__()
        self.size = _size(size)
        if padding is not None:
            _padding(padding)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"Padding mode should be either constant, edge, reflect or symmetric, got "
                             f"{padding_mode!r}")
        self.padding, self.pad_if_needed, self.fill, self.padding_mode = padding, pad_if_needed, fill, padding_mode

    def forward(self, img):
        name, (th, tw) = type(self).__name__, self.size
        if self.padding is not None:
            img = _pad(img, self.padding, self.fill, self.padding_mode, name)
        if self.pad_if_needed and _pixels(img, name)[0].shape[-1] < tw:
            img = _pad(img, [tw - _pixels(img, name)[0].shape[-1], 0], self.fill, self.padding_mode, name)
        if self.pad_if_needed and _pixels(img, name)[0].shape[-2] < th:
            img = _pad(img, [0, th - _pixels(img, name)[0].shape[-2]], self.fill, self.padding_mode, name)
        pixels, make = _pixels(img, name)
        h, w = pixels.shape[-2:]
        if h < th or w < tw:
            raise ValueError(f"{name}: required crop size {(th, tw)} is larger than input image size {(h, w)}: pass "
                             f"padding= or pad_if_needed=True")
        i = j = 0
        if (h, w) != (th, tw):
            rng = backend.generator("cpu")
            i, j = int(rng.integers(0, h - th + 1)), int(rng.integers(0, w - tw + 1))
        return make(np.array(pixels[..., i:i + th, j:j + tw]))

    def __repr__(self):
        return f"{type(self).__name__}(size={self.size}, padding={self.padding})"


def _range(value, name, sizes=(2,)):
    """torchvision's ranges of degrees: a number d for (-d, d), or a sequence of `sizes` numbers."""
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"If {name} is a single number, it must be positive.")
        return [-float(value), float(value)]
    if not isinstance(value, (tuple, list)) or len(value) not in sizes:
        raise ValueError(f"{name} should be a number or a sequence of length {' or '.join(map(str, sizes))}, got "
                         f"{value!r}")
    return [float(v) for v in value]


def _fill(fill, name):
    if fill is None:
        return 0
    if not isinstance(fill, (numbers.Number, tuple, list)) or isinstance(fill, bool):
        raise TypeError(f"{name}: fill should be either a sequence or a number, got {fill!r}")
    return fill


def _inverse_affine_matrix(center, angle, translate, scale, shear):
    """The map from an output pixel to the input point it shows, both from the image's centre (x right, y down):
    the inverse of moving by `translate` after turning by `angle` degrees clockwise, scaling by `scale` and
    shearing by `shear` (x then y, degrees) about `center` (from the centre), as torchvision's affine composes
    them. Returns (m0, ..., m5) for data.affine."""
    rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
    # The forward map's linear part: rotation times shear, over cos(sy) (torchvision's RSS, without scale).
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    m0, m1, m3, m4 = d / scale, -b / scale, -c / scale, a / scale  # its inverse: the determinant is 1
    (cx, cy), (tx, ty) = center, translate
    return (m0, m1, cx - m0 * (cx + tx) - m1 * (cy + ty), m3, m4, cy - m3 * (cx + tx) - m4 * (cy + ty))


def _affine(img, angle, translate, scale, shear, interpolation, fill, center, name):
    """torchvision's F.affine (tensor path) of an Image or a Tensor (..., C, H, W): angle clockwise in degrees."""
    pixels, make = _pixels(img, name)
    h, w = pixels.shape[-2:]
    channels = pixels.shape[-3] if pixels.ndim > 2 else 1
    fills = [float(fill)] if isinstance(fill, numbers.Number) else [float(f) for f in fill]
    if len(fills) not in (1, channels):
        raise ValueError(f"{name}: the number of elements in 'fill' cannot broadcast to match the number of "
                         f"channels of the image ({len(fills)} != {channels})")
    centre = (0.0, 0.0) if center is None else (center[0] - w * 0.5, center[1] - h * 0.5)
    matrix = _inverse_affine_matrix(centre, angle, translate, scale, shear)
    planes = pixels.reshape(-1, h, w)
    floats = planes if np.issubdtype(planes.dtype, np.floating) else planes.astype(np.float32)
    per_plane = fills[0] if len(fills) == 1 else np.tile(fills, len(planes) // channels)
    out = data.affine(floats, matrix, interpolation.value, per_plane)
    if out.dtype != planes.dtype:
        out = np.round(out).astype(planes.dtype)  # rounded before the cast, as torchvision does
    return make(out.reshape(pixels.shape))


class RandomRotation(nn.Module):
    """torchvision.transforms.RandomRotation: the image turned counter-clockwise by an angle drawn uniformly from
    `degrees` ((-d, d) for a number d, or (min, max)), about its centre or `center` (x, y in pixels), `fill`
    where the turned image does not reach. The angle is drawn from the engine's generator."""

    def __init__(self, degrees, interpolation=InterpolationMode.NEAREST, expand=False, center=None, fill=0):
        super().__init__()
        self.degrees = _range(degrees, "degrees")
        self.interpolation = _interpolation(interpolation, type(self).__name__)
        if expand:
            raise ValueError("RandomRotation(expand=True) is not supported here (it changes the image's size): pad "
                             "the image first (Pad) so that the turned content fits, and leave expand=False")
        if center is not None and (not isinstance(center, (tuple, list)) or len(center) != 2):
            raise ValueError(f"center should be a sequence of length 2, got {center!r}")
        self.expand, self.center, self.fill = expand, center, _fill(fill, type(self).__name__)

    def forward(self, img):
        angle = float(backend.generator("cpu").uniform(self.degrees[0], self.degrees[1]))
        # torchvision's rotate turns counter-clockwise: its affine, clockwise, by -angle.
        return _affine(img, -angle, (0.0, 0.0), 1.0, (0.0, 0.0), self.interpolation, self.fill, self.center,
                       type(self).__name__)

    def __repr__(self):
        return (f"{type(self).__name__}(degrees={self.degrees}, interpolation={self.interpolation.value}, "
                f"expand={self.expand}, fill={self.fill})")


class RandomAffine(nn.Module):
    """torchvision.transforms.RandomAffine: per image, an angle uniform in `degrees`, a shift uniform in
    ±translate (fractions of the width and height) rounded to whole pixels, a scale uniform in `scale` (min, max)
    and shears uniform in `shear` (x: a number s for (-s, s), or (min, max); x and y: four numbers), all drawn
    from the engine's generator in torchvision's order, applied about the centre (or `center`) in one resampling.

    Not tinygrad_mnist.data.RandomAffine, which transforms whole training batches with its own conventions."""

    def __init__(self, degrees, translate=None, scale=None, shear=None, interpolation=InterpolationMode.NEAREST,
                 fill=0, center=None):
        super().__init__()
        name = type(self).__name__
        self.degrees = _range(degrees, "degrees")
        if translate is not None:
            if not isinstance(translate, (tuple, list)) or len(translate) != 2:
                raise ValueError(f"translate should be a sequence of length 2, got {translate!r}")
            if not all(0.0 <= t <= 1.0 for t in translate):
                raise ValueError("translation values should be between 0 and 1")
        if scale is not None:
            if not isinstance(scale, (tuple, list)) or len(scale) != 2:
                raise ValueError(f"scale should be a sequence of length 2, got {scale!r}")
            if not all(s > 0 for s in scale):
                raise ValueError("scale values should be positive")
        self.translate, self.scale = translate, scale
        self.shear = None if shear is None else _range(shear, "shear", sizes=(2, 4))
        self.interpolation = _interpolation(interpolation, name)
        if center is not None and (not isinstance(center, (tuple, list)) or len(center) != 2):
            raise ValueError(f"center should be a sequence of length 2, got {center!r}")
        self.fill, self.center = _fill(fill, name), center

    def forward(self, img):
        pixels, _ = _pixels(img, type(self).__name__)
        h, w = pixels.shape[-2:]
        rng = backend.generator("cpu")
        angle = float(rng.uniform(self.degrees[0], self.degrees[1]))
        translate = (0, 0)
        if self.translate is not None:
            max_dx, max_dy = float(self.translate[0] * w), float(self.translate[1] * h)
            translate = (int(round(rng.uniform(-max_dx, max_dx))), int(round(rng.uniform(-max_dy, max_dy))))
        scale = 1.0 if self.scale is None else float(rng.uniform(self.scale[0], self.scale[1]))
        shear = [0.0, 0.0]
        if self.shear is not None:
            shear[0] = float(rng.uniform(self.shear[0], self.shear[1]))
            if len(self.shear) == 4:
                shear[1] = float(rng.uniform(self.shear[2], self.shear[3]))
        return _affine(img, angle, translate, scale, shear, self.interpolation, self.fill, self.center,
                       type(self).__name__)

    def __repr__(self):
        parts = [f"degrees={self.degrees}"] + [f"{k}={getattr(self, k)}" for k in ("translate", "scale", "shear")
                                               if getattr(self, k) is not None]
        return f"{type(self).__name__}({', '.join(parts)}, interpolation={self.interpolation.value}, fill={self.fill})"


class Resize:
    """Not provided: refused when made, saying what to do instead."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError(
            "transforms.Resize is not provided: torchvision resizes MNIST's PIL images with Pillow's filters, "
            "which this NumPy code does not reproduce exactly; MNIST is 28x28: Pad(2) makes the 32x32 that "
            "LeNet-5 takes, or change the model's first layer to take 28x28")


# torchvision.datasets and torchvision.transforms as modules: attributes of this one, and importable
# (`import tinygrad_mnist.vision.transforms as T`, `from tinygrad_mnist.vision.datasets import MNIST`).

def _namespace(name, doc, members, missing):
    module = types.ModuleType(f"{__name__}.{name}", doc)
    for member in members:
        setattr(module, member.__name__, member)
    module.__all__ = [member.__name__ for member in members]

    def __getattr__(attribute):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        raise AttributeError(f"torchvision.{name}.{attribute} is not provided by tinygrad_mnist.vision.{name}, "
                             f"which has {', '.join(n for n in module.__all__ if n != 'Resize')}: {missing}")

    module.__getattr__ = __getattr__
    sys.modules[module.__name__] = module
    return module


datasets = _namespace(
    "datasets", "torchvision.datasets: MNIST and FashionMNIST.", [MNIST, FashionMNIST],
    "tinygrad_mnist.data downloads and checksums MNIST and Fashion-MNIST only (docs/FROM_PYTORCH.md)")
transforms = _namespace(
    "transforms", "torchvision.transforms: what MNIST code uses.",
    [Compose, ToTensor, Normalize, Lambda, Pad, RandomCrop, RandomRotation, RandomAffine, InterpolationMode, Resize],
    "write it as a Lambda, or see docs/FROM_PYTORCH.md")
