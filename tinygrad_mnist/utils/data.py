"""Datasets and batches as torch.utils.data has them: Dataset, TensorDataset, Subset, ConcatDataset, random_split,
DataLoader, and MNIST (as torchvision's, through ToTensor and Normalize). They hand out Tensors; finding, reading and
downloading the files is tinygrad_mnist.data's NumPy code, which knows nothing of the engine."""
import bisect
import math
import warnings

import numpy as np

from .. import backend
from ..data import FASHION_MNIST_MEAN, FASHION_MNIST_STD, MNIST_MEAN, MNIST_STD, load_dataset, standardize, to_float
from ..tensor import Tensor


def _generator(generator):
    """The np.random.Generator to draw from: `generator`, or the engine's (reseeded by manual_seed)."""
    if generator is None:
        return backend.generator("cpu")
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"generator must be a np.random.Generator (or None for the engine's), got "
                        f"{type(generator).__name__}: pass np.random.default_rng(seed)")
    return generator


# Datasets

class Dataset:
    """A map-style dataset, as torch.utils.data.Dataset: subclasses give `__getitem__` (and usually `__len__`);
    `a + b` is ConcatDataset([a, b])."""

    def __getitem__(self, index):
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other):
        return ConcatDataset([self, other])


class TensorDataset(Dataset):
    """Tensors (or arrays) of one length along axis 0, as torch.utils.data.TensorDataset: dataset[i] is
    the tuple of their i-th rows. A DataLoader batches it by indexing each whole array at once."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        self.tensors = tuple(t if isinstance(t, Tensor) else Tensor(t) for t in tensors)
        lengths = {len(t) for t in self.tensors}
        if len(lengths) > 1:
            raise ValueError(f"TensorDataset: the tensors have different lengths {sorted(lengths)} along axis 0")

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return len(self.tensors[0])


class MNIST(TensorDataset):
    """One split of MNIST (or Fashion-MNIST, with name=) as a TensorDataset of images (N, 1, 28, 28)
    float32 and labels (N,) int64: the tensors torchvision's MNIST gives through ToTensor() (pixels in
    [0, 1]) and, with normalize=True (the default), Normalize((0.1307,), (0.3081,)). The files are found
    or downloaded as load_dataset does (`root` is its data_dir)."""

    def __init__(self, root=None, train=True, download=True, normalize=True, name="mnist"):
        ds = load_dataset(name, data_dir=root, download=download)
        images, labels = (ds.train_images, ds.train_labels) if train else (ds.test_images, ds.test_labels)
        x = to_float(images)[:, None]
        if normalize:
            mean, std = (MNIST_MEAN, MNIST_STD) if name == "mnist" else (FASHION_MNIST_MEAN, FASHION_MNIST_STD)
            x = standardize(x, mean, std)
        super().__init__(x, labels)
        self.classes, self.train, self.root = list(ds.class_names), train, ds.source_dir


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order, as torch.utils.data.Subset."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, indices

    def __getitem__(self, index):
        if isinstance(index, list):
            return self.dataset[[self.indices[i] for i in index]]
        return self.dataset[self.indices[index]]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    """The datasets one after another, as torch.utils.data.ConcatDataset; `cumulative_sizes[k]` is the length of
    the first k + 1 of them."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, index):
        if index < 0:
            if -index > len(self):
                raise ValueError(f"ConcatDataset: index {index} is out of range for a dataset of length {len(self)}")
            index += len(self)
        which = bisect.bisect_right(self.cumulative_sizes, index)
        if which == len(self.datasets):
            raise IndexError(f"ConcatDataset: index {index} is out of range for a dataset of length {len(self)}")
        return self.datasets[which][index - (self.cumulative_sizes[which - 1] if which else 0)]


def random_split(dataset, lengths, generator=None):
    """Subsets of a random permutation of `dataset`, as torch.utils.data.random_split: `lengths` are counts that
    sum to len(dataset), or fractions that sum to 1 (each floor(n * fraction), the samples left over handed out
    one each from the first subset on). The permutation is drawn from `generator` or the engine's generator."""
    n = len(dataset)
    lengths = list(lengths)
    if lengths and math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        for i, fraction in enumerate(lengths):
            if not 0 <= fraction <= 1:
                raise ValueError(f"random_split: fraction at index {i} is {fraction}, not between 0 and 1")
        counts = [math.floor(n * fraction) for fraction in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        for i, count in enumerate(counts):
            if count == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an empty dataset.")
        lengths = counts
    if any(not isinstance(k, (int, np.integer)) or k < 0 for k in lengths):
        raise ValueError(f"random_split: lengths {lengths} must be counts >= 0 that sum to {n}, or fractions that "
                         f"sum to 1")
    if sum(lengths) != n:
        raise ValueError(f"random_split: the lengths {lengths} sum to {sum(lengths)}, but the dataset has {n} "
                         f"samples: give counts that sum to {n}, or fractions that sum to 1")
    order = _generator(generator).permutation(n).tolist()
    ends = np.cumsum(lengths).tolist()
    return [Subset(dataset, order[end - k:end]) for k, end in zip(lengths, ends)]


class DataLoader:
    """Batches of a dataset, as torch.utils.data.DataLoader(dataset, batch_size, shuffle, drop_last):
    `len(loader)` batches, `loader.dataset`. A TensorDataset is batched by indexing each whole array with
    the batch's indices (no Python per sample); any other dataset (`__len__` and `__getitem__` returning
    a tuple of arrays, tensors or numbers) is stacked sample by sample. The shuffled order is drawn from
    `generator` (a np.random.Generator) or else the engine's generator, so manual_seed repeats it."""

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, generator=None):
        if int(batch_size) < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, int(batch_size), shuffle, drop_last
        self.generator = generator

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        order = (self.generator or backend.generator("cpu")).permutation(n) if self.shuffle else None
        for b in range(len(self)):
            start = b * self.batch_size
            index = slice(start, start + self.batch_size) if order is None else order[start:start + self.batch_size]
            if isinstance(self.dataset, TensorDataset):
                yield tuple(Tensor._wrap(t.data[index]) for t in self.dataset.tensors)
            else:
                picks = range(n)[index] if order is None else index
                samples = [self.dataset[int(i)] for i in picks]
                yield tuple(Tensor(np.stack([np.asarray(s[k]) for s in samples])) for k in range(len(samples[0])))
