"""minigrad.optim: updates against numpy references written from the papers' formulas,
state-dict round trips, clipping, schedules, and small models that must learn."""

import math

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, optim

F64 = np.float64


def random_grads(shape, steps, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for _ in range(steps)]


def run(opt, params, grads_per_param):
    """Apply the given gradients (one list per parameter), one optimizer step each."""
    for step_grads in zip(*grads_per_param):
        for p, g in zip(params, step_grads):
            p.grad = mg.tensor(g.astype(p.dtype))
        opt.step()


def start(seed=1, shape=(3, 4), dtype=F64):
    return nn.Parameter(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


# --------------------------------------------------------------------------- references


def reference_sgd(p, grads, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    p, buf = p.copy(), np.zeros_like(p)
    for g in grads:
        g = g + weight_decay * p
        if momentum:
            buf = momentum * buf + g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p


def reference_adam(p, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    """Kingma & Ba's Algorithm 1 with bias-corrected moments; L2 in the gradient (Adam)
    or decay applied to the weights (AdamW, Loshchilov & Hutter)."""
    (b1, b2), p = betas, p.copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p - lr * weight_decay * p
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


# --------------------------------------------------------------------------- update rules


@pytest.mark.parametrize("momentum, nesterov, weight_decay", [
    (0.0, False, 0.0), (0.9, False, 0.0), (0.9, True, 0.0), (0.0, False, 0.1), (0.8, True, 0.05)])
def test_sgd_matches_reference(momentum, nesterov, weight_decay):
    p = start()
    initial, grads = p.data.copy(), random_grads(p.shape, 5)
    opt = optim.SGD([p], lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    run(opt, [p], [grads])
    expected = reference_sgd(initial, grads, 0.1, momentum, nesterov, weight_decay)
    np.testing.assert_allclose(p.data, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_matches_reference(weight_decay):
    p = start()
    initial, grads = p.data.copy(), random_grads(p.shape, 6)
    opt = optim.Adam([p], lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=weight_decay)
    run(opt, [p], [grads])
    expected = reference_adam(initial, grads, 0.01, (0.8, 0.99), 1e-6, weight_decay)
    np.testing.assert_allclose(p.data, expected, rtol=1e-12, atol=1e-14)


def test_adam_bias_correction_makes_the_first_step_lr_sized():
    # Step 1: m̂ = g and v̂ = g², so each coordinate moves by lr·g/(|g| + eps) ≈ lr·sign(g),
    # whatever the gradient's scale.  Without bias correction it would move by
    # lr·(1-β₁)/√(1-β₂) ≈ 3.16·lr.
    p = nn.Parameter(np.zeros(4))
    g = np.array([1e-3, -2.0, 50.0, -1e4])
    opt = optim.Adam([p], lr=0.1)
    run(opt, [p], [[g]])
    np.testing.assert_allclose(p.data, -0.1 * g / (np.abs(g) + 1e-8), rtol=1e-12)


def test_adamw_decay_is_decoupled_from_the_gradient():
    p = start()
    initial, grads = p.data.copy(), random_grads(p.shape, 6)
    opt = optim.AdamW([p], lr=0.01, weight_decay=0.1)
    run(opt, [p], [grads])
    expected = reference_adam(initial, grads, 0.01, weight_decay=0.1, decoupled=True)
    np.testing.assert_allclose(p.data, expected, rtol=1e-12, atol=1e-14)
    l2 = reference_adam(initial, grads, 0.01, weight_decay=0.1)  # a different algorithm
    assert not np.allclose(p.data, l2, rtol=1e-6)
    # With a zero gradient AdamW only shrinks the weights: p·(1 - lr·wd).
    q = nn.Parameter(np.ones(3))
    run(optim.AdamW([q], lr=0.5, weight_decay=0.1), [q], [[np.zeros(3)]])
    np.testing.assert_allclose(q.data, 1 - 0.5 * 0.1, rtol=1e-15)


def test_float32_parameters_stay_float32_and_match_the_reference():
    p = start(dtype=np.float32)
    initial, grads = p.data.astype(F64), random_grads(p.shape, 5)
    array_before = p.data
    opt = optim.Adam([p], lr=0.01, weight_decay=0.01)
    run(opt, [p], [[g.astype(np.float32).astype(F64) for g in grads]])
    assert p.data is array_before and p.dtype == np.float32  # updated in place
    assert all(a.dtype == np.float32 for a in (opt.state[0]["exp_avg"], opt.state[0]["exp_avg_sq"]))
    expected = reference_adam(initial, [g.astype(np.float32).astype(F64) for g in grads], 0.01,
                              weight_decay=0.01)
    np.testing.assert_allclose(p.data, expected, rtol=1e-5, atol=1e-6)


def test_parameters_without_gradient_are_skipped_and_keep_their_own_step_count():
    a, b = start(1), start(2)
    b_initial = b.data.copy()
    grads = random_grads(a.shape, 3)
    opt = optim.Adam([a, b], lr=0.01)
    version = b._version
    a.grad = mg.tensor(grads[0])
    opt.step()  # b has no gradient
    assert np.array_equal(b.data, b_initial) and b._version == version
    assert opt.state[0]["step"] == 1 and opt.state[1]["step"] == 0
    b.grad = mg.tensor(grads[1])
    opt.step()  # b's first step: bias correction with t = 1
    np.testing.assert_allclose(b.data, reference_adam(b_initial, grads[1:2], 0.01), rtol=1e-12)
    assert b._version > version  # in-place updates bump the version counter


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.01),
    lambda ps: optim.AdamW(ps, lr=0.01)])
def test_state_dict_round_trip_continues_bitwise_identically(make):
    grads = random_grads((3, 4), 6, seed=5)
    p = start(dtype=np.float32)
    opt = make([p])
    run(opt, [p], [grads[:3]])
    state = opt.state_dict()
    q = nn.Parameter(p.data.copy())
    fresh = make([q])
    fresh.lr = 123.0  # overwritten by the loaded hyperparameters
    fresh.load_state_dict(state)
    assert fresh.lr == opt.lr
    state["state"][0]["step"] = 999  # the state dict is a copy
    run(opt, [p], [grads[3:]])
    run(fresh, [q], [grads[3:]])
    assert p.data.tobytes() == q.data.tobytes()


def test_load_state_dict_rejects_mismatches_and_changes_nothing():
    p = start()
    opt = optim.Adam([p], lr=0.01)
    run(opt, [p], [random_grads(p.shape, 2)])
    before = opt.state_dict()
    wrong_shape = optim.Adam([start(shape=(2, 2))]).state_dict()
    wrong_shape["hyperparams"]["lr"] = 5.0
    with pytest.raises(ValueError, match=r"'exp_avg' has shape \(2, 2\), the parameter has \(3, 4\)"):
        opt.load_state_dict(wrong_shape)
    with pytest.raises(ValueError, match="comes from a SGD optimizer"):
        opt.load_state_dict(optim.SGD([start()], lr=0.1).state_dict())
    with pytest.raises(ValueError, match="the state has 2 parameters, this optimizer has 1"):
        opt.load_state_dict(optim.Adam([start(), start(2)]).state_dict())
    with pytest.raises(ValueError, match="parameter 0: unexpected 'momentum_buffer'"):
        optim.SGD([start()], lr=0.1).load_state_dict(optim.SGD([start()], lr=0.1, momentum=0.9).state_dict())
    after = opt.state_dict()
    assert after["hyperparams"] == before["hyperparams"]
    assert all(np.array_equal(after["state"][0][k], before["state"][0][k]) for k in ("exp_avg", "exp_avg_sq"))


def test_optimizer_argument_errors():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="parameter 0 is not a Tensor that requires grad"):
        optim.Adam([mg.tensor([1.0])])
    p = start()
    with pytest.raises(ValueError, match="appears twice"):
        optim.Adam([p, p])
    with pytest.raises(ValueError, match="nesterov=True needs momentum"):
        optim.SGD([p], lr=0.1, nesterov=True)


# --------------------------------------------------------------------------- clipping


def test_clip_grad_norm_scales_in_place_and_returns_the_norm_before():
    a, b = nn.Parameter(np.zeros(2)), nn.Parameter(np.zeros(1))
    a.grad, b.grad = mg.tensor(np.array([3.0, 0.0])), mg.tensor(np.array([4.0]))
    norm = optim.clip_grad_norm_([a, b], max_norm=1.0)
    assert norm == 5.0
    np.testing.assert_allclose(np.concatenate([a.grad.data, b.grad.data]),
                               np.array([3.0, 0.0, 4.0]) / (5.0 + 1e-6), rtol=1e-15)
    small = a.grad.data.copy()
    assert optim.clip_grad_norm_([a, b], max_norm=10.0) == pytest.approx(1.0, rel=1e-5)
    assert np.array_equal(a.grad.data, small)  # below the limit: untouched


# --------------------------------------------------------------------------- schedules


def noam(step, d_model, warmup, scale=1.0):
    return scale * d_model ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)


