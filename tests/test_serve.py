"""`tinygrad-mnist serve`: its API over loopback, bad, stalled and concurrent requests, and the page in
headless Chromium drawn on with pointer events. The model is conftest's glyph_run, a LeNet-5 trained
on drawn glyphs (a ring is 0, an upright bar 1, bars at other angles and a plus the rest), so a
stroke drawn on the page has one right answer out of ten."""
import base64
import contextlib
import http.client
import io
import json
import re
import socket
import threading
import time

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image")
ImageDraw = pytest.importorskip("PIL.ImageDraw")

import browser  # noqa: E402
from idx_fixtures import LOOP, VERTICAL, pad_drawing  # noqa: E402
from tinygrad_mnist import cli, serve  # noqa: E402
from tinygrad_mnist.imaging import decode_digit, load_digit  # noqa: E402
from tinygrad_mnist.reading import DigitReader  # noqa: E402


@pytest.fixture(scope="module")
def reader(glyph_run):
    return DigitReader(*cli.load_trained(glyph_run))


@contextlib.contextmanager
def running(reader):
    """A PageServer on a free loopback port, serving from a thread; yields (server, its log lines)."""
    log = []
    server = serve.make_server(reader, "the glyph run", port=0, log=log.append)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server, log
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def server(reader):
    with running(reader) as (page_server, _):
        yield page_server


def call(server, method, path, body=None, headers=None):
    """(status, headers, decoded JSON or text) of one request, over a fresh connection."""
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    kind = response.getheader("Content-Type", "")
    return response.status, response, json.loads(data) if kind == "application/json" else data.decode()


def post(server, payload, content_type="application/json"):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return call(server, "POST", "/api/predict", body, {"Content-Type": content_type})


def pad_png(points):
    return png_bytes(pad_drawing(points))


def png_bytes(im):
    buffer = io.BytesIO()
    im.save(buffer, "PNG")
    return buffer.getvalue()


def data_url(png):
    return "data:image/png;base64," + base64.b64encode(png).decode()


def test_the_page_is_one_file_that_loads_nothing_from_elsewhere(server):
    status, response, html = call(server, "GET", "/")
    assert status == 200 and response.getheader("Content-Type").startswith("text/html")
    assert '<canvas id="pad"' in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "the page must work offline"
    assert "connect-src 'self'" in response.getheader("Content-Security-Policy")


def test_info_names_the_model_and_its_classes(server):
    status, _, info = call(server, "GET", "/api/info")
    assert status == 200
    assert info["model"] == "lenet5" and info["class_names"] == [str(k) for k in range(10)]
    assert info["first_layer"] is True


def test_a_drawn_upright_stroke_reads_1_with_probabilities_that_sum_to_1(server):
    status, _, reply = post(server, {"image": data_url(pad_png(VERTICAL)), "invert": True})
    assert status == 200
    assert reply["prediction"] == "1"
    assert sum(reply["probabilities"]) == pytest.approx(1, abs=1e-5)
    assert reply["first_layer"] is None


