"""The same model in PyTorch, side by side with this engine.

`torch_model(name, model)` builds the PyTorch twin of one of `models/` and copies the model's weights
(and batch-norm running statistics) into it. `compare_steps` trains both in float64 on the same batches
with the same optimizer and schedule and compares the loss of every step; `train_both` trains both on
the whole training set and `format_table` prints their test metrics. PyTorch is imported only when one
of them runs: `python scripts/compare_pytorch.py --help` works without it.
"""
import argparse
import functools
import math
import sys
import time
from collections import namedtuple

import numpy as np

from . import backend, data, metrics, nn
from . import functional as F
from .models import MODELS, build_model
from .tensor import Tensor
from .training import evaluate, make_config, make_optimizer, make_schedule, prepare_data

INSTALL_HINT = "PyTorch is not installed: pip install torch==2.13.0 (CPU build) or see https://pytorch.org"
TOLERANCE = 1e-6  # the largest relative difference of a step's loss that passes, in float64

StepAgreement = namedtuple("StepAgreement", "ours theirs worst_loss worst_state dropout")
Row = namedtuple("Row", "model framework accuracy macro_precision macro_recall macro_f1 seconds")


class TorchMissing(ImportError):
    pass


def import_torch():
    try:
        import torch
    except ImportError as e:
        raise TorchMissing(INSTALL_HINT) from e
    return torch


