"""`tinygrad-mnist serve`: a local web page to draw a digit on and watch a trained model read it.

Python's standard library serves it (http.server): one page and two JSON routes need no framework,
and the page carries its script and style inline, so it works offline. The server listens on
127.0.0.1 unless told otherwise, bounds every request's size and time and the connections it serves
at once, and answers a bad request with a 4xx and a one-line reason while it goes on serving.

Routes: GET / (the page), GET /api/info (the model), POST /api/predict with a JSON body
{"image": "<data URL or base64 of an image file>", "invert": "auto" | true | false,
 "first_layer": true | false}. Its answer: {"prediction", "probabilities", "class_names", "input"
(the 28x28 image the model was given, 0-255), "first_layer" (feature maps, 0-255, or null)}; an
error's: {"error": "<one line>"}.
"""
import base64
import binascii
import http.server
import importlib.util
import ipaddress
import json
import socket
import sys
import threading
from importlib import resources
from urllib.parse import urlsplit

import numpy as np

from .imaging import ImageError

# A phone photo, base64-encoded inside the JSON, fits.
MAX_REQUEST_BYTES = 16 * 2**20
# A connection that has not sent its whole request by then is closed.
REQUEST_SECONDS = 10
# Connections served at once; more get 503 until one ends.
MAX_CONNECTIONS = 32
# The page shows at most this many of the first layer's feature maps.
MAX_FEATURE_MAPS = 16
ROUTES = {"/": "GET", "/api/info": "GET", "/api/predict": "POST"}