def test_noam_schedule_matches_the_paper_formula():
    opt = optim.Adam([start()], lr=1.0)
    schedule = optim.NoamSchedule(opt, d_model=512, warmup_steps=4000, scale=2.0)
    seen = {1: opt.lr}
    for step in range(2, 16001):
        assert schedule.step() == opt.lr
        seen[step] = opt.lr
    for step in (1, 2, 1000, 4000, 4001, 16000):
        assert seen[step] == pytest.approx(noam(step, 512, 4000, 2.0), rel=1e-12)
    # Hand-computed: at step 1 the rate is 2·512^-0.5·4000^-1.5; the peak at the end of
    # warmup is 2/√(512·4000); after 4·warmup it has halved (1/√step decay).
    assert seen[1] == pytest.approx(2 / math.sqrt(512) / 4000 ** 1.5, rel=1e-12)
    assert seen[4000] == pytest.approx(2 / math.sqrt(512 * 4000), rel=1e-12)
    assert seen[16000] == pytest.approx(seen[4000] / 2, rel=1e-12)
    assert max(seen, key=seen.get) == 4000


def test_warmup_cosine_and_constant_schedules():
    opt = optim.SGD([start()], lr=0.0)
    schedule = optim.WarmupCosineSchedule(opt, max_lr=1.0, warmup_steps=10, total_steps=110, min_lr=0.1)
    assert opt.lr == pytest.approx(0.1)  # step 1 of a linear warmup to 1.0 over 10 steps
    lrs = [opt.lr] + [schedule.step() for _ in range(200)]  # lrs[k] is step k + 1
    assert lrs[9] == pytest.approx(1.0)
    assert lrs[59] == pytest.approx(0.1 + 0.9 * 0.5)  # half way through the cosine
    assert lrs[109] == pytest.approx(0.1) and lrs[200] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))  # decays monotonically after warmup
    constant = optim.ConstantSchedule(opt, 0.3)
    assert opt.lr == 0.3 and constant.step() == 0.3 and constant.get_lr() == 0.3


