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
from minigrad.files import write_atomically
from transformer.checkpoints import load_trained, read_run_config, save_training_checkpoint, validate_model_config
from transformer.decoding import EXTRA_TOKENS
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
    (lambda m: m["extra"].__setitem__("seconds", float("inf")), "'seconds' must be a number >= 0, got inf"),
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
    (lambda m: m["config"].__setitem__("decoding", {"extra_tokens": -1}),
     r'the stored decoding settings must be {"extra_tokens": an integer in \[0, 64\]}, got {'),
    (lambda m: m["config"].__setitem__("decoding", {"extra_tokens": 65}), "the stored decoding settings"),
    (lambda m: m["config"].__setitem__("decoding", {"extra_tokens": True}), "the stored decoding settings"),
    (lambda m: m["config"].__setitem__("decoding", [0]), "the stored decoding settings"),
    (lambda m: m["config"].__setitem__("decoding", {"extra_tokens": 0, "beam": 4}), "the stored decoding settings"),
])
def test_a_training_state_that_cannot_be_resumed_is_refused(good, change, match):
    path = rewritten(good, "bad.npz", change)
    refused(path, match, loader=read_run_config)


def test_the_good_checkpoint_reads_and_loads(good):
    config, extra = read_run_config(good)
    assert extra["step"] == STEPS and extra["seconds"] == 1.5
    trained = load_trained(good)
    assert trained.step == STEPS and trained.model.config == TransformerConfig(V, V, **MICRO)
    assert trained.extra_tokens == EXTRA_TOKENS  # a task's checkpoint records no cap: the default
    capped = rewritten(good, "capped.npz", lambda m: m["config"].__setitem__("decoding", {"extra_tokens": 0}))
    assert load_trained(capped).extra_tokens == 0


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


# ----------------------------------------------------------------------------- guards at their edges


