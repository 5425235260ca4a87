"""Datasets and batches as torch.utils.data has them: TensorDataset, DataLoader, and MNIST (as torchvision's,
through ToTensor and Normalize). They hand out Tensors; finding, reading and downloading the files is
tinygrad_mnist.data's NumPy code, which knows nothing of the engine."""
import numpy as np

from .. import backend
from ..data import FASHION_MNIST_MEAN, FASHION_MNIST_STD, MNIST_MEAN, MNIST_STD, load_dataset, standardize, to_float
from ..tensor import Tensor


class TensorDataset:
    """Tensors (or arrays) of one length along axis 0, as torch.utils.data.TensorDataset: dataset[i] is
    the tuple of their i-th rows. A DataLoader batches it by slicing each whole array at once."""

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
                yield tuple(Tensor._wrap(t.array[index]) for t in self.dataset.tensors)
            else:
                picks = range(n)[index] if order is None else index
                samples = [self.dataset[int(i)] for i in picks]
                yield tuple(Tensor(np.stack([np.asarray(s[k]) for s in samples])) for k in range(len(samples[0])))
