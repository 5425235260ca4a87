import gzip
import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

Image = pytest.importorskip("PIL.Image")
ImageDraw = pytest.importorskip("PIL.ImageDraw")

from tinygrad_mnist import imaging  # noqa: E402
from tinygrad_mnist.imaging import ImageError, decode_digit, load_digit, preprocess_array  # noqa: E402

MNIST_TEST_IMAGES = Path("/work/shared/datasets/mnist/t10k-images-idx3-ubyte.gz")


def draw(shape, mode="L", ink=0, paper=255, size=(300, 200)):
    """A thick handwritten-looking digit on a plain background."""
    im = Image.new(mode, size, paper)
    pen = ImageDraw.Draw(im)
    if shape == "7":
        pen.line([(90, 40), (200, 45), (140, 170)], fill=ink, width=18, joint="curve")
    elif shape == "1":
        pen.line([(160, 30), (145, 175)], fill=ink, width=16)
    elif shape == "0":
        pen.ellipse([(110, 30), (200, 175)], outline=ink, width=16)
    return im


def save(im, tmp_path, name="digit.png", **kwargs):
    path = tmp_path / name
    im.save(path, **kwargs)
    return path


def mass_centre(y):
    rows, cols = np.indices(y.shape)
    return (rows * y).sum() / y.sum(), (cols * y).sum() / y.sum()


