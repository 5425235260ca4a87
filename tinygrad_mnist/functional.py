"""The functional API (`import tinygrad_mnist.functional as F`): checks arguments, then applies ops."""
import math
import warnings

import numpy as np

from . import backend, ops
from .tensor import ShapeError, Tensor, minimum, no_grad, stack, where


def _square(value, name):
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise ValueError(f"{name}={value!r}: only square kernels, strides and paddings are supported")
        value = value[0]
    return int(value)


def relu(input, inplace=False): return input.relu()
def tanh(input): return input.tanh()
def sigmoid(input): return input.sigmoid()


def linear(x, weight, bias=None):
    """x @ weightᵀ + bias, with weight (out_features, in_features) as in PyTorch."""
    if x.shape[-1] != weight.shape[1]:
        raise ShapeError(f"linear: input has {x.shape[-1]} features, weight {tuple(weight.shape)} expects {weight.shape[1]}")
    return ops.Linear.apply(x, weight, *([bias] if bias is not None else []))


def _pair(value, name):
    """An int or a pair of ints as (rows, columns)."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise ValueError(f"{name}={value!r}: expected an int or a pair of ints (rows, columns)")
    return tuple(int(v) for v in pair)


def conv_padding(padding, kernel_size, stride, dilation):
    """(top, bottom, left, right) for conv2d's `padding`: an int, a (rows, columns) pair, 'valid' (none) or
    'same' (the output as large as the input: d·(k-1) zeros per axis, the odd one on the bottom or right,
    as PyTorch puts it; stride 1 only)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'same', 'valid'}}")
        if stride != (1, 1):
            raise ValueError(f"padding='same' is not supported for strided convolutions (stride={stride}): "
                             "give the padding as numbers")
        total = [d * (k - 1) for d, k in zip(dilation, kernel_size)]
        return (total[0] // 2, total[0] - total[0] // 2, total[1] // 2, total[1] - total[1] // 2)
    ph, pw = _pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"conv2d: negative padding is not supported, got padding={padding!r}")
    return (ph, ph, pw, pw)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation of input (N, C, H, W) with weight (O, C/groups, kh, kw), zero padding, as
    torch.nn.functional.conv2d: stride, padding and dilation an int or a (rows, columns) pair, padding
    also 'valid' or 'same'; groups splits the channels into that many independent convolutions."""
    x = input
    if x.ndim != 4 or weight.ndim != 4:
        raise ShapeError(f"conv2d: expected x (N, C, H, W) and weight (O, C/groups, kh, kw), got {x.shape} and "
                         f"{weight.shape}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"conv2d: groups must be a positive integer, got {groups!r}")
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    if min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"conv2d: stride and dilation must be >= 1, got stride={stride} dilation={dilation}")
    o, c_per_group, kh, kw = weight.shape
    if o % groups:
        raise ShapeError(f"conv2d: given groups={groups}, expected weight {tuple(weight.shape)} to have a number "
                         f"of output channels divisible by {groups}")
    if x.shape[1] != c_per_group * groups:
        raise ShapeError(f"conv2d: given groups={groups}, weight {tuple(weight.shape)} expects input with "
                         f"{c_per_group * groups} channels, but got {x.shape[1]} channels (input {tuple(x.shape)})")
    if bias is not None and tuple(bias.shape) != (o,):
        raise ShapeError(f"conv2d: bias of shape {tuple(bias.shape)} for {o} output channels: expected ({o},)")
    top, bottom, left, right = conv_padding(padding, (kh, kw), stride, dilation)
    reach = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    if x.shape[2] + top + bottom < reach[0] or x.shape[3] + left + right < reach[1]:
        raise ShapeError(f"conv2d: kernel {kh}x{kw} (dilation {dilation}, reaching {reach[0]}x{reach[1]}) is "
                         f"larger than the padded input {x.shape[2:]} (padding {padding!r})")
    biases = [bias] if bias is not None else []
    if stride[0] == stride[1] and top == bottom == left == right and dilation == (1, 1) and groups == 1:
        return ops.Conv2d.apply(x, weight, *biases, stride=stride[0], padding=top)  # the fast form
    return ops.Conv2d.apply(x, weight, *biases, stride=stride, padding=(top, bottom, left, right),
                            dilation=dilation, groups=groups)


def pad(input, pad, mode="constant", value=0.0):
    """`value` around input: `pad` is (left, right) for the last axis, then (top, bottom) for the one
    before, and so on, as torch.nn.functional.pad. Only mode='constant' and non-negative widths."""
    if mode != "constant":
        raise ValueError(f"pad: only mode='constant' is supported, got {mode!r}")
    pad = [int(p) for p in pad]
    if len(pad) % 2 or len(pad) // 2 > input.ndim or min(pad, default=0) < 0:
        raise ValueError(f"pad: expected non-negative (before, after) pairs for at most {input.ndim} axes, got {pad}")
    widths = [(0, 0)] * (input.ndim - len(pad) // 2) + [(pad[i], pad[i + 1]) for i in range(len(pad) - 2, -1, -2)]
    return ops.Pad.apply(input, widths=tuple(widths), value=value)


def _pool_args(name, x, kernel_size, stride, padding, dilation=1):
    k = _square(kernel_size, "kernel_size")
    s = k if stride is None else _square(stride, "stride")
    p, d = _square(padding, "padding"), _square(dilation, "dilation")
    reach = d * (k - 1) + 1
    if x.ndim != 4:
        raise ShapeError(f"{name}: expected x (N, C, H, W), got shape {x.shape}")
    if d < 1:
        raise ValueError(f"{name}: dilation must be >= 1, got {d}")
    if not 0 <= p <= reach // 2:
        raise ValueError(f"{name}: padding must lie in [0, half the kernel's reach] = [0, {reach // 2}], got {p}")
    if k < 1 or s < 1 or reach > min(x.shape[2:]) + 2 * p:
        raise ShapeError(f"{name}: kernel_size {k} (dilation {d}) and stride {s} do not fit an input of {x.shape[2:]}")
    return k, s, p, d


def _ceil_extra(side, k, s, p, d, ceil_mode):
    """The zeros to add after `side` so that floor-mode windows give PyTorch's output size: with ceil_mode
    one more window takes a partial last stretch, if that window starts inside the input or its left
    padding; without it, none."""
    if not ceil_mode:
        return 0
    reach = d * (k - 1) + 1
    out = -(-(side + 2 * p - reach) // s) + 1
    if (out - 1) * s >= side + p:
        out -= 1
    return max(0, (out - 1) * s + reach - (side + 2 * p))


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Maximum over kernel_size² windows every `stride` (default kernel_size) pixels, their taps `dilation`
    apart, the input padded with -inf; rows and columns that do not fill a window are dropped, or with
    ceil_mode take one more partial window (as PyTorch). Where a window's maximum ties, its gradient is
    split evenly."""
    if return_indices:
        raise ValueError("max_pool2d: return_indices is not supported")
    k, s, p, d = _pool_args("max_pool2d", x, kernel_size, stride, padding, dilation)
    eh, ew = (_ceil_extra(side, k, s, p, d, ceil_mode) for side in x.shape[2:])
    if p or eh or ew:
        x = ops.Pad.apply(x, widths=((0, 0), (0, 0), (p, p + eh), (p, p + ew)), value=float("-inf"))
    return ops.MaxPool2d.apply(x, kernel_size=k, stride=s, **({"dilation": d} if d != 1 else {}))


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over kernel_size² windows every `stride` (default kernel_size) pixels, the input padded with
    zeros that count in the mean unless count_include_pad=False (then each window divides by its real
    pixels), as torch.nn.functional.avg_pool2d; with ceil_mode a partial last window divides by the part
    of it that lies within the padded input."""
    k, s, p, _ = _pool_args("avg_pool2d", x, kernel_size, stride, padding)
    eh, ew = (_ceil_extra(side, k, s, p, 1, ceil_mode) for side in x.shape[2:])
    divisor = k * k if divisor_override is None else divisor_override
    if p or eh or ew:
        if divisor_override is None and (not count_include_pad or eh or ew):  # each window's count of pixels
            xp = backend.get_array_module(x.array)
            ones = xp.pad(xp.ones((1, 1) + x.shape[2:], x.dtype), ((0, 0), (0, 0), (p, p), (p, p)),
                          constant_values=1 if count_include_pad else 0)
            ones = xp.pad(ones, ((0, 0), (0, 0), (0, eh), (0, ew)))
            divisor = ops.AvgPool2d.apply(Tensor._wrap(ones), kernel_size=k, stride=s, divisor=1).array
        x = ops.Pad.apply(x, widths=((0, 0), (0, 0), (p, p + eh), (p, p + ew)), value=0.0)
    return ops.AvgPool2d.apply(x, kernel_size=k, stride=s, divisor=divisor)


def adaptive_avg_pool2d(x, output_size):
    """The mean over output_size bins of each map, bin i spanning [⌊i·H/h⌋, ⌈(i+1)·H/h⌉) as in PyTorch:
    one avg_pool2d where the size divides evenly, else one mean per bin."""
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    h, w = x.shape[2:]
    oh, ow = oh or h, ow or w  # None keeps that side
    if h % oh == 0 and w % ow == 0 and h // oh == w // ow:
        return x if (oh, ow) == (h, w) else avg_pool2d(x, h // oh)
    rows = [(i * h // oh, -(-(i + 1) * h // oh)) for i in range(oh)]
    cols = [(j * w // ow, -(-(j + 1) * w // ow)) for j in range(ow)]
    bins = [x[:, :, r0:r1, c0:c1].mean(dim=(2, 3)) for r0, r1 in rows for c0, c1 in cols]
    return stack(bins, dim=-1).reshape(x.shape[0], x.shape[1], oh, ow)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """(x - mean) / √(var + ε) · weight + bias over the last len(normalized_shape) axes (biased variance)."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(input.shape[input.ndim - len(shape):]) != shape:
        raise ShapeError(f"layer_norm: input {tuple(input.shape)} does not end in normalized_shape {shape}")
    dims = tuple(range(input.ndim - len(shape), input.ndim))
    centred = input - input.mean(dim=dims, keepdim=True)
    out = centred * ((centred * centred).mean(dim=dims, keepdim=True) + eps).rsqrt()
    if weight is not None:
        out = out * weight
    return out + bias if bias is not None else out


