"""Hostile and damaged checkpoints: each gives one CheckpointError that names the file and
what is wrong, before anything large is allocated or read, and changes nothing."""

import json
import os
import re
import stat
import zipfile

import numpy as np
import pytest

from minigrad import checkpoint, optim
from minigrad.checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from transformer.checkpoints import load_trained, read_run_config, save_training_checkpoint, validate_model_config
from transformer.model import Transformer, TransformerConfig
from transformer.tasks import tokenizer_for
from transformer.train import TrainConfig

TOKENIZER = tokenizer_for("copy")
V = TOKENIZER.vocab_size
MICRO = dict(d_model=32, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=64, max_len=64)
STEPS = 3


def micro_model(**overrides):
    return Transformer(TransformerConfig(V, V, **{**MICRO, **overrides}))


def raw(model):
    return [p.data.tobytes() for p in model.parameters()]


@pytest.fixture
def good(tmp_path):
    """A training checkpoint of a micro model after STEPS steps of a copy run."""
    model = micro_model()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    schedule = optim.ConstantSchedule(opt, 1e-3)
    for _ in range(STEPS):
        schedule.step()
    extra = {"step": STEPS, "data": {"epoch_start": np.random.default_rng(2).bit_generator.state, "used": STEPS},
             "dropout_rng": model.dropout_rng.bit_generator.state, "seconds": 1.5}
    path = tmp_path / "good.npz"
    save_training_checkpoint(path, model, TOKENIZER, opt, schedule,
                             TrainConfig.for_task("copy", model="micro").to_dict(), extra)
    return path


def contents(path):
    """The (trusted) arrays and metadata of a checkpoint these tests wrote."""
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    return arrays, json.loads(arrays.pop("__meta__").item())


def rewritten(path, name, change_meta=None, change_arrays=None, meta_text=None):
    """A copy of checkpoint ``path`` with its metadata and/or arrays changed."""
    arrays, meta = contents(path)
    if change_meta:
        change_meta(meta)
    if change_arrays:
        change_arrays(arrays)
    out = path.parent / name
    np.savez(out, __meta__=np.array(meta_text if meta_text is not None else json.dumps(meta)), **arrays)
    return out


def refused(path, match, *targets, loader=load_checkpoint):
    """The loader refuses ``path`` with a one-line-first message that starts with the
    file's name, matches ``match`` and never suggests unpickling."""
    with pytest.raises(CheckpointError) as info:
        loader(path, *targets)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert "allow_pickle" not in message and "Traceback" not in message
    assert re.search(match, message), message
    return message


# ----------------------------------------------------------------------------- the file itself


def test_a_directory_a_text_file_and_an_unreadable_file_say_so(tmp_path, good, monkeypatch):
    refused(tmp_path, "is a directory")
    text = tmp_path / "notes.txt"
    text.write_text("these are not weights\n")
    refused(text, r"not a checkpoint archive \(a \.npz checkpoint is a zip file; this one starts with b'thes'\)")
    npy = tmp_path / "weights.npy"  # a plain .npy (what np.load would open) is not an archive either
    np.save(npy, np.zeros(3))
    refused(npy, "not a checkpoint archive")

    real_open = open

    def denied(file, *args, **kwargs):
        if os.fspath(file) == os.fspath(good):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", denied)  # what a mode-000 file does for a non-root user
    refused(good, "permission denied")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 file anyway; the mocked test above "
                                              "covers the message")
def test_a_mode_000_file_says_permission_denied(good):
    good.chmod(0)
    try:
        refused(good, "permission denied")
    finally:
        good.chmod(0o644)


def test_checkpoints_respect_the_umask(tmp_path):
    model = micro_model()
    for mask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        previous = os.umask(mask)
        try:
            save_checkpoint(tmp_path / f"c{mask:o}.npz", model)
        finally:
            os.umask(previous)
        assert stat.S_IMODE(os.stat(tmp_path / f"c{mask:o}.npz").st_mode) == mode


# ----------------------------------------------------------------------------- the metadata


