"""The folk corpus: parsing, skipping with reasons, padding, splits, the cache.

Builds here parse a handful of tunes per collection (well under a second each);
the full build is `rlcomposer corpus build`.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from rlcomposer.corpus import abc as abc_module
from rlcomposer.corpus import build as corpus_module
from rlcomposer.corpus.abc import (
    ALLOWED_METRES,
    COLLECTIONS,
    MIN_STEPS,
    SKIP_REASONS,
    CorpusError,
    TuneText,
    iter_tunes,
    parse_abc_tune,
    split_abc_tunes,
    transposition_to_c,
)
from rlcomposer.corpus.build import build_corpus, cache_paths, load_corpus
from rlcomposer.corpus.corpus import SPLITS, Corpus, CorpusConfig, split_of
from rlcomposer.music.keys import Key
from rlcomposer.music.melody import (
    REST,
    STEPS_PER_BAR,
    VOCAB_SIZE,
    Melody,
    MelodyError,
    pitch_token,
)
from rlcomposer.music.metre import parse_metre

SMALL = CorpusConfig(max_tunes_per_collection=16)
WHITE_KEYS = {0, 2, 4, 5, 7, 9, 11}


def abc(body: str, metre: str = "4/4", key: str = "C", unit: str = "1/8") -> str:
    return f"X:1\nT:Test tune\nM:{metre}\nL:{unit}\nK:{key}\n{body}\n"


def reason_of(text: str) -> str:
    with pytest.raises(MelodyError) as caught:
        parse_abc_tune(text, "test", "test.abc")
    return caught.value.reason


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Corpus, object]:
    cache_dir = tmp_path_factory.mktemp("corpus")
    return build_corpus(SMALL, cache_dir, progress=False), cache_dir


def all_melodies(corpus: Corpus) -> list[Melody]:
    return [m for split in SPLITS for m in corpus.melodies(split)]


# ------------------------------------------------------------ a small build
def test_small_build_keeps_and_skips_with_counts_that_add_up(small):
    corpus, _ = small
    stats = corpus.stats
    assert not stats.from_cache
    assert stats.parsed == 16 * len(COLLECTIONS)
    assert stats.kept == len(corpus) > 0
    assert stats.skipped > 0 and set(stats.skipped_by_reason) <= set(SKIP_REASONS)
    assert stats.parsed == stats.kept + sum(stats.skipped_by_reason.values())
    assert sum(stats.kept_by_metre.values()) == sum(stats.kept_by_mode.values()) == stats.kept
    assert len(stats.kept_by_metre) >= 3  # reels, jigs, waltzes... all kept
    for name in COLLECTIONS:
        counts = stats.per_collection[name]
        assert counts["parsed"] == 16 and counts["available"] > 16
        assert counts["parsed"] == counts["kept"] + sum(counts["skipped_by_reason"].values())
    assert sum(stats.tunes_per_split.values()) == stats.kept
    assert sum(corpus.num_tunes(s) for s in SPLITS) == stats.kept


def test_kept_sequences_are_whole_bars_after_their_pickups_in_range(small):
    corpus, _ = small
    for split in SPLITS:
        sequences = corpus.sequences(split)
        assert len(sequences) == corpus.num_tunes(split)
        assert sum(len(s) for s in sequences) == corpus.num_steps(split)
        for tokens, metre, pickup, padded in zip(sequences, corpus.metres(split), corpus.pickups(split),
                                                 corpus.sequences(split, padded=True), strict=True):
            bar = parse_metre(metre).steps_per_bar
            assert tokens.dtype == np.int64 and tokens.ndim == 1
            assert (len(tokens) - pickup) % bar == 0 and 0 <= pickup < bar
            assert len(padded) % bar == 0 and len(padded) >= MIN_STEPS  # the cache keeps whole bars
            assert tokens.min() >= 0 and tokens.max() < VOCAB_SIZE
            assert (tokens >= 2).any()


def test_melodies_carry_their_provenance(small):
    corpus, _ = small
    melodies = all_melodies(corpus)
    assert melodies
    for melody in melodies:
        meta = melody.metadata
        assert meta["collection"] in COLLECTIONS
        assert meta["source"].endswith(".abc") and not meta["source"].startswith("test")
        assert meta["title"] and meta["metre"] in ALLOWED_METRES
        assert meta["split"] in SPLITS
        assert melody.metre.name == meta["metre"] and melody.key == Key("C", meta["mode"])
        tonic, mode = meta["key"].split()
        assert (meta["transposition"] + Key(tonic, mode).tonic_pitch_class) % 12 == 0  # tonic -> C


def test_kept_tunes_lie_in_their_mode_on_c(small):
    corpus, _ = small
    pairs = [(p, m.key.scale_pitch_classes()) for m in all_melodies(corpus) for p, _, _ in m.notes()]
    outside = sum(p % 12 not in scale for p, scale in pairs)
    assert len(pairs) > 1000
    assert outside / len(pairs) < 0.10


def test_pickups_put_the_first_full_bar_on_a_bar_line(small):
    """Re-read real tunes with music21: the first note of the first full-length
    measure lands on a bar line of its metre, preceded by the pick-up."""
    from music21 import stream

    corpus, _ = small
    texts = {
        (t.collection, t.source, t.tune_index): t.text
        for name in COLLECTIONS
        for t in list(iter_tunes(name))[:16]
    }
    checked = 0
    for melody in all_melodies(corpus):
        meta = melody.metadata
        pad = meta["pickup_padding"]
        if pad == 0:
            continue
        bar = melody.metre.steps_per_bar
        assert melody.pickup_steps == bar - pad  # read from the first note: a partial bar, no padding
        assert melody.tokens[0] >= 2  # the pick-up's first note
        part = abc_module._parse_abc(texts[(meta["collection"], meta["source"],
                                             meta["tune_index"])])
        numerator, denominator = (int(x) for x in meta["metre"].split("/"))
        bar_beats = numerator * 4 / denominator
        first_full = next(
            m for m in part.getElementsByClass(stream.Measure)
            if float(m.duration.quarterLength) == bar_beats
        )
        assert float(first_full.offset) > 0  # there is a pick-up before it
        note = next(n for n in first_full.notes if not n.duration.isGrace)
        step = round((float(first_full.offset) + float(note.offset)) * 4)
        assert (step - melody.pickup_steps) % bar == 0
        expected = pitch_token(int(note.pitch.midi) + meta["transposition"])
        assert melody.tokens[step] == expected
        checked += 1
    assert checked >= 3


def test_pickup_padding_on_handmade_tunes():
    # 4/4 with a one-quarter pick-up: it sits on steps 12-15 of a silent first bar
    melody = parse_abc_tune(abc("G2|c2d2 e2f2|g8|c8|"), "test", "t.abc")
    assert melody.metadata["pickup_padding"] == 12
    assert melody.tokens[12] == pitch_token(67) and melody.tokens[16] == pitch_token(72)
    assert melody.num_steps == 4 * STEPS_PER_BAR  # pick-up bar + 3 bars (the last padded)
    # 2/4 with an eighth pick-up: bars of 8 steps, the pick-up on steps 6-7
    melody = parse_abc_tune(abc("G|c2d2|e4|c2d2|e4|", metre="2/4"), "test", "t.abc")
    assert melody.metadata["pickup_padding"] == 6 and melody.metre.steps_per_bar == 8
    assert melody.tokens[6] == pitch_token(67) and melody.tokens[8] == pitch_token(72)
    assert melody.tokens[16] == pitch_token(76)  # the second 2/4 bar
    # 6/8 with a one-eighth pick-up: bars of 12 steps
    melody = parse_abc_tune(abc("G|c2d edc|B2A G3|c3 c3|", metre="6/8"), "test", "t.abc")
    assert melody.metadata["pickup_padding"] == 10 and melody.num_steps == 48
    assert melody.tokens[12] == pitch_token(72)
    # no pick-up, no padding; the end is padded to a whole bar
    melody = parse_abc_tune(abc("c2d2 e2f2|g4e4|c4", metre="C"), "test", "t.abc")
    assert melody.metadata["pickup_padding"] == 0 and melody.num_steps == 48
    assert melody.tokens[0] == pitch_token(72) and melody.tokens[40] == REST


def test_a_short_bar_mid_tune_is_completed_with_silence():
    # the second bar lacks a quarter: the third bar still starts on a bar line
    melody = parse_abc_tune(abc("c2d2 e2f2|g2f2 e2|d2c2 d2e2|c8|"), "test", "t.abc")
    assert melody.metadata["realigned_bars"] == 1
    assert melody.tokens[28] == REST and melody.tokens[32] == pitch_token(74)
    # a section's last bar and the next section's pick-up add up: nothing to insert
    melody = parse_abc_tune(abc("G2|c2d2 e2f2|g6 :|e2|d2c2 d2e2|c8|"), "test", "t.abc")
    assert melody.metadata["realigned_bars"] == 0
    assert melody.tokens[48] == pitch_token(74)


# ------------------------------------------------------------ transposition
def test_transposition_to_c_from_the_key_signature():
    assert transposition_to_c(0, 60, 72) == 0
    assert transposition_to_c(1, 60, 72) == 5  # G -> C, up a fourth
    assert transposition_to_c(2, 60, 72) == -2  # D
    assert transposition_to_c(-1, 60, 72) == -5  # F
    assert transposition_to_c(-2, 60, 72) == 2  # Bb
    assert transposition_to_c(6, 60, 72) == 6  # F#
    assert transposition_to_c(1, 60, 84) == -7  # up a fourth would leave the range
    assert transposition_to_c(0, 30, 40) == 24  # whole octaves when needed
    with pytest.raises(MelodyError, match="no octave"):
        transposition_to_c(1, 50, 80)  # +5 is too high, -7 too low
    with pytest.raises(MelodyError) as caught:
        transposition_to_c(0, 40, 80)
    assert caught.value.reason == "pitch-range"


def test_tunes_land_with_their_tonic_on_c():
    d_major = parse_abc_tune(abc("d2f2 a2f2|g2e2 c2A2|d8|", key="D"), "test", "t.abc")
    assert d_major.metadata["key_sharps"] == 2 and d_major.metadata["transposition"] == -2
    assert all(p % 12 in WHITE_KEYS for p, _, _ in d_major.notes())
    assert d_major.notes()[0][0] == 72  # d (MIDI 74) -> c
    e_minor = parse_abc_tune(abc("E2G2 B2G2|A2F2 D2F2|E8|", key="Em"), "test", "t.abc")
    assert e_minor.key == Key("C", "minor") and e_minor.metadata["key"] == "E minor"
    c_minor = Key("C", "minor").scale_pitch_classes()
    assert all(p % 12 in c_minor for p, _, _ in e_minor.notes())
    assert e_minor.notes()[-1][0] % 12 == 0  # ends on its tonic, now C
    # a bare K:G tune that ends on E is read as E minor (its final note)
    ending_on_e = parse_abc_tune(abc("G2B2 d2B2|A2F2 D2F2|E8|", key="G"), "test", "t.abc")
    assert ending_on_e.metadata["mode"] == "minor" and ending_on_e.metadata["mode_source"] == "final note"


# ------------------------------------------------------------ skip reasons
def test_metres_are_kept_and_metre_changes_skipped():
    assert parse_abc_tune(abc("c2d edc|B2A G3|c3 c3|", metre="6/8"), "t", "t").metre.name == "6/8"
    assert parse_abc_tune(abc("c2d2 e2|f2g2 a2|c6|", metre="3/4"), "t", "t").metre.name == "3/4"
    assert reason_of(abc("c2d2 e2f2 g2|c8 z2|", metre="5/4")) == "metre"
    assert reason_of(abc("c2d2 e2f2|[M:3/4] g2e2 c2|c8|")) == "metre"
    assert reason_of(abc("c2d2 e2f2|g8|", metre="none")) == "metre"
    assert parse_abc_tune(abc("c2d2 e2f2|g8|", metre="C|"), "t", "t").metadata["metre"] == "2/2"
    assert parse_abc_tune(abc("c2d2 e2f2|g8|", metre="C"), "t", "t").metadata["metre"] == "4/4"


def test_chords_tuplets_and_others_are_skipped_with_reasons():
    assert reason_of(abc("[ceg]2d2 e2f2|g8|")) == "chord"
    assert parse_abc_tune(abc("(3cde d2 e2f2|g8|"), "t", "t").metadata["quantised_notes"] == 2
    assert reason_of(abc("c/4d/4e/2 d2 e2f2|g8|", unit="1/8")) == "off-grid"
    assert reason_of(abc("z8|z8|")) == "empty"
    assert reason_of(abc("c2d2 e2f2|")) == "too-short"
    assert reason_of(abc("C,,,2D2 E2F2|c'''8|")) == "pitch-range"
    assert reason_of(abc("[[[[]]]] ||| :::")) == "parse-error"
    two_voices = "X:1\nM:4/4\nL:1/8\nV:1\nV:2\nK:C\n[V:1] c2d2 e2f2|g8|\n[V:2] C8|C8|\n"
    assert reason_of(two_voices) == "polyphonic"


def test_music21_reading_quirks_are_worked_around():
    # an annotation before a note, and the fermata shorthand H, used to drop the note
    melody = parse_abc_tune(abc('c2 ">"d2 e2 Hf2|"G"g8|'), "test", "t.abc")
    assert [p for p, _, _ in melody.notes()] == [72, 74, 76, 77, 79]
    # a "tie" between different pitches is two notes, a real tie is one
    melody = parse_abc_tune(abc("G2-F2 E2D2|C4-C4|", unit="1/8"), "test", "t.abc")
    assert melody.notes()[:2] == [(67, 0.0, 1.0), (65, 1.0, 1.0)]
    assert melody.notes()[-1] == (60, 4.0, 4.0)


def test_split_abc_tunes_keeps_file_headers():
    text = "% a comment\nL:1/4\n\nX:1\nT:One\nK:C\ncdef|\n\nX:2\nT:Two\nK:C\ngabc|\n"
    tunes = split_abc_tunes(text)
    assert len(tunes) == 2
    assert tunes[0].startswith("X:1\nL:1/4\nT:One") and tunes[1].startswith("X:2\nL:1/4\n")
    assert "comment" not in tunes[0]


# ------------------------------------------------------------ synthetic build
def test_every_skipped_tune_is_counted_and_duplicates_kept_once(tmp_path, monkeypatch):
    tune = abc("c2d2 e2f2|g8|")
    bodies = [
        tune,
        tune.replace("X:1", "X:2"),  # the same notes again
        abc("c2d edc|B2A G3|", metre="5/8"),
        abc("[ceg]2d2 e2f2|g8|"),
        abc("c/4d/4e/2 d2 e2f2|g8|"),
        abc("a2g2 f2e2|d8|c8|"),
    ]
    tunes = [TuneText("airdsAirs", "fake.abc", i, text) for i, text in enumerate(bodies)]
    # patched where the build looks it up (it comes from rlcomposer.corpus.abc)
    monkeypatch.setattr(corpus_module, "iter_tunes", lambda name: iter(tunes))
    config = CorpusConfig(collections=("airdsAirs",), workers=1)
    corpus = build_corpus(config, tmp_path, progress=False)
    assert corpus.stats.parsed == 6 and corpus.stats.kept == 2
    assert corpus.stats.skipped_by_reason == {
        "chord": 1, "duplicate": 1, "metre": 1, "off-grid": 1,
    }
    kept = sorted(m.metadata["tune_index"] for m in all_melodies(corpus))
    assert kept == [0, 5]
    examples = corpus.stats.skipped_examples
    assert examples["duplicate"] == ["airdsAirs/fake.abc/1: the same tokens as airdsAirs/fake.abc/0"]
    assert examples["metre"][0].startswith("airdsAirs/fake.abc/2: metre 5/8")


# ------------------------------------------------------------ splits
def test_split_is_deterministic_by_tune_with_the_asked_fractions():
    keys = [f"essenFolksong/file{i // 100}.abc/{i % 100}" for i in range(20000)]
    first = [split_of(k, 0.05, 0.05) for k in keys]
    assert first == [split_of(k, 0.05, 0.05) for k in keys]
    shares = Counter(first)
    assert abs(shares[0] / len(keys) - 0.90) < 0.01
    assert abs(shares[1] / len(keys) - 0.05) < 0.01
    assert abs(shares[2] / len(keys) - 0.05) < 0.01
    # a tune's split depends on the tune alone, not on what else is parsed
    assert split_of(keys[7], 0.05, 0.05) == first[7]


def test_split_is_disjoint_and_stable_across_builds(small, tmp_path):
    corpus, _ = small
    config = CorpusConfig(max_tunes_per_collection=16, validation_fraction=0.3,
                          test_fraction=0.3)
    wide = build_corpus(config, tmp_path / "a", progress=False)
    names = {
        split: {(m.metadata["collection"], m.metadata["source"], m.metadata["tune_index"])
                for m in wide.melodies(split)}
        for split in SPLITS
    }
    assert all(names.values())  # every split has tunes
    assert not names["train"] & names["validation"]
    assert not names["train"] & names["test"]
    assert not names["validation"] & names["test"]
    # a bigger corpus (more tunes parsed) leaves every shared tune in its split
    bigger = build_corpus(
        CorpusConfig(max_tunes_per_collection=24, validation_fraction=0.3, test_fraction=0.3),
        tmp_path / "b", progress=False,
    )
    for split in SPLITS:
        bigger_names = {
            (m.metadata["collection"], m.metadata["source"], m.metadata["tune_index"])
            for m in bigger.melodies(split)
        }
        assert names[split] <= bigger_names
    # the same config in one process gives the same arrays as with two workers
    serial = build_corpus(
        CorpusConfig(max_tunes_per_collection=16, validation_fraction=0.3, test_fraction=0.3,
                     workers=1),
        tmp_path / "c", progress=False,
    )
    assert np.array_equal(serial.tokens, wide.tokens)
    assert np.array_equal(serial.split_ids, wide.split_ids)


# ------------------------------------------------------------ the cache
def test_second_build_reads_the_cache_with_identical_arrays(small):
    corpus, cache_dir = small
    again = build_corpus(SMALL, cache_dir, progress=False)
    assert again.stats.from_cache and not corpus.stats.from_cache
    assert again.stats.parsed == corpus.stats.parsed
    assert again.stats.skipped_by_reason == corpus.stats.skipped_by_reason
    assert again.stats.build_seconds == corpus.stats.build_seconds
    for split in SPLITS:
        assert len(again.sequences(split)) == len(corpus.sequences(split))
        for a, b in zip(again.sequences(split), corpus.sequences(split), strict=True):
            assert np.array_equal(a, b)
        assert [m.metadata for m in again.melodies(split)] == [
            m.metadata for m in corpus.melodies(split)
        ]
    loaded = load_corpus(cache_dir, SMALL)
    assert loaded.stats.from_cache and np.array_equal(loaded.tokens, corpus.tokens)
    # workers do not change the content, so they share the cache
    assert load_corpus(cache_dir, CorpusConfig(max_tunes_per_collection=16, workers=1))


def test_manifest_records_counts_time_version_and_config(small):
    corpus, cache_dir = small
    npz_path, json_path = cache_paths(SMALL, cache_dir)
    assert npz_path.exists() and npz_path.stat().st_size < 200_000
    manifest = json.loads(json_path.read_text())
    assert manifest["config"]["max_tunes_per_collection"] == 16
    assert manifest["music21_version"] and manifest["stats"]["build_seconds"] > 0
    assert manifest["stats"]["per_collection"]["oneills1850"]["parsed"] == 16
    assert manifest["stats"]["kept"] == corpus.stats.kept


def test_cache_file_name_depends_on_the_config(tmp_path):
    paths = {
        cache_paths(config, tmp_path)[0]
        for config in (
            CorpusConfig(),
            CorpusConfig(max_tunes_per_collection=5),
            CorpusConfig(max_tunes_per_collection=6),
            CorpusConfig(collections=("airdsAirs",)),
            CorpusConfig(test_fraction=0.1),
        )
    }
    assert len(paths) == 5
    assert cache_paths(CorpusConfig(workers=1), tmp_path) == cache_paths(CorpusConfig(), tmp_path)


def test_load_without_a_cache_says_to_build_first(tmp_path):
    with pytest.raises(CorpusError, match="rlcomposer corpus build"):
        load_corpus(tmp_path)
    with pytest.raises(CorpusError, match="rlcomposer corpus build"):
        load_corpus(tmp_path / "missing", SMALL)


def test_a_corrupt_cache_names_the_file_and_force_rebuilds(small, tmp_path):
    corpus, _ = small
    config = CorpusConfig(collections=("airdsAirs",), max_tunes_per_collection=8)
    npz_path, _ = cache_paths(config, tmp_path)
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    npz_path.write_bytes(b"not a zip file")
    with pytest.raises(CorpusError, match=str(npz_path).replace(".", r"\.")):
        load_corpus(tmp_path, config)
    with pytest.raises(CorpusError, match="--force"):
        build_corpus(config, tmp_path, progress=False)
    rebuilt = build_corpus(config, tmp_path, force=True, progress=False)
    assert not rebuilt.stats.from_cache and len(rebuilt) > 0
    assert load_corpus(tmp_path, config).stats.from_cache


def test_bad_config_and_split_names_are_rejected(small):
    corpus, _ = small
    with pytest.raises(CorpusError):
        CorpusConfig(collections=("bach",))
    with pytest.raises(CorpusError):
        CorpusConfig(validation_fraction=0.6, test_fraction=0.5)
    with pytest.raises(CorpusError):
        CorpusConfig(workers=0)
    with pytest.raises(CorpusError, match="split"):
        corpus.sequences("dev")
