"""tinygrad_mnist.utils.data behaves as torch.utils.data: Dataset and its subclasses, random_split, samplers,
default_collate's rules and the DataLoader's options, each compared with PyTorch's result where PyTorch is
installed, and each bad input refused in one line that says what to do."""
import collections
import warnings

import numpy as np
import pytest

import tinygrad_mnist as engine
from tinygrad_mnist import nn, optim
from tinygrad_mnist.utils import data
from tinygrad_mnist.utils.data import (BatchSampler, ConcatDataset, DataLoader, Dataset, RandomSampler,
                                       SequentialSampler, Subset, SubsetRandomSampler, TensorDataset,
                                       WeightedRandomSampler, default_collate, default_convert, get_worker_info,
                                       random_split)

Point = collections.namedtuple("Point", "x y")


def plain(value):
    """A batch as plain Python, so the two frameworks' batches compare with ==: each tensor becomes
    ("tensor", dtype, values); containers keep their type (a namedtuple its name)."""
    if type(value).__name__ == "Tensor":
        array = value.detach().numpy()
        return "tensor", str(array.dtype), array.tolist()
    if isinstance(value, dict):
        return type(value).__name__, {key: plain(v) for key, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value).__name__, [plain(v) for v in value]
    if isinstance(value, (list, tuple)):
        return type(value).__name__, [plain(v) for v in value]
    return value


# Samples of each kind default_collate batches, made with either framework's `tensor`.
SAMPLES = {
    "tensor-rows": lambda tensor, i: tensor([i, i + 1.0, 2.0 * i]),
    "tensor-pairs": lambda tensor, i: (tensor([[i, 1.0]]), tensor(i)),
    "numpy-arrays": lambda tensor, i: np.full((2, 2), i, np.float32),
    "numpy-0d-arrays": lambda tensor, i: np.array(1.5 * i),
    "numpy-int32-scalars": lambda tensor, i: np.int32(i),
    "numpy-float32-scalars": lambda tensor, i: np.float32(i / 2),
    "python-floats": lambda tensor, i: i / 2,
    "python-ints": lambda tensor, i: i,
    "python-bools": lambda tensor, i: i % 2 == 0,
    "strings": lambda tensor, i: f"sample{i}",
    "bytes": lambda tensor, i: bytes([i]),
    "tuples": lambda tensor, i: (np.full(2, i, np.float32), i),
    "lists": lambda tensor, i: [i, i / 2],
    "dicts": lambda tensor, i: {"image": np.full((1, 2), i, np.uint8), "label": i, "name": f"s{i}"},
    "ordered-dicts": lambda tensor, i: collections.OrderedDict(b=i, a=float(i)),
    "namedtuples": lambda tensor, i: Point(i, tensor([i, -i])),
    "nested": lambda tensor, i: {"pair": (i, [i / 4, np.int64(i)]), "t": tensor([[i]])},
}


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_default_collate_batches_each_kind_of_sample_as_pytorch_does(kind):
    torch = pytest.importorskip("torch")
    from torch.utils.data import default_collate as torch_collate
    ours = default_collate([SAMPLES[kind](engine.tensor, i) for i in range(3)])
    theirs = torch_collate([SAMPLES[kind](torch.tensor, i) for i in range(3)])
    assert plain(ours) == plain(theirs)


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_a_dataloader_over_a_list_of_samples_gives_pytorchs_batches(kind):
    torch = pytest.importorskip("torch")
    ours = DataLoader([SAMPLES[kind](engine.tensor, i) for i in range(5)], batch_size=2)
    theirs = torch.utils.data.DataLoader([SAMPLES[kind](torch.tensor, i) for i in range(5)], batch_size=2)
    assert [plain(b) for b in ours] == [plain(b) for b in theirs]


