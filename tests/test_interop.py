"""Export to and import from safetensors files under PyTorch's names, and (with torch)
the same numbers in torch.nn layers: logits, gradients, an Adam step, DDP training."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_main
from safetensors.numpy import load_file, save_file

from transformer.checkpoints import save_training_checkpoint
from transformer.interop import (
    InteropError,
    export_safetensors,
    import_safetensors,
    import_state_dict,
    to_torch_arrays,
)
from transformer.loss import sequence_loss
from transformer.model import Transformer, TransformerConfig
from transformer.tasks import tokenizer_for

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER = tokenizer_for("dates")
V = TOKENIZER.vocab_size
VARIANTS = {  # every setting that changes the parameter list
    "base": {},
    "untied": {"tie_output": False},
    "pre-norm, gelu": {"norm_first": True, "activation": "gelu"},
    "shared, learned positions": {"share_embeddings": True, "positional": "learned"},
}
SRC = np.array([[5, 6, 7, 8, 9, 10], [4, 5, 3, 11, 0, 0]])
TGT_IN = np.array([[1, 12, 13, 14, 15], [1, 16, 17, 0, 0]])
TGT_OUT = np.array([[12, 13, 14, 15, 2], [16, 17, 2, 0, 0]])


def make_model(variant="base", dtype=np.float32, seed=0):
    """A small model whose norms and biases are not at their initial 1 and 0, so that a
    mixed-up name or layout changes the numbers."""
    config = TransformerConfig(V, V, d_model=16, n_heads=4, n_encoder_layers=2, n_decoder_layers=2, d_ff=24,
                               dropout=0.0, max_len=40, **VARIANTS[variant])
    model = Transformer(config, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        p.data += rng.normal(0, 0.2, p.shape).astype(dtype)
        if name.endswith("tokens.weight"):
            p.data[config.pad_id] = 0
    return model.eval()


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert sa[name].dtype == sb[name].dtype and np.array_equal(sa[name], sb[name]), name


# --------------------------------------------------------------------------- files, no torch


@pytest.mark.parametrize("names", ["torch", "minigrad"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_round_trip_through_a_file_is_bitwise_equal(variant, names, tmp_path):
    model = make_model(variant)
    path = tmp_path / "model.safetensors"
    export_safetensors(model, TOKENIZER, path, names=names, train_config={"task": "dates"}, step=7)
    back = import_safetensors(path)
    assert_same_state(model, back.model)
    assert back.model.config == model.config and back.tokenizer.to_dict() == TOKENIZER.to_dict()
    assert back.train_config == {"task": "dates"} and back.step == 7
    assert not back.model.training


def test_float64_round_trip_keeps_float64(tmp_path):
    model = make_model(dtype=np.float64)
    export_safetensors(model, TOKENIZER, tmp_path / "m.safetensors")
    back = import_safetensors(tmp_path / "m.safetensors").model
    assert_same_state(model, back)


def test_the_torch_layout_of_each_kind_of_parameter():
    """Independent of the mapping code: the arrays torch expects, spelled out."""
    model = make_model("untied")
    arrays = to_torch_arrays(model)
    enc = model.encoder.layers[0]
    attn = enc.self_attn
    np.testing.assert_array_equal(arrays["encoder.layers.0.self_attn.in_proj_weight"],
                                  np.vstack([attn.w_q.weight.data.T, attn.w_k.weight.data.T, attn.w_v.weight.data.T]))
    np.testing.assert_array_equal(arrays["encoder.layers.0.self_attn.in_proj_bias"],
                                  np.concatenate([attn.w_q.bias.data, attn.w_k.bias.data, attn.w_v.bias.data]))
    np.testing.assert_array_equal(arrays["encoder.layers.0.self_attn.out_proj.weight"], attn.w_o.weight.data.T)
    np.testing.assert_array_equal(arrays["encoder.layers.0.linear1.weight"], enc.ffn.linear1.weight.data.T)
    np.testing.assert_array_equal(arrays["encoder.layers.0.norm2.bias"], enc.norm2.bias.data)
    cross = model.decoder.layers[1].cross_attn
    np.testing.assert_array_equal(arrays["decoder.layers.1.multihead_attn.in_proj_weight"][16:32],
                                  cross.w_k.weight.data.T)
    np.testing.assert_array_equal(arrays["output.weight"], model.output.weight.data.T)
    np.testing.assert_array_equal(arrays["tgt_embed.tokens.weight"], model.tgt_embed.tokens.weight.data)
    # per encoder layer: attention 4 (in_proj and out_proj weight and bias), FFN 4, norms 4; the decoder
    # has one more attention and one more norm; then 2 embeddings and the output weight and bias
    assert len(arrays) == 2 * 12 + 2 * 18 + 2 + 2


def test_the_torch_table_in_the_docs_matches_the_export():
    text = (ROOT / "docs" / "state_dict.md").read_text(encoding="utf-8")
    table = text.split("| torch name | torch shape | ours |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| \(([^)]*)\) \|", table, flags=re.M)
    sizes = {"V_src": V, "V_tgt": V, "d": 16, "3d": 48, "d_ff": 24}
    documented = {name.replace("{i}", str(i)): tuple(sizes[p.strip()] for p in shape.split(",") if p.strip())
                  for name, shape in rows for i in range(2)}
    exported = {name: array.shape for name, array in to_torch_arrays(make_model()).items()}
    assert exported == documented


def test_a_torch_state_dict_given_as_arrays_imports():
    model = make_model("shared, learned positions")
    arrays = to_torch_arrays(model)  # as torch's state_dict(): the tied embedding under both names
    assert "tgt_embed.tokens.weight" in arrays and "tgt_embed.positions.weight" in arrays
    assert_same_state(model, import_state_dict(arrays, model.config.to_dict()))
    del arrays["tgt_embed.tokens.weight"]  # named_parameters() lists it once: also fine
    assert_same_state(model, import_state_dict(arrays, model.config))


def one_line_error(call) -> str:
    with pytest.raises(InteropError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


def rewrite(path, change_arrays=None, change_metadata=None):
    """Load a file, let the callbacks edit its arrays / metadata, write it back."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        metadata = f.metadata()
    arrays = load_file(str(path))
    if change_arrays:
        change_arrays(arrays)
    if change_metadata:
        change_metadata(metadata)
    save_file(arrays, str(path), metadata=metadata)


