"""Mutation testing: plant one realistic bug at a time and check that the tests notice.

    python tools/mutants.py                  # every mutant, one after another
    python tools/mutants.py -j 2 -k ops.     # two at a time, only mutants whose name contains "ops."
    python tools/mutants.py --list           # names only (and check that every snippet still exists)

Each mutant below replaces one exact snippet of a source file with a wrong version (a
flipped sign in a VJP, an eps in the wrong place, sin and cos swapped, ...).  The runner
copies the repository to a temporary directory, applies one mutant there (never to the
working tree), runs the test files that should catch it (``pytest -x``, ``CI=true`` and
the derandomized CI profile, without shrinking failures), and restores the file.  A mutant is *killed* when the tests
fail and *survives* when they pass.  The report ends with the kill rate; the exit status
is 1 when a mutant survives.

Every snippet must occur exactly once in its file: when the code changes under a mutant,
the runner says which one to update instead of silently testing nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str  # "<module>.<what is wrong>"
    path: str  # file, relative to the repository root
    original: str  # exact snippet, found exactly once in the file
    replacement: str
    tests: tuple[str, ...]  # pytest arguments (files or node ids) that should kill it


OPS, AUTOGRAD, GRADCHECK = "minigrad/ops.py", "minigrad/autograd.py", "minigrad/gradcheck.py"
T_OPS, T_FUSED, T_AUTOGRAD = "tests/test_ops.py", "tests/test_fused.py", "tests/test_autograd.py"
T_GRADCHECK, T_NN, T_OPTIM = "tests/test_gradcheck.py", "tests/test_nn.py", "tests/test_optim.py"
T_TRANSFORMER, T_FORMULAS = "tests/test_transformer.py", "tests/test_formulas.py"
T_CONVENTIONS = "tests/test_conventions.py"
DECODING, T_DECODING = "transformer/decoding.py", "tests/test_decoding.py"
TASKS, T_TASKS = "transformer/tasks.py", "tests/test_tasks.py"
TRAIN, RUN_DATA, CLI = "transformer/train.py", "transformer/run_data.py", "transformer/cli.py"
TOKENIZER, T_TOKENIZER = "transformer/tokenizer.py", "tests/test_tokenizer.py"
T_SCORING, T_SIDES = "tests/test_scoring.py", "tests/test_two_vocabularies.py"
PAGE_JS, T_PAGE = "minigrad/graph_page.js", "tests/test_html_page.py"

# The guards' files and the tests that pin them.
CHECKPOINT, CHECKPOINTS, FILES = "minigrad/checkpoint.py", "transformer/checkpoints.py", "minigrad/files.py"
TRAIN, EVALUATION, CLI = "transformer/train.py", "transformer/evaluation.py", "transformer/cli.py"
OPTIMIZERS, INTEROP = "minigrad/optim/optimizers.py", "transformer/interop.py"
T_SAFETY, T_TRAIN, T_INTEROP = "tests/test_checkpoint_safety.py", "tests/test_train.py", "tests/test_interop.py"
T_MEMBER_SIZE = f"{T_SAFETY}::test_a_member_whose_data_does_not_match_its_header_is_refused_either_way"
T_UNNAMED_MEMBERS = f"{T_SAFETY}::test_members_the_metadata_does_not_name_are_refused_in_every_namespace"
T_ATOMIC = "test_the_atomic_write_flushes_and_fsyncs_the_data_before_the_rename_then_syncs_the_directory"
T_SETTING_EDGES = f"{T_TRAIN}::test_every_numeric_setting_is_accepted_at_its_bound_and_refused_past_it"
T_BEAM_REFERENCE = f"{T_DECODING}::test_beam_search_equals_a_plain_reference_where_eos_competes_early"
T_NEVER_CHOSEN = f"{T_DECODING}::test_tokens_never_chosen_stay_unchosen_however_likely_the_model_makes_them"
T_DECODING_MAX_LEN = f"{T_DECODING}::test_max_len_is_accepted_up_to_the_model_s_positions_minus_bos_and_refused_past_it"
T_INTEGER_OPTIONS = "tests/test_cli.py::test_integer_options_are_accepted_at_their_bounds_and_refused_one_past_them"
T_DIGIT_MIXTURE = f"{T_TASKS}::test_distinct_digit_counts_follow_the_documented_mixture"
T_TWO_GRAPHS = ("tests/test_trace.py::test_two_graphs_in_one_trace_keep_the_trace_s_step_numbers_in_the_picture"
                "_and_the_page")
T_EDGES = "tests/test_failure_edges.py"


def case(*names):
    """The op table's tests (tests/test_ops.py) for the named cases."""
    return tuple(f"{T_OPS}::{test}[{name}]" for name in names
                 for test in ("test_forward_matches_numpy", "test_gradcheck", "test_gradgradcheck"))


def data_test(name):
    """One test of tests/test_train_data.py (training on real data)."""
    return f"tests/test_train_data.py::{name}"


def m(name, path, original, replacement, *tests):
    return Mutant(name, path, original, replacement, tuple(tests))


