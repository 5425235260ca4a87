"""The shared training core (tinygrad_mnist.loop): which images each step sees, one update, the optimizer
and schedule of a config, early stopping; and that every loop that trains (the Trainer, torch_twin, the
benchmark's workers) draws its batches from it, identically for a seed, resumed or not."""
import math
import os
import signal
from types import SimpleNamespace

import numpy as np
import pytest

from tinygrad_mnist import data, nn, optim, save
from tinygrad_mnist.benchmark import workers
from tinygrad_mnist.checkpoint import load_checkpoint
from tinygrad_mnist.loop import BatchSampler, EarlyStopping, make_optimizer, make_schedule, take_batch, update
from tinygrad_mnist.training import (ScaledImages, Trainer, TrainingInterrupted, look_up, make_config, model_input,
                                     prepare_data)

SEED, N, BATCH, EPOCHS = 5, 96, 32, 2  # 3 steps an epoch


def expected_indices():
    """The rule: epoch e's order is the e-th permutation of the training images drawn from
    default_rng(seed); step k takes its k-th slice of batch_size."""
    rng = np.random.default_rng(SEED)
    orders = [rng.permutation(N) for _ in range(EPOCHS)]
    return [order[k * BATCH:(k + 1) * BATCH] for order in orders for k in range(math.ceil(N / BATCH))]


@pytest.fixture
def drawn(monkeypatch):
    """Every batch of indices any loop draws from a BatchSampler, in order."""
    seen, batches = [], BatchSampler.batches

    def recorded(self, order, start=0):
        for step, index in batches(self, order, start):
            seen.append(index.copy())
            yield step, index
    monkeypatch.setattr(BatchSampler, "batches", recorded)
    return seen


def assert_same_batches(drawn, expected):
    assert len(drawn) == len(expected)
    for got, want in zip(drawn, expected):
        np.testing.assert_array_equal(got, want)


def config(dataset, **more):
    return make_config("mlp_v2", epochs=EPOCHS, batch_size=BATCH, val_size=0, limit_train=N, data_dir=str(dataset),
                       seed=SEED, device="cpu", **more)


@pytest.mark.parametrize("normalize", [True, False])
def test_prepared_images_are_model_input_s_scaling_bit_for_bit(dataset, normalize):
    """prepare_data looks the pixels up in a table; a digit scaled on its own (model_input, as predict
    does) must give the model the same bits."""
    c = dict(make_config("lenet5", val_size=100, data_dir=str(dataset), seed=SEED), normalize=normalize)
    prepared, ds = prepare_data(c), data.load_dataset("mnist", data_dir=str(dataset))
    train_x, _, val_x, _ = data.train_val_split(ds.train_images, ds.train_labels, 100, seed=SEED)
    for split, images in (("train", train_x), ("val", val_x), ("test", ds.test_images)):
        expected = model_input(data.to_float(images), c)
        scaled = prepared[split][0]
        assert scaled.images.dtype == np.uint8 and scaled.dtype == np.float32  # kept as bytes
        got = np.asarray(scaled)
        assert got.dtype == np.float32 and got.shape == scaled.shape == expected.shape == (len(images), 1, 28, 28)
        np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
        index = np.array([len(images) - 1, 0, 3, 3])  # a batch in any order, repeats included
        for taken, want in ((scaled[index], expected[index]), (scaled[2:7], expected[2:7]), (scaled[5], expected[5]),
                            (scaled[-1], expected[-1]), (scaled[:0], expected[:0])):
            assert taken.dtype == np.float32 and taken.shape == want.shape
            np.testing.assert_array_equal(taken.view(np.uint32), want.view(np.uint32))


def test_scaled_images_batches_augment_to_the_same_bits_as_the_float_array(dataset):
    """take_batch from the bytes (ScaledImages) and from the whole float array: the same batch, augmented by
    the same draws, to the bit."""
    prepared = prepare_data(make_config("lenet5", val_size=0, data_dir=str(dataset), seed=SEED))
    scaled, y = prepared["train"]
    whole = np.asarray(scaled)
    index = np.array([4, 1, 9, 0])
    for augment in (None, True):
        a, ya = take_batch(scaled, y, index, np.random.default_rng(1), augment)
        b, yb = take_batch(whole, y, index, np.random.default_rng(1), augment)
        assert a.dtype == b.dtype == np.float32 and a.shape == b.shape == (4, 1, 28, 28)
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
        np.testing.assert_array_equal(ya, yb)


