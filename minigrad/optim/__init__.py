"""Optimizers (SGD, Adam, AdamW), gradient clipping and learning-rate schedules.

    >>> import numpy as np
    >>> from minigrad import nn, optim
    >>> w = nn.Parameter(np.array([1.0, -2.0], np.float32))
    >>> opt = optim.SGD([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w.tolist()
    [0.800000011920929, -1.600000023841858]
"""

from minigrad.optim.optimizers import SGD, Adam, AdamW, Optimizer, clip_grad_norm_
from minigrad.optim.schedules import ConstantSchedule, NoamSchedule, Schedule, WarmupCosineSchedule