def _dim(dim, axis):
    if axis is not None:
        if dim is not None:
            raise TypeError("give dim= or axis=, not both")
        return axis
    return -1 if dim is None else dim


def log_softmax(input, dim=None, dtype=None, *, axis=None):
    """log softmax along `dim` (default the last axis; `axis` is the NumPy spelling, kept as an alias)."""
    return input.log_softmax(_dim(dim, axis), dtype)


def softmax(input, dim=None, dtype=None, *, axis=None):
    return log_softmax(input, dim, dtype, axis=axis).exp()


REDUCTIONS = ("mean", "sum", "none")


def _reduce(name, losses, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {', '.join(map(repr, REDUCTIONS))}, got {reduction!r}")
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.mean()


def _class_targets(name, input, target, ignore_index):
    """Integer class labels checked against input (N, C, ...): the labels as an array of input's device,
    and the mask of those that count (not ignore_index)."""
    xp = backend.get_array_module(input.array)
    target = xp.asarray(target.array if isinstance(target, Tensor) else target)
    if target.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected integer class labels (a long tensor), got {target.dtype}; class "
                         f"probabilities as targets are not supported")
    expected = input.shape[:1] + input.shape[2:] if input.ndim > 1 else ()
    if target.shape != expected:
        raise ValueError(f"{name}: input {tuple(input.shape)} (N, C, ...) needs labels of shape {expected}, "
                         f"got {tuple(target.shape)}")
    counted = target != ignore_index
    classes = input.shape[1] if input.ndim > 1 else input.shape[0]
    labels = target[counted]
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise ValueError(f"{name}: labels must lie in [0, {classes}) (or be ignore_index={ignore_index}), got "
                         f"{int(labels.min())}..{int(labels.max())}")
    return target, counted


