"""Small MNIST-like datasets drawn on the fly, strokes drawn as the `serve` page draws them, and a local
HTTP server to download datasets from."""

import contextlib
import hashlib
import http.server
import math
import threading
from pathlib import Path

import numpy as np

from tinygrad_mnist.data import FILES, write_idx


def draw_patterns(labels, rng, size=28):
    """One uint8 image per label: a bar through the middle at an angle of 18° per class, with random
    offset, length and thickness, so the classes are easy to tell apart."""
    n = len(labels)
    theta = np.deg2rad(18.0 * np.asarray(labels) + rng.uniform(-4, 4, n))[:, None, None]
    offset = rng.uniform(-3, 3, (n, 2, 1, 1))
    half_length = rng.uniform(6, 11, (n, 1, 1))
    thickness = rng.uniform(1.0, 2.5, (n, 1, 1))
    ys, xs = np.mgrid[0:size, 0:size] - (size - 1) / 2
    x = xs - offset[:, 0]
    y = ys - offset[:, 1]
    along = x * np.cos(theta) - y * np.sin(theta)
    across = x * np.sin(theta) + y * np.cos(theta)
    ink = np.clip(thickness - np.abs(across), 0, 1) * (np.abs(along) <= half_length)
    return (255 * ink).astype(np.uint8)


def draw_glyphs(labels, rng, size=28):
    """One uint8 image per label, shaped as the page's drawings come out of MNIST-style preprocessing
    (20 pixels tall, centred): 0 a ring, 1 an upright bar, 2-8 bars at 22.5° steps round from
    horizontal (skipping upright), 9 a plus sign. A vertical stroke drawn on the page should read 1,
    a loop 0."""
    n = len(labels)
    labels = np.asarray(labels)
    ys, xs = np.mgrid[0:size, 0:size] - (size - 1) / 2
    x = xs - rng.uniform(-1, 1, (n, 1, 1))
    y = ys - rng.uniform(-1, 1, (n, 1, 1))
    thickness = rng.uniform(1.0, 2.0, (n, 1, 1))

    def bar(degrees, half_length):
        theta = np.deg2rad(degrees)[:, None, None]
        along = x * np.cos(theta) - y * np.sin(theta)
        across = x * np.sin(theta) + y * np.cos(theta)
        return np.clip(thickness - np.abs(across), 0, 1) * (np.abs(along) <= half_length)

    half_length = rng.uniform(8, 10, (n, 1, 1))
    angles = np.array([90.0, 90.0, 0, 22.5, 45, 67.5, 112.5, 135, 157.5, 0])[labels] + rng.uniform(-6, 6, n)
    ink = bar(angles, half_length)
    ry, rx = rng.uniform(8, 10, (n, 1, 1)), rng.uniform(5, 10, (n, 1, 1))
    ring = np.clip(thickness - np.abs(np.hypot(x / rx, y / ry) - 1) * np.minimum(rx, ry), 0, 1)
    plus = np.maximum(bar(angles, half_length), bar(angles + 90, half_length))
    ink = np.where((labels == 0)[:, None, None], ring, np.where((labels == 9)[:, None, None], plus, ink))
    return (255 * ink).astype(np.uint8)


# Strokes in the pixels of the page's 280 x 280 drawing pad: upright, a closed loop, a seven.
PAD = 280
VERTICAL = [(140, 40 + 10 * i) for i in range(21)]
LOOP = [(140 + 65 * math.sin(2 * math.pi * i / 48), 140 - 95 * math.cos(2 * math.pi * i / 48)) for i in range(50)]
SEVEN = [(70, 60), (140, 58), (210, 60), (185, 110), (160, 165), (135, 235)]


def pad_drawing(points, width=PAD // 12):
    """A stroke through `points` as the page draws it: black with round ends on a white pad (a PIL image)."""
    from PIL import Image, ImageDraw

    im = Image.new("L", (PAD, PAD), 255)
    pen = ImageDraw.Draw(im)
    pen.line(points, fill=0, width=width, joint="curve")
    for x, y in (points[0], points[-1]):
        pen.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=0)
    return im


def make_split(n, rng, num_classes=10, draw=draw_patterns):
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    return draw(labels, rng), labels.astype(np.uint8)


def write_dataset(folder, n_train=200, n_test=50, seed=0, names=FILES, draw=draw_patterns):
    """Write the four files into `folder` under `names` (a `.gz` suffix compresses); returns
    the arrays as (train_images, train_labels, test_images, test_labels). `draw` makes the images
    (draw_patterns or draw_glyphs)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = (*make_split(n_train, rng, draw=draw), *make_split(n_test, rng, draw=draw))
    for name, array in zip(names, arrays):
        write_idx(folder / name, array)
    return arrays


def dataset_bytes(tmp_path, **kwargs):
    """The four gzip files of write_dataset as {file name: bytes}."""
    folder = Path(tmp_path) / "source"
    write_dataset(folder, **kwargs)
    return {name: (folder / name).read_bytes() for name in FILES}


def sha256_of(files):
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


@contextlib.contextmanager
def serve(routes):
    """Serve {url path: bytes} on 127.0.0.1; other paths answer 404. Yields the base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = routes.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