def with_member(path, name, key, header, data):
    """A copy of checkpoint ``path`` whose member ``key`` has the .npy ``header`` and then
    the raw bytes ``data`` (which may disagree with the header)."""
    arrays, meta = contents(path)
    arrays.pop(key, None)
    out = path.parent / name
    np.savez(out, __meta__=np.array(json.dumps(meta)), **arrays)
    with zipfile.ZipFile(out, "a") as zf, zf.open(f"{key}.npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(data)
    return out


@pytest.mark.parametrize("extra_bytes", [8, -8, 4096], ids=["longer", "shorter", "much longer"])
def test_a_member_whose_data_does_not_match_its_header_is_refused_either_way(good, extra_bytes):
    key = "model/decoder.layers.0.ffn.linear2.bias"  # (32,) float32: 128 bytes of data
    header = {"descr": "<f4", "fortran_order": False, "shape": (32,)}
    path = with_member(good, "torn.npz", key, header, np.ones(32, np.float32).tobytes()[:128 + extra_bytes]
                       if extra_bytes < 0 else np.ones(32, np.float32).tobytes() + bytes(extra_bytes))
    model = micro_model()
    before = raw(model)
    refused(path, r"entry 'model/decoder\.layers\.0\.ffn\.linear2\.bias' declares shape \(32,\) of float32 "
                  r"\([\d,]+ bytes with its header\) but holds [\d,]+ bytes", model)
    refused(path, "declares shape", loader=read_metadata)  # every member's header is checked, read or not
    assert raw(model) == before
    exact = with_member(good, "exact.npz", key, header, np.ones(32, np.float32).tobytes())
    load_checkpoint(exact, model)
    assert (model.state_dict()["decoder.layers.0.ffn.linear2.bias"] == 1).all()


@pytest.mark.parametrize("name", ["exp_avg", "exp_avg_sq"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_optimizer_state_is_refused_by_name(good, name, bad):
    def poison(arrays):
        arrays[f"optimizer/state/4/{name}"].flat[1] = bad

    path = rewritten(good, "nan_state.npz", change_arrays=poison)
    model = micro_model()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    schedule = optim.ConstantSchedule(opt, 1e-3)
    before = raw(model), [s[name].copy() for s in opt.state]
    refused(path, rf"the optimizer state holds NaN or Inf values in 'optimizer/state/4/{name}' \(1 of \d+\)",
            model, opt, schedule)
    assert raw(model) == before[0]  # nothing was loaded, the weights neither
    assert all(np.array_equal(s[name], b) for s, b in zip(opt.state, before[1]))
    load_checkpoint(good, model, opt, schedule)  # the unpoisoned file loads


def test_members_the_metadata_does_not_name_are_refused_in_every_namespace(good, monkeypatch):
    model = micro_model()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    small = np.zeros(3, np.float32)
    for key in ("optimizer/state/0/momentum", "optimizer/state/999/exp_avg", "optimizer/step", "scheduler/lr",
                "extra/rng", "config/model", "weights"):
        path = rewritten(good, "extra_member.npz", change_arrays=lambda a, key=key: a.__setitem__(key, small))
        opened = Opened(monkeypatch)
        refused(path, rf"unexpected entries '{re.escape(key)}' \(not model weights or state the metadata "
                      "names\\); refused without reading them", model, opt)
        refused(path, "unexpected entries", loader=read_metadata)
        assert f"{key}.npy" not in opened.members
    # Under model/, the names are the model's: one it does not have is refused by name.
    path = rewritten(good, "extra_weight.npz", change_arrays=lambda a: a.__setitem__("model/encoder.extra", small))
    before = raw(model)
    opened = Opened(monkeypatch)
    refused(path, r"the model state does not fit: 1 problem\(s\), nothing was loaded:\n  unexpected key "
                  "'encoder.extra'", model)
    assert raw(model) == before and opened.arrays == 1  # refused from the names, before reading weights


def test_the_atomic_write_flushes_and_fsyncs_the_data_before_the_rename_then_syncs_the_directory(
        tmp_path, monkeypatch):
    real_fsync, real_replace = os.fsync, os.replace
    events = []

    def fsync(fd):
        info = os.fstat(fd)
        events.append(("fsync directory",) if stat.S_ISDIR(info.st_mode) else ("fsync file", info.st_size))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.getsize(src), os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    path = tmp_path / "c.npz"
    save_checkpoint(path, micro_model())
    size = path.stat().st_size
    # The whole file is on disk (flushed from Python's buffer, then fsynced) before the
    # rename makes it visible; then the directory entry of the rename is made durable.
    assert events == [("fsync file", size), ("replace", size, os.fspath(path)), ("fsync directory",)]
    load_checkpoint(path, micro_model())
    events.clear()  # a small text stays in Python's buffer unless it is flushed before the fsync
    write_atomically(tmp_path / "notes.txt", "twelve bytes")
    assert events == [("fsync file", 12), ("replace", 12, os.fspath(tmp_path / "notes.txt")), ("fsync directory",)]


@pytest.mark.parametrize("field, lo, hi", [
    ("src_vocab_size", 1, 2**20), ("tgt_vocab_size", 1, 2**20), ("d_model", 1, 2**14), ("n_heads", 1, 2**10),
    ("n_encoder_layers", 0, 2**8), ("n_decoder_layers", 0, 2**8), ("d_ff", 1, 2**16), ("max_len", 1, 2**20),
    ("pad_id", 0, 2**20),
])
def test_every_model_config_bound_is_accepted_at_its_edge_and_refused_one_past_it(field, lo, hi):
    # Small in every other field, so that only the field under test can be out of range.
    base = dict(src_vocab_size=3, tgt_vocab_size=3, d_model=2, n_heads=1, n_encoder_layers=0, n_decoder_layers=0,
                d_ff=1, max_len=4)
    for value in (lo, hi - 1):
        values = {**base, field: value}
        if field == "n_heads":  # d_model must stay divisible by n_heads
            values["d_model"] = value
        if field == "pad_id" and value == hi - 1:  # in range, but no vocabulary can hold it
            with pytest.raises(ValueError, match=f"^pad_id={value} is not a token of a vocabulary of 3$"):
                validate_model_config(values)
            continue
        if field == "pad_id":
            values.update(src_vocab_size=value + 1, tgt_vocab_size=value + 1)
        assert getattr(validate_model_config(values), field) == value
    for value in (lo - 1, hi):
        with pytest.raises(ValueError, match=rf"'{field}' must be in \[{lo}, {hi}\), got {value}"):
            validate_model_config({**base, field: value})


def test_the_pad_id_must_be_a_token_of_both_vocabularies():
    assert validate_model_config(dict(src_vocab_size=5, tgt_vocab_size=4, d_model=2, n_heads=1, pad_id=3)).pad_id == 3
    with pytest.raises(ValueError, match="^pad_id=4 is not a token of a vocabulary of 4$"):
        validate_model_config(dict(src_vocab_size=5, tgt_vocab_size=4, d_model=2, n_heads=1, pad_id=4))


def test_dropout_is_accepted_below_one_and_refused_at_one():
    base = dict(src_vocab_size=3, tgt_vocab_size=3, d_model=2, n_heads=1)
    for value in (0.0, np.nextafter(1.0, 0.0)):
        assert validate_model_config({**base, "dropout": float(value)}).dropout == value
    for value in (-1e-12, 1.0):
        with pytest.raises(ValueError, match=rf"'dropout' must be in \[0.0, 1.0\), got {value}"):
            validate_model_config({**base, "dropout": value})


def test_the_model_size_limit_is_exact_and_counts_every_element(monkeypatch):
    from transformer import checkpoints

    for options in ({}, {"share_embeddings": True}, {"tie_output": False}, {"positional": "learned"},
                    {"n_encoder_layers": 0, "n_decoder_layers": 3}):
        config = TransformerConfig(V, V, **{**MICRO, "norm_first": True, **options})
        model = Transformer(config)
        buffers = {id(b): b.size for _, b in model.named_buffers()}  # the position tables, shared or not
        held = sum(p.size for p in model.parameters()) + sum(buffers.values())
        assert checkpoints.model_elements(config) == held, options  # pre-norm: the count is exact
        monkeypatch.setattr(checkpoints, "MAX_MODEL_ELEMENTS", held)
        assert validate_model_config(config.to_dict()) == config
        monkeypatch.setattr(checkpoints, "MAX_MODEL_ELEMENTS", held - 1)
        with pytest.raises(ValueError, match=f"would hold {held:,} numbers, more than the {held - 1:,}"):
            validate_model_config(config.to_dict())


@pytest.mark.parametrize("name, value", [("lr", float("inf")), ("eps", float("inf")), ("betas", [0.9, float("inf")]),
                                         ("lr", float("nan"))])
def test_non_finite_optimizer_hyperparameters_are_refused(good, name, value):
    path = rewritten(good, "inf_lr.npz", lambda m: m["optimizer"]["hyperparams"].__setitem__(name, value))
    model = micro_model()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    before = raw(model)
    refused(path, rf"the optimizer state does not fit: (.|\n)*{name} must be a finite number", model, opt)
    assert raw(model) == before and opt.lr == 1e-3


def test_step_counters_are_accepted_up_to_max_step_and_refused_past_it(good):
    def set_steps(optimizer_step, step_num):
        def change(meta):
            meta["optimizer"]["state"][0]["step"] = optimizer_step
            meta["scheduler"]["step_num"] = step_num
        return change

    for optimizer_step, step_num in ((0, 1), (checkpoint.MAX_STEP, checkpoint.MAX_STEP)):
        meta = read_metadata(rewritten(good, "edge.npz", set_steps(optimizer_step, step_num)))
        assert (meta["optimizer"]["state"][0]["step"], meta["scheduler"]["step_num"]) == (optimizer_step, step_num)
    for optimizer_step, step_num, match in ((checkpoint.MAX_STEP + 1, 1, "optimizer state 0 is not"),
                                            (-1, 1, "optimizer state 0 is not"),
                                            (0, checkpoint.MAX_STEP + 1, "the scheduler metadata is not"),
                                            (0, 0, "the scheduler metadata is not")):
        refused(rewritten(good, "past.npz", set_steps(optimizer_step, step_num)), match, loader=read_metadata)