def test_scaled_images_reject_what_they_cannot_read():
    table = np.zeros(256, np.float32)
    with pytest.raises(ValueError, match="uint8 images"):
        ScaledImages(np.zeros((2, 28, 28), np.float32), table)
    images = ScaledImages(np.zeros((2, 28, 28), np.uint8), table)
    assert len(images) == 2 and images.shape == (2, 1, 28, 28) and images.ndim == 4
    with pytest.raises(IndexError, match="one index"):
        images[0, 0]
    with pytest.raises(IndexError):
        images[2]
    with pytest.raises(ValueError, match="256"):
        look_up(np.zeros(10, np.float32), np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        look_up(table, np.zeros(3, np.int64))
    assert np.asarray(images, dtype=np.float64).dtype == np.float64
    with pytest.raises(ValueError, match="copy=False"):
        np.asarray(images, copy=False)


@pytest.mark.parametrize("shape", [(0, 28, 28), (3, 28, 28), (2, 3, 5), (7, 10000)])
def test_the_chunked_table_look_up_is_np_take(shape):
    """look_up goes a chunk at a time: every chunk boundary (here 1,000 pixels), the last partial chunk and an
    empty or a strided input give np.take's numbers and shape."""
    rng = np.random.default_rng(0)
    table = rng.random(256, dtype=np.float32)
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    for pixels in (images, images[:, ::2]):
        got = look_up(table, pixels, chunk=1000)
        assert got.shape == pixels.shape and got.dtype == np.float32
        np.testing.assert_array_equal(got, np.take(table, pixels))


def test_the_trainer_draws_the_rule_s_batches(dataset, tmp_path, drawn):
    Trainer(config(dataset), tmp_path / "run", progress=False, log=lambda *a: None).fit()
    assert_same_batches(drawn, expected_indices())


def test_a_resumed_trainer_draws_the_rest_of_the_same_batches(dataset, tmp_path, drawn, monkeypatch):
    trainer = Trainer(config(dataset), tmp_path / "run", progress=False, log=lambda *a: None)
    step, calls = trainer.optimizer.step, []

    def step_then_signal():
        step()
        calls.append(1)
        if len(calls) == 4:  # the first step of the second epoch
            os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(trainer.optimizer, "step", step_then_signal)
    with pytest.raises(TrainingInterrupted):
        trainer.fit()
    Trainer.resume(tmp_path / "run", progress=False, log=lambda *a: None).fit()
    assert_same_batches(drawn, expected_indices())


def test_both_frameworks_of_the_twin_draw_the_rule_s_batches(dataset, drawn):
    pytest.importorskip("torch")
    from tinygrad_mnist import torch_twin
    c = config(dataset, dropout=0.0)
    prepared = prepare_data(c)
    torch_twin.compare_steps("mlp_v2", *prepared["train"], c, steps=EPOCHS * 3)
    assert_same_batches(drawn, expected_indices())
    drawn.clear()
    torch_twin.train_both("mlp_v2", c, prepared, log=lambda *a: None)
    assert_same_batches(drawn, expected_indices() * 2)  # ours, then theirs


@pytest.mark.parametrize("framework", ["engine", "torch"])
def test_the_epoch_benchmark_times_the_rule_s_first_epoch(dataset, drawn, framework):
    if framework == "torch":
        pytest.importorskip("torch")
    spec = dict(model="mlp_v2", framework=framework, device="cpu", seed=SEED, threads=1, batch_size=BATCH, lr=1e-3,
                limit=N, data_dir=str(dataset), warmup_steps=1)
    assert "error" not in workers.epoch_worker(spec)
    assert_same_batches(drawn, expected_indices()[:3])


def test_the_time_to_target_benchmark_draws_the_rule_s_batches(dataset, drawn):
    spec = dict(model="mlp_v2", epochs=EPOCHS, lr=None, batch_size=BATCH, schedule=None, limit=N,
                data_dir=str(dataset), device="cpu", seed=SEED, eval_every=0, target=2.0)  # never reached
    assert workers.time_to_target_worker(spec)["reached"] is None
    assert_same_batches(drawn, expected_indices())


@pytest.mark.parametrize("n,batch_size,steps", [(103, 10, 11), (100, 10, 10), (7, 0, 1), (5, 64, 1)])
def test_an_epoch_covers_every_image_once_in_steps_of_the_batch_size(n, batch_size, steps):
    sampler = BatchSampler(n, batch_size)
    batches = [index for _, index in sampler.batches(sampler.order(np.random.default_rng(0)))]
    assert sampler.steps_per_epoch == len(batches) == steps
    assert all(len(b) == sampler.batch_size for b in batches[:-1]) and 1 <= len(batches[-1]) <= sampler.batch_size
    assert sorted(np.concatenate(batches)) == list(range(n))


def test_batches_from_a_step_are_the_tail_of_the_epoch():
    sampler = BatchSampler(50, 8)
    order = sampler.order(np.random.default_rng(1))
    whole = list(sampler.batches(order))
    tail = list(sampler.batches(order, start=4))
    assert [step for step, _ in tail] == [4, 5, 6]
    for (_, a), (_, b) in zip(whole[4:], tail):
        np.testing.assert_array_equal(a, b)


def test_no_training_images_is_a_clear_error():
    with pytest.raises(ValueError, match="no training images"):
        BatchSampler(0, 32)


def test_augmented_batches_draw_from_the_epoch_s_generator_after_its_order():
    x, y = np.zeros((4, 1, 28, 28), np.float32), np.arange(4)
    x[:, 0, 10:18, 13:15] = 1
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    xa, ya = take_batch(x, y, np.array([2, 0]), a, augment=True)
    assert xa.dtype == np.float32 and xa.shape == (2, 1, 28, 28) and ya.tolist() == [2, 0]
    assert not np.array_equal(xa, x[[2, 0]])
    xb, _ = take_batch(x, y, np.array([2, 0]), b, augment=True)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(take_batch(x, y, np.array([1]), None)[0], x[[1]])


def test_an_update_zeroes_backpropagates_steps_and_then_advances_the_schedule():
    calls = []
    record = lambda name: lambda: calls.append(name)  # noqa: E731
    loss = SimpleNamespace(backward=record("backward"))
    optimizer = SimpleNamespace(zero_grad=record("zero_grad"), step=record("optimizer.step"))
    update(loss, optimizer, SimpleNamespace(step=record("schedule.step")))
    assert calls == ["zero_grad", "backward", "optimizer.step", "schedule.step"]
    calls.clear()
    update(loss, optimizer, None)
    assert calls == ["zero_grad", "backward", "optimizer.step"]


@pytest.mark.parametrize("model,overrides", [("mlp_64_32", {}), ("mlp_v2", {}), ("lenet5", dict(optimizer="adamw")),
                                             ("sprint_cnn", {}), ("lenet5", dict(optimizer="adamw", betas=(0.8, 0.95))),
                                             ("lenet5", dict(optimizer="rmsprop")),
                                             ("lenet5", dict(optimizer="adagrad", weight_decay=0.1))])
def test_the_optimizer_of_a_config_is_the_same_in_both_frameworks(model, overrides):
    torch = pytest.importorskip("torch")
    c = make_config(model, **overrides)
    ours = make_optimizer(c, [nn.Parameter(np.zeros(2, np.float32))], optim)
    theirs = make_optimizer(c, [torch.zeros(2, requires_grad=True)], torch.optim)
    assert type(ours).__name__ == type(theirs).__name__
    for key in ("lr", "weight_decay", "momentum", "nesterov", "betas"):
        if key in theirs.defaults:
            assert ours.defaults[key] == theirs.defaults[key], key
    if "betas" in theirs.defaults:
        assert theirs.defaults["betas"] == tuple(c["betas"])


@pytest.mark.parametrize("schedule", ["constant", "step", "cosine", "onecycle"])
def test_the_schedule_of_a_config_gives_the_same_rates_in_both_frameworks(schedule):
    torch = pytest.importorskip("torch")
    c = make_config("lenet5", schedule=schedule, epochs=3, optimizer="adam", lr=4e-3)
    rates = []
    for framework, params in ((optim, [nn.Parameter(np.zeros(2))]),
                              (torch.optim, [torch.zeros(2, requires_grad=True)])):
        opt = make_optimizer(c, params, framework)
        sched = make_schedule(c, opt, 7, framework)
        lrs = []
        for _ in range(3 * 7):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            if sched is not None:
                sched.step()
        rates.append(lrs)
    assert rates[0] == pytest.approx(rates[1], rel=1e-12)
    assert (len(set(rates[0])) == 1) == (schedule == "constant")


def test_a_warm_up_is_refused_for_an_optimizer_module_without_one():
    torch = pytest.importorskip("torch")
    c = make_config("lenet5", warmup_epochs=1)
    opt = make_optimizer(c, [torch.zeros(2, requires_grad=True)], torch.optim)
    with pytest.raises(ValueError, match="warm-up"):
        make_schedule(c, opt, 5, torch.optim)


class Scalar(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(np.zeros(1))


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    model, stopper = Scalar(), EarlyStopping(patience=2)
    decisions = []
    for epoch, val_loss in enumerate([1.0, 0.5, 0.6, 0.4, 0.45, 0.41, 0.3], start=1):
        model.w.array[...] = epoch
        decisions.append(stopper.step(val_loss, model))
        if decisions[-1]:
            break
    assert decisions == [False, False, False, False, False, True]
    assert stopper.best_loss == 0.4 and stopper.best_epoch == 4 and stopper.stopped
    stopper.restore(model)
    assert model.w.numpy()[0] == 4


def test_early_stopping_without_patience_only_tracks_the_best_epoch():
    model, stopper = Scalar(), EarlyStopping(patience=None)
    for epoch, val_loss in enumerate([1.0, 0.5, 0.6, 0.7, 0.8, 0.9], start=1):
        model.w.array[...] = epoch
        assert stopper.step(val_loss, model) is False
    assert stopper.best_epoch == 2 and stopper.bad_epochs == 4 and not stopper.stopped
    stopper.restore(model)
    assert model.w.numpy()[0] == 2


def test_early_stopping_ignores_improvements_within_min_delta():
    model, stopper = Scalar(), EarlyStopping(patience=2, min_delta=0.1)
    assert [stopper.step(v, model) for v in [1.0, 0.95, 0.91]] == [False, False, True]
    assert stopper.best_epoch == 1


def test_early_stopping_never_counts_nan_as_better():
    model, stopper = Scalar(), EarlyStopping(patience=1)
    assert stopper.step(1.0, model) is False
    assert stopper.step(math.nan, model) is True


def test_early_stopping_resumes_from_a_checkpoint(tmp_path):
    model, stopper = Scalar(), EarlyStopping(patience=3)
    for epoch, v in enumerate([1.0, 0.5, 0.7], start=1):
        model.w.array[...] = epoch
        stopper.step(v, model)
    save({"early_stopping": stopper.state_dict()}, tmp_path / "c.npz")  # torch.save: the clones as arrays
    resumed = EarlyStopping(patience=3)
    resumed.load_state_dict(load_checkpoint(tmp_path / "c.npz")["early_stopping"])
    assert [resumed.step(v, model) for v in [0.8, 0.9]] == [False, True]
    resumed.restore(model)
    assert model.w.numpy()[0] == 2 and resumed.best_epoch == 2


def test_early_stopping_restore_before_any_epoch_raises():
    with pytest.raises(RuntimeError, match="no epoch"):
        EarlyStopping(patience=1).restore(Scalar())


@pytest.mark.parametrize("patience", [0, -1])
def test_early_stopping_refuses_a_patience_below_one(patience):
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=patience)
