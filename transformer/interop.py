"""Moving a Transformer between minigrad and PyTorch: safetensors files and torch.nn modules.

    python -m transformer export runs/dates/checkpoint.npz --out dates.safetensors

    >>> export_safetensors(model, tokenizer, "dates.safetensors")   # doctest: +SKIP
    >>> trained = import_safetensors("dates.safetensors")           # doctest: +SKIP
    >>> module = to_torch(trained.model)                            # doctest: +SKIP  (needs torch)
    >>> model = from_torch(module)                                  # doctest: +SKIP

A file holds the weights under PyTorch's names and layouts (``names="torch"``, what
``TorchTransformer.state_dict()`` holds, so ``load_state_dict(safetensors.torch.load_file(f))``
works) or under ours (``names="minigrad"``), and in its metadata, as JSON strings, the
model config and the tokenizer: the file alone is a usable model.  Writing and reading
need only numpy and ``safetensors``; torch is needed only for ``to_torch``/``from_torch``.

The mapping, ours → torch (docs/state_dict.md has every name):

    *_attn.w_q/w_k/w_v.weight  3 × (d, d)  →  *_attn.in_proj_weight (3d, d) = [W_Qᵀ; W_Kᵀ; W_Vᵀ]
    *_attn.w_q/w_k/w_v.bias    3 × (d,)    →  *_attn.in_proj_bias (3d,)
    *_attn.w_o.weight / .bias              →  *_attn.out_proj.weight (transposed) / .bias
    decoder.layers.i.cross_attn.*          →  decoder.layers.i.multihead_attn.*
    *.ffn.linear1/linear2.*                →  *.linear1/linear2.* (weights transposed)
    output.weight (d, V)                   →  output.weight (V, d)
    embeddings, norms                      →  the same names, the same arrays

Every ``nn.Linear`` weight is transposed: ours is (in, out), torch's (out, in).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minigrad import nn
from minigrad.checkpoint import MAX_STEP, CheckpointError, abbreviated, check_finite, is_int_between, parse_json
from minigrad.files import not_a_file, write_atomically
from transformer import checkpoints
from transformer.checkpoints import Trained, load_trained
from transformer.model import Transformer, TransformerConfig
from transformer.tokenizer import tokenizer_from_dict

FORMAT = "minigrad-transformer"
VERSION = "1"
NAME_STYLES = ("torch", "minigrad")


class InteropError(ValueError):
    """A file or state dict that cannot be read or does not fit the model (one line)."""


# --------------------------------------------------------------------------- the mapping


def linear_weight_names(model) -> set[str]:
    """Names of the parameters that are ``nn.Linear`` weights: (in, out) here, (out, in)
    in torch, so they are transposed on the way."""
    linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    return {name for name, p in model.named_parameters() if id(p) in linear}


def torch_name(name: str) -> str:
    """Our name -> torch's: "decoder.layers.0.cross_attn.w_k.bias" -> "decoder.layers.0.multihead_attn.in_proj_bias"."""
    name = name.replace(".cross_attn.", ".multihead_attn.").replace(".ffn.", ".")
    block, _, kind = name.rpartition(".")  # "….self_attn.w_q", "weight"
    attention, _, projection = block.rpartition(".")
    if projection in ("w_q", "w_k", "w_v"):
        return f"{attention}.in_proj_{kind}"
    if projection == "w_o":
        return f"{attention}.out_proj.{kind}"
    return name


@dataclass(frozen=True)
class TorchEntry:
    """One torch state_dict entry: our arrays ``parts`` (each transposed when
    ``transposed``), stacked along axis 0 (q, k, v for in_proj; one part otherwise)."""

    name: str
    parts: tuple[str, ...]
    transposed: bool


def torch_mapping(model) -> list[TorchEntry]:
    """The entries of the torch state_dict, from the model's own parameter list.  The
    attention blocks register w_q, w_k, w_v in that order, which is torch's stacking order."""
    linear = linear_weight_names(model)
    grouped: dict[str, list[str]] = {}
    for name in model.state_dict():
        grouped.setdefault(torch_name(name), []).append(name)
    return [TorchEntry(name, tuple(parts), parts[0] in linear) for name, parts in grouped.items()]


