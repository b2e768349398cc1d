"""Checkpoints: a model, its optimizer and schedule, and your config in ONE ``.npz`` file.

Layout of the archive:
  ``model/<name>``               one array per ``model.state_dict()`` entry
  ``optimizer/state/<i>/<name>``  the optimizer's per-parameter arrays
  ``__meta__``                   a 0-d unicode array holding JSON: format and version,
                                 your ``config`` and ``extra``, the scheduler state, and
                                 the optimizer's numbers, with {"__array__": key} where
                                 its arrays were

Saving is atomic (temp file in the same directory, fsync, ``os.replace``), so a crash
mid-save leaves the previous checkpoint intact; the file gets the usual permissions
(0666 minus the umask).

Loading trusts nothing in the file and checks before it allocates, in this order:
  1. the file: exists, is a regular file, can be opened, is a zip (.npz) archive;
  2. ``__meta__``: at most ``MAX_META_BYTES``, JSON nested at most ``MAX_META_DEPTH``
     deep, fields of the types and ranges in ``_check_meta``;
  3. the members: only ``__meta__``, ``model/...`` and the optimizer arrays the metadata
     names; anything else is refused without being read.  Each member's .npy header
     (shape, dtype) is read and must match the member's size, and, where a model or
     optimizer is given, the shape and dtype it will be copied into;
  4. a model config stored under ``config["model"]`` must agree with ``model.config``;
  5. only then are the needed arrays read (never unpickled: object arrays are refused
     from their header), and they must be finite.
Nothing is changed unless every check passes.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import zipfile
from dataclasses import dataclass

import numpy as np

from minigrad.files import write_atomically

FORMAT = "minigrad-checkpoint"
VERSION = 1
META_KEY = "__meta__"
MODEL_PREFIX = "model/"
OPTIMIZER_ARRAY = re.compile(r"optimizer/state/(\d+)/[^/]+")  # where _arrays_out puts them

MAX_META_BYTES = 16 * 2**20  # the JSON text (4 bytes a character); a training checkpoint's is a few kB
MAX_META_DEPTH = 64          # nesting of [ and {; ours is at most 6 deep
MAX_STEP = 10**12            # step counters (optimizer, schedule)
# Model config fields a checkpoint may differ in from the model it loads into: they are
# training-time settings (a resumed run may change them), not what the weights compute.
SETTINGS_THAT_MAY_CHANGE = ("dropout",)


class CheckpointError(Exception):
    """A checkpoint could not be written or read, or does not fit the model/optimizer."""


@dataclass(frozen=True)
class ArrayInfo:
    """What a member's .npy header declares, known before its data is read."""

    shape: tuple
    dtype: np.dtype


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
    try:
        write_atomically(path, lambda f: np.savez(f, **arrays))
    except OSError as e:  # a full disk (ENOSPC), a file-size limit (EFBIG), a missing directory, ...
        kept = "the checkpoint that was there is left as it was" if os.path.isfile(path) else "nothing was written"
        raise CheckpointError(f"{path}: cannot save the checkpoint: {e.strerror or e}; {kept}") from e


def load_checkpoint(path, model=None, optimizer=None, scheduler=None) -> dict:
    """Read ``path`` and load it into whichever of ``model``, ``optimizer``, ``scheduler``
    are given.  Returns ``{"config": ..., "extra": ...}``.

    Raises CheckpointError, naming the file and the problem, for a missing, unreadable,
    truncated or corrupt file, hostile metadata, pickled objects, non-finite weights, or
    state that does not fit (missing or unexpected keys, shapes, a different model
    config); nothing is loaded in that case.  See the module docstring for the checks.
    """
    path = os.fspath(path)
    with _Archive(path) as archive:
        meta = archive.meta
        model_infos = {k[len(MODEL_PREFIX):]: info for k, info in archive.infos.items()
                       if k.startswith(MODEL_PREFIX)}
        if optimizer is not None and meta["optimizer"] is None:
            raise CheckpointError(f"{path}: the checkpoint has no optimizer state")
        if scheduler is not None and meta["scheduler"] is None:
            raise CheckpointError(f"{path}: the checkpoint has no scheduler state")

        # Shapes and dtypes from the headers, before any data is read.
        if model is not None:
            _check_model_config(path, meta["config"], model)
            try:
                check_arrays_against(model, model_infos)
            except ValueError as e:
                raise CheckpointError(f"{path}: the model state does not fit: {e}") from e
        if optimizer is not None:
            _check_optimizer_arrays(path, archive.infos, optimizer)

        # Read what is needed, then validate everything before touching anything.
        model_state = None if model is None else {
            name: archive.read(MODEL_PREFIX + name) for name in model_infos}
        optimizer_state = None if optimizer is None else _arrays_in(meta["optimizer"], archive.read)
    if model_state is not None:
        check_finite(path, model_state, "model")
    if optimizer_state is not None:
        check_finite(path, {k: v for k, v in _tree_arrays(optimizer_state, "optimizer")}, "optimizer")
    checks = []
    if model is not None:
        checks.append(("model", lambda: model._check_state_dict(model_state)))
    if optimizer is not None:
        checks.append(("optimizer", lambda: optimizer._check_state_dict(optimizer_state)))
    if scheduler is not None:
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


