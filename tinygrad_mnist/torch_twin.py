"""The same model in PyTorch, side by side with this engine.

`torch_model(name, model)` builds the PyTorch twin of one of `models/` and copies the model's weights
(and batch-norm running statistics) into it. `EngineStep` and `TorchStep` are one training step of
each framework, both driven by the shared loop (tinygrad_mnist.loop): the same batches, the same
optimizer and schedule, made by the same code. `compare_steps` trains both in float64 and compares the
loss of every step; `train_both` trains both on the whole training set and `format_table` prints their
test metrics. PyTorch is imported only when one of them runs: `tinygrad-mnist compare --help` works
without it.
"""
import functools
import time
from collections import namedtuple

import numpy as np

from . import backend, metrics, nn, optim
from . import functional as F
from .loop import BatchSampler, augmentation, make_optimizer, make_schedule, take_batch, update
from .models import MODELS, build_model
from .tables import table
from .tensor import Tensor
from .training import evaluate, make_config, prepare_data

INSTALL_HINT = ("PyTorch is not installed: pip install torch==2.13.0 (the version the parity tests pin), "
                "or see https://pytorch.org for other builds")
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
            c1, c2 = ours.conv1.out_channels, ours.conv2.out_channels  # 6 and 16 times the width
            self.conv1, self.conv2 = tnn.Conv2d(1, c1, 5), tnn.Conv2d(c1, c2, 5)
            self.fc1, self.fc2, self.fc3 = tnn.Linear(c2 * 16, 120), tnn.Linear(120, 84), tnn.Linear(84, 10)

        def forward(self, x):
            x = TF.relu(TF.max_pool2d(self.conv1(x), 2))
            x = TF.relu(TF.max_pool2d(self.conv2(x), 2))
            x = TF.relu(self.fc1(x.flatten(1)))
            return self.fc3(TF.relu(self.fc2(x)))

    class CNNBN(tnn.Module):
        def __init__(self, ours):
            super().__init__()
            c1, c2 = ours.conv1.out_channels, ours.conv2.out_channels  # cnn_bn's 16, 32; fast_cnn's 8, 16
            self.conv1, self.bn1 = tnn.Conv2d(1, c1, 5, bias=False), tnn.BatchNorm2d(c1)
            self.conv2, self.bn2 = tnn.Conv2d(c1, c2, 5, bias=False), tnn.BatchNorm2d(c2)
            self.fc = tnn.Linear(c2 * 16, 10)

        def forward(self, x):
            x = TF.relu(TF.max_pool2d(self.bn1(self.conv1(x)), 2))
            x = TF.relu(TF.max_pool2d(self.bn2(self.conv2(x)), 2))
            return self.fc(x.flatten(1))

    class SprintCNN(tnn.Module):
        def __init__(self, ours):
            super().__init__()
            self.conv1, self.bn1 = tnn.Conv2d(1, 12, 5, stride=2, bias=False), tnn.BatchNorm2d(12)
            self.conv2, self.bn2 = tnn.Conv2d(12, 24, 3, bias=False), tnn.BatchNorm2d(24)
            self.fc1, self.fc2 = tnn.Linear(600, 256), tnn.Linear(256, 10)

        def forward(self, x):
            x = TF.relu(self.bn1(self.conv1(x)))
            x = TF.relu(self.bn2(TF.max_pool2d(self.conv2(x), 2)))
            return self.fc2(TF.relu(self.fc1(x.flatten(1))))

    class Sprint995CNN(tnn.Module):
        def __init__(self, ours):
            super().__init__()
            self.conv1, self.bn1 = tnn.Conv2d(1, 16, 5, bias=False), tnn.BatchNorm2d(16)
            self.conv2, self.bn2 = tnn.Conv2d(16, 48, 3, bias=False), tnn.BatchNorm2d(48)
            self.conv3, self.bn3 = tnn.Conv2d(48, 64, 3, bias=False), tnn.BatchNorm2d(64)
            self.fc1, self.fc2 = tnn.Linear(576, 256), tnn.Linear(256, 10)

        def forward(self, x):
            x = TF.relu(self.bn1(TF.max_pool2d(self.conv1(x), 2)))
            x = TF.relu(self.bn2(TF.max_pool2d(self.conv2(x), 2)))
            x = TF.relu(self.bn3(self.conv3(x)))
            return self.fc2(TF.relu(self.fc1(x.flatten(1))))

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
            width, channels = ours.stem.out_channels, ours.fc.in_features  # 16, 64 in resnet; 32, 128 in resnet_2x
            self.stem = tnn.Conv2d(1, width, 3, padding=1, bias=False)
            self.block1, self.block2, self.block3 = (PreActBlock(b) for b in (ours.block1, ours.block2, ours.block3))
            self.bn, self.fc = tnn.BatchNorm2d(channels), tnn.Linear(channels, 10)

        def forward(self, x):
            x = self.block3(self.block2(self.block1(self.stem(x))))
            return self.fc(TF.relu(self.bn(x)).mean(dim=(2, 3)))

    class PyTorchExample(tnn.Module):  # pytorch/examples mnist/main.py's Net, with its layer names
        def __init__(self, ours):
            super().__init__()
            self.conv1, self.conv2 = tnn.Conv2d(1, 32, 3, 1), tnn.Conv2d(32, 64, 3, 1)
            self.dropout1, self.dropout2 = tnn.Dropout(ours.dropout1.p), tnn.Dropout(ours.dropout2.p)
            self.fc1, self.fc2 = tnn.Linear(9216, 128), tnn.Linear(128, 10)

        def forward(self, x):
            x = TF.max_pool2d(TF.relu(self.conv2(TF.relu(self.conv1(x)))), 2)
            x = self.dropout2(TF.relu(self.fc1(torch.flatten(self.dropout1(x), 1))))
            return TF.log_softmax(self.fc2(x), dim=1)

    return {"mlp_v1": MLPv1, "mlp_v2": MLPDropout, "mlp_533": MLPDropout, "mlp_64_32": MLP64x32,
            "lenet5": LeNet5, "cnn_bn": CNNBN, "fast_cnn": CNNBN, "sprint_cnn": SprintCNN,
            "sprint_cnn_995": Sprint995CNN, "simple_cnn": SimpleCNN, "best": Best,
            "resnet": ResNet, "resnet_wide": ResNet, "resnet_2x": ResNet, "pytorch_example": PyTorchExample}


