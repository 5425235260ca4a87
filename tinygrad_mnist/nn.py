"""Layers as Modules, in PyTorch's vocabulary: Parameters, buffers, train/eval, state_dict.

Modules only arrange tensors and call `tinygrad_mnist.functional`; every gradient comes from the
ops' VJPs, so there is no backward code here.
"""
import math
import sys
from collections import OrderedDict, namedtuple
from types import SimpleNamespace

import numpy as np

from . import backend
from . import functional as F
from .tensor import Tensor


class Parameter(Tensor):
    """A tensor that requires grad and that a Module registers when it is assigned as an attribute."""

    def __init__(self, data, requires_grad=True, dtype=None, device=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype, device=device)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class StateDictError(ValueError, RuntimeError):
    """A checkpoint that does not fit the model: a missing or unexpected key, a shape or a dtype. Also a
    RuntimeError, which PyTorch's load_state_dict raises, so code written for either catches it."""


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of layers and models. Assigning a Parameter, a Module or (via `register_buffer`) a
    buffer as an attribute registers it, in assignment order; `forward` is what calling it runs."""

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_non_persistent_buffers_set", set())
        object.__setattr__(self, "training", True)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def _registries(self):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning "
                                 "parameters, buffers or submodules")
        return self._parameters, self._buffers, self._modules

    def __setattr__(self, name, value):
        if not isinstance(value, (Parameter, Module)) and "_parameters" not in self.__dict__:
            object.__setattr__(self, name, value)
            return
        params, buffers, modules = self._registries()
        if isinstance(value, Parameter):
            home = params
        elif isinstance(value, Module):
            home = modules
        elif name in buffers and (value is None or isinstance(value, Tensor)):
            home = buffers
        elif name in params and value is not None:
            raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r}: "
                            "wrap it in Parameter (or assign None)")
        elif value is None:  # None keeps a parameter's or submodule's place, as in PyTorch
            home = params if name in params else modules if name in modules else None
        else:
            home = None
        self._register(name, value, home)

    def _register(self, name, value, home):
        """Set the attribute and file it in the registry `home` (None: in none), out of the others."""
        for registry in self._registries():
            if registry is not home:
                registry.pop(name, None)
        if home is not self._buffers:
            self._non_persistent_buffers_set.discard(name)
        if home is not None:
            home[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        for registry in self._registries():
            registry.pop(name, None)
        self._non_persistent_buffers_set.discard(name)
        object.__delattr__(self, name)

    def _check_new_name(self, kind, name, registry):
        """PyTorch's rules for the name of a parameter, buffer or submodule registered by a method."""
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
        if "." in name:
            raise KeyError(f'{kind} name can\'t contain ".", got {name!r}')
        if name == "":
            raise KeyError(f'{kind} name can\'t be empty string ""')
        if hasattr(self, name) and name not in registry:
            raise KeyError(f"attribute {name!r} already exists")

    def register_buffer(self, name, tensor, persistent=True):
        """Register a tensor that is state but not a parameter (e.g. batch-norm running statistics): it
        is moved by `to`, no optimizer sees it, and it is in state_dict unless persistent=False."""
        params, buffers, modules = self._registries()
        self._check_new_name("buffer", name, buffers)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer({name!r}): expected a Tensor or None, got {type(tensor).__name__}")
        if isinstance(tensor, Parameter):
            raise TypeError(f"register_buffer({name!r}): a Parameter cannot be a buffer")
        self._register(name, tensor, buffers)
        if not persistent:
            self._non_persistent_buffers_set.add(name)

    def register_parameter(self, name, param):
        """Register a Parameter (or None, a place for one that stays empty) under `name`."""
        params, buffers, modules = self._registries()
        self._check_new_name("parameter", name, params)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign {type(param).__name__} as parameter {name!r}: "
                            "wrap it in Parameter (or pass None)")
        self._register(name, param, params)

    def add_module(self, name, module):
        """Register `module` (or None) as the submodule `name`, as assigning it as an attribute does."""
        params, buffers, modules = self._registries()
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module({name!r}): {type(module).__name__} is not a Module")
        self._check_new_name("module", name, modules)
        self._register(name, module, modules)

    register_module = add_module

    def get_submodule(self, target):
        """The submodule at the dotted path `target` ("" is this module), e.g. "features.0"."""
        module = self
        for item in target.split(".") if target else ():
            if module._modules.get(item) is None:
                what = "is not a Module" if hasattr(module, item) else "is no attribute"
                raise AttributeError(f"get_submodule({target!r}): {item!r} {what} of {type(module).__name__}")
            module = module._modules[item]
        return module

    def _get_member(self, target, kind):
        path, _, name = target.rpartition(".")
        module = self.get_submodule(path)
        member = getattr(module, f"_{kind}s").get(name)
        if member is None:
            what = f"is not a {kind}" if hasattr(module, name) else "is no attribute"
            raise AttributeError(f"get_{kind}({target!r}): {name!r} {what} of {type(module).__name__}")
        return member

    def get_parameter(self, target):
        """The parameter at the dotted path `target`, e.g. "features.0.weight"."""
        return self._get_member(target, "parameter")

    def get_buffer(self, target):
        """The buffer at the dotted path `target`, e.g. "bn.running_mean"."""
        return self._get_member(target, "buffer")

    def named_modules(self, prefix="", remove_duplicate=True):
        """(dotted name, module) for this module and every descendant, depth first: each module once, or
        with remove_duplicate=False once under every name it is registered by (as in PyTorch)."""
        seen, stack = set(), [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate and id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{n}" if name else n, m) for n, m in module._modules.items() if m is not None]
            stack.extend(reversed(children))

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_children(self):
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def children(self):
        return (m for _, m in self.named_children())

    def _named_members(self, registry):
        seen = set()
        for prefix, module in self.named_modules():
            for name, t in getattr(module, registry).items():
                if t is not None and id(t) not in seen:
                    seen.add(id(t))
                    yield (f"{prefix}.{name}" if prefix else name), t

    def _state_tensors(self):
        """name → tensor of every parameter and persistent buffer, module by module (each module's
        parameters, then its buffers, as PyTorch orders state_dict); tied tensors keep every name."""
        out = {}
        for prefix, module in self.named_modules(remove_duplicate=False):
            for registry in (module._parameters, module._buffers):
                for name, t in registry.items():
                    if t is not None and not (registry is module._buffers and
                                              name in module._non_persistent_buffers_set):
                        out[f"{prefix}.{name}" if prefix else name] = t
        return out

    def named_parameters(self):
        """(dotted name, Parameter) in registration order, e.g. "features.0.weight"; a shared
        parameter is listed once."""
        return self._named_members("_parameters")

    def parameters(self):
        return (p for _, p in self.named_parameters())

    def named_buffers(self):
        return self._named_members("_buffers")

    def buffers(self):
        return (b for _, b in self.named_buffers())

    def num_parameters(self):
        return sum(p.numel() for p in self.parameters())

    def train(self, mode=True):
        """Set training mode (dropout active, batch norm on batch statistics) here and in every submodule."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.zero_()

    def apply(self, fn):
        """Call fn on every submodule, then on this module (as PyTorch: e.g. to initialise weights)."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def to(self, *args, device=None, dtype=None):
        """`to(device)`, `to(dtype)` or both: move every parameter and buffer (and gradient) to `device`,
        and convert the floating-point ones to `dtype`, in place: the Parameter objects stay the same, so
        do it before creating the optimizer, whose state stays where it was made."""
        for a in args:
            if isinstance(a, str):
                device = a
            else:
                dtype = a
        device = None if device is None else backend.normalize_device(device)
        for t in [*self.parameters(), *self.buffers()]:
            for holder in (t, t.grad) if t.grad is not None else (t,):
                if device is not None:
                    holder.array = backend.to_device(holder.array, device)
                if dtype is not None and holder.dtype.kind == "f":
                    holder.array = holder.array.astype(dtype)
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        """Move to the GPU (CuPy); `device` may be None, 0, "cuda" or "cuda:0": one GPU is all we drive."""
        if device not in (None, 0) and backend.normalize_device(device) != "cuda":
            raise backend.DeviceError(f"cuda({device!r}): expected None, 0 or 'cuda:0'")
        return self.to("cuda")

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def half(self):
        return self.to(np.float16)

    def state_dict(self, *args, destination=None, prefix="", keep_vars=False):
        """name → each parameter and persistent buffer as a detached Tensor on the same memory (so it
        changes as the model trains: copy it to keep it, `{k: v.clone() ...}` or `copy.deepcopy`), or with
        keep_vars=True the Parameters and buffers themselves; as PyTorch's, in an OrderedDict (or added to
        `destination`), each name after `prefix`."""
        if args:
            raise TypeError("state_dict() takes keyword arguments only: state_dict(destination=..., prefix=..., "
                            "keep_vars=...)")
        destination = OrderedDict() if destination is None else destination
        for name, t in self._state_tensors().items():
            destination[prefix + name] = t if keep_vars else t.detach()
        return destination

    def load_state_dict(self, state, strict=True):
        """Copy a checkpoint's arrays into the existing parameters and buffers, in place (each keeps its
        device and dtype). Everything is checked before anything is copied: a StateDictError names the
        first mismatch in the model's order, then the first unexpected key. With strict=False missing
        and unexpected keys are allowed, and returned; shapes and dtypes must still fit."""
        if not hasattr(state, "keys") or not hasattr(state, "__getitem__"):
            raise TypeError(f"load_state_dict expects a mapping of names to arrays (a dict, or the result of "
                            f"np.load on a .npz file), got {type(state).__name__}")
        targets = self._state_tensors()
        missing, arrays = [], {}
        for key, t in targets.items():
            if key not in state:
                if key.endswith("num_batches_tracked"):  # state dicts from before it existed (PyTorch's rule too)
                    continue
                if strict:
                    raise StateDictError(f"state_dict mismatch: missing key {key!r}")
                missing.append(key)
                continue
            value = state[key]
            value = value.array if isinstance(value, Tensor) else value
            value = value if backend.is_cupy_array(value) else np.asarray(value)
            if tuple(value.shape) != tuple(t.shape):
                raise StateDictError(f"state_dict mismatch: {key!r} has shape {tuple(value.shape)} in the "
                                     f"checkpoint but {tuple(t.shape)} in the model")
            if not np.can_cast(value.dtype, t.dtype, casting="same_kind"):
                raise StateDictError(f"state_dict mismatch: {key!r} has dtype {value.dtype} in the checkpoint, "
                                     f"which does not cast to the model's {t.dtype}")
            arrays[key] = value
        unexpected = [k for k in state if k not in targets]
        if strict and unexpected:
            raise StateDictError(f"state_dict mismatch: unexpected key {unexpected[0]!r}")
        for key, value in arrays.items():
            t = targets[key]
            t.array[...] = backend.to_device(value.astype(t.dtype, copy=False), t.device)
        return IncompatibleKeys(missing, unexpected)

    def extra_repr(self):
        """The layer's settings, shown inside its parentheses by repr."""
        return ""

    def __repr__(self):
        """PyTorch's layout: settings inline when they are all there is, else one line each, then the
        submodules indented by two spaces."""
        extra = self.extra_repr().split("\n") if self.extra_repr() else []
        children = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        if len(extra) == 1 and not children:
            return f"{type(self).__name__}({extra[0]})"
        lines = extra + children
        return type(self).__name__ + ("(\n  " + "\n  ".join(lines) + "\n)" if lines else "()")


LINEAR_FNS = ("linear", "identity", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d")


def calculate_gain(nonlinearity, param=None):
    """The gain PyTorch recommends for a nonlinearity: linear/conv/sigmoid 1, tanh 5/3, relu √2,
    leaky_relu √(2 / (1 + slope²)) with slope `param` (default 0.01), selu 3/4."""
    if nonlinearity in LINEAR_FNS or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is not None and (isinstance(param, bool) or not isinstance(param, (int, float))):
            raise ValueError(f"calculate_gain: the leaky_relu slope must be a number, got {param!r}")
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}: use linear, sigmoid, tanh, relu, leaky_relu or selu")


def _calculate_fan_in_and_fan_out(tensor):
    """fan_in = shape[1]·receptive field, fan_out = shape[0]·receptive field, as PyTorch computes them
    for (out, in) linear and (out, in, kh, kw) conv weights."""
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out need at least 2 dimensions, got shape {tuple(tensor.shape)}")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fill(tensor, values):
    """Write values drawn on the CPU into the tensor's array, in place, in its dtype and on its device."""
    tensor.array[...] = backend.to_device(np.asarray(values, dtype=tensor.dtype), tensor.device)
    return tensor


def _rng(rng):
    return backend.generator("cpu") if rng is None else rng


def uniform_(tensor, a=0.0, b=1.0, rng=None):
    return _fill(tensor, _rng(rng).uniform(a, b, size=tensor.shape))


def normal_(tensor, mean=0.0, std=1.0, rng=None):
    return _fill(tensor, _rng(rng).normal(mean, std, size=tensor.shape))


def constant_(tensor, value):
    return _fill(tensor, np.full(tensor.shape, value))


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def eye_(tensor):
    """The identity matrix (ones on the diagonal of a 2-D tensor, which need not be square)."""
    if tensor.ndim != 2:
        raise ValueError(f"eye_: expected a 2-D tensor, got shape {tuple(tensor.shape)}")
    return _fill(tensor, np.eye(*tensor.shape))


def dirac_(tensor, groups=1):
    """A 3-, 4- or 5-D convolution weight (out, in, k…) that passes input channel d to output channel d of
    each of the `groups` groups of outputs: a one at the kernel's centre, zeros elsewhere."""
    if tensor.ndim not in (3, 4, 5):
        raise ValueError(f"dirac_: expected a 3-, 4- or 5-D tensor, got shape {tuple(tensor.shape)}")
    out_per_group, ins = divmod(tensor.shape[0], groups), tensor.shape[1]
    if out_per_group[1]:
        raise ValueError(f"dirac_: dim 0 ({tensor.shape[0]}) must be divisible by groups ({groups})")
    values = np.zeros(tensor.shape)
    d = np.arange(min(out_per_group[0], ins))
    centre = tuple(k // 2 for k in tensor.shape[2:])
    for g in range(groups):
        values[(g * out_per_group[0] + d, d, *centre)] = 1
    return _fill(tensor, values)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, rng=None):
    """N(mean, std²) truncated to [a, b] (absolute bounds), exactly, however far [a, b] lies in the tail:
    by redrawing normal values outside it when [a, b] holds over 30% of the mass, else by drawing from
    U(a, b) and keeping x with probability pdf(x) / (the pdf's peak on [a, b]), as PyTorch does."""
    if not a <= b:
        raise ValueError(f"trunc_normal_: expected a <= b, got a={a}, b={b}")
    rng = _rng(rng)
    z = lambda x: (x - mean) / std
    if (math.erf(z(b) / math.sqrt(2)) - math.erf(z(a) / math.sqrt(2))) / 2 > 0.3:
        draw, keep = (lambda n: rng.normal(mean, std, n)), (lambda x: (a <= x) & (x <= b))
    else:
        peak = z(min(max(mean, a), b))
        draw = lambda n: rng.uniform(a, b, n)
        keep = lambda x: rng.random(x.size) < np.exp((peak ** 2 - z(x) ** 2) / 2)
    values, todo = np.empty(tensor.numel()), np.arange(tensor.numel())
    while todo.size:
        x = draw(todo.size)
        kept = keep(x)
        values[todo[kept]] = x[kept]
        todo = todo[~kept]
    return _fill(tensor, values.reshape(tensor.shape))


def orthogonal_(tensor, gain=1.0, rng=None):
    """gain times a random (semi-)orthogonal matrix (Saxe et al., 2013), the axes after the first
    flattened: of the (rows, cols) matrix, the rows are orthonormal if rows <= cols, else the columns. Q of
    the QR decomposition of a standard normal matrix, each column's sign that of R's diagonal entry, so
    that Q is uniform over the orthogonal matrices (Mezzadri, 2007)."""
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: expected at least 2 dimensions, got shape {tuple(tensor.shape)}")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    m = _rng(rng).standard_normal((rows, cols))
    q, r = np.linalg.qr(m if rows >= cols else m.T)
    q *= np.sign(np.diag(r))
    return _fill(tensor, gain * (q if rows >= cols else q.T).reshape(tensor.shape))


def xavier_uniform_(tensor, gain=1.0, rng=None):
    """U(-a, a) with a = gain·√(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, rng)


def xavier_normal_(tensor, gain=1.0, rng=None):
    """N(0, std²) with std = gain·√(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng)


def _kaiming_std(tensor, a, mode, nonlinearity):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", rng=None):
    """U(-b, b) with b = gain·√(3 / fan) (He et al., 2015); `a` is the leaky_relu slope."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, rng)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", rng=None):
    """N(0, std²) with std = gain / √fan."""
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity), rng)


init = SimpleNamespace(
    calculate_gain=calculate_gain, uniform_=uniform_, normal_=normal_, trunc_normal_=trunc_normal_,
    constant_=constant_, zeros_=zeros_, ones_=ones_, eye_=eye_, dirac_=dirac_, orthogonal_=orthogonal_,
    xavier_uniform_=xavier_uniform_, xavier_normal_=xavier_normal_, kaiming_uniform_=kaiming_uniform_,
    kaiming_normal_=kaiming_normal_,
)

INITS = ("kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal")


def _init_weight_and_bias(weight, bias, scheme, rng):
    """"kaiming_uniform" is PyTorch's default for Linear and Conv2d: weight and bias both U(-1/√fan_in,
    1/√fan_in). The other schemes (relu gain for kaiming) leave the bias at zero."""
    if scheme == "kaiming_uniform":
        kaiming_uniform_(weight, a=math.sqrt(5), rng=rng)
        if bias is not None:
            bound = 1 / math.sqrt(_calculate_fan_in_and_fan_out(weight)[0])
            uniform_(bias, -bound, bound, rng)
        return
    if scheme == "kaiming_normal":
        kaiming_normal_(weight, nonlinearity="relu", rng=rng)
    elif scheme == "xavier_uniform":
        xavier_uniform_(weight, rng=rng)
    elif scheme == "xavier_normal":
        xavier_normal_(weight, rng=rng)
    else:
        raise ValueError(f"unknown init {scheme!r}: use one of {', '.join(INITS)}")
    if bias is not None:
        zeros_(bias)


def _empty(shape, dtype, device):
    return Parameter(np.empty(shape, dtype=dtype), device=device)


class Linear(Module):
    """y = x Wᵀ + b with W (out_features, in_features)."""

    def __init__(self, in_features, out_features, bias=True, init="kaiming_uniform", rng=None,
                 dtype=np.float32, device=None):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = _empty((self.out_features, self.in_features), dtype, device)
        self.bias = _empty((self.out_features,), dtype, device) if bias else None
        _init_weight_and_bias(self.weight, self.bias, init, rng)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def _pair(value):
    return tuple(int(v) for v in value) if isinstance(value, (tuple, list)) else (int(value), int(value))


class Conv2d(Module):
    """2-D cross-correlation of (N, C, H, W) inputs with a (out_channels, in_channels/groups, kh, kw) weight
    and zero padding, as torch.nn.Conv2d (its arguments in its order; `init` and `rng` are ours)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=np.float32, init="kaiming_uniform", rng=None):
        super().__init__()
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ValueError(f"Conv2d: groups must be a positive integer, got {groups!r}")
        if in_channels % groups:
            raise ValueError(f"Conv2d: in_channels must be divisible by groups, got {in_channels} and {groups}")
        if out_channels % groups:
            raise ValueError(f"Conv2d: out_channels must be divisible by groups, got {out_channels} and {groups}")
        if padding_mode != "zeros":
            raise ValueError(f"Conv2d: padding_mode={padding_mode!r} is not supported, only 'zeros' "
                             "(see docs/FROM_PYTORCH.md)")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.dilation = _pair(kernel_size), _pair(stride), _pair(dilation)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.groups, self.padding_mode = groups, padding_mode
        # A bad padding string, or 'same' with a stride, fails here rather than at the first forward.
        F.conv_padding(self.padding, self.kernel_size, self.stride, self.dilation)
        self.weight = _empty((self.out_channels, self.in_channels // groups, *self.kernel_size), dtype, device)
        self.bias = _empty((self.out_channels,), dtype, device) if bias else None
        _init_weight_and_bias(self.weight, self.bias, init, rng)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        """PyTorch's: the settings that differ from their defaults (output_padding on transposed ones)."""
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if getattr(self, "output_padding", (0, 0)) != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        self.kernel_size, self.padding, self.dilation = kernel_size, padding, dilation
        self.stride = kernel_size if stride is None else stride
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}" + (f", padding={self.padding}"
                                                                          if self.padding else "")