def renamed(arrays, old, new):
    arrays[new] = arrays.pop(old)


@pytest.mark.parametrize("names, change, words", [
    ("torch", lambda a: renamed(a, "decoder.layers.1.linear2.bias", "decoder.layers.1.linear_2.bias"),
     ["missing keys: decoder.layers.1.linear2.bias (16,)", "unexpected keys: decoder.layers.1.linear_2.bias"]),
    ("torch", lambda a: a.pop("encoder.layers.0.self_attn.in_proj_bias"),
     ["missing keys: encoder.layers.0.self_attn.in_proj_bias (48,)"]),
    ("torch", lambda a: a.update(extra=np.zeros(3, np.float32)), ["unexpected keys: extra"]),
    ("torch", lambda a: a.update({"encoder.layers.1.linear1.weight": a["encoder.layers.1.linear1.weight"].T.copy()}),
     ["encoder.layers.1.linear1.weight is (16, 24), expected (24, 16)"]),
    ("torch", lambda a: a.update({"decoder.norm1.weight": np.ones(16, np.float32)}),
     ["unexpected keys: decoder.norm1.weight"]),
    ("minigrad", lambda a: a.update({"src_embed.tokens.weight": np.zeros((V + 1, 16), np.float32)}),
     [f"src_embed.tokens.weight is ({V + 1}, 16), expected ({V}, 16)"]),
    ("minigrad", lambda a: renamed(a, "encoder.layers.0.self_attn.w_q.weight", "encoder.layers.0.self_attn.q.weight"),
     ["missing keys: encoder.layers.0.self_attn.w_q.weight (16, 16)", "unexpected keys: encoder.layers.0.self_attn.q"]),
    ("minigrad", lambda a: a.update({"encoder.layers.0.norm1.weight": np.ones(16, np.int32)}),
     ["encoder.layers.0.norm1.weight has dtype int32, expected floating point"]),
])
def test_a_file_that_does_not_fit_is_refused_in_one_line(names, change, words, tmp_path):
    path = tmp_path / "model.safetensors"
    export_safetensors(make_model(), TOKENIZER, path, names=names)
    rewrite(path, change_arrays=change)
    message = one_line_error(lambda: import_safetensors(path))
    assert message.startswith(f"{path} does not fit the model: ")
    for word in words:
        assert word in message