MUTANTS = [
    # ----------------------------------------------------------------- elementwise rules
    m("ops.sub_second_rule_sign", OPS, "_grad_of_output, _neg_grad)", "_grad_of_output, _grad_of_output)",
      *case("sub")),
    m("ops.div_denominator_rule_sign", OPS, "lambda g, out: -g * out / b)", "lambda g, out: g * out / b)",
      *case("div")),
    m("ops.pow_exponent_off_by_one", OPS, "g * b * a ** (b - 1)", "g * b * a ** b", *case("pow_scalar", "pow_tensor")),
    m("ops.pow_exponent_rule_missing_log", OPS, "g * out * log(a))", "g * out)", *case("pow_tensor", "rpow_scalar")),
    m("ops.log_rule_multiplies", OPS, "lambda g, out: g / x)", "lambda g, out: g * x)", *case("log")),
    m("ops.sqrt_rule_missing_half", OPS, "g / (out * 2)", "g / out", *case("sqrt")),
    m("ops.tanh_rule_sign", OPS, "g * (1 - out * out)", "g * (1 + out * out)", *case("tanh")),
    m("ops.sigmoid_rule_missing_factor", OPS, "g * out * (1 - out))", "g * (1 - out))", *case("sigmoid")),
    m("ops.relu_gradient_one_at_zero", OPS, "g * (x.data > 0))", "g * (x.data >= 0))",
      *(T_CONVENTIONS,) + case("relu")),
    m("ops.abs_gradient_one_at_zero", OPS, "g * np.sign(x.data))", "g * np.where(x.data >= 0, 1.0, -1.0))",
      *(T_CONVENTIONS,) + case("abs")),
    m("ops.erf_rule_constant", OPS, "g * (2 / math.sqrt(math.pi))", "g * (1 / math.sqrt(math.pi))", *case("erf")),
    m("ops.gelu_tanh_derivative_of_cubic", OPS, "(v * v * (3 * 0.044715) + 1)", "(v * v * 0.044715 + 1)",
      *case("gelu_tanh")),
    m("ops.clip_bound_gets_no_gradient", OPS, "(x.data >= lo) & (x.data <= hi)", "(x.data > lo) & (x.data < hi)",
      *(T_CONVENTIONS,) + case("clip")),
    m("ops.clip_needs_both_bounds", OPS, "if min is None and max is None:", "if min is None or max is None:",
      *(T_CONVENTIONS,) + case("clip")),
    m("ops.tie_gives_both_the_whole_gradient", OPS, "(a > b) + 0.5 * (a == b)", "(a > b) + 1.0 * (a == b)",
      *(T_CONVENTIONS,) + case("maximum", "minimum")),
    m("ops.minimum_rules_of_maximum", OPS,
      "lambda g, out: g * _winner(b.data, a.data).astype(g.dtype),\n"
      "                  lambda g, out: g * _winner(a.data, b.data).astype(g.dtype))\n\n\ndef astype",
      "lambda g, out: g * _winner(a.data, b.data).astype(g.dtype),\n"
      "                  lambda g, out: g * _winner(b.data, a.data).astype(g.dtype))\n\n\ndef astype",
      *case("minimum")),
    # ----------------------------------------------------------------- reductions and shapes
    m("ops.max_ties_not_shared", OPS, "share = hits / hits.sum(axis=axes, keepdims=True)", "share = hits",
      *(T_CONVENTIONS,) + case("max", "min")),
    m("ops.max_tie_goes_to_the_first", OPS, "share = hits / hits.sum(axis=axes, keepdims=True)",
      "share = np.cumsum(np.cumsum(hits, axis=axes[-1]), axis=axes[-1]) == 1", *(T_CONVENTIONS,) + case("max", "min")),
    m("ops.mean_rule_missing_1_over_n", OPS, "* (1 / n), x.shape))", ", x.shape))", *case("mean")),
    m("ops.var_rule_ignores_ddof", OPS, "(2 / (n - ddof))", "(2 / n)", *case("var")),
    m("ops.transpose_rule_not_inverted", OPS, "inverse = tuple(np.argsort([a % x.ndim for a in axes]))",
      "inverse = tuple(a % x.ndim for a in axes)", *case("transpose")),
    m("ops.getitem_repeated_indices_overwrite", OPS, "np.add.at(data, index, g.data)  # accumulates",
      "data[index] = g.data  # accumulates", *case("getitem")),
    m("ops.pad_rule_cuts_from_the_start", OPS, "slice(int(lo), int(lo) + n)", "slice(0, n)", *case("pad")),
    m("ops.sum_to_keeps_broadcast_axis", OPS, "if n == 1 and x.shape[lead + i] != 1)", "if n == 1 and False)",
      f"{T_OPS}::test_gradcheck[sum_to]", *case("add")),
    m("ops.matmul_vector_rule_outer_product", OPS,
      "return g * a if b.ndim == 1 else unsqueeze(a, -1) * unsqueeze(g, -2)",
      "return g * a if b.ndim == 1 else unsqueeze(g, -1) * unsqueeze(a, -2)", *case("matmul")),
    m("ops.linear_bias_rule_first_row_only", OPS, "lambda g, out: sum_to(g, (m,)))",
      "lambda g, out: reshape(g, (-1, m))[0])", *case("linear")),
    m("ops.masked_fill_rule_keeps_masked", OPS, "lambda g, out: where(mask, 0.0, g))", "lambda g, out: g)",
      *case("masked_fill")),
    # ----------------------------------------------------------------- fused primitives
    m("ops.softmax_rule_last_axis", OPS, "out * (g - sum(g * out, axis, keepdims=True))",
      "out * (g - sum(g * out, -1, keepdims=True))", *(T_FUSED,) + case("softmax")),
    m("ops.log_softmax_rule_last_axis", OPS, "g - exp(out) * sum(g, axis, keepdims=True)",
      "g - exp(out) * sum(g, -1, keepdims=True)", *(T_FUSED,) + case("log_softmax")),
    m("ops.fully_masked_row_is_nan", OPS, "    m[~np.isfinite(m)] = 0\n", "", *(T_AUTOGRAD,) + case("attention")),
    m("ops.attention_scale_by_d", OPS, "scale = 1.0 / math.sqrt(q.shape[-1])", "scale = 1.0 / q.shape[-1]",
      *(T_FUSED,) + case("attention")),
    m("ops.attention_score_rule_missing_scale", OPS, "        dp *= scale\n        return dp", "        return dp",
      *(T_FUSED,) + case("attention")),
    m("ops.attention_score_rule_dropout_mask_missing", OPS,
      "        if keep is not None:\n            dp *= keep\n", "", *(T_FUSED,) + case("attention")),
    m("ops.attention_create_graph_mask_inverted", OPS,
      "masked_fill(s, ~np.asarray(mask, dtype=bool), -np.inf)", "masked_fill(s, np.asarray(mask, dtype=bool), -np.inf)",
      *(T_FUSED,) + case("attention")),
    m("ops.attention_create_graph_dropout_missing_in_scores", OPS,
      "        if keep is not None:\n            dp = dp * keep\n", "", *(T_FUSED,) + case("attention")),
    m("ops.attention_create_graph_dropout_missing_in_values", OPS,
      "return p * keep if keep is not None else p", "return p", *(T_FUSED,) + case("attention")),
    m("ops.attention_score_cache_ignores_the_mode", OPS,
      'if cache.get("g") is not g or cache.get("recording") != is_grad_enabled():', 'if cache.get("g") is not g:',
      T_FUSED),
    m("ops.layer_norm_eps_outside_sqrt", OPS,
      "rstd = 1 / np.sqrt(_sum(xhat * xhat, last, keepdims=True) * (1 / d) + eps)",
      "rstd = 1 / (np.sqrt(_sum(xhat * xhat, last, keepdims=True) * (1 / d)) + eps)", *(T_FUSED,) + case("layer_norm")),
    m("ops.layer_norm_rule_sign_of_projection", OPS, "gh -= xhat * ghx", "gh += xhat * ghx",
      *(T_FUSED,) + case("layer_norm")),
    m("ops.layer_norm_create_graph_without_eps", OPS, "r = (mean(c * c, -1, keepdims=True) + eps) ** -0.5",
      "r = mean(c * c, -1, keepdims=True) ** -0.5", *(T_FUSED,) + case("layer_norm")),
    m("ops.layer_norm_create_graph_projection_dropped", OPS,
      "(gh - mean(gh, -1, keepdims=True) - xh * mean(gh * xh, -1, keepdims=True)) * r",
      "(gh - mean(gh, -1, keepdims=True) - xh * mean(gh, -1, keepdims=True)) * r", *(T_FUSED,) + case("layer_norm")),
    m("ops.layer_norm_create_graph_weight_rule_uses_rstd", OPS,
      "g * (statistics()[0] if is_grad_enabled() else xhat)", "g * (statistics()[1] if is_grad_enabled() else xhat)",
      *(T_FUSED,) + case("layer_norm")),
    m("ops.cross_entropy_smoothing_mass_forgotten", OPS,
      "- label_smoothing * (row_mean - log_sums)", "- label_smoothing * row_mean", *(T_FUSED,) + case("cross_entropy")),
    m("ops.cross_entropy_mean_over_all_targets", OPS, "weights = weights / count if count else weights * 0",
      "weights = weights / len(weights)", *(T_FUSED,) + case("cross_entropy")),
    m("ops.cross_entropy_rule_smoothing_not_spread", OPS, "dx -= (label_smoothing / n_classes) * per_row",
      "dx -= label_smoothing * per_row", *(T_FUSED,) + case("cross_entropy")),
    m("ops.cross_entropy_create_graph_smooths_over_other_classes", OPS,
      "q = np.full_like(rows, label_smoothing / n_classes)",
      "q = np.full_like(rows, label_smoothing / (n_classes - 1))", *(T_FUSED,) + case("cross_entropy")),
    m("ops.cross_entropy_create_graph_target_mass_overwritten", OPS,
      "q[row_index, flat_t] += 1 - label_smoothing", "q[row_index, flat_t] = 1 - label_smoothing",
      *(T_FUSED,) + case("cross_entropy")),
    m("ops.cross_entropy_create_graph_ignored_rows_counted", OPS,
      "per_row = weights * (reshape(g, (-1, 1)) if reduction == \"none\" else g)",
      "per_row = (weights != 0) * (reshape(g, (-1, 1)) if reduction == \"none\" else g) / max(count, 1)",
      *(T_FUSED,) + case("cross_entropy")),
    m("ops.embedding_padding_row_gets_gradient", OPS, "        data[padding_idx] = 0\n", "",
      *(T_NN,) + case("embedding")),
    m("ops.embedding_second_order_ignores_padding", OPS, "return picked * keep if keep is not None else picked",
      "return picked", T_NN, f"{T_OPS}::test_gradcheck"),
    m("ops.dropout_rule_unscaled", OPS, "lambda g, out: g * mask)", "lambda g, out: g * keep)", *case("dropout")),
    # ----------------------------------------------------------------- engine
    m("autograd.no_grad_exit_turns_recording_on", AUTOGRAD, "STATE.grad_enabled = self._previous",
      "STATE.grad_enabled = True", T_AUTOGRAD),
    m("autograd.no_grad_exit_keeps_its_own_mode", AUTOGRAD, "STATE.grad_enabled = self._previous",
      "STATE.grad_enabled = not self.enabled", T_AUTOGRAD),
    m("autograd.name_scope_not_restored", AUTOGRAD, "        STATE.scope = previous\n", "        pass\n", T_NN),
    m("autograd.backward_records_without_create_graph", AUTOGRAD, "STATE.grad_enabled = create_graph  #",
      "STATE.grad_enabled = True  #", T_AUTOGRAD),
    m("autograd.second_use_overwrites_gradient", AUTOGRAD, "entry[1] = entry[1] + g", "entry[1] = g", T_AUTOGRAD),
    m("autograd.backward_oldest_first", AUTOGRAD, "heapq.heappush(waiting, (-t._node.seq, t))",
      "heapq.heappush(waiting, (t._node.seq, t))", T_AUTOGRAD),
    m("autograd.grad_replaces_instead_of_accumulating", AUTOGRAD, "leaf.grad._data += g._data",
      "leaf.grad._data[...] = g._data", T_AUTOGRAD),
    # ----------------------------------------------------------------- the gradient checker
    m("gradcheck.compares_element_0_only", GRADCHECK,
      "            for j in range(x.size):\n                if not close(analytic[k].flat[j], vjp_numeric[j]):",
      "            for j in range(1):\n                if not close(analytic[k].flat[j], vjp_numeric[j]):",
      T_GRADCHECK),
    m("gradcheck.rows_compare_element_0_only", GRADCHECK,
      "            for j in range(x.size):\n                if not close(analytic.flat[j], numeric[row, j]):",
      "            for j in range(1):\n                if not close(analytic.flat[j], numeric[row, j]):",
      T_GRADCHECK),
    m("gradcheck.names_the_wrong_element", GRADCHECK, "np.unravel_index(index, shape)",
      "np.unravel_index(0, shape)", T_GRADCHECK),
    m("gradcheck.mismatch_reported_as_kink", GRADCHECK, "if not close(r, lft):", "if close(r, lft) or True:",
      T_GRADCHECK),
    m("gradcheck.zero_cotangent_not_checked", GRADCHECK, "if np.any(g != 0):", "if False:", T_GRADCHECK),
    m("gradcheck.one_sided_step", GRADCHECK, "return (plus - minus) / (2 * eps)", "return (plus - minus) / eps",
      T_GRADCHECK),
    # ----------------------------------------------------------------- layers and schedules
    m("nn.layer_norm_ignores_eps", "minigrad/nn/layers.py", "ops.layer_norm(x, self.weight, self.bias, self.eps)",
      "ops.layer_norm(x, self.weight, self.bias)", T_NN),
    m("nn.linear_bias_false_keeps_a_bias", "minigrad/nn/layers.py",
      "Parameter(np.zeros(out_features, dtype=dtype)) if bias else None",
      "Parameter(np.zeros(out_features, dtype=dtype)) if bias is not None else None", T_NN),
    m("nn.negative_padding_idx_not_normalized", "minigrad/nn/layers.py", "            padding_idx %= num_embeddings\n",
      "", T_NN),
    m("nn.dropout_layer_ignores_p", "minigrad/nn/layers.py", "ops.dropout(x, self.p, self.rng, self.training)",
      "ops.dropout(x, 0.5, self.rng, self.training)", T_NN),
    m("optim.noam_warmup_exponent", "minigrad/optim/schedules.py", "step * self.warmup_steps ** -1.5",
      "step * self.warmup_steps ** -0.5", T_OPTIM),
    m("optim.cosine_progress_from_step_0", "minigrad/optim/schedules.py",
      "(step - self.warmup_steps) / (self.total_steps - self.warmup_steps)",
      "step / self.total_steps", T_OPTIM),
    m("optim.cosine_full_period", "minigrad/optim/schedules.py", "(1 + math.cos(math.pi * progress))",
      "(1 + math.cos(2 * math.pi * progress))", T_OPTIM),
    m("optim.adam_second_moment_uncorrected", "minigrad/optim/optimizers.py",
      "                denom /= math.sqrt(1 - beta2 ** t)\n", "", T_OPTIM),
    # ----------------------------------------------------------------- the Transformer
    m("transformer.positional_sin_cos_swapped", "transformer/embedding.py",
      "table[:, 0::2] = np.sin(position * frequency)\n    table[:, 1::2] = np.cos(",
      "table[:, 0::2] = np.cos(position * frequency)\n    table[:, 1::2] = np.sin(", T_FORMULAS, T_TRANSFORMER),
    m("transformer.positional_frequency_exponent", "transformer/embedding.py",
      "np.arange(0, d_model, 2) / d_model", "np.arange(d_model // 2) / d_model", T_FORMULAS, T_TRANSFORMER),
    m("transformer.embedding_scale_missing", "transformer/embedding.py",
      "x = self.tokens(tokens) * math.sqrt(self.d_model)", "x = self.tokens(tokens)", T_FORMULAS, T_TRANSFORMER),
    m("transformer.embedding_scale_d_model", "transformer/embedding.py",
      "x = self.tokens(tokens) * math.sqrt(self.d_model)", "x = self.tokens(tokens) * self.d_model",
      T_FORMULAS, T_TRANSFORMER),
    m("transformer.post_norm_residual_missing", "transformer/layers.py",
      "return norm(x + dropout(sublayer(x)))", "return norm(dropout(sublayer(x)))", T_FORMULAS, T_TRANSFORMER),
    m("transformer.pre_norm_residual_normalized", "transformer/layers.py",
      "return x + dropout(sublayer(norm(x)))", "return norm(x) + dropout(sublayer(norm(x)))",
      T_FORMULAS, T_TRANSFORMER),
    m("transformer.norm_placements_swapped", "transformer/layers.py",
      "    if norm_first:\n", "    if not norm_first:\n",
      T_FORMULAS, T_TRANSFORMER),
    m("transformer.pre_norm_encoder_without_final_norm", "transformer/layers.py",
      "x = layer(x, src_mask)\n        return x if self.norm is None else self.norm(x)",
      "x = layer(x, src_mask)\n        return x", T_FORMULAS, T_TRANSFORMER),
    m("transformer.feed_forward_always_gelu", "transformer/layers.py",
      "h = mg.relu(h) if self.activation == \"relu\" else mg.gelu(h)", "h = mg.gelu(h)", T_FORMULAS, T_TRANSFORMER),
    m("transformer.composed_attention_scale_by_d", "transformer/attention.py",
      "(q * (1.0 / math.sqrt(q.shape[-1])))", "(q * (1.0 / q.shape[-1]))", T_FORMULAS, T_TRANSFORMER),
    m("transformer.causal_mask_sees_next_token", "transformer/attention.py",
      "np.tril(np.ones((length, length), dtype=bool))", "np.tril(np.ones((length, length), dtype=bool), 1)",
      T_TRANSFORMER),
    m("transformer.heads_split_without_transpose", "transformer/attention.py",
      "x.reshape(b, t, self.n_heads, self.d_k).transpose(0, 2, 1, 3)", "x.reshape(b, self.n_heads, t, self.d_k)",
      T_TRANSFORMER),
    m("transformer.tied_output_uses_source_embedding", "transformer/model.py",
      "return h @ self.tgt_embed.tokens.weight.T", "return h @ self.src_embed.tokens.weight.T",
      T_FORMULAS, T_TRANSFORMER),
    m("transformer.tied_output_gradient_dropped", "transformer/model.py",
      "return h @ self.tgt_embed.tokens.weight.T", "return h @ self.tgt_embed.tokens.weight.detach().T",
      T_FORMULAS, T_TRANSFORMER),
    m("transformer.loss_ignores_smoothing", "transformer/loss.py",
      "label_smoothing=label_smoothing)", "label_smoothing=0.0)", T_FORMULAS, T_TRANSFORMER),
    m("transformer.loss_counts_padding", "transformer/loss.py", "ignore_index=pad_id,", "ignore_index=-100,",
      T_FORMULAS, T_TRANSFORMER),
    # decoding
    m("decoding.pad_may_be_chosen", DECODING, "NEVER_CHOSEN = (PAD, BOS, UNK)", "NEVER_CHOSEN = (BOS, UNK)",
      T_DECODING),
    m("decoding.nothing_excluded", DECODING, "scores[..., NEVER_CHOSEN] = -np.inf", "pass", T_DECODING),
    m("decoding.logits_after_eos_kept", DECODING, "step_logits.append(np.where(finished[:, None], np.nan, logits))",
      "step_logits.append(logits)", T_DECODING),
    m("decoding.normalizer_off_by_one", DECODING, "((5.0 + length) / 6.0) ** alpha", "((6.0 + length) / 6.0) ** alpha",
      T_DECODING),
    m("decoding.records_a_graph", DECODING, "with mg.no_grad():\n            yield",
      "with mg.enable_grad():\n            yield", T_DECODING),
    m("decoding.empty_source_accepted", DECODING, "    if empty.size:\n", "    if False:\n", T_DECODING),
    # task data: the inputs a person types first must be in training and in test
    m("tasks.operands_drawn_uniformly", TASKS, "OPERAND_DIGIT_CDF = length_cdf(OPERAND_DIGITS)",
      "OPERAND_DIGIT_CDF = length_cdf([10, 90, 900])", T_TASKS),
    m("tasks.addition_numbering_skips_zero", TASKS, "return range(0 if digits == 1 else",
      "return range(1 if digits == 1 else", T_TASKS),
    m("tasks.short_sources_held_out", TASKS, "        if count <= SHARED_MAX:  # shared", "        if False:  # shared",
      T_TASKS),
    m("tasks.no_few_digit_strings", TASKS, "FEW_DIGITS_SHARE = 0.2", "FEW_DIGITS_SHARE = 0.0", T_TASKS),
    m("evaluation.typed_inputs_scored_as_copies", "transformer/evaluation.py", "if output != task.answer(source)]",
      "if output != source]", "tests/test_train.py::test_typed_inputs_are_scored_against_the_tasks_answer"),
    m("tasks.digit_lengths_uniform", TASKS, "PROPORTIONAL_LENGTHS = length_cdf(DIGIT_LENGTHS)",
      "PROPORTIONAL_LENGTHS = length_cdf([1] * len(DIGIT_LENGTHS))", T_TASKS),
    # ---- pairs and datasets
    m("pairs.tab_count_loosened", "transformer/pairs.py", "    if tabs != 1:\n", "    if tabs == 0:\n",
      "tests/test_pairs.py"),
    m("pairs.bom_kept", "transformer/pairs.py", "raw = raw.removeprefix(_BOM)", "pass", "tests/test_pairs.py"),
    m("pairs.sides_stripped_of_spaces_only", "transformer/pairs.py",
      '(" ".join(side.split()) for side in text.split("\\t"))', '(side.strip(" ") for side in text.split("\\t"))',
      "tests/test_pairs.py"),
    m("pairs.indented_comment_parsed", "transformer/pairs.py", 'or text.lstrip().startswith("#")',
      'or text.startswith("#")', "tests/test_pairs.py"),
    m("pairs.skipped_numbered_by_pairs", "transformer/pairs.py", "skipped.append((number, problem))",
      "skipped.append((len(pairs) + len(skipped) + 1, problem))", "tests/test_pairs.py"),
    m("pairs.nul_checked_on_first_line_only", "transformer/pairs.py", '            if b"\\0" in raw:',
      '            if number == 1 and b"\\0" in raw:', "tests/test_pairs.py"),
    m("pairs.line_length_in_bytes", "transformer/pairs.py", 'length = len(text.rstrip("\\r\\n"))',
      'length = len(raw.rstrip(b"\\r\\n"))', "tests/test_pairs.py"),
    m("pairs.long_line_read_in_pieces", "transformer/pairs.py",
      'too_long = len(raw) == _READ_LIMIT and not raw.endswith(b"\\n")', "too_long = False", "tests/test_pairs.py"),
    m("pairs.device_opened", "transformer/pairs.py", "    if not stat.S_ISREG(mode):", "    if False:",
      "tests/test_pairs.py"),
    m("pairs.split_by_pair", "transformer/pairs.py", "lists[split_of[pair[0]]].append(pair)",
      'lists[split_of_score(source_score("\\t".join(pair), seed), valid_share, test_share)].append(pair)',
      "tests/test_pairs.py"),
    m("pairs.seed_ignored", "transformer/pairs.py", 'blake2b(f"{seed}:{source}"', 'blake2b(f"{source}"',
      "tests/test_pairs.py"),
    m("pairs.empty_split_left_empty", "transformer/pairs.py", "        if not members[name]:", "        if False:",
      "tests/test_pairs.py"),
    m("pairs.split_filled_by_file_order", "transformer/pairs.py",
      "moved = min(members[donor], key=lambda source: (scores[source], source))", "moved = members[donor][0]",
      "tests/test_pairs.py"),
    m("pairs.overlap_counts_pairs", "transformer/pairs.py",
      "return len({source for source, _ in other_pairs} & trained)",
      "return sum(source in trained for source, _ in other_pairs)", "tests/test_pairs.py"),
    m("pairs.duplicate_references_kept", "transformer/pairs.py", "if target not in targets:", "if True:",
      "tests/test_pairs.py"),
    m("datasets.stress_kept", "transformer/datasets.py", '(word, STRESS.sub("", target))', "(word, target)",
      "tests/test_datasets.py"),
    m("datasets.duplicates_after_stress_removal_kept", "transformer/datasets.py",
      "return tuple(dict.fromkeys((word, STRESS", "return tuple(((word, STRESS", "tests/test_datasets.py"),
    m("datasets.words_with_marks_kept", "transformer/datasets.py", """re.compile(r"[a-z']*[a-z][a-z']*")""",
      """re.compile(r"[a-z'.-]*[a-z][a-z'.-]*")""", "tests/test_datasets.py"),
    m("datasets.apostrophes_dropped", "transformer/datasets.py", """re.compile(r"[a-z']*[a-z][a-z']*")""",
      """re.compile(r"[a-z]+")""", "tests/test_datasets.py"),
    m("datasets.neutral_tone_without_digit", "transformer/datasets.py", 'TONE3 = {"neutral_tone_with_five": True}',
      'TONE3 = {"neutral_tone_with_five": False}', "tests/test_datasets.py"),
    m("datasets.pinyin_first_reading_only", "transformer/datasets.py",
      "for syllables in itertools.product(*readings):", "for syllables in [[options[0] for options in readings]]:",
      "tests/test_datasets.py"),
    m("datasets.baseline_against_first_reference", "transformer/datasets.py",
      "best = min((target.split() for target in targets),", "best = min((target.split() for target in targets[:1]),",
      "tests/test_datasets.py"),
    m("datasets.missing_syllables_not_counted", "transformer/datasets.py",
      'guess += [""] * (len(source) - len(guess))', "pass", "tests/test_datasets.py"),
    m("datasets.model_compared_with_itself", "transformer/datasets.py",
      "theirs = syllable_error_rates(sources, guesses, references)",
      "theirs = syllable_error_rates(sources, outputs, references)", "tests/test_datasets.py"),
    m("datasets.baseline_comparison_not_shown", "transformer/cli.py", '    if data == "pinyin":\n',
      "    if False:\n", "tests/test_datasets.py"),
    m("datasets.every_character_polyphonic", "transformer/datasets.py", 'if "," in readings)', "if readings)",
      "tests/test_datasets.py"),
    m("datasets.extras_miss_characters", "transformer/datasets.py",
      "for phrase, _ in _pinyin_pairs() for character in phrase)",
      "for phrase, _ in _pinyin_pairs() for character in phrase[:1])", "tests/test_datasets.py"),
    m("datasets.missing_package_chained", "transformer/datasets.py",
      'f"pip install -e \\".[{info.extra}]\\"") from None', 'f"pip install -e \\".[{info.extra}]\\"")',
      "tests/test_datasets.py"),
    # ---- tokenizers and scoring
    m("scoring.substitution_costs_two", "transformer/scoring.py", "previous[j - 1] + (x != y)",
      "previous[j - 1] + 2 * (x != y)", T_SCORING),
    m("scoring.first_column_zero", "transformer/scoring.py", "        current = [i]\n", "        current = [0]\n",
      T_SCORING),
    m("scoring.only_the_first_reference", "transformer/scoring.py",
      "closest_reference(split(prediction), ref_tokens)", "closest_reference(split(prediction), ref_tokens[:1])",
      T_SCORING),
    m("scoring.closest_is_the_first", "transformer/scoring.py", "distance, _, index = min(distances)",
      "distance, _, index = distances[0]", T_SCORING),
    m("scoring.ties_go_to_the_longer", "transformer/scoring.py", "(edit_distance(prediction, ref), len(ref), i)",
      "(edit_distance(prediction, ref), -len(ref), i)", T_SCORING),
    m("scoring.divides_by_prediction_length", "transformer/scoring.py",
      "example = (distance, len(ref_tokens[closest]))", "example = (distance, len(split(prediction)))", T_SCORING),
    m("scoring.mean_of_word_rates", "transformer/scoring.py",
      "        self.errors += distance\n        self.reference_tokens += reference_length",
      "        self.errors += distance / reference_length\n        self.reference_tokens += 1", T_SCORING),
    m("scoring.one_wrong_token_is_right", "transformer/scoring.py", "self.wrong += distance > 0",
      "self.wrong += distance > 1", T_SCORING),
    m("scoring.bucket_by_target_length", "transformer/scoring.py",
      "by_length.setdefault(len(source_split(sources[i])), _Counts())",
      "by_length.setdefault(len(ref_tokens[closest]), _Counts())", T_SCORING),
    m("scoring.sources_not_sorted_by_length", "transformer/scoring.py",
      "unique = sorted(set(sources), key=lambda s: (len(source_tokenizer.encode(s)), s))",
      "unique = list(dict.fromkeys(sources))", T_SCORING),
    m("sides.symbols_decoded_without_spaces", TOKENIZER,
      'return " ".join(self.symbols[i - NUM_SPECIAL] for i in ids)',
      'return "".join(self.symbols[i - NUM_SPECIAL] for i in ids)', T_TOKENIZER),
    m("sides.symbol_runs_joined_without_spaces", TOKENIZER, '    separator = " "\n', '    separator = ""\n',
      T_TOKENIZER),
    m("sides.pairs_nest", TOKENIZER, '_plain_tokenizer_from_dict(data[side], f"{source}: {side} side")',
      'tokenizer_from_dict(data[side], f"{source}: {side} side")', T_TOKENIZER),
    m("sides.auto_without_the_letter_rule", TOKENIZER,
      "            and all(any(c.isalpha() for c in unit) for unit in distinct)\n", "", T_TOKENIZER),
    m("sides.auto_for_single_words", TOKENIZER, "return (any(len(u) >= 2 for u in units)",
      "return (any(len(u) >= 1 for u in units)", T_TOKENIZER),
    m("sides.pair_sides_swapped", TASKS, "sources = [tokenizer.source.encode(s) for s, _ in pairs]",
      "sources = [tokenizer.target.encode(s) for s, _ in pairs]", T_SIDES),
    m("sides.output_decoded_by_the_source", DECODING, "[tokenizer.target.decode(_until_eos(row))",
      "[tokenizer.source.decode(_until_eos(row))", T_SIDES),
    m("sides.source_vocab_checked_against_target", "transformer/checkpoints.py",
      "sizes = (tokenizer.source.vocab_size, tokenizer.target.vocab_size)",
      "sizes = (tokenizer.target.vocab_size, tokenizer.target.vocab_size)", T_SIDES),
    m("sides.source_checked_with_the_target_size", "transformer/interop.py",
      '("source", tokenizer.source.vocab_size, config.src_vocab_size)',
      '("source", tokenizer.target.vocab_size, config.src_vocab_size)', T_SIDES),
    m("sides.source_labels_by_the_target", "transformer/inspection.py",
      "source = token_labels(tokenizer.source, src[0])", "source = token_labels(tokenizer.target, src[0])", T_SIDES),
    m("sides.model_vocabularies_swapped", "transformer/train.py",
      "TransformerConfig(tokenizer.source.vocab_size, tokenizer.target.vocab_size, **sizes)",
      "TransformerConfig(tokenizer.target.vocab_size, tokenizer.source.vocab_size, **sizes)", T_SIDES),
    m("sides.unknown_units_of_the_target", "transformer/cli.py", "problem = unknown_units(tokenizer.source, text)",
      "problem = unknown_units(tokenizer.target, text)", T_SIDES),
    m("sides.long_vocabulary_listed", "transformer/cli.py", "if len(source.units) <= KNOWN_UNITS_SHOWN:",
      "if True:", T_SIDES),
    # ---- notebook exercises
    m("notebooks.causal_mask_check_accepts_transposed", "notebooks/exercises.py",
      "    if np.array_equal(got, want):\n        return",
      "    if np.array_equal(got, want) or np.array_equal(got, want.T):\n        return",
      "tests/test_notebooks.py::test_exercise_check[causal_mask]"),
    m("notebooks.merge_heads_check_ignores_order", "notebooks/exercises.py",
      "    if not np.array_equal(got, x):",
      "    if not np.array_equal(np.sort(got, axis=None), np.sort(x, axis=None)):",
      "tests/test_notebooks.py::test_exercise_check[merge_heads]"),
    m("notebooks.run_swallows_wrong_answers", "notebooks/exercises.py",
      "    except NotDone as error:", "    except AssertionError as error:",
      "tests/test_notebooks.py::test_exercise_check[softmax]"),
    m("notebooks.stub_returning_none_counts_as_done", "notebooks/exercises.py",
      "    if result is None:\n        raise NotDone", "    if False:\n        raise NotDone",
      "tests/test_notebooks.py::test_exercise_check[split_heads]"),
    m("notebooks.attention_check_misses_the_scale", "notebooks/exercises.py",
      "    if np.allclose(weights, unscaled / unscaled.sum(-1, keepdims=True)):",
      "    if False:", "tests/test_notebooks.py::test_exercise_check[attention]"),
    m("notebooks.claims_check_ignores_percent_signs", "tests/test_notebooks.py",
      "and p == percent for x, _, p in", "for x, _, p in",
      "tests/test_notebooks.py::test_claims_table_check_catches_a_number_the_outputs_do_not_show"),
    m("notebooks.engine_assigns_instead_of_adding", "notebooks/00_build_an_engine.py",
      "grads[id(parent)] = grads[id(parent)] + g_parent  # used more than once: add up",
      "grads[id(parent)] = g_parent  # used more than once: add up",
      "tests/test_notebooks.py::test_notebook_runs_in_quick_mode[00_build_an_engine]"),
    m("notebooks.forward_order_read_newest_first", "notebooks/00_autograd.py",
      "key=lambda node: node.seq)", "key=lambda node: -node.seq)",
      "tests/test_notebooks.py::test_notebook_runs_in_quick_mode[00_autograd]"),
    # ---- graph page
    m("page.step_does_not_open_its_box", PAGE_JS, "  if (wanted !== page.state) {", "  if (false) {",
      f"{T_PAGE}::test_stepping_into_a_closed_box_opens_it_and_leaving_closes_it"),
    m("page.box_stays_open_after_the_step_leaves", PAGE_JS,
      "wanted = page.learnerOpened !== null && mine > 0 ? mine : 0;", "wanted = page.state;",
      f"{T_PAGE}::test_stepping_into_a_closed_box_opens_it_and_leaving_closes_it"),
    m("page.labels_shown_before_their_step", PAGE_JS, "parts.filter(([s]) => s < k)", "parts.filter(([s]) => s <= k)",
      f"{T_PAGE}::test_an_arrow_is_labelled_once_the_step_that_sends_its_gradient_has_run"),
    m("page.substituted_value_loses_its_sign", PAGE_JS, "v < 0 ? `(${text})` : text;", "v < 0 ? text.slice(1) : text;",
      f"{T_PAGE}::test_the_numbers_shown_are_the_trace_s_and_the_rules_add_up"),
    m("page.arriving_gradient_shows_the_output", PAGE_JS, 'values(step.grad, "g")', 'values(step.out, "g")',
      f"{T_PAGE}::test_the_numbers_shown_are_the_trace_s_and_the_rules_add_up"),
    m("page.tanh_formula_sign", "minigrad/html.py", '"tanh": ("g*(1 - out**2)",)', '"tanh": ("g*(1 + out**2)",)',
      f"{T_PAGE}::test_the_numbers_shown_are_the_trace_s_and_the_rules_add_up"),
    m("page.trace_records_the_arriving_gradient_as_sent", "minigrad/tracing.py",
      "input_grad_summaries=tuple((i, summarize(gi.data))", "input_grad_summaries=tuple((i, summarize(g.data))",
      f"{T_PAGE}::test_the_numbers_shown_are_the_trace_s_and_the_rules_add_up"),
    m("page.pan_not_applied", PAGE_JS, "  page.zoom = { s, x, y };\n  applyZoom();", "  page.zoom = { s, x, y };",
      f"{T_PAGE}::test_every_step_of_the_depth_2_model_is_in_view_and_legible"),
    m("page.labels_too_small", PAGE_JS, "const LEGIBLE_PX = 11.5;", "const LEGIBLE_PX = 8;",
      f"{T_PAGE}::test_every_step_of_the_depth_2_model_is_in_view_and_legible"),
    m("page.drawing_replaced_not_kept", PAGE_JS, '  drawn.holder.classList.add("shown");',
      '  drawn.holder.classList.add("shown");\n  $("canvas").replaceChildren(drawn.holder);',
      f"{T_PAGE}::test_a_drawing_stays_laid_out_while_another_is_shown"),
    m("page.outlines_dashed", "minigrad/graph_page.html", "  g.cluster > path { stroke-dasharray: none; }\n", "",
      f"{T_PAGE}::test_a_drawing_stays_laid_out_while_another_is_shown"),
    # ---- guards
    # Each guard that keeps runs and files safe fails a test when it is removed, loosened or moved.
    m("guard.checkpoint.member_longer_than_its_header_accepted", CHECKPOINT, "if declared != info.file_size:",
      "if declared > info.file_size:", T_MEMBER_SIZE),
    m("guard.checkpoint.member_shorter_than_its_header_accepted", CHECKPOINT, "if declared != info.file_size:",
      "if declared < info.file_size:", T_MEMBER_SIZE),
    m("guard.checkpoint.optimizer_state_not_checked_finite", CHECKPOINT,
      "if optimizer_state is not None:\n        check_finite(", "if False:\n        check_finite(",
      f"{T_SAFETY}::test_non_finite_optimizer_state_is_refused_by_name"),
    m("guard.checkpoint.finite_check_samples_the_first_element", CHECKPOINT,
      'if a.dtype.kind == "f" and not np.isfinite(a).all()]', 'if a.dtype.kind == "f" and not np.isfinite(a.flat[0])]',
      f"{T_SAFETY}::test_non_finite_optimizer_state_is_refused_by_name",
      f"{T_SAFETY}::test_non_finite_weights_are_refused_by_name"),
    m("guard.checkpoint.any_optimizer_member_accepted", CHECKPOINT, 'or k in set(_refs(meta["optimizer"])))',
      'or k.startswith("optimizer/"))', T_UNNAMED_MEMBERS),
    m("guard.checkpoint.unexpected_members_accepted", CHECKPOINT,
      'if unexpected:\n            raise self._fail(f"unexpected entries',
      'if False:\n            raise self._fail(f"unexpected entries', T_UNNAMED_MEMBERS),
    m("guard.checkpoint.unexpected_weights_found_only_after_reading", CHECKPOINT,
      """problems += [f"unexpected key '{k}'" for k in arrays if k not in destinations]""", "problems += []",
      T_UNNAMED_MEMBERS),
    m("guard.checkpoint.max_step_exclusive", CHECKPOINT, "and lo <= value <= hi", "and lo <= value < hi",
      f"{T_SAFETY}::test_step_counters_are_accepted_up_to_max_step_and_refused_past_it"),
    m("guard.checkpoint.schedule_step_from_zero", CHECKPOINT, 'is_int_between(scheduler.get("step_num"), 1, MAX_STEP)',
      'is_int_between(scheduler.get("step_num"), 0, MAX_STEP)',
      f"{T_SAFETY}::test_step_counters_are_accepted_up_to_max_step_and_refused_past_it"),
    m("guard.checkpoint.schema_upper_bound_inclusive", CHECKPOINTS, "return None if lo <= value < hi else",
      "return None if lo <= value <= hi else",
      f"{T_SAFETY}::test_every_model_config_bound_is_accepted_at_its_edge_and_refused_one_past_it"),
    m("guard.checkpoint.schema_lower_bound_exclusive", CHECKPOINTS, "return None if lo <= value < hi else",
      "return None if lo < value < hi else",
      f"{T_SAFETY}::test_every_model_config_bound_is_accepted_at_its_edge_and_refused_one_past_it"),
    m("guard.checkpoint.pad_id_equal_to_the_vocabulary_accepted", CHECKPOINTS,
      "if c.pad_id >= min(c.src_vocab_size, c.tgt_vocab_size):",
      "if c.pad_id > min(c.src_vocab_size, c.tgt_vocab_size):",
      f"{T_SAFETY}::test_the_pad_id_must_be_a_token_of_both_vocabularies"),
    m("guard.checkpoint.infinite_seconds_accepted", CHECKPOINTS,
      "if not (_is_finite_number(seconds) and seconds >= 0):",
      "if not (isinstance(seconds, (int, float)) and seconds >= 0):",
      f"{T_SAFETY}::test_a_training_state_that_cannot_be_resumed_is_refused"),
    m("guard.checkpoint.infinite_hyperparameters_accepted", OPTIMIZERS,
      "and not isinstance(value, bool) and math.isfinite(value)", "and not isinstance(value, bool)",
      f"{T_SAFETY}::test_non_finite_optimizer_hyperparameters_are_refused"),
    m("guard.checkpoint.model_size_limit_exclusive", CHECKPOINTS, "if elements > MAX_MODEL_ELEMENTS:",
      "if elements >= MAX_MODEL_ELEMENTS:", f"{T_SAFETY}::test_the_model_size_limit_is_exact_and_counts_every_element"),
    m("guard.checkpoint.model_size_counts_one_position_table", CHECKPOINTS,
      "positions = c.max_len * d * (1 if c.share_embeddings else 2)", "positions = c.max_len * d",
      f"{T_SAFETY}::test_the_model_size_limit_is_exact_and_counts_every_element"),
    m("guard.checkpoint.model_size_forgets_the_output_layer", CHECKPOINTS,
      "output = 0 if c.tie_output else d * c.tgt_vocab_size + c.tgt_vocab_size", "output = 0",
      f"{T_SAFETY}::test_the_model_size_limit_is_exact_and_counts_every_element"),
    # durability of the atomic write
    m("guard.files.rename_without_fsync", FILES, "            _write(f, contents)\n            os.fsync(f.fileno())\n",
      "            _write(f, contents)\n", f"{T_SAFETY}::{T_ATOMIC}"),
    m("guard.files.fsync_without_flush", FILES,
      "        f.write(contents.encode(\"utf-8\") if isinstance(contents, str) else contents)\n    f.flush()\n",
      "        f.write(contents.encode(\"utf-8\") if isinstance(contents, str) else contents)\n",
      f"{T_SAFETY}::{T_ATOMIC}"),
    m("guard.files.rename_before_fsync", FILES,
      "            _write(f, contents)\n            os.fsync(f.fileno())\n        os.replace(temp, path)\n",
      "            _write(f, contents)\n            os.replace(temp, path)\n            os.fsync(f.fileno())\n",
      f"{T_SAFETY}::{T_ATOMIC}"),
    m("guard.files.directory_not_synced", FILES, "            os.fsync(dir_fd)\n", "            pass\n",
      f"{T_SAFETY}::{T_ATOMIC}"),
    m("guard.files.temp_file_left_on_failure", FILES,
      "        with contextlib.suppress(FileNotFoundError):\n            os.unlink(temp)\n", "        pass\n",
      f"{T_TRAIN}::test_a_save_that_fails_midway_leaves_both_checkpoints_loadable"),
    # training: the non-finite guard, run directories, cadences, signals, settings
    m("guard.train.gradient_norm_not_checked", TRAIN, "nonfinite = nonfinite_part(float(loss.data), grad_norm)",
      "nonfinite = nonfinite_part(float(loss.data), 0.0)",
      f"{T_TRAIN}::test_a_step_with_a_finite_loss_but_an_infinite_gradient_norm_is_refused"),
    m("guard.train.nonfinite_part_sees_the_loss_only", TRAIN,
      '    if not np.isfinite(grad_norm):\n        return f"gradient norm is {grad_norm}"\n', "",
      f"{T_TRAIN}::test_nonfinite_part_names_the_loss_or_the_gradient_norm",
      f"{T_TRAIN}::test_a_step_with_a_finite_loss_but_an_infinite_gradient_norm_is_refused"),
    m("guard.train.any_resume_counts_as_resuming_here", TRAIN,
      "resuming_here = resume is not None and Path(resume).parent.resolve() == out.resolve()",
      "resuming_here = resume is not None",
      f"{T_TRAIN}::test_resuming_into_a_directory_that_holds_another_run_is_refused"),
    m("guard.train.resume_path_compared_unresolved", TRAIN,
      "resuming_here = resume is not None and Path(resume).parent.resolve() == out.resolve()",
      "resuming_here = resume is not None and Path(resume).parent == out",
      f"{T_TRAIN}::test_resuming_into_a_directory_that_holds_another_run_is_refused"),
    m("guard.train.only_a_checkpoint_marks_a_run", TRAIN, "held = [name for name in RUN_FILES",
      "held = [name for name in (CHECKPOINT,)",
      f"{T_TRAIN}::test_any_file_of_a_run_marks_the_directory_as_holding_one"),
    m("guard.train.an_empty_metrics_file_marks_a_run", TRAIN,
      "if (out / name).exists() and (out / name).stat().st_size > 0]", "if (out / name).exists()]",
      f"{T_TRAIN}::test_any_file_of_a_run_marks_the_directory_as_holding_one"),
    m("guard.train.time_checkpoints_count_from_the_start", TRAIN,
      "saved_at, saved_to, saved_time = step, checkpoint_path, time.perf_counter()",
      "saved_at, saved_to = step, checkpoint_path", f"{T_TRAIN}::test_time_based_checkpoints_count_from_the_last_save"),
    m("guard.train.time_checkpoint_edge_exclusive", TRAIN,
      "time.perf_counter() - saved_time >= config.checkpoint_seconds",
      "time.perf_counter() - saved_time > config.checkpoint_seconds",
      f"{T_TRAIN}::test_time_based_checkpoints_count_from_the_last_save"),
    m("guard.train.loss_window_never_reset", TRAIN, "                window = dict.fromkeys(window, 0)\n", "",
      f"{T_TRAIN}::test_the_logged_training_loss_is_the_mean_over_its_own_window"),
    m("guard.train.loss_window_divided_by_log_every", TRAIN, '"loss": window["loss"] / window["steps"]',
      '"loss": window["loss"] / config.log_every',
      f"{T_TRAIN}::test_the_logged_training_loss_is_the_mean_over_its_own_window"),
    m("guard.train.logged_loss_of_the_last_step", TRAIN, '"loss": window["loss"] / window["steps"]',
      '"loss": float(loss.data)', f"{T_TRAIN}::test_the_logged_training_loss_is_the_mean_over_its_own_window"),
    m("guard.train.previous_checkpoint_moved_not_linked", TRAIN, "            os.link(checkpoint, temp)\n",
      "            os.replace(checkpoint, temp)\n",
      f"{T_TRAIN}::test_a_save_that_fails_midway_leaves_both_checkpoints_loadable"),
    m("guard.train.saving_flag_set_after_the_rotation", TRAIN,
      "        stop.saving = True  # a second Ctrl-C now waits for the save\n        try:\n"
      "            if path == checkpoint_path:\n                keep_previous(checkpoint_path)\n",
      "        if path == checkpoint_path:\n            keep_previous(checkpoint_path)\n"
      "        stop.saving = True  # a second Ctrl-C now waits for the save\n        try:\n",
      f"{T_TRAIN}::test_a_second_ctrl_c_while_the_previous_checkpoint_is_kept_lets_the_save_finish"),
    m("guard.train.second_ctrl_c_raises_during_a_save", TRAIN,
      "if self.received is not None and signum == signal.SIGINT and not self.saving:",
      "if self.received is not None and signum == signal.SIGINT:",
      f"{T_TRAIN}::test_a_second_ctrl_c_raises_only_outside_a_save"),
    m("guard.train.at_least_bound_exclusive", OPTIMIZERS, "(at_least is None or value >= at_least)",
      "(at_least is None or value > at_least)", T_SETTING_EDGES),
    m("guard.train.above_bound_inclusive", OPTIMIZERS, "(above is None or value > above)",
      "(above is None or value >= above)", T_SETTING_EDGES),
    m("guard.train.below_bound_inclusive", OPTIMIZERS, "(below is None or value < below)",
      "(below is None or value <= below)", T_SETTING_EDGES),
    # evaluation
    m("guard.evaluation.loss_weighted_by_padded_positions", EVALUATION, "loss_sum += float(loss.data) * n_tokens",
      "loss_sum += float(loss.data) * batch.tgt_out.size",
      f"{T_TRAIN}::test_the_evaluation_does_not_depend_on_the_batch_size"),
    m("guard.evaluation.buckets_by_target_length", EVALUATION, "zip((batch.src != PAD).sum(axis=1).tolist(), right)",
      "zip((batch.tgt_out != PAD).sum(axis=1).tolist(), right)",
      f"{T_TRAIN}::test_the_length_buckets_count_the_source_s_length_on_every_task"),
    # decoding: beam search against the plain reference, exclusions, max_len
    m("guard.decoding.beam_considers_only_k_candidates", DECODING,
      'best = np.argsort(-candidates, axis=1, kind="stable")[:, :2 * k]',
      'best = np.argsort(-candidates, axis=1, kind="stable")[:, :k]', T_BEAM_REFERENCE),
    m("guard.decoding.beam_stops_at_the_first_finished", DECODING, "done[b] = len(finished[b]) >= k or kept == 0",
      "done[b] = len(finished[b]) >= 1 or kept == 0", T_BEAM_REFERENCE),
    m("guard.decoding.beam_length_without_eos", DECODING,
      "finished[b].append((score / length_normalizer(len(hypothesis), length_penalty), hypothesis))",
      "finished[b].append((score / length_normalizer(len(hypothesis) - 1, length_penalty), hypothesis))",
      T_BEAM_REFERENCE),
    m("guard.decoding.beam_unfinished_compete_unnormalized", DECODING,
      "finished[b].append((scores[b, j] / length_normalizer(len(hypothesis), length_penalty),",
      "finished[b].append((scores[b, j],", T_BEAM_REFERENCE),
    m("guard.decoding.beam_starts_from_k_copies", DECODING, "scores[:, 0] = 0.0  #", "scores[:, :] = 0.0  #",
      T_BEAM_REFERENCE),
    m("guard.decoding.beam_finishes_the_wrong_parent", DECODING,
      "hypothesis = tokens[b * k + parent, 1:].tolist() + [EOS]", "hypothesis = tokens[b * k, 1:].tolist() + [EOS]",
      T_BEAM_REFERENCE),
    m("guard.decoding.beam_renormalizes_over_the_allowed_tokens", DECODING,
      "log_probs = _exclude_never_chosen(mg.log_softmax(mg.Tensor(logits), -1).data)",
      "log_probs = mg.log_softmax(mg.Tensor(_exclude_never_chosen(logits)), -1).data", T_BEAM_REFERENCE),
    m("guard.decoding.beam_excludes_nothing", DECODING,
      "log_probs = _exclude_never_chosen(mg.log_softmax(mg.Tensor(logits), -1).data)",
      "log_probs = mg.log_softmax(mg.Tensor(logits), -1).data", T_NEVER_CHOSEN),
    m("guard.decoding.greedy_excludes_nothing", DECODING,
      "next_token = np.where(finished, PAD, _exclude_never_chosen(logits).argmax(-1))",
      "next_token = np.where(finished, PAD, logits.argmax(-1))", T_NEVER_CHOSEN),
    m("guard.decoding.unk_may_be_chosen", DECODING, "NEVER_CHOSEN = (PAD, BOS, UNK)", "NEVER_CHOSEN = (PAD, BOS)",
      T_NEVER_CHOSEN),
    m("guard.decoding.max_len_counts_bos_as_free", DECODING, "limit = model_max_len - 1",
      "limit = model_max_len", T_DECODING_MAX_LEN),
    m("guard.decoding.cap_from_the_padded_width", DECODING,
      "np.minimum((np.asarray(src) != PAD).sum(axis=1) + extra_tokens",
      "np.minimum(np.full(len(src), np.shape(src)[1]) + extra_tokens", T_DECODING),
    m("guard.train.budget_fitted_once", TRAIN, "refits = config.steps is None  #", "refits = False  #",
      data_test("test_a_budgeted_run_fits_its_steps_again_when_the_machine_slows_down_and_ends_its_schedule_in_time")),
    m("guard.decoding.extra_tokens_ignored", DECODING, "(np.asarray(src) != PAD).sum(axis=1) + extra_tokens, limit)",
      "(np.asarray(src) != PAD).sum(axis=1) + EXTRA_TOKENS, limit)", T_DECODING),
    m("guard.run_data.extra_tokens_counts_characters", RUN_DATA,
      "len(tokenizer.target.encode(t)) - len(tokenizer.source.encode(s))", "len(t) - len(s)",
      data_test("test_a_data_run_records_how_far_past_its_source_an_output_may_run_and_every_command_keeps_to_it")),
    m("guard.train.extra_tokens_not_saved", TRAIN, "extra_tokens=data.extra_tokens if data is not None else None)",
      "extra_tokens=None)",
      data_test("test_a_data_run_records_how_far_past_its_source_an_output_may_run_and_every_command_keeps_to_it")),
    m("guard.checkpoints.decoding_settings_unchecked", CHECKPOINTS,
      'if not (isinstance(decoding, dict) and decoding.keys() == {"extra_tokens"}',
      'if not (isinstance(decoding, dict)', f"{T_SAFETY}::test_a_training_state_that_cannot_be_resumed_is_refused"),
    m("guard.cli.decoding_not_exported", CLI,
      "step=trained.step,\n                                extra_tokens=trained.extra_tokens)", "step=trained.step)",
      data_test("test_a_data_run_records_how_far_past_its_source_an_output_may_run_and_every_command_keeps_to_it")),
    m("guard.decoding.greedy_ignores_the_row_caps", DECODING, "finished |= (next_token == EOS) | (step + 1 >= caps)",
      "finished |= next_token == EOS", T_DECODING),
    m("guard.decoding.beam_ignores_the_row_caps", DECODING, "for b in np.flatnonzero(~done & (step + 1 >= caps)):",
      "for b in np.flatnonzero(~done & (step + 1 >= caps.max())):", T_DECODING),
    m("guard.viz.render_adds_a_suffix_to_a_device", "minigrad/viz.py", "format and not is_stream(path):",
      "format:", "tests/test_viz.py"),
    m("guard.decoding.max_len_edge_exclusive", DECODING, "if not 1 <= max_len <= limit:",
      "if not 1 <= max_len < limit:", T_DECODING_MAX_LEN),
    m("guard.transformer.max_len_edge_exclusive", "transformer/embedding.py", "if start + length > self.max_len:",
      "if start + length >= self.max_len:",
      f"{T_TRANSFORMER}::test_sequences_of_exactly_max_len_positions_are_accepted_and_one_more_is_refused"),
    # the command line's integer options
    m("guard.cli.int_between_high_exclusive", CLI, "if not low <= value <= high:", "if not low <= value < high:",
      T_INTEGER_OPTIONS),
    m("guard.cli.positive_int_accepts_zero", CLI, "    if value < 1:\n", "    if value < 0:\n", T_INTEGER_OPTIONS),
    # task generators
    m("guard.tasks.few_digit_strings_of_at_most_two_digits", TASKS, "size=int(rng.integers(1, 4)), replace=False)",
      "size=int(rng.integers(1, 3)), replace=False)", T_DIGIT_MIXTURE),
    m("guard.tasks.few_digits_drawn_with_repeats", TASKS, "size=int(rng.integers(1, 4)), replace=False)",
      "size=int(rng.integers(1, 4)), replace=True)", T_DIGIT_MIXTURE),
    # the trace's step numbers in pictures and the page
    m("guard.html.page_renumbers_its_steps", "minigrad/html.py",
      "    steps = [_step_facts(s, index, made_by) for s in traced]",
      "    steps = [dict(_step_facts(s, index, made_by), number=k + 1) for k, s in enumerate(traced)]",
      T_TWO_GRAPHS),
    m("guard.viz.step_labels_renumbered", "minigrad/viz.py", 'numbers = ", ".join(str(s.number) for s in steps)',
      'numbers = ", ".join(str(k + 1) for k, s in enumerate(steps))', T_TWO_GRAPHS),
    # interop
    m("guard.interop.step_of_any_unicode_digits", INTEROP, "if not (step.isascii() and step.isdigit() and",
      "if not (step.isdigit() and", f"{T_INTEROP}::test_bad_metadata_is_refused_in_one_line_before_building_a_model"),
    m("guard.interop.step_unbounded", INTEROP, "and len(step) <= len(str(MAX_STEP)) and int(step) <= MAX_STEP)",
      "and len(step) <= 4300)", f"{T_INTEROP}::test_bad_metadata_is_refused_in_one_line_before_building_a_model"),
    m("guard.interop.json_config_not_validated", INTEROP, 'config = validate_model_config(config, "the config")',
      "config = TransformerConfig.from_dict(config)",
      f"{T_INTEROP}::test_a_config_given_as_json_is_validated_before_a_model_is_built"),
    # ---- failure edges
    m("edges.fifo_replaced", "minigrad/files.py", 'if kind == "stream":', "if False:",
      f"{T_EDGES}::test_writing_into_a_fifo_streams_into_it_and_leaves_it_a_fifo"),
    m("edges.symlink_replaced", "minigrad/files.py",
      '_replace(Path(os.path.realpath(given)) if kind == "link" else Path(given), contents)',
      "_replace(Path(given), contents)",
      f"{T_EDGES}::test_a_symlink_is_written_through_to_its_target_and_stays_a_link"),
    m("edges.loop_not_named", "minigrad/files.py",
      'raise OSError(errno.ELOOP, "a loop of symbolic links, which leads to no file", path) from None', "raise",
      f"{T_EDGES}::test_what_cannot_be_written_is_an_oserror_naming_the_path_given"),
    m("edges.error_names_the_temp_file", "minigrad/files.py", "raise OSError(e.errno, e.strerror, given) from e",
      "raise", f"{T_EDGES}::test_what_cannot_be_written_is_an_oserror_naming_the_path_given"),
    m("edges.empty_path_written", "minigrad/files.py",
      '    if not path:\n        raise FileNotFoundError(errno.ENOENT, "an empty file name", path)\n', "",
      f"{T_EDGES}::test_an_empty_output_name_is_a_usage_error"),
    m("edges.empty_out_accepted", "transformer/cli.py", '    if not text:\n        raise argparse.ArgumentTypeError',
      "    if False:\n        raise argparse.ArgumentTypeError",
      f"{T_EDGES}::test_an_empty_output_name_is_a_usage_error"),
    m("edges.json_depth_unchecked", "minigrad/checkpoint.py", "    if depth > max_depth:\n", "    if False:\n",
      f"{T_EDGES}::test_hostile_metadata_is_one_line_naming_the_file"),
    m("edges.metrics_fields_unchecked", "transformer/train.py",
      "    if missing:\n        raise ValueError(f\"a {record",
      "    if False:\n        raise ValueError(f\"a {record",
      f"{T_EDGES}::test_a_bad_metrics_line_is_named_in_the_middle_and_dropped_at_the_end"),
    m("edges.metrics_line_unbounded", "transformer/train.py",
      'parse_json(line, "the line", max_bytes=MAX_METRICS_LINE)',
      'parse_json(line, "the line", max_bytes=2**30)',
      f"{T_EDGES}::test_a_bad_metrics_line_is_named_in_the_middle_and_dropped_at_the_end"),
    m("edges.metrics_read_whole", "transformer/train.py",
      '(r for r in self.records() if r["step"] <= resume_step)', '[r for r in self.read() if r["step"] <= resume_step]',
      f"{T_EDGES}::test_resuming_reads_the_metrics_a_line_at_a_time"),
    m("edges.step_any_digits", "transformer/interop.py",
      "if not (step.isascii() and step.isdigit() and len(step) <= len(str(MAX_STEP)) and int(step) <= MAX_STEP):",
      "if not step.isdigit():",
      f"{T_EDGES}::test_hostile_metadata_is_one_line_naming_the_file"),
    m("edges.train_metadata_unchecked", "transformer/interop.py", "    if train:  # as training", "    if False:  # as",
      f"{T_EDGES}::test_hostile_metadata_is_one_line_naming_the_file"),
    m("edges.tensors_read_before_the_header_is_checked", "transformer/interop.py",
      "check_fits(model, headers, checked.names, path)  # so the file", "pass  # so the file",
      f"{T_EDGES}::test_a_huge_unused_tensor_is_refused_from_the_header_without_reading_it"),
    m("edges.model_path_kind_unchecked", "transformer/interop.py",
      "    if problem is not None:\n        raise InteropError",
      "    if False:\n        raise InteropError", f"{T_EDGES}::test_a_model_path_that_is_not_a_file_says_what_it_is"),
    m("edges.loop_told_to_train", "transformer/cli.py",
      'if not Path(path).exists() and problem != "no such file":', "if False:",
      f"{T_EDGES}::test_a_checkpoint_symlink_loop_is_not_told_to_train_a_model"),
    m("edges.resume_from_previous_allowed", "transformer/train.py",
      "    if resuming_here:\n        check_resuming_the_newest(out, resume)", "    pass",
      f"{T_EDGES}::test_resuming_from_the_previous_checkpoint_in_its_own_directory_is_refused"),
    m("edges.symlinked_checkpoint_refused", "transformer/train.py",
      "Path(resume).parent.resolve() == out.resolve()", "Path(resume).resolve().parent == out.resolve()",
      f"{T_EDGES}::test_a_symlinked_checkpoint_resumes_and_the_link_stays"),
    m("edges.twin_links_renamed", "transformer/train.py",
      "if not checkpoint.exists() or (previous.exists() and os.path.samefile(checkpoint, previous)):",
      "if not checkpoint.exists():", f"{T_EDGES}::test_keeping_the_previous_checkpoint_twice_leaves_no_temp_file"),
    m("edges.data_state_overrun", "transformer/train.py", '        if state["used"] > in_epoch:',
      '        if state["used"] > in_epoch + 1:',
      f"{T_EDGES}::test_resuming_with_fewer_training_examples_than_the_epoch_used_is_one_line"),
    m("edges.failed_save_unnamed", "minigrad/checkpoint.py", "    except OSError as e:  # a full disk",
      "    except KeyError as e:  # a full disk",
      f"{T_EDGES}::test_a_failed_save_is_one_line_naming_the_file_and_the_checkpoint_kept"),
    m("edges.short_betas_accepted", "minigrad/optim/optimizers.py",
      'if name == "betas" and not (isinstance(values, (list, tuple)) and len(values) == 2):',
      'if name == "betas" and not isinstance(values, (list, tuple)):',
      f"{T_EDGES}::test_a_short_betas_list_in_a_checkpoint_is_refused_by_name"),
    m("edges.evaluate_without_a_task", "transformer/cli.py",
      "    if not trained.train_config:  # an export without them", "    if False:  # an export without them",
      f"{T_EDGES}::test_evaluate_graph_and_attention_say_they_need_a_task_and_translate_works"),
    m("edges.translate_needs_a_task", "transformer/cli.py",
      '    if trained.train_config.get("task"):\n        try:  # e.g. the year 2126',
      '    if True:\n        try:  # e.g. the year 2126',
      f"{T_EDGES}::test_evaluate_graph_and_attention_say_they_need_a_task_and_translate_works"),
    m("edges.closed_pipe_is_an_error", "transformer/cli.py",
      "contextlib.redirect_stdout(OutputThatMayClose(sys.stdout)):\n",
      "contextlib.nullcontext():\n", f"{T_EDGES}::test_a_reader_that_went_away_ends_the_command_quietly"),
    m("edges.strict_encoding", "transformer/cli.py", 'stream.reconfigure(errors="backslashreplace")',
      'stream.reconfigure(errors="strict")',
      f"{T_EDGES}::test_a_terminal_encoding_that_lacks_the_arrow_gets_it_escaped"),
    m("edges.png_path_not_reported", "transformer/plots.py",
      "if not path.suffix and (path.is_file() or not path.exists()):", "if False:",
      f"{T_EDGES}::test_attention_reports_the_file_it_wrote_and_refuses_a_directory"),
    m("edges.negative_seed", "transformer/cli.py", 'type=int_between(0, 2**63 - 1), default=0, help="picks',
      'type=int, default=0, help="picks', f"{T_EDGES}::test_attention_seed_out_of_range_names_the_option"),
    m("edges.examples_unbounded", TASKS, "    if sum(sizes.values()) > MAX_EXAMPLES:\n", "    if False:\n",
      f"{T_EDGES}::test_any_number_of_training_examples_is_answered_at_once"),
    # ---- training on real data
    m("train.budget_ignored", TRAIN, "return budget is not None and seconds_trained() >= budget", "return False",
      data_test("test_a_time_budget_fits_the_steps_stops_saves_and_the_checkpoint_resumes")),
    m("train.budget_forgets_resumed_minutes", TRAIN, "return seconds_before + time.perf_counter() - started",
      "return time.perf_counter() - started",
      data_test("test_a_time_budget_fits_the_steps_stops_saves_and_the_checkpoint_resumes")),
    m("train.best_written_on_every_eval", TRAIN, 'if best is None or error < best["error"]:', "if True:",
      data_test("test_best_npz_holds_the_model_of_the_best_validation_and_resume_keeps_it")),
    m("train.best_replaced_on_a_tie", TRAIN, 'error < best["error"]', 'error <= best["error"]',
      data_test("test_best_npz_holds_the_model_of_the_best_validation_and_resume_keeps_it")),
    m("train.best_forgotten_on_resume", TRAIN, 'float(extra.get("seconds", 0.0)), extra.get("best")',
      'float(extra.get("seconds", 0.0)), None',
      data_test("test_best_npz_holds_the_model_of_the_best_validation_and_resume_keeps_it")),
    m("train.epoch_off_by_batch_size", TRAIN, "return step * config.batch_size / len(splits.train)",
      "return step / len(splits.train)", data_test("test_epochs_are_logged_with_every_record")),
    m("train.fingerprint_not_checked", TRAIN, 'check_fingerprints(extra["data_files"], data.fingerprints, path)',
      "pass", data_test("test_resuming_on_changed_data_is_refused_in_one_line")),
    m("train.overlap_not_warned", RUN_DATA, "        if shared:\n", "        if False:\n",
      data_test("test_valid_and_test_files_replace_the_held_out_shares_and_overlap_is_warned")),
    m("train.held_out_share_dropped", RUN_DATA, 'train, valid = train + valid, given["valid"]',
      'train, valid = train, given["valid"]',
      data_test("test_valid_and_test_files_replace_the_held_out_shares_and_overlap_is_warned")),
    m("train.tokenizers_from_all_data", RUN_DATA, "tokenizer_for_texts([s for s, _ in train], config.source_tokens)",
      "tokenizer_for_texts([s for s, _ in train + valid + test], config.source_tokens)",
      data_test("test_tokenizers_are_built_from_the_training_split_only")),
    m("train.translate_drops_the_last_line", CLI, 'if lines[-1] == b"":  # the newline', "if True:  # the newline",
      data_test("test_translate_writes_one_line_per_input_line_in_order_from_stdin_and_file")),
    m("train.translate_decodes_bad_lines", CLI, "    if problems:\n        shown", "    if False:\n        shown",
      data_test("test_translate_refuses_the_whole_input_naming_the_bad_lines")),
    m("train.heads_not_checked", "transformer/train_config.py", 'if dims["d_model"] % dims["n_heads"]:', "if False:",
      data_test("test_model_dimensions_and_budget_are_checked")),
]

