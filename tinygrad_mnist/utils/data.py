"""Datasets, samplers and batches as torch.utils.data has them. They hand out Tensors; MNIST itself, as torchvision
gives it, is tinygrad_mnist.vision's.

Everything loads in this process: `num_workers` and its companions are accepted where the batches are the ones
PyTorch's workers would deliver (docs/FROM_PYTORCH.md says which). Random orders come from `generator` (a
np.random.Generator) or else the engine's generator, which manual_seed reseeds."""
import bisect
import collections.abc
import copy
import math
import warnings

import numpy as np

from .. import backend
from ..creation import as_tensor
from ..data import FASHION_MNIST_MEAN, FASHION_MNIST_STD, MNIST_MEAN, MNIST_STD, load_dataset, standardize, to_float
from ..tensor import Tensor, stack

__all__ = ["Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split", "MNIST", "Sampler",
           "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler", "BatchSampler",
           "default_collate", "default_convert", "get_worker_info", "DataLoader"]


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

    def _whole_rows(self):
        """The tensors whose rows at i are dataset[i], as _rows asks of a dataset (None: batch sample by sample)."""
        if type(self).__getitem__ is not TensorDataset.__getitem__ or any(t.requires_grad for t in self.tensors):
            return None
        return self.tensors


class MNIST(TensorDataset):
    """One split of MNIST (or Fashion-MNIST, with name=) as a TensorDataset of images (N, 1, 28, 28)
    float32 and labels (N,) int64: the tensors torchvision's MNIST gives through ToTensor() (pixels in
    [0, 1]) and, with normalize=True (the default), Normalize((0.1307,), (0.3081,)). The files are found
    or downloaded as load_dataset does (`root` is its data_dir). Kept for code written against it;
    `vision.datasets.MNIST` is torchvision's, with its transforms and its root/MNIST/raw layout."""

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


# Samplers: the order of the indices a DataLoader hands to the dataset