def read_metadata(path) -> dict:
    """The checked ``__meta__`` of ``path`` (format, version, config, extra, optimizer
    with {"__array__": key} placeholders, scheduler), reading no array data."""
    with _Archive(os.fspath(path)) as archive:
        return archive.meta


# --------------------------------------------------------------------------- checks other code reuses


def check_arrays_against(model, arrays: dict) -> None:
    """Check that ``arrays`` (name -> anything with ``.shape`` and ``.dtype``: numpy arrays,
    or ArrayInfo read from headers) would load into ``model.load_state_dict``: the same
    names, the same shapes, and a dtype that converts to the model's within its kind
    (float64 -> float32 is fine, complex, text or object is not).  Reads no data.
    Raises ValueError listing every problem."""
    destinations = dict(model.named_parameters())
    destinations.update(model.named_buffers(persistent_only=True))
    problems = [f"missing key '{k}' (shape {d.shape})" for k, d in destinations.items() if k not in arrays]
    problems += [f"unexpected key '{k}'" for k in arrays if k not in destinations]
    for name, destination in destinations.items():
        if name not in arrays:
            continue
        shape, dtype = tuple(arrays[name].shape), np.dtype(arrays[name].dtype)
        if shape != destination.shape:
            problems.append(f"shape mismatch for '{name}': the state has {shape}, the model has {destination.shape}")
        elif not _converts(dtype, destination.dtype):
            problems.append(f"'{name}' has dtype {dtype}, which does not convert to the model's {destination.dtype}")
    if problems:
        raise ValueError(f"{len(problems)} problem(s), nothing was loaded:\n  " + "\n  ".join(problems))


def _converts(source, destination):
    if source.hasobject or source.kind not in "biuf":
        return False  # complex, text, bytes, dates, structured, object: never weights
    return np.can_cast(source, destination, casting="same_kind")


def check_finite(path, arrays, what):
    """Refuse NaN/Inf in ``arrays`` (name -> array) read from ``path``: such weights give NaN
    outputs, and there is nothing to resume from (a diverged run); read the file with numpy
    to inspect one.  Raises CheckpointError naming every such array."""
    bad = [f"'{name}' ({int(np.count_nonzero(~np.isfinite(a)))} of {a.size})"
           for name, a in arrays.items() if a.dtype.kind == "f" and not np.isfinite(a).all()]
    if bad:
        raise CheckpointError(f"{path}: the {what} state holds NaN or Inf values in {', '.join(bad)}; "
                              "the weights of a diverged run cannot be loaded")


def _check_model_config(path, stored_config, model):
    """A model config stored under ``config["model"]`` (as training checkpoints do) must
    equal ``model.config.to_dict()``, apart from SETTINGS_THAT_MAY_CHANGE: shapes alone
    cannot tell 4 heads from 8."""
    ours = getattr(getattr(model, "config", None), "to_dict", None)
    theirs = stored_config.get("model") if isinstance(stored_config, dict) else None
    if ours is None or not isinstance(theirs, dict):
        return
    ours = ours()
    differ = [f"{k}: the checkpoint has {theirs.get(k)!r}, the model has {ours.get(k)!r}"
              for k in sorted(set(ours) | set(theirs), key=str)
              if k not in SETTINGS_THAT_MAY_CHANGE and theirs.get(k) != ours.get(k)]
    if differ:
        raise CheckpointError(f"{path}: the checkpoint was written by a model with a different config; "
                              + "; ".join(differ))


