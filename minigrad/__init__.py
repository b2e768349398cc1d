"""minigrad: tensor reverse-mode autograd on numpy, small enough to read in an afternoon.

    >>> import minigrad as mg
    >>> x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad.tolist()
    [2.0, 4.0, 6.0]
"""

from minigrad import nn, optim
from minigrad.allocator import tune_allocator
from minigrad.autograd import (
    detect_anomaly,
    enable_grad,
    grad,
    is_grad_enabled,
    name_scope,
    no_grad,
)
from minigrad.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minigrad.gradcheck import GradcheckError, KinkError, gradcheck, gradgradcheck
from minigrad.ops import (
    abs,
    add,
    astype,
    attention,
    broadcast_to,
    clip,
    concatenate,
    cross_entropy,
    div,
    dropout,
    embedding,
    erf,
    exp,
    gelu,
    getitem,
    layer_norm,
    linear,
    log,
    log_softmax,
    masked_fill,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mul,
    neg,
    pad,
    pow,
    relu,
    reshape,
    sigmoid,
    softmax,
    split,
    sqrt,
    squeeze,
    stack,
    sub,
    sum,
    sum_to,
    swapaxes,
    tanh,
    transpose,
    unsqueeze,
    var,
    where,
)
from minigrad.tensor import (
    Tensor,
    arange,
    full,
    ones,
    ones_like,
    rand,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from minigrad.tracing import trace

tune_allocator()