def _as_rows(input):
    """input (N, C, d1, ...) as rows (N·d1·..., C), and (C,) as one row: where each row is one sample."""
    if input.ndim == 1:
        return input.reshape(1, -1)
    if input.ndim == 2:
        return input
    return input.permute(0, *range(2, input.ndim), 1).reshape(-1, input.shape[1])


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """-w[y] · input[y] for log-probabilities input (N, C) (or (N, C, d1, ...)) and labels y: averaged over
    the batch weighted by w[y] ('mean'), summed, or per sample ('none'); labels equal to ignore_index count
    for nothing. As torch.nn.functional.nll_loss."""
    target, counted = _class_targets("nll_loss", input, target, ignore_index)
    xp = backend.get_array_module(input.array)
    rows = _as_rows(input)
    labels = xp.where(counted, target, 0).reshape(-1)
    w = counted.reshape(-1).astype(input.dtype)
    if weight is not None:
        w = w * (weight.array if isinstance(weight, Tensor) else xp.asarray(weight, dtype=input.dtype))[labels]
    w = Tensor._wrap(w.astype(input.dtype, copy=False))
    losses = -rows[xp.arange(rows.shape[0]), labels] * w
    if reduction == "mean":
        return losses.sum() / w.sum()
    return _reduce("nll_loss", losses.reshape(target.shape), reduction)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """nll_loss of log_softmax(input, 1), with the labels optionally smoothed: the target puts 1-ε on the
    label and ε/C on every class, as torch.nn.functional.cross_entropy (class weights, ignore_index and
    the reductions included). Without weights or ignored labels and with reduction='mean' it is one fused
    op, stable for any finite logits."""
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    target, counted = _class_targets("cross_entropy", input, target, ignore_index)
    if input.ndim == 2 and weight is None and reduction == "mean" and bool(counted.all()):
        return ops.CrossEntropy.apply(input, labels=target, label_smoothing=float(label_smoothing))
    logp = log_softmax(input, 1 if input.ndim > 1 else 0)
    loss = nll_loss(logp, target, weight, ignore_index, reduction)
    if not label_smoothing:
        return loss
    xp = backend.get_array_module(input.array)
    rows = _as_rows(logp)
    w = weight.array if isinstance(weight, Tensor) else (None if weight is None else xp.asarray(weight, input.dtype))
    smooth = -((rows * Tensor._wrap(w)) if w is not None else rows).sum(1) * Tensor._wrap(
        counted.reshape(-1).astype(input.dtype))
    if reduction == "mean":
        labels = target[counted]
        smooth = smooth.sum() * (1.0 / float(w[labels].sum() if w is not None else labels.size))
    else:
        smooth = _reduce("cross_entropy", smooth.reshape(target.shape), reduction)
    return loss * (1 - label_smoothing) + smooth * (label_smoothing / rows.shape[1])