class ReLU(Module):
    def __init__(self, inplace=False):  # accepted for PyTorch code; the result is always a new tensor
        super().__init__()

    def forward(self, x):
        return F.relu(x)


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """In training, zero each element with probability p and scale the rest by 1/(1-p); in eval, identity."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x):
        return F.dropout(x, self.p, training=self.training)

    def extra_repr(self):
        return f"p={self.p}"


class _BatchNorm(Module):
    shapes = {}  # the input ranks the layer takes → how its docs spell that shape

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, device=None,
                 dtype=np.float32, *, bias=True):
        super().__init__()
        self.num_features, self.eps, self.affine = int(num_features), float(eps), affine
        self.momentum = None if momentum is None else float(momentum)
        self.track_running_stats = track_running_stats
        n = self.num_features
        self.register_parameter("weight", Parameter(np.ones(n, dtype), device=device) if affine else None)
        self.register_parameter("bias", Parameter(np.zeros(n, dtype), device=device) if affine and bias else None)
        tracked = track_running_stats  # without, the three buffers are registered as None, as in PyTorch
        self.register_buffer("running_mean", Tensor(np.zeros(n, dtype), device=device) if tracked else None)
        self.register_buffer("running_var", Tensor(np.ones(n, dtype), device=device) if tracked else None)
        self.register_buffer("num_batches_tracked",
                             Tensor(np.array(0, np.int64), device=device) if tracked else None)

    def forward(self, x):
        if x.ndim not in self.shapes or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}): expected a "
                             f"{' or '.join(self.shapes.values())} input with C = {self.num_features}, "
                             f"got shape {tuple(x.shape)}")
        momentum = self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.array += 1
            if momentum is None:  # PyTorch's cumulative average of every batch so far
                momentum = 1.0 / int(self.num_batches_tracked)
        # Batch statistics in training, and in eval too when there are no running ones; those are
        # updated only in training, and only when tracked.
        track = not self.training or self.track_running_stats
        return F.batch_norm(x, self.running_mean if track else None, self.running_var if track else None,
                            self.weight, self.bias, training=self.training or self.running_mean is None,
                            momentum=0.0 if momentum is None else momentum, eps=self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs per channel (over N, and L): batch statistics
    in training (updating the running ones), running statistics in eval."""
    shapes = {2: "(N, C)", 3: "(N, C, L)"}


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs per channel: batch statistics in training (updating
    the running ones), running statistics in eval."""
    shapes = {4: "(N, C, H, W)"}


class Sequential(Module):
    """Modules applied in order; named "0", "1", … so parameters read "features.0.weight" (or by the
    keys of one OrderedDict given instead)."""

    def __init__(self, *modules):
        super().__init__()
        named = modules[0].items() if len(modules) == 1 and isinstance(modules[0], dict) else \
            ((str(i), m) for i, m in enumerate(modules))
        for name, m in named:
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: {name} is a {type(m).__name__}, not a Module")
            setattr(self, name, m)

    def append(self, module):
        setattr(self, str(len(self)), module)
        return self

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*modules[index])
        return modules[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class Identity(Module):
    """Returns its input; takes and ignores any arguments, as torch.nn.Identity."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        return F.elu(x, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class GELU(Module):
    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    def forward(self, x):
        return F.silu(x)