def tied_aliases(model) -> dict[str, str]:
    """{other name: first name} of each parameter reachable by more than one path
    (``share_embeddings``: "tgt_embed.tokens.weight" -> "src_embed.tokens.weight").
    Our state_dict lists a shared parameter once; torch's lists it under every path."""
    first = {id(p): name for name, p in model.named_parameters()}
    aliases = {}

    def walk(prefix, module):
        for name, p in module._parameters.items():
            if first[id(p)] != prefix + name:
                aliases[prefix + name] = first[id(p)]
        for name, child in module._modules.items():
            walk(f"{prefix}{name}.", child)

    walk("", model)
    return aliases


def _torch_shape(entry: TorchEntry, shapes: dict) -> tuple:
    part = shapes[entry.parts[0]]
    part = part[::-1] if entry.transposed else part
    return (len(entry.parts) * part[0], *part[1:])


def to_torch_arrays(model) -> dict[str, np.ndarray]:
    """The model's weights as torch's state_dict holds them: torch names and layouts,
    tied parameters under every name.  Copies; exact (transposes and stacking only)."""
    state = model.state_dict()
    arrays = {}
    for entry in torch_mapping(model):
        parts = [state[name].T if entry.transposed else state[name] for name in entry.parts]
        arrays[entry.name] = np.ascontiguousarray(np.concatenate(parts) if len(parts) > 1 else parts[0])
    for alias, name in tied_aliases(model).items():
        arrays[torch_name(alias)] = arrays[torch_name(name)]
    return arrays


def minigrad_state(model, arrays: dict, names: str = "torch", source: str = "the state dict") -> dict:
    """The inverse of ``to_torch_arrays`` (or, with ``names="minigrad"``, a check of our own
    state dict): our name -> array, ready for ``model.load_state_dict``.  Raises
    InteropError, one line naming every missing, unexpected or wrongly shaped key."""
    check_fits(model, arrays, names, source)
    if names == "minigrad":
        return {name: np.asarray(arrays[name]) for name in model.state_dict()}
    mapping = torch_mapping(model)
    state = {}
    for entry in mapping:
        for name, part in zip(entry.parts, np.split(np.asarray(arrays[entry.name]), len(entry.parts))):
            state[name] = part.T if entry.transposed else part
    return state


def check_fits(model, arrays: dict, names: str = "torch", source: str = "the state dict"):
    """InteropError, one line naming every missing, unexpected or wrongly shaped key,
    unless ``arrays`` (name -> array, or TensorHeader read from a file's header) would
    load into ``model`` under ``names``."""
    if names not in NAME_STYLES:
        raise InteropError(f"{source}: names must be one of {NAME_STYLES}, got {names!r}")
    shapes = {name: array.shape for name, array in model.state_dict().items()}
    if names == "minigrad":
        _check_keys(arrays, shapes, {}, source)
    else:
        aliases = {torch_name(a): torch_name(n) for a, n in tied_aliases(model).items()}
        _check_keys(arrays, {e.name: _torch_shape(e, shapes) for e in torch_mapping(model)}, aliases, source)


def _check_keys(arrays: dict, expected: dict, aliases: dict, source: str):
    """All problems of ``arrays`` against ``expected`` (name -> shape) in one line.
    ``aliases`` (other name -> name) may be present, holding the same array."""
    def listed(items):
        items = list(items)
        return ", ".join(items[:6]) + (f" and {len(items) - 6} more" if len(items) > 6 else "")

    missing = [f"{k} {expected[k]}" for k in expected if k not in arrays]
    unexpected = [k for k in arrays if k not in expected and k not in aliases]
    problems = []
    for name, array in arrays.items():
        header_only = isinstance(array, TensorHeader)  # its data is not read yet
        if name in aliases and name not in expected:
            if aliases[name] in arrays and not header_only and not np.array_equal(array, arrays[aliases[name]]):
                problems.append(f"{name} should equal the tied {aliases[name]}")
            continue
        array = array if header_only else np.asarray(array)
        if name in expected and tuple(array.shape) != expected[name]:
            problems.append(f"{name} is {tuple(array.shape)}, expected {expected[name]}")
        elif name in expected and getattr(array.dtype, "kind", None) != "f":
            problems.append(f"{name} has dtype {array.dtype}, expected floating point")
    parts = [f"missing keys: {listed(missing)}" if missing else "",
             f"unexpected keys: {listed(unexpected)}" if unexpected else "",
             f"wrong shapes or dtypes: {listed(problems)}" if problems else ""]
    if any(parts):
        raise InteropError(f"{source} does not fit the model: " + "; ".join(p for p in parts if p))