def test_deeply_nested_metadata_is_refused_before_parsing(good):
    deep = '{"format": "minigrad-checkpoint", "version": 1, "config": ' + "[" * 200_000 + "]" * 200_000 + "}"
    path = rewritten(good, "deep.npz", meta_text=deep)
    refused(path, "nested 200001 deep; at most 64")
    # Brackets inside strings are text, not nesting.
    _, meta = contents(good)
    meta["extra"]["note"] = "[" * 1000
    np.savez(good.parent / "brackets.npz", __meta__=np.array(json.dumps(meta)),
             **{k: v for k, v in contents(good)[0].items()})
    assert read_metadata(good.parent / "brackets.npz")["extra"]["note"] == "[" * 1000


def test_json_depth_counts_only_brackets_outside_strings():
    assert checkpoint.json_depth('{"a": [1, {"b": "[[[{"}]}') == 3
    assert checkpoint.json_depth(r'["\\", [["\"[[["]]]') == 3  # an escaped backslash ends the first string
    assert checkpoint.json_depth('"unterminated [[[') == 0


@pytest.mark.parametrize("field, value, match", [
    ("n_heads", 0, r"'n_heads' must be in \[1, 1024\), got 0"),
    ("n_heads", -2, r"'n_heads' must be in \[1, 1024\), got -2"),
    ("n_heads", 3, "d_model=32 is not divisible by n_heads=3"),
    ("d_model", 2**20, r"'d_model' must be in \[1, 16384\)"),
    ("max_len", 10**12, r"'max_len' must be in \[1, 1048576\)"),
    ("src_vocab_size", 10**9, r"'src_vocab_size' must be in"),
    ("n_heads", "4", "'n_heads' must be an integer, got '4'"),
    ("n_heads", 2.0, "'n_heads' must be an integer"),
    ("norm_first", 1, "'norm_first' must be true or false"),
    ("dropout", float("nan"), "'dropout' must be a number"),
    ("activation", "swish", r"'activation' must be one of \['relu', 'gelu'\]"),
    ("pad_id", 10**5, "pad_id=100000 is not a token"),
    ("attention_sinks", 4, "unknown field 'attention_sinks'"),
])
def test_an_impossible_or_enormous_model_config_is_refused_before_a_model_is_built(good, monkeypatch, field,
                                                                                   value, match):
    path = rewritten(good, "bad.npz", lambda m: m["config"]["model"].__setitem__(field, value))
    built = []
    monkeypatch.setattr(Transformer, "__init__", lambda self, *a, **k: built.append(a))
    refused(path, "the stored model config is invalid: (TransformerConfig: )?" + match, loader=load_trained)
    assert built == []


def test_a_config_of_legal_fields_that_would_need_gigabytes_is_refused():
    config = dict(src_vocab_size=2**19, tgt_vocab_size=2**19, d_model=2**12, n_heads=8)
    with pytest.raises(ValueError, match=r"would hold [\d,]+ numbers, more than the 268,435,456"):
        validate_model_config(config)
    assert validate_model_config({**config, "src_vocab_size": 100, "tgt_vocab_size": 100,
                                  "d_model": 64}) == TransformerConfig(100, 100, d_model=64, n_heads=8)


