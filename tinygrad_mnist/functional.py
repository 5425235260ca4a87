"""The functional API (`import tinygrad_mnist.functional as F`): checks arguments, then applies ops."""
from . import backend, ops
from .tensor import Tensor, no_grad


def _square(value, name):
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise ValueError(f"{name}={value!r}: only square kernels, strides and paddings are supported")
        value = value[0]
    return int(value)


def relu(x): return x.relu()
def tanh(x): return x.tanh()
def sigmoid(x): return x.sigmoid()


def linear(x, weight, bias=None):
    """x @ weightᵀ + bias, with weight (out_features, in_features) as in PyTorch."""
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input has {x.shape[-1]} features, weight {tuple(weight.shape)} expects {weight.shape[1]}")
    return ops.Linear.apply(x, weight, *([bias] if bias is not None else []))


def conv2d(x, weight, bias=None, stride=1, padding=0):
    """2-D cross-correlation of x (N, C, H, W) with weight (O, C, kh, kw), zero padding, square stride."""
    stride, padding = _square(stride, "stride"), _square(padding, "padding")
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"conv2d: expected x (N, C, H, W) and weight (O, C, kh, kw), got {x.shape} and {weight.shape}")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"conv2d: input has {x.shape[1]} channels, weight {weight.shape} expects {weight.shape[1]}")
    if stride < 1 or padding < 0:
        raise ValueError(f"conv2d: stride must be >= 1 and padding >= 0, got stride={stride} padding={padding}")
    kh, kw = weight.shape[2:]
    if x.shape[2] + 2 * padding < kh or x.shape[3] + 2 * padding < kw:
        raise ValueError(f"conv2d: kernel {kh}x{kw} is larger than the padded input {x.shape[2:]} (padding {padding})")
    return ops.Conv2d.apply(x, weight, *([bias] if bias is not None else []), stride=stride, padding=padding)


def max_pool2d(x, kernel_size, stride=None):
    """Maximum over kernel_size² windows every `stride` (default kernel_size) pixels; rows and columns
    that do not fill a window are dropped. Where a window's maximum ties, its gradient is split evenly."""
    k = _square(kernel_size, "kernel_size")
    s = k if stride is None else _square(stride, "stride")
    if x.ndim != 4:
        raise ValueError(f"max_pool2d: expected x (N, C, H, W), got shape {x.shape}")
    if k < 1 or s < 1 or k > min(x.shape[2:]):
        raise ValueError(f"max_pool2d: kernel_size {k} and stride {s} do not fit an input of {x.shape[2:]}")
    return ops.MaxPool2d.apply(x, kernel_size=k, stride=s)


def log_softmax(x, axis=-1):
    return ops.LogSoftmax.apply(x, axis=axis)


def softmax(x, axis=-1):
    return log_softmax(x, axis).exp()


def cross_entropy(logits, labels, label_smoothing=0.0):
    """Mean cross-entropy of logits (N, K) against integer labels (N,), optionally label-smoothed."""
    xp = backend.get_array_module(logits.data)
    labels = labels.data if isinstance(labels, Tensor) else labels
    labels = xp.asarray(labels)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: expected logits (N, K), got shape {logits.shape}")
    if labels.shape != logits.shape[:1] or labels.dtype.kind not in "iu":
        raise ValueError(f"cross_entropy: expected integer labels of shape ({logits.shape[0]},), "
                         f"got {labels.dtype} {labels.shape}")
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= logits.shape[1]):
        raise ValueError(f"cross_entropy: labels must lie in [0, {logits.shape[1]}), got "
                         f"{int(labels.min())}..{int(labels.max())}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    return ops.CrossEntropy.apply(logits, labels=labels, label_smoothing=float(label_smoothing))


def dropout(x, p=0.5, training=True):
    """Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    keep = backend.generator(x.device).random(x.shape, dtype=x.dtype) >= p
    return ops.Dropout.apply(x, mask=keep * x.dtype.type(1 / (1 - p)))


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Batch normalisation over axis 1 of (N, C) or (N, C, H, W) inputs.

    In training the batch's statistics normalise and update the running ones in place
    (running ← (1-momentum)·running + momentum·batch, the variance unbiased, as PyTorch does).
    """
    if x.ndim not in (2, 4):
        raise ValueError(f"batch_norm: expected (N, C) or (N, C, H, W), got shape {x.shape}")
    axes = (0,) + tuple(range(2, x.ndim))
    count = x.data.size // x.shape[1]
    data = lambda t: t.data if isinstance(t, Tensor) else t
    if training:
        if count < 2:
            raise ValueError(f"batch_norm: training needs more than one value per channel, got shape {x.shape}")
        mean, var = x.data.mean(axis=axes), x.data.var(axis=axes)
        with no_grad():
            if running_mean is not None:
                rm = data(running_mean)
                rm *= 1 - momentum
                rm += momentum * mean
            if running_var is not None:
                rv = data(running_var)
                rv *= 1 - momentum
                rv += momentum * var * (count / (count - 1))
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: evaluation mode needs running_mean and running_var")
        mean, var = data(running_mean), data(running_var)
    if (weight is None) != (bias is None):  # the op takes both or neither: stand in the identity for the other
        xp = backend.get_array_module(x.data)
        weight = weight if weight is not None else Tensor._wrap(xp.ones(x.shape[1], x.dtype))
        bias = bias if bias is not None else Tensor._wrap(xp.zeros(x.shape[1], x.dtype))
    affine = [weight, bias] if weight is not None else []
    return ops.BatchNorm.apply(x, *affine, mean=mean, var=var, eps=eps, batch_stats=training)
