"""A model that reads one vocabulary and writes another (letters -> phonemes): batches,
decoding, evaluation, attention maps, checkpoints and safetensors files each use the
source tokenizer for the input and the target tokenizer for the output."""

import json

import numpy as np
import pytest

from minigrad import optim
from transformer.checkpoints import CheckpointError, load_trained, read_run_config, save_training_checkpoint
from transformer.decoding import translate
from transformer.evaluation import evaluate
from transformer.inspection import attention_maps
from transformer.interop import InteropError, export_safetensors, import_safetensors
from transformer.tasks import make_batch
from transformer.tokenizer import BOS, EOS, CharTokenizer, SymbolTokenizer, TokenizerPair
from transformer.train import TrainConfig, build_model

PAIRS = [("thought", "TH AO1 T"), ("cat", "K AE1 T"), ("about", "AH0 B AW1 T"), ("dog", "D AO1 G")]
PAIR = TokenizerPair(CharTokenizer.from_texts(s for s, _ in PAIRS), SymbolTokenizer.from_texts(t for _, t in PAIRS))


def micro_model():
    return build_model(TrainConfig.for_task("copy", model="micro", seed=3), PAIR)


def test_the_sizes_differ_and_build_a_model_of_each():
    assert (PAIR.source.vocab_size, PAIR.target.vocab_size) == (4 + 9, 4 + 10)  # 9 letters, 10 phonemes
    config = micro_model().config
    assert (config.src_vocab_size, config.tgt_vocab_size) == (13, 14)
    assert config.tie_output and not config.share_embeddings  # the output is tied to the target embedding


def test_a_batch_encodes_sources_and_targets_each_with_its_own_side():
    batch = make_batch(PAIRS[:2], PAIR)
    np.testing.assert_array_equal(batch.src, PAIR.source.encode_batch(["thought", "cat"]))
    expected_out = [PAIR.target.encode("TH AO1 T") + [EOS], PAIR.target.encode("K AE1 T") + [EOS]]
    np.testing.assert_array_equal(batch.tgt_out, expected_out)
    np.testing.assert_array_equal(batch.tgt_in[:, 0], [BOS, BOS])
    assert batch.tgt_out.shape == (2, 4)  # three symbols + EOS, not eight characters + EOS


def test_translate_evaluate_and_attention_maps_use_both_sides():
    model = micro_model()
    outputs = translate(model, PAIR, ["thought", "dog"], max_len=5)
    assert all(set(out.split()) <= set(PAIR.target.symbols) for out in outputs)  # symbols, spaced
    result = evaluate(model, PAIRS, PAIR, batch_size=2)
    assert result["examples"] == 4 and 0 <= result["exact_match"] <= 1
    assert sorted(result["by_length"]) == ["3", "5", "7"]  # source lengths in letters
    maps, output = attention_maps(model, PAIR, "cat")
    cross = next(m for m in maps if m.name.endswith("cross_attn"))
    assert cross.key_tokens == ["c", "a", "t"]
    assert all(label in PAIR.target.symbols + ["<eos>"] for label in cross.query_tokens)
    assert output == " ".join(label for label in cross.query_tokens if label != "<eos>")


def save(path, model, tokenizer):
    opt = optim.Adam(model.parameters(), lr=1e-3)
    schedule = optim.ConstantSchedule(opt, 1e-3)  # at step 1: the state of a run at step 0
    extra = {"step": 0, "data": {"epoch_start": np.random.default_rng(2).bit_generator.state, "used": 0},
             "dropout_rng": model.dropout_rng.bit_generator.state}
    save_training_checkpoint(path, model, tokenizer, opt, schedule,
                             TrainConfig.for_task("copy", model="micro").to_dict(), extra)


def test_a_checkpoint_keeps_the_pair(tmp_path):
    model, path = micro_model(), tmp_path / "run.npz"
    save(path, model, PAIR)
    config, _ = read_run_config(path)
    assert config["tokenizer"]["type"] == "pair"
    trained = load_trained(path)
    assert trained.tokenizer == PAIR
    assert translate(trained.model, trained.tokenizer, ["cat"], max_len=5) == translate(model, PAIR, ["cat"], max_len=5)