def box_size(y):
    rows, cols = np.flatnonzero(y.any(axis=1)), np.flatnonzero(y.any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def png_claiming(width, height):
    """A tiny PNG whose header claims an 8-bit grayscale image of that size; its pixel data is a stub."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def best_shifted_correlation(a, b):
    """Correlation of a and b, allowing b to move by up to one pixel each way."""
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return max(np.corrcoef(a.ravel(), np.roll(b, s, axis=(0, 1)).ravel())[0, 1] for s in shifts)


def ink_box(im):
    """The bounding box of the dark ink of a drawn digit."""
    return Image.eval(im, lambda v: 255 - v).getbbox()


def under_light(im, light):
    """The digit photographed under `light`: (rows, cols) in [0, 1] -> brightness, paper and ink alike."""
    gray = np.asarray(im, np.float32) / 255
    rows, cols = np.mgrid[0:gray.shape[0], 0:gray.shape[1]]
    return np.clip(gray * light(rows / gray.shape[0], cols / gray.shape[1]), 0, 1)


LIGHTS = {
    "gradient left to right": lambda r, c: 1 - 0.75 * c,
    "gradient bottom to top": lambda r, c: 0.25 + 0.75 * r,
    "corner vignette": lambda r, c: 1 - 1.2 * ((r - 0.5) ** 2 + (c - 0.5) ** 2),
    "half in soft shadow": lambda r, c: 1 - 0.6 / (1 + np.exp(-(c - 0.5) * 40)),
    "hard shadow across the digit": lambda r, c: np.where(c > 0.6, 0.35, 1.0),
    "shadow over the top third": lambda r, c: np.where(r < 0.35, 0.4, 1.0),
}


def test_output_is_28x28_float32_in_unit_range(tmp_path):
    y = load_digit(save(draw("7", "RGB", ink=(0, 0, 0), paper=(255, 255, 255)), tmp_path))
    assert y.shape == (28, 28) and y.dtype == np.float32
    assert y.min() == 0.0 and y.max() == 1.0
    assert (y[0] == 0).all() and (y[:, 0] == 0).all(), "the background must be black, as in MNIST"


@pytest.mark.parametrize("shape", ["7", "1", "0"])
def test_ink_mass_centre_is_within_a_pixel_of_the_centre(tmp_path, shape):
    cy, cx = mass_centre(load_digit(save(draw(shape), tmp_path)))
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1


@pytest.mark.parametrize("shape", ["7", "1", "0"])
def test_larger_side_of_the_ink_box_is_20_pixels_and_aspect_is_kept(tmp_path, shape):
    im = draw(shape)
    h, w = box_size(load_digit(save(im, tmp_path)))
    assert max(h, w) in (19, 20)
    ink_h, ink_w = box_size(np.asarray(im) < 128)
    assert h / w == pytest.approx(ink_h / ink_w, rel=0.25)


def test_black_on_white_rgb_and_white_on_black_gray_agree(tmp_path):
    a = load_digit(save(draw("7", "RGB", ink=(0, 0, 0), paper=(255, 255, 255)), tmp_path, "a.png"))
    b = load_digit(save(draw("7", "L", ink=255, paper=0), tmp_path, "b.png"))
    assert np.abs(a - b).max() < 0.02


@pytest.mark.parametrize("mode", ["L", "RGB", "P", "1", "LA"])
def test_every_common_pixel_mode_gives_the_same_digit(tmp_path, mode):
    reference = load_digit(save(draw("0"), tmp_path, "ref.png"))
    assert np.abs(load_digit(save(draw("0").convert(mode), tmp_path)) - reference).max() < 0.02


def test_transparent_background_is_flattened_onto_white(tmp_path):
    # Transparent pixels here are black underneath; only flattening onto white shows the digit.
    im = draw("7", "RGBA", ink=(0, 0, 0, 255), paper=(0, 0, 0, 0))
    y = load_digit(save(im, tmp_path, "rgba.png"))
    reference = load_digit(save(draw("7"), tmp_path, "ref.png"))
    assert np.abs(y - reference).max() < 0.02


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    gray = np.asarray(draw("1")).astype(np.uint16) * 257
    y = load_digit(save(Image.fromarray(gray), tmp_path, "deep.png"))
    assert np.abs(y - load_digit(save(draw("1"), tmp_path, "ref.png"))).max() < 0.02


def test_jpeg_with_compression_noise_matches_the_png(tmp_path):
    png = load_digit(save(draw("7", "RGB", ink=(0, 0, 0), paper=(255, 255, 255)), tmp_path, "a.png"))
    jpg = load_digit(save(draw("7", "RGB", ink=(0, 0, 0), paper=(255, 255, 255)), tmp_path, "a.jpg", quality=60))
    # JPEG noise may tip the rounded centring shift by a pixel.
    assert best_shifted_correlation(png, jpg) > 0.97
    cy, cx = mass_centre(jpg)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1


def test_exif_rotation_is_applied(tmp_path):
    im = draw("7")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was held rotated; display rotated 90 degrees clockwise
    tagged = load_digit(save(im, tmp_path, "tagged.png", exif=exif))
    upright = load_digit(save(im.transpose(Image.Transpose.ROTATE_270), tmp_path, "upright.png"))
    np.testing.assert_allclose(tagged, upright)


def test_explicit_invert_matches_auto_when_auto_is_right():
    black_on_white = np.asarray(draw("0"))
    white_on_black = 255 - black_on_white
    np.testing.assert_array_equal(preprocess_array(black_on_white, invert=True), preprocess_array(black_on_white))
    np.testing.assert_array_equal(preprocess_array(white_on_black, invert=False), preprocess_array(white_on_black))


def test_preprocess_array_accepts_uint8_uint16_and_unit_floats_alike():
    u8 = np.asarray(draw("7"))
    y = preprocess_array(u8)
    np.testing.assert_allclose(preprocess_array(u8.astype(np.uint16) * 257), y, atol=1e-5)
    np.testing.assert_allclose(preprocess_array(u8 / 255.0), y, atol=1e-5)


@pytest.mark.parametrize(
    "gray, invert, message",
    [
        (np.zeros((4, 4, 3), np.uint8), "auto", "2-D grayscale"),
        (np.full((4, 4), 2.0), "auto", r"\[0, 1\]"),
        (np.zeros((4, 4), np.int64), "auto", "dtype int64"),
        (np.zeros((4, 4), np.uint8), "yes", "invert must be"),
    ],
)
def test_preprocess_array_rejects_bad_input(gray, invert, message):
    with pytest.raises(ValueError, match=message):
        preprocess_array(gray, invert)


def expect_image_error(path, message):
    with pytest.raises(ImageError, match=message) as info:
        load_digit(path)
    text = str(info.value)
    assert str(path) in text and "\n" not in text
    return text


def test_blank_page_has_no_digit(tmp_path):
    expect_image_error(save(Image.new("RGB", (300, 200), "white"), tmp_path), "no digit found")


def test_faint_noise_on_a_blank_page_has_no_digit(tmp_path):
    noise = np.random.default_rng(0).integers(235, 256, (200, 300)).astype(np.uint8)
    expect_image_error(save(Image.fromarray(noise), tmp_path, "noise.jpg", quality=50), "no digit found")


def test_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not really a picture\n")
    expect_image_error(path, "not an image")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    expect_image_error(path, "empty file")


def test_directory(tmp_path):
    expect_image_error(tmp_path, "is a directory")


def test_missing_file(tmp_path):
    expect_image_error(tmp_path / "absent.png", "no such file")


def test_truncated_png_is_unreadable(tmp_path):
    data = save(draw("7"), tmp_path).read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    expect_image_error(path, "cannot read image")


def test_header_claiming_a_huge_size_is_refused_before_decoding(tmp_path):
    # 8000 x 8000 = 64 megapixels: over our limit, under Pillow's own bomb check.
    path = tmp_path / "huge.png"
    path.write_bytes(png_claiming(8000, 8000))
    expect_image_error(path, r"too large \(8000x8000 pixels")


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(100_000, 100_000))
    expect_image_error(path, "too large")


def test_pixel_limit_is_checked_on_real_images(tmp_path, monkeypatch):
    monkeypatch.setattr(imaging, "MAX_PIXELS", 1000)
    expect_image_error(save(draw("7"), tmp_path), r"too large \(300x200 pixels")


def test_missing_pillow_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"reading images needs Pillow: pip install 'tinygrad_mnist\[image\]'"):
        load_digit(tmp_path / "digit.png")


@pytest.mark.skipif(not MNIST_TEST_IMAGES.exists(), reason="MNIST test images not found")
def test_real_mnist_digits_survive_a_round_trip_through_a_black_on_white_scan(tmp_path):
    with gzip.open(MNIST_TEST_IMAGES) as f:
        digits = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:100]
    path = tmp_path / "scan.png"
    correlations = []
    for digit in digits:
        Image.fromarray(255 - np.kron(digit, np.ones((10, 10), np.uint8))).save(path)
        correlations.append(np.corrcoef(load_digit(path).ravel(), digit.ravel())[0, 1])
    correlations = np.array(correlations)
    assert correlations[0] > 0.9
    # The rounded shift can move a digit whose centre of mass lies near a half pixel by one pixel
    # from where MNIST put it, which costs a thin stroke much of its correlation.
    assert np.mean(correlations > 0.9) >= 0.95
    assert np.median(correlations) > 0.98


@pytest.mark.parametrize("shape", ["7", "1", "0"])
@pytest.mark.parametrize("ink, paper", [(0, 255), (255, 0)], ids=["dark on light", "light on dark"])
def test_a_digit_cropped_tight_to_its_ink_reads_as_the_uncropped_one(shape, ink, paper):
    im = draw(shape, ink=ink, paper=paper)
    tight = im.crop(ink_box(draw(shape)))
    assert best_shifted_correlation(preprocess_array(np.asarray(im)), preprocess_array(np.asarray(tight))) > 0.98


def test_a_digit_whose_ink_touches_all_four_edges_is_read():
    im = draw("0")
    tight = np.asarray(im.crop(ink_box(im)))
    assert all((edge < 128).any() for edge in (tight[0], tight[-1], tight[:, 0], tight[:, -1]))
    y = preprocess_array(tight)
    assert max(box_size(y)) in (19, 20)
    assert best_shifted_correlation(preprocess_array(np.asarray(im)), y) > 0.98


@pytest.mark.parametrize("light", LIGHTS)
@pytest.mark.parametrize("shape", ["7", "1", "0"])
def test_uneven_lighting_is_evened_out_before_the_ink_is_found(shape, light):
    evenly_lit = preprocess_array(np.asarray(draw(shape)))
    assert best_shifted_correlation(evenly_lit, preprocess_array(under_light(draw(shape), LIGHTS[light]))) > 0.98


@pytest.mark.parametrize("light", ["gradient left to right", "half in soft shadow"])
def test_light_ink_on_a_dark_page_under_uneven_lighting_is_read_too(light):
    evenly_lit = preprocess_array(np.asarray(draw("7")))
    photo = under_light(draw("7", ink=255, paper=40), LIGHTS[light])
    assert best_shifted_correlation(evenly_lit, preprocess_array(photo)) > 0.98


def test_a_noisy_jpeg_photo_under_a_gradient_matches_the_clean_scan(tmp_path):
    photo = under_light(draw("0"), lambda r, c: 1 - 0.6 * r * c) * 0.9 + 0.05
    photo = np.clip(photo + np.random.default_rng(1).normal(0, 0.03, photo.shape), 0, 1)
    path = save(Image.fromarray((255 * photo).astype(np.uint8)), tmp_path, "photo.jpg", quality=60)
    assert best_shifted_correlation(load_digit(save(draw("0"), tmp_path)), load_digit(path)) > 0.9


def test_a_blank_page_under_uneven_lighting_names_the_lighting():
    page = under_light(Image.new("L", (300, 200), 255), LIGHTS["half in soft shadow"])
    with pytest.raises(ImageError, match="no ink stands out once the uneven lighting"):
        preprocess_array(page)


@pytest.mark.parametrize("size", [(30, 20), (15, 10)])
def test_a_tiny_image_is_scaled_up_into_the_20_pixel_box(size):
    y = preprocess_array(np.asarray(draw("7").resize(size, Image.LANCZOS)))
    assert max(box_size(y)) in (19, 20)
    cy, cx = mass_centre(y)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1


def test_a_huge_image_reads_as_its_small_original(tmp_path):
    huge = draw("7").resize((6000, 4000), Image.NEAREST)  # 24 megapixels
    y = load_digit(save(huge, tmp_path, "huge.png"))
    assert best_shifted_correlation(load_digit(save(draw("7"), tmp_path)), y) > 0.98


@settings(max_examples=40)
@given(shape=st.sampled_from(["7", "1", "0"]), dark_ink=st.booleans(), darkest=st.floats(0.3, 1.0),
       angle=st.floats(0, 2 * np.pi), crop=st.booleans())
def test_any_gradient_polarity_and_crop_reads_as_the_clean_scan(shape, dark_ink, darkest, angle, crop):
    im = draw(shape, ink=0 if dark_ink else 255, paper=255 if dark_ink else 40)
    # Brightness falls linearly from 1 to `darkest` across the page, in the direction `angle`; the
    # photo of the page is then cropped to the ink, if at all.
    toward = lambda r, c: (np.cos(angle) * (2 * c - 1) + np.sin(angle) * (2 * r - 1)) / 2 ** 0.5
    photo = under_light(im, lambda r, c: 1 - (1 - darkest) * (0.5 + 0.5 * toward(r, c)))
    if crop:
        left, top, right, bottom = ink_box(draw(shape))
        photo = photo[top:bottom, left:right]
    assert best_shifted_correlation(preprocess_array(np.asarray(draw(shape))), preprocess_array(photo)) > 0.95


@given(data=st.data())
@settings(max_examples=150)
def test_a_corrupted_image_file_is_an_image_error_never_another_exception(data):
    kind = data.draw(st.sampled_from(sorted(CORRUPTIBLE)))
    blob = bytearray(CORRUPTIBLE[kind])
    how = data.draw(st.sampled_from(["flip", "cut", "insert"]))
    at = data.draw(st.integers(0, len(blob) - 1))
    if how == "flip":
        blob[at] ^= data.draw(st.integers(1, 255))
    elif how == "cut":
        blob = blob[:at]
    else:
        blob[at:at] = data.draw(st.binary(min_size=1, max_size=16))
    try:
        decode_digit(bytes(blob), source="fuzzed")
    except ImageError as e:
        assert str(e).startswith("fuzzed: ") and "\n" not in str(e)


def _encoded(fmt):
    buffer = io.BytesIO()
    draw("7").resize((60, 40)).save(buffer, fmt)
    return buffer.getvalue()


CORRUPTIBLE = {fmt: _encoded(fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "PPM")}
