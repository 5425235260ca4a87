"""The training loop: data in, a run folder out (see docs/RUN_FOLDER.md).

A run can stop at any step (Ctrl-C, SIGTERM) and resume from `last.npz` to the same weights, bit for
bit, as a run that never stopped: the checkpoint holds the model, optimizer, schedule, both random
generators, the epoch's shuffled order and the step within it.
"""
import csv
import dataclasses
import json
import math
import signal
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from . import backend, checkpoint, data, metrics, optim, serialization
from . import functional as F
from .files import atomic_write
from .loop import (ADAM_BETAS, OPTIMIZERS, SCHEDULES, WITH_BETAS, BatchSampler, EarlyStopping, augmentation,
                   make_optimizer, make_schedule, take_batch, update)
from .models import RECIPES, build_model
from .tensor import Tensor, no_grad, toposort

METRICS_HEADER = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]
LR_HEADER = ["step", "epochs", "lr"]  # per step: the global step, the epochs trained at its end, its rate

DEFAULTS = dict(dataset="mnist", epochs=10, batch_size=128, lr=1e-3, optimizer="adam", momentum=0.0,
                nesterov=False, betas=ADAM_BETAS, schedule="constant", warmup_epochs=0, weight_decay=0.0,
                dropout=None, augment=False, rotate=10.0, translate=2 / 28, scale=0.0, elastic=None, elastic_sigma=5.0,
                ema=None, label_smoothing=0.0,
                val_size=10000, patience=None, seed=0, device=None,
                data_dir=None, normalize=True, eval_batch_size=1000, limit_train=None)


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what to do."""


class TrainingDiverged(TrainingError):
    """The loss became NaN or infinite."""


class TrainingInterrupted(TrainingError):
    """SIGINT or SIGTERM arrived; a checkpoint was saved."""

    def __init__(self, message, signum):
        super().__init__(message)
        self.signum = signum


def make_config(model, **overrides):
    """The model's recipe with `overrides` (None means: keep the recipe's value) applied."""
    if model not in RECIPES:
        raise ValueError(f"unknown model {model!r}; choose one of: {', '.join(sorted(RECIPES))}")
    config = dict(DEFAULTS, model=model, **RECIPES[model])
    config.update({k: v for k, v in overrides.items() if v is not None})
    if overrides.get("betas") is None and config["optimizer"] not in WITH_BETAS:
        config["betas"] = ADAM_BETAS  # a recipe's betas go with its Adam, not with the optimizer chosen instead
    config["device"] = backend.normalize_device(config["device"])
    backend.array_module(config["device"])  # a missing GPU is reported now, not after loading the data
    check_config(config)
    return config


def check_config(c):
    def need(ok, message):
        if not ok:
            raise ValueError(message)
    need(isinstance(c["epochs"], int) and c["epochs"] >= 1, f"epochs must be a positive integer, got {c['epochs']}")
    need(isinstance(c["batch_size"], int) and c["batch_size"] >= 0,
         f"batch size must be a positive integer (0 means the whole training set), got {c['batch_size']}")
    need(c["lr"] > 0 and math.isfinite(c["lr"]), f"learning rate must be positive, got {c['lr']}")
    need(c["optimizer"] in OPTIMIZERS, f"unknown optimizer {c['optimizer']!r}; choose one of: {', '.join(OPTIMIZERS)}")
    need(c["schedule"] in SCHEDULES, f"unknown schedule {c['schedule']!r}; choose one of: {', '.join(SCHEDULES)}")
    betas = c["betas"]
    need(isinstance(betas, (tuple, list)) and len(betas) == 2
         and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas),
         f"betas must be two numbers in [0, 1), e.g. 0.9,0.999, got {betas!r}")
    need(c["optimizer"] in WITH_BETAS or tuple(betas) == ADAM_BETAS,
         f"betas {betas!r} set Adam's and AdamW's moving averages; optimizer {c['optimizer']!r} has none: "
         "leave out --betas or choose adam or adamw")
    need(c["weight_decay"] >= 0, f"weight decay must be >= 0, got {c['weight_decay']}")
    need(c["dropout"] is None or 0 <= c["dropout"] < 1, f"dropout must be in [0, 1), got {c['dropout']}")
    need(0 <= c["label_smoothing"] <= 1, f"label smoothing must be in [0, 1], got {c['label_smoothing']}")
    need(c["val_size"] >= 0, f"validation size must be >= 0, got {c['val_size']}")
    need(c["warmup_epochs"] >= 0, f"warm-up epochs must be >= 0, got {c['warmup_epochs']}")
    need(c["patience"] is None or c["patience"] >= 1, f"patience must be >= 1, got {c['patience']}")
    need(c.get("ema") is None or 0 < c["ema"] < 1, f"EMA decay must be in (0, 1), e.g. 0.999, got {c.get('ema')}")
    try:
        augmentation(dict(c, augment=True))
    except ValueError as e:
        raise ValueError(f"augmentation: {e}") from None
    need(c["dataset"] in data.DATASETS, f"unknown dataset {c['dataset']!r}; choose one of: {', '.join(data.DATASETS)}")


def prepare_data(config):
    """The train, validation and test images as ScaledImages (each batch scaled to the float32 model input
    (n, 1, 28, 28) as it is taken), split as configured, with their int64 labels."""
    ds = data.load_dataset(config["dataset"], data_dir=config["data_dir"])
    train_x, train_y, val_x, val_y = data.train_val_split(ds.train_images, ds.train_labels,
                                                          config["val_size"], seed=config["seed"])
    if config["limit_train"]:
        train_x, train_y = train_x[:config["limit_train"]], train_y[:config["limit_train"]]
    table = pixel_table(config)
    return dict(train=(ScaledImages(train_x, table), train_y), val=(ScaledImages(val_x, table), val_y),
                test=(ScaledImages(ds.test_images, table), ds.test_labels), test_raw=ds.test_images,
                class_names=list(ds.class_names))


class ScaledImages:
    """uint8 images (N, H, W) that read as the model's float32 input (N, 1, H, W): indexing (an int, a slice,
    an array of indices) scales only the images it picks, through the 256-entry pixel table, so a batch
    is scaled when it is taken, as a PyTorch Dataset's transform does. np.asarray gives them all.

    The images stay bytes: MNIST's 60,000 training images take 47 MB instead of 188 MB, and a fresh
    process does not write 188 MB of floats before its first step. Measured on a 2-core EPYC, 6 fresh
    processes: scaling the whole training set took 0.07-0.45 s (its pages are new memory); a batch of
    128 takes 0.15 ms, 0.07 s an epoch."""

    def __init__(self, images, table):
        if images.dtype != np.uint8 or images.ndim != 3:
            raise ValueError(f"ScaledImages holds uint8 images (N, H, W), got {images.dtype} {images.shape}")
        self.images, self.table = images, table
        self.shape, self.dtype, self.ndim = (len(images), 1, *images.shape[1:]), table.dtype, 4

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        if isinstance(index, tuple):
            raise IndexError(f"ScaledImages takes one index over its {len(self)} images (an int, a slice or an "
                             f"array of indices), got {index!r}; np.asarray(images) is the whole float array")
        return look_up(self.table, self.images[index])[..., None, :, :]

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            raise ValueError("ScaledImages makes its float images when they are read: there is no array to view "
                             "(copy=False); use np.asarray(images)")
        return self[:] if dtype is None else self[:].astype(dtype)

    def __repr__(self):
        return f"ScaledImages({len(self)} images of {self.shape[2]}×{self.shape[3]}, {self.dtype})"


def pixel_table(config):
    """The float32 model input of each of the 256 uint8 pixel values (model_input's own arithmetic):
    indexing it with uint8 images scales them in one pass over memory instead of four, to the same bits."""
    return model_input(data.to_float(np.arange(256, dtype=np.uint8)), config)[:, 0]


def look_up(table, images, chunk=1 << 16):
    """table[images] for uint8 images, `chunk` pixels at a time: the same numbers as np.take(table, images)
    (half the time of table[images]), which first copies all the indices to 8-byte integers, 376 MB for the
    60,000 training images. Writing that copy into a fresh process's memory cost more than the look-up:
    0.65 s against 0.15 s in chunks of 64 Ki pixels, whose index copies stay in cache. mode="clip" skips
    np.take's bounds check, which no uint8 index into 256 entries can fail, and its buffered copy: a
    batch of 128 images in 0.15 ms instead of 0.45 ms."""
    if images.dtype != np.uint8 or table.shape != (256,):
        raise ValueError(f"look_up: expected uint8 images and a table of 256 values, got {images.dtype} images "
                         f"and a table of shape {table.shape}")
    out = np.empty(images.shape, dtype=table.dtype)
    flat, flat_out = images.reshape(-1), out.reshape(-1)
    for start in range(0, flat.size, chunk):
        np.take(table, flat[start:start + chunk], out=flat_out[start:start + chunk], mode="clip")
    return out


def model_input(pixels, config):
    """Pixels in [0, 1] (N, 28, 28) as the model was trained to see them: standardised with the
    dataset's statistics unless the run said not to, with a channel axis (N, 1, 28, 28)."""
    if config.get("normalize", True):
        spec = data.DATASETS[config["dataset"]]
        pixels = data.standardize(pixels, spec.mean, spec.std)
    return pixels[:, None]


def _logits_in_batches(model, x, batch_size, device):
    """(start, logits) of `model` in eval mode over x, `batch_size` images at a time, recording nothing."""
    model.eval()
    with no_grad():
        for start in range(0, len(x), batch_size):
            yield start, model(Tensor(x[start:start + batch_size], device=device))


def predict(model, x, batch_size=1000, device="cpu"):
    """Class probabilities (N, K) as a NumPy array, computed in bounded batches."""
    out = [F.softmax(logits, axis=1).numpy() for _, logits in _logits_in_batches(model, x, batch_size, device)]
    return np.concatenate(out) if out else np.zeros((0, 10), np.float32)


class Evaluation(NamedTuple):
    loss: float  # mean cross-entropy
    accuracy: float
    probs: np.ndarray  # (N, K) class probabilities


def evaluate(model, x, y, batch_size=1000, device="cpu"):
    """The Evaluation (mean loss, accuracy, probabilities) of `model` on x, y, in bounded batches."""
    loss_sum, probs = 0.0, []
    for start, logits in _logits_in_batches(model, x, batch_size, device):
        yb = y[start:start + batch_size]
        loss_sum += float(F.cross_entropy(logits, yb).item()) * len(yb)
        probs.append(F.softmax(logits, axis=1).numpy())
    if not probs:
        return Evaluation(float("nan"), float("nan"), np.zeros((0, 10), np.float32))
    probs = np.concatenate(probs)
    return Evaluation(loss_sum / len(x), float((probs.argmax(1) == y).mean()), probs)


@dataclasses.dataclass
class EpochState:
    """Where the epoch under way stands; the checkpoint holds it, so a resumed epoch goes on from
    the next batch with the same order and running sums."""
    order: np.ndarray  # the epoch's order of the training images
    grad_norms: np.ndarray  # each parameter's gradient norm, summed over the steps so far
    loss_sum: float = 0.0  # the training loss summed over the images seen
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0
    lrs: list = dataclasses.field(default_factory=list)  # the learning rate of each step so far


class _Signals:
    """Turn SIGINT/SIGTERM into a request that the loop honours after the current step."""

    def __init__(self):
        self.received = None

    def __enter__(self):
        self.previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        if self.received is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        return False


class Trainer:
    """One run: builds everything from a config, trains, evaluates and writes the run folder."""

    def __init__(self, config, out_dir, progress=True, log=print):
        self.config, self.out = config, Path(out_dir)
        self.progress, self.log = progress, log
        self.device = config["device"]
        backend.manual_seed(config["seed"])
        self.rng = np.random.default_rng(config["seed"])
        self.data = prepare_data(config)
        self.model = build_model(config["model"], dropout=config["dropout"]).to(self.device)
        self.sampler = BatchSampler(len(self.data["train"][0]), config["batch_size"])
        self.optimizer = make_optimizer(config, list(self.model.parameters()), optim)
        self.schedule = make_schedule(config, self.optimizer, self.sampler.steps_per_epoch, optim)
        self.param_names = [name for name, _ in self.model.named_parameters()]
        self.augment = augmentation(config)
        # With --ema the averaged copy is what validation, early stopping, the test and the checkpoint's
        # inference weights use; the optimizer trains the model as always.
        self.ema = (None if not config.get("ema") else optim.swa_utils.AveragedModel(
            self.model, multi_avg_fn=optim.swa_utils.get_ema_multi_avg_fn(config["ema"]), use_buffers=True))
        self.epoch, self.step, self.global_step = 0, 0, 0
        self.stopper = EarlyStopping(config["patience"])  # with patience None it only tracks the best epoch
        self.last_finite_loss = None
        self.epoch_state = None
        self.train_seconds = 0.0

    @classmethod
    def resume(cls, run_dir, progress=True, log=print):
        run_dir = Path(run_dir)
        state = checkpoint.load_checkpoint(run_dir / "last.npz")
        trainer = cls(state["config"], run_dir, progress=progress, log=log)
        trainer.load_state(state)
        return trainer

    @property
    def eval_model(self):
        """The weights a run is judged by: the moving average with --ema, else the model itself."""
        return self.model if self.ema is None else self.ema.module

    @property
    def lr(self):
        return self.optimizer.param_groups[0]["lr"]

    def state(self):
        """Everything a resume needs, as NumPy copies taken now (the state dicts' tensors share memory with
        the model and the optimizer)."""
        s = dict(config=self.config, model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
                 early_stopping=self.stopper.state_dict(),
                 progress=dict(epoch=self.epoch, step=self.step, global_step=self.global_step,
                               train_seconds=self.train_seconds),
                 rng=dict(data=checkpoint.rng_state(self.rng), ops=backend.get_rng_state()))
        if self.schedule is not None:
            s["schedule"] = self.schedule.state_dict()
        if self.ema is not None:
            s["ema"] = self.ema.state_dict()
        if self.epoch_state is not None:
            s["epoch_state"] = dataclasses.asdict(self.epoch_state)
        return serialization.to_arrays(s)

    def load_state(self, s):
        self.model.load_state_dict(s["model"])
        self.optimizer.load_state_dict(s["optimizer"])
        if self.schedule is not None:
            self.schedule.load_state_dict(s["schedule"])
        if self.ema is not None:
            self.ema.load_state_dict(s["ema"])
        self.stopper.load_state_dict(s["early_stopping"])
        p = s["progress"]
        self.epoch, self.step, self.global_step = p["epoch"], p["step"], p["global_step"]
        self.train_seconds = p["train_seconds"]
        checkpoint.set_rng_state(self.rng, s["rng"]["data"])
        backend.set_rng_state(s["rng"]["ops"])
        self.epoch_state = None
        if "epoch_state" in s:
            state = dict(s["epoch_state"])
            if "lr" in state:  # saved before lr.csv, with only the latest step's rate
                state["lrs"] = [state.pop("lr")]
            self.epoch_state = EpochState(**state)

    def save(self, name):
        path = self.out / name
        try:
            checkpoint.save_checkpoint(path, self.state())
        except OSError as e:  # a full disk, a folder gone read-only: the write was all or nothing
            raise TrainingError(f"cannot write the checkpoint {path} ({e.strerror or e}); any earlier checkpoint "
                                f"there is intact: make room, then resume with: "
                                f"tinygrad-mnist train --resume {self.out}") from e
        return path

    @property
    def finished(self):
        """Every epoch trained, or early stopping said to stop."""
        return self.epoch_state is None and (self.epoch >= self.config["epochs"] or self.stopper.stopped)

    def fit(self):
        """Train for the configured epochs (from wherever a resumed run stopped), then evaluate."""
        self.out.mkdir(parents=True, exist_ok=True)
        if self.epoch == 0 and self.epoch_state is None:
            write_json(self.out / "config.json", self.config)
            _write_csv_header(self.out / "metrics.csv", METRICS_HEADER)
            _write_csv_header(self.out / "grad_norms.csv", ["epoch", "step"] + self.param_names)
            _write_csv_header(self.out / "lr.csv", LR_HEADER)
        elif not (self.out / "lr.csv").exists():  # a run begun before lr.csv existed
            _write_csv_header(self.out / "lr.csv", LR_HEADER)
        with _Signals() as signals:
            while not self.finished:
                self.train_epoch(signals)
                self.end_epoch()
        return self.finish()

    def train_epoch(self, signals):
        if self.epoch_state is None:
            self.epoch_state = EpochState(order=self.sampler.order(self.rng),
                                          grad_norms=np.zeros(len(self.param_names)))
        es = self.epoch_state
        # disable=None: a live bar on a terminal only, none in logs and pipes (the epoch's log line stays)
        bar = tqdm(total=self.sampler.n, initial=es.seen, desc=f"epoch {self.epoch + 1}/{self.config['epochs']}",
                   unit="img", disable=None if self.progress else True)
        started = time.perf_counter()
        params = list(self.model.parameters())
        self.model.train()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # every loss is checked below
            for step, index in self.sampler.batches(es.order, start=self.step):
                self.train_step(index, step, params, es, bar)
                if signals.received is not None:
                    es.seconds += time.perf_counter() - started
                    self.interrupted(signals.received, bar)
        es.seconds += time.perf_counter() - started
        bar.close()

    def train_step(self, index, step, params, es, bar):
        """One optimizer step on the training images at `index`; updates the epoch's running sums."""
        xb, yb = take_batch(*self.data["train"], index, self.rng, self.augment)
        logits = self.model(Tensor(xb, device=self.device))
        loss = F.cross_entropy(logits, yb, label_smoothing=self.config["label_smoothing"])
        value = float(loss.item())
        if not math.isfinite(value):
            self.diverged(value, step)
        es.lrs.append(self.lr)
        update(loss, self.optimizer, self.schedule)
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        es.grad_norms += [_norm(p.grad) for p in params]  # the optimizer leaves .grad as backward left it
        self.last_finite_loss = value
        es.loss_sum += value * len(index)
        es.correct += int((logits.array.argmax(axis=1) == backend.to_device(yb, self.device)).sum())
        es.seen += len(index)
        self.step, self.global_step = step + 1, self.global_step + 1
        bar.set_postfix(loss=f"{value:.3g}", acc=f"{es.correct / es.seen:.3g}", refresh=False)
        bar.update(len(index))

    def end_epoch(self):
        """Validate, log, checkpoint, and ask early stopping."""
        es, c, spe = self.epoch_state, self.config, self.sampler.steps_per_epoch
        val_x, val_y = self.data["val"]
        val = evaluate(self.eval_model, val_x, val_y, c["eval_batch_size"], self.device) if len(val_x) else None
        val_loss, val_acc = (val.loss, val.accuracy) if val else (None, None)
        self.epoch += 1
        self.train_seconds += es.seconds
        lr_used = es.lrs[-1]
        train_loss, train_acc = es.loss_sum / es.seen, es.correct / es.seen
        with open(self.out / "metrics.csv", "a", newline="") as f:
            csv.writer(f).writerow([self.epoch, f"{train_loss:.6f}", f"{train_acc:.6f}",
                                    "" if val_loss is None else f"{val_loss:.6f}",
                                    "" if val_acc is None else f"{val_acc:.6f}", f"{lr_used:.6g}", f"{es.seconds:.3f}"])
        with open(self.out / "grad_norms.csv", "a", newline="") as f:
            csv.writer(f).writerow([self.epoch, self.global_step] + [f"{g / spe:.6g}" for g in es.grad_norms])
        with open(self.out / "lr.csv", "a", newline="") as f:
            first = self.global_step - len(es.lrs) + 1
            csv.writer(f).writerows([first + k, f"{self.epoch - 1 + (k + 1) / spe:.6g}", f"{lr:.6g}"]
                                    for k, lr in enumerate(es.lrs))
        val_text = "" if val_loss is None else f"  val loss {val_loss:.4f} acc {100 * val_acc:.2f}%"
        self.log(f"epoch {self.epoch}/{c['epochs']}  train loss {train_loss:.4f} acc {100 * train_acc:.2f}%"
                 f"{val_text}  lr {lr_used:.3g}  {es.seconds:.1f}s")
        self.epoch_state, self.step = None, 0
        self.stopper.step(val_loss if val_loss is not None else train_loss, self.eval_model)
        self.save("last.npz")
        if self.stopper.best_epoch == self.epoch:
            self.save("best.npz")
        if self.stopper.stopped:
            self.log(f"early stopping: no improvement for {self.stopper.bad_epochs} epochs; "
                     f"best epoch {self.stopper.best_epoch}")

    def diverged(self, value, step):
        last = (f"the last finite loss was {self.last_finite_loss:.6g}" if self.last_finite_loss is not None
                else "no step had a finite loss")
        kept = (f"; the last good checkpoint is {self.out / 'last.npz'}" if (self.out / "last.npz").exists() else "")
        raise TrainingDiverged(f"the loss became {value} at epoch {self.epoch + 1}, step {step + 1} "
                               f"(global step {self.global_step + 1}); {last}. Try a lower learning rate, "
                               f"e.g. --lr {self.config['lr'] / 10:g}{kept}")

    def interrupted(self, signum, bar):
        bar.close()
        path = self.save("last.npz")
        name = signal.Signals(signum).name
        raise TrainingInterrupted(f"{name} received at epoch {self.epoch + 1}, step {self.step}: checkpoint saved "
                                  f"to {path}; resume with: tinygrad-mnist train --resume {self.out}", signum)

    def finish(self):
        """Evaluate on the test set and write the results: the final weights of a fixed schedule, or,
        with early stopping, the best ones by validation loss (best.npz is kept either way); with
        --ema, the moving average of those (results.json says so under "averaged")."""
        c, out, model = self.config, self.out, self.eval_model
        weights = "best" if c["patience"] is not None else "last"
        if weights == "best":
            self.stopper.restore(model)
        test_x, test_y = self.data["test"]
        test = evaluate(model, test_x, test_y, c["eval_batch_size"], self.device)
        test_loss, probs = test.loss, test.probs
        preds = probs.argmax(1)
        report = metrics.classification_report(test_y, preds, len(self.data["class_names"]), self.data["class_names"])
        results = dict(model=c["model"], dataset=c["dataset"], test_loss=test_loss,
                       test_accuracy=report["accuracy"], **{k: v for k, v in report.items() if k != "accuracy"},
                       class_names=self.data["class_names"], epochs_run=self.epoch,
                       train_seconds=round(self.train_seconds, 3), best_epoch=self.stopper.best_epoch, weights=weights,
                       averaged=None if self.ema is None else f"ema {c['ema']:g}",
                       num_parameters=self.model.num_parameters(), device=self.device)
        write_json(out / "results.json", results)
        write_samples(out / "samples.npz", data.to_float(self.data["test_raw"]), test_y, preds, probs)
        maps = feature_maps(model, test_x[:1], self.device)
        if maps:
            _write_npz(out / "feature_maps.npz", input=data.to_float(self.data["test_raw"][0]), **maps)
        return results


def _norm(grad):
    return 0.0 if grad is None else float(backend.get_array_module(grad.array).sqrt((grad.array * grad.array).sum()))


def _write_csv_header(path, header):
    with open(path, "w", newline="") as f:
        csv.writer(f).writerow(header)


def write_json(path, obj):
    with atomic_write(path, "w") as f:
        f.write(json.dumps(obj, indent=2) + "\n")


def _write_npz(path, **arrays):
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def write_samples(path, images, labels, preds, probs, count=25):
    """Test digits for the plot grids: the first `count` classified correctly, and the `count` wrong
    ones the model was most sure of (highest probability of its prediction first), each with its
    index in the test set."""
    right = preds == labels
    confidence = probs[np.arange(len(preds)), preds]
    wrong = np.flatnonzero(~right)
    chosen = {}
    for prefix, mask, index in (("correct", right, np.flatnonzero(right)[:count]),
                                ("wrong", ~right, wrong[np.argsort(-confidence[wrong], kind="stable")][:count])):
        chosen.update({f"{prefix}_total": np.array(int(mask.sum())),
                       f"{prefix}_index": index.astype(np.int64),
                       f"{prefix}_images": images[index].astype(np.float32),
                       f"{prefix}_labels": labels[index].astype(np.int64),
                       f"{prefix}_preds": preds[index].astype(np.int64),
                       f"{prefix}_probs": confidence[index].astype(np.float32)})
    chosen["wrong_order"] = np.array("confidence")
    _write_npz(path, **chosen)


def feature_maps(model, x, device="cpu"):
    """Every 4-D intermediate of one forward pass, read off the tape in the order it was computed."""
    model.eval()
    out = model(Tensor(x, device=device))
    if not out.requires_grad:
        return {}
    maps = {}
    for node in reversed(toposort(out)):  # inputs before the ops that use them
        if node.grad_fn is not None and node.ndim == 4:
            maps[f"{len(maps):02d}_{type(node.grad_fn).__name__.lower()}"] = node.numpy()[0]
    return maps


def train(config, out_dir, progress=True, log=print):
    """Train a new run into `out_dir` and return its results."""
    return Trainer(config, out_dir, progress=progress, log=log).fit()
