"""Optimizers, with PyTorch's names and update rules.

Optimizers update `p.array` in place from `p.grad.array` with array code (NumPy or CuPy, whichever holds the
parameter) and record nothing on the tape. Each update reuses per-optimizer scratch arrays instead of
allocating temporaries, and keeps the parameter's dtype.
"""
import math

import numpy as np

from .. import backend
from ..backend import get_array_module
from ..tensor import Tensor


def _check(condition, message):
    if not condition:
        raise ValueError(message)


def _plain(value):
    """A hyper-parameter or state scalar as a Python number (tuples as lists): 0-d arrays come back
    from .npz checkpoints and become numbers again here."""
    if isinstance(value, (np.ndarray, np.generic)):
        value = value.tolist()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


class Optimizer:
    """Base class: `param_groups` is a list of dicts holding "params" and the hyper-parameters (a
    scheduler sets group["lr"]); `state` maps each parameter to its own arrays. Subclasses define
    `_check_group(group)` and `_update(p, grad, state, group)`."""

    scalar_state = ("step",)  # state entries that are numbers; every other entry is an array shaped like p

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}
        self._scratch = {}
        params = [params] if isinstance(params, Tensor) else list(params)
        _check(params, f"{type(self).__name__}: got an empty parameter list (was model.parameters() "
                       "already consumed, or does the model register no Parameters?)")
        for group in (params if isinstance(params[0], dict) else [{"params": params}]):
            self.add_param_group(group)

    def add_param_group(self, group):
        group = dict(group)
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        _check(params, f"{type(self).__name__}: a parameter group has an empty parameter list")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in params:
            if not isinstance(p, Tensor) or p.dtype.kind != "f":
                raise TypeError(f"{type(self).__name__}: parameters must be floating-point Tensors, got "
                                f"{type(p).__name__} {getattr(p, 'dtype', '')}")
            _check(id(p) not in seen, f"{type(self).__name__}: a parameter appears twice")
            seen.add(id(p))
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_group(group)
        group["params"] = params
        self.param_groups.append(group)

    def _check_group(self, group):
        _check(group["lr"] > 0, f"{type(self).__name__}: lr must be positive, got {group['lr']}")
        for key in ("weight_decay", "momentum", "eps", "dampening", "alpha", "lr_decay"):
            if key in group:
                _check(group[key] >= 0, f"{type(self).__name__}: {key} must be >= 0, got {group[key]}")

    def zero_grad(self, set_to_none=True):
        """Set every parameter's .grad to None (PyTorch's default), or to zeros with set_to_none=False."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad.zero_()

    def step(self, closure=None):
        """Update every parameter that has a gradient; parameters whose .grad is None are skipped."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p.array, p.grad.array, self.state.setdefault(p, {}), group)
                    p._version[0] += 1  # as PyTorch's in-place update: a graph that saved p now refuses backward
        return loss

    def _update(self, p, grad, state, group):
        raise NotImplementedError

    def _tmp(self, like, slot=0):
        """Scratch space shaped like `like`, reused across parameters and steps."""
        key = (slot, like.dtype, backend.device_of(like))
        buf = self._scratch.get(key)
        if buf is None or buf.size < like.size:
            buf = self._scratch[key] = get_array_module(like).empty(like.size, dtype=like.dtype)
        return buf[:like.size].reshape(like.shape)

    def _with_weight_decay(self, p, grad, wd):
        """grad + wd·p, in scratch slot 1 (the gradient itself is left untouched)."""
        if not wd:
            return grad
        g = get_array_module(p).multiply(p, wd, out=self._tmp(p, 1))
        g += grad
        return g

    def _params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self):
        """{"state": {"<index>": {name: NumPy array or number}}, "param_groups": {"<i>": {hyper-parameter:
        number or list, "params": [indices]}}}: parameters are numbered across groups in order. Only str
        keys, arrays and numbers, so a checkpoint can be flattened into an .npz without pickle."""
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {str(index[id(p)]): {k: (np.array(backend.to_numpy(v), copy=True) if k not in self.scalar_state
                                         else _plain(v)) for k, v in s.items()}
                 for p, s in self.state.items()}
        groups = {str(i): {**{k: _plain(v) for k, v in g.items() if k != "params"},
                           "params": [index[id(p)] for p in g["params"]]}
                  for i, g in enumerate(self.param_groups)}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyper-parameters and state saved by `state_dict` into an optimizer built over the same
        parameters; arrays are copied onto each parameter's device and dtype."""
        saved = state_dict["param_groups"]
        saved = [saved[k] for k in sorted(saved, key=int)] if isinstance(saved, dict) else list(saved)
        _check(len(saved) == len(self.param_groups),
               f"optimizer state_dict has {len(saved)} parameter groups, this optimizer {len(self.param_groups)}")
        params = self._params()
        for i, (group, s) in enumerate(zip(self.param_groups, saved)):
            _check(len(_plain(s["params"])) == len(group["params"]),
                   f"optimizer state_dict group {i} has {len(_plain(s['params']))} parameters, this optimizer "
                   f"{len(group['params'])}")
        state = {}
        for key, entries in state_dict.get("state", {}).items():  # an .npz drops an empty "state"
            p = params[int(key)]
            state[p] = {}
            for name, value in entries.items():
                if name in self.scalar_state:
                    state[p][name] = _plain(value)
                    continue
                value = np.asarray(backend.to_numpy(value))
                _check(value.shape == p.shape, f"optimizer state {name!r} of parameter {key} has shape "
                                               f"{value.shape}, the parameter {p.shape}")
                state[p][name] = backend.to_device(np.array(value, dtype=p.dtype), p.device)
        for group, s in zip(self.param_groups, saved):
            for k, v in s.items():
                if k != "params":
                    v = _plain(v)
                    group[k] = tuple(v) if isinstance(v, list) else v
        self.state = state