def _check_optimizer_arrays(path, infos, optimizer):
    """Every optimizer array has the shape of its parameter, known from the headers."""
    problems = []
    for key, info in infos.items():
        match = OPTIMIZER_ARRAY.fullmatch(key)
        if match is None:
            continue
        i = int(match.group(1))
        if i >= len(optimizer.params):
            problems.append(f"'{key}' is for parameter {i}; the optimizer has {len(optimizer.params)}")
        elif tuple(info.shape) != optimizer.params[i].shape:
            problems.append(f"'{key}' has shape {tuple(info.shape)}, parameter {i} has {optimizer.params[i].shape}")
        elif not _converts(np.dtype(info.dtype), optimizer.params[i].dtype):
            problems.append(f"'{key}' has dtype {info.dtype}, parameter {i} is {optimizer.params[i].dtype}")
    if problems:
        raise CheckpointError(f"{path}: the optimizer state does not fit: " + "; ".join(problems))


# --------------------------------------------------------------------------- writing


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


def _is_ref(tree):
    return isinstance(tree, dict) and tree.keys() == {"__array__"}


def _arrays_in(tree, read):
    """Inverse of ``_arrays_out``: each {"__array__": key} becomes ``read(key)``."""
    if _is_ref(tree):
        return read(tree["__array__"])
    if isinstance(tree, dict):
        return {k: _arrays_in(v, read) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_arrays_in(v, read) for v in tree]
    return tree


def _tree_arrays(tree, where):
    """(place, array) for every array in a tree of dicts and lists."""
    if isinstance(tree, np.ndarray):
        yield where, tree
    elif isinstance(tree, dict):
        for k, v in tree.items():
            yield from _tree_arrays(v, f"{where}/{k}")
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _tree_arrays(v, f"{where}/{i}")


def _refs(tree):
    """Every array key that the metadata tree refers to."""
    if _is_ref(tree):
        yield tree["__array__"]
    elif isinstance(tree, dict):
        for v in tree.values():
            yield from _refs(v)
    elif isinstance(tree, list):
        for v in tree:
            yield from _refs(v)


# --------------------------------------------------------------------------- reading