def mse_loss(input, target, reduction="mean"):
    """(input - target)², averaged, summed or per element."""
    d = input - target
    return _reduce("mse_loss", d * d, reduction)


def l1_loss(input, target, reduction="mean"):
    return _reduce("l1_loss", (input - target).abs(), reduction)


def leaky_relu(input, negative_slope=0.01):
    """x for x > 0, else slope · x (the gradient at 0 is the slope, as PyTorch)."""
    return where(input > 0, input, input * negative_slope)


def elu(input, alpha=1.0):
    """x for x > 0, else α(eˣ - 1); the exponential only sees x <= 0, so it never overflows."""
    return where(input > 0, input, (input.clamp(max=0).exp() - 1) * alpha)


def silu(input):
    """x σ(x) (also called swish)."""
    return input * input.sigmoid()


def gelu(input, approximate="none"):
    """x Φ(x), with Φ the standard normal CDF, or its tanh approximation with approximate='tanh'."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return ops.GELU.apply(input, approximate=approximate)


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + e^(βx)) / β, and x itself where βx > threshold (as PyTorch)."""
    scaled = input * beta
    soft = (scaled.clamp(max=threshold).exp() + 1).log() * (1.0 / beta)
    return where(scaled > threshold, input, soft)


def dropout(x, p=0.5, training=True):
    """Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    keep = backend.generator(x.device).random(x.shape, dtype=x.dtype) >= p
    return ops.Dropout.apply(x, mask=keep * x.dtype.type(1 / (1 - p)))


def dropout2d(x, p=0.5, training=True):
    """Zero whole channels of (N, C, H, W) with probability p and scale the rest by 1/(1-p)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout2d: p must be in [0, 1), got {p}")
    if x.ndim not in (3, 4):
        raise ValueError(f"dropout2d: expected (N, C, H, W) or (C, H, W), got shape {x.shape}")
    if not training or p == 0.0:
        return x
    shape = x.shape[:-2] + (1, 1)
    keep = backend.generator(x.device).random(shape, dtype=x.dtype) >= p
    return ops.Dropout.apply(x, mask=keep * x.dtype.type(1 / (1 - p)))


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Batch normalisation over axis 1 of (N, C, ...) inputs: (N, C), (N, C, L), (N, C, H, W), ...

    In training the batch's statistics normalise and update the running ones in place
    (running ← (1-momentum)·running + momentum·batch, the variance unbiased, as PyTorch does).
    """
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected (N, C, ...) with channels on axis 1, got shape {x.shape}")
    count = x.array.size // x.shape[1]
    data = lambda t: t.array if isinstance(t, Tensor) else t
    if training:
        if count < 2:
            raise ValueError(f"batch_norm: training needs more than one value per channel, got shape {x.shape}")
        mean = var = None  # the op computes them from the batch, into `stats`
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: evaluation mode needs running_mean and running_var")
        mean, var = data(running_mean), data(running_var)
    if (weight is None) != (bias is None):  # the op takes both or neither: stand in the identity for the other
        xp = backend.get_array_module(x.array)
        weight = weight if weight is not None else Tensor._wrap(xp.ones(x.shape[1], x.dtype))
        bias = bias if bias is not None else Tensor._wrap(xp.zeros(x.shape[1], x.dtype))
    affine = [weight, bias] if weight is not None else []
    stats = {}
    out = ops.BatchNorm.apply(x, *affine, mean=mean, var=var, eps=eps, batch_stats=training, stats=stats)
    if training:
        with no_grad():
            if running_mean is not None:
                rm = data(running_mean)
                rm *= 1 - momentum
                rm += momentum * stats["mean"]
            if running_var is not None:
                rv = data(running_var)
                rv *= 1 - momentum
                rv += momentum * stats["var"] * (count / (count - 1))
    return out


def one_hot(tensor, num_classes=-1):
    """(*, num_classes) int64 rows with a 1 at each class index of the int64 `tensor`, as
    torch.nn.functional.one_hot; num_classes=-1 takes the largest index + 1."""
    labels = tensor.array
    if labels.dtype != "int64":
        raise TypeError(f"one_hot: the class indices must be an int64 tensor, these are {labels.dtype}: "
                        f"convert them with .long()")
    if num_classes == -1:
        if labels.size == 0:
            raise ValueError("one_hot: cannot infer the number of classes from an empty tensor: give num_classes")
        num_classes = int(labels.max()) + 1
    if labels.size and int(labels.min()) < 0:
        raise ValueError(f"one_hot: class indices must be non-negative, got {int(labels.min())}")
    if labels.size and int(labels.max()) >= num_classes:
        raise ValueError(f"one_hot: class index {int(labels.max())} is not smaller than num_classes={num_classes}")
    xp = backend.get_array_module(labels)
    return Tensor._wrap((labels[..., None] == xp.arange(num_classes)).astype("int64"))


def _target(input, target):
    """target as a Tensor of input's dtype and device (a NumPy array or a list is accepted too)."""
    return target if isinstance(target, Tensor) else Tensor(target, dtype=input.dtype, device=input.device)