class Sampler:
    """An iterable of dataset indices, as torch.utils.data.Sampler; a DataLoader also takes any list of them."""

    def __iter__(self):
        raise NotImplementedError("Subclasses of Sampler should implement __iter__.")


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random order of the indices, drawn afresh on every pass, as torch.utils.data.RandomSampler: a permutation
    (one after another while `num_samples` asks for more), or with replacement=True `num_samples` independent
    draws."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got replacement={replacement}")
        if num_samples is not None and (not isinstance(num_samples, int) or num_samples <= 0):
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={num_samples}")
        self.data_source, self.replacement, self._num_samples = data_source, replacement, num_samples
        self.generator = generator

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n, rng = len(self.data_source), _generator(self.generator)
        if self.replacement:
            return iter(rng.integers(0, n, self.num_samples).tolist())
        if n == 0:
            return iter([])
        passes = [rng.permutation(n) for _ in range(-(-self.num_samples // n))]  # one, unless num_samples > n
        return iter(np.concatenate(passes)[:self.num_samples].tolist())

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order, drawn afresh on every pass."""

    def __init__(self, indices, generator=None):
        self.indices, self.generator = indices, generator

    def __iter__(self):
        return iter([self.indices[i] for i in _generator(self.generator).permutation(len(self.indices)).tolist()])

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """`num_samples` indices in 0..len(weights)-1, each drawn with probability proportional to its weight
    (with replacement unless replacement=False), as torch.utils.data.WeightedRandomSampler."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={num_samples}")
        if not isinstance(replacement, bool):
            raise ValueError(f"replacement should be a boolean value, but got replacement={replacement}")
        weights = np.asarray(weights.numpy() if isinstance(weights, Tensor) else weights, dtype=np.float64)
        if weights.ndim != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have shape {weights.shape}")
        if not replacement and num_samples > len(weights):
            raise ValueError(f"WeightedRandomSampler: cannot draw {num_samples} samples from {len(weights)} weights "
                             f"without replacement: lower num_samples or pass replacement=True")
        self.weights, self.num_samples, self.replacement, self.generator = weights, num_samples, replacement, generator

    def __iter__(self):
        p = self.weights / self.weights.sum()
        rng = _generator(self.generator)
        return iter(rng.choice(len(p), self.num_samples, replace=self.replacement, p=p).tolist())

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """The indices of `sampler` in lists of `batch_size` (the last one shorter unless drop_last), as
    torch.utils.data.BatchSampler."""

    def __init__(self, sampler, batch_size, drop_last):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


# Collation: a list of samples into one batch

def _like_mapping(elem, values):
    """`values` (a dict) as the mapping type of `elem` where that type can be made, else a dict."""
    if isinstance(elem, collections.abc.MutableMapping):
        out = copy.copy(elem)
        out.update(values)
        return out
    try:
        return type(elem)(values)
    except TypeError:
        return values


def _like_sequence(elem, values):
    """`values` (a list) as the sequence type of `elem`: a list for a tuple (as PyTorch gives), a namedtuple for a
    namedtuple, and elem's own type where it can be made."""
    if isinstance(elem, tuple):
        return type(elem)(*values) if hasattr(elem, "_fields") else values
    if isinstance(elem, collections.abc.MutableSequence):
        out = copy.copy(elem)
        out[:] = values
        return out
    try:
        return type(elem)(values)
    except TypeError:
        return values


def default_collate(batch):
    """One batch of a list of samples, by torch.utils.data.default_collate's rules, applied to the type of the
    first sample: Tensors and NumPy arrays are stacked along a new first axis; Python floats become a float64
    tensor, ints int64 (bools bool), NumPy scalars keep their dtype; strings and bytes stay a list; dicts give a
    dict of batches, namedtuples a namedtuple, and other sequences (tuples included) a list with one batch per
    position."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        for i, sample in enumerate(batch):
            if not isinstance(sample, Tensor):
                raise TypeError(f"default_collate: sample {i} is a {type(sample).__name__} where sample 0 is a "
                                f"Tensor: return one type from __getitem__")
            if sample.shape != elem.shape:
                raise RuntimeError(f"default_collate: samples of different shapes, {tuple(elem.shape)} at 0 and "
                                   f"{tuple(sample.shape)} at {i}: make every sample one shape (crop or pad it), "
                                   f"or pass a collate_fn")
        if any(sample.requires_grad for sample in batch):
            return stack(batch)  # recorded, as torch.stack is
        return Tensor._wrap(backend.get_array_module(*(t.array for t in batch)).stack([t.array for t in batch]))
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind in "SaUO":
            raise TypeError(f"default_collate: cannot batch NumPy arrays of dtype {elem.dtype}: return numbers, or "
                            f"pass a collate_fn")
        return default_collate([as_tensor(sample) for sample in batch])
    if isinstance(elem, (np.bool_, np.number)):
        return Tensor(np.array(batch))
    if isinstance(elem, float):
        return Tensor(batch, dtype=np.float64)
    if isinstance(elem, int):
        return Tensor(batch)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        for i, sample in enumerate(batch):
            missing = [key for key in elem if key not in sample]
            if missing:
                raise KeyError(f"default_collate: sample {i} has no key {missing[0]!r}, which sample 0 has")
        return _like_mapping(elem, {key: default_collate([sample[key] for sample in batch]) for key in elem})
    if isinstance(elem, collections.abc.Sequence):
        for i, sample in enumerate(batch):
            if len(sample) != len(elem):
                raise RuntimeError(f"default_collate: samples of different lengths, {len(elem)} at 0 and "
                                   f"{len(sample)} at {i}: each element in list of batch should be of equal size")
        return _like_sequence(elem, [default_collate(list(column)) for column in zip(*batch)])
    raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found "
                    f"{type(elem).__name__}: return one of those from __getitem__, or pass a collate_fn")


def default_convert(data):
    """One sample as DataLoader(batch_size=None) hands it out, as torch.utils.data.default_convert: NumPy arrays
    and scalars (inside dicts and sequences too) become Tensors, tuples lists; everything else stays as it is."""
    if isinstance(data, np.ndarray) and data.dtype.kind in "SaUO":
        return data
    if isinstance(data, (np.ndarray, np.bool_, np.number)):
        return as_tensor(data)
    if isinstance(data, collections.abc.Mapping):
        return _like_mapping(data, {key: default_convert(value) for key, value in data.items()})
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return _like_sequence(data, [default_convert(value) for value in data])
    return data


def get_worker_info():
    """None, as torch.utils.data.get_worker_info() in the main process: every sample loads here."""
    return None


def _rows(dataset):
    """(tensors, indices) when default_collate of the samples dataset[i] for i in a batch is the list of the
    tensors' rows at indices[i] (indices None: at i), so that batches can be taken by indexing whole arrays: a
    dataset whose `_whole_rows()` gives such tensors (a TensorDataset; vision's MNIST with ToTensor and
    Normalize), or Subsets of one; else None."""
    whole_rows = getattr(type(dataset), "_whole_rows", None)  # of the class: a wrapper's __getattr__ is not asked
    if whole_rows is not None:
        tensors = whole_rows(dataset)
        return None if tensors is None else (tensors, None)
    if type(dataset).__getitem__ is Subset.__getitem__:
        inner = _rows(dataset.dataset)
        if inner is not None:
            tensors, indices = inner
            mine = np.asarray(dataset.indices, dtype=np.int64)
            return tensors, mine if indices is None else indices[mine]
    return None


# The loader

class DataLoader:
    """Batches of a dataset, as torch.utils.data.DataLoader: the dataset's indices come from `sampler` (any
    iterable of indices; by default in order, or shuffled each pass with shuffle=True), grouped by `batch_size`
    (or given as lists by `batch_sampler`), and each batch's samples go through `collate_fn` (default_collate).
    batch_size=None hands out single samples through default_convert. A TensorDataset, vision's MNIST with a
    ToTensor-and-Normalize transform, or a Subset of either, with the default collate_fn, is batched by indexing
    whole arrays, without Python per sample: the same batches default_collate makes. num_workers > 0 loads in
    this process too (see docs/FROM_PYTORCH.md)."""

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
                 pin_memory_device="", in_order=True):
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable "
                             "multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and timeout:
            raise ValueError(f"timeout={timeout} bounds the wait for a worker process, and num_workers=0 starts none "
                             f"(PyTorch then fails on iterating): leave timeout=0")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing: let num_workers > 0 "
                             "to enable multiprocessing, otherwise set prefetch_factor to None.")
        if num_workers == 0 and persistent_workers:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if num_workers == 0 and multiprocessing_context is not None:
            raise ValueError("multiprocessing_context can only be used with multi-process loading (num_workers > 0), "
                             "but got num_workers=0")
        if num_workers > 0 and worker_init_fn is not None:
            raise ValueError("DataLoader: worker_init_fn runs in worker processes, and this DataLoader loads in this "
                             "process (num_workers > 0 starts none): do that set-up before iterating and drop "
                             "worker_init_fn")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and "
                                 "drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with drop_last")
        if sampler is None:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.sampler, self.batch_sampler, self.generator = sampler, batch_sampler, generator
        self.collate_fn = collate_fn or (default_collate if batch_sampler is not None else default_convert)
        self.num_workers, self.pin_memory, self.timeout, self.worker_init_fn = num_workers, pin_memory, timeout, \
            worker_init_fn
        self.multiprocessing_context, self.pin_memory_device, self.in_order = multiprocessing_context, \
            pin_memory_device, in_order
        self.prefetch_factor = (2 if prefetch_factor is None else prefetch_factor) if num_workers > 0 else None
        self.persistent_workers = persistent_workers

    def __len__(self):
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)

    def __iter__(self):
        if self.batch_sampler is None:
            for index in self.sampler:
                yield self.collate_fn(self.dataset[index])
            return
        rows = _rows(self.dataset) if self.collate_fn is default_collate else None
        getitems = getattr(self.dataset, "__getitems__", None)
        for indices in self.batch_sampler:
            if rows is not None:
                yield self._take_rows(*rows, indices)
            elif getitems:
                yield self.collate_fn(getitems(indices))
            else:
                yield self.collate_fn([self.dataset[i] for i in indices])

    @staticmethod
    def _take_rows(tensors, row_of, indices):
        """default_collate of the samples at `indices` of a TensorDataset: each tensor's rows, as a copy."""
        indices = np.asarray(indices, dtype=np.int64)
        if row_of is not None:
            indices = row_of[indices]
        return [Tensor._wrap(t.array[backend.get_array_module(t.array).asarray(indices)]) for t in tensors]
