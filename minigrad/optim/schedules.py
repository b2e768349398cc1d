"""Learning-rate schedules: each wraps an optimizer and sets its ``lr`` per step.

Steps are counted from 1: right after construction the optimizer's lr is the one for
its first update.  Call ``schedule.step()`` after each ``optimizer.step()``, as in
PyTorch.  A schedule's only state is its step count.
"""

from __future__ import annotations

import math

from minigrad.optim.optimizers import check_number


class Schedule:
    """Shared mechanics; a schedule only defines ``lr_at(step)``."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.step_num = 1
        optimizer.lr = self.get_lr()

    def lr_at(self, step: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} does not define lr_at(step)")

    def get_lr(self) -> float:
        """The learning rate of the current step."""
        return self.lr_at(self.step_num)

    def step(self) -> float:
        """Advance one step and set the optimizer's lr; returns it."""
        self.step_num += 1
        self.optimizer.lr = self.get_lr()
        return self.optimizer.lr

    def state_dict(self) -> dict:
        return {"kind": type(self).__name__, "step_num": self.step_num}

    def load_state_dict(self, state: dict):
        self._check_state_dict(state)
        self.step_num = int(state["step_num"])
        self.optimizer.lr = self.get_lr()

    def _check_state_dict(self, state: dict):
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, dict) or not isinstance(state.get("step_num"), int) \
                or state["step_num"] < 1:
            raise ValueError(f"{who}: expected {{'kind': ..., 'step_num': int >= 1}}, got {state!r}")
        if state.get("kind") != type(self).__name__:
            raise ValueError(f"{who}: the state comes from a {state.get('kind')} schedule")


class NoamSchedule(Schedule):
    """The schedule of "Attention Is All You Need" (§5.3), named after Noam Shazeer:

        lr = scale · d_model^-0.5 · min(step^-0.5, step · warmup_steps^-1.5)

    a linear rise for ``warmup_steps`` steps, then decay as 1/√step.  The peak, at
    step = warmup_steps, is scale / √(d_model · warmup_steps).
    """

    def __init__(self, optimizer, d_model: int, warmup_steps: int = 4000, scale: float = 1.0):
        check_number("NoamSchedule", "d_model", d_model, at_least=1, integer=True)
        check_number("NoamSchedule", "warmup_steps", warmup_steps, at_least=1, integer=True)
        check_number("NoamSchedule", "scale", scale, above=0)
        self.d_model, self.warmup_steps, self.scale = d_model, warmup_steps, scale
        super().__init__(optimizer)

    def lr_at(self, step):
        return self.scale * self.d_model ** -0.5 * min(step ** -0.5, step * self.warmup_steps ** -1.5)


class WarmupCosineSchedule(Schedule):
    """Linear warmup from 0 to ``max_lr`` over ``warmup_steps``, then a half cosine from
    ``max_lr`` down to ``min_lr`` at ``total_steps``; ``min_lr`` after that.

        lr = max_lr · step / warmup_steps                              (step ≤ warmup)
        lr = min_lr + ½(max_lr - min_lr)(1 + cos(π·progress))         (after)
        progress = (step - warmup_steps) / (total_steps - warmup_steps), at most 1
    """

    def __init__(self, optimizer, max_lr: float, warmup_steps: int, total_steps: int,
                 min_lr: float = 0.0):
        check_number("WarmupCosineSchedule", "max_lr", max_lr, above=0)
        check_number("WarmupCosineSchedule", "min_lr", min_lr, at_least=0)
        check_number("WarmupCosineSchedule", "warmup_steps", warmup_steps, at_least=0, integer=True)
        check_number("WarmupCosineSchedule", "total_steps", total_steps, at_least=1, integer=True)
        if min_lr > max_lr:
            raise ValueError(f"WarmupCosineSchedule: need min_lr <= max_lr, got {min_lr} and {max_lr}")
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(f"WarmupCosineSchedule: need 0 <= warmup_steps < total_steps, got "
                             f"{warmup_steps} and {total_steps}")
        self.max_lr, self.min_lr = max_lr, min_lr
        self.warmup_steps, self.total_steps = warmup_steps, total_steps
        super().__init__(optimizer)

    def lr_at(self, step):
        if step <= self.warmup_steps:
            return self.max_lr * step / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return self.min_lr + 0.5 * (self.max_lr - self.min_lr) * (1 + math.cos(math.pi * progress))


class ConstantSchedule(Schedule):
    """The same ``lr`` at every step, so a training loop can always have a schedule."""

    def __init__(self, optimizer, lr: float):
        self.lr = check_number("ConstantSchedule", "lr", lr, at_least=0)
        super().__init__(optimizer)

    def lr_at(self, step):
        return self.lr