class Softplus(Module):
    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        return F.softplus(x, self.beta, self.threshold)


class Softmax(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x):
        return F.log_softmax(x, self.dim)


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, kernel_size if stride is None else stride, padding
        self.ceil_mode, self.count_include_pad, self.divisor_override = ceil_mode, count_include_pad, divisor_override

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                            self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class Dropout2d(Dropout):
    """In training, zero whole channels with probability p and scale the rest by 1/(1-p); in eval, identity."""

    def forward(self, x):
        return F.dropout2d(x, self.p, training=self.training)


class LayerNorm(Module):
    """Normalise over the last axes given by normalized_shape, then scale and shift per element
    (elementwise_affine)."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, dtype=np.float32, device=None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps, self.elementwise_affine = shape, float(eps), elementwise_affine
        self.weight = Parameter(np.ones(shape, dtype), device=device) if elementwise_affine else None
        self.bias = Parameter(np.zeros(shape, dtype), device=device) if elementwise_affine and bias else None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class _Loss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        if reduction not in F.REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {F.REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction


class _WeightedLoss(_Loss):
    """A loss with optional class weights, a buffer (so it is in state_dict, as in PyTorch)."""

    def __init__(self, weight=None, reduction="mean"):
        super().__init__(reduction)
        self.register_buffer("weight", weight if weight is None or isinstance(weight, Tensor) else Tensor(weight))


class NLLLoss(_WeightedLoss):
    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(weight, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, self.weight, self.ignore_index, self.reduction, self.label_smoothing)


class MSELoss(_Loss):
    def forward(self, input, target):
        return F.mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    def forward(self, input, target):
        return F.l1_loss(input, target, self.reduction)


class ModuleList(Module):
    """Modules held in a list, registered as "0", "1", …; it has no forward of its own."""

    def __init__(self, modules=None):
        super().__init__()
        for m in modules or ():
            self.append(m)

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList: expected a Module, got {type(module).__name__}")
        setattr(self, str(len(self)), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, index):
        modules = list(self._modules.values())
        return ModuleList(modules[index]) if isinstance(index, slice) else modules[index]

    def __setitem__(self, index, module):
        setattr(self, str(range(len(self))[index]), module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class _ByName:
    """The dict side of ModuleDict and ParameterDict, over the registry `_held()` names (their modules, their
    parameters): item access, membership, length, order, `keys values items pop update`; each class says
    how `__setitem__` stores a value."""

    def __getitem__(self, key):
        return self._held()[key]

    def __delitem__(self, key):
        delattr(self, key)

    def __contains__(self, key):
        return key in self._held()

    def __len__(self):
        return len(self._held())

    def __iter__(self):
        return iter(self._held())

    def keys(self):
        return self._held().keys()

    def values(self):
        return self._held().values()

    def items(self):
        return self._held().items()

    def pop(self, key):
        value = self[key]
        del self[key]
        return value

    def update(self, items):
        for key, value in dict(items).items():
            self[key] = value


class ModuleDict(_ByName, Module):
    """Modules held by name (in insertion order); it has no forward of its own."""

    def __init__(self, modules=None):
        super().__init__()
        self.update(modules or {})

    def _held(self):
        return self._modules

    def __setitem__(self, name, module):
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict: expected a Module for {name!r}, got {type(module).__name__}")
        setattr(self, name, module)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale every gradient in place so that their joint norm is at most max_norm, as
    torch.nn.utils.clip_grad_norm_; returns the norm before clipping (a Tensor)."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return Tensor(0.0)
    norm_type = float(norm_type)
    norms = [g.detach().norm(norm_type) for g in grads]
    total = norms[0] if len(norms) == 1 else Tensor(np.array([float(n) for n in norms])).norm(norm_type)
    total = Tensor(np.asarray(float(total), grads[0].dtype), device=grads[0].device)
    if error_if_nonfinite and not np.isfinite(float(total)):
        raise RuntimeError(f"clip_grad_norm_: the total norm of the gradients is {float(total)}; pass "
                           "error_if_nonfinite=False to clip anyway")
    coef = min(max_norm / (float(total) + 1e-6), 1.0)
    for g in grads:
        g.array *= g.dtype.type(coef)
        g._version[0] += 1
    return total


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient in place to [-clip_value, clip_value]."""
    for p in [parameters] if isinstance(parameters, Tensor) else parameters:
        if p.grad is not None:
            xp = backend.get_array_module(p.grad.array)
            xp.clip(p.grad.array, -clip_value, clip_value, out=p.grad.array)
            p.grad._version[0] += 1


