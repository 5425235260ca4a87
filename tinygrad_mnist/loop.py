"""The training loop's rules, the same in every framework: which images each step sees, one update,
the optimizer and schedule a config asks for, and early stopping.

The Trainer, the PyTorch twin (torch_twin) and every benchmark worker train through these functions,
so "the same batches in the same order" and a resume that lands on the same weights hold by
construction, not by keeping copies in step. Nothing here imports the engine: the optimizer module
is an argument (this package's `optim`, or `torch.optim`).

    sampler = BatchSampler(len(x), config["batch_size"])
    optimizer = make_optimizer(config, params, optim)
    schedule = make_schedule(config, optimizer, sampler.steps_per_epoch, optim)
    for epoch in range(config["epochs"]):
        for step, index in sampler.batches(sampler.order(rng)):
            xb, yb = take_batch(x, y, index, rng, augmentation(config))
            update(loss_of(xb, yb), optimizer, schedule)
"""
import copy
import math

from . import data

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta")
WITH_BETAS = ("adam", "adamw")  # the optimizers that take betas
ADAM_BETAS = (0.9, 0.999)       # PyTorch's default betas for them
SCHEDULES = ("constant", "step", "cosine", "onecycle")


class BatchSampler:
    """The training images of each step. Every epoch draws a permutation of the n images from the
    run's generator; step k takes its k-th slice of `batch_size` (the last one may be shorter).
    torch.utils.data's RandomSampler and BatchSampler do the same, but here the epoch's order is
    a value the caller keeps, so that a run stopped mid-epoch resumes at the very next batch."""

    def __init__(self, n, batch_size):
        if n < 1:
            raise ValueError("no training images to train on: lower --val-size or raise --limit-train")
        self.n = n
        self.batch_size = min(batch_size or n, n)  # 0: the whole training set, as one batch
        self.steps_per_epoch = math.ceil(n / self.batch_size)

    def order(self, rng):
        """One epoch's order of the training images, drawn from `rng` (a np.random.Generator)."""
        return rng.permutation(self.n)

    def batches(self, order, start=0):
        """(step, indices) for each step of the epoch whose order is `order`, from step `start` on."""
        for step in range(start, self.steps_per_epoch):
            yield step, order[step * self.batch_size:(step + 1) * self.batch_size]

    def epochs(self, rng, epochs):
        """(epoch, step, indices) of `epochs` whole epochs, for loops that never resume."""
        for epoch in range(epochs):
            for step, index in self.batches(self.order(rng)):
                yield epoch, step, index


def augmentation(config):
    """The config's augmentation, a data.RandomAffine (then a data.ElasticTransform, with `elastic`),
    or None: `augment` turns it on, `rotate` (degrees), `translate` (a fraction of the image size) and
    `scale` set its ranges, `elastic` and `elastic_sigma` the distortion's alpha and sigma. A config
    saved before any of these existed gets their defaults, so its run replays as it was."""
    if not config["augment"]:
        return None
    affine = data.RandomAffine(config.get("rotate", 10.0), config.get("translate", 2 / 28), config.get("scale", 0.0))
    if config.get("elastic") is None:
        return affine
    return data.RandomDistortion(affine, data.ElasticTransform(config["elastic"], config.get("elastic_sigma", 5.0)))


def take_batch(x, y, index, rng, augment=None):
    """The images and labels at `index`; with `augment` (what `augmentation` returns; True: a
    RandomAffine's defaults), each image moved, turned, scaled (and distorted) by draws from `rng`
    (the generator that drew the epoch's order, so one seed fixes both)."""
    xb, yb = x[index], y[index]
    if augment is True:
        augment = data.RandomAffine()
    if augment:
        xb = augment(xb[:, 0], rng)[:, None].astype(x.dtype, copy=False)
    return xb, yb


def update(loss, optimizer, schedule=None):
    """One optimizer step from `loss`, the same calls in both frameworks: zero the gradients,
    backpropagate, step, then advance the per-step schedule."""
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if schedule is not None:
        schedule.step()