def test_a_dataset_of_single_tensors_is_batched_into_one_tensor_not_a_tuple_of_columns():
    class Rows(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return engine.tensor([i, i + 1.0, i + 2.0])

    batch = next(iter(DataLoader(Rows(), batch_size=4)))
    assert isinstance(batch, engine.Tensor) and batch.shape == (4, 3) and batch[:, 0].tolist() == [0, 1, 2, 3]


def test_python_numbers_collate_to_pytorchs_dtypes():
    assert default_collate([0.5, 1.5]).dtype == np.float64 and default_collate([1, 2]).dtype == np.int64
    assert default_collate([True, False]).dtype == np.bool_ and default_collate([1, 2.5]).dtype == np.float32


def test_a_tuple_sample_collates_to_a_list_as_in_pytorch():
    batch = default_collate([(1, 2.0), (3, 4.0)])
    assert isinstance(batch, list) and [b.tolist() for b in batch] == [[1, 3], [2.0, 4.0]]


def test_collating_tensors_that_require_grad_records_the_stack():
    w = engine.tensor([1.0, 2.0], requires_grad=True)
    default_collate([w * 2, w * 3]).sum().backward()
    assert w.grad.tolist() == [5.0, 5.0]


COLLATE_REFUSALS = {  # samples made with either framework, error, what the message names
    "different-shapes": (lambda fw: [fw.zeros(2), fw.zeros(3)], RuntimeError,
                         r"different shapes, \(2,\) at 0 and \(3,\) at 1.*collate_fn"),
    "different-array-shapes": (lambda fw: [np.zeros(2), np.zeros(3)], RuntimeError, "different shapes"),
    "different-lengths": (lambda fw: [(1, 2), (1, 2, 3)], RuntimeError, "different lengths, 2 at 0 and 3 at 1"),
    "a-missing-key": (lambda fw: [{"a": 1, "b": 2}, {"a": 3}], KeyError, "sample 1 has no key 'b'"),
    "mixed-types": (lambda fw: [fw.zeros(2), np.zeros(2)], TypeError, "sample 1 is a ndarray where sample 0 is a "
                                                                      "Tensor"),
    "string-arrays": (lambda fw: [np.array(["a"]), np.array(["b"])], TypeError, "dtype <U1.*collate_fn"),
    "none": (lambda fw: [None, None], TypeError, "found NoneType: return one of those from __getitem__, or pass a "
                                                 "collate_fn"),
    "objects": (lambda fw: [object()], TypeError, "found object"),
}


@pytest.mark.parametrize("case", sorted(COLLATE_REFUSALS))
def test_default_collate_refuses_what_it_cannot_batch_in_one_line(case):
    samples, error, message = COLLATE_REFUSALS[case]
    with pytest.raises(error, match=message) as caught:
        default_collate(samples(engine))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("case", sorted(COLLATE_REFUSALS))
def test_pytorch_refuses_the_same_samples_with_the_same_error_type(case):
    torch = pytest.importorskip("torch")
    samples, error, _ = COLLATE_REFUSALS[case]
    with pytest.raises(error):
        torch.utils.data.default_collate(samples(torch))


def test_default_convert_turns_arrays_into_tensors_as_pytorch_does():
    torch = pytest.importorskip("torch")
    from torch.utils.data import default_convert as torch_convert
    sample = {"x": np.arange(3), "pair": (np.float32(2), "s"), "n": 4, "p": Point(np.zeros(2), 1), "l": [np.ones(1)]}
    assert plain(default_convert(sample)) == plain(torch_convert(sample))


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


# Samplers

def test_sequential_and_batch_samplers_give_pytorchs_indices():
    torch = pytest.importorskip("torch")
    for drop_last in (False, True):
        ours = BatchSampler(SequentialSampler(range(7)), 3, drop_last)
        theirs = torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(range(7)), 3, drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_batch_sampler_refuses_what_pytorch_refuses():
    with pytest.raises(ValueError, match="batch_size should be a positive integer value, but got batch_size=0"):
        BatchSampler(range(3), 0, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean value"):
        BatchSampler(range(3), 2, 1)


def test_random_sampler_draws_a_permutation_or_more():
    assert sorted(RandomSampler(range(6))) == list(range(6)) and len(RandomSampler(range(6))) == 6
    twice = list(RandomSampler(range(5), num_samples=10))
    assert sorted(twice) == sorted(list(range(5)) * 2)
    drawn = list(RandomSampler(range(3), replacement=True, num_samples=20))
    assert len(drawn) == 20 and set(drawn) <= {0, 1, 2}
    with pytest.raises(ValueError, match="num_samples should be a positive integer value"):
        RandomSampler(range(3), num_samples=0)


def test_subset_random_sampler_permutes_its_indices():
    assert sorted(SubsetRandomSampler([4, 7, 9])) == [4, 7, 9] and len(SubsetRandomSampler([4, 7, 9])) == 3


def test_weighted_random_sampler_never_draws_a_zero_weight():
    drawn = list(WeightedRandomSampler([0.0, 1.0, 3.0], 50, generator=np.random.default_rng(0)))
    assert len(drawn) == 50 and set(drawn) == {1, 2}
    assert sorted(WeightedRandomSampler([1, 1, 1], 3, replacement=False)) == [0, 1, 2]
    with pytest.raises(ValueError, match="without replacement"):
        WeightedRandomSampler([1, 1], 3, replacement=False)


# The DataLoader

def test_a_tensor_dataset_batches_as_default_collate_of_its_samples_would():
    ds = TensorDataset(np.arange(12.0).reshape(6, 2), np.arange(6))
    fast = list(DataLoader(ds, batch_size=4))
    assert [plain(b) for b in fast] == [plain(default_collate([ds[i] for i in range(s, min(s + 4, 6))]))
                                        for s in (0, 4)]


def test_a_tensor_dataset_gives_pytorchs_batches():
    torch = pytest.importorskip("torch")
    x, y = np.arange(14.0, dtype=np.float32).reshape(7, 2), np.arange(7)
    ours = DataLoader(TensorDataset(x, y), batch_size=3)
    theirs = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y)),
                                         batch_size=3)
    assert [plain(b) for b in ours] == [plain(b) for b in theirs]


