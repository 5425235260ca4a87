"""torch.autograd: gradients returned as values (`grad`), and the grad-mode switches under their
torch.autograd names. The walk of the graph is backward()'s own (`tensor.backpropagate`)."""
from . import backend
from .tensor import (Tensor, backpropagate, enable_grad, inference_mode, initial_gradient, no_grad,  # noqa: F401
                     set_grad_enabled)

__all__ = ["grad", "no_grad", "enable_grad", "set_grad_enabled", "inference_mode"]


def _sequence(tensors):
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, only_inputs=True,
         allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """The gradients of Σ_k <grad_outputs[k], outputs[k]> with respect to each of `inputs` (leaves or
    intermediate tensors), as a tuple, as torch.autograd.grad returns them. No leaf's `.grad` changes
    (only those of non-leaves that called retain_grad(), as in PyTorch). `grad_outputs` may be left out
    (or None) for scalar outputs. The graph is freed afterwards unless `retain_graph`. An input the
    outputs do not depend on raises, unless `allow_unused` (then its gradient is None) or
    `materialize_grads` (zeros). `only_inputs` is ignored, as in PyTorch."""
    if create_graph:
        raise NotImplementedError("autograd.grad(create_graph=True): the engine's VJPs compute on arrays and record "
                                  "nothing, so there are no higher-order gradients; leave create_graph=False")
    if is_grads_batched:
        raise NotImplementedError("autograd.grad(is_grads_batched=True) is not supported: call grad once per "
                                  "gradient, with retain_graph=True")
    if allow_unused is None:
        allow_unused = materialize_grads
    outputs, inputs = _sequence(outputs), _sequence(inputs)
    grad_outputs = [None] * len(outputs) if grad_outputs is None else _sequence(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"autograd.grad: {len(grad_outputs)} grad_outputs for {len(outputs)} outputs: give one "
                         f"per output (None for a scalar one)")
    for k, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"autograd.grad: input {k} does not require grad, so it has no gradient: "
                               f"make it with requires_grad=True")
    for k, t in enumerate(outputs):
        if not t.requires_grad:
            raise RuntimeError(f"autograd.grad: output {k} does not require grad: no input of its expression has "
                               f"requires_grad=True (or it ran under no_grad)")
    seeds = [initial_gradient(t, g, "autograd.grad", f"grad_outputs[{k}]")
             for k, (t, g) in enumerate(zip(outputs, grad_outputs))]
    wanted, found = {id(t) for t in inputs}, {}

    def receive(t, g):
        if id(t) in wanted:
            found[id(t)] = g

    backpropagate(outputs, seeds, bool(retain_graph), receive)
    result = []
    for k, t in enumerate(inputs):
        g = found.get(id(t))
        if g is None and materialize_grads:
            g = backend.get_array_module(t.array).zeros(t.shape, dtype=t.dtype)
        if g is None and not allow_unused:
            raise RuntimeError(f"autograd.grad: input {k} was not used to compute the outputs; pass "
                               f"allow_unused=True to get None as its gradient")
        result.append(None if g is None else Tensor._wrap(g.astype(t.dtype, copy=True)))  # a copy it owns
    return tuple(result)