def test_tied_copies_must_agree():
    model = make_model("shared, learned positions")
    arrays = to_torch_arrays(model)
    arrays["tgt_embed.tokens.weight"] = arrays["tgt_embed.tokens.weight"] + 1
    message = one_line_error(lambda: import_state_dict(arrays, model.config))
    assert "tgt_embed.tokens.weight should equal the tied src_embed.tokens.weight" in message


def config_edit(**changes):
    def change(metadata):
        config = json.loads(metadata["config"])
        config.update(changes)
        metadata["config"] = json.dumps(config)
    return change


@pytest.mark.parametrize("change, words", [
    (config_edit(d_model=-16), ["'d_model' must be in [1, 16384), got -16"]),
    (config_edit(n_heads="4"), ["'n_heads' must be an integer", "got '4'"]),
    (config_edit(max_len=10 ** 9), ["'max_len' must be in"]),
    (config_edit(n_heads=5), ["d_model=16 is not divisible by n_heads=5"]),
    (config_edit(norm_first="no"), ["'norm_first' must be true or false"]),
    (config_edit(pad_id=500), ["pad_id=500 is not a token of a vocabulary of"]),
    (config_edit(colour="blue"), ["unknown field 'colour'"]),
    (config_edit(src_vocab_size=V - 1), [f"the source tokenizer has {V} tokens, more than the model's source "
                                         f"vocabulary of {V - 1}"]),
    (config_edit(tgt_vocab_size=V + 1), [f"tgt_embed.tokens.weight is ({V}, 16), expected ({V + 1}, 16)"]),
    (lambda m: m.pop("tokenizer"), ["lacks the model config or the tokenizer"]),
    (lambda m: m.update(config="{"), ["metadata config is not valid JSON"]),
    (lambda m: m.update(format="something"), ["not a model exported by minigrad"]),
    (lambda m: m.update(names="jax"), ["metadata names must be one of"]),
    (lambda m: m.update(tokenizer='{"type": "char"}'), ["malformed char tokenizer"]),
    (lambda m: m.update(step="-1"), ["step must be a non-negative integer"]),
    (lambda m: m.update(step="²"), ["step must be a non-negative integer of at most 1000000000000, got '²'"]),
    (lambda m: m.update(step="١٢"), ["step must be a non-negative integer", "got '١٢'"]),
    (lambda m: m.update(step="1" * 5000), ["step must be a non-negative integer", "got '111111"]),
    (lambda m: m.update(step=str(10**12 + 1)), ["step must be a non-negative integer of at most 1000000000000, "
                                                "got '1000000000001'"]),
])
def test_bad_metadata_is_refused_in_one_line_before_building_a_model(change, words, tmp_path):
    path = tmp_path / "model.safetensors"
    export_safetensors(make_model(), TOKENIZER, path)
    rewrite(path, change_metadata=change)
    message = one_line_error(lambda: import_safetensors(path))
    for word in words:
        assert word in message, message


def test_a_config_given_as_json_is_validated_before_a_model_is_built():
    model = make_model()
    arrays = to_torch_arrays(model)
    for change, words in (({"d_model": -16}, "'d_model' must be in [1, 16384), got -16"),
                          ({"src_vocab_size": 2**19, "tgt_vocab_size": 2**19, "d_model": 2**12},
                           "more than the 268,435,456")):
        message = one_line_error(lambda change=change: import_state_dict(arrays, {**model.config.to_dict(), **change}))
        assert message.startswith("the config: invalid model config: ") and words in message, message


def test_the_step_is_read_up_to_max_step(tmp_path):
    path = tmp_path / "model.safetensors"
    export_safetensors(make_model(), TOKENIZER, path, step=10**12)
    assert import_safetensors(path).step == 10**12
    rewrite(path, change_metadata=lambda m: m.pop("step"))
    assert import_safetensors(path).step == 0


def test_unreadable_files_are_refused_in_one_line(tmp_path):
    assert "no such file" in one_line_error(lambda: import_safetensors(tmp_path / "none.safetensors"))
    path = tmp_path / "model.safetensors"
    export_safetensors(make_model(), TOKENIZER, path)
    path.write_bytes(path.read_bytes()[:-100])
    assert "not a readable safetensors file" in one_line_error(lambda: import_safetensors(path))