def test_a_subset_of_a_tensor_dataset_batches_its_own_samples():
    ds = TensorDataset(np.arange(10) * 10)
    subset = Subset(Subset(ds, [9, 1, 5, 3]), [3, 0, 2])
    assert [b[0].tolist() for b in DataLoader(subset, batch_size=2)] == [[30, 90], [50]]


def test_changing_a_batch_in_place_leaves_the_dataset_as_it_was():
    ds = TensorDataset(np.zeros((4, 2)))
    for (x,) in DataLoader(ds, batch_size=2):
        x += 1
    assert float(ds.tensors[0].sum()) == 0


def test_a_tensor_dataset_subclass_that_overrides_getitem_is_asked_for_each_sample():
    class Doubled(TensorDataset):
        def __getitem__(self, i):
            return self.tensors[0][i] * 2

    assert next(iter(DataLoader(Doubled(np.arange(3)), batch_size=3))).tolist() == [0, 2, 4]


def test_a_collate_fn_gets_the_list_of_samples():
    seen = []
    loader = DataLoader(TensorDataset(np.arange(4)), batch_size=3, collate_fn=lambda samples: seen.append(samples))
    list(loader)
    assert [len(s) for s in seen] == [3, 1] and isinstance(seen[0][0], tuple)


def test_a_dataset_with_getitems_is_asked_for_whole_batches():
    class Batched(Dataset):
        def __len__(self):
            return 5

        def __getitems__(self, indices):
            return [i * 10 for i in indices]

    assert [b.tolist() for b in DataLoader(Batched(), batch_size=2)] == [[0, 10], [20, 30], [40]]


LOADERS = {  # keyword arguments either DataLoader takes, over the 7 samples of a list dataset
    "default": {},
    "batches-of-3": dict(batch_size=3),
    "drop-last": dict(batch_size=3, drop_last=True),
    "a-sampler-list": dict(batch_size=2, sampler=[6, 0, 5, 1]),
    "a-sampler-range": dict(batch_size=2, sampler=range(6, -1, -2)),
    "a-batch-sampler": dict(batch_sampler=[[0, 1, 2], [6], [3, 3]]),
    "no-batching": dict(batch_size=None),
    "no-batching-with-a-sampler": dict(batch_size=None, sampler=[2, 4]),
    "workers": dict(batch_size=3, num_workers=2, pin_memory=True, persistent_workers=True, prefetch_factor=4,
                    timeout=5, multiprocessing_context="spawn", in_order=False),
    "worker-options-without-workers": dict(batch_size=3, pin_memory=True, worker_init_fn=print),
}


