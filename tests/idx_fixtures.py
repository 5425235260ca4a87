"""Small MNIST-like datasets drawn on the fly, and a local HTTP server to download them from."""

import contextlib
import hashlib
import http.server
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


def make_split(n, rng, num_classes=10):
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    return draw_patterns(labels, rng), labels.astype(np.uint8)


def write_dataset(folder, n_train=200, n_test=50, seed=0, names=FILES):
    """Write the four files into `folder` under `names` (a `.gz` suffix compresses); returns
    the arrays as (train_images, train_labels, test_images, test_labels)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = (*make_split(n_train, rng), *make_split(n_test, rng))
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