@functools.cache
def _twins():
    """name → the PyTorch class mirroring models/<name>; each takes our model and reads its settings."""
    torch = import_torch()
    tnn, TF = torch.nn, torch.nn.functional

    class MLPv1(tnn.Module):
        def __init__(self, ours):
            super().__init__()
            self.fc1, self.fc2 = tnn.Linear(784, 128), tnn.Linear(128, 10)

        def forward(self, x):
            return self.fc2(torch.tanh(self.fc1(x.flatten(1))))

    class MLPDropout(tnn.Module):  # ReLUMLP: mlp_v2 (784-128-10) and mlp_533 (784-533-10)
        def __init__(self, ours):
            super().__init__()
            hidden = ours.fc1.out_features
            self.fc1, self.drop, self.fc2 = tnn.Linear(784, hidden), tnn.Dropout(ours.drop.p), tnn.Linear(hidden, 10)

        def forward(self, x):
            return self.fc2(self.drop(TF.relu(self.fc1(x.flatten(1)))))

    class MLP64x32(tnn.Module):
        def __init__(self, ours):
            super().__init__()
            self.act = TF.relu if ours.activation == "relu" else torch.sigmoid
            self.fc1, self.fc2, self.fc3 = tnn.Linear(784, 64), tnn.Linear(64, 32), tnn.Linear(32, 10)

        def forward(self, x):
            return self.fc3(self.act(self.fc2(self.act(self.fc1(x.flatten(1))))))

    class LeNet5(tnn.Module):
        def __init__(self, ours):
            super().__init__()
            self.conv1, self.conv2 = tnn.Conv2d(1, 6, 5), tnn.Conv2d(6, 16, 5)
            self.fc1, self.fc2, self.fc3 = tnn.Linear(256, 120), tnn.Linear(120, 84), tnn.Linear(84, 10)

        def forward(self, x):
            x = TF.relu(TF.max_pool2d(self.conv1(x), 2))
            x = TF.relu(TF.max_pool2d(self.conv2(x), 2))
            x = TF.relu(self.fc1(x.flatten(1)))
            return self.fc3(TF.relu(self.fc2(x)))

    class CNNBN(tnn.Module):
        def __init__(self, ours):
            super().__init__()
            self.conv1, self.bn1 = tnn.Conv2d(1, 16, 5, bias=False), tnn.BatchNorm2d(16)
            self.conv2, self.bn2 = tnn.Conv2d(16, 32, 5, bias=False), tnn.BatchNorm2d(32)
            self.fc = tnn.Linear(512, 10)

        def forward(self, x):
            x = TF.relu(TF.max_pool2d(self.bn1(self.conv1(x)), 2))
            x = TF.relu(TF.max_pool2d(self.bn2(self.conv2(x)), 2))
            return self.fc(x.flatten(1))

    class SimpleCNN(tnn.Module):
        def __init__(self, ours):
            super().__init__()
            self.conv1, self.conv2 = tnn.Conv2d(1, 16, 3, padding=1), tnn.Conv2d(16, 32, 3, padding=1)
            self.fc1, self.fc2 = tnn.Linear(1568, 100), tnn.Linear(100, 10)

        def forward(self, x):
            x = TF.relu(TF.max_pool2d(self.conv1(x), 2))
            x = TF.relu(TF.max_pool2d(self.conv2(x), 2))
            return self.fc2(TF.relu(self.fc1(x.flatten(1))))

    class Best(tnn.Module):
        def __init__(self, ours):
            super().__init__()
            self.conv1, self.bn1 = tnn.Conv2d(1, 32, 3, padding=1, bias=False), tnn.BatchNorm2d(32)
            self.conv2, self.bn2 = tnn.Conv2d(32, 32, 3, padding=1, bias=False), tnn.BatchNorm2d(32)
            self.conv3, self.bn3 = tnn.Conv2d(32, 64, 3, padding=1, bias=False), tnn.BatchNorm2d(64)
            self.conv4, self.bn4 = tnn.Conv2d(64, 64, 3, padding=1, bias=False), tnn.BatchNorm2d(64)
            self.fc1, self.bn5 = tnn.Linear(3136, 128, bias=False), tnn.BatchNorm1d(128)
            self.drop, self.fc2 = tnn.Dropout(ours.drop.p), tnn.Linear(128, 10)

        def forward(self, x):
            x = TF.relu(self.bn1(self.conv1(x)))
            x = TF.relu(TF.max_pool2d(self.bn2(self.conv2(x)), 2))
            x = TF.relu(self.bn3(self.conv3(x)))
            x = TF.relu(TF.max_pool2d(self.bn4(self.conv4(x)), 2))
            x = self.drop(TF.relu(self.bn5(self.fc1(x.flatten(1)))))
            return self.fc2(x)

    class PreActBlock(tnn.Module):
        def __init__(self, ours):
            super().__init__()
            cin, cout, stride = ours.conv1.in_channels, ours.conv1.out_channels, ours.conv1.stride
            self.bn1, self.conv1 = tnn.BatchNorm2d(cin), tnn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)
            self.bn2, self.conv2 = tnn.BatchNorm2d(cout), tnn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.shortcut = None if ours.shortcut is None else tnn.Conv2d(cin, cout, 1, stride, bias=False)

        def forward(self, x):
            a = TF.relu(self.bn1(x))
            skip = x if self.shortcut is None else self.shortcut(a)
            return skip + self.conv2(TF.relu(self.bn2(self.conv1(a))))

    class ResNet(tnn.Module):
        def __init__(self, ours):
            super().__init__()
            self.stem = tnn.Conv2d(1, 16, 3, padding=1, bias=False)
            self.block1, self.block2, self.block3 = (PreActBlock(b) for b in (ours.block1, ours.block2, ours.block3))
            self.bn, self.fc = tnn.BatchNorm2d(64), tnn.Linear(64, 10)

        def forward(self, x):
            x = self.block3(self.block2(self.block1(self.stem(x))))
            return self.fc(TF.relu(self.bn(x)).mean(dim=(2, 3)))

    return {"mlp_v1": MLPv1, "mlp_v2": MLPDropout, "mlp_533": MLPDropout, "mlp_64_32": MLP64x32,
            "lenet5": LeNet5, "cnn_bn": CNNBN, "simple_cnn": SimpleCNN, "best": Best, "resnet": ResNet}