def test_schedule_state_dict_round_trip():
    opt = optim.Adam([start()])
    schedule = optim.NoamSchedule(opt, d_model=64, warmup_steps=10)
    for _ in range(6):
        schedule.step()
    other_opt = optim.Adam([start()])
    other = optim.NoamSchedule(other_opt, d_model=64, warmup_steps=10)
    other.load_state_dict(schedule.state_dict())
    assert other.step_num == 7 and other_opt.lr == opt.lr
    with pytest.raises(ValueError, match="comes from a ConstantSchedule"):
        other.load_state_dict(optim.ConstantSchedule(opt, 1.0).state_dict())


# --------------------------------------------------------------------------- learning


class MLP(nn.Module):
    """Linear -> tanh -> Linear."""

    def __init__(self, n_in, hidden, n_out, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.hidden = nn.Linear(n_in, hidden, rng=rng)
        self.out = nn.Linear(hidden, n_out, rng=rng)

    def forward(self, x):
        return self.out(self.hidden(x).tanh())


def fit(model, opt, x, y, steps):
    x = mg.tensor(x)
    for _ in range(steps):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
    return loss.item()


XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
XOR_Y = np.array([[0], [1], [1], [0]], np.float32)


@pytest.mark.parametrize("make_optimizer", [
    lambda ps: optim.Adam(ps, lr=0.05),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9)])