def torch_model(name, model):
    """The PyTorch twin of `model` (built by build_model(name)), holding a copy of its parameters and
    buffers under the same state_dict names, in its dtype and training mode."""
    torch = import_torch()
    if name not in _twins():
        raise ValueError(f"no PyTorch twin for {name!r}; known: {', '.join(sorted(_twins()))}")
    twin = _twins()[name](model)
    state = model.state_dict()
    twin.to(getattr(torch, str(next(iter(state.values())).dtype)))
    result = twin.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in state.items()}, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]  # PyTorch's own counter
    if missing or result.unexpected_keys:
        raise ValueError(f"the PyTorch twin of {name!r} does not fit the model: missing {missing}, "
                         f"unexpected {result.unexpected_keys}")
    return twin.train(model.training)


def cast_(model, dtype):
    """Convert the model's parameters and buffers to `dtype` in place (before making its optimizer)."""
    for t in [*model.parameters(), *model.buffers()]:
        t.array = t.array.astype(dtype)
    return model


def disable_dropout_(model):
    """Set every Dropout's p to 0: the two frameworks draw different masks, so steps agree only without."""
    layers = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    for m in layers:
        m.p = 0.0
    return bool(layers)


class EngineStep:
    """One training step of our model: `step(xb, yb)`, for `step = EngineStep(...)`, updates it once
    and returns the batch's loss."""

    def __init__(self, model, config, steps_per_epoch):
        self.model, self.device, self.smoothing = model, config["device"], config["label_smoothing"]
        self.optimizer = make_optimizer(config, list(model.parameters()), optim)
        self.schedule = make_schedule(config, self.optimizer, steps_per_epoch, optim)

    def __call__(self, xb, yb):
        loss = F.cross_entropy(self.model(Tensor(xb, device=self.device)), yb, label_smoothing=self.smoothing)
        value = float(loss.item())
        update(loss, self.optimizer, self.schedule)
        return value


class TorchStep:
    """One training step of the PyTorch twin, on the config's device, from torch.optim by the same code."""

    def __init__(self, twin, config, steps_per_epoch):
        self.torch = import_torch()
        self.device, self.smoothing = config["device"], config["label_smoothing"]
        self.model = twin.to(self.device)
        self.optimizer = make_optimizer(config, self.model.parameters(), self.torch.optim)
        self.schedule = make_schedule(config, self.optimizer, steps_per_epoch, self.torch.optim)

    def __call__(self, xb, yb):
        torch = self.torch
        logits = self.model(torch.from_numpy(xb).to(self.device))
        labels = torch.from_numpy(yb.astype(np.int64, copy=False)).to(self.device)
        loss = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=self.smoothing)
        value = float(loss.item())
        update(loss, self.optimizer, self.schedule)
        return value


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
    x, sampler = np.asarray(x, dtype=np.float64), BatchSampler(len(x), config["batch_size"])
    ours = EngineStep(model.train(), config, sampler.steps_per_epoch)
    theirs = TorchStep(twin.train(), config, sampler.steps_per_epoch)
    our_losses, their_losses = [], []
    rng = np.random.default_rng(config["seed"])
    for _, _, index in sampler.epochs(rng, config["epochs"]):
        if len(our_losses) == steps:
            break
        xb, yb = take_batch(x, y, index, rng)
        our_losses.append(ours(xb, yb))
        their_losses.append(theirs(xb, yb))
    theirs_state = {k: v.detach().cpu().numpy() for k, v in twin.state_dict().items()}
    ours_state = {k: v.numpy() for k, v in model.state_dict().items()}
    worst_state = max(np.abs(v - theirs_state[k]).max() / max(np.abs(theirs_state[k]).max(), 1e-300)
                      for k, v in ours_state.items())
    worst_loss = max(_relative(a, b) for a, b in zip(our_losses, their_losses))
    return StepAgreement(our_losses, their_losses, worst_loss, float(worst_state), dropout)