class SGD(Optimizer):
    """Stochastic gradient descent, as torch.optim.SGD:
    g ← ∇ + λθ;  b ← μb + (1-τ)g (b = g at the first step);  g ← g + μb (nesterov) or b;
    θ ← θ - γg."""

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _check_group(self, group):
        super()._check_group(group)
        _check(not group["nesterov"] or (group["momentum"] > 0 and group["dampening"] == 0),
               "SGD: nesterov needs momentum > 0 and dampening = 0")

    def _update(self, p, grad, state, group):
        xp = get_array_module(p)
        mu, damp = group["momentum"], group["dampening"]
        d = self._with_weight_decay(p, grad, group["weight_decay"])
        if mu:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = d.copy()
            else:
                buf *= mu
                buf += d if damp == 0 else (1 - damp) * d
            if group["nesterov"]:
                nd = xp.multiply(buf, mu, out=self._tmp(p, 0))
                nd += d
                d = nd
            else:
                d = buf
        step = xp.multiply(d, group["lr"], out=self._tmp(p, 0))
        p -= step


class Adam(Optimizer):
    """Adam (Kingma & Ba), as torch.optim.Adam, with L2 weight decay added to the gradient:
    g ← ∇ + λθ;  m ← β₁m + (1-β₁)g;  v ← β₂v + (1-β₂)g²;
    θ ← θ - γ/(1-β₁ᵗ) · m / (√v / √(1-β₂ᵗ) + ε), with v the running maximum of v under amsgrad."""

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))

    def _check_group(self, group):
        super()._check_group(group)
        b1, b2 = group["betas"]
        _check(0 <= b1 < 1 and 0 <= b2 < 1, f"{type(self).__name__}: betas must lie in [0, 1), got {group['betas']}")

    def _update(self, p, grad, state, group):
        xp = get_array_module(p)
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            state.update(step=0, exp_avg=xp.zeros_like(p), exp_avg_sq=xp.zeros_like(p))
        state["step"] += 1
        t = state["step"]
        if self.decoupled:
            if wd:
                p *= 1 - lr * wd
            g = grad
        else:
            g = self._with_weight_decay(p, grad, wd)
        m, v, tmp = state["exp_avg"], state["exp_avg_sq"], self._tmp(p, 0)
        m *= b1
        m += xp.multiply(g, 1 - b1, out=tmp)
        v *= b2
        tmp = xp.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v += tmp
        if group["amsgrad"]:  # the largest second moment so far, so the step size never grows back
            v = state.setdefault("max_exp_avg_sq", xp.zeros_like(p))
            xp.maximum(v, state["exp_avg_sq"], out=v)
        denom = xp.sqrt(v, out=tmp)
        denom /= math.sqrt(1 - b2 ** t)
        denom += eps
        step = xp.divide(m, denom, out=denom)
        step *= lr / (1 - b1 ** t)
        p -= step


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW:
    θ ← θ(1 - γλ), then the Adam step on the plain gradient."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