def make_optimizer(config, params, optim):
    """The config's optimizer from `optim` (this package's optim or torch.optim: the names are PyTorch's)."""
    name, lr, wd = config["optimizer"], config["lr"], config["weight_decay"]
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=config["momentum"], nesterov=config["nesterov"], weight_decay=wd)
    if name in WITH_BETAS:
        return (optim.Adam if name == "adam" else optim.AdamW)(params, lr=lr, betas=betas(config), weight_decay=wd)
    kinds = {"rmsprop": optim.RMSprop, "adagrad": optim.Adagrad, "adadelta": optim.Adadelta}
    return kinds[name](params, lr=lr, weight_decay=wd)


def betas(config):
    """The config's Adam betas as a tuple: ADAM_BETAS for a run configured before betas were a setting."""
    return tuple(config.get("betas", ADAM_BETAS))


def make_schedule(config, optimizer, steps_per_epoch, optim):
    """The config's per-step schedule (or None) from `optim`'s schedulers, with an optional linear
    warm-up in front of it. torch.optim keeps its schedulers in torch.optim.lr_scheduler."""
    schedulers = getattr(optim, "lr_scheduler", optim)
    total = config["epochs"] * steps_per_epoch
    warmup = config["warmup_epochs"] * steps_per_epoch
    if warmup and not hasattr(schedulers, "LinearWarmup"):
        raise ValueError("warm-up schedules are not mirrored in PyTorch here; leave warmup_epochs at 0")
    kind = config["schedule"]
    if kind == "onecycle":
        schedule = schedulers.OneCycleLR(optimizer, max_lr=config["lr"], total_steps=total)
    elif kind == "cosine":
        schedule = schedulers.CosineAnnealingLR(optimizer, T_max=max(total - warmup, 1))
    elif kind == "step":
        schedule = schedulers.StepLR(optimizer, step_size=max(total // 3, 1), gamma=0.1)
    else:
        schedule = None
    if warmup:
        schedule = schedulers.LinearWarmup(optimizer, warmup_steps=warmup, after=schedule)
    return schedule


class EarlyStopping:
    """Call `step(val_loss, model)` once per epoch; it returns True when the loss has not improved by
    more than min_delta for `patience` epochs in a row (never, with patience None: then it only
    tracks the best epoch). It keeps a copy of the best epoch's state_dict (cloned: a state_dict's
    tensors share the model's memory), which `restore(model)` loads back. `best_epoch` counts calls to
    step from 1."""

    def __init__(self, patience, min_delta=0.0):
        if not (patience is None or int(patience) >= 1):
            raise ValueError(f"EarlyStopping: patience must be >= 1, got {patience}")
        if not min_delta >= 0:
            raise ValueError(f"EarlyStopping: min_delta must be >= 0, got {min_delta}")
        self.patience, self.min_delta = (None if patience is None else int(patience)), float(min_delta)
        self.best_loss, self.best_epoch, self.epoch, self.bad_epochs = math.inf, 0, 0, 0
        self.best_state = None

    @property
    def stopped(self):
        """Whether the last step said to stop (a resumed run that had stopped stays stopped)."""
        return self.patience is not None and self.bad_epochs >= self.patience

    def step(self, val_loss, model):
        self.epoch += 1
        val_loss = float(val_loss)
        if val_loss < self.best_loss - self.min_delta:  # NaN never improves
            self.best_loss, self.best_epoch, self.bad_epochs = val_loss, self.epoch, 0
            self.best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            self.bad_epochs += 1
        return self.stopped

    def restore(self, model):
        if self.best_state is None:
            raise RuntimeError("EarlyStopping.restore: no epoch has been recorded yet")
        model.load_state_dict(self.best_state)
        return model

    def state_dict(self):
        return {"best_loss": self.best_loss, "best_epoch": self.best_epoch, "epoch": self.epoch,
                "bad_epochs": self.bad_epochs, "best_state": dict(self.best_state or {})}

    def load_state_dict(self, state):
        # float() and int() also take the 0-d arrays that come back from a checkpoint
        self.best_loss, self.best_epoch = float(state["best_loss"]), int(state["best_epoch"])
        self.epoch, self.bad_epochs = int(state["epoch"]), int(state["bad_epochs"])
        self.best_state = copy.deepcopy(dict(state.get("best_state") or {})) or None