# --------------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A training checkpoint of an untrained model (exports need no training)."""
    path = tmp_path_factory.mktemp("run") / "checkpoint.npz"
    model = make_model("base", seed=3)
    save_training_checkpoint(path, model, TOKENIZER, None, None, {"task": "dates"}, {"step": 5})
    return str(path)



@pytest.mark.parametrize("names", ["torch", "minigrad"])
def test_export_command_then_translate_from_the_file(checkpoint, names, tmp_path, capsys):
    out = tmp_path / "model.safetensors"
    status, printed, err = run_main(["export", checkpoint, "--out", str(out), "--names", names], capsys)
    assert status == 0, err
    assert f"under {names} names" in printed and out.exists()
    assert ("encoder.layers.0.self_attn.in_proj_weight" in load_file(str(out))) == (names == "torch")
    texts = ["26 November 2026", "3 feb 99"]
    _, from_checkpoint, _ = run_main(["translate", "--checkpoint", checkpoint, *texts], capsys)
    status, from_file, err = run_main(["translate", "--checkpoint", str(out), *texts], capsys)
    assert status == 0, err
    assert from_file == from_checkpoint and len(from_file.splitlines()) == 2


@pytest.mark.parametrize("argv, words", [
    (["export", "nowhere.npz", "--out", "x.safetensors"], ["no such checkpoint file"]),
    (["export", "{checkpoint}", "--out", "{tmp}/no/such/dir/x.safetensors"], ["cannot write the file"]),
    (["export", "{checkpoint}", "--names", "jax"], ["invalid choice: 'jax'"]),
    (["translate", "--checkpoint", "{tmp}/none.safetensors", "x"], ["no such file"]),
    (["translate", "--checkpoint", "{tmp}/bad.safetensors", "x"], ["does not fit the model", "unexpected keys: bogus"]),
])
def test_export_and_import_errors_are_one_line(argv, words, checkpoint, tmp_path, capsys):
    save_file({"bogus": np.zeros(2, np.float32)}, str(tmp_path / "bad.safetensors"),
              metadata={"format": "minigrad-transformer", "version": "1", "names": "torch",
                        "config": json.dumps(make_model().config.to_dict()),
                        "tokenizer": json.dumps(TOKENIZER.to_dict())})
    argv = [a.format(checkpoint=checkpoint, tmp=tmp_path) for a in argv]
    status, _, err = run_main(argv, capsys)
    assert status != 0 and err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def test_the_package_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"  # any `import torch` now fails
            "import transformer.interop, transformer.cli\n"
            "from transformer.interop import to_torch\n"
            "print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr


# --------------------------------------------------------------------------- with torch


def torch_loss(module, src=SRC, tgt_in=TGT_IN, tgt_out=TGT_OUT):
    import torch
    import torch.nn.functional as F

    logits = module(torch.from_numpy(src), torch.from_numpy(tgt_in))
    return logits, F.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.from_numpy(tgt_out).reshape(-1),
                                   ignore_index=0, label_smoothing=0.1)


def torch_grads_as_ours(model, module):
    """torch's gradients, mapped back onto our names and layouts by the same mapping."""
    from transformer.interop import minigrad_state

    return minigrad_state(model, {name: p.grad.numpy() for name, p in module.named_parameters()})


@pytest.mark.requires("torch")
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_torch_logits_equal_ours_to_float32_round_off(variant):
    import torch

    from transformer.interop import from_torch, to_torch

    model = make_model(variant)
    module = to_torch(model)
    ours = model(SRC, TGT_IN).data
    theirs = module(torch.from_numpy(SRC), torch.from_numpy(TGT_IN)).detach().numpy()
    assert theirs.dtype == np.float32
    # measured: at most 3.2e-6 with logits up to 5.4
    assert np.abs(ours - theirs).max() <= 1e-5 * max(1.0, np.abs(ours).max())
    assert_same_state(model, from_torch(module))