def _same_size(name, input, target):
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"{name}: target size {tuple(target.shape)} differs from input size {tuple(input.shape)}; "
                         "give a target of the input's shape")


def _weighted(name, losses, weight):
    """losses · weight, the weight broadcast to the losses' shape (and not beyond it)."""
    if weight is None:
        return losses
    weight = _target(losses, weight)
    if np.broadcast_shapes(weight.shape, losses.shape) != losses.shape:
        raise ValueError(f"{name}: weight of shape {tuple(weight.shape)} does not broadcast to the losses' shape "
                         f"{tuple(losses.shape)}")
    return losses * weight


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """-w (y ln x + (1-y) ln(1-x)) for probabilities x and targets y in [0, 1] of one shape, each log clamped
    at -100 (as PyTorch, so x = 0 or 1 gives a finite loss), averaged, summed or per element."""
    target = _target(input, target)
    _same_size("binary_cross_entropy", input, target)
    for name, t in (("input", input), ("target", target)):
        if not bool(((t.array >= 0) & (t.array <= 1)).all()):
            raise RuntimeError(f"binary_cross_entropy: all elements of {name} should be between 0 and 1; for "
                               "logits use binary_cross_entropy_with_logits")
    return _reduce("binary_cross_entropy", _weighted("binary_cross_entropy", ops.BinaryCrossEntropy.apply(
        input, target), weight), reduction)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """The transposed convolution of input (N, C_in, H, W) with weight (C_in, C_out/groups, kh, kw), as
    torch.nn.functional.conv_transpose2d: the gradient of conv2d with respect to its input, an output of
    (H-1)·stride - 2·padding + dilation·(kh-1) + output_padding + 1 rows (and so for the columns);
    stride, padding, output_padding and dilation an int or a (rows, columns) pair."""
    x = input
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"conv_transpose2d: expected input (N, C_in, H, W) and weight (C_in, C_out/groups, kh, kw), "
                         f"got {tuple(x.shape)} and {tuple(weight.shape)}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"conv_transpose2d: groups must be a positive integer, got {groups!r}")
    if isinstance(padding, str):
        raise ValueError(f"conv_transpose2d: padding={padding!r}: give the padding as numbers (PyTorch takes no "
                         "string here either)")
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    output_padding, dilation = _pair(output_padding, "output_padding"), _pair(dilation, "dilation")
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0 or min(output_padding) < 0:
        raise ValueError(f"conv_transpose2d: stride and dilation must be >= 1 and padding and output_padding >= 0, "
                         f"got stride={stride} dilation={dilation} padding={padding} output_padding={output_padding}")
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= s and op >= d:
            raise ValueError(f"conv_transpose2d: output padding must be smaller than either stride or dilation, got "
                             f"output_padding={output_padding} stride={stride} dilation={dilation}")
    c_in, per_group, kh, kw = weight.shape
    if x.shape[1] != c_in:
        raise ValueError(f"conv_transpose2d: weight {tuple(weight.shape)} expects input with {c_in} channels, but got "
                         f"{x.shape[1]} channels (input {tuple(x.shape)})")
    if c_in % groups:
        raise ValueError(f"conv_transpose2d: given groups={groups}, expected weight {tuple(weight.shape)} to have a "
                         f"number of input channels divisible by {groups}")
    c_out = per_group * groups
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"conv_transpose2d: bias of shape {tuple(bias.shape)} for {c_out} output channels: "
                         f"expected ({c_out},)")
    size = [(side - 1) * s - 2 * p + d * (k - 1) + op + 1
            for side, s, p, d, k, op in zip(x.shape[2:], stride, padding, dilation, (kh, kw), output_padding)]
    if min(size) < 1:
        raise ValueError(f"conv_transpose2d: the output would be {size[0]}x{size[1]} for input {tuple(x.shape)}: "
                         "lower the padding")
    biases = [bias] if bias is not None else []
    return ops.ConvTranspose2d.apply(x, weight, *biases, stride=stride, padding=padding, output_padding=output_padding,
                                     dilation=dilation, groups=groups)