def torch_model(name, model):
    """The PyTorch twin of `model` (built by build_model(name)), holding a copy of its parameters and
    buffers under the same state_dict names, in its dtype and training mode."""
    torch = import_torch()
    if name not in _twins():
        raise ValueError(f"no PyTorch twin for {name!r}; known: {', '.join(sorted(_twins()))}")
    twin = _twins()[name](model)
    state = model.state_dict()
    twin.to(getattr(torch, str(next(iter(state.values())).dtype)))
    result = twin.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]  # PyTorch's own counter
    if missing or result.unexpected_keys:
        raise ValueError(f"the PyTorch twin of {name!r} does not fit the model: missing {missing}, "
                         f"unexpected {result.unexpected_keys}")
    return twin.train(model.training)


def cast_(model, dtype):
    """Convert the model's parameters and buffers to `dtype` in place (before making its optimizer)."""
    for t in [*model.parameters(), *model.buffers()]:
        t.data = t.data.astype(dtype)
    return model


def disable_dropout_(model):
    """Set every Dropout's p to 0: the two frameworks draw different masks, so steps agree only without."""
    layers = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    for m in layers:
        m.p = 0.0
    return bool(layers)


def torch_optimizer(config, params):
    """torch.optim's optimizer for the config, as training.make_optimizer makes ours."""
    optim = import_torch().optim
    name, lr, wd = config["optimizer"], config["lr"], config["weight_decay"]
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=config["momentum"], nesterov=config["nesterov"], weight_decay=wd)
    kinds = {"adam": optim.Adam, "adamw": optim.AdamW, "rmsprop": optim.RMSprop, "adagrad": optim.Adagrad}
    return kinds[config["optimizer"]](params, lr=lr, weight_decay=wd)