def test_the_image_the_page_shows_is_what_predict_makes_of_the_same_file(server, glyph_run, tmp_path, capsys):
    png = pad_png(LOOP)
    path = tmp_path / "loop.png"
    path.write_bytes(png)
    _, _, reply = post(server, {"image": data_url(png), "invert": True})
    np.testing.assert_array_equal(reply["input"], np.round(255 * load_digit(path, invert=True)))
    capsys.readouterr()
    assert cli.main(["predict", str(glyph_run), str(path), "--invert", "yes", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["prediction"] == reply["prediction"] == "0"
    np.testing.assert_allclose(list(record["probabilities"].values()), reply["probabilities"], atol=1e-6)


def test_the_first_layer_feature_maps_come_back_when_asked(server):
    _, _, reply = post(server, {"image": data_url(pad_png(LOOP)), "invert": True, "first_layer": True})
    maps = np.array(reply["first_layer"])
    assert maps.shape == (6, 24, 24)  # LeNet-5's first convolution: 6 maps of 28 - 5 + 1 pixels
    assert maps.min() >= 0 and maps.max() == 255


def test_a_file_of_light_ink_on_dark_is_read_as_well(server):
    light_on_dark = png_bytes(Image.eval(Image.open(io.BytesIO(pad_png(LOOP))), lambda v: 255 - v))
    status, _, reply = post(server, {"image": base64.b64encode(light_on_dark).decode(), "invert": "auto"})
    assert status == 200 and reply["prediction"] == "0"


BLANK = png_bytes(Image.new("L", (280, 280), 255))


@pytest.mark.parametrize("method, path, body, headers, status, fragment", [
    ("GET", "/favicon.ico", None, {}, 404, "no such page: /favicon.ico"),
    ("GET", "/api/predict", None, {}, 405, "/api/predict takes POST, not GET"),
    ("POST", "/", b"{}", {"Content-Type": "application/json"}, 405, "/ takes GET, not POST"),
    ("DELETE", "/api/info", None, {}, 405, "takes GET, not DELETE"),
    ("BREW", "/", None, {}, 501, "method BREW not supported"),
    ("POST", "/api/predict", b"{not json", {"Content-Type": "application/json"}, 400, "malformed JSON"),
    ("POST", "/api/predict", b"\xff\xfe", {"Content-Type": "application/json"}, 400, "malformed JSON"),
    ("POST", "/api/predict", b'["image"]', {"Content-Type": "application/json"}, 400, 'a JSON object with "image"'),
    ("POST", "/api/predict", b'{"image": 7}', {"Content-Type": "application/json"}, 400, 'a JSON object with "image"'),
    ("POST", "/api/predict", b'{"image": "%%%"}', {"Content-Type": "application/json"}, 400, "not valid base64"),
    ("POST", "/api/predict", b'{"image": "data:image/png,abc"}', {"Content-Type": "application/json"}, 400,
     "must be base64-encoded"),
    ("POST", "/api/predict", b'{"image": "", "invert": "yes"}', {"Content-Type": "application/json"}, 400,
     '"invert" must be'),
    ("POST", "/api/predict", b'{"image": "aGVsbG8gd29ybGQ="}', {"Content-Type": "application/json"}, 422,
     "not an image"),
    ("POST", "/api/predict", b'{"image": ""}', {"Content-Type": "application/json"}, 422, "empty file"),
    ("POST", "/api/predict", json.dumps({"image": data_url(BLANK)}).encode(), {"Content-Type": "application/json"},
     422, "no digit found: the image is blank"),
    ("POST", "/api/predict", b"{}", {"Content-Type": "text/plain"}, 415, "must be application/json"),
    ("POST", "/api/predict", b"{}", {"Content-Type": "application/json", "Content-Length": "9999999999"}, 413,
     "request too large"),
    ("POST", "/api/predict", b"{}", {"Content-Type": "application/json", "Content-Length": "-3"}, 400,
     "Content-Length must be a number"),
])
def test_a_bad_request_gets_a_4xx_with_a_one_line_reason(server, method, path, body, headers, status, fragment):
    got, response, reply = call(server, method, path, body, headers)
    assert got == status
    assert response.getheader("Content-Type") == "application/json"
    assert fragment in reply["error"] and "\n" not in reply["error"] and "Traceback" not in reply["error"]
    assert call(server, "GET", "/api/info")[0] == 200


def raw_exchange(server, data, wait=10):
    """Send raw bytes, then read until the server closes the connection."""
    with socket.create_connection(server.server_address[:2], timeout=wait) as conn:
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode("latin-1")


def test_a_post_without_a_length_or_with_a_garbled_request_line_is_refused(server):
    assert raw_exchange(server, b"POST /api/predict HTTP/1.1\r\nContent-Type: application/json\r\n\r\n").startswith(
        "HTTP/1.0 411")
    reply = raw_exchange(server, b"GET / HTTP/9.9 extra\r\n\r\n")
    assert reply.startswith("HTTP/1.0 400") and '"error"' in reply


def test_a_request_that_stalls_is_cut_off_and_the_server_goes_on(reader, monkeypatch):
    monkeypatch.setattr(serve, "REQUEST_SECONDS", 0.5)
    with running(reader) as (server, _):
        body = b'{"image": "'
        start = time.monotonic()
        reply = raw_exchange(server, b"POST /api/predict HTTP/1.1\r\nContent-Type: application/json\r\n"
                                     b"Content-Length: 1000\r\n\r\n" + body)
        assert time.monotonic() - start < 8  # the client's own timeout is 10 s
        assert reply.startswith("HTTP/1.0 408") and "request incomplete" in reply
        # Headers that never end are cut off too.
        reply = raw_exchange(server, b"GET / HTTP/1.1\r\nX-Slow: ")
        assert reply.startswith("HTTP/1.0 408") and "headers did not come" in reply
        assert call(server, "GET", "/api/info")[0] == 200


def test_concurrent_good_and_bad_requests_are_all_answered(server):
    good = {"image": data_url(pad_png(VERTICAL)), "invert": True}
    jobs = [("good", good), ("bad json", b"{oops"), ("not an image", {"image": "aGVsbG8="}),
            ("blank", {"image": data_url(BLANK)})] * 6
    expected = {"good": 200, "bad json": 400, "not an image": 422, "blank": 422}
    results = [None] * len(jobs)

    def send(i, payload):
        status, _, reply = post(server, payload)
        results[i] = (status, reply.get("prediction"))

    threads = [threading.Thread(target=send, args=(i, payload)) for i, (_, payload) in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [status for status, _ in results] == [expected[name] for name, _ in jobs]
    assert {prediction for (name, _), (_, prediction) in zip(jobs, results) if name == "good"} == {"1"}
    assert call(server, "GET", "/api/info")[0] == 200


def test_connections_beyond_the_limit_get_503_until_one_ends(reader, monkeypatch):
    monkeypatch.setattr(serve, "MAX_CONNECTIONS", 2)
    with running(reader) as (server, _):
        idle = [socket.create_connection(server.server_address[:2], timeout=10) for _ in range(2)]
        time.sleep(0.2)  # let the server take both
        status, _, reply = call(server, "GET", "/api/info")
        assert status == 503 and "too many connections" in reply["error"]
        for conn in idle:
            conn.close()
        deadline = time.monotonic() + 10
        while (status := call(server, "GET", "/api/info")[0]) == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status == 200


def test_the_log_has_one_line_per_request_and_no_traceback(reader):
    with running(reader) as (server, log):
        post(server, b"{oops")
        call(server, "GET", "/nowhere")
        raw_exchange(server, b"\x16\x03\x01 not http at all\r\n\r\n")
    assert len(log) == 3
    assert not any("Traceback" in line or "\n" in line for line in log)


def test_serve_on_a_port_in_use_says_so_in_one_line(glyph_run, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["serve", str(glyph_run), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot listen on 127.0.0.1:{port}" in err[0] and "--port 0" in err[0]


@pytest.fixture(scope="module")
def page(server):
    """A headless Chromium (skipped where there is none), and the page's URL."""
    reason = browser.unavailable()
    if reason:
        pytest.skip(f"no browser test: {reason}")
    with browser.chromium() as driver:
        yield driver, server.url


@pytest.mark.parametrize("shape, kind, expected", [("upright", "mouse", "1"), ("loop", "pen", "0"),
                                                   ("upright", "touch", "1")])
def test_in_chromium_a_drawn_stroke_is_read_and_the_bars_sum_to_100_percent(page, shape, kind, expected):
    driver, url = page
    browser.open_page(driver, url)
    browser.draw(driver, {"upright": VERTICAL, "loop": LOOP}[shape], kind)
    shown = browser.reading(driver)
    assert shown["top"] == expected
    classes, probabilities, percents = zip(*shown["bars"])
    assert sorted(classes) == [str(k) for k in range(10)]
    assert classes[0] == expected and list(probabilities) == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1, abs=1e-5)
    # Ten percentages rounded to a tenth each sum to 100 within half a point.
    assert sum(float(p.rstrip("%")) for p in percents) == pytest.approx(100, abs=0.5)


def test_in_chromium_the_28x28_image_shown_is_what_predict_makes_of_the_drawing(page):
    driver, url = page
    browser.open_page(driver, url)
    browser.draw(driver, LOOP)
    expected = np.round(255 * decode_digit(browser.canvas_png(driver), invert=True))
    np.testing.assert_array_equal(browser.reading(driver)["seen"], expected)


def test_in_chromium_a_chosen_image_file_is_read(page, tmp_path):
    driver, url = page
    browser.open_page(driver, url)
    path = tmp_path / "ring.png"
    Image.eval(Image.open(io.BytesIO(pad_png(LOOP))), lambda v: 255 - v).save(path)  # light on dark
    driver.find_element("id", "file").send_keys(str(path))
    browser.wait_until_read(driver)
    shown = browser.reading(driver)
    assert shown["top"] == "0" and "image file" in shown["status"]


def test_in_chromium_clear_empties_the_reading(page):
    driver, url = page
    browser.open_page(driver, url)
    browser.draw(driver, VERTICAL)
    driver.find_element("id", "clear").click()
    shown = browser.reading(driver)
    assert shown["top"] == "" and shown["bars"] == [] and not np.any(shown["seen"])
    assert decode_png_is_blank(browser.canvas_png(driver))


def decode_png_is_blank(png):
    return np.asarray(Image.open(io.BytesIO(png)).convert("L")).min() == 255