def logsigmoid(input):
    """ln σ(x) = min(x, 0) - ln(1 + e^-|x|): no exponential of a positive number, so it never overflows;
    its gradient is σ(-x) everywhere (at 0 the minimum's tie gives ½, and |x| gives 0)."""
    return minimum(input, 0.0) - ((-input.abs()).exp() + 1).log()


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    """binary_cross_entropy(sigmoid(x), y) in the stable form (1-y) x - (1 + (p-1) y) ln σ(x), with p the
    pos_weight (broadcast along the last axis: one per class) or 1; the gradient is σ(x)(1 + (p-1)y) - p y."""
    target = _target(input, target)
    _same_size("binary_cross_entropy_with_logits", input, target)
    log_p = logsigmoid(input)
    if pos_weight is None:
        losses = (1 - target) * input - log_p
    else:
        losses = (1 - target) * input - ((_target(input, pos_weight) - 1) * target + 1) * log_p
    return _reduce("binary_cross_entropy_with_logits", _weighted("binary_cross_entropy_with_logits", losses, weight),
                   reduction)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """½ d² / β where |d| < β, else |d| - ½ β, for d = input - target; β = 0 is l1_loss (as PyTorch)."""
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    if beta == 0:
        return l1_loss(input, target, reduction)
    d = input - target
    size = d.abs()
    return _reduce("smooth_l1_loss", where(size < beta, d * d * (0.5 / beta), size - 0.5 * beta), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """½ d² where |d| < δ, else δ (|d| - ½ δ), for d = input - target: smooth_l1_loss with β = δ, times δ;
    `weight` (the input's shape) scales each element before the reduction."""
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    if weight is not None and tuple(weight.shape) != tuple(input.shape):
        raise ValueError(f"huber_loss: weight of shape {tuple(weight.shape)} must have the input's shape "
                         f"{tuple(input.shape)}")
    d = input - target
    size = d.abs()
    losses = where(size < delta, d * d * 0.5, (size - 0.5 * delta) * delta)
    return _reduce("huber_loss", _weighted("huber_loss", losses, weight), reduction)


def _xlogy(x, y):
    """x ln y, and 0 where x = 0 (also where y = 0 there, as torch.xlogy)."""
    zero = x.array == 0
    return where(zero, 0.0, x * where(zero, 1.0, y).log())


def kl_div(input, target, reduction="mean", log_target=False):
    """Σ y (ln y - x) for log-probabilities x and probabilities y (log-probabilities with log_target), 0 where
    y = 0. As PyTorch: 'mean' divides by the number of elements (and warns), 'batchmean' by the batch size
    (the KL divergence per sample), 'sum' and 'none' as in the other losses."""
    if reduction not in REDUCTIONS + ("batchmean",):
        raise ValueError(f"kl_div: reduction must be one of {', '.join(map(repr, REDUCTIONS + ('batchmean',)))}, "
                         f"got {reduction!r}")
    target = _target(input, target)
    losses = target.exp() * (target - input) if log_target else _xlogy(target, target) - target * input
    if reduction == "batchmean":
        return losses.sum() / input.shape[0] if input.ndim else losses.sum()
    if reduction == "mean":
        warnings.warn("kl_div: reduction='mean' divides the total loss by both the batch size and the support size; "
                      "'batchmean' divides only by the batch size, as the KL divergence's definition does",
                      UserWarning, stacklevel=2)
    return _reduce("kl_div", losses, reduction)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """x limited to [min_val, max_val]; the gradient is 1 strictly inside and 0 from each bound on, as
    PyTorch's (clamp passes it at the bounds)."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})")
    return where(input.array <= min_val, min_val, where(input.array >= max_val, max_val, input))


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0)


SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def selu(input, inplace=False):
    """scale · elu(x, α) with Klambauer et al.'s α and scale (the self-normalising ones)."""
    return elu(input, SELU_ALPHA) * SELU_SCALE


def celu(input, alpha=1.0, inplace=False):
    """x for x > 0, else α(e^(x/α) - 1): elu with a slope of 1 at 0 whatever α."""
    if alpha == 0:
        raise ValueError("celu: alpha must not be 0 (it divides x)")
    return where(input > 0, input, ((input.clamp(max=0) * (1.0 / alpha)).exp() - 1) * alpha)


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    """softmax(-x) along dim."""
    return softmax(-input, dim, dtype)


def mish(input, inplace=False):
    """x tanh(softplus(x)) (Misra, 2019)."""
    return input * softplus(input).tanh()


def hardswish(input, inplace=False):
    """0 up to -3, x (x + 3) / 6 between, x from 3 on; at -3 and 3 the gradient is that of the outer pieces
    (0 and 1), as PyTorch's."""
    return where(input.array <= -3, 0.0, where(input.array >= 3, input, input * (input + 3) / 6))


def softsign(input):
    return input / (input.abs() + 1)


def prelu(input, weight):
    """x for x > 0, else a·x, with one learnt slope a, or one per channel (axis 1)."""
    if weight.numel() == 1:
        return where(input > 0, input, input * weight.reshape(()))
    channels = input.shape[1] if input.ndim > 1 else 1
    if weight.ndim != 1 or weight.shape[0] != channels:
        raise ValueError(f"prelu: {weight.numel()} parameters for an input of {channels} channels "
                         f"(shape {tuple(input.shape)}): give 1 or one per channel")
    return where(input > 0, input, input * weight.reshape((1, channels) + (1,) * (input.ndim - 2)))


INTERPOLATE_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "area")


