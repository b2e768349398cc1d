"""Neural-network building blocks: Module and Parameter, layers, initializers.

    >>> import numpy as np
    >>> from minigrad import nn, tensor
    >>> rng = np.random.default_rng(0)
    >>> mlp = nn.Sequential(nn.Linear(2, 8, rng=rng), nn.LayerNorm(8), nn.Linear(8, 1, rng=rng))
    >>> mlp(tensor(np.ones((4, 2), np.float32))).shape
    (4, 1)
    >>> mlp.num_parameters()
    49
"""

from minigrad.nn import init
from minigrad.nn.layers import Dropout, Embedding, LayerNorm, Linear, ModuleList, Sequential
from minigrad.nn.module import Module, Parameter