def test_mlp_fits_xor(make_optimizer):
    model = MLP(2, 8, 1)
    loss = fit(model, make_optimizer(model.parameters()), XOR_X, XOR_Y, steps=300)
    assert loss < 1e-3
    assert np.array_equal(model(mg.tensor(XOR_X)).data > 0.5, XOR_Y > 0.5)


def test_mlp_fits_a_noisy_sine():
    rng = np.random.default_rng(1)
    x = np.linspace(-np.pi, np.pi, 64, dtype=np.float32)[:, None]
    y = (np.sin(x) + 0.1 * rng.standard_normal(x.shape)).astype(np.float32)  # noise variance 0.01
    model = MLP(1, 32, 1)
    loss = fit(model, optim.Adam(model.parameters(), lr=0.01), x, y, steps=1000)
    assert loss < 0.01  # down to the noise floor
    assert np.mean((model(mg.tensor(x)).data - np.sin(x)) ** 2) < 0.003  # close to the clean sine


# --------------------------------------------------------------------------- hyperparameters


@pytest.mark.parametrize("make, message", [
    (lambda p: optim.SGD([p], lr=-0.1), "SGD: lr must be a finite number ≥ 0, got -0.1"),
    (lambda p: optim.SGD([p], lr=float("nan")), "SGD: lr must be .*, got nan"),
    (lambda p: optim.SGD([p], lr=0.1, momentum=-0.5), "SGD: momentum must be"),
    (lambda p: optim.SGD([p], lr=0.1, weight_decay=float("inf")), "SGD: weight_decay must be"),
    (lambda p: optim.Adam([p], lr=float("inf")), "Adam: lr must be"),
    (lambda p: optim.Adam([p], betas=(0.9, 1.0)), r"Adam: betas\[1\] must be a finite number ≥ 0 and < 1"),
    (lambda p: optim.Adam([p], betas=(float("nan"), 0.9)), r"betas\[0\] must be"),
    (lambda p: optim.Adam([p], betas=0.9), "betas must be a pair"),
    (lambda p: optim.Adam([p], eps=0.0), "Adam: eps must be a finite number > 0, got 0.0"),
    (lambda p: optim.AdamW([p], weight_decay=-0.01), "AdamW: weight_decay must be"),
])
def test_optimizers_refuse_bad_hyperparameters(make, message):
    with pytest.raises(ValueError, match=message):
        make(start())


def test_loading_an_optimizer_state_checks_its_hyperparameters():
    opt = optim.Adam([start()], lr=0.01)
    state = opt.state_dict()
    state["hyperparams"]["lr"] = float("nan")
    state["hyperparams"]["betas"] = [0.9, 1.5]
    with pytest.raises(ValueError, match=r"(?s)2 problem\(s\).*lr must be.*got nan.*betas must be.*got 1.5"):
        opt.load_state_dict(state)
    assert opt.lr == 0.01


@pytest.mark.parametrize("max_norm", [float("nan"), float("inf"), -1.0, 0.0])
def test_clip_grad_norm_refuses_a_max_norm_that_is_not_positive_and_finite(max_norm):
    a = nn.Parameter(np.zeros(2))
    a.grad = mg.tensor(np.array([3.0, 4.0]))
    with pytest.raises(ValueError, match=f"clip_grad_norm_: max_norm must be a finite number > 0, got {max_norm}"):
        optim.clip_grad_norm_([a], max_norm)
    assert a.grad.tolist() == [3.0, 4.0]