utils = SimpleNamespace(clip_grad_norm_=clip_grad_norm_, clip_grad_value_=clip_grad_value_)


class BCELoss(_WeightedLoss):
    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, self.weight, self.reduction)


class BCEWithLogitsLoss(_WeightedLoss):
    """binary_cross_entropy_with_logits; weight and pos_weight are buffers, as in PyTorch."""

    def __init__(self, weight=None, reduction="mean", pos_weight=None):
        super().__init__(weight, reduction)
        self.register_buffer("pos_weight", pos_weight if pos_weight is None or isinstance(pos_weight, Tensor)
                             else Tensor(pos_weight))

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.weight, self.reduction, self.pos_weight)


class SmoothL1Loss(_Loss):
    def __init__(self, reduction="mean", beta=1.0):
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, self.reduction, self.beta)


class HuberLoss(_Loss):
    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction)
        self.delta = delta

    def forward(self, input, target):
        return F.huber_loss(input, target, self.reduction, self.delta)


class KLDivLoss(Module):
    """kl_div; reduction 'batchmean' (the KL divergence per sample) besides 'mean', 'sum' and 'none'."""

    def __init__(self, reduction="mean", log_target=False):
        super().__init__()
        if reduction not in F.REDUCTIONS + ("batchmean",):
            raise ValueError(f"KLDivLoss: reduction must be one of {F.REDUCTIONS + ('batchmean',)}, got {reduction!r}")
        self.reduction, self.log_target = reduction, log_target

    def forward(self, input, target):
        return F.kl_div(input, target, self.reduction, self.log_target)


