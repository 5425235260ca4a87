"""The models of the from-scratch MNIST projects, each with the training recipe it is known by.

A recipe is the default of every `train` option it names; the command line can override each one.
"""
import functools
import inspect

from .cnn import CNNBN, Best, LeNet5, PyTorchExample, SimpleCNN, Sprint995CNN, SprintCNN
from .mlp import MLP64x32, MLPv1, ReLUMLP
from .resnet import ResNet

MODELS = {
    "mlp_v1": MLPv1,
    "mlp_v2": functools.partial(ReLUMLP, hidden=128, dropout=0.2),
    "mlp_533": functools.partial(ReLUMLP, hidden=533),
    "mlp_64_32": MLP64x32,
    "lenet5": LeNet5,
    "cnn_bn": CNNBN,
    "fast_cnn": functools.partial(CNNBN, channels=(8, 16)),
    "sprint_cnn": SprintCNN,
    "sprint_cnn_995": Sprint995CNN,
    "simple_cnn": SimpleCNN,
    "best": Best,
    "resnet": ResNet,
    "resnet_wide": functools.partial(ResNet, width=24),
    "resnet_2x": functools.partial(ResNet, width=32),
    "pytorch_example": PyTorchExample,
}

# The time-to-99% recipe: one epoch. Batch norm lets a one-cycle schedule peak at 1e-2, and Adam with short memories
# (betas 0.7 and 0.9 against 0.9 and 0.999) keeps up with a rate that changes every step.
SPRINT_RECIPE = dict(epochs=1, batch_size=128, lr=1e-2, optimizer="adam", betas=(0.7, 0.9), schedule="onecycle",
                     label_smoothing=0.1)

# The residual nets at every width: best's augmentation, label smoothing and schedule, without dropout.
RESNET_RECIPE = dict(epochs=12, batch_size=128, lr=5e-3, optimizer="adam", schedule="onecycle", augment=True,
                     label_smoothing=0.1)

RECIPES = {
    # Full-batch gradient descent on [0, 1] pixels, as the project did.
    "mlp_v1": dict(epochs=1000, batch_size=0, lr=0.01, optimizer="sgd", normalize=False),
    "mlp_v2": dict(epochs=50, batch_size=128, lr=1e-3, optimizer="adam", weight_decay=1e-5, dropout=0.2, patience=5),
    "mlp_533": dict(epochs=20, batch_size=64, lr=0.01, optimizer="sgd"),
    "mlp_64_32": dict(epochs=20, batch_size=100, lr=0.01, optimizer="sgd", momentum=0.9),
    "lenet5": dict(epochs=10, batch_size=128, lr=3e-3, optimizer="adam", schedule="onecycle"),
    "cnn_bn": dict(epochs=10, batch_size=128, lr=3e-3, optimizer="adam", schedule="onecycle"),
    # Meant as the time-to-99% recipe: batch norm lets a one-cycle schedule peak at 1e-2; in two epochs 2 seeds of 5
    # reach 99%.
    "fast_cnn": dict(epochs=2, batch_size=128, lr=1e-2, optimizer="adam", schedule="onecycle"),
    "sprint_cnn": SPRINT_RECIPE,
    # The time-to-99.5% recipe: sprint_cnn's, for three epochs, with the loop's augmentation (±10°, ±2 pixels).
    "sprint_cnn_995": dict(SPRINT_RECIPE, epochs=3, augment=True),
    "simple_cnn": dict(epochs=5, batch_size=128, lr=3e-3, optimizer="adam", schedule="onecycle"),
    "best": dict(epochs=15, batch_size=128, lr=5e-3, optimizer="adam", schedule="onecycle", augment=True,
                 label_smoothing=0.1, dropout=0.3),
    "resnet": RESNET_RECIPE,
    "resnet_wide": RESNET_RECIPE,
    "resnet_2x": RESNET_RECIPE,
    # The example's Adadelta at lr 1.0 and batch 64. Its StepLR (×0.7 every epoch, 14 epochs) has no
    # counterpart in the loop's schedules; "step" (×0.1 after a third and two thirds of the run) ends at
    # the same rate, 1% of the first.
    "pytorch_example": dict(epochs=14, batch_size=64, lr=1.0, optimizer="adadelta", schedule="step"),
}


def build_model(name, dropout=None, **options):
    """A freshly initialised model; `dropout` goes to the models that have dropout, `options` to the
    model's class (e.g. lenet5's width)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    cls = MODELS[name]
    if dropout is None:
        return cls(**options)
    if "dropout" not in inspect.signature(cls).parameters:
        raise ValueError(f"model {name!r} has no dropout rate to set; leave out --dropout")
    return cls(dropout=dropout, **options)