@pytest.mark.parametrize("change, match", [
    (lambda m: m["extra"].__setitem__("step", None), r"'step' must be an integer in \[0, 10+\], got None"),
    (lambda m: m["extra"].__setitem__("step", -1), "'step' must be an integer"),
    (lambda m: m["extra"].pop("data"), "'data' must be {'epoch_start': Generator state, 'used': int}, got None"),
    (lambda m: m["extra"]["data"].__setitem__("used", 10**9),
     r"'data.used' must be an integer in \[0, 625\] \(the batches in an epoch of 40000 examples\)"),
    (lambda m: m["extra"]["data"].__setitem__("epoch_start", [1, 2]), "'data.epoch_start' must be a PCG64"),
    (lambda m: m["extra"]["dropout_rng"]["state"].__setitem__("state", "x"), "'dropout_rng' is not a valid PCG64"),
    (lambda m: m["extra"]["dropout_rng"].__setitem__("bit_generator", "MT19937"), "'dropout_rng' must be a PCG64"),
    (lambda m: m["extra"].__setitem__("seconds", -5), "'seconds' must be a number >= 0"),
    (lambda m: m["scheduler"].__setitem__("step_num", 10**6),
     "the schedule is at step 1000000 but the run at step 3 \\(it should be 4\\)"),
    (lambda m: m["scheduler"].__setitem__("step_num", 10**13), r"'step_num': int in \[1, 10+\]"),
    (lambda m: m["optimizer"]["state"][0].__setitem__("step", 50), r"optimizer parameters \[0\] count more"),
    (lambda m: m["optimizer"]["state"][0].__setitem__("step", None), r"optimizer state 0 is not"),
    (lambda m: m["config"]["train"].__setitem__("steps", "many"), "the stored train config is invalid"),
    (lambda m: m["config"]["tokenizer"].__setitem__("type", "magic"), "the stored tokenizer: not a tokenizer"),
    (lambda m: m["config"]["tokenizer"].__setitem__("type", [1]), "the stored tokenizer is not an object with"),
    (lambda m: m["config"]["model"].update(src_vocab_size=V + 1, tgt_vocab_size=V + 1),
     f"the stored tokenizer has {V} source and {V} target tokens but the model's vocabularies have "
     f"{V + 1} \\(source\\) and {V + 1} \\(target\\)"),
    (lambda m: m.__setitem__("version", 7), "checkpoint format version 7"),
])
def test_a_training_state_that_cannot_be_resumed_is_refused(good, change, match):
    path = rewritten(good, "bad.npz", change)
    refused(path, match, loader=read_run_config)


def test_the_good_checkpoint_reads_and_loads(good):
    config, extra = read_run_config(good)
    assert extra["step"] == STEPS and extra["seconds"] == 1.5
    trained = load_trained(good)
    assert trained.step == STEPS and trained.model.config == TransformerConfig(V, V, **MICRO)


# ----------------------------------------------------------------------------- members and weights


class Opened:
    """Records which archive members are opened and which are read as arrays."""

    def __init__(self, monkeypatch):
        self.members, self.arrays = [], 0
        real_open, real_read = zipfile.ZipFile.open, np.lib.format.read_array

        def open_member(zf, name, *args, **kwargs):
            self.members.append(getattr(name, "filename", name))
            return real_open(zf, name, *args, **kwargs)

        def read_array(*args, **kwargs):
            self.arrays += 1
            return real_read(*args, **kwargs)

        monkeypatch.setattr(zipfile.ZipFile, "open", open_member)
        monkeypatch.setattr(checkpoint.np.lib.format, "read_array", read_array)