class PReLU(Module):
    """x for x > 0, else a·x, with one learnt slope a (init 0.25) or num_parameters of them, one per channel."""

    def __init__(self, num_parameters=1, init=0.25, device=None, dtype=np.float32):
        super().__init__()
        self.num_parameters, self.init = int(num_parameters), init
        self.weight = Parameter(np.full(self.num_parameters, init, dtype), device=device)

    def forward(self, input):
        return F.prelu(input, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class Hardtanh(Module):
    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        super().__init__()
        if min_val > max_val:
            raise ValueError(f"Hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})")
        self.min_val, self.max_val = min_val, max_val

    def forward(self, input):
        return F.hardtanh(input, self.min_val, self.max_val)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}"


class ReLU6(Hardtanh):
    def __init__(self, inplace=False):
        super().__init__(0.0, 6.0)

    def extra_repr(self):
        return ""


class SELU(Module):
    def __init__(self, inplace=False):
        super().__init__()

    def forward(self, input):
        return F.selu(input)


class CELU(Module):
    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha = alpha

    def forward(self, input):
        return F.celu(input, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class LogSigmoid(Module):
    def forward(self, input):
        return F.logsigmoid(input)


class Softmin(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.softmin(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class Mish(Module):
    def __init__(self, inplace=False):
        super().__init__()

    def forward(self, input):
        return F.mish(input)


class Hardswish(Module):
    def __init__(self, inplace=False):
        super().__init__()

    def forward(self, input):
        return F.hardswish(input)


class Softsign(Module):
    def forward(self, input):
        return F.softsign(input)


class ConvTranspose2d(Module):
    """The transposed convolution of (N, C, H, W) inputs with a (in_channels, out_channels/groups, kh, kw)
    weight, as torch.nn.ConvTranspose2d (its arguments in its order; `init` and `rng` are ours). The default
    init is PyTorch's: U(±1/√fan_in) with fan_in = out_channels/groups · kh · kw (the weight's axis 1)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=np.float32, init="kaiming_uniform",
                 rng=None):
        super().__init__()
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ValueError(f"ConvTranspose2d: groups must be a positive integer, got {groups!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"ConvTranspose2d: in_channels and out_channels must be divisible by groups, got "
                             f"{in_channels}, {out_channels} and {groups}")
        if padding_mode != "zeros":
            raise ValueError(f"ConvTranspose2d: padding_mode={padding_mode!r} is not supported, only 'zeros' (as in "
                             "PyTorch)")
        if isinstance(padding, str):
            raise ValueError(f"ConvTranspose2d: padding={padding!r}: give the padding as numbers (PyTorch takes no "
                             "string here either)")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        self.output_padding, self.dilation = _pair(output_padding), _pair(dilation)
        self.groups, self.padding_mode = groups, padding_mode
        self.weight = _empty((self.in_channels, self.out_channels // groups, *self.kernel_size), dtype, device)
        self.bias = _empty((self.out_channels,), dtype, device) if bias else None
        _init_weight_and_bias(self.weight, self.bias, init, rng)

    def _output_padding(self, input, output_size):
        """output_padding, or the one that gives `output_size` ((H, W), or with N and C in front)."""
        if output_size is None:
            return self.output_padding
        size = tuple(output_size)[-2:]
        least = [(side - 1) * s - 2 * p + d * (k - 1) + 1 for side, s, p, d, k in
                 zip(input.shape[-2:], self.stride, self.padding, self.dilation, self.kernel_size)]
        most = [n + s - 1 for n, s in zip(least, self.stride)]
        if len(tuple(output_size)) not in (2, 4) or not all(lo <= n <= hi for n, lo, hi in zip(size, least, most)):
            raise ValueError(f"ConvTranspose2d: requested an output size of {tuple(output_size)}, but valid sizes "
                             f"range from {least} to {most} (for an input of {tuple(input.shape[-2:])})")
        return tuple(n - lo for n, lo in zip(size, least))

    def forward(self, input, output_size=None):
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups, self.dilation)

    extra_repr = Conv2d.extra_repr


class Upsample(Module):
    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None):
        super().__init__()
        self.size, self.mode, self.align_corners = size, mode, align_corners
        self.scale_factor = (tuple(float(f) for f in scale_factor) if isinstance(scale_factor, (tuple, list))
                             else float(scale_factor) if scale_factor else None)
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input):
        return F.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                             self.recompute_scale_factor)

    def extra_repr(self):
        info = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return info + f", mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


class Unflatten(Module):
    """Axis `dim` reshaped to unflattened_size (one entry may be -1), the inverse of Flatten."""

    def __init__(self, dim, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, input):
        dim = self.dim % input.ndim
        sizes = self.unflattened_size
        known = math.prod(n for n in sizes if n != -1)
        if sizes.count(-1) > 1 or (known != input.shape[dim] if -1 not in sizes else input.shape[dim] % known):
            raise ValueError(f"Unflatten: unflattened_size {sizes} does not fit dim {self.dim} of size "
                             f"{input.shape[dim]} (input {tuple(input.shape)})")
        return input.reshape(input.shape[:dim] + sizes + input.shape[dim + 1:])

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class ConstantPad2d(Module):
    """`value` around the last two axes: padding an int, or (left, right, top, bottom)."""

    def __init__(self, padding, value):
        super().__init__()
        self.padding = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
        if len(self.padding) != 4:
            raise ValueError(f"{type(self).__name__}: padding must be an int or (left, right, top, bottom), got "
                             f"{padding!r}")
        self.value = float(value)

    def forward(self, input):
        return F.pad(input, self.padding, "constant", self.value)

    def extra_repr(self):
        return f"padding={self.padding}, value={self.value}"


class ZeroPad2d(ConstantPad2d):
    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self):
        return f"{self.padding}"


class Embedding(Module):
    """A (num_embeddings, embedding_dim) table whose rows integer indices pick, N(0, 1) at first; the row
    padding_idx starts at zero and gets no gradient."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False, device=None, dtype=np.float32,
                 rng=None):
        super().__init__()
        if max_norm is not None or scale_grad_by_freq or sparse:
            raise ValueError("Embedding: max_norm, scale_grad_by_freq and sparse are not supported; leave them at "
                             "their defaults")
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        if padding_idx is not None:
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"Embedding: padding_idx must be within num_embeddings ({self.num_embeddings}), got "
                                 f"{padding_idx}")
            padding_idx %= self.num_embeddings
        self.padding_idx, self.max_norm, self.norm_type = padding_idx, max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        shape = (self.num_embeddings, self.embedding_dim)
        if _weight is None:
            self.weight = _empty(shape, dtype, device)
            normal_(self.weight, rng=rng)
            if padding_idx is not None:
                self.weight.array[padding_idx] = 0
        else:
            if tuple(_weight.shape) != shape:
                raise ValueError(f"Embedding: _weight of shape {tuple(_weight.shape)} does not match {shape}")
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None, norm_type=2.0,
                        scale_grad_by_freq=False, sparse=False):
        """An Embedding whose table is `embeddings` (2-D), frozen unless freeze=False."""
        if embeddings.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape {tuple(embeddings.shape)}")
        return cls(*embeddings.shape, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=embeddings, _freeze=freeze)

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}" + (
            f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


