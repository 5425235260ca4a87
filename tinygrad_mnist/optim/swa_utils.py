"""Averages of a model's weights over training, with torch.optim.swa_utils' names and update rules.

    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999), use_buffers=True)
    for xb, yb in loader:
        update(loss_of(model(xb), yb), optimizer)
        ema.update_parameters(model)
    evaluate(ema.module)  # or ema(x): it calls the averaged copy

The first update copies the model; each later one moves every average towards the model's value by
1 - decay (an exponential moving average, EMA) or, without an averaging function, keeps the plain
mean of all updates (stochastic weight averaging, SWA). With use_buffers=True the buffers (batch
norm's running statistics) are averaged too, so the averaged copy needs no pass to recompute them;
with use_buffers=False they are copied from the model at every update, as in PyTorch.
One deliberate difference: integer buffers (num_batches_tracked) are always copied, never averaged,
since an averaged counter means nothing; PyTorch truncates a float average of them.
"""
import copy
import itertools

import numpy as np

from .. import backend
from ..nn import Module
from ..tensor import Tensor


def _check_decay(decay):
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"EMA decay must be in [0, 1], got {decay} (0.999 averages about the last 1000 steps)")


def get_ema_multi_avg_fn(decay=0.999):
    """An in-place update of lists of averages towards lists of current values: a ← a + (1 - decay)(c - a)."""
    _check_decay(decay)

    def ema_update(averaged, current, num_averaged):
        for a, c in zip(averaged, current):
            a.array += a.array.dtype.type(1 - decay) * (c.array - a.array)
    return ema_update


def get_ema_avg_fn(decay=0.999):
    """The new average of one tensor, as an array: decay · a + (1 - decay) · c."""
    _check_decay(decay)

    def ema_update(averaged, current, num_averaged):
        return averaged.array + averaged.array.dtype.type(1 - decay) * (current.array - averaged.array)
    return ema_update


def get_swa_avg_fn():
    """The new running mean of one tensor after `num_averaged` earlier values: a + (c - a) / (n + 1)."""
    def swa_update(averaged, current, num_averaged):
        return averaged.array + (current.array - averaged.array) / averaged.array.dtype.type(int(num_averaged) + 1)
    return swa_update


class AveragedModel(Module):
    """A copy of `model` (`self.module`) whose parameters (and, with use_buffers, buffers) hold an
    average of the model's over the calls to `update_parameters`. Calling it calls the copy.

    Its state_dict holds `n_averaged` and the copy's state under `module.`, as PyTorch's does, so
    it goes into checkpoints and comes back bit for bit with load_state_dict.
    """

    def __init__(self, model, device=None, avg_fn=None, multi_avg_fn=None, use_buffers=False):
        super().__init__()
        if avg_fn is not None and multi_avg_fn is not None:
            raise ValueError("AveragedModel: pass avg_fn or multi_avg_fn, not both")
        self.module = copy.deepcopy(model)
        for p in self.module.parameters():
            p.grad = None
        if device is not None:
            self.module.to(device)
        self.register_buffer("n_averaged", Tensor(np.array(0, dtype=np.int64), requires_grad=False))
        self.avg_fn, self.multi_avg_fn, self.use_buffers = avg_fn, multi_avg_fn, use_buffers

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def _tensors(self, model):
        tensors = model.parameters()
        return list(itertools.chain(tensors, model.buffers()) if self.use_buffers else tensors)

    def update_parameters(self, model):
        """Fold the model's current values into the averages."""
        mine, theirs = self._tensors(self.module), self._tensors(model)
        if len(mine) != len(theirs) or any(a.shape != c.shape for a, c in zip(mine, theirs)):
            raise ValueError("AveragedModel.update_parameters: the model's parameters do not match the "
                             "averaged copy's; pass the model this AveragedModel was made from")
        theirs = [Tensor(backend.to_device(c.array, a.device), requires_grad=False) if c.device != a.device else c
                  for a, c in zip(mine, theirs)]
        n = int(self.n_averaged.item())
        floats = [(a, c) for a, c in zip(mine, theirs) if a.dtype.kind == "f"]
        for a, c in zip(mine, theirs):
            if n == 0 or a.dtype.kind != "f":
                a.array[...] = c.array
        if n > 0 and floats:
            if self.multi_avg_fn is not None:
                self.multi_avg_fn([a for a, _ in floats], [c for _, c in floats], n)
            else:
                avg_fn = self.avg_fn or get_swa_avg_fn()  # without either, the plain mean (SWA)
                for a, c in floats:
                    a.array[...] = avg_fn(a, c, n)
        if not self.use_buffers:  # the buffers follow the model, as in PyTorch
            for a, c in zip(self.module.buffers(), model.buffers()):
                a.array[...] = backend.to_device(c.array, a.device)
        self.n_averaged.array[...] = n + 1
