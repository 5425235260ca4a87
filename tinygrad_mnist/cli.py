"""The `tinygrad-mnist` command: train, evaluate, predict, serve, report, benchmark.

Every expected failure (bad option, missing or corrupt file, unwritable folder, no GPU) ends with one
line on standard error and exit code 2, never a traceback; `predict` gives each image it cannot read
its own line and goes on with the rest.
"""
import argparse
import json
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
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _number(text, kind):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def build_parser():
    from .models import MODELS
    from .training import OPTIMIZERS, SCHEDULES
    from .data import DATASETS

    parser = Parser(prog="tinygrad-mnist", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    t = sub.add_parser("train", help="train a model; writes a run folder")
    t.add_argument("--model", choices=sorted(MODELS), default="lenet5")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    t.add_argument("--epochs", type=positive_int)
    t.add_argument("--batch-size", type=non_negative_int, help="0: the whole training set (full-batch)")
    t.add_argument("--lr", type=positive_float, help="learning rate (the peak rate for onecycle)")
    t.add_argument("--optimizer", choices=OPTIMIZERS)
    t.add_argument("--momentum", type=non_negative_float, help="SGD momentum")
    t.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None)
    t.add_argument("--schedule", choices=SCHEDULES)
    t.add_argument("--warmup-epochs", type=non_negative_int)
    t.add_argument("--weight-decay", type=non_negative_float)
    t.add_argument("--dropout", type=non_negative_float)
    t.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random shifts and small rotations of the training digits")
    t.add_argument("--label-smoothing", type=non_negative_float)
    t.add_argument("--val-size", type=non_negative_int, help="training images held out for validation (default 10000)")
    t.add_argument("--patience", type=positive_int, help="early stopping: epochs without a better validation loss")
    t.add_argument("--seed", type=int)
    t.add_argument("--device", help="cpu or cuda (default: $TINYGRAD_MNIST_DEVICE or cpu)")
    t.add_argument("--dataset", choices=sorted(DATASETS))
    t.add_argument("--data-dir", help="folder holding the four IDX files (default: $TINYGRAD_MNIST_DATA, the cache, a download)")
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

    sub.add_parser("benchmark", add_help=False, help="this engine against PyTorch, side by side (see benchmark --help)")

    r = sub.add_parser("report", help="plots and an HTML page for one or more runs")
    r.add_argument("runs", nargs="+", metavar="RUN_DIR")
    r.add_argument("--out", help="HTML file to write")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["benchmark"]:  # it has its own parser: see tinygrad_mnist/benchmark.py
        from .benchmark import main as benchmark_main
        return benchmark_main(argv[1:], prog="tinygrad-mnist benchmark")
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
    from .checkpoint import CheckpointError
    from .data import DatasetNotFound, IDXError
    from .training import TrainingDiverged, TrainingError, TrainingInterrupted

    if isinstance(e, TrainingInterrupted):
        return 128 + e.signum
    if isinstance(e, TrainingDiverged):
        return EXIT_DIVERGED
    if isinstance(e, (UsageError, TrainingError, ValueError, DeviceError, DatasetNotFound, IDXError, CheckpointError,
                      FileNotFoundError, PermissionError, IsADirectoryError, ImportError)):
        return EXIT_USAGE
    if isinstance(e, OSError):  # a full disk, a read-only folder: say so, keep the traceback out
        return EXIT_USAGE
    return None


def _prepare_out(path):
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path}: exists and is not a folder")
    if (path / "metrics.csv").exists():
        raise UsageError(f"--out {path}: already holds a run; choose another folder or continue it with --resume {path}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"--out {path}: cannot write there ({e.strerror or e})") from None
    return path


def cmd_train(args):
    from .training import Trainer, make_config

    if args.resume:
        run = Path(args.resume)
        if not (run / "last.npz").is_file():
            raise UsageError(f"--resume {run}: no checkpoint last.npz there to resume from")
        trainer = Trainer.resume(run, progress=not args.no_progress)
        print(f"resuming {run} at epoch {trainer.epoch + 1}, step {trainer.step + 1}", file=sys.stderr)
    else:
        options = {k: getattr(args, k) for k in (
            "epochs", "batch_size", "lr", "optimizer", "momentum", "nesterov", "schedule", "warmup_epochs",
            "weight_decay", "dropout", "augment", "label_smoothing", "val_size", "patience", "seed", "device",
            "dataset", "data_dir", "limit_train")}
        config = make_config(args.model, **options)
        config["command"] = "tinygrad-mnist " + shlex.join(args.argv)
        out = _prepare_out(args.out or Path("runs") / f"{args.model}-{time.strftime('%Y%m%d-%H%M%S')}")
        trainer = Trainer(config, out, progress=not args.no_progress)
        print(f"training {args.model} ({trainer.model.num_parameters():,} parameters) on {config['device']}; "
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
    """(model, config) from a checkpoint file, or from a run folder: the weights its results.json
    reports on (the final ones, or the best with early stopping), else its latest checkpoint."""
    from . import backend
    from .checkpoint import load_checkpoint
    from .models import build_model

    path = Path(path)
    if path.is_dir():
        try:
            reported = json.loads((path / "results.json").read_text())["weights"]
        except (OSError, ValueError, KeyError, TypeError):
            reported = "last"
        found = [path / f"{name}.npz" for name in (reported, "last", "best") if (path / f"{name}.npz").is_file()]
        if not found:
            raise UsageError(f"{path}: no checkpoint (best.npz or last.npz) in this folder")
        path = found[0]
    state = load_checkpoint(path)
    if "config" not in state or "model" not in state:
        raise UsageError(f"{path}: not a tinygrad_mnist training checkpoint (no config or model in it)")
    config = dict(state["config"])
    config["device"] = backend.normalize_device(device)
    model = build_model(config["model"], dropout=config.get("dropout")).to(config["device"])
    model.load_state_dict(state["model"])
    model.eval()
    return model, config


def cmd_evaluate(args):
    from . import data, metrics
    from .training import evaluate, model_input

    model, config = load_trained(args.path, args.device)
    if args.data_dir:
        config["data_dir"] = args.data_dir
    ds = data.load_dataset(config["dataset"], data_dir=config.get("data_dir"))
    x = model_input(data.to_float(ds.test_images), config)
    loss, _, probs = evaluate(model, x, ds.test_labels, args.batch_size, config["device"])
    report = metrics.classification_report(ds.test_labels, probs.argmax(1), len(ds.class_names), list(ds.class_names))
    print(metrics.format_report(report))
    print(f"test loss {loss:.4f}  test accuracy {100 * report['accuracy']:.2f}%  macro F1 {report['macro_f1']:.4f}")


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
    from .plots import plot_run
    from .report import write_report

    for run in args.runs:
        if not (Path(run) / "config.json").is_file():
            raise UsageError(f"{run}: not a run folder (no config.json)")
        plot_run(run)
    print(write_report(args.runs, args.out))


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "serve": cmd_serve,
            "report": cmd_report}

if __name__ == "__main__":
    sys.exit(main())
