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
from transformer.tokenizer import Tokenizer, tokenizer_from_dict


def save_training_checkpoint(path, model, tokenizer, optimizer, schedule, train_config: dict, extra: dict):
    """Write everything a run needs to ``path`` (atomically, via minigrad.checkpoint)."""
    config = {"model": model.config.to_dict(), "train": train_config, "tokenizer": tokenizer.to_dict()}
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
        tokenizer = tokenizer_from_dict(config["tokenizer"], source="tokenizer")
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: the stored model or tokenizer config is invalid: {e}") from e
    load_checkpoint(path, model)
    model.eval()
    return Trained(model, tokenizer, config["train"], int(extra["step"]))