class PageServer(http.server.ThreadingHTTPServer):
    """The page and its API for one DigitReader; `log` gets one line per request (None: quiet)."""

    daemon_threads = True
    # Connections the kernel holds for accept(): a page that sends a burst should not be reset.
    request_queue_size = 64

    def __init__(self, address, reader, source, log=None):
        self.reader, self.log = reader, log
        # One forward pass at a time: the threads share the model, and the CPU is better spent on one.
        self.model_lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.page = resources.files(__package__).joinpath("serve.html").read_bytes()
        config = reader.config
        self.info = {"model": config["model"], "dataset": config["dataset"], "source": str(source),
                     "class_names": reader.class_names, "max_request_bytes": MAX_REQUEST_BYTES,
                     "first_layer": reader.first_layer(np.zeros((28, 28), np.float32)) is not None}
        self.address_family = socket.getaddrinfo(address[0], address[1], type=socket.SOCK_STREAM)[0][0]
        super().__init__(address, Handler)

    @property
    def url(self):
        host, port = self.server_address[:2]
        # Listening on every address includes this machine's own.
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            try:
                request.sendall(_response(503, _json_bytes({"error": "server busy: too many connections; try again"}),
                                          "application/json"))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address):
        if self.log:
            error = sys.exc_info()[1]
            self.log(f"{client_address[0]}: connection failed: {type(error).__name__}: {_one_line(error)}")


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "tinygrad-mnist"

    def setup(self):
        # A deadline for the whole request: when it passes, reading stops (the reads see the end of the
        # stream) and the answer is 408. A client that takes no answer is dropped at twice the time.
        self.timeout = 2 * REQUEST_SECONDS
        super().setup()
        self.expired = False
        self.deadline = threading.Timer(REQUEST_SECONDS, self._stop_reading)
        self.deadline.daemon = True
        self.deadline.start()

    def _stop_reading(self):
        self.expired = True
        try:
            self.connection.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    def parse_request(self):
        if not super().parse_request():
            return False
        if self.expired:
            self.send_error(408, f"request incomplete: its headers did not come within {REQUEST_SECONDS} s")
            return False
        return True

    def finish(self):
        self.deadline.cancel()
        try:
            super().finish()
        except OSError:
            pass

    def do_GET(self):
        route = urlsplit(self.path).path
        if route == "/":
            self._send(200, self.server.page, "text/html; charset=utf-8")
        elif route == "/api/info":
            self._send_json(200, self.server.info)
        else:
            self._refuse_route()

    do_HEAD = do_GET

    def do_POST(self):
        route = urlsplit(self.path).path
        if route != "/api/predict":
            self._refuse_route()
            return
        try:
            reply = self._predict(self._read_json())
        except BadRequest as e:
            self._send_json(e.status, {"error": e.reason})
            return
        except Exception as e:  # a bug: say so in one line, and keep serving
            self.log_error("internal error: %s: %s", type(e).__name__, _one_line(e))
            self._send_json(500, {"error": f"internal error: {type(e).__name__}: {_one_line(e)}"})
            return
        self._send_json(200, reply)

    def _refuse_route(self):
        route = urlsplit(self.path).path
        if route in ROUTES:
            allow = "GET, HEAD" if ROUTES[route] == "GET" else ROUTES[route]
            self._send_json(405, {"error": f"{route} takes {ROUTES[route]}, not {self.command}"}, [("Allow", allow)])
        else:
            self._send_json(404, {"error": f"no such page: {route} (this server has {', '.join(ROUTES)})"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_route

    def _read_json(self):
        length = self.headers.get("Content-Length")
        if length is None:
            raise BadRequest(411, "a Content-Length header is required")
        if not length.isdigit():
            raise BadRequest(400, f"Content-Length must be a number of bytes, got {length!r}")
        if int(length) > MAX_REQUEST_BYTES:
            self.close_connection = True
            raise BadRequest(413, f"request too large ({int(length):,} bytes; the limit is {MAX_REQUEST_BYTES:,})")
        content_type = self.headers.get_content_type()
        if content_type != "application/json":
            raise BadRequest(415, f"the body must be application/json, not {content_type}")
        try:
            body = self.rfile.read(int(length))
        except OSError:  # the client went away
            body = b""
        if len(body) < int(length):
            raise BadRequest(408, f"request incomplete: {len(body):,} of {int(length):,} bytes came within "
                                  f"{REQUEST_SECONDS} s")
        self.deadline.cancel()
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BadRequest(400, f"malformed JSON: {_one_line(e)}") from None

    def _predict(self, request):
        if not isinstance(request, dict) or not isinstance(request.get("image"), str):
            raise BadRequest(400, 'expected a JSON object with "image": a data URL or base64 of an image file')
        invert = request.get("invert", "auto")
        if invert not in ("auto", True, False):
            raise BadRequest(400, f'"invert" must be "auto", true or false, got {json.dumps(invert)}')
        image = request["image"]
        if image.startswith("data:"):
            header, _, image = image.partition(",")
            if not header.endswith(";base64"):
                raise BadRequest(400, "the data URL must be base64-encoded (data:image/png;base64,...)")
        try:
            image_bytes = base64.b64decode(image, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(400, '"image" is not valid base64') from None
        reader = self.server.reader
        try:
            with self.server.model_lock:
                digit, probs = reader.read_upload(image_bytes, invert=invert, source="image")
                maps = reader.first_layer(digit) if request.get("first_layer") else None
        except ImageError as e:
            raise BadRequest(422, e.reason) from None
        best = int(np.argmax(probs))
        return {"prediction": reader.class_names[best], "probabilities": [float(p) for p in probs],
                "class_names": reader.class_names, "input": np.round(255 * digit).astype(np.uint8).tolist(),
                "first_layer": None if maps is None else [_bytes_image(m).tolist() for m in maps[:MAX_FEATURE_MAPS]]}

    def _send_json(self, status, obj, headers=()):
        self._send(status, _json_bytes(obj), "application/json", headers)

    def _send(self, status, body, content_type, headers=()):
        try:
            self.send_response(status)
            for name, value in [("Content-Type", content_type), ("Content-Length", str(len(body))),
                                ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
                                # Nothing from elsewhere: the page is one file and talks to this server only.
                                ("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; "
                                 "style-src 'unsafe-inline'; img-src data: blob:; connect-src 'self'"), *headers]:
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:  # the client has gone; nothing to tell it
            self.close_connection = True

    def send_error(self, code, message=None, explain=None):
        """http.server's own refusals (a malformed request line, an unknown method) in our form."""
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # what is left when the request line could not be parsed
            self.request_version = "HTTP/1.0"
        reason = message or self.responses.get(code, ("error",))[0]
        if code == 501:
            reason = f"method {self.command} not supported (this server takes GET, HEAD and POST)"
        self._send_json(code, {"error": reason})

    def log_message(self, format, *args):
        if self.server.log:
            self.server.log(f"{self.address_string()} {_one_line(format % args)}")


class BadRequest(Exception):
    def __init__(self, status, reason):
        super().__init__(reason)
        self.status, self.reason = status, reason


def make_server(reader, source, host="127.0.0.1", port=8000, log=None):
    """A PageServer listening on host:port (port 0: any free port); call serve_forever() on it."""
    if importlib.util.find_spec("PIL") is None:
        raise ImportError("the page reads images with Pillow: pip install 'tinygrad_mnist[image]'")
    try:
        return PageServer((host, port), reader, source, log=log)
    except socket.gaierror as e:
        raise OSError(f"cannot listen on {host}:{port} ({e.strerror or _one_line(e)}); check --host") from None
    except OSError as e:
        raise OSError(f"cannot listen on {host}:{port} ({e.strerror or _one_line(e)}); choose another with "
                      f"--port, or --port 0 for any free port") from None


def serve(reader, source, host="127.0.0.1", port=8000):
    """Serve the page until Ctrl-C; returns 0."""
    server = make_server(reader, source, host, port, log=lambda line: print(line, file=sys.stderr, flush=True))
    if not _is_loopback(host):
        print(f"warning: listening on {host}: other machines that can reach this one can use the page",
              file=sys.stderr)
    print(f"reading digits with {reader.config['model']} from {source} at {server.url}  (Ctrl-C to stop)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0


def _is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _bytes_image(x):
    """An array scaled to 0-255 integers over its own range (all 0 where it is flat)."""
    low, high = float(x.min()), float(x.max())
    scaled = (x - low) / (high - low) if high > low else np.zeros_like(x)
    return np.round(255 * scaled).astype(np.uint8)


def _json_bytes(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def _response(status, body, content_type):
    phrase = http.server.BaseHTTPRequestHandler.responses[status][0]
    head = (f"HTTP/1.0 {status} {phrase}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n")
    return head.encode() + body


def _one_line(error):
    return " ".join(str(error).split())