@pytest.mark.parametrize("tokenizer, message", [
    (TokenizerPair(PAIR.target, PAIR.source), "has 14 source and 13 target tokens but the model's vocabularies "
                                              r"have 13 \(source\) and 14 \(target\)"),
    (TokenizerPair(PAIR.source, PAIR.source), "has 13 source and 13 target tokens"),
    (PAIR.source, "has 13 source and 13 target tokens"),
])
def test_a_checkpoint_whose_sides_do_not_fit_the_model_is_refused(tmp_path, tokenizer, message):
    path = tmp_path / "run.npz"
    save(path, micro_model(), tokenizer)
    with pytest.raises(CheckpointError, match=message):
        load_trained(path)


def test_a_safetensors_file_keeps_the_pair_and_checks_each_side(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    model, path = micro_model(), tmp_path / "model.safetensors"
    export_safetensors(model, PAIR, path)
    back = import_safetensors(path)
    assert back.tokenizer == PAIR and back.model.config == model.config
    assert translate(back.model, back.tokenizer, ["dog"], max_len=5) == translate(model, PAIR, ["dog"], max_len=5)

    with safe_open(str(path), framework="np") as f:
        metadata = f.metadata()
    arrays = load_file(str(path))
    bigger_target = TokenizerPair(PAIR.source, SymbolTokenizer(PAIR.target.symbols + ["ZH"]))
    save_file(arrays, str(path), metadata={**metadata, "tokenizer": json.dumps(bigger_target.to_dict())})
    with pytest.raises(InteropError, match="the target tokenizer has 15 tokens, more than the model's target "
                                           "vocabulary of 14"):
        import_safetensors(path)
    bigger_source = TokenizerPair(CharTokenizer(PAIR.source.chars + ["z"]), PAIR.target)
    save_file(arrays, str(path), metadata={**metadata, "tokenizer": json.dumps(bigger_source.to_dict())})
    with pytest.raises(InteropError, match="the source tokenizer has 14 tokens, more than the model's source "
                                           "vocabulary of 13"):
        import_safetensors(path)
    nested = {"type": "pair", "source": PAIR.to_dict(), "target": PAIR.target.to_dict()}
    save_file(arrays, str(path), metadata={**metadata, "tokenizer": json.dumps(nested)})
    with pytest.raises(InteropError, match="tokenizer: source side: not a tokenizer .*found 'pair'"):
        import_safetensors(path)


def test_unknown_source_units_are_named_in_the_units_of_the_source():
    from transformer.cli import CommandError, check_known_chars

    check_known_chars(PAIR, ["thought", "dog"])
    with pytest.raises(CommandError, match=r"^'cqtq' contains characters the model does not know: 'q' "
                                           r"\(it knows 'abcdghotu'\)$"):
        check_known_chars(PAIR, ["cat", "cqtq"])
    reverse = TokenizerPair(PAIR.target, PAIR.source)
    with pytest.raises(CommandError, match=r"^'TH ZH T Q' contains symbols the model does not know: 'ZH Q' "
                                           r"\(it knows 'AE1 AH0 AO1 AW1 B D G K T TH'\)$"):
        check_known_chars(reverse, ["TH ZH T Q"])


def test_a_long_vocabulary_is_not_listed_in_the_refusal():
    from transformer.cli import KNOWN_UNITS_SHOWN, CommandError, check_known_chars
    from transformer.tokenizer import CharTokenizer, TokenizerPair

    hanzi = CharTokenizer.from_texts([chr(0x4E00 + i) for i in range(KNOWN_UNITS_SHOWN + 1)])
    with pytest.raises(CommandError, match=r"^'银行' contains characters the model does not know: '银行'$"):
        check_known_chars(TokenizerPair(hanzi, PAIR.target), ["银行"])