def torch_schedule(config, optimizer, steps_per_epoch):
    """torch.optim.lr_scheduler's per-step schedule for the config (or None), as training.make_schedule."""
    sched = import_torch().optim.lr_scheduler
    if config["warmup_epochs"]:
        raise ValueError("warm-up schedules are not mirrored in PyTorch here; leave warmup_epochs at 0")
    total = config["epochs"] * steps_per_epoch
    kind = config["schedule"]
    if kind == "onecycle":
        return sched.OneCycleLR(optimizer, max_lr=config["lr"], total_steps=total)
    if kind == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=max(total, 1))
    if kind == "step":
        return sched.StepLR(optimizer, step_size=max(total // 3, 1), gamma=0.1)
    return None


def batch_stream(x, y, config, rng, augment=False):
    """(epoch, x, y) batches in the order the Trainer draws them: a permutation of the training set
    per epoch from `rng`, then, if augmenting, each batch warped with the same `rng`."""
    batch_size = config["batch_size"] or len(x)
    for epoch in range(config["epochs"]):
        for xb, yb in data.batches(x, y, batch_size, shuffle=True, rng=rng):
            if augment:
                xb = data.augment(xb[:, 0], rng)[:, None].astype(x.dtype)
            yield epoch, xb, yb


def _update(loss, optimizer, schedule):
    """One optimizer step from `loss`; the same calls in both frameworks."""
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if schedule is not None:
        schedule.step()
    return float(loss.item())


class _Ours:
    """One training step of our model."""

    def __init__(self, model, config, steps_per_epoch):
        self.model, self.device, self.smoothing = model, config["device"], config["label_smoothing"]
        self.optimizer = make_optimizer(config, list(model.parameters()))
        self.schedule = make_schedule(config, self.optimizer, steps_per_epoch)

    def step(self, xb, yb):
        loss = F.cross_entropy(self.model(Tensor(xb, device=self.device)), yb, label_smoothing=self.smoothing)
        return _update(loss, self.optimizer, self.schedule)


class _Theirs:
    """One training step of the PyTorch twin."""

    def __init__(self, twin, config, steps_per_epoch):
        self.torch = import_torch()
        self.model, self.smoothing = twin, config["label_smoothing"]
        self.optimizer = torch_optimizer(config, twin.parameters())
        self.schedule = torch_schedule(config, self.optimizer, steps_per_epoch)

    def step(self, xb, yb):
        torch = self.torch
        logits = self.model(torch.from_numpy(xb))
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(yb.astype(np.int64)),
                                                 label_smoothing=self.smoothing)
        return _update(loss, self.optimizer, self.schedule)


def _steps_per_epoch(n, config):
    return math.ceil(n / min(config["batch_size"] or n, n))


def _relative(a, b):
    return abs(a - b) / max(abs(b), np.finfo(np.float64).tiny)


def compare_steps(name, x, y, config, steps=100):
    """Train model `name` and its PyTorch twin in float64 from the same initial weights, on the same
    batches in the same order, without augmentation or dropout, with the config's optimizer and
    schedule, for `steps` steps (at most the config's epochs × steps per epoch).

    Returns StepAgreement: both losses per step, the worst relative difference of a step's loss, the
    worst relative difference of a parameter or buffer at the end (max |ours - theirs| / max |theirs|),
    and whether the model has dropout (switched off here: p=0 in both, as their masks would differ).
    """
    backend.manual_seed(config["seed"])
    model = cast_(build_model(name), np.float64).to(config["device"])
    dropout = disable_dropout_(model)
    twin = torch_model(name, model)
    x, spe = x.astype(np.float64), _steps_per_epoch(len(x), config)
    ours, theirs = _Ours(model.train(), config, spe), _Theirs(twin.train(), config, spe)
    our_losses, their_losses = [], []
    rng = np.random.default_rng(config["seed"])
    for _, xb, yb in batch_stream(x, y, config, rng):
        if len(our_losses) == steps:
            break
        our_losses.append(ours.step(xb, yb))
        their_losses.append(theirs.step(xb, yb))
    theirs_state = {k: v.detach().numpy() for k, v in twin.state_dict().items()}
    worst_state = max(np.abs(v - theirs_state[k]).max() / max(np.abs(theirs_state[k]).max(), 1e-300)
                      for k, v in model.state_dict().items())
    worst_loss = max(_relative(a, b) for a, b in zip(our_losses, their_losses))
    return StepAgreement(our_losses, their_losses, worst_loss, float(worst_state), dropout)


def _torch_predictions(twin, x, batch_size):
    torch = import_torch()
    twin.eval()
    with torch.no_grad():
        return np.concatenate([twin(torch.from_numpy(x[i:i + batch_size])).argmax(1).numpy()
                               for i in range(0, len(x), batch_size)])


def train_both(name, config, prepared, log=print):
    """Train model `name` and its PyTorch twin (float32, the same initial weights) for the config's epochs
    on the same batches, augmented alike when the config says so; dropout keeps each framework's own
    masks. Returns one Row per framework with its test metrics and training seconds (the final weights:
    no validation, no early stopping)."""
    torch = import_torch()
    (x, y), (test_x, test_y) = prepared["train"], prepared["test"]
    names = prepared["class_names"]
    backend.manual_seed(config["seed"])
    model = build_model(name, dropout=config["dropout"]).to(config["device"])
    twin = torch_model(name, model)
    spe = _steps_per_epoch(len(x), config)
    def our_predictions():
        return evaluate(model, test_x, test_y, config["eval_batch_size"], config["device"])[2].argmax(1)

    rows = []
    for framework, trainer, predictions in (
            ("tinygrad_mnist", _Ours(model.train(), config, spe), our_predictions),
            (f"torch {torch.__version__}", _Theirs(twin.train(), config, spe),
             lambda: _torch_predictions(twin, test_x, config["eval_batch_size"]))):
        rng = np.random.default_rng(config["seed"])
        started, loss_sum, seen, last_epoch = time.perf_counter(), 0.0, 0, 0
        for epoch, xb, yb in batch_stream(x, y, config, rng, augment=config["augment"]):
            if epoch != last_epoch:
                log(f"  {framework:>14}  epoch {last_epoch + 1}/{config['epochs']}  train loss {loss_sum / seen:.4f}")
                loss_sum, seen, last_epoch = 0.0, 0, epoch
            loss_sum += trainer.step(xb, yb) * len(xb)
            seen += len(xb)
        log(f"  {framework:>14}  epoch {last_epoch + 1}/{config['epochs']}  train loss {loss_sum / seen:.4f}")
        seconds = time.perf_counter() - started
        r = metrics.classification_report(test_y, predictions(), len(names), names)
        rows.append(Row(name, framework, r["accuracy"], r["macro_precision"], r["macro_recall"], r["macro_f1"],
                        seconds))
    return rows


def format_table(rows):
    header = ("model", "framework", "test acc", "macro P", "macro R", "macro F1", "train s")
    cells = [header] + [(r.model, r.framework, f"{100 * r.accuracy:.2f}%", f"{r.macro_precision:.4f}",
                         f"{r.macro_recall:.4f}", f"{r.macro_f1:.4f}", f"{r.seconds:.1f}") for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                     for row in cells)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Train a model and its PyTorch twin side by side: step-by-step "
                                            "agreement in float64, then full training and test metrics.")
    p.add_argument("--model", default="lenet5", choices=sorted(MODELS) + ["all"])
    p.add_argument("--epochs", type=int, help="full-training epochs (default: the model's recipe)")
    p.add_argument("--steps", type=int, default=100, help="steps compared one by one (default 100)")
    p.add_argument("--batch-size", type=int, help="default: the model's recipe (0: the whole training set)")
    p.add_argument("--data-dir", help="folder with the MNIST files (default: TINYGRAD_MNIST_DATA, the cache)")
    p.add_argument("--limit-train", type=int, help="train on the first N training images only (quick runs)")
    p.add_argument("--val-size", type=int, help="images held out of training as in `train` (default 10000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-full", action="store_true", help="only the step-by-step check")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        torch = import_torch()
    except TorchMissing as e:
        print(e, file=sys.stderr)
        return 2
    names = sorted(MODELS) if args.model == "all" else [args.model]
    failed, rows = [], []
    for name in names:
        config = make_config(name, epochs=args.epochs, batch_size=args.batch_size, data_dir=args.data_dir,
                             limit_train=args.limit_train, val_size=args.val_size, seed=args.seed)
        prepared = prepare_data(config)
        x, y = prepared["train"]
        result = compare_steps(name, x, y, config, args.steps)
        print(f"{name}: step by step in float64, batch size {config['batch_size'] or len(x)}, "
              f"{config['optimizer']} lr {config['lr']:g}, schedule {config['schedule']}, no augmentation, "
              + ("dropout off (p=0 in both: the frameworks draw different masks)" if result.dropout else "no dropout"))
        ok = result.worst_loss <= TOLERANCE
        failed += [] if ok else [name]
        print(f"  {len(result.ours)} steps: loss {result.ours[0]:.6f} -> {result.ours[-1]:.6f} (ours), "
              f"{result.theirs[0]:.6f} -> {result.theirs[-1]:.6f} (torch)")
        print(f"  worst relative loss difference {result.worst_loss:.3e} (tolerance {TOLERANCE:g}): "
              f"{'PASS' if ok else 'FAIL'}; worst relative parameter difference after the steps "
              f"{result.worst_state:.3e}")
        if not args.skip_full:
            print(f"{name}: full training in float32, {config['epochs']} epochs, torch threads "
                  f"{torch.get_num_threads()}" + (", augmented alike" if config["augment"] else ""))
            rows += train_both(name, config, prepared)
    if rows:
        print(format_table(rows))
    if failed:
        print(f"FAIL: the losses disagree for {', '.join(failed)}")
        return 1
    return 0