class _Archive:
    """An open checkpoint whose metadata and member headers are read and checked, and
    whose arrays are read only on request (``read(key)``)."""

    def __init__(self, path):
        self.path = path
        self._file, self._zip = _open_zip(path)
        try:
            self._members = self._list_members()
            self.meta = self._read_meta()
            self.infos = {key: self._header(key) for key in self._members if key != META_KEY}
        except BaseException:
            self.close()
            raise

    def close(self):
        self._zip.close()
        self._file.close()  # a ZipFile leaves a file object it was given open

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _fail(self, message):
        return CheckpointError(f"{self.path}: {message}")

    def _list_members(self):
        """key -> ZipInfo; each member is a .npy file, listed once."""
        members = {}
        for info in self._zip.infolist():
            if not info.filename.endswith(".npy"):
                raise self._fail(f"member '{info.filename}' is not a .npy array; not a minigrad checkpoint")
            key = info.filename[:-len(".npy")]
            if key in members:
                raise self._fail(f"member '{info.filename}' appears twice in the archive")
            members[key] = info
        if META_KEY not in members:
            raise self._fail(f"not a minigrad checkpoint (no '{META_KEY}' entry; "
                             f"it holds {_short_list(sorted(members))})")
        return members

    def _header(self, key):
        """ArrayInfo from the .npy header of ``key``, checked against the member's size."""
        info = self._members[key]
        try:
            with self._zip.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f".npy format version {version}; checkpoints use 1.0 or 2.0")
                offset = f.tell()
        except Exception as e:  # zlib, zipfile, EOF and header-format errors alike
            raise self._fail(f"entry '{key}' has an unreadable .npy header (truncated or corrupt?): "
                             f"{type(e).__name__}: {e}") from e
        if dtype.hasobject:
            raise self._fail(f"entry '{key}' is a pickled object array; checkpoints never unpickle "
                             "(unpickling can run code)")
        declared = offset + math.prod(shape) * dtype.itemsize
        if declared != info.file_size:
            raise self._fail(f"entry '{key}' declares shape {shape} of {dtype} ({declared:,} bytes with its "
                             f"header) but holds {info.file_size:,} bytes (truncated or corrupt?)")
        return ArrayInfo(tuple(shape), dtype)

    def read(self, key) -> np.ndarray:
        """The array stored under ``key``, whose header has been checked."""
        if key not in self._members:
            raise self._fail(f"the metadata refers to array '{key}', which the archive does not contain")
        try:
            with self._zip.open(self._members[key]) as f:
                return np.lib.format.read_array(f, allow_pickle=False)
        except Exception as e:  # a damaged member: zlib, zipfile (bad CRC), EOF errors
            raise self._fail(f"entry '{key}' is unreadable (truncated or corrupt?): "
                             f"{type(e).__name__}: {e}") from e

    def _read_meta(self):
        header = self._header(META_KEY)
        if header.dtype.kind != "U" or header.shape != ():
            raise self._fail(f"not a minigrad checkpoint ('{META_KEY}' is a {header.dtype} array of "
                             f"shape {header.shape}, not text)")
        if header.dtype.itemsize > MAX_META_BYTES:
            raise self._fail(f"the '{META_KEY}' text is {header.dtype.itemsize:,} bytes, more than the "
                             f"{MAX_META_BYTES:,} a checkpoint's metadata may have")
        try:
            meta = parse_json(self.read(META_KEY).item(), f"the '{META_KEY}' entry")
        except ValueError as e:
            raise self._fail(str(e)) from e
        _check_meta(meta, self._fail)
        unexpected = [k for k in self._members
                      if not (k == META_KEY or k.startswith(MODEL_PREFIX) or k in set(_refs(meta["optimizer"])))]
        if unexpected:
            raise self._fail(f"unexpected entries {_short_list(unexpected)} (not model weights or state "
                             "the metadata names); refused without reading them")
        return meta