class GroupNorm(Module):
    """Normalise each sample over groups of channels (num_groups of them), then scale and shift per channel."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=np.float32, *, bias=True):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups, self.num_channels = int(num_groups), int(num_channels)
        self.eps, self.affine = float(eps), affine
        self.weight = Parameter(np.ones(self.num_channels, dtype), device=device) if affine else None
        self.bias = Parameter(np.zeros(self.num_channels, dtype), device=device) if affine and bias else None

    def forward(self, input):
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


def _as_parameter(value, where):
    """A Parameter as it is, a Tensor wrapped in one (sharing its memory), as PyTorch's containers do."""
    if isinstance(value, Parameter):
        return value
    if isinstance(value, Tensor):
        return Parameter(value)
    raise TypeError(f"{where}: expected a Parameter or a Tensor, got {type(value).__name__}")


class ParameterList(Module):
    """Parameters held in a list, registered as "0", "1", … (a Tensor is wrapped in a Parameter)."""

    def __init__(self, values=None):
        super().__init__()
        for p in values or ():
            self.append(p)

    def append(self, value):
        setattr(self, str(len(self)), _as_parameter(value, "ParameterList"))
        return self

    def extend(self, values):
        for p in values:
            self.append(p)
        return self

    def __getitem__(self, index):
        params = list(self._parameters.values())
        return ParameterList(params[index]) if isinstance(index, slice) else params[index]

    def __setitem__(self, index, value):
        setattr(self, str(range(len(self))[index]), _as_parameter(value, "ParameterList"))

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters.values())

    def extra_repr(self):
        return "\n".join(f"({k}): Parameter containing: [{p.dtype} of size {tuple(p.shape)}]"
                         for k, p in self._parameters.items())


class ParameterDict(_ByName, Module):
    """Parameters held by name, in insertion order (a Tensor is wrapped in a Parameter)."""

    def __init__(self, parameters=None):
        super().__init__()
        self.update(parameters or {})

    def _held(self):
        return self._parameters

    def __setitem__(self, key, value):
        setattr(self, key, _as_parameter(value, f"ParameterDict[{key!r}]"))

    def get(self, key, default=None):
        return self._parameters.get(key, default)

    def extra_repr(self):
        return "\n".join(f"({k}): Parameter containing: [{p.dtype} of size {tuple(p.shape)}]"
                         for k, p in self._parameters.items())


# torch.nn.functional, torch.nn.init and torch.nn.utils as PyTorch spells them: attributes of nn, and
# importable (`import tinygrad_mnist.nn.functional as F`, `from tinygrad_mnist.nn import init`) although nn
# is one file rather than a package.
functional = F
for _name, _part in (("functional", F), ("init", init), ("utils", utils)):
    sys.modules[f"{__name__}.{_name}"] = _part
del _name, _part
