"""tinygrad_mnist.utils.data behaves as torch.utils.data: Dataset and its subclasses and random_split, each
compared with PyTorch's result where PyTorch is installed, and each bad input refused in one line that says what
to do."""
import warnings

import numpy as np
import pytest

import tinygrad_mnist as engine
from tinygrad_mnist.utils.data import ConcatDataset, Dataset, Subset, TensorDataset, random_split


# Datasets

def test_a_dataset_subclass_must_give_getitem():
    with pytest.raises(NotImplementedError, match="__getitem__"):
        Dataset()[0]


def test_adding_datasets_concatenates_them():
    a, b = TensorDataset(np.arange(3)), TensorDataset(np.arange(10, 12))
    both = a + b
    assert isinstance(both, ConcatDataset) and len(both) == 5 and int(both[3][0]) == 10


def test_tensor_dataset_is_a_dataset():
    assert isinstance(TensorDataset(np.zeros(2)), Dataset)


def test_concat_dataset_indexes_as_pytorchs():
    torch = pytest.importorskip("torch")
    parts = [list(range(3)), list(range(10, 12)), list(range(20, 24))]
    ours, theirs = ConcatDataset(parts), torch.utils.data.ConcatDataset(parts)
    assert len(ours) == len(theirs) and ours.cumulative_sizes == theirs.cumulative_sizes
    assert [ours[i] for i in range(-9, 9)] == [theirs[i] for i in range(-9, 9)]


def test_concat_dataset_refuses_indices_out_of_range_and_no_datasets():
    both = ConcatDataset([[1, 2], [3]])
    with pytest.raises(ValueError, match="index -4 is out of range for a dataset of length 3"):
        both[-4]
    with pytest.raises(IndexError, match="index 3 is out of range"):
        both[3]
    with pytest.raises(ValueError, match="empty"):
        ConcatDataset([])


def test_subset_picks_its_indices_as_pytorchs():
    torch = pytest.importorskip("torch")
    ours, theirs = Subset(list(range(10, 20)), [3, 5, 7]), torch.utils.data.Subset(list(range(10, 20)), [3, 5, 7])
    assert len(ours) == 3 and [ours[i] for i in range(-3, 3)] == [theirs[i] for i in range(-3, 3)]


@pytest.mark.parametrize("lengths", [[0.33, 0.33, 0.34], [0.5, 0.5], [0.1, 0.9], [0.7, 0.2, 0.1], [3, 7], [10, 0]])
def test_random_split_gives_pytorchs_lengths(lengths):
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = random_split(range(10), lengths), torch.utils.data.random_split(range(10), lengths)
    assert [len(s) for s in ours] == [len(s) for s in theirs]


def test_random_split_partitions_the_dataset():
    parts = random_split(range(10), [0.3, 0.7])
    assert all(isinstance(p, Subset) for p in parts)
    assert sorted(i for p in parts for i in p) == list(range(10)) and [list(p) for p in parts] != [[0, 1, 2], [
        3, 4, 5, 6, 7, 8, 9]]


def test_random_split_repeats_under_manual_seed_and_a_generator():
    engine.manual_seed(3)
    first = [list(p) for p in random_split(range(10), [5, 5])]
    engine.manual_seed(3)
    assert [list(p) for p in random_split(range(10), [5, 5])] == first
    assert ([list(p) for p in random_split(range(10), [5, 5], generator=np.random.default_rng(1))]
            == [list(p) for p in random_split(range(10), [5, 5], generator=np.random.default_rng(1))])


def test_random_split_warns_of_an_empty_split_as_pytorch_does():
    with pytest.warns(UserWarning, match="index 1 is 0"):
        random_split(range(3), [0.1, 0.1, 0.8])


@pytest.mark.parametrize("lengths, message", [
    ([3, 3], "sum to 6, but the dataset has 10 samples"),
    ([0.5, 0.6], "counts >= 0 that sum to 10, or fractions that sum to 1"),
    ([-1, 11], "counts >= 0"),
    ([1.5, -0.5], "fraction at index 0 is 1.5, not between 0 and 1"),
])
def test_random_split_refuses_lengths_that_do_not_fit(lengths, message):
    with pytest.raises(ValueError, match=message):
        random_split(range(10), lengths)


def test_a_generator_must_be_a_numpy_generator():
    with pytest.raises(TypeError, match="np.random.Generator.*np.random.default_rng"):
        random_split(range(4), [2, 2], generator=0)
