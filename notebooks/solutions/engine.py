"""Notebook 0a · An autograd engine from an empty cell.  ``Tensor`` is the notebook's class:
each op builds its output with it, passing the inputs and one rule per input."""

import numpy as np


def exp(a):
    out = np.exp(a.data)
    return type(a)(out, (a,), (lambda g: g * out,), "exp")


def divide(a, b):
    return type(a)(a.data / b.data, (a, b),
                   (lambda g: g / b.data, lambda g: -g * a.data / b.data ** 2), "divide")
