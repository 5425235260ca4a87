"""Gradient checking: the tape's VJPs against central finite differences, in float64."""
import numpy as np

from . import backend
from .tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """An analytical gradient that disagrees with the numerical one."""


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-3, directions=None, seed=0):
    """Check the VJP of `fn` at `inputs` (Tensors; those with requires_grad are checked).

    With a random cotangent v, the analytical gradient of <v, fn(x)> from backward() is compared with
    central differences (f(x + eps) - f(x - eps)) / 2 eps, element by element; or, with
    `directions=k`, along k random directions d, comparing Σ grad·d with the directional difference,
    which costs 2k evaluations whatever the input size. An element passes when
    |analytical - numerical| <= atol + rtol·|numerical| (PyTorch's gradcheck rule and defaults).
    Returns True, or raises GradcheckError naming the worst element, both values and its index.
    """
    checked = [(k, t) for k, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    for k, t in checked:
        if t.dtype != np.float64:
            raise ValueError(f"gradcheck: input {k} is {t.dtype}; finite differences need float64 inputs")
    rng = np.random.default_rng(seed)
    out = fn(*inputs)
    xp = backend.get_array_module(out.array)
    v = xp.asarray(rng.standard_normal(out.shape))

    def objective():
        with no_grad():
            return float((fn(*inputs).array * v).sum())

    for _, t in checked:
        t.grad = None
    out.backward(v)
    analytical = [t.grad.numpy() if t.grad is not None else np.zeros(t.shape) for _, t in checked]

    if directions is None:
        for (k, t), a in zip(checked, analytical):
            numerical = np.zeros(t.shape)
            # Index the input itself, whatever its strides: reshape(-1) of a transposed array is a copy,
            # and perturbing a copy would leave the input, and so f, unchanged.
            for index in np.ndindex(*t.shape):
                original = float(t.array[index])
                t.array[index] = original + eps
                plus = objective()
                t.array[index] = original - eps
                minus = objective()
                t.array[index] = original
                numerical[index] = (plus - minus) / (2 * eps)
            _compare(a, numerical, atol, rtol, f"input {k}")
    else:
        for trial in range(directions):
            ds = [rng.standard_normal(t.shape) for _, t in checked]
            originals = [t.array.copy() for _, t in checked]
            values = []
            for sign in (1, -1):
                for (_, t), d, x0 in zip(checked, ds, originals):
                    t.array[...] = x0 + sign * eps * xp.asarray(d)
                values.append(objective())
            for (_, t), x0 in zip(checked, originals):
                t.array[...] = x0
            numerical = (values[0] - values[1]) / (2 * eps)
            predicted = sum(float((a * d).sum()) for a, d in zip(analytical, ds))
            _compare(np.array([predicted]), np.array([numerical]), atol, rtol, f"direction {trial}")
    return True


def _compare(analytical, numerical, atol, rtol, what):
    excess = np.abs(analytical - numerical) - (atol + rtol * np.abs(numerical))
    worst = np.unravel_index(np.argmax(excess), excess.shape) if excess.size else ()
    if excess.size and excess[worst] > 0:
        a, n = analytical[worst], numerical[worst]
        raise GradcheckError(f"gradcheck: {what} at index {tuple(int(i) for i in worst)}: analytical {a:.8g}, "
                             f"numerical {n:.8g}, |difference| {abs(a - n):.3g} > atol {atol} + rtol {rtol}·|numerical|")
