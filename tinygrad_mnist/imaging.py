"""Turn a photo or scan of one handwritten digit into a 28x28 image prepared the way MNIST was.

MNIST (LeCun et al.): white digit on black, size-normalised to fit a 20x20 box keeping the aspect
ratio, anti-aliased to grey levels, then placed in a 28x28 field so that the centre of mass of the
pixels sits at the centre. Before that, a photo's paper and ink are told apart: which is the darker,
decided from the whole image; the paper's brightness at each pixel, so that shadows and gradients do
not pass for ink; and ink may run off the edge, as in a digit cropped tight.
"""

import io
import os
import struct
import warnings

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# Checked against the size in the file header, before any pixel is decoded.
MAX_PIXELS = 50_000_000
# Ink must differ from the paper by this fraction of the paper's brightness (and the image's darkest and
# lightest pixels by this much on a 0-1 scale) to count as a digit; below it the "digit" is JPEG noise
# or uneven lighting on a blank page.
MIN_CONTRAST = 0.1
# Photos are first reduced to at most this many pixels on the longer side: ample for a digit that ends
# up 20 pixels tall, and it bounds the time and memory of what follows.
WORK_SIDE = 2048
# The paper's lighting is estimated on a grid at most this many blocks on the longer side.
LIGHTING_GRID = 512
# Which of ink and paper is the darker is decided on a grid this coarse.
POLARITY_GRID = 32
BOX = 20
CANVAS = 28


class ImageError(ValueError):
    """An input that cannot be turned into a digit image: ``reason`` is one line, ``source`` the file
    (or upload) it came from, and the message is "source: reason"."""

    def __init__(self, reason, source=None):
        self.reason, self.source = reason, source
        super().__init__(f"{source}: {reason}" if source is not None else reason)


def _pil_image():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading images needs Pillow: pip install 'tinygrad_mnist[image]'") from None
    return Image


def load_digit(path, invert="auto"):
    """Read a PNG or JPEG of a handwritten digit and return it MNIST-style: (28, 28) float32 in [0, 1].

    ``invert``: True for dark ink on light paper, False for light ink on dark, "auto" to decide from
    the image (see preprocess_array). Raises ImageError for anything that is not a readable image of
    a digit.
    """
    _pil_image()
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ImageError("is a directory, not an image file", path)
    if not os.path.exists(path):
        raise ImageError("no such file", path)
    if os.path.getsize(path) == 0:
        raise ImageError("empty file", path)
    return _read(path, invert, path)


def decode_digit(data, invert="auto", source="image"):
    """load_digit for the bytes of an image file (an upload); ``source`` names it in errors."""
    _pil_image()
    if not data:
        raise ImageError("empty file", source)
    return _read(io.BytesIO(data), invert, source)