# --------------------------------------------------------------------------- running


def check_snippets(root: Path, mutants) -> list[str]:
    """One line per mutant whose snippet is missing or ambiguous in ``root``."""
    problems = []
    for mutant in mutants:
        count = (root / mutant.path).read_text().count(mutant.original)
        if count != 1:
            problems.append(f"{mutant.name}: its snippet occurs {count} times in {mutant.path} (expected once); "
                            "update the mutant to the current code")
    return problems


# A failing property test is enough: shrinking its example to the smallest one would take
# most of the time, so the copy's tests run with the CI profile minus the shrink phase.
NO_SHRINK_PROFILE = """
from hypothesis import Phase as _Phase
settings.register_profile("mutants", parent=settings.get_profile("ci"),
                          phases=[_Phase.explicit, _Phase.reuse, _Phase.generate])
"""


def copy_tree(root: Path, dest: Path) -> Path:
    shutil.copytree(root, dest, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.pyc", ".hypothesis",
                                                             ".pytest_cache", ".ruff_cache", "runs"))
    with open(dest / "tests" / "conftest.py", "a") as conftest:
        conftest.write(NO_SHRINK_PROFILE)
    return dest


def run_tests(tree: Path, tests, timeout) -> tuple[str, float]:
    """'passed', 'failed' or 'timeout', and the time it took.  Test files that do not
    exist in ``tree`` are left out (so the list can name tests added later); with none
    left, nothing can fail: 'passed'."""
    tests = [t for t in tests if (tree / t.split("::")[0]).exists()]
    if not tests:
        return "passed", 0.0
    env = dict(os.environ, CI="true", PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1",
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
               "--hypothesis-profile=mutants", *tests]
    start = time.perf_counter()
    try:
        result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start
    if result.returncode in (4, 5):  # usage error / no tests collected: the mutant's test list is wrong
        print(f"pytest could not run {tests}:\n{result.stdout[-1000:]}{result.stderr[-1000:]}", flush=True)
        return "error", time.perf_counter() - start
    return ("passed" if result.returncode == 0 else "failed"), time.perf_counter() - start


