"""The batched descriptors: ``describe(melodies)`` gives, for every melody of a mixed batch, the
numbers the readable one-melody reference ``describe_one`` gives (metres, keys, modes, lengths of
1..16 bars, silences, single notes), and refuses token arrays it cannot read."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlcomposer.music.keys import MODES, Key
from rlcomposer.music.melody import HOLD, REST, VOCAB_SIZE, Melody, MelodyError, pitch_token
from rlcomposer.music.metre import METRES, parse_metre
from rlcomposer.preferences.descriptors import DESCRIPTOR_NAMES, describe, describe_one
from rlcomposer.prior.model import MelodyCondition, load_prior

TONICS = ("C", "G", "D", "A", "F", "Bb", "E")  # each fits every mode (at most 7 sharps or flats)


def one_by_one(melodies) -> np.ndarray:
    return np.stack([np.nan_to_num(describe_one(m), nan=0.0, posinf=0.0, neginf=0.0) for m in melodies])


def assert_same_as_reference(melodies) -> None:
    batch = describe(melodies)
    reference = one_by_one(melodies)
    assert batch.shape == (len(melodies), len(DESCRIPTOR_NAMES))
    difference = np.abs(batch - reference)
    if difference.max() > 1e-9:
        row, column = np.unravel_index(int(difference.argmax()), difference.shape)
        melody = melodies[row]
        what = (f"{melody.metre} {melody.key}" if isinstance(melody, Melody) else "token array")
        raise AssertionError(
            f"melody {row} ({what}, tokens {np.asarray(getattr(melody, 'tokens', melody)).tolist()}): "
            f"{DESCRIPTOR_NAMES[column]} is {batch[row, column]} in the batch, "
            f"{reference[row, column]} alone")


@pytest.fixture(scope="module")
def prior_melodies() -> list[Melody]:
    """320 melodies from the shipped prior: 8 metres x 4 modes, 1..16 bars, in 7 tonics, a third with a
    pick-up, shuffled."""
    prior = load_prior("prior")
    generator = torch.Generator().manual_seed(7)
    rng = np.random.default_rng(7)
    melodies = []
    metres = ("4/4", "3/4", "6/8", "2/4", "9/8", "12/8", "2/2", "6/4")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a second thread only waits for the first on a busy machine
    try:
        for index, metre_name in enumerate(metres):
            metre = parse_metre(metre_name)
            for mode in ("major", "minor", "dorian", "mixolydian"):
                bars = (1, 2, 3, 4, 8, 16)[(index + MODES.index(mode)) % 6]
                steps = bars * metre.steps_per_bar
                tokens = prior.sample(10, steps, generator, condition=MelodyCondition(metre, mode, steps))
                for number, row in enumerate(tokens):
                    key = Key(TONICS[int(rng.integers(len(TONICS)))], mode)
                    pickup = int(rng.integers(1, min(metre.steps_per_bar, steps + 1))) if number % 3 == 0 else 0
                    melodies.append(Melody(row, metre=metre, key=key, pickup_steps=pickup))
    finally:
        torch.set_num_threads(threads)
    order = rng.permutation(len(melodies))
    return [melodies[i] for i in order]


def test_batch_equals_one_by_one_on_prior_melodies_of_mixed_metres_modes_keys_and_lengths(prior_melodies):
    assert_same_as_reference(prior_melodies)
    # the descriptors tell these melodies apart (so agreeing is no accident of zeros)
    values = describe(prior_melodies)
    assert np.count_nonzero(values.std(axis=0) > 1e-3) >= 34
    # the same tokens read as plain arrays (4/4 in C, as the reward model reads them)
    arrays = [m.tokens for m in prior_melodies]
    assert_same_as_reference(arrays)
    # a melody's numbers do not depend on the batch around it
    assert np.array_equal(describe(prior_melodies[:1])[0], values[0])
    assert np.array_equal(describe(prior_melodies[::-1])[::-1], values)


def test_a_token_matrix_is_read_as_rows_of_one_batch(prior_melodies):
    same_length = [m.tokens for m in prior_melodies if m.num_steps == 64]
    assert len(same_length) >= 10
    matrix = np.stack(same_length)
    assert np.array_equal(describe(matrix), describe(same_length))
    assert_same_as_reference(list(matrix))


def edge_cases() -> list[Melody | np.ndarray]:
    c4, g4, c6, c3 = pitch_token(60), pitch_token(67), pitch_token(84), pitch_token(48)
    rows = [
        [REST] * 64,  # all rest
        [HOLD] * 64,  # all hold: a silence too
        [REST] + [HOLD] * 47,
        [c4] + [HOLD] * 63,  # one note
        [c4],  # one step
        [REST],
        [HOLD],
        [REST] * 20 + [c4] + [HOLD] * 43,  # leading rests
        [HOLD] * 7 + [g4, HOLD, c4] + [REST] * 6,  # leading holds, trailing rests
        [c4, g4] + [REST] + [HOLD] * 13,
        [c3] * 64,  # one pitch struck again and again
        [c4, REST, c6],  # the widest leap, through a rest
        [c4, g4, c4, g4, c4, g4, c4, g4, c4],  # a motif repeated
        [c6, c3, c6, c3, c6, HOLD, HOLD, c3],  # leaps, unresolved
        [g4, HOLD, HOLD, c4, REST, HOLD, g4, c6, HOLD, HOLD, HOLD, HOLD, HOLD, c3, REST, REST, HOLD],  # 17 steps
    ]
    cases: list[Melody | np.ndarray] = [np.array(row) for row in rows]
    for metre in METRES:
        for index, row in enumerate(rows):
            key = Key(TONICS[index % len(TONICS)], MODES[index % len(MODES)])
            cases.append(Melody(np.array(row), metre=metre, key=key))
            cases.append(Melody(np.array(row), metre=metre))  # C major
            cases.append(Melody(np.array(row), metre=metre, pickup_steps=min(len(row), metre.steps_per_bar - 1)))
    # whole bars of every metre, 1..16 bars, silent but for a note on the last bar's upbeat
    for metre in METRES:
        for bars in (1, 2, 5, 16):
            tokens = np.full(bars * metre.steps_per_bar, HOLD)
            tokens[0], tokens[-3] = REST, g4
            cases.append(Melody(tokens, metre=metre, key=Key("E", "phrygian")))
    return cases


def test_a_pickup_moves_the_beats_and_bars():
    c4, g4 = pitch_token(60), pitch_token(67)
    # a bar of quarter + eighth twice, then a bar's rest; 8 bars of 6/8
    jig = np.array(([c4, HOLD, HOLD, HOLD, g4, HOLD] * 2 + [REST] + [HOLD] * 11) * 4)
    on_beat = describe_one(Melody(jig, metre="6/8"))
    late = describe_one(Melody(jig, metre="6/8", pickup_steps=2))  # step 0 is the bar's last eighth
    column = DESCRIPTOR_NAMES.index
    assert on_beat[column("offbeat")] == 0.5 and on_beat[column("syncopation")] == 0.0
    assert late[column("offbeat")] == 1.0 and late[column("syncopation")] == 0.5
    assert on_beat[column("downbeats")] == 0.5 and late[column("downbeats")] == 0.0
    # the same tokens as a token array: 4/4 in C, beats of a quarter
    assert describe_one(jig)[column("syncopation")] == 0.25 != on_beat[column("syncopation")]


def test_edge_cases_equal_the_reference():
    cases = edge_cases()
    assert_same_as_reference(cases)
    silent = describe([np.full(64, REST), np.full(64, HOLD)])
    assert silent[:, DESCRIPTOR_NAMES.index("rests")].tolist() == [1.0, 1.0]
    assert np.all(silent[:, DESCRIPTOR_NAMES.index("notes")] == 0)


def test_an_empty_batch_and_an_empty_token_array():
    assert describe([]).shape == (0, len(DESCRIPTOR_NAMES))
    assert np.array_equal(describe([np.zeros(0, dtype=int)]), one_by_one([np.zeros(0, dtype=int)]))


def test_a_token_array_outside_the_vocabulary_is_refused_naming_the_melody():
    good = np.full(16, HOLD)
    with pytest.raises(MelodyError, match=r"melody 2: token 39 is outside the vocabulary 0\.\.38"):
        describe([good, good, np.array([2, 39, 1])])
    with pytest.raises(MelodyError, match=r"melody 1: token -1"):
        describe(np.array([[2, 3], [4, -1]]))
    with pytest.raises(MelodyError, match=r"melody 0: tokens must be a 1-D sequence, got shape \(2, 2\)"):
        describe([np.array([[2, 3], [4, 5]])])


@st.composite
def token_batches(draw):
    """Batches of random melodies: token arrays or melodies of any metre and key, where lengths repeat
    (so groups hold several melodies) and notes, rests and holds come in any proportion."""
    lengths = draw(st.lists(st.integers(1, 120), min_size=1, max_size=4))
    weights = draw(st.tuples(*[st.integers(0, 4)] * 3).filter(any))
    pitch_low = draw(st.integers(2, VOCAB_SIZE - 1))
    pitch_high = draw(st.integers(pitch_low, VOCAB_SIZE - 1))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    batch: list[Melody | np.ndarray] = []
    for _ in range(draw(st.integers(1, 12))):
        length = lengths[int(rng.integers(len(lengths)))]
        kind = rng.choice(3, size=length, p=np.array(weights) / sum(weights))
        pitches = rng.integers(pitch_low, pitch_high + 1, size=length)
        tokens = np.where(kind == 0, REST, np.where(kind == 1, HOLD, pitches))
        if rng.random() < 0.3:
            batch.append(tokens)
        else:
            metre = METRES[int(rng.integers(len(METRES)))]
            key = Key(TONICS[int(rng.integers(len(TONICS)))], MODES[int(rng.integers(len(MODES)))])
            pickup = int(rng.integers(0, min(metre.steps_per_bar, length + 1))) if rng.random() < 0.4 else 0
            batch.append(Melody(tokens, metre=metre, key=key, pickup_steps=pickup))
    return batch


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(token_batches())
def test_random_batches_equal_the_reference(batch):
    assert_same_as_reference(batch)