def load_arrays(model, arrays: dict, names: str = "torch", source: str = "the state dict"):
    """Copy torch-named (or minigrad-named) arrays into ``model``; nothing changes on error.
    NaN or Inf weights are refused, as checkpoints refuse them."""
    state = minigrad_state(model, arrays, names, source)
    try:
        check_finite(source, state, "model")
    except CheckpointError as e:
        raise InteropError(str(e)) from e
    model.load_state_dict(state)
    return model


def import_state_dict(arrays: dict, config, names: str = "torch", dtype=None) -> Transformer:
    """A minigrad Transformer of ``config`` (a TransformerConfig or its dict) holding
    ``arrays``, e.g. ``{k: v.numpy() for k, v in torch_module.state_dict().items()}``."""
    if not isinstance(config, TransformerConfig):
        config = validate_model_config(config, "the config")
    dtype = dtype or _float_dtype(arrays)
    return load_arrays(Transformer(config, dtype=dtype), arrays, names)


def _float_dtype(arrays: dict):
    """float64 when every array (or TensorHeader) is float64, else float32 (minigrad's default)."""
    dtypes = {a.dtype if isinstance(a, TensorHeader) else np.asarray(a).dtype for a in arrays.values()}
    return np.float64 if dtypes == {np.dtype(np.float64)} else np.float32


# --------------------------------------------------------------------------- safetensors files


def export_safetensors(model, tokenizer, path, names: str = "torch", train_config: dict | None = None,
                       step: int | None = None, extra_tokens: int | None = None) -> dict:
    """Write the model to ``path`` (atomically) with the config and tokenizer (and, if
    given, the training config, step and decoding's ``extra_tokens``) as JSON in the
    metadata.  Returns the arrays."""
    save = _safetensors().numpy.save
    if names not in NAME_STYLES:
        raise InteropError(f"export: names must be one of {NAME_STYLES}, got {names!r}")
    arrays = to_torch_arrays(model) if names == "torch" else model.state_dict()
    metadata = {"format": FORMAT, "version": VERSION, "names": names,
                "config": json.dumps(model.config.to_dict()), "tokenizer": json.dumps(tokenizer.to_dict())}
    if train_config is not None:
        metadata["train"] = json.dumps(train_config)
    if step is not None:
        metadata["step"] = str(int(step))
    if extra_tokens is not None:
        metadata["decoding"] = json.dumps({"extra_tokens": extra_tokens})
    try:
        write_atomically(path, save(arrays, metadata=metadata))
    except OSError as e:
        raise InteropError(f"{path}: cannot write the file: {e.strerror or e}") from e
    return arrays


@dataclass(frozen=True)
class TensorHeader:
    """A tensor's shape and dtype as a safetensors header declares them, before its data
    is read (dtype: a numpy dtype, or safetensors' name for one numpy lacks, e.g. "BF16")."""

    shape: tuple
    dtype: object


SAFETENSORS_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I8": np.int8, "I16": np.int16,
                      "I32": np.int32, "I64": np.int64, "U8": np.uint8, "BOOL": np.bool_}


