"""Training checkpoints: one ``.npz`` file that is enough to resume training or to use
the model (translate, attention maps, graphs) on its own.

On top of minigrad's checkpoint (model, optimizer and schedule arrays, atomic save) it
holds, as JSON:

    config = {"model": TransformerConfig, "train": TrainConfig, "tokenizer": vocabulary,
              "decoding": {"extra_tokens": 0}}       # real data only: decoding's length cap
    extra  = {"step": 1200, "data": BatchStream state, "dropout_rng": Generator state, ...}

    >>> trained = load_trained("runs/dates/checkpoint.npz")      # doctest: +SKIP
    >>> trained.model, trained.tokenizer, trained.step            # doctest: +SKIP

Everything is checked against the schemas below before a model is built: a file that
describes an impossible or enormous model, or a training state that cannot be resumed,
is refused with one line naming the file and the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from minigrad.checkpoint import (
    MAX_STEP,
    CheckpointError,
    abbreviated,
    is_int_between,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)
from transformer.decoding import EXTRA_TOKENS
from transformer.model import Transformer, TransformerConfig
from transformer.tokenizer import Tokenizer, TokenizerPair, tokenizer_from_dict
from transformer.train_config import TrainConfig

# A model config, field by field: (type, lowest, above the highest) or (str, choices).
# Ranges are lo <= value < hi.  The bounds are far beyond what trains on a laptop; they
# only stop a file from asking for terabytes.
MODEL_CONFIG_SCHEMA = {
    "src_vocab_size":   (int, 1, 2**20),
    "tgt_vocab_size":   (int, 1, 2**20),
    "d_model":          (int, 1, 2**14),
    "n_heads":          (int, 1, 2**10),
    "n_encoder_layers": (int, 0, 2**8),
    "n_decoder_layers": (int, 0, 2**8),
    "d_ff":             (int, 1, 2**16),
    "dropout":          (float, 0.0, 1.0),
    "max_len":          (int, 1, 2**20),
    "norm_first":       (bool,),
    "activation":       (str, ("relu", "gelu")),
    "positional":       (str, ("sinusoidal", "learned")),
    "tie_output":       (bool,),
    "share_embeddings": (bool,),
    "pad_id":           (int, 0, 2**20),
}
REQUIRED_MODEL_FIELDS = ("src_vocab_size", "tgt_vocab_size")  # the others have defaults
MAX_MODEL_ELEMENTS = 2**28  # parameters and position table: 1 GiB of float32


def validate_model_config(values) -> TransformerConfig:
    """The TransformerConfig ``values`` (a dict, as ``to_dict()`` gives) describes, after
    checking every field against MODEL_CONFIG_SCHEMA, then the fields against each other
    (TransformerConfig's own checks: d_model divisible by n_heads, ...), then the model's
    size against MAX_MODEL_ELEMENTS.  Raises ValueError listing all problems.
    Allocates nothing."""
    if not isinstance(values, dict):
        raise ValueError(f"a model config must be a JSON object, got {type(values).__name__}")
    problems = [f"unknown field '{k}'" for k in values if k not in MODEL_CONFIG_SCHEMA]
    problems += [f"missing field '{k}'" for k in REQUIRED_MODEL_FIELDS if k not in values]
    for name, spec in MODEL_CONFIG_SCHEMA.items():
        if name in values:
            problem = _field_problem(values[name], spec)
            if problem:
                problems.append(f"'{name}' {problem}")
    if problems:
        raise ValueError("; ".join(problems))
    c = TransformerConfig(**values)  # safe now that each field has its type and range
    if c.pad_id >= min(c.src_vocab_size, c.tgt_vocab_size):
        raise ValueError(f"pad_id={c.pad_id} is not a token of a vocabulary of "
                         f"{min(c.src_vocab_size, c.tgt_vocab_size)}")
    elements = model_elements(c)
    if elements > MAX_MODEL_ELEMENTS:
        raise ValueError(f"the model would hold {elements:,} numbers, more than the {MAX_MODEL_ELEMENTS:,} "
                         "(1 GiB of float32) a checkpoint may ask for")
    return c


def _field_problem(value, spec):
    kind = spec[0]
    if kind is bool:
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
    if kind is str:
        return None if value in spec[1] else f"must be one of {list(spec[1])}, got {value!r}"
    ok_type = isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool)
    if not ok_type or (kind is float and not math.isfinite(value)):
        return f"must be {'a number' if kind is float else 'an integer'}, got {value!r}"
    lo, hi = spec[1], spec[2]
    return None if lo <= value < hi else f"must be in [{lo}, {hi}), got {value}"


def model_elements(c: TransformerConfig) -> int:
    """How many numbers the Transformer of ``c`` allocates for weights and position table
    (an upper bound: it counts final norms, which only pre-norm models have)."""
    d, f = c.d_model, c.d_ff
    embeddings = c.src_vocab_size * d + (0 if c.share_embeddings else c.tgt_vocab_size * d)
    positions = c.max_len * d * (1 if c.share_embeddings else 2)
    attention, feed_forward, norm = 4 * d * d + 4 * d, 2 * d * f + d + f, 2 * d
    encoder = c.n_encoder_layers * (attention + feed_forward + 2 * norm) + norm
    decoder = c.n_decoder_layers * (2 * attention + feed_forward + 3 * norm) + norm
    output = 0 if c.tie_output else d * c.tgt_vocab_size + c.tgt_vocab_size
    return embeddings + positions + encoder + decoder + output


def save_training_checkpoint(path, model, tokenizer, optimizer, schedule, train_config: dict, extra: dict,
                             extra_tokens: int | None = None):
    """Write everything a run needs to ``path`` (atomically, via minigrad.checkpoint).
    ``extra_tokens``: how far past its source's length decoding may go (RunData.extra_tokens)."""
    config = {"model": model.config.to_dict(), "train": train_config, "tokenizer": tokenizer.to_dict(),
              **({"decoding": {"extra_tokens": extra_tokens}} if extra_tokens is not None else {})}
    save_checkpoint(path, model, optimizer, schedule, config=config, extra=extra)


@dataclass
class Trained:
    """A model read back from a training checkpoint, ready for inference (eval mode)."""

    model: Transformer
    tokenizer: Tokenizer | TokenizerPair  # .source reads the inputs, .target writes the outputs
    train_config: dict  # TrainConfig.to_dict() of the run that wrote it
    step: int
    extra_tokens: int = EXTRA_TOKENS  # decoding's cap: source length + this (decoding.max_lengths)


def read_run_config(path, for_resume: bool = True) -> tuple[dict, dict]:
    """The (config, extra) JSON of a training checkpoint, every field checked; reads no
    weights.  ``extra`` holds ``step`` (int), ``data`` (the BatchStream state: ``used``
    batches of the epoch that started at Generator state ``epoch_start``),
    ``dropout_rng`` (a Generator state) and ``seconds`` (float, default 0.0), each
    checked to fit the run, so ``train``'s ``restore`` can use them as they are.
    ``for_resume=False`` (inference) checks the configs, tokenizer and step only.

    Raises CheckpointError naming the file and the field for a missing or corrupt file,
    one not written by training, or any field out of its type or range.
    """
    meta = read_metadata(path)
    config, extra = meta["config"], meta["extra"]
    if not (isinstance(config, dict) and {"model", "train", "tokenizer"} <= config.keys()
            and isinstance(extra, dict)):
        raise CheckpointError(f"{path}: not a transformer training checkpoint (its config lacks the "
                              "model/train/tokenizer parts or it has no training state)")
    try:
        model_config = validate_model_config(config["model"])
    except ValueError as e:
        raise CheckpointError(f"{path}: the stored model config is invalid: {e}") from e
    stored = config["tokenizer"]
    if not (isinstance(stored, dict) and isinstance(stored.get("type"), str)):
        raise CheckpointError(f"{path}: the stored tokenizer is not an object with a \"type\" name: "
                              f"{abbreviated(stored)}")
    try:
        tokenizer = tokenizer_from_dict(stored, source="tokenizer")
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: the stored {e}") from e
    sizes = (tokenizer.source.vocab_size, tokenizer.target.vocab_size)
    if sizes != (model_config.src_vocab_size, model_config.tgt_vocab_size):
        raise CheckpointError(f"{path}: the stored tokenizer has {sizes[0]} source and {sizes[1]} target tokens "
                              f"but the model's vocabularies have {model_config.src_vocab_size} (source) and "
                              f"{model_config.tgt_vocab_size} (target)")
    train_config = validated_train_config(path, config["train"])
    config["decoding"] = {"extra_tokens": validated_extra_tokens(path, config.get("decoding"), model_config)}
    extra.setdefault("seconds", 0.0)
    problems = _training_state_problems(extra, meta, train_config, for_resume)
    if problems:
        raise CheckpointError(f"{path}: the training state is invalid: " + "; ".join(problems))
    return config, extra


def validated_extra_tokens(path, decoding, model_config: TransformerConfig) -> int:
    """The ``extra_tokens`` of stored decoding settings {"extra_tokens": int} (EXTRA_TOKENS
    when there are none: tasks, older files), or a CheckpointError naming ``path``."""
    if decoding is None:
        return EXTRA_TOKENS
    if not (isinstance(decoding, dict) and decoding.keys() == {"extra_tokens"}
            and is_int_between(decoding["extra_tokens"], 0, model_config.max_len)):
        raise CheckpointError(f"{path}: the stored decoding settings must be {{\"extra_tokens\": an integer in "
                              f"[0, {model_config.max_len}]}}, got {abbreviated(decoding)}")
    return decoding["extra_tokens"]


def validated_train_config(path, values):
    """TrainConfig.from_dict(values), or a CheckpointError naming ``path`` (an unknown task,
    a setting out of range or of the wrong type)."""
    if not isinstance(values, dict):
        raise CheckpointError(f"{path}: the stored train config is not a JSON object")
    try:
        return TrainConfig.from_dict(values)
    except (TypeError, ValueError) as e:  # TypeError: a field of the wrong type
        raise CheckpointError(f"{path}: the stored train config is invalid: {e}") from e


def _training_state_problems(extra, meta, train_config, for_resume=True):
    """What is wrong with ``extra`` (and the schedule and optimizer step counters) as the
    state of a run of ``train_config`` (only its step when not ``for_resume``)."""
    problems = []
    step = extra.get("step")
    if not is_int_between(step, 0, MAX_STEP):
        return [f"'step' must be an integer in [0, {MAX_STEP}], got {step!r}"]
    if not for_resume:
        return []
    seconds = extra["seconds"]
    if not (_is_finite_number(seconds) and seconds >= 0):
        problems.append(f"'seconds' must be a number >= 0, got {seconds!r}")
    data = extra.get("data")
    batches_per_epoch = -(-train_config.n_train // train_config.batch_size)
    if train_config.data is not None:  # the size of a file's training split is known once it is read
        batches_per_epoch = MAX_STEP   # (train.BatchStream.load_state_dict checks it then)
    if not isinstance(data, dict) or not {"epoch_start", "used"} <= data.keys():
        problems.append(f"'data' must be {{'epoch_start': Generator state, 'used': int}}, got {abbreviated(data)}")
    else:
        if not is_int_between(data["used"], 0, batches_per_epoch):
            problems.append(f"'data.used' must be an integer in [0, {batches_per_epoch}] (the batches in an "
                            f"epoch of {train_config.n_train} examples), got {data['used']!r}")
        problems += _rng_state_problems("data.epoch_start", data["epoch_start"])
    problems += _rng_state_problems("dropout_rng", extra.get("dropout_rng"))
    files = extra.get("data_files")  # the fingerprints of a real-data run (run_data.check_fingerprints)
    if train_config.data is not None and not (isinstance(files, dict) and "data" in files
                                              and all(isinstance(f, dict) for f in files.values())):
        problems.append(f"'data_files' must be the fingerprints of the data read, got {abbreviated(files)}")
    best = extra.get("best")  # the best validation so far (train.validation_error), kept in best.npz
    if best is not None and not (isinstance(best, dict) and best.keys() == {"step", "error"}
                                 and is_int_between(best["step"], 0, step) and isinstance(best["error"], list)
                                 and all(_is_finite_number(e) for e in best["error"])):
        problems.append(f"'best' must be null or {{'step': int ≤ {step}, 'error': [numbers]}}, got {abbreviated(best)}")
    # Schedules count from 1, so after `step` updates the schedule is at step + 1.
    scheduler = meta["scheduler"]
    if scheduler is None:
        problems.append("the checkpoint has no schedule state")
    elif scheduler["step_num"] != step + 1:
        problems.append(f"the schedule is at step {scheduler['step_num']} but the run at step {step} "
                        f"(it should be {step + 1})")
    optimizer = meta["optimizer"]
    if optimizer is None:
        problems.append("the checkpoint has no optimizer state")
    else:
        ahead = [i for i, s in enumerate(optimizer["state"]) if s["step"] > step]
        if ahead:
            problems.append(f"optimizer parameters {ahead[:5]} count more updates than the run's {step} steps")
    return problems


def _is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _rng_state_problems(name, state):
    """A numpy PCG64 Generator state, checked by loading it into a scratch generator."""
    if not (isinstance(state, dict) and state.get("bit_generator") == "PCG64"):
        return [f"'{name}' must be a PCG64 Generator state (bit_generator.state), got {abbreviated(state)}"]
    try:
        np.random.PCG64().state = state
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        return [f"'{name}' is not a valid PCG64 state: {e}"]
    return []


def load_trained(path) -> Trained:
    """Build the model a training checkpoint describes and load its weights."""
    config, extra = read_run_config(path, for_resume=False)  # checked: the model below is of a sane size
    model = Transformer(validate_model_config(config["model"]))
    tokenizer = tokenizer_from_dict(config["tokenizer"], source="tokenizer")
    load_checkpoint(path, model)
    model.eval()
    return Trained(model, tokenizer, config["train"], extra["step"], config["decoding"]["extra_tokens"])