def _torch_predictions(twin, x, batch_size):
    torch = import_torch()
    device = next(twin.parameters()).device
    twin.eval()
    with torch.no_grad():
        return np.concatenate([twin(torch.from_numpy(x[i:i + batch_size]).to(device)).argmax(1).cpu().numpy()
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
    sampler = BatchSampler(len(x), config["batch_size"])

    def our_predictions():
        return evaluate(model, test_x, test_y, config["eval_batch_size"], config["device"]).probs.argmax(1)

    rows = []
    for framework, step, predictions in (
            ("tinygrad_mnist", EngineStep(model.train(), config, sampler.steps_per_epoch), our_predictions),
            (f"torch {torch.__version__}", TorchStep(twin.train(), config, sampler.steps_per_epoch),
             lambda: _torch_predictions(twin, test_x, config["eval_batch_size"]))):
        rng = np.random.default_rng(config["seed"])
        started, loss_sum, seen, last_epoch = time.perf_counter(), 0.0, 0, 0
        for epoch, _, index in sampler.epochs(rng, config["epochs"]):
            xb, yb = take_batch(x, y, index, rng, augmentation(config))
            if epoch != last_epoch:
                log(f"  {framework:>14}  epoch {last_epoch + 1}/{config['epochs']}  train loss {loss_sum / seen:.4f}")
                loss_sum, seen, last_epoch = 0.0, 0, epoch
            loss_sum += step(xb, yb) * len(xb)
            seen += len(xb)
        log(f"  {framework:>14}  epoch {last_epoch + 1}/{config['epochs']}  train loss {loss_sum / seen:.4f}")
        seconds = time.perf_counter() - started
        r = metrics.classification_report(test_y, predictions(), len(names), names)
        rows.append(Row(name, framework, r["accuracy"], r["macro_precision"], r["macro_recall"], r["macro_f1"],
                        seconds))
    return rows


def format_table(rows):
    return table(("model", "framework", "test acc", "macro P", "macro R", "macro F1", "train s"),
                 [(r.model, r.framework, f"{100 * r.accuracy:.2f}%", f"{r.macro_precision:.4f}",
                   f"{r.macro_recall:.4f}", f"{r.macro_f1:.4f}", f"{r.seconds:.1f}") for r in rows])


def compare(args, out=print):
    """`tinygrad-mnist compare`: the step-by-step check, then (unless args.skip_full) full training of
    both frameworks and their table. Returns the exit code: 1 when a model's losses disagree."""
    torch = import_torch()
    names = sorted(MODELS) if args.model == "all" else [args.model]
    failed, rows = [], []
    for name in names:
        config = make_config(name, epochs=args.epochs, batch_size=args.batch_size, data_dir=args.data_dir,
                             limit_train=args.limit_train, val_size=args.val_size, seed=args.seed)
        prepared = prepare_data(config)
        x, y = prepared["train"]
        result = compare_steps(name, x, y, config, args.steps)
        out(f"{name}: step by step in float64, batch size {config['batch_size'] or len(x)}, "
            f"{config['optimizer']} lr {config['lr']:g}, schedule {config['schedule']}, no augmentation, "
            + ("dropout off (p=0 in both: the frameworks draw different masks)" if result.dropout else "no dropout"))
        ok = result.worst_loss <= TOLERANCE
        failed += [] if ok else [name]
        out(f"  {len(result.ours)} steps: loss {result.ours[0]:.6f} -> {result.ours[-1]:.6f} (ours), "
            f"{result.theirs[0]:.6f} -> {result.theirs[-1]:.6f} (torch)")
        out(f"  worst relative loss difference {result.worst_loss:.3e} (tolerance {TOLERANCE:g}): "
            f"{'PASS' if ok else 'FAIL'}; worst relative parameter difference after the steps "
            f"{result.worst_state:.3e}")
        if not args.skip_full:
            out(f"{name}: full training in float32, {config['epochs']} epochs, torch threads "
                f"{torch.get_num_threads()}" + (", augmented alike" if config["augment"] else ""))
            rows += train_both(name, config, prepared, log=out)
    if rows:
        out(format_table(rows))
    if failed:
        out(f"FAIL: the losses disagree for {', '.join(failed)}")
        return 1
    return 0