def _read(file, invert, source):
    Image = _pil_image()
    from PIL import ImageOps, UnidentifiedImageError

    try:
        # Pillow warns of damaged metadata it reads past; what it cannot read raises, below.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(file) as im:
                width, height = im.size
                if width * height > MAX_PIXELS:
                    raise ImageError(f"image too large ({width}x{height} pixels, the limit is {MAX_PIXELS:,} "
                                     "pixels)", source)
                # Phone cameras store the rotation as an EXIF tag instead of rotating the pixels.
                gray = _to_gray(ImageOps.exif_transpose(im), Image)
    except Image.DecompressionBombError as e:
        raise ImageError(f"image too large ({_one_line(e)})", source) from None
    except UnidentifiedImageError:
        raise ImageError("not an image (Pillow cannot identify the file format)", source) from None
    except ImageError:
        raise
    # Pillow's decoders report corrupt data as any of these.
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
        raise ImageError(f"cannot read image ({_one_line(e) or type(e).__name__})", source) from None
    try:
        return preprocess_array(gray, invert)
    except ImageError as e:
        raise ImageError(e.reason, source) from None


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

    ``gray``: uint8 (0-255), uint16 (0-65535) or float in [0, 1], 0 being black. ``invert``: True
    for dark ink on light paper, False for light ink on dark, "auto" to decide from the whole image
    (the paper is the level most of it has). Uneven lighting (a shadow, a gradient across the page)
    is evened out first, and ink may touch the border. Raises ImageError("no digit found ...") when
    there is no ink to find.
    """
    if invert not in ("auto", True, False):
        raise ValueError(f"invert must be 'auto', True or False, got {invert!r}")
    x = _to_unit_float(gray)
    if x.max() - x.min() < MIN_CONTRAST:
        raise ImageError("no digit found: the image is blank")
    if invert == "auto":
        invert = _dark_ink(x)
    lighting = _paper_lighting(x, dark_ink=invert)
    # How far each pixel is from the paper toward the ink, as a fraction of the paper's brightness
    # (a black page counts as MIN_CONTRAST bright): a shadow dims paper and ink alike. MNIST's ink is
    # light on black, which this is.
    ink = (lighting - x if invert else x - lighting) / np.maximum(lighting, MIN_CONTRAST)

    if ink.max() - ink.min() < MIN_CONTRAST:
        raise _no_ink(lighting)
    strokes = ink >= _otsu_threshold(ink)
    # Paper, noise included, goes to 0; the typical stroke goes to 1, as MNIST's strokes do. The
    # paper's level is the median of what is not stroke, its noise 1.4826 median absolute deviations
    # (a normal distribution's standard deviation).
    rest = ink[~strokes]
    level = np.median(rest)
    paper = level + 4 * 1.4826 * np.median(np.abs(rest - level))
    stroke = np.median(ink[strokes])
    if stroke - paper < MIN_CONTRAST:
        raise _no_ink(lighting)
    x = np.clip((ink - paper) / (stroke - paper), 0, 1)

    inked = x > 0
    # At least half of the ink lies above the paper (stroke is its median), so this is never empty.
    digit = x[_ink_box(strokes & inked, inked)]
    return _center_in_canvas(_fit_box(digit))


def _no_ink(lighting):
    if lighting.max() - lighting.min() >= MIN_CONTRAST:
        return ImageError("no digit found: no ink stands out once the uneven lighting (a shadow or gradient) "
                          "is evened out")
    return ImageError("no digit found: no ink stands out from the background")


def _reduce(x, side):
    """x as float32 block means, so that its longer side is at most `side` (the blocks of the last row
    and column repeat their edge pixels); x itself, as float32, when it is that small already."""
    f = -(-max(x.shape) // side)
    if f == 1:
        return x.astype(np.float32)
    h, w = x.shape
    padded = np.pad(x, ((0, -h % f), (0, -w % f)), mode="edge")
    return padded.reshape(padded.shape[0] // f, f, padded.shape[1] // f, f).mean(axis=(1, 3), dtype=np.float32)


def _dark_ink(x):
    """True if the ink is darker than the paper. Most of a digit's image is paper, so once each pixel
    has the median of its neighbourhood (half the image wide) taken off, which takes uneven lighting
    with it, what is left is ink on one side of zero: the side the residuals' long tail lies on.
    With no clear tail (a blank page, a bare gradient), dark ink on light paper, as most photos are.
    """
    coarse = _reduce(x, POLARITY_GRID)
    half = max(coarse.shape) // 4
    # Mirrored at the edges, so that a window there still centres on its pixel.
    windows = sliding_window_view(np.pad(coarse, half, mode="symmetric"), (2 * half + 1, 2 * half + 1))
    residual = (coarse - np.median(windows, axis=(-2, -1))).astype(np.float64)
    skewness = np.mean(residual ** 3) / max(np.mean(residual ** 2), 1e-30) ** 1.5
    return skewness < 0.1


def _paper_lighting(x, dark_ink):
    """The paper's brightness at each pixel of x as if there were no ink: a grey-level closing (for dark
    ink; an opening for light) over squares a third of the image's longer side, which fills in the
    strokes narrower than that and keeps the lighting, shadows' edges and gradients included, where it
    was. Computed on a grid of at most LIGHTING_GRID pixels a side, interpolated back to x's size.

    At the image's border the filter must choose: windows that hang over the edge see too little to
    tell a stroke along the edge from paper in shadow. Windows kept inside keep such strokes, but
    misjudge paper whose lighting changes toward the edge; windows that hang over follow the paper, but
    swallow the strokes. The lighting that hangs over is taken unless the two differ by more than a
    factor of two: lighting does not halve within a sixth of an image, and ink differs more from its
    paper than that.
    """
    Image = _pil_image()
    # A closing of -x is an opening of x: it fills in light strokes instead of dark ones.
    sign = np.float32(1 if dark_ink else -1)
    coarse = sign * _reduce(x, LIGHTING_GRID)
    size = 2 * (max(coarse.shape) // 6) + 1  # odd, so that the windows centre on their pixels
    hang = size // 2
    inside = sign * _closing(coarse, size)
    over = sign * _closing(np.pad(coarse, hang, constant_values=-np.inf), size)[hang:-hang, hang:-hang]
    lighting = np.where(np.minimum(over, inside) >= 0.5 * np.maximum(over, inside), over, inside)
    if coarse.shape == x.shape:
        return lighting
    f = -(-max(x.shape) // LIGHTING_GRID)
    bilinear = getattr(Image, "Resampling", Image).BILINEAR
    smooth = np.asarray(Image.fromarray(lighting).resize((coarse.shape[1] * f, coarse.shape[0] * f), bilinear))
    return smooth[:x.shape[0], :x.shape[1]]


def _closing(x, size):
    """A maximum filter then a minimum filter over size x size squares, each over the part of its
    square inside the array."""
    return _window_extreme(_window_extreme(x, size, np.maximum), size, np.minimum)


def _window_extreme(x, size, extreme):
    """`extreme` (np.maximum or np.minimum) over the size x size square centred on each pixel, the
    part of it inside the array, in log2(size) passes per axis: each doubles the span covered."""
    fill = -np.inf if extreme is np.maximum else np.inf
    before, after = size // 2, size - 1 - size // 2
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (before, after)
        m, span = np.pad(x, pad, constant_values=fill), 1
        n = x.shape[axis]
        while 2 * span <= size:  # m[i] becomes the extreme of the 2 * span values from i on
            m = extreme(m.take(range(m.shape[axis] - span), axis), m.take(range(span, m.shape[axis]), axis))
            span *= 2
        rest = size - span  # at most span, so [i, i + span) and [i + rest, i + size) cover [i, i + size)
        x = extreme(m.take(range(n), axis), m.take(range(rest, rest + n), axis))
    return x


def _to_unit_float(gray):
    """Validated, reduced to WORK_SIDE, and scaled to [0, 1] as float32."""
    gray = np.asarray(gray)
    if gray.ndim != 2 or gray.size == 0:
        raise ValueError(f"expected a non-empty 2-D grayscale array, got shape {gray.shape}")
    if gray.dtype == np.uint8:
        return _reduce(gray, WORK_SIDE) / np.float32(255)
    if gray.dtype == np.uint16:
        return _reduce(gray, WORK_SIDE) / np.float32(65535)
    if np.issubdtype(gray.dtype, np.floating):
        if not np.isfinite(gray).all() or gray.min() < 0 or gray.max() > 1:
            raise ValueError("a float grayscale array must hold finite values in [0, 1]")
        return _reduce(gray, WORK_SIDE)
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
