"""Learning-rate schedulers with torch.optim.lr_scheduler's names, signatures and rules.

As in PyTorch, StepLR, MultiStepLR, ExponentialLR, LinearLR and CosineAnnealingLR are chainable: a step
computes the next lr from the optimizer's current one (`get_lr`), so the lr lives in the optimizer's
state, and resuming restores both (or builds the scheduler with `last_epoch` on a restored optimizer).
LambdaLR and OneCycleLR compute it from the step count. `lr_at(epoch)` is each one's closed form.
"""
import bisect
import math

from .optimizer import Optimizer, _check, _plain


class LRScheduler:
    """Base class, as PyTorch's: construction records each group's "initial_lr" (with last_epoch=-1; for
    last_epoch >= 0 a restored optimizer must hold it) and takes one step, to count last_epoch + 1; call
    `step()` after `optimizer.step()`. `state_dict()` is every attribute but the optimizer (and code)."""

    _not_state = ("optimizer",)

    def __init__(self, optimizer, last_epoch=-1):
        name = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: expected an Optimizer, got {type(optimizer).__name__}")
        _check(isinstance(last_epoch, int) and not isinstance(last_epoch, bool) and last_epoch >= -1,
               f"{name}: last_epoch must be an int >= -1 (-1: a new schedule), got {last_epoch!r}")
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"{name}: param 'initial_lr' is not specified in param_groups[{i}] when resuming "
                               f"with last_epoch={last_epoch}: load the optimizer's state_dict first")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch, self._step_count, self._is_initial = last_epoch, 0, True
        self.step()
        self._is_initial = False

    def lr_at(self, epoch):
        """The learning rates (one per group) after `epoch` calls to step(), from the base rates."""
        raise NotImplementedError

    def get_lr(self):
        """The learning rates for step `last_epoch`: the closed form here; chainable schedulers compute
        them from the optimizer's current ones, with PyTorch's formulas."""
        return self.lr_at(self.last_epoch)

    def _current(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def step(self):
        self._step_count += 1
        self.last_epoch += 1
        self._set(self.get_lr())

    def _set(self, lrs):
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = self._current()

    def _restart(self):
        """Back to step 0 by the closed form, as PyTorch's SequentialLR does at a milestone."""
        self.last_epoch = 0
        self._set(self.lr_at(0))

    def get_last_lr(self):
        return list(self._last_lr)

    def state_dict(self):
        return {k: v for k, v in self.__dict__.items() if k not in self._not_state}

    def load_state_dict(self, state):
        """Restore what state_dict returned. As in PyTorch the optimizer's lr is left alone (restore the
        optimizer too, or the next step goes on from the lr it has). A state from before state_dict held
        every attribute (last_epoch and base_lrs) loads as well."""
        _check(isinstance(state, dict), f"{type(self).__name__}.load_state_dict expects a scheduler's state_dict, "
                                        f"got a {type(state).__name__}")
        unknown = [k for k in state if k not in self.__dict__ or k in self._not_state]
        _check(not unknown, f"{type(self).__name__}.load_state_dict: unexpected key {unknown[:1]}: a state of "
                            "another scheduler?")
        self.__dict__.update({k: _plain(v) for k, v in state.items()})
        if "_last_lr" not in state:
            self._last_lr = self._current()


class StepLR(LRScheduler):
    """lr × gamma every step_size epochs: lr = base_lr · gamma^⌊epoch / step_size⌋."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        _check(int(step_size) >= 1, f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current()
        return [lr * self.gamma for lr in self._current()]

    def lr_at(self, epoch):
        return [base * self.gamma ** (epoch // self.step_size) for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Per epoch (or per step, with T_max counted in steps):
    lr = eta_min + (base_lr - eta_min)(1 + cos(π·epoch / T_max)) / 2, which rises again after T_max
    as PyTorch's does; a step takes the ratio of successive values of that to the current lr."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        _check(T_max > 0, f"CosineAnnealingLR: T_max must be positive, got {T_max}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        e, T, low = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._current()
        if self._step_count == 1 and e > 0:
            return self.lr_at(e)
        if (e - 1 - T) % (2 * T) == 0:  # the bottom, where the ratio would divide by zero
            return [lr + (base - low) * (1 - math.cos(math.pi / T)) / 2 for lr, base in zip(self._current(),
                                                                                            self.base_lrs)]
        return [(1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T)) * (lr - low) + low
                for lr in self._current()]

    def lr_at(self, epoch):
        c = (1 + math.cos(math.pi * epoch / self.T_max)) / 2
        return [self.eta_min + (base - self.eta_min) * c for base in self.base_lrs]


class OneCycleLR(LRScheduler):
    """Per step (batch), as torch.optim.lr_scheduler.OneCycleLR (total_steps, or epochs × steps_per_epoch):
    the lr anneals from max_lr/div_factor up to max_lr over the first pct_start of total_steps, then down
    to max_lr/div_factor/final_div_factor; with three_phase, down to max_lr/div_factor over as many steps
    again, then to the minimum. With cycle_momentum (PyTorch's default) the momentum (or Adam's β₁) moves
    the opposite way between max_momentum and base_momentum. Stepping past total_steps raises ValueError."""

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None, pct_start=0.3,
                 anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85, max_momentum=0.95, div_factor=25.0,
                 final_div_factor=1e4, three_phase=False, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"OneCycleLR: expected an Optimizer, got {type(optimizer).__name__}")
        groups = optimizer.param_groups
        if total_steps is None:
            _check(isinstance(epochs, int) and isinstance(steps_per_epoch, int) and epochs > 0 and steps_per_epoch > 0,
                   "OneCycleLR: give total_steps, or epochs and steps_per_epoch (positive integers)")
            total_steps = epochs * steps_per_epoch
        _check(isinstance(total_steps, int) and total_steps > 0,
               f"OneCycleLR: total_steps must be a positive integer, got {total_steps}")
        _check(0 <= pct_start <= 1, f"OneCycleLR: pct_start must lie in [0, 1], got {pct_start}")
        _check(anneal_strategy in ("cos", "linear"),
               f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.total_steps, self.anneal_strategy, self.cycle_momentum = total_steps, anneal_strategy, cycle_momentum
        # (last step of the phase, lr from, lr to, momentum from, momentum to), as PyTorch's _schedule_phases
        warm = dict(end_step=float(pct_start * total_steps) - 1, start_lr="initial_lr", end_lr="max_lr",
                    start_momentum="max_momentum", end_momentum="base_momentum")
        if three_phase:
            self._schedule_phases = [
                warm,
                dict(end_step=float(2 * pct_start * total_steps) - 2, start_lr="max_lr", end_lr="initial_lr",
                     start_momentum="base_momentum", end_momentum="max_momentum"),
                dict(end_step=total_steps - 1, start_lr="initial_lr", end_lr="min_lr",
                     start_momentum="max_momentum", end_momentum="max_momentum")]
        else:
            self._schedule_phases = [
                warm,
                dict(end_step=total_steps - 1, start_lr="max_lr", end_lr="min_lr",
                     start_momentum="base_momentum", end_momentum="max_momentum")]
        if last_epoch == -1:  # (when resuming, the optimizer's groups hold these already)
            for group, top in zip(groups, self._per_group(max_lr, groups, "max_lr")):
                group["initial_lr"], group["max_lr"] = top / div_factor, top
                group["min_lr"] = group["initial_lr"] / final_div_factor
        if cycle_momentum:
            _check("momentum" in optimizer.defaults or "betas" in optimizer.defaults,
                   f"OneCycleLR: cycle_momentum needs an optimizer with momentum or betas, not "
                   f"{type(optimizer).__name__} (pass cycle_momentum=False)")
            if last_epoch == -1:
                for group, low, high in zip(groups, self._per_group(base_momentum, groups, "base_momentum"),
                                            self._per_group(max_momentum, groups, "max_momentum")):
                    group["base_momentum"], group["max_momentum"] = low, high
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _per_group(value, groups, name):
        values = list(value) if isinstance(value, (list, tuple)) else [value] * len(groups)
        _check(len(values) == len(groups), f"OneCycleLR: {name} has {len(values)} values for {len(groups)} groups")
        return values

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _phase(self, epoch):
        """(the phase that step `epoch` lies in, the fraction of it done)."""
        if epoch > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {epoch} times, but total_steps is {self.total_steps}")
        start = 0.0
        for i, phase in enumerate(self._schedule_phases):
            if epoch <= phase["end_step"] or i == len(self._schedule_phases) - 1:
                return phase, (epoch - start) / (phase["end_step"] - start)
            start = phase["end_step"]

    def lr_at(self, epoch):
        phase, pct = self._phase(epoch)
        return [self._anneal(g[phase["start_lr"]], g[phase["end_lr"]], pct) for g in self.optimizer.param_groups]

    def _set(self, lrs):
        super()._set(lrs)
        if not self.cycle_momentum:
            return
        phase, pct = self._phase(self.last_epoch)
        for g in self.optimizer.param_groups:
            momentum = self._anneal(g[phase["start_momentum"]], g[phase["end_momentum"]], pct)
            if "betas" in g:
                g["betas"] = (momentum, *g["betas"][1:])
            else:
                g["momentum"] = momentum


class LinearWarmup(LRScheduler):
    """Per step: lr = base_lr·(step + 1)/warmup_steps for the first warmup_steps steps (so the first
    update already moves), then `after`'s schedule restarted at 0 (base_lr if after is None). The same
    as PyTorch's SequentialLR([LinearLR(opt, 1/warmup_steps, total_iters=warmup_steps-1), after],
    milestones=[warmup_steps]). Build `after` first, on the same optimizer, and step only this."""

    _not_state = ("optimizer", "after")

    def __init__(self, optimizer, warmup_steps, after=None):
        _check(int(warmup_steps) >= 1, f"LinearWarmup: warmup_steps must be >= 1, got {warmup_steps}")
        _check(after is None or after.optimizer is optimizer, "LinearWarmup: `after` must schedule the same optimizer")
        self.warmup_steps, self.after = int(warmup_steps), after
        super().__init__(optimizer)

    def lr_at(self, epoch):
        if epoch < self.warmup_steps:
            return [base * (epoch + 1) / self.warmup_steps for base in self.base_lrs]
        if self.after is None:
            return list(self.base_lrs)
        return self.after.lr_at(epoch - self.warmup_steps)

    def step(self):
        self._step_count += 1
        self.last_epoch += 1
        if self.after is None or self.last_epoch < self.warmup_steps:
            self._set(self.lr_at(self.last_epoch))
            return
        if self.last_epoch == self.warmup_steps:
            self.after._restart()
        else:
            self.after.step()
        self._last_lr = self.after.get_last_lr()

    def state_dict(self):
        state = super().state_dict()
        if self.after is not None:
            state["after"] = self.after.state_dict()
        return state

    def load_state_dict(self, state):
        if self.after is not None:
            self.after.load_state_dict(state["after"])
        super().load_state_dict({k: v for k, v in state.items() if k != "after"})


class MultiStepLR(LRScheduler):
    """lr × gamma at each milestone (twice at a milestone listed twice):
    lr = base_lr · gamma^(number of milestones <= epoch)."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestones, self.gamma = sorted(int(m) for m in milestones), gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        times = self.milestones.count(self.last_epoch)
        return [lr * self.gamma ** times for lr in self._current()] if times else self._current()

    def lr_at(self, epoch):
        return [base * self.gamma ** bisect.bisect_right(self.milestones, epoch) for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """lr × gamma every epoch: lr = base_lr · gamma^epoch."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return self._current() if self._is_initial else [lr * self.gamma for lr in self._current()]

    def lr_at(self, epoch):
        return [base * self.gamma ** epoch for base in self.base_lrs]


class LinearLR(LRScheduler):
    """lr = base_lr · f, with f moving linearly from start_factor to end_factor over total_iters steps,
    then staying at end_factor; a step multiplies the current lr by the ratio of successive f."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, last_epoch=-1):
        _check(0 < start_factor <= 1 and 0 <= end_factor <= 1,
               f"LinearLR: start_factor must lie in (0, 1] and end_factor in [0, 1], got {start_factor}, {end_factor}")
        _check(int(total_iters) >= 1, f"LinearLR: total_iters must be >= 1, got {total_iters}")
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, int(total_iters)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        start, end, e = self.start_factor, self.end_factor, self.last_epoch
        if e == 0:
            return [lr * start for lr in self._current()]
        if self._is_initial or e > self.total_iters:
            return self._current()
        return [lr * (1.0 + (end - start) / (self.total_iters * start + (e - 1) * (end - start)))
                for lr in self._current()]

    def lr_at(self, epoch):
        f = self.start_factor + (self.end_factor - self.start_factor) * min(epoch, self.total_iters) / self.total_iters
        return [base * f for base in self.base_lrs]


class LambdaLR(LRScheduler):
    """lr = base_lr · lr_lambda(epoch), with one function for all groups or one per group. The functions
    are not part of state_dict (they are code), as in PyTorch."""

    _not_state = ("optimizer", "lr_lambdas")

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        groups = optimizer.param_groups
        self.lr_lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * len(groups)
        _check(len(self.lr_lambdas) == len(groups),
               f"LambdaLR: {len(self.lr_lambdas)} functions for {len(groups)} parameter groups")
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch):
        return [base * fn(epoch) for base, fn in zip(self.base_lrs, self.lr_lambdas)]


