"""Checkpoints: a model, its optimizer and schedule, and your config in ONE ``.npz`` file.

Layout of the archive:
  ``model/<name>``               one array per ``model.state_dict()`` entry
  ``optimizer/state/<i>/<name>``  the optimizer's per-parameter arrays
  ``__meta__``                   a 0-d unicode array holding JSON: format and version,
                                 your ``config`` and ``extra``, the scheduler state, and
                                 the optimizer's numbers, with {"__array__": key} where
                                 its arrays were

Saving is atomic (temp file in the same directory, fsync, ``os.replace``), so a crash
mid-save leaves the previous checkpoint intact.  Loading never unpickles
(``allow_pickle=False``) and validates everything before changing anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile

import numpy as np

FORMAT = "minigrad-checkpoint"
VERSION = 1
META_KEY = "__meta__"
MODEL_PREFIX = "model/"


class CheckpointError(Exception):
    """A checkpoint could not be written or read, or does not fit the model/optimizer."""


def save_checkpoint(path, model, optimizer=None, scheduler=None, config=None, extra=None):
    """Write ``model`` (and optionally ``optimizer``, ``scheduler``) plus the JSON-able
    ``config`` and ``extra`` (e.g. ``{"rng": rng.bit_generator.state, "step": 1200}``)
    to ``path`` atomically.  The path is used as given (no ``.npz`` is appended)."""
    path = os.fspath(path)
    arrays = {MODEL_PREFIX + name: array for name, array in model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "config": config,
        "extra": extra,
        "optimizer": None if optimizer is None else _arrays_out(optimizer.state_dict(), "optimizer", arrays),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
    }
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: config, extra and scheduler state must be JSON-serializable "
                              f"(dicts, lists, str, numbers, bool, None): {e}") from e
    arrays[META_KEY] = np.array(text)
    _write_atomically(path, arrays)


def load_checkpoint(path, model=None, optimizer=None, scheduler=None) -> dict:
    """Read ``path`` and load it into whichever of ``model``, ``optimizer``, ``scheduler``
    are given.  Returns ``{"config": ..., "extra": ...}``.

    Raises CheckpointError, naming the file and the problem, for a missing, truncated or
    corrupt file, one holding pickled objects, or state that does not fit (missing keys,
    wrong shapes); nothing is loaded in that case.
    """
    path = os.fspath(path)
    arrays, meta = _read(path)
    model_state = {k[len(MODEL_PREFIX):]: v for k, v in arrays.items() if k.startswith(MODEL_PREFIX)}
    optimizer_state = None if meta["optimizer"] is None else _arrays_in(meta["optimizer"], arrays, path)

    # Validate everything before touching anything, so a bad file changes nothing.
    checks = []
    if model is not None:
        checks.append(("model", lambda: model._check_state_dict(model_state)))
    if optimizer is not None:
        if optimizer_state is None:
            raise CheckpointError(f"{path}: the checkpoint has no optimizer state")
        checks.append(("optimizer", lambda: optimizer._check_state_dict(optimizer_state)))
    if scheduler is not None:
        if meta["scheduler"] is None:
            raise CheckpointError(f"{path}: the checkpoint has no scheduler state")
        checks.append(("scheduler", lambda: scheduler._check_state_dict(meta["scheduler"])))
    for what, check in checks:
        try:
            check()
        except ValueError as e:
            raise CheckpointError(f"{path}: the {what} state does not fit: {e}") from e

    if model is not None:
        model.load_state_dict(model_state)
    if optimizer is not None:
        optimizer.load_state_dict(optimizer_state)
    if scheduler is not None:
        scheduler.load_state_dict(meta["scheduler"])
    return {"config": meta["config"], "extra": meta["extra"]}


# --------------------------------------------------------------------------- writing


def _write_atomically(path, arrays):
    """Write to a temp file next to ``path``, make it durable, then rename it over
    ``path``: readers see either the old file or the complete new one."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:  # also KeyboardInterrupt: never leave a temp file behind
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX only)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _arrays_out(tree, prefix, arrays):
    """Copy of ``tree`` (dicts, lists, numbers) with each numpy array moved into
    ``arrays`` under a path-like key and replaced by {"__array__": key}."""
    if isinstance(tree, np.ndarray):
        arrays[prefix] = tree
        return {"__array__": prefix}
    if isinstance(tree, dict):
        return {k: _arrays_out(v, f"{prefix}/{k}", arrays) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_arrays_out(v, f"{prefix}/{i}", arrays) for i, v in enumerate(tree)]
    if isinstance(tree, np.generic):
        return tree.item()
    return tree


def _arrays_in(tree, arrays, path):
    """Inverse of ``_arrays_out``."""
    if isinstance(tree, dict):
        if tree.keys() == {"__array__"}:
            key = tree["__array__"]
            if key not in arrays:
                raise CheckpointError(f"{path}: the metadata refers to array '{key}', which the "
                                      "archive does not contain")
            return arrays[key]
        return {k: _arrays_in(v, arrays, path) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_arrays_in(v, arrays, path) for v in tree]
    return tree


# --------------------------------------------------------------------------- reading


def _read(path):
    """All arrays of the archive (eagerly, so corruption shows up here) and the metadata."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as e:  # zipfile, zlib, OSError, ValueError...: numpy does not unify them
        raise CheckpointError(f"{path}: not a readable .npz checkpoint (truncated or corrupt?): "
                              f"{type(e).__name__}: {e}") from e
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise CheckpointError(f"{path}: not an .npz archive (np.load gave a {type(archive).__name__})")
    arrays = {}
    with archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except ValueError as e:
                if "pickle" in str(e):
                    raise CheckpointError(
                        f"{path}: entry '{key}' is a pickled object array; checkpoints are read "
                        "with allow_pickle=False and never unpickle (pickles can run code)") from e
                raise CheckpointError(f"{path}: entry '{key}' is unreadable: {e}") from e
            except Exception as e:  # a damaged member: zlib, zipfile, EOF errors
                raise CheckpointError(f"{path}: entry '{key}' is unreadable (truncated or "
                                      f"corrupt?): {type(e).__name__}: {e}") from e
    meta_array = arrays.pop(META_KEY, None)
    if meta_array is None or meta_array.dtype.kind != "U" or meta_array.ndim != 0:
        raise CheckpointError(f"{path}: not a minigrad checkpoint (no '{META_KEY}' text entry)")
    try:
        meta = json.loads(meta_array.item())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: the '{META_KEY}' entry is not valid JSON: {e}") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a minigrad checkpoint (format is "
                              f"{meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {meta.get('version')!r}; this "
                              f"minigrad reads version {VERSION}")
    for field in ("config", "extra", "optimizer", "scheduler"):
        meta.setdefault(field, None)
    return arrays, meta