def _interpolate_sizes(input, size, scale_factor, recompute_scale_factor):
    """(output sizes, scale factors or None per axis) as torch.nn.functional.interpolate settles them."""
    dims = input.ndim - 2
    if size is not None and scale_factor is not None:
        raise ValueError("interpolate: only one of size or scale_factor should be defined")
    if size is None and scale_factor is None:
        raise ValueError("interpolate: either size or scale_factor should be defined")
    if size is not None:
        if recompute_scale_factor:
            raise ValueError("interpolate: recompute_scale_factor is not meaningful with an explicit size")
        sizes = tuple(size) if isinstance(size, (tuple, list)) else (size,) * dims
        if len(sizes) != dims:
            raise ValueError(f"interpolate: size {size} for an input with {dims} spatial dimensions {input.shape[2:]}")
        return tuple(int(s) for s in sizes), (None,) * dims
    factors = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * dims
    if len(factors) != dims:
        raise ValueError(f"interpolate: scale_factor {scale_factor} for an input with {dims} spatial dimensions "
                         f"{input.shape[2:]}")
    sizes = tuple(int(math.floor(float(n) * float(f))) for n, f in zip(input.shape[2:], factors))
    return sizes, ((None,) * dims if recompute_scale_factor else tuple(float(f) for f in factors))


def _inverse_scale(dtype, side, out, factor):
    """PyTorch's source-per-output-pixel step in `dtype`: 1 / scale_factor when one was given, else in / out."""
    return dtype(1.0 / factor) if factor is not None and factor > 0 else dtype(side) / dtype(out)


def _along(x, axis, index):
    """x[..., index, ...] on `axis`: an integer gather whose gradient adds back into the rows it read."""
    return x[(slice(None),) * axis + (index,)]


