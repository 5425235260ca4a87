"""Turn a photo or scan of one handwritten digit into a 28x28 image prepared the way MNIST was.

MNIST (LeCun et al.): white digit on black, size-normalised to fit a 20x20 box keeping the aspect
ratio, anti-aliased to grey levels, then placed in a 28x28 field so that the centre of mass of the
pixels sits at the centre.
"""

import os

import numpy as np

# Checked against the size in the file header, before any pixel is decoded.
MAX_PIXELS = 50_000_000
# Ink must differ from the paper by this much (on a 0-1 scale) to count as a digit; below it the
# "digit" is JPEG noise or uneven lighting on a blank page.
MIN_CONTRAST = 0.1
BOX = 20
CANVAS = 28


class ImageError(ValueError):
    """An input that cannot be turned into a digit image; the message is one line naming the file."""


def _pil_image():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading images needs Pillow: pip install 'tinygrad_mnist[image]'") from None
    return Image


def load_digit(path, invert="auto"):
    """Read a PNG or JPEG of a handwritten digit and return it MNIST-style: (28, 28) float32 in [0, 1].

    ``invert``: True for dark ink on light paper, False for light ink on dark, "auto" to decide from
    the border of the image. Raises ImageError for anything that is not a readable image of a digit.
    """
    Image = _pil_image()
    from PIL import ImageOps, UnidentifiedImageError

    path = os.fspath(path)
    if os.path.isdir(path):
        raise ImageError(f"{path}: is a directory, not an image file")
    if not os.path.exists(path):
        raise ImageError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise ImageError(f"{path}: empty file")
    try:
        with Image.open(path) as im:
            width, height = im.size
            if width * height > MAX_PIXELS:
                raise ImageError(
                    f"{path}: image too large ({width}x{height} pixels, the limit is {MAX_PIXELS:,} pixels)"
                )
            # Phone cameras store the rotation as an EXIF tag instead of rotating the pixels.
            gray = _to_gray(ImageOps.exif_transpose(im), Image)
    except Image.DecompressionBombError as e:
        raise ImageError(f"{path}: image too large ({_one_line(e)})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image (Pillow cannot identify the file format)") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read image ({_one_line(e)})") from None
    try:
        return preprocess_array(gray, invert)
    except ImageError as e:
        raise ImageError(f"{path}: {e}") from None


def _one_line(error):
    return " ".join(str(error).split())


def _to_gray(im, Image):
    """Decoded grayscale pixels: uint8, or uint16 for 16-bit images; transparency becomes white paper."""
    if im.mode.startswith("I;16") or im.mode == "I":
        # 16-bit PNGs (mode "I" in older Pillow); convert("L") would clip them at 255, not scale.
        return np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info:
        paper = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(paper, im.convert("RGBA"))
    return np.asarray(im.convert("L"))


def preprocess_array(gray, invert="auto"):
    """Everything load_digit does after decoding: a 2-D grayscale array to a (28, 28) MNIST-style image.

    ``gray``: uint8 (0-255), uint16 (0-65535) or float in [0, 1], 0 being black.
    Raises ImageError("no digit found ...") when there is no ink to find.
    """
    if invert not in ("auto", True, False):
        raise ValueError(f"invert must be 'auto', True or False, got {invert!r}")
    x = _to_unit_float(gray)

    border = np.concatenate([x[0], x[-1], x[1:-1, 0], x[1:-1, -1]])
    if invert == "auto":
        # The border is mostly paper; MNIST wants the paper black.
        invert = np.median(border) > 0.5
    if invert:
        x, border = 1 - x, 1 - border

    if x.max() - x.min() < MIN_CONTRAST:
        raise ImageError("no digit found: the image is blank")
    ink = x >= _otsu_threshold(x)
    # Paper, noise included, goes to 0; the typical stroke goes to 1, as MNIST's strokes do.
    paper = np.percentile(border, 95)
    stroke = np.median(x[ink])
    if stroke - paper < MIN_CONTRAST:
        raise ImageError("no digit found: no ink stands out from the background")
    x = np.clip((x - paper) / (stroke - paper), 0, 1)

    inked = x > 0
    # At least half of the ink lies above the paper (stroke is its median), so this is never empty.
    digit = x[_ink_box(ink & inked, inked)]
    return _center_in_canvas(_fit_box(digit))


