"""Optimizers, with PyTorch's names, signatures and update rules.

Optimizers update `p.array` in place from `p.grad.array` with array code (NumPy or CuPy, whichever holds the
parameter) and record nothing on the tape. Each update reuses per-optimizer scratch arrays instead of
allocating temporaries, and keeps the parameter's dtype.

PyTorch's implementation switches are accepted and change nothing, since there is one implementation:
`foreach` and `fused` (None, False or True; not both True, as in PyTorch) and `capturable` (for CUDA
graphs). `differentiable=True` is refused: it records the update for higher-order gradients.
"""
import math

import numpy as np

from .. import backend
from ..backend import get_array_module
from ..tensor import Tensor


def _check(condition, message):
    if not condition:
        raise ValueError(message)


def _new_step():
    """A parameter's step count: a float32 0-d array as PyTorch's step tensor, counted in place so that
    state_dict's tensor shares it; read it with float()."""
    return np.zeros((), np.float32)


def _keys_of(value):
    """A short description of what was passed: a dict's first keys, or its type."""
    return f"keys {list(value)[:3]}" if isinstance(value, dict) else f"a {type(value).__name__}"


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

    scalar_state = ("step",)  # state entries that are single numbers; every other entry is an array shaped like p

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
        name = type(self).__name__
        _check(group["lr"] > 0, f"{name}: lr must be positive, got {group['lr']}")
        for key in ("weight_decay", "momentum", "eps", "dampening", "alpha", "lr_decay"):
            if key in group:
                _check(group[key] >= 0, f"{name}: {key} must be >= 0, got {group[key]}")
        for key in ("maximize", "capturable", "differentiable", "decoupled_weight_decay"):
            if key in group:
                _check(isinstance(group[key], bool), f"{name}: {key} must be True or False, got {group[key]!r}")
        for key in ("foreach", "fused"):
            if key in group:
                _check(group[key] is None or isinstance(group[key], bool),
                       f"{name}: {key} must be None, False or True, got {group[key]!r}")
        if group.get("foreach") and group.get("fused"):
            raise RuntimeError(f"{name}: `fused` and `foreach` cannot be `True` together (as in PyTorch)")
        _check(not group.get("differentiable"), f"{name}: differentiable=True is not supported: it records the "
                                                "update for higher-order gradients, which the engine does not do")

    def zero_grad(self, set_to_none=True):
        """Set every parameter's .grad to None (PyTorch's default), or to zeros with set_to_none=False."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad.zero_()

    def step(self, closure=None):
        """Update every parameter that has a gradient; parameters whose .grad is None are skipped. With
        maximize=True the update climbs: it follows the negated gradient, as PyTorch's does."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    grad = p.grad.array
                    if group.get("maximize"):
                        grad = get_array_module(grad).negative(grad, out=self._tmp(grad, 2))
                    self._update(p.array, grad, self.state.setdefault(p, {}), group)
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
        """PyTorch's layout: {"state": {index: {name: Tensor}}, "param_groups": [{hyper-parameter: value,
        "params": [index, ...]}]}, the parameters numbered across groups in order. As in PyTorch, the state
        tensors share the optimizer's memory ("step" is a float32 0-d tensor): copy it to keep it."""
        index, groups = {}, []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: {k: Tensor._wrap(v) for k, v in s.items()} for p, s in self.state.items() if s}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyper-parameters and state saved by `state_dict` (PyTorch's layout, or this optimizer's
        former one: str keys and a dict of groups) into an optimizer built over parameters of the same
        shapes, group by group. Arrays are copied onto each parameter's device and dtype; everything is
        checked before anything changes."""
        if not isinstance(state_dict, dict) or "param_groups" not in state_dict:
            raise ValueError(f"{type(self).__name__}.load_state_dict expects an optimizer's state_dict (with "
                             f"'state' and 'param_groups'), got {_keys_of(state_dict)}")
        saved = state_dict["param_groups"]
        saved = [saved[k] for k in sorted(saved, key=int)] if isinstance(saved, dict) else list(saved)
        _check(len(saved) == len(self.param_groups),
               f"optimizer state_dict has {len(saved)} parameter groups, this optimizer {len(self.param_groups)}")
        owner, groups = {}, []
        for i, (group, s) in enumerate(zip(self.param_groups, saved)):
            ids = _plain(s["params"])
            _check(len(ids) == len(group["params"]), f"optimizer state_dict group {i} has {len(ids)} parameters, "
                                                     f"this optimizer {len(group['params'])}")
            owner.update(zip(ids, group["params"]))
            restored = {k: _plain(v) for k, v in s.items() if k != "params"}
            groups.append({**group, **{k: tuple(v) if isinstance(v, list) else v for k, v in restored.items()}})
            self._check_group(groups[-1])
        state = {}
        for key, entries in state_dict.get("state", {}).items():  # an .npz drops an empty "state"
            p = owner.get(int(key))
            _check(p is not None, f"optimizer state_dict has state for parameter {key!r}, which no group lists")
            state[p] = {name: self._state_value(p, key, name, value) for name, value in entries.items()}
        self.param_groups[:] = groups
        self.state = state

    def _state_value(self, p, key, name, value):
        """A saved state entry as this optimizer keeps it: "step" a float32 0-d NumPy array (PyTorch's
        dtype), the rest arrays shaped like the parameter, on its device and in its dtype."""
        value = np.asarray(backend.to_numpy(value.array if isinstance(value, Tensor) else value))
        if name in self.scalar_state:
            _check(value.size == 1, f"optimizer state {name!r} of parameter {key} has shape {value.shape}, "
                                    "not a single number")
            return np.array(value.reshape(()), dtype=np.float32)
        _check(value.shape == p.shape, f"optimizer state {name!r} of parameter {key} has shape {value.shape}, "
                                       f"the parameter {p.shape}")
        return backend.to_device(np.array(value, dtype=p.dtype), p.device)


class SGD(Optimizer):
    """Stochastic gradient descent, as torch.optim.SGD:
    g ← ∇ + λθ;  b ← μb + (1-τ)g (b = g at the first step);  g ← g + μb (nesterov) or b;
    θ ← θ - γg."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *, maximize=False,
                 foreach=None, differentiable=False, fused=None):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize, foreach=foreach,
                                      differentiable=differentiable, fused=fused))

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
    θ ← θ - γ/(1-β₁ᵗ) · m / (√v / √(1-β₂ᵗ) + ε), with v the running maximum of v under amsgrad.
    With decoupled_weight_decay=True the decay is AdamW's: θ ← θ(1 - γλ), then the step on ∇."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *, foreach=None,
                 maximize=False, capturable=False, differentiable=False, fused=None, decoupled_weight_decay=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, foreach=foreach, capturable=capturable,
                                      differentiable=differentiable, fused=fused,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def _check_group(self, group):
        super()._check_group(group)
        b1, b2 = group["betas"]
        _check(0 <= b1 < 1 and 0 <= b2 < 1, f"{type(self).__name__}: betas must lie in [0, 1), got {group['betas']}")

    def _update(self, p, grad, state, group):
        xp = get_array_module(p)
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            state.update(step=_new_step(), exp_avg=xp.zeros_like(p), exp_avg_sq=xp.zeros_like(p))
        state["step"] += 1
        t = float(state["step"])
        if group["decoupled_weight_decay"]:
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

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)