@pytest.mark.parametrize("make, message", [
    (lambda o: optim.NoamSchedule(o, 64, 10, scale=-1.0), "NoamSchedule: scale must be a finite number > 0"),
    (lambda o: optim.NoamSchedule(o, 64, 10, scale=float("nan")), "NoamSchedule: scale must be"),
    (lambda o: optim.NoamSchedule(o, 64, 0), "NoamSchedule: warmup_steps must be an integer ≥ 1, got 0"),
    (lambda o: optim.NoamSchedule(o, 64.5, 10), "NoamSchedule: d_model must be an integer"),
    (lambda o: optim.WarmupCosineSchedule(o, 0.0, 10, 100), "WarmupCosineSchedule: max_lr must be .* > 0"),
    (lambda o: optim.WarmupCosineSchedule(o, float("inf"), 10, 100), "max_lr must be"),
    (lambda o: optim.WarmupCosineSchedule(o, 1.0, 10, 100, min_lr=-0.1), "min_lr must be"),
    (lambda o: optim.WarmupCosineSchedule(o, 1.0, 10, 100, min_lr=2.0), "need min_lr <= max_lr"),
    (lambda o: optim.WarmupCosineSchedule(o, 1.0, 10, 10), "need 0 <= warmup_steps < total_steps"),
    (lambda o: optim.ConstantSchedule(o, float("nan")), "ConstantSchedule: lr must be"),
])
def test_schedules_refuse_bad_settings(make, message):
    opt = optim.SGD([start()], lr=0.5)
    with pytest.raises(ValueError, match=message):
        make(opt)
    assert opt.lr == 0.5  # nothing was set


# --------------------------------------------------------------------------- schedule values, worked out by hand


def lrs_by_step(schedule, opt, last):
    """{step: the optimizer's lr for that step}, stepping the schedule as a training loop does."""
    seen = {1: opt.lr}
    for step in range(2, last + 1):
        schedule.step()
        seen[step] = opt.lr
    return seen


@pytest.mark.parametrize("d_model, warmup, scale, expected", [
    # d_model^-0.5 = 0.125 and warmup^-1.5 = 0.001: rise 0.125·step·0.001, then fall 0.125/√step.
    (64, 100, 1.0, {1: 1.25e-4, 50: 6.25e-3, 100: 1.25e-2, 400: 6.25e-3, 2500: 2.5e-3}),
    # 2·16^-0.5 = 0.5 and 4^-1.5 = 0.125.
    (16, 4, 2.0, {1: 0.0625, 2: 0.125, 4: 0.25, 16: 0.125, 64: 0.0625}),
])
def test_noam_schedule_values(d_model, warmup, scale, expected):
    opt = optim.SGD([start()], lr=0.0)
    seen = lrs_by_step(optim.NoamSchedule(opt, d_model, warmup, scale), opt, max(expected))
    for step, lr in expected.items():
        assert seen[step] == pytest.approx(lr, rel=1e-12), step


@pytest.mark.parametrize("max_lr, min_lr, warmup, total, expected", [
    # Warmup 1/4 per step; then 0.2 + 0.4·(1 + cos(π·(step - 4)/8)); 0.2 from step 12 on.
    (1.0, 0.2, 4, 12, {1: 0.25, 2: 0.5, 4: 1.0, 6: 0.2 + 0.4 * (1 + math.sqrt(0.5)), 8: 0.6,
                       10: 0.2 + 0.4 * (1 - math.sqrt(0.5)), 12: 0.2, 30: 0.2}),
    # No warmup: the cosine starts at step 0, so step 1 is already a quarter of the way down.
    (2.0, 0.0, 0, 4, {1: 1 + math.sqrt(0.5), 2: 1.0, 3: 1 - math.sqrt(0.5), 4: 0.0, 9: 0.0}),
])
def test_warmup_cosine_schedule_values(max_lr, min_lr, warmup, total, expected):
    opt = optim.SGD([start()], lr=0.0)
    seen = lrs_by_step(optim.WarmupCosineSchedule(opt, max_lr, warmup, total, min_lr), opt, max(expected))
    for step, lr in expected.items():
        assert seen[step] == pytest.approx(lr, rel=1e-12, abs=1e-15), step
