"""Training checkpoints: one ``.npz`` file that is enough to resume training or to use
the model (translate, attention maps, graphs) on its own.

On top of minigrad's checkpoint (model, optimizer and schedule arrays, atomic save) it
holds, as JSON:

    config = {"model": TransformerConfig, "train": TrainConfig, "tokenizer": vocabulary}
    extra  = {"step": 1200, "data": BatchStream state, "dropout_rng": Generator state, ...}

    >>> trained = load_trained("runs/dates/checkpoint.npz")      # doctest: +SKIP
    >>> trained.model, trained.tokenizer, trained.step            # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

from minigrad.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from transformer.model import Transformer, TransformerConfig
from transformer.tokenizer import BPETokenizer, CharTokenizer, Tokenizer


def tokenizer_to_dict(tokenizer: Tokenizer) -> dict:
    """A tokenizer -> JSON-able dict (the same fields as its saved file)."""
    if isinstance(tokenizer, CharTokenizer):
        return {"type": "char", "chars": tokenizer.chars}
    if isinstance(tokenizer, BPETokenizer):
        return {"type": "bpe", "merges": [list(pair) for pair in tokenizer.merges]}
    raise TypeError(f"tokenizer_to_dict: cannot store a {type(tokenizer).__name__}")


def tokenizer_from_dict(data: dict) -> Tokenizer:
    """Inverse of ``tokenizer_to_dict``."""
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "char":
        return CharTokenizer(data["chars"])
    if kind == "bpe":
        return BPETokenizer(data["merges"])
    raise ValueError(f"unknown tokenizer type {kind!r} (expected 'char' or 'bpe')")


def save_training_checkpoint(path, model, tokenizer, optimizer, schedule, train_config: dict, extra: dict):
    """Write everything a run needs to ``path`` (atomically, via minigrad.checkpoint)."""
    config = {"model": model.config.to_dict(), "train": train_config, "tokenizer": tokenizer_to_dict(tokenizer)}
    save_checkpoint(path, model, optimizer, schedule, config=config, extra=extra)


@dataclass
class Trained:
    """A model read back from a training checkpoint, ready for inference (eval mode)."""

    model: Transformer
    tokenizer: Tokenizer
    train_config: dict  # TrainConfig.to_dict() of the run that wrote it
    step: int


def read_run_config(path) -> tuple[dict, dict]:
    """The (config, extra) JSON of a training checkpoint, checked to have our three parts.

    Raises CheckpointError for a missing or corrupt file or one not written by training.
    """
    meta = load_checkpoint(path)
    config, extra = meta["config"], meta["extra"]
    if not (isinstance(config, dict) and {"model", "train", "tokenizer"} <= config.keys()
            and isinstance(extra, dict) and "step" in extra):
        raise CheckpointError(f"{path}: not a transformer training checkpoint (its config lacks the "
                              "model/train/tokenizer parts or its extra lacks the step)")
    return config, extra


def load_trained(path) -> Trained:
    """Build the model a training checkpoint describes and load its weights."""
    config, extra = read_run_config(path)
    try:
        model = Transformer(TransformerConfig.from_dict(config["model"]))
        tokenizer = tokenizer_from_dict(config["tokenizer"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: the stored model or tokenizer config is invalid: {e}") from e
    load_checkpoint(path, model)
    model.eval()
    return Trained(model, tokenizer, config["train"], int(extra["step"]))