def _nearest(x, axis, out, factor, exact):
    """Nearest neighbours along one axis by PyTorch's rule, in float32: source floor(i · scale), or
    floor((i + ½) · scale) for 'nearest-exact'; 2-D 'nearest' takes i itself, or i // 2, where the output is
    as long as the input or twice as long, as PyTorch's 2-D kernel does. A whole-number enlargement is a
    broadcast, not a gather."""
    side = x.shape[axis]
    i = np.arange(out)
    scale = np.float32(_inverse_scale(x.dtype.type, side, out, factor))
    if exact:
        source = np.floor(((i + 0.5) * np.float64(scale)).astype(np.float32))  # floorf of a double, as PyTorch's
    elif x.ndim == 4 and out in (side, 2 * side):
        source = i * side // out
    else:
        source = np.floor(i.astype(np.float32) * scale)
    source = np.minimum(source.astype(np.int64), side - 1)
    if out == side and np.array_equal(source, i):
        return x
    if out % side == 0 and np.array_equal(source, i // (out // side)):
        k = out // side
        shape = x.shape[:axis + 1] + (1,) + x.shape[axis + 1:]
        wide = shape[:axis + 1] + (k,) + shape[axis + 2:]
        return x.reshape(shape).expand(*wide).reshape(x.shape[:axis] + (out,) + x.shape[axis + 1:])
    return _along(x, axis, backend.get_array_module(x.array).asarray(source))


def _linear(x, axis, out, factor, align_corners):
    """Linear interpolation along one axis by PyTorch's rule: source (i + ½)·scale - ½ (at least 0), or
    i·(in-1)/(out-1) with align_corners; the two neighbours weighted by the distance, in x's dtype."""
    side = x.shape[axis]
    if out == side:
        return x
    dtype = x.dtype.type
    i = np.arange(out)
    if align_corners:
        scale = dtype(side - 1) / dtype(out - 1) if out > 1 else dtype(0)
        real = scale * i.astype(dtype)
    else:
        scale = _inverse_scale(dtype, side, out, factor)
        real = np.maximum(scale * (i.astype(dtype) + dtype(0.5)) - dtype(0.5), dtype(0))
    lower = np.minimum(np.floor(real.astype(np.float32)).astype(np.int64), side - 1)  # floorf, as PyTorch's
    upper = lower + (lower < side - 1)
    right = np.clip(real - lower.astype(dtype), dtype(0), dtype(1))
    xp = backend.get_array_module(x.array)
    column = (-1,) + (1,) * (x.ndim - axis - 1)
    right = Tensor._wrap(xp.asarray(right.reshape(column)))
    return _along(x, axis, xp.asarray(lower)) * (1 - right) + _along(x, axis, xp.asarray(upper)) * right


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                antialias=False):
    """input (N, C, d1, ...) resized to `size`, or scaled by `scale_factor`, as torch.nn.functional.interpolate:
    'nearest' and 'nearest-exact' (any number of spatial axes), 'linear' (3-D) and 'bilinear' (4-D) with
    align_corners, 'area' (4-D: adaptive_avg_pool2d). Each axis is resized in turn, from gathers, broadcasts
    and weighted sums, so the gradient comes from their VJPs."""
    if mode not in INTERPOLATE_MODES:
        raise ValueError(f"interpolate: mode={mode!r} is not supported; use one of "
                         f"{', '.join(map(repr, INTERPOLATE_MODES))} (see docs/FROM_PYTORCH.md)")
    if input.ndim not in (3, 4, 5):
        raise ValueError(f"interpolate: expected a 3-D, 4-D or 5-D input (N, C, d1, ...), got shape "
                         f"{tuple(input.shape)}")
    if mode in ("nearest", "nearest-exact", "area") and align_corners is not None:
        raise ValueError("interpolate: align_corners option can only be set with the interpolating modes: linear | "
                         "bilinear")
    if antialias:
        raise ValueError("interpolate: antialias=True is not supported; leave it False")
    wanted = {"linear": 3, "bilinear": 4, "area": 4}.get(mode)
    if wanted is not None and input.ndim != wanted:
        raise ValueError(f"interpolate: mode={mode!r} needs a {wanted}-D input, got {input.ndim}-D "
                         f"{tuple(input.shape)}" + (" (1-D and 3-D area pooling are not supported)"
                                                    if mode == "area" else ""))
    recompute = recompute_scale_factor or (mode == "area" and size is None)  # area pools to whole sizes
    sizes, factors = _interpolate_sizes(input, size, scale_factor, recompute)
    if min(sizes) < 1:
        raise ValueError(f"interpolate: the output size {sizes} must be positive")
    if mode == "area":
        return adaptive_avg_pool2d(input, sizes)
    x = input
    for axis, (out, factor) in enumerate(zip(sizes, factors), start=2):
        if mode in ("nearest", "nearest-exact"):
            x = _nearest(x, axis, out, factor, mode == "nearest-exact")
        else:
            x = _linear(x, axis, out, factor, bool(align_corners))
    return x


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False, sparse=False):
    """The rows of weight (num_embeddings, embedding_dim) that the integer indices pick; the row
    padding_idx gets no gradient."""
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise ValueError("embedding: max_norm, scale_grad_by_freq and sparse are not supported; leave them at their "
                         "defaults")
    xp = backend.get_array_module(weight.array)
    index = xp.asarray(input.array if isinstance(input, Tensor) else input)
    if index.dtype.kind not in "iu":
        raise ValueError(f"embedding: expected integer indices (a long tensor), got {index.dtype}")
    rows = weight.shape[0]
    if index.size and (int(index.min()) < 0 or int(index.max()) >= rows):
        raise IndexError(f"embedding: indices must lie in [0, {rows}), got {int(index.min())}..{int(index.max())}")
    picked = weight[index]
    if padding_idx is None:
        return picked
    if not -rows <= padding_idx < rows:
        raise ValueError(f"embedding: padding_idx must be within the {rows} embeddings, got {padding_idx}")
    keep = (index != padding_idx % rows)[..., None]
    return where(keep, picked, picked.detach())


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """x / max(‖x‖_p, eps) along dim."""
    if out is not None:
        raise ValueError("normalize: out= is not supported; use the returned tensor")
    if not p > 0:
        raise ValueError(f"normalize: the p-norm needs p > 0 (or inf), got p={p}")
    return input / input.norm(p, dim, keepdim=True).clamp(min=eps)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """Σ (x1 / ‖x1‖)(x2 / ‖x2‖) along dim of the broadcast inputs, each norm raised to at least eps. As in
    PyTorch, that floor changes the value and not the gradient (it is applied outside the tape)."""
    shape = np.broadcast_shapes(x1.shape, x2.shape)
    x1, x2 = (x if x.shape == shape else x.expand(*shape) for x in (x1, x2))
    n1, n2 = (x.norm(2, dim, keepdim=True) for x in (x1, x2))
    n1, n2 = (n + (n.clamp(min=eps) - n).detach() for n in (n1, n2))
    return ((x1 / n1) * (x2 / n2)).sum(dim)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """(x - mean) / √(var + ε) over each sample's groups of channels (biased variance), then weight and bias per
    channel, as torch.nn.functional.group_norm."""
    if input.ndim < 2:
        raise ValueError(f"group_norm: expected an input (N, C, ...), got shape {tuple(input.shape)}")
    n, c = input.shape[:2]
    if c % num_groups:
        raise ValueError(f"group_norm: expected the number of channels {c} to be divisible by num_groups={num_groups}")
    x = input.reshape(n, num_groups, -1)
    centred = x - x.mean(dim=2, keepdim=True)
    out = (centred * ((centred * centred).mean(dim=2, keepdim=True) + eps).rsqrt()).reshape(input.shape)
    channel = (1, c) + (1,) * (input.ndim - 2)
    if weight is not None:
        out = out * weight.reshape(channel)
    return out + bias.reshape(channel) if bias is not None else out
