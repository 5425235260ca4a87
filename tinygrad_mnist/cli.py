"""The `tinygrad-mnist` command: train, evaluate, predict, serve, report, benchmark, compare.

Every expected failure (bad option, missing or corrupt file, unwritable folder, no GPU) ends with one
line on standard error and exit code 2, never a traceback; `predict` gives each image it cannot read
its own line and goes on with the rest.
"""
import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from .backend import DeviceError

EXIT_USAGE, EXIT_DIVERGED = 2, 1


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def positive_int(text):
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text):
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_float(text):
    value = _number(text, float)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def non_negative_float(text):
    value = _number(text, float)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def fraction(text):
    value = _number(text, float)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {text}")
    return value


def yes_no(text):
    if text not in ("yes", "no"):
        raise argparse.ArgumentTypeError(f"must be yes or no, got {text}")
    return text == "yes"


def comma_list(kind, choices=None):
    """An argparse type: comma-separated values, each parsed by `kind` (and one of `choices`, if given)."""
    def parse(text):
        values = [kind(part) for part in text.split(",")]
        for value in values:
            if choices is not None and value not in choices:
                raise argparse.ArgumentTypeError(f"unknown {value!r}; choose from {', '.join(choices)}")
        return values
    parse.__name__ = f"comma-separated {getattr(kind, '__name__', 'value')} list"
    return parse


def _number(text, kind):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


DATA_DIR_HELP = "folder holding the four IDX files (default: $TINYGRAD_MNIST_DATA, the cache, a download)"
TRAIN_OPTIONS = ("epochs", "batch_size", "lr", "optimizer", "momentum", "nesterov", "betas", "schedule",
                 "warmup_epochs", "weight_decay", "dropout", "augment", "rotate", "translate", "scale", "elastic",
                 "elastic_sigma", "ema", "label_smoothing", "val_size", "patience", "seed", "device",
                 "dataset", "data_dir", "limit_train")


