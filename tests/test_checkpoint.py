"""Checkpoints: bitwise round trips, clear failures that change nothing, atomic writes,
and no unpickling ever."""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad import checkpoint, nn, optim
from minigrad.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


class MLP(nn.Module):
    def __init__(self, hidden=8, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.hidden = nn.Linear(3, hidden, rng=rng)
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, 2, rng=rng)

    def forward(self, x):
        return self.out(self.norm(self.hidden(x).tanh()))


X = mg.tensor(np.random.default_rng(9).standard_normal((5, 3)).astype(np.float32))


def train(model, opt, schedule=None, steps=3):
    for _ in range(steps):
        opt.zero_grad()
        (model(X) ** 2).mean().backward()
        opt.step()
        if schedule is not None:
            schedule.step()


def trained(seed=0, hidden=8):
    model = MLP(hidden, seed)
    opt = optim.Adam(model.parameters(), lr=0.01, weight_decay=0.01)
    schedule = optim.NoamSchedule(opt, d_model=8, warmup_steps=4)
    train(model, opt, schedule)
    return model, opt, schedule


def raw(model):
    return [p.data.tobytes() for p in model.parameters()]


def raw_optimizer(opt):
    state = opt.state_dict()
    return (state["hyperparams"],
            [(s["step"], s["exp_avg"].tobytes(), s["exp_avg_sq"].tobytes()) for s in state["state"]])


def test_round_trip_is_bitwise_and_training_continues_identically(tmp_path):
    path = tmp_path / "run.npz"
    model, opt, schedule = trained()
    rng = np.random.default_rng(42)
    rng.random(3)
    config = {"hidden": 8, "name": "mlp", "dropout": 0.1}
    save_checkpoint(path, model, opt, schedule, config=config,
                    extra={"rng": rng.bit_generator.state, "epoch": 3})

    model2 = MLP(seed=5)
    opt2 = optim.Adam(model2.parameters())
    schedule2 = optim.NoamSchedule(opt2, d_model=8, warmup_steps=4)
    info = load_checkpoint(path, model2, opt2, schedule2)
    assert info["config"] == config and info["extra"]["epoch"] == 3
    assert raw(model2) == raw(model) and raw_optimizer(opt2) == raw_optimizer(opt)
    assert schedule2.step_num == schedule.step_num and opt2.lr == opt.lr

    restored = np.random.default_rng()
    restored.bit_generator.state = info["extra"]["rng"]
    assert np.array_equal(restored.random(5), rng.random(5))

    train(model, opt, schedule)
    train(model2, opt2, schedule2)
    assert raw(model2) == raw(model)


def test_loading_without_targets_returns_config_and_extra(tmp_path):
    model, opt, _ = trained()
    save_checkpoint(tmp_path / "c.npz", model, config={"hidden": 8})
    assert load_checkpoint(tmp_path / "c.npz") == {"config": {"hidden": 8}, "extra": None}
    with pytest.raises(CheckpointError, match="c.npz: the checkpoint has no optimizer state"):
        load_checkpoint(tmp_path / "c.npz", model, opt)


def _tripwire():
    raise AssertionError("the checkpoint loader unpickled an object")


class Canary:
    """Unpickling this runs _tripwire: proof that the loader never unpickles."""

    def __reduce__(self):
        return (_tripwire, ())


def test_pickled_object_array_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "evil.npz"
    model, _, _ = trained()
    save_checkpoint(path, model)
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["model/out.bias"] = np.array([Canary()], dtype=object)
    np.savez(path, **arrays)  # np.savez pickles object arrays

    target = MLP(seed=3)
    before = raw(target)
    with pytest.raises(CheckpointError, match=r"evil\.npz: entry 'model/out\.bias' is a pickled object array"):
        load_checkpoint(path, target)
    assert raw(target) == before


def test_truncated_or_corrupt_file_fails_clearly(tmp_path):
    model, opt, _ = trained()
    good = tmp_path / "good.npz"
    save_checkpoint(good, model, opt)
    data = good.read_bytes()
    target = MLP(seed=3)
    target_opt = optim.Adam(target.parameters())
    before = (raw(target), raw_optimizer(target_opt))

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.npz: not a readable \.npz checkpoint"):
        load_checkpoint(truncated, target, target_opt)

    flipped = bytearray(data)  # damage the bytes of an array, keep the zip directory intact
    start = data.index(b"\x93NUMPY") + 200
    flipped[start:start + 16] = bytes(b ^ 0xFF for b in flipped[start:start + 16])
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match=r"corrupt\.npz: .*(unreadable|corrupt)"):
        load_checkpoint(corrupt, target, target_opt)

    not_ours = tmp_path / "other.npz"
    np.savez(not_ours, weights=np.zeros(3))
    with pytest.raises(CheckpointError, match=r"other\.npz: not a minigrad checkpoint"):
        load_checkpoint(not_ours, target)
    with pytest.raises(CheckpointError, match=r"missing\.npz: no such checkpoint file"):
        load_checkpoint(tmp_path / "missing.npz", target)
    assert (raw(target), raw_optimizer(target_opt)) == before