def _to_unit_float(gray):
    gray = np.asarray(gray)
    if gray.ndim != 2 or gray.size == 0:
        raise ValueError(f"expected a non-empty 2-D grayscale array, got shape {gray.shape}")
    if gray.dtype == np.uint8:
        return gray.astype(np.float32) / 255
    if gray.dtype == np.uint16:
        return gray.astype(np.float32) / 65535
    if np.issubdtype(gray.dtype, np.floating):
        if not np.isfinite(gray).all() or gray.min() < 0 or gray.max() > 1:
            raise ValueError("a float grayscale array must hold finite values in [0, 1]")
        return gray.astype(np.float32)
    raise ValueError(f"expected uint8, uint16 or float grayscale, got dtype {gray.dtype}")


def _otsu_threshold(x, bins=256):
    """The level that splits x into two classes with the largest between-class variance (Otsu, 1979)."""
    hist, edges = np.histogram(x, bins=bins, range=(float(x.min()), float(x.max())))
    p = hist / hist.sum()
    centers = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(p)[:-1]  # dark class = bins 0..k, k < bins - 1 so both classes exist
    mean = np.cumsum(p * centers)[:-1]
    total_mean = mean[-1] + p[-1] * centers[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mean * weight - mean) ** 2 / (weight * (1 - weight))
    return edges[np.nanargmax(between) + 1]


def _ink_box(ink, inked, margin=0.1):
    """Slices of the bounding box of the digit, anti-aliased rim included.

    The Otsu mask ``ink`` finds the digit but misses its faint rim, and the rim sets the size
    MNIST normalises. So the box of ``ink`` grows by ``margin`` of its size, then shrinks to the
    pixels in it that are ``inked`` at all; a noise speck can widen the box by the margin at most.
    """
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    pad = int(np.ceil(margin * max(rows[-1] - rows[0], cols[-1] - cols[0])))
    r0, c0 = max(rows[0] - pad, 0), max(cols[0] - pad, 0)
    near = inked[r0:rows[-1] + pad + 1, c0:cols[-1] + pad + 1]
    rows, cols = np.flatnonzero(near.any(axis=1)), np.flatnonzero(near.any(axis=0))
    return slice(r0 + rows[0], r0 + rows[-1] + 1), slice(c0 + cols[0], c0 + cols[-1] + 1)


def _fit_box(digit):
    """Resize so the larger side is BOX pixels, keeping the aspect ratio, with Lanczos anti-aliasing."""
    Image = _pil_image()
    h, w = digit.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    lanczos = getattr(Image, "Resampling", Image).LANCZOS
    small = np.asarray(Image.fromarray(digit.astype(np.float32)).resize(size, lanczos))
    # Lanczos rings slightly below 0 and above 1 next to sharp edges.
    small = np.clip(small, 0, 1)
    return small / small.max()


def _center_in_canvas(digit):
    """Place digit on a black CANVAS x CANVAS field with its centre of mass on the centre pixel."""
    h, w = digit.shape
    mass = digit.sum()
    cy = digit.sum(axis=1) @ np.arange(h) / mass
    cx = digit.sum(axis=0) @ np.arange(w) / mass
    # Shift by the rounded offset, as LeCun describes (halves round up, not to even), clamped so
    # that no ink falls off the edge.
    top = min(max(int(np.floor(CANVAS / 2 - cy + 0.5)), 0), CANVAS - h)
    left = min(max(int(np.floor(CANVAS / 2 - cx + 0.5)), 0), CANVAS - w)
    canvas = np.zeros((CANVAS, CANVAS), np.float32)
    canvas[top:top + h, left:left + w] = digit
    return canvas