def build_parser():
    from . import backend
    from .benchmark import DEFAULT_BATCH_SIZES
    from .data import DATASETS
    from .loop import OPTIMIZERS, SCHEDULES
    from .models import MODELS, RECIPES

    parser = Parser(prog="tinygrad-mnist", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    t = sub.add_parser("train", help="train a model; writes a run folder")
    t.add_argument("--model", choices=sorted(MODELS), help="default lenet5")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    t.add_argument("--epochs", type=positive_int)
    t.add_argument("--batch-size", type=non_negative_int, help="0: the whole training set (full-batch)")
    t.add_argument("--lr", type=positive_float, help="learning rate (the peak rate for onecycle)")
    t.add_argument("--optimizer", choices=OPTIMIZERS)
    t.add_argument("--momentum", type=non_negative_float, help="SGD momentum")
    t.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None)
    t.add_argument("--betas", type=comma_list(float), metavar="B1,B2",
                   help="Adam's and AdamW's moving-average coefficients (default 0.9,0.999; sprint_cnn's recipe "
                        "0.7,0.9)")
    t.add_argument("--schedule", choices=SCHEDULES)
    t.add_argument("--warmup-epochs", type=non_negative_int)
    t.add_argument("--weight-decay", type=non_negative_float)
    t.add_argument("--dropout", type=non_negative_float)
    t.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random shifts, rotations and scalings of the training digits (ranges below)")
    t.add_argument("--rotate", type=non_negative_float, metavar="DEGREES",
                   help="augmentation: turn each digit by up to ± DEGREES (default 10; implies --augment)")
    t.add_argument("--translate", type=non_negative_float, metavar="FRACTION",
                   help="augmentation: move each digit by up to ± FRACTION of the image size "
                        "(default 2/28: two pixels; implies --augment)")
    t.add_argument("--scale", type=non_negative_float, metavar="FRACTION",
                   help="augmentation: scale each digit by a factor in 1 ± FRACTION (default 0; implies --augment)")
    t.add_argument("--elastic", type=non_negative_float, metavar="ALPHA",
                   help="augmentation: then distort each digit elastically, torchvision's ElasticTransform "
                        "alpha (e.g. 72; implies --augment)")
    t.add_argument("--elastic-sigma", type=positive_float, metavar="SIGMA",
                   help="the elastic distortion's smoothness, pixels of Gaussian blur (default 5; needs --elastic)")
    t.add_argument("--ema", type=positive_float, metavar="DECAY",
                   help="also keep an exponential moving average of the weights (e.g. 0.999), and validate, "
                        "test and save for inference with it")
    t.add_argument("--label-smoothing", type=non_negative_float)
    t.add_argument("--val-size", type=non_negative_int, help="training images held out for validation (default 10000)")
    t.add_argument("--patience", type=positive_int, help="early stopping: epochs without a better validation loss")
    t.add_argument("--seed", type=int)
    t.add_argument("--device", help="cpu or cuda (default: $TINYGRAD_MNIST_DEVICE or cpu)")
    t.add_argument("--dataset", choices=sorted(DATASETS))
    t.add_argument("--data-dir", help=DATA_DIR_HELP)
    t.add_argument("--out", help="run folder to create (default: runs/MODEL-DATE-TIME)")
    t.add_argument("--limit-train", type=positive_int, help="train on the first N training images only (quick checks)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--no-plots", action="store_true", help="do not draw the plots at the end")

    e = sub.add_parser("evaluate", help="test-set metrics of a run or checkpoint")
    e.add_argument("path", metavar="RUN_OR_CHECKPOINT")
    e.add_argument("--data-dir")
    e.add_argument("--device")
    e.add_argument("--batch-size", type=positive_int, default=1000)

    p = sub.add_parser("predict", help="classify digits in PNG or JPEG images, or the images in folders")
    p.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER")
    p.add_argument("--invert", choices=("auto", "yes", "no"), default="auto",
                   help="yes: dark ink on light paper, no: light on dark; auto decides from the whole image")
    p.add_argument("--top", type=positive_int, default=1, help="show the K most likely digits")
    p.add_argument("--json", action="store_true", help="one JSON object per image on standard output")
    p.add_argument("--device")

    s = sub.add_parser("serve", help="a local web page to draw digits on and watch the model read them")
    s.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=non_negative_int, default=8000, help="0: any free port (default 8000)")
    s.add_argument("--device")

    r = sub.add_parser("report", help="plots and an HTML page for one or more runs")
    r.add_argument("runs", nargs="+", metavar="RUN_DIR")
    r.add_argument("--out", help="HTML file to write (default: RUN_DIR/report.html, or for several runs "
                                 "FIRST_RUN_DIR/compare.html)")

    b = sub.add_parser("benchmark", help="this engine against PyTorch: every model and batch size, scaling, ops, "
                                          "time to 99%%")
    b.add_argument("--model", type=comma_list(str, [*sorted(MODELS), "all"]), default=["all"], metavar="MODEL[,MODEL]",
                   help="model(s) of the epoch table (default all: every model in models/)")
    b.add_argument("--batch-size", type=comma_list(positive_int), metavar="N[,N]",
                   help=f"batch size(s) of the epoch, op and profile tables (default "
                        f"{','.join(map(str, DEFAULT_BATCH_SIZES))}); time-to-99: the one given, else each recipe's")
    b.add_argument("--device", choices=backend.DEVICES, default="cpu")
    b.add_argument("--rounds", type=positive_int, default=3, help="alternating engine/PyTorch rounds (default 3)")
    b.add_argument("--threads", type=positive_int, default=1,
                   help="threads for both frameworks (default 1: like for like, and steady on a shared machine)")
    b.add_argument("--limit", type=positive_int, help="use the first N training images only")
    b.add_argument("--lr", type=comma_list(positive_float), metavar="LR[,LR]",
                   help="default 1e-3 (time-to-99: the recipe's; several pair up with --time-to-99 by position)")
    b.add_argument("--seed", type=int, default=0, help="the seed (time-to-99: the first of --seeds seeds)")
    b.add_argument("--warmup-steps", type=non_negative_int, default=5,
                   help="untimed steps before the timed epoch (default 5)")
    b.add_argument("--op-reps", type=positive_int, default=20, help="repetitions per op timing (default 20)")
    b.add_argument("--data-dir", help=DATA_DIR_HELP)
    b.add_argument("--train", action=argparse.BooleanOptionalAction, default=None,
                   help="the epoch table (default: on, unless --scaling or --time-to-99 is given)")
    b.add_argument("--ops", action=argparse.BooleanOptionalAction, default=None,
                   help="the per-op table and the array forms (default: on, unless --scaling or --time-to-99 is given)")
    b.add_argument("--scaling", action="store_true",
                   help="seconds per epoch of LeNet-5 against the batch size (32-512) and the width (x1, x2, x4), "
                        "with a plot")
    b.add_argument("--scaling-plot", metavar="PATH", help="where the scaling plot goes (default: scaling.png beside "
                                                          "--markdown)")
    b.add_argument("--profile", nargs="?", const=["lenet5"], type=comma_list(str, sorted(MODELS)),
                   metavar="MODEL[,MODEL]",
                   help="profile MODEL's training steps (default lenet5) by op in both frameworks, at each batch size")
    b.add_argument("--profile-steps", type=positive_int, default=200, help="steps to profile (default 200)")
    b.add_argument("--time-to-99", nargs="?", const=["sprint_cnn"], type=comma_list(str, sorted(RECIPES)),
                   metavar="MODEL[,MODEL]",
                   help="train MODEL's recipe (default sprint_cnn) until the test accuracy reaches --target; several "
                        "models pair up with several --target, --seeds and --epochs values by position")
    b.add_argument("--seeds", type=comma_list(positive_int), default=[1], metavar="K[,K]",
                   help="time-to-99: train on K seeds, each in a fresh process (default 1)")
    b.add_argument("--epochs", type=comma_list(positive_int), metavar="N[,N]",
                   help="time-to-99: most epochs (default: the recipe's); several pair up with --time-to-99 "
                        "by position")
    b.add_argument("--schedule", choices=SCHEDULES, help="time-to-99: lr schedule (default: the recipe's)")
    b.add_argument("--eval-every", type=comma_list(non_negative_int), default=[0], metavar="K[,K]",
                   help="time-to-99: also evaluate every K steps (default 0: at each epoch's end only); several pair "
                        "up with --time-to-99 by position")
    b.add_argument("--label-smoothing", type=comma_list(fraction), metavar="LS[,LS]",
                   help="time-to-99: label smoothing (default: the recipe's); several pair up with --time-to-99 by "
                        "position")
    b.add_argument("--augment", type=comma_list(yes_no), metavar="yes|no[,yes|no]",
                   help="time-to-99: train on randomly shifted and turned digits, as `train --augment` (default: the "
                        "recipe's); several pair up with --time-to-99 by position")
    b.add_argument("--target", type=comma_list(fraction), default=[0.99], metavar="ACC[,ACC]",
                   help="time-to-99: test accuracy to reach (default 0.99; 0.995 for 99.5%%)")
    b.add_argument("--markdown", metavar="PATH", help="rewrite PATH (e.g. docs/BENCHMARKS.md) from the results")
    b.add_argument("--json", metavar="PATH", help="write the raw results as JSON (before anything else is written)")
    b.add_argument("--from-json", metavar="PATH", help="measure nothing: print and write the tables, the plot and "
                                                       "--markdown from the --json of an earlier run")

    c = sub.add_parser("compare", help="a model and its PyTorch twin: step-by-step agreement, then full training")
    c.add_argument("--model", default="lenet5", choices=sorted(MODELS) + ["all"])
    c.add_argument("--steps", type=positive_int, default=100, help="steps compared one by one (default 100)")
    c.add_argument("--epochs", type=positive_int, help="full-training epochs (default: the model's recipe)")
    c.add_argument("--batch-size", type=non_negative_int,
                   help="default: the model's recipe (0: the whole training set)")
    c.add_argument("--data-dir", help=DATA_DIR_HELP)
    c.add_argument("--limit-train", type=positive_int, help="train on the first N training images only (quick runs)")
    c.add_argument("--val-size", type=non_negative_int,
                   help="images held out of training as in `train` (default 10000)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--skip-full", action="store_true", help="only the step-by-step check")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return COMMANDS[args.command](args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        code = _exit_code(e)
        if code is None:
            raise
        print(f"tinygrad-mnist {args.command}: error: {e}", file=sys.stderr)
        return code


def _exit_code(e):
    from .benchmark import BenchmarkError
    from .checkpoint import CheckpointError
    from .data import DatasetNotFound, IDXError
    from .training import TrainingDiverged, TrainingError, TrainingInterrupted

    if isinstance(e, TrainingInterrupted):
        return 128 + e.signum
    if isinstance(e, TrainingDiverged):
        return EXIT_DIVERGED
    if isinstance(e, (UsageError, TrainingError, ValueError, DeviceError, DatasetNotFound, IDXError, CheckpointError,
                      BenchmarkError, FileNotFoundError, PermissionError, IsADirectoryError, ImportError)):
        return EXIT_USAGE
    if isinstance(e, OSError):  # a full disk, a read-only folder: say so, keep the traceback out
        return EXIT_USAGE
    return None


def _check_out(path):
    """The run folder `path`, checked before any data is loaded. The Trainer creates it when training
    starts, so a run that fails before then (no data, no GPU) leaves no empty folder behind."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path}: exists and is not a folder")
    if (path / "metrics.csv").exists():
        raise UsageError(f"--out {path}: already holds a run; choose another folder or continue it with "
                         f"--resume {path}")
    nearest = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
    if not nearest.is_dir():
        raise UsageError(f"--out {path}: cannot write there ({nearest} is not a folder)")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise UsageError(f"--out {path}: cannot write there ({nearest} is not writable)")
    return path


def _resume(args):
    """The Trainer that continues args.resume, or None when that run has finished."""
    from .training import Trainer

    run = Path(args.resume)
    given = [f"--{name.replace('_', '-')}" for name in ("model", "out", *TRAIN_OPTIONS)
             if getattr(args, name) is not None]
    if given:
        raise UsageError(f"--resume {run} continues the run as it was configured: leave out {', '.join(given)} "
                         "(or start a new run with --out)")
    if not (run / "last.npz").is_file():
        raise UsageError(f"--resume {run}: no checkpoint last.npz there to resume from")
    trainer = Trainer.resume(run, progress=not args.no_progress)
    if trainer.finished and (run / "results.json").is_file():
        return None
    print(f"resuming {run} at epoch {trainer.epoch + 1}, step {trainer.step + 1}", file=sys.stderr)
    return trainer


def cmd_train(args):
    from .training import Trainer, make_config

    if args.resume:
        trainer = _resume(args)
        if trainer is None:
            print(f"{args.resume} has finished: nothing to resume; its results are in "
                  f"{Path(args.resume) / 'results.json'}", file=sys.stderr)
            return
    else:
        model = args.model or "lenet5"
        ranges = [f"--{name}" for name in ("rotate", "translate", "scale", "elastic")
                  if getattr(args, name) is not None]
        if args.elastic_sigma is not None and args.elastic is None:
            raise UsageError("--elastic-sigma sets the elastic distortion's blur: give --elastic ALPHA too")
        if ranges and args.augment is False:
            raise UsageError(f"{', '.join(ranges)} set augmentation ranges: leave out --no-augment")
        if ranges:
            args.augment = True
        config = make_config(model, **{k: getattr(args, k) for k in TRAIN_OPTIONS})
        config["command"] = "tinygrad-mnist " + shlex.join(args.argv)
        out = _check_out(args.out or Path("runs") / f"{model}-{time.strftime('%Y%m%d-%H%M%S')}")
        trainer = Trainer(config, out, progress=not args.no_progress)
        print(f"training {model} ({trainer.model.num_parameters():,} parameters) on {config['device']}; "
              f"run folder {out}", file=sys.stderr)
    results = trainer.fit()
    print(f"test accuracy {100 * results['test_accuracy']:.2f}%  macro F1 {results['macro_f1']:.4f}  "
          f"({results['epochs_run']} epochs, {results['train_seconds']:.1f}s training)")
    if not args.no_plots:
        _draw_plots(trainer.out)
    print(f"results: {trainer.out / 'results.json'}")


def _draw_plots(run_dir):
    try:
        from .plots import plot_run
        plot_run(run_dir)
    except ImportError as e:
        print(f"plots skipped: {e}", file=sys.stderr)


def load_trained(path, device=None):
    """(model, config) from a checkpoint file, or from a run folder: the weights its results describe
    (checkpoint.run_weights: the final ones, or the best with early stopping; their moving average
    for a run trained with --ema)."""
    from . import backend
    from .checkpoint import inference_weights, load_checkpoint, run_weights
    from .models import build_model

    path = Path(path)
    if path.is_dir():
        found = run_weights(path)
        if found is None:
            raise UsageError(f"{path}: no checkpoint (last.npz or best.npz) in this folder")
        path = found
    state = load_checkpoint(path)
    if "config" not in state or "model" not in state:
        raise UsageError(f"{path}: not a tinygrad_mnist training checkpoint (no config or model in it)")
    config = dict(state["config"])
    config["device"] = backend.normalize_device(device)
    model = build_model(config["model"], dropout=config.get("dropout")).to(config["device"])
    model.load_state_dict(inference_weights(state))
    model.eval()
    return model, config


def cmd_evaluate(args):
    from . import data, metrics
    from .training import ScaledImages, evaluate, pixel_table

    model, config = load_trained(args.path, args.device)
    if args.data_dir:
        config["data_dir"] = args.data_dir
    ds = data.load_dataset(config["dataset"], data_dir=config.get("data_dir"))
    x = ScaledImages(ds.test_images, pixel_table(config))  # as training scored them, a batch at a time
    test = evaluate(model, x, ds.test_labels, args.batch_size, config["device"])
    report = metrics.classification_report(ds.test_labels, test.probs.argmax(1), len(ds.class_names),
                                           list(ds.class_names))
    print(metrics.format_report(report))
    print(f"test loss {test.loss:.4f}  test accuracy {100 * report['accuracy']:.2f}%  "
          f"macro F1 {report['macro_f1']:.4f}")


def cmd_predict(args):
    from .reading import DigitReader, predict_files

    model, config = load_trained(args.checkpoint, args.device)
    invert = {"auto": "auto", "yes": True, "no": False}[args.invert]
    failed = predict_files(DigitReader(model, config), args.images, invert, top=args.top, as_json=args.json)
    return EXIT_USAGE if failed else 0


def cmd_serve(args):
    from .reading import DigitReader
    from .serve import serve

    model, config = load_trained(args.checkpoint, args.device)
    return serve(DigitReader(model, config), args.checkpoint, host=args.host, port=args.port)


def cmd_report(args):
    from .report import write_report

    for run in args.runs:
        if not (Path(run) / "config.json").is_file():
            raise UsageError(f"{run}: not a run folder (no config.json)")
        _draw_plots(run)
    print(write_report(args.runs, args.out))


def cmd_benchmark(args):
    from . import backend
    from .benchmark import benchmark

    backend.array_module(args.device)  # a missing GPU is reported before any worker starts
    others = bool(args.time_to_99 or args.scaling)
    args.train = args.train if args.train is not None else not others
    args.ops = args.ops if args.ops is not None else not others
    benchmark(args, progress=lambda text: print(text, file=sys.stderr, flush=True))


def cmd_compare(args):
    from .torch_twin import compare

    return compare(args)


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "serve": cmd_serve,
            "report": cmd_report, "benchmark": cmd_benchmark, "compare": cmd_compare}

if __name__ == "__main__":
    sys.exit(main())