@pytest.mark.requires("torch")
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_torch_loss_and_gradients_equal_ours_in_float64(variant):
    from transformer.interop import to_torch

    model = make_model(variant, dtype=np.float64)
    module = to_torch(model)
    loss = sequence_loss(model(SRC, TGT_IN), TGT_OUT, label_smoothing=0.1)
    loss.backward()
    _, t_loss = torch_loss(module)
    t_loss.backward()
    assert abs(float(loss.data) - t_loss.item()) < 1e-12
    theirs = torch_grads_as_ours(model, module)
    largest = max(np.abs(g).max() for g in theirs.values())
    for name, p in model.named_parameters():
        # measured: at most 4.3e-15 absolute, largest gradient 0.65
        assert np.abs(p.grad.data - theirs[name]).max() <= 1e-12 * largest, name


@pytest.mark.requires("torch")
def test_one_adam_step_in_torch_from_the_exported_file_equals_one_in_minigrad(tmp_path):
    import torch

    from minigrad.optim import Adam
    from transformer.torch_model import TorchTransformer

    model = make_model("untied", dtype=np.float64)
    path = tmp_path / "model.safetensors"
    export_safetensors(model, TOKENIZER, path)
    from safetensors.torch import load_file as torch_load_file

    module = TorchTransformer(model.config, dtype=torch.float64)
    module.load_state_dict(torch_load_file(str(path)))
    before = model.state_dict()

    optimizer = Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-9)  # as transformer.train
    sequence_loss(model(SRC, TGT_IN), TGT_OUT, label_smoothing=0.1).backward()
    optimizer.step()
    t_optimizer = torch.optim.Adam(module.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-9)
    torch_loss(module)[1].backward()
    t_optimizer.step()

    from transformer.interop import from_torch

    theirs = from_torch(module).state_dict()
    for name, after in model.state_dict().items():
        step = np.abs(after - before[name]).max()
        if ".w_k.bias" in name:
            # Zero gradient in exact math (softmax ignores a shift shared by all keys); Adam's
            # lr·g/(|g| + ε) turns the round-off gradients (~1e-17) into steps of ~1e-11.
            assert step < 1e-9 and np.abs(theirs[name] - before[name]).max() < 1e-9, name
            continue
        assert step > 5e-4, name  # a real step (Adam's first moves each weight by about lr = 1e-3)
        # measured: at most 2.2e-16 (float64 round-off)
        assert np.abs(after - theirs[name]).max() < 1e-12, name


@pytest.mark.requires("torch")
def test_torch_greedy_decoding_matches_ours():
    from transformer.decoding import greedy_decode
    from transformer.interop import to_torch
    from transformer.torch_model import greedy_decode as torch_greedy_decode

    model = make_model("pre-norm, gelu", dtype=np.float64)
    for max_len in (12, None):  # None: each row's own cap, its source length + 16
        ours = greedy_decode(model, SRC, max_len=max_len)
        theirs = torch_greedy_decode(to_torch(model), SRC, max_len=max_len)
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.requires("torch")
def test_continue_in_pytorch_demo_runs_ddp_on_two_processes(tmp_path):
    """The whole demo on a micro model: train 20 steps here, export, decode in torch,
    2 DDP steps on 2 processes, import back and translate."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "demos" / "continue_in_pytorch.py"), "--checkpoint", str(tmp_path / "none.npz"),
         "--steps", "20", "--model", "micro", "--n-train", "500", "--ddp-steps", "2", "--held-out", "10",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=900, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "greedy translations identical to minigrad's: True" in out
    assert "DDP step 2/2: loss per process" in out and "the 2 processes hold identical weights: True" in out
    assert (tmp_path / "continued.safetensors").exists()
    continued = import_safetensors(tmp_path / "continued.safetensors").model
    exported = import_safetensors(tmp_path / "model.safetensors").model
    changed = [n for n, a in continued.state_dict().items() if not np.array_equal(a, exported.state_dict()[n])]
    assert changed, "DDP training changed no weight"


def test_non_finite_weights_are_refused_in_one_line(tmp_path):
    path = tmp_path / "model.safetensors"
    export_safetensors(make_model(), TOKENIZER, path)
    rewrite(path, change_arrays=lambda a: a["decoder.layers.0.linear1.bias"].__setitem__(3, np.nan))
    message = one_line_error(lambda: import_safetensors(path))
    assert "NaN or Inf" in message and "'decoder.layers.0.ffn.linear1.bias' (1 of 24)" in message