class ReduceLROnPlateau:
    """Call `step(metric)` once per epoch: when the metric has not improved for more than `patience`
    epochs, every group's lr is multiplied by `factor` (not below min_lr), then `cooldown` epochs pass
    before counting again. "Improved" is mode ('min' or 'max') beyond `threshold`, relative ('rel') or
    absolute ('abs'), as torch.optim.lr_scheduler.ReduceLROnPlateau."""

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0.0, eps=1e-8):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"ReduceLROnPlateau: expected an Optimizer, got {type(optimizer).__name__}")
        _check(mode in ("min", "max"), f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        _check(threshold_mode in ("rel", "abs"),
               f"ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        _check(0 <= factor < 1, f"ReduceLROnPlateau: factor must lie in [0, 1), got {factor}")
        groups = optimizer.param_groups
        self.min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * len(groups)
        _check(len(self.min_lrs) == len(groups),
               f"ReduceLROnPlateau: {len(self.min_lrs)} min_lr values for {len(groups)} parameter groups")
        self.optimizer, self.mode, self.factor, self.patience = optimizer, mode, factor, int(patience)
        self.threshold, self.threshold_mode, self.cooldown, self.eps = threshold, threshold_mode, int(cooldown), eps
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs, self.cooldown_counter, self.last_epoch = 0, 0, 0
        self._last_lr = [group["lr"] for group in groups]

    def _is_better(self, value):
        if self.mode == "min":
            bound = self.best * (1 - self.threshold) if self.threshold_mode == "rel" else self.best - self.threshold
            return value < bound
        bound = self.best * (1 + self.threshold) if self.threshold_mode == "rel" else self.best + self.threshold
        return value > bound

    def step(self, metrics):
        value = float(metrics)
        self.last_epoch += 1
        if self._is_better(value):
            self.best, self.num_bad_epochs = value, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, low in zip(self.optimizer.param_groups, self.min_lrs):
                new = max(group["lr"] * self.factor, low)
                if group["lr"] - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        return list(self._last_lr)

    def state_dict(self):
        return {"best": self.best, "num_bad_epochs": self.num_bad_epochs, "cooldown_counter": self.cooldown_counter,
                "last_epoch": self.last_epoch, "last_lr": list(self._last_lr)}

    def load_state_dict(self, state):
        self.best = float(_plain(state["best"]))
        self.num_bad_epochs = int(_plain(state["num_bad_epochs"]))
        self.cooldown_counter = int(_plain(state["cooldown_counter"]))
        self.last_epoch, self._last_lr = int(_plain(state["last_epoch"])), list(_plain(state["last_lr"]))