def import_safetensors(path) -> Trained:
    """Read a file written by ``export_safetensors`` (either name style) into a minigrad
    Transformer in eval mode.  In this order: the metadata is validated, then the tensor
    names, shapes and dtypes in the header are checked against the model it describes,
    and only then are the tensors read; every problem is an InteropError of one line."""
    safetensors = _safetensors()
    path = os.fspath(path)
    problem = not_a_file(path)
    if problem is not None:
        raise InteropError(f"{path}: {problem}")
    metadata, headers = read_safetensors_header(path)
    checked = validate_metadata(metadata, path)
    model = Transformer(checked.config, dtype=_float_dtype(headers))
    check_fits(model, headers, checked.names, path)  # so the file holds only the model's tensors
    try:
        arrays = safetensors.numpy.load_file(path)
    except Exception as e:  # safetensors raises its own SafetensorError, OSError, or ValueError for odd dtypes
        raise InteropError(f"{path}: not a readable safetensors file: {type(e).__name__}: {e}") from e
    load_arrays(model, arrays, checked.names, path)
    model.eval()
    return Trained(model, checked.tokenizer, checked.train_config, checked.step, checked.extra_tokens)


MAX_HEADER_BYTES = 100 * 2**20  # what the safetensors library itself accepts


def read_safetensors_header(path) -> tuple[dict, dict]:
    """(metadata, {name: TensorHeader}) from the header of the .safetensors file ``path``:
    8 bytes of little-endian length, then that much JSON.  Read by hand because the
    library maps the whole file into memory before it tells its keys: a file with a huge
    unknown tensor would cost its size before it could be refused.  InteropError for a
    header that is not one, or that does not end where the file's data does."""
    def fail(problem):
        return InteropError(f"{path}: not a readable safetensors file: {problem}")

    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        length = int.from_bytes(f.read(8), "little")
        if size < 8 or not 2 <= length <= min(MAX_HEADER_BYTES, size - 8):
            raise fail(f"the header length {length:,} does not fit a file of {size:,} bytes")
        text = f.read(length)
    try:
        header = parse_json(text, "the header", max_bytes=MAX_HEADER_BYTES)
    except ValueError as e:
        raise fail(e) from None
    metadata = header.pop("__metadata__", None) or {} if isinstance(header, dict) else None
    if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise fail("the header is not a JSON object with a string-to-string __metadata__")
    headers, end = {}, 0
    for name, entry in header.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("dtype"), str)
                and isinstance(entry.get("shape"), list) and all(is_int_between(n, 0, size) for n in entry["shape"])
                and isinstance(entry.get("data_offsets"), list) and len(entry["data_offsets"]) == 2
                and all(is_int_between(n, 0, size) for n in entry["data_offsets"])):
            raise fail(f"tensor {abbreviated(name)} is not {{dtype, shape, data_offsets}}: {abbreviated(entry)}")
        dtype = entry["dtype"]
        headers[name] = TensorHeader(tuple(entry["shape"]),
                                     np.dtype(SAFETENSORS_DTYPES[dtype]) if dtype in SAFETENSORS_DTYPES else dtype)
        end = max(end, entry["data_offsets"][1])
    if 8 + length + end != size:
        raise fail(f"its tensors end at byte {8 + length + end:,} of a file of {size:,}")
    return metadata, headers


def load_model(path) -> Trained:
    """A model from a training checkpoint (.npz) or an exported .safetensors file."""
    return import_safetensors(path) if Path(path).suffix == ".safetensors" else load_trained(path)


def _safetensors():
    """The safetensors package (an optional dependency), or a one-line InteropError."""
    try:
        import safetensors.numpy
    except ImportError as e:
        raise InteropError("reading and writing .safetensors files needs the safetensors package "
                           "(pip install safetensors, or pip install -e \".[torch]\")") from e
    return safetensors


# --------------------------------------------------------------------------- metadata validation
# Self-contained and deliberately small: it checks what building a model trusts.


@dataclass
class FileMetadata:
    config: TransformerConfig
    tokenizer: object
    names: str
    train_config: dict
    step: int
    extra_tokens: int


def validate_model_config(values, source) -> TransformerConfig:
    """A TransformerConfig from JSON values, checked as checkpoints check theirs (types,
    ranges, consistency, size) before anything is allocated; else InteropError."""
    try:
        return checkpoints.validate_model_config(values)
    except ValueError as e:
        raise InteropError(f"{source}: invalid model config: {e}") from e