@pytest.mark.parametrize("case", sorted(LOADERS))
def test_the_dataloaders_options_give_pytorchs_batches_and_length(case):
    torch = pytest.importorskip("torch")
    samples = [(np.full(2, i, np.float32), i, {"w": i / 2}) for i in range(7)]
    ours = DataLoader(samples, **LOADERS[case])
    # PyTorch's workers deliver the batches num_workers=0 gives, in order; the test starts no processes
    their_options = {k: v for k, v in LOADERS[case].items() if k not in ("num_workers", "persistent_workers",
                                                                        "prefetch_factor", "timeout",
                                                                        "multiprocessing_context")}
    theirs = torch.utils.data.DataLoader(samples, **their_options)
    assert len(ours) == len(theirs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pin_memory on a machine without an accelerator
        assert [plain(b) for b in ours] == [plain(b) for b in theirs]


def test_workers_are_accepted_and_loading_happens_in_this_process():
    loader = DataLoader(TensorDataset(np.arange(4)), batch_size=2, num_workers=4)
    assert loader.prefetch_factor == 2 and get_worker_info() is None and len(list(loader)) == 2


def test_shuffle_draws_from_a_given_generator():
    def order(seed):
        loader = DataLoader(list(range(8)), batch_size=3, shuffle=True, generator=np.random.default_rng(seed))
        return [i for b in loader for i in b.tolist()]

    assert sorted(order(0)) == list(range(8)) and order(0) == order(0) and order(0) != order(1)


LOADER_REFUSALS = {  # options, message; PyTorch refuses all but the last
    "sampler-and-shuffle": (dict(sampler=[0], shuffle=True), "sampler option is mutually exclusive with shuffle"),
    "batch-sampler-and-batch-size": (dict(batch_sampler=[[0]], batch_size=2), "batch_sampler option is mutually"),
    "batch-sampler-and-drop-last": (dict(batch_sampler=[[0]], drop_last=True), "batch_sampler option is mutually"),
    "no-batching-and-drop-last": (dict(batch_size=None, drop_last=True), "mutually exclusive with drop_last"),
    "a-context-without-workers": (dict(multiprocessing_context="spawn"), "multiprocessing_context can only be"),
    "persistent-workers-without-workers": (dict(persistent_workers=True), "persistent_workers option needs "
                                                                          "num_workers > 0"),
    "prefetch-without-workers": (dict(prefetch_factor=2), "prefetch_factor option could only be specified"),
    "negative-workers": (dict(num_workers=-1), "num_workers option should be non-negative"),
    "negative-timeout": (dict(timeout=-1), "timeout option should be non-negative"),
    "a-timeout-without-workers": (dict(timeout=5), "timeout=5 bounds the wait for a worker process.*leave timeout=0"),
    "batch-size-0": (dict(batch_size=0), "batch_size should be a positive integer value"),
    "a-worker-init-fn-with-workers": (dict(num_workers=2, worker_init_fn=print),
                                      "worker_init_fn runs in worker processes.*drop worker_init_fn"),
}


@pytest.mark.parametrize("case", sorted(LOADER_REFUSALS))
def test_the_dataloader_refuses_options_that_would_change_the_batches(case):
    options, message = LOADER_REFUSALS[case]
    with pytest.raises(ValueError, match=message) as caught:
        DataLoader(list(range(4)), **options)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("case", sorted(set(LOADER_REFUSALS) - {"a-worker-init-fn-with-workers"}))
def test_pytorch_refuses_the_same_options(case):
    torch = pytest.importorskip("torch")
    with pytest.raises((ValueError, AssertionError)):  # a timeout without workers: PyTorch's assertion on iterating
        list(torch.utils.data.DataLoader(list(range(4)), **LOADER_REFUSALS[case][0]))


def test_every_public_name_is_one_torch_utils_data_has():
    """Except MNIST, the engine's own from before vision.datasets.MNIST, kept for code written against it."""
    torch = pytest.importorskip("torch")
    assert [name for name in data.__all__ if not hasattr(torch.utils.data, name)] == ["MNIST"]


# A whole program

def make_dataset(framework_tensor):
    class Squares(Dataset):
        """12 samples of an (8,) float32 pattern and its class, as a user's Dataset would give them."""

        def __init__(self):
            rng = np.random.default_rng(0)
            self.x, self.y = rng.standard_normal((12, 8)).astype(np.float32), rng.integers(0, 3, 12)

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return framework_tensor(self.x[i]), int(self.y[i])

    return Squares()


def test_a_custom_dataset_trains_a_model_on_pytorchs_batches_with_pytorchs_losses():
    torch = pytest.importorskip("torch")
    theirs_model = torch.nn.Linear(8, 3)
    ours_model = nn.Linear(8, 3)
    ours_model.load_state_dict({k: v.detach().numpy() for k, v in theirs_model.state_dict().items()})
    ours_opt = optim.SGD(ours_model.parameters(), lr=0.5)
    theirs_opt = torch.optim.SGD(theirs_model.parameters(), lr=0.5)
    ours_loader = DataLoader(make_dataset(engine.tensor), batch_size=5, shuffle=False)
    theirs_loader = torch.utils.data.DataLoader(make_dataset(torch.tensor), batch_size=5, shuffle=False)
    for epoch in range(2):
        for (x, y), (tx, ty) in zip(ours_loader, theirs_loader, strict=True):
            assert plain([x, y]) == plain([tx, ty])
            ours_opt.zero_grad()
            loss = engine.functional.cross_entropy(ours_model(x), y)
            loss.backward()
            ours_opt.step()
            theirs_opt.zero_grad()
            their_loss = torch.nn.functional.cross_entropy(theirs_model(tx), ty)
            their_loss.backward()
            theirs_opt.step()
            assert loss.item() == pytest.approx(their_loss.item(), rel=1e-5)
    np.testing.assert_allclose(ours_model.weight.numpy(), theirs_model.weight.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