class RMSprop(Optimizer):
    """RMSprop, as torch.optim.RMSprop:  g ← ∇ + λθ;  v ← αv + (1-α)g²;  (centered: ḡ ← αḡ + (1-α)g,
    v̂ = v - ḡ²);  d = g / (√v̂ + ε);  b ← μb + d, θ ← θ - γb  (or θ ← θ - γd without momentum)."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                                      weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable))

    def _update(self, p, grad, state, group):
        xp = get_array_module(p)
        alpha, mu = group["alpha"], group["momentum"]
        if not state:  # in PyTorch's order, which its state_dict shows
            state.update(step=_new_step(), square_avg=xp.zeros_like(p))
            if mu > 0:
                state["momentum_buffer"] = xp.zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(p)
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

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable, fused=fused))
        for group in self.param_groups:  # made up front as PyTorch's are, so state_dict lists every parameter
            for p in group["params"]:
                self._start(p.array, self.state.setdefault(p, {}), group)

    def _check_group(self, group):
        super()._check_group(group)
        _check(group["initial_accumulator_value"] >= 0,
               f"Adagrad: initial_accumulator_value must be >= 0, got {group['initial_accumulator_value']}")

    @staticmethod
    def _start(p, state, group):
        if not state:
            state.update(step=_new_step(), sum=get_array_module(p).full_like(p, group["initial_accumulator_value"]))

    def _update(self, p, grad, state, group):
        xp = get_array_module(p)
        self._start(p, state, group)  # a group added after construction
        state["step"] += 1
        clr = group["lr"] / (1 + (float(state["step"]) - 1) * group["lr_decay"])
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

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *, capturable=False,
                 maximize=False, differentiable=False):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                                      capturable=capturable, foreach=foreach, differentiable=differentiable))

    def _check_group(self, group):
        super()._check_group(group)
        _check(0 <= group["rho"] <= 1, f"Adadelta: rho must lie in [0, 1], got {group['rho']}")

    def _update(self, p, grad, state, group):
        xp = get_array_module(p)
        rho, eps = group["rho"], group["eps"]
        if not state:
            state.update(step=_new_step(), square_avg=xp.zeros_like(p), acc_delta=xp.zeros_like(p))
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