def validate_metadata(metadata: dict, source) -> FileMetadata:
    """Check the file's metadata (format, name style, config, tokenizer, training info)."""
    if metadata.get("format") != FORMAT:
        raise InteropError(f"{source}: not a model exported by minigrad (metadata format is "
                           f"{metadata.get('format')!r}, expected {FORMAT!r})")
    if metadata.get("version") != VERSION:
        raise InteropError(f"{source}: format version {metadata.get('version')!r}; this reads version {VERSION}")
    if metadata.get("names") not in NAME_STYLES:
        raise InteropError(f"{source}: metadata names must be one of {NAME_STYLES}, got {metadata.get('names')!r}")
    parsed = {}
    for key in ("config", "tokenizer", "train", "decoding"):
        try:
            parsed[key] = parse_json(metadata[key], f"{source}: metadata {key}") if key in metadata else None
        except ValueError as e:
            raise InteropError(str(e)) from None
    if parsed["config"] is None or parsed["tokenizer"] is None:
        raise InteropError(f"{source}: the metadata lacks the model config or the tokenizer")
    config = validate_model_config(parsed["config"], source)
    try:
        tokenizer = tokenizer_from_dict(parsed["tokenizer"], source=f"{source}: tokenizer")
    except ValueError as e:
        raise InteropError(str(e)) from e
    for side, tokens, model_tokens in (("source", tokenizer.source.vocab_size, config.src_vocab_size),
                                       ("target", tokenizer.target.vocab_size, config.tgt_vocab_size)):
        if tokens > model_tokens:
            raise InteropError(f"{source}: the {side} tokenizer has {tokens} tokens, more than the model's "
                               f"{side} vocabulary of {model_tokens}")
    train = parsed["train"] if parsed["train"] is not None else {}
    if not isinstance(train, dict):
        raise InteropError(f"{source}: metadata train must be a JSON object, got {type(train).__name__}")
    if train:  # as training checkpoints check theirs: a task that exists, settings in range
        if "task" not in train:  # TrainConfig's default task would stand in for it
            raise InteropError(f"{source}: metadata train names no task: {abbreviated(train)}")
        try:
            checkpoints.validated_train_config(source, train)
        except CheckpointError as e:
            raise InteropError(str(e).replace("stored train config", "metadata train")) from None
    step = metadata.get("step", "0")
    # ASCII digits only ("²".isdigit() is true), and few enough of them for int() and MAX_STEP.
    if not (step.isascii() and step.isdigit() and len(step) <= len(str(MAX_STEP)) and int(step) <= MAX_STEP):
        raise InteropError(f"{source}: metadata step must be a non-negative integer of at most {MAX_STEP}, "
                           f"got {abbreviated(step)}")
    try:
        extra_tokens = checkpoints.validated_extra_tokens(source, parsed["decoding"], config)
    except CheckpointError as e:
        raise InteropError(str(e).replace("stored decoding settings", "metadata decoding")) from None
    return FileMetadata(config, tokenizer, metadata["names"], train, int(step), extra_tokens)


# --------------------------------------------------------------------------- torch (optional)


def to_torch(model):
    """A ``transformer.torch_model.TorchTransformer`` (torch.nn layers) with the model's
    config, dtype and weights, in the model's train/eval mode.  Needs torch."""
    import torch

    from transformer.torch_model import TorchTransformer

    dtype = {np.dtype(np.float64): torch.float64}.get(next(model.parameters()).dtype, torch.float32)
    module = TorchTransformer(model.config, dtype=dtype)
    module.load_state_dict({name: torch.from_numpy(array) for name, array in to_torch_arrays(model).items()})
    return module.train(model.training)


def from_torch(module) -> Transformer:
    """A minigrad Transformer with the weights of a TorchTransformer (or a
    DistributedDataParallel wrapping one), in the module's train/eval mode."""
    module = getattr(module, "module", module)  # unwrap DistributedDataParallel
    arrays = {name: t.detach().cpu().numpy() for name, t in module.state_dict().items()}
    model = import_state_dict(arrays, module.config)
    return model.train(module.training)