def run_mutant(tree: Path, mutant: Mutant, timeout) -> tuple[str, float]:
    target = tree / mutant.path
    original = target.read_text()
    target.write_text(original.replace(mutant.original, mutant.replacement, 1))
    try:
        outcome, seconds = run_tests(tree, mutant.tests, timeout)
    finally:
        target.write_text(original)
    return {"passed": "survived", "error": "error"}.get(outcome, "killed"), seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", dest="pattern", default="", help="only mutants whose name contains this")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="mutants run at the same time (default 1)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per mutant; a timeout counts as killed")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the first run, which checks that the tests pass on the unchanged code")
    parser.add_argument("--list", action="store_true", help="list the mutants and check their snippets, run nothing")
    parser.add_argument("--first", type=int, default=1, help="start at the mutant with this number (resume a run)")
    args = parser.parse_args(argv)

    mutants = [mu for mu in MUTANTS[args.first - 1:] if args.pattern in mu.name]
    problems = check_snippets(ROOT, mutants)
    if problems:
        raise SystemExit("\n".join(problems))
    if args.list:
        for mutant in mutants:
            print(f"{mutant.name:60s} {mutant.path}")
        print(f"{len(mutants)} mutants, every snippet found exactly once")
        return 0
    if not mutants:
        raise SystemExit(f"no mutant name contains {args.pattern!r}")

    with tempfile.TemporaryDirectory(prefix="mutants-") as scratch:
        trees = [copy_tree(ROOT, Path(scratch) / f"tree{i}") for i in range(max(1, args.jobs))]
        if not args.no_baseline:
            tests = sorted({t.split("::")[0] for mu in mutants for t in mu.tests})
            outcome, seconds = run_tests(trees[0], tests, args.timeout)
            if outcome != "passed":
                raise SystemExit(f"the tests do not pass on the unchanged code ({outcome}): {' '.join(tests)}")
            print(f"baseline: {len(tests)} test files pass on the unchanged code ({seconds:.0f} s)", flush=True)

        free = list(trees)
        results = {}

        def work(mutant):
            tree = free.pop()
            try:
                outcome, seconds = run_mutant(tree, mutant, args.timeout)
            finally:
                free.append(tree)
            print(f"{outcome:8s} {seconds:6.1f} s  {mutant.name}", flush=True)
            results[mutant.name] = outcome

        with ThreadPoolExecutor(max_workers=len(trees)) as pool:
            list(pool.map(work, mutants))

    survivors = [mu.name for mu in mutants if results[mu.name] == "survived"]
    errors = [mu.name for mu in mutants if results[mu.name] == "error"]
    killed = len(mutants) - len(survivors) - len(errors)
    print(f"\nkilled {killed} of {len(mutants)} mutants ({100 * killed / len(mutants):.1f}%)")
    for name in survivors:
        print(f"  survived: {name}")
    for name in errors:
        print(f"  not run (fix its test list): {name}")
    return 1 if survivors or errors else 0


if __name__ == "__main__":
    sys.exit(main())