def test_an_unexpected_member_is_refused_without_being_read(good, monkeypatch):
    path = good.parent / "padded.npz"
    path.write_bytes(good.read_bytes())
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf, zf.open("unused.npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (2**22,)})
        f.write(bytes(2**24))  # 16 MiB of zeros, a few kB on disk
    opened = Opened(monkeypatch)
    refused(path, r"unexpected entries 'unused' \(not model weights or state the metadata names\); "
                  "refused without reading them", micro_model())
    assert "unused.npy" not in opened.members


def test_declared_shapes_are_checked_against_the_model_before_any_data_is_read(good, monkeypatch):
    huge = {"descr": "<f4", "fortran_order": False, "shape": (2**28,)}  # 1 GiB, if it were read
    path = good.parent / "huge.npz"
    arrays, meta = contents(good)
    arrays.pop("model/src_embed.tokens.weight")
    np.savez(path, __meta__=np.array(json.dumps(meta)), **arrays)
    with zipfile.ZipFile(path, "a") as zf:  # a header that lies about the member's size
        with zf.open("model/src_embed.tokens.weight.npy", "w") as f:
            np.lib.format.write_array_header_1_0(f, huge)
            f.write(bytes(64))
    opened = Opened(monkeypatch)
    model = micro_model()
    refused(path, r"entry 'model/src_embed\.tokens\.weight' declares shape \(268435456,\) of float32 "
                  r"\([\d,]+ bytes with its header\) but holds [\d,]+ bytes", model)
    assert opened.arrays == 1  # only the metadata was read

    # A consistent member of the wrong shape is refused from its header, before reading.
    wrong = rewritten(good, "wrong.npz", change_arrays=lambda a: a.__setitem__(
        "model/src_embed.tokens.weight", np.zeros((V, 16), np.float32)))
    opened.arrays = 0
    refused(wrong, rf"shape mismatch for 'src_embed.tokens.weight': the state has \({V}, 16\), "
                   rf"the model has \({V}, 32\)", model)
    assert opened.arrays == 1

    opt = optim.Adam(model.parameters())
    bad_state = rewritten(good, "bad_state.npz", change_arrays=lambda a: a.__setitem__(
        "optimizer/state/0/exp_avg", np.zeros(10**6, np.float32)))
    opened.arrays = 0
    refused(bad_state, r"'optimizer/state/0/exp_avg' has shape \(1000000,\), parameter 0 has", model, opt)
    assert opened.arrays == 1


@pytest.mark.parametrize("bad, match", [
    (np.nan, r"NaN or Inf values in 'decoder.layers.0.ffn.linear2.bias' \(1 of 32\)"),
    (np.inf, "NaN or Inf values in 'decoder.layers.0.ffn.linear2.bias'"),
])
def test_non_finite_weights_are_refused_by_name(good, bad, match):
    def poison(arrays):
        arrays["model/decoder.layers.0.ffn.linear2.bias"][5] = bad

    path = rewritten(good, "nan.npz", change_arrays=poison)
    model = micro_model()
    before = raw(model)
    refused(path, match, model)
    refused(path, match, loader=load_trained)
    assert raw(model) == before


def test_complex_or_text_weights_are_refused_by_name(good):
    for dtype in (np.complex64, np.dtype("U3")):
        path = rewritten(good, "complex.npz", change_arrays=lambda a: a.__setitem__(
            "model/encoder.layers.0.norm1.weight", a["model/encoder.layers.0.norm1.weight"].astype(dtype)))
        refused(path, f"'encoder.layers.0.norm1.weight' has dtype {np.dtype(dtype)}, which does not "
                      "convert to the model's float32", micro_model())


def test_a_model_with_a_different_config_but_the_same_shapes_is_reported(good):
    four_heads = micro_model(n_heads=4)  # same shapes as 2 heads
    before = raw(four_heads)
    refused(good, "written by a model with a different config; n_heads: the checkpoint has 2, the model has 4",
            four_heads)
    assert raw(four_heads) == before
    refused(good, "norm_first: the checkpoint has False, the model has True", micro_model(norm_first=True))
    load_checkpoint(good, micro_model(dropout=0.3))  # a training-time setting may differ


def test_pickled_members_are_refused_from_their_header(good, monkeypatch):
    class Boom:
        def __reduce__(self):
            return (pytest.fail, ("unpickled",))

    path = rewritten(good, "evil.npz", change_arrays=lambda a: a.__setitem__(
        "model/encoder.layers.0.norm1.bias", np.array([Boom()], dtype=object)))
    opened = Opened(monkeypatch)
    refused(path, r"entry 'model/encoder\.layers\.0\.norm1\.bias' is a pickled object array; "
                  "checkpoints never unpickle", loader=read_run_config)
    assert opened.arrays == 1


def test_other_archives_are_named_as_not_checkpoints(tmp_path):
    plain = tmp_path / "plain.npz"
    np.savez(plain, weights=np.zeros(3))
    refused(plain, r"not a minigrad checkpoint \(no '__meta__' entry; it holds 'weights'\)")
    zipped = tmp_path / "docs.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("README.txt", "hello")
    refused(zipped, "member 'README.txt' is not a .npy array")