def test_shape_mismatch_names_every_key_and_changes_nothing(tmp_path):
    path = tmp_path / "wide.npz"
    model, opt, _ = trained(hidden=8)
    save_checkpoint(path, model, opt)
    narrow = MLP(hidden=4, seed=3)
    narrow_opt = optim.Adam(narrow.parameters())
    before = (raw(narrow), raw_optimizer(narrow_opt))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, narrow, narrow_opt)
    message = str(info.value)
    assert message.startswith(f"{path}: the model state does not fit")
    for key, theirs, ours in [("hidden.weight", (3, 8), (3, 4)), ("norm.bias", (8,), (4,)),
                              ("out.weight", (8, 2), (4, 2))]:
        assert f"'{key}': the state has {theirs}, the model has {ours}" in message
    assert (raw(narrow), raw_optimizer(narrow_opt)) == before


def test_optimizer_mismatch_leaves_the_model_unchanged_too(tmp_path):
    path = tmp_path / "adam.npz"
    model, opt, _ = trained()
    save_checkpoint(path, model, opt)
    target = MLP(seed=3)  # fits the model part
    before = raw(target)
    with pytest.raises(CheckpointError, match="the optimizer state does not fit.*from a Adam optimizer"):
        load_checkpoint(path, target, optim.SGD(target.parameters(), lr=0.1))
    assert raw(target) == before


def test_failed_save_keeps_the_previous_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    model, opt, _ = trained()
    save_checkpoint(path, model, opt, config={"version": "old"})
    old_bytes = path.read_bytes()
    train(model, opt)

    def crash_mid_write(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.np, "savez", crash_mid_write)
    with pytest.raises(CheckpointError, match="disk full"):
        save_checkpoint(path, model, opt, config={"version": "new"})
    monkeypatch.undo()

    def crash_on_rename(src, dst):
        raise KeyboardInterrupt  # even an interrupt cleans up

    monkeypatch.setattr(checkpoint.os, "replace", crash_on_rename)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, opt, config={"version": "new"})
    monkeypatch.undo()

    with pytest.raises(CheckpointError, match="JSON-serializable"):
        save_checkpoint(path, model, opt, config={"bad": object()})

    assert path.read_bytes() == old_bytes
    assert load_checkpoint(path)["config"] == {"version": "old"}
    assert os.listdir(tmp_path) == ["ckpt.npz"]

    save_checkpoint(path, model, opt, config={"version": "new"})  # a successful save replaces it
    assert load_checkpoint(path)["config"] == {"version": "new"}
    assert os.listdir(tmp_path) == ["ckpt.npz"]


@settings(max_examples=60)
@given(data=st.data())
def test_any_damage_is_refused_or_loads_the_very_same_weights(tmp_path_factory, data):
    model, opt, schedule = trained()
    path = tmp_path_factory.mktemp("damage") / "run.npz"
    save_checkpoint(path, model, opt, schedule, config={"hidden": 8}, extra={"step": 3})
    original = path.read_bytes()
    damage = data.draw(st.sampled_from(["truncate", "flip", "zero"]))
    start = data.draw(st.integers(0, len(original) - 1))
    damaged = bytearray(original)
    if damage == "truncate":
        del damaged[start:]
    else:
        end = start + data.draw(st.integers(1, 64))
        damaged[start:end] = bytes(len(damaged[start:end])) if damage == "zero" else bytes(
            b ^ data.draw(st.integers(1, 255)) for b in damaged[start:end])
    path.write_bytes(bytes(damaged))
    target = MLP(seed=3)
    target_opt = optim.Adam(target.parameters())
    target_schedule = optim.NoamSchedule(target_opt, d_model=8, warmup_steps=4)
    before = (raw(target), raw_optimizer(target_opt), target_schedule.step_num)
    try:
        info = load_checkpoint(path, target, target_opt, target_schedule)
    except CheckpointError as e:
        assert str(e).startswith(f"{path}: ") and "allow_pickle" not in str(e)
        assert (raw(target), raw_optimizer(target_opt), target_schedule.step_num) == before
    else:
        assert raw(target) == raw(model) and raw_optimizer(target_opt) == raw_optimizer(opt)
        assert info == {"config": {"hidden": 8}, "extra": {"step": 3}}