class RMSprop(Optimizer):
    """RMSprop, as torch.optim.RMSprop:  g ← ∇ + λθ;  v ← αv + (1-α)g²;  (centered: ḡ ← αḡ + (1-α)g,
    v̂ = v - ḡ²);  d = g / (√v̂ + ε);  b ← μb + d, θ ← θ - γb  (or θ ← θ - γd without momentum)."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def _update(self, p, grad, state, group):
        xp = get_array_module(p)
        alpha, mu = group["alpha"], group["momentum"]
        if not state:
            state.update(step=0, square_avg=xp.zeros_like(p))
        state["step"] += 1
        g = self._with_weight_decay(p, grad, group["weight_decay"])
        sq, tmp = state["square_avg"], self._tmp(p, 0)
        sq *= alpha
        tmp = xp.multiply(g, g, out=tmp)
        tmp *= 1 - alpha
        sq += tmp
        if group["centered"]:
            avg = state.setdefault("grad_avg", xp.zeros_like(p))
            avg *= alpha
            avg += xp.multiply(g, 1 - alpha, out=tmp)
            denom = xp.multiply(avg, avg, out=tmp)
            xp.subtract(sq, denom, out=denom)
            xp.sqrt(denom, out=denom)
        else:
            denom = xp.sqrt(sq, out=tmp)
        denom += group["eps"]
        d = xp.divide(g, denom, out=denom)
        if mu > 0:
            buf = state.setdefault("momentum_buffer", xp.zeros_like(p))
            buf *= mu
            buf += d
            d = xp.multiply(buf, group["lr"], out=d)
        else:
            d *= group["lr"]
        p -= d


class Adagrad(Optimizer):
    """Adagrad, as torch.optim.Adagrad:  g ← ∇ + λθ;  γₜ = γ / (1 + (t-1)η);  s ← s + g²;
    θ ← θ - γₜ g / (√s + ε)."""

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps))

    def _check_group(self, group):
        super()._check_group(group)
        _check(group["initial_accumulator_value"] >= 0,
               f"Adagrad: initial_accumulator_value must be >= 0, got {group['initial_accumulator_value']}")

    def _update(self, p, grad, state, group):
        xp = get_array_module(p)
        if not state:
            state.update(step=0, sum=xp.full_like(p, group["initial_accumulator_value"]))
        state["step"] += 1
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        g = self._with_weight_decay(p, grad, group["weight_decay"])
        s, tmp = state["sum"], self._tmp(p, 0)
        s += xp.multiply(g, g, out=tmp)
        denom = xp.sqrt(s, out=tmp)
        denom += group["eps"]
        d = xp.divide(g, denom, out=denom)
        d *= clr
        p -= d


class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012), as torch.optim.Adadelta:  g ← ∇ + λθ;  v ← ρv + (1-ρ)g²;
    Δ = √(u + ε) / √(v + ε) · g;  u ← ρu + (1-ρ)Δ²;  θ ← θ - γΔ."""

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay))

    def _check_group(self, group):
        super()._check_group(group)
        _check(0 <= group["rho"] <= 1, f"Adadelta: rho must lie in [0, 1], got {group['rho']}")

    def _update(self, p, grad, state, group):
        xp = get_array_module(p)
        rho, eps = group["rho"], group["eps"]
        if not state:
            state.update(step=0, square_avg=xp.zeros_like(p), acc_delta=xp.zeros_like(p))
        state["step"] += 1
        g = self._with_weight_decay(p, grad, group["weight_decay"])
        v, u, tmp = state["square_avg"], state["acc_delta"], self._tmp(p, 0)
        v *= rho
        tmp = xp.multiply(g, g, out=tmp)
        tmp *= 1 - rho
        v += tmp
        delta = xp.add(u, eps, out=tmp)
        xp.sqrt(delta, out=delta)
        delta /= xp.sqrt(v + eps)
        delta *= g
        u *= rho
        u += (1 - rho) * delta * delta
        delta *= group["lr"]
        p -= delta