def _open_zip(path):
    """(file, zipfile.ZipFile) for the archive at ``path``, or a CheckpointError saying
    why it is not one."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint: {e.strerror}") from e
    if stat.S_ISDIR(mode):
        raise CheckpointError(f"{path}: is a directory; give the checkpoint file inside it "
                              "(for example checkpoint.npz)")
    if not stat.S_ISREG(mode):
        raise CheckpointError(f"{path}: not a regular file, so not a checkpoint")
    try:
        file = open(path, "rb")  # noqa: SIM115  (the ZipFile owns and closes it)
    except PermissionError:
        raise CheckpointError(f"{path}: permission denied; the checkpoint cannot be read") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot open the checkpoint: {e.strerror}") from e
    try:
        start = file.read(4)
        file.seek(0)
        return file, zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        file.close()
        if start != b"PK\x03\x04":
            raise CheckpointError(f"{path}: not a checkpoint archive (a .npz checkpoint is a zip file; "
                                  f"this one starts with {start!r})") from None
        raise CheckpointError(f"{path}: not a readable .npz checkpoint (truncated or corrupt?): "
                              f"{type(e).__name__}: {e}") from e


def parse_json(text: str | bytes, what: str, max_bytes: int = MAX_META_BYTES, max_depth: int = MAX_META_DEPTH):
    """``json.loads(text)`` for JSON read from a file, bounded: ValueError "<what> is ..."
    for more than ``max_bytes`` of UTF-8, nesting deeper than ``max_depth`` (checked
    before parsing: ``json.loads`` recurses, and deep input overflows the stack), or text
    that does not parse (an integer of over 4,300 digits included).  Every metadata JSON
    (checkpoints, safetensors files, metrics lines) is read through this."""
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > max_bytes:
        raise ValueError(f"{what} is {size:,} bytes of JSON, more than the {max_bytes:,} allowed")
    depth = json_depth(text)
    if depth > max_depth:
        raise ValueError(f"{what} is JSON nested {depth} deep; at most {max_depth} is allowed")
    try:
        return json.loads(text)
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, or an integer of over 4300 digits
        raise ValueError(f"{what} is not valid JSON: {e}") from None


def json_depth(text: str | bytes) -> int:
    """How deeply ``[`` and ``{`` nest in the JSON ``text`` outside its strings, found in
    a few vectorized passes (json.loads recurses, and overflows the stack on deep input).

    A quote opens or closes a string unless an odd number of backslashes precede it.
    Where the text is not valid JSON this may differ from a parser's view, but only
    after the point at which the parser stops with an error.
    """
    codes = np.frombuffer(text.encode("utf-8") if isinstance(text, str) else text, dtype=np.uint8)
    index = np.arange(len(codes), dtype=np.int32)
    last_plain = np.maximum.accumulate(np.where(codes != ord("\\"), index, -1))  # last non-backslash
    backslashes_before = index - 1 - np.concatenate(([-1], last_plain[:-1]))
    quotes = (codes == ord('"')) & (backslashes_before % 2 == 0)
    outside = np.cumsum(quotes, dtype=np.int32) % 2 == 0
    opens = outside & ((codes == ord("[")) | (codes == ord("{")))
    closes = outside & ((codes == ord("]")) | (codes == ord("}")))
    return int(np.cumsum(opens.astype(np.int32) - closes, dtype=np.int32).max(initial=0))


def _short_list(items, n=5):
    shown = ", ".join(f"'{k}'" for k in items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "") if items else "nothing"


# --------------------------------------------------------------------------- the metadata schema
#
#   field       type and range
#   format      "minigrad-checkpoint"
#   version     1
#   config      any JSON (yours; nesting bounded by MAX_META_DEPTH)
#   extra       any JSON (yours)
#   optimizer   null, or {"kind": str, "hyperparams": {str: number, bool, null or list of numbers},
#                         "state": [{"step": int in [0, MAX_STEP], <name>: {"__array__": key}}]}
#   scheduler   null, or {"kind": str, "step_num": int in [1, MAX_STEP]}
#
# The optimizer and scheduler check the rest (their kind, hyperparameter names) themselves.


def _check_meta(meta, fail):
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise fail(f"not a minigrad checkpoint (format is {found!r}, expected {FORMAT!r})")
    if meta.get("version") != VERSION:
        raise fail(f"checkpoint format version {meta.get('version')!r}; this minigrad reads version {VERSION}")
    for field in ("config", "extra", "optimizer", "scheduler"):
        meta.setdefault(field, None)
    optimizer, scheduler = meta["optimizer"], meta["scheduler"]
    if optimizer is not None:
        if not (isinstance(optimizer, dict) and isinstance(optimizer.get("kind"), str)
                and isinstance(optimizer.get("hyperparams"), dict) and isinstance(optimizer.get("state"), list)):
            raise fail("the optimizer metadata is not {'kind': str, 'hyperparams': {...}, 'state': [...]}")
        for name, value in optimizer["hyperparams"].items():
            values = value if isinstance(value, list) else [value]
            if not all(v is None or isinstance(v, (bool, int, float)) for v in values):
                raise fail(f"optimizer hyperparameter '{name}' is {value!r}, not a number or list of numbers")
        for i, entry in enumerate(optimizer["state"]):
            if not isinstance(entry, dict) or not is_int_between(entry.get("step"), 0, MAX_STEP):
                raise fail(f"optimizer state {i} is not {{'step': int in [0, {MAX_STEP}], ...}}")
            for name, ref in entry.items():
                expected = f"optimizer/state/{i}/{name}"
                if name != "step" and not (_is_ref(ref) and ref["__array__"] == expected):
                    raise fail(f"optimizer state {i} '{name}' should be {{'__array__': '{expected}'}}, got {ref!r}")
    if scheduler is not None:
        if not (isinstance(scheduler, dict) and isinstance(scheduler.get("kind"), str)
                and is_int_between(scheduler.get("step_num"), 1, MAX_STEP)):
            raise fail(f"the scheduler metadata is not {{'kind': str, 'step_num': int in [1, {MAX_STEP}]}}, "
                       f"got {abbreviated(scheduler)}")


def is_int_between(value, lo, hi) -> bool:
    """A JSON integer (not a bool) from lo to hi: how stored counters and sizes are checked."""
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def abbreviated(value, n=80) -> str:
    """repr(value), cut to n characters, for naming a bad stored value in a message."""
    text = repr(value)
    return text if len(text) <= n else text[:n] + "..."
