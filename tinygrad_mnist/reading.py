"""Read handwritten digits with a trained model: the files `predict` is given, the drawings `serve` is sent.

Both go through imaging's MNIST-style preprocessing and one model call, so the page shows what
`predict` answers for the same image.
"""
import json
import os
import sys

import numpy as np

from . import data
from .imaging import ImageError, decode_digit, load_digit
from .training import feature_maps, model_input, predict

# What a folder's images are, by name; a file named on the command line is tried whatever its name.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
# Files decoded before each model call: bounds memory on a folder of any size, and answers stream out.
BATCH = 256


class DigitReader:
    """A trained model with what it takes to read digits: its config (input scaling, device) and the
    names of its classes."""

    def __init__(self, model, config):
        self.model, self.config = model, config
        self.class_names = list(data.DATASETS[config["dataset"]].class_names)

    def probabilities(self, digits):
        """(N, K) class probabilities of (N, 28, 28) digits prepared by imaging."""
        return predict(self.model, model_input(digits, self.config), device=self.config["device"])

    def first_layer(self, digit):
        """The feature maps (C, H, W) of the model's first convolution for one digit, or None for a
        model without one."""
        maps = feature_maps(self.model, model_input(digit[None], self.config), device=self.config["device"])
        return next(iter(maps.values()), None)

    def read_upload(self, image_bytes, invert="auto", source="upload"):
        """(digit, probabilities) of the bytes of one image file; raises ImageError."""
        digit = decode_digit(image_bytes, invert=invert, source=source)
        return digit, self.probabilities(digit[None])[0]

    def read_files(self, items, invert="auto"):
        """Yield (path, probabilities or None, error reason or None) for each of image_paths' items, in
        order, BATCH files to a model call."""
        for chunk in _chunks(items, BATCH):
            digits, outcomes = [], []
            for path, reason in chunk:
                if reason is None:
                    try:
                        digits.append(load_digit(path, invert=invert))
                    except ImageError as e:
                        reason = e.reason
                outcomes.append((path, reason))
            probs = iter(self.probabilities(np.stack(digits)) if digits else [])
            for path, reason in outcomes:
                yield (path, None, reason) if reason is not None else (path, next(probs), None)


def image_paths(paths):
    """What `predict PATH...` reads: ([(path, None) for each image, or (path, reason) for an argument
    that gives none], how many entries the folders held that are not image files).

    A folder stands for the image files in it (not its subfolders), sorted by name; a file named
    itself is tried whatever its name.
    """
    items, skipped = [], 0
    for path in map(os.fspath, paths):
        if not os.path.isdir(path):
            items.append((path, None))
            continue
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as e:
            items.append((path, f"cannot list this folder ({e.strerror or e})"))
            continue
        images = [e.path for e in entries if e.name.lower().endswith(IMAGE_SUFFIXES) and e.is_file()]
        skipped += len(entries) - len(images)
        if not images:
            items.append((path, f"no image files in this folder (looked for {' '.join(IMAGE_SUFFIXES)})"))
        items.extend((image, None) for image in images)
    return items, skipped


def predict_files(reader, paths, invert="auto", top=1, as_json=False, out=None, err=None):
    """`predict`'s output: for each image a line on `out` with its `top` most likely classes, or a line
    "PATH: error: REASON" on `err`; with `as_json` one JSON object per image on `out`, errors included.
    Then a summary line on `err`. Returns how many failed."""
    out, err = out or sys.stdout, err or sys.stderr
    items, skipped = image_paths(paths)
    read = failed = 0
    for path, probs, reason in reader.read_files(items, invert):
        read, failed = read + (reason is None), failed + (reason is not None)
        if as_json:
            print(json.dumps(_record(path, probs, reason, reader.class_names)), file=out, flush=True)
        elif reason is None:
            ranked = np.argsort(-probs, kind="stable")[:top]
            print(f"{path}: " + ", ".join(f"{reader.class_names[k]} ({100 * probs[k]:.1f}%)" for k in ranked),
                  file=out, flush=True)
        else:
            print(f"{path}: error: {reason}", file=err, flush=True)
    summary = f"{read} {'image' if read == 1 else 'images'} read, {failed} failed"
    if skipped:
        entries = "entry" if skipped == 1 else "entries"
        summary += f"; {skipped} other {entries} in the folders skipped (not image files)"
    print(summary, file=err, flush=True)
    return failed


def _record(path, probs, reason, class_names):
    if reason is not None:
        return {"path": path, "error": reason}
    best = int(np.argmax(probs))
    return {"path": path, "prediction": class_names[best], "probability": round(float(probs[best]), 6),
            "probabilities": {name: round(float(p), 6) for name, p in zip(class_names, probs)}}


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]
