"""`rlcomposer continue`: a musician's opening is kept note for note and continued to the length asked;
bad openings are refused in one line with nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlcomposer.cli.main import main
from rlcomposer.errors import RLComposerError
from rlcomposer.music.keys import Key
from rlcomposer.music.melody import Melody
from rlcomposer.prior.continuation import ContinuationConfig, continue_melody, kept_opening
from rlcomposer.prior.model import ConditionError, MelodyCondition, load_prior

OPENING = """\
X:1
T:My Jig
M:6/8
L:1/8
K:Ador
"Am"e | A2B c2d | e2f g2a |
"""


@pytest.fixture(scope="module")
def prior():
    return load_prior("prior")


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_continue_keeps_an_abc_opening_note_for_note(tmp_path, capsys):
    opening_file = write(tmp_path, "opening.abc", OPENING)
    out = tmp_path / "continued"
    assert main(["continue", "--from", str(opening_file), "--bars", "4", "--n", "3", "--out", str(out),
                 "--format", "abc,json", "--quiet"]) == 0
    assert "dropped from the opening: 1 chord symbols" in capsys.readouterr().out
    opening = Melody.load(opening_file)
    assert opening.pickup_steps == 2 and opening.num_steps == 26
    for index in range(3):
        for suffix in (".json", ".abc"):
            melody = Melody.load(out / f"continuation-00{index}{suffix}")
            assert kept_opening(melody, opening)
            assert melody.notes()[:len(opening.notes())] == opening.notes()
            assert (melody.metre.name, melody.key, melody.pickup_steps) == ("6/8", Key("A", "dorian"), 2)
            assert melody.num_steps == 2 + 4 * 12  # the pick-up and 4 full bars, opening included


def test_an_opening_that_ends_on_a_note_keeps_that_note_s_length(prior):
    opening = Melody.from_abc("X:1\nM:4/4\nL:1/8\nK:G\nG2AB c2d2 | e8 |]\n")
    melodies = continue_melody(prior, opening, ContinuationConfig(num_bars=3, num_continuations=8),
                               np.random.default_rng(0))
    for melody in melodies:
        assert kept_opening(melody, opening)
        assert melody.notes()[len(opening.notes()) - 1] == (76, 4.0, 4.0)  # e8: a whole bar, not more


def test_continuations_are_fixed_by_the_seed_and_take_midi_and_musicxml_openings(tmp_path, prior):
    opening = Melody.from_abc(OPENING)
    for suffix in (".mid", ".musicxml"):
        path = opening.save(tmp_path / f"opening{suffix}")
        again = Melody.load(path)
        assert again.notes() == opening.notes() and again.pickup_steps == 2
    first = continue_melody(prior, opening, ContinuationConfig(num_bars=4, num_continuations=2, seed=5),
                            np.random.default_rng(5))
    second = continue_melody(prior, opening, ContinuationConfig(num_bars=4, num_continuations=2, seed=5),
                             np.random.default_rng(5))
    assert [m.to_json() for m in first] == [m.to_json() for m in second]


def test_best_of_keeps_the_best_continuation_under_the_reward(tmp_path):
    opening_file = write(tmp_path, "opening.abc", OPENING)
    out = tmp_path / "best"
    assert main(["continue", "--from", str(opening_file), "--bars", "3", "--n", "2", "--out", str(out),
                 "--format", "json", "--best-of", "4", "--reward", "rlcomposer.music.theory:theory_reward",
                 "--quiet"]) == 0
    melody = Melody.load(out / "continuation-000.json")
    assert melody.metadata["best_of"] == 4 and np.isfinite(melody.metadata["reward"])
    assert kept_opening(melody, Melody.load(opening_file))


def out_of_key_notes(melody, opening):
    """Notes after the opening outside its key's scale and the pitch classes the opening used."""
    allowed = set(opening.key.scale_pitch_classes()) | {p % 12 for p, _, _ in opening.notes()}
    return sum(p % 12 not in allowed for p, onset, _ in melody.notes() if onset >= opening.num_steps / 4)


def chromatic_reward(melodies):
    """A listener who likes notes outside C major (a reward that pulls a continuation out of the key)."""
    return np.array([sum(p % 12 in (1, 3, 6, 8, 10) for p, _, _ in m.notes()) for m in melodies], dtype=float)


def test_under_a_reward_the_chosen_continuation_keeps_the_opening_s_key_unless_told(prior):
    opening = Melody.from_abc("X:1\nM:4/4\nL:1/8\nK:C\nCDEF GABc | c2B2 A2G2 |]\n")
    kept = continue_melody(prior, opening, ContinuationConfig(num_bars=4, num_continuations=6, best_of=32),
                           np.random.default_rng(1), chromatic_reward)
    free = continue_melody(prior, opening, ContinuationConfig(num_bars=4, num_continuations=6, best_of=32,
                                                              keep_key=False),
                           np.random.default_rng(1), chromatic_reward)
    assert all(kept_opening(m, opening) for m in kept + free)
    assert sum(out_of_key_notes(m, opening) for m in kept) == 0
    assert sum(out_of_key_notes(m, opening) > 0 for m in free) >= 3  # the same candidates: the reward's pick leaves C


def test_any_key_needs_best_of(tmp_path, capsys):
    opening_file = write(tmp_path, "opening.abc", OPENING)
    assert main(["continue", "--from", str(opening_file), "--out", str(tmp_path / "o"), "--any-key"]) != 0
    assert "--any-key is used with --best-of M --reward RM" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_best_of_states_the_continuations_kl_to_the_prior_as_generate_does(tmp_path, capsys):
    opening_file = write(tmp_path, "opening.abc", OPENING)
    assert main(["continue", "--from", str(opening_file), "--bars", "3", "--n", "2", "--out", str(tmp_path / "o"),
                 "--format", "json", "--best-of", "4", "--reward", "rlcomposer.music.theory:theory_reward"]) == 0
    assert "; KL to the prior about 0.64 nats a melody" in capsys.readouterr().out  # log 4 - 3/4
    assert main(["continue", "--from", str(opening_file), "--bars", "3", "--n", "2", "--out", str(tmp_path / "p"),
                 "--format", "json"]) == 0
    assert "KL" not in capsys.readouterr().out  # the prior's own continuations: no KL to state


def test_best_of_at_another_temperature_does_not_state_a_kl_it_does_not_have(tmp_path, capsys):
    """log N - (N-1)/N is best-of-N's KL from what the candidates are drawn from: at temperature
    0.8 or with a top-k cut that is not the prior, so neither command states it (and says why)."""
    opening_file = write(tmp_path, "opening.abc", OPENING)
    best_of = ["--best-of", "4", "--reward", "rlcomposer.music.theory:theory_reward", "--format", "json"]
    assert main(["continue", "--from", str(opening_file), "--bars", "3", "--n", "2", "--out", str(tmp_path / "o"),
                 "--temperature", "0.8", *best_of]) == 0
    out = capsys.readouterr().out
    assert "KL to the prior not stated (sampled at temperature 0.8, not from the model itself)" in out
    assert "about" not in out
    assert main(["generate", "--n", "2", "--bars", "1", "--out", str(tmp_path / "g"), "--top-k", "5", "--json",
                 *best_of]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "kl_to_prior_per_melody" not in result


def test_a_tuned_policy_s_continuations_state_their_kl_from_the_continued_steps(prior):
    from rlcomposer.rl.best_of_n import continuation_kl
    from rlcomposer.rl.kl import best_of_n_kl

    policy = load_prior("prior")  # tuned from the prior and equal to it: only best-of-k's term is left
    policy.tuned_condition, policy.tuned_from = MelodyCondition("6/8", "dorian"), "prior"
    opening = Melody.from_abc(OPENING)
    melodies = continue_melody(policy, opening, ContinuationConfig(num_bars=4, num_continuations=3),
                               np.random.default_rng(0), name="my-policy")
    assert continuation_kl(policy, opening, melodies, 5, "my-policy") == pytest.approx(best_of_n_kl(5), abs=1e-4)
    assert continuation_kl(prior, opening, melodies, 1) is None
    assert continuation_kl(prior, opening, melodies, 54) == pytest.approx(3.01, abs=0.01)


def refused(tmp_path, capsys, *argv) -> str:
    out = tmp_path / "refused"
    assert main(["continue", *argv, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert not out.exists(), "a refused command writes nothing"
    assert error.count("\n") == 1 and error.startswith("rlcomposer: error: ")
    return error


def test_an_opening_already_as_long_as_asked_is_refused(tmp_path, capsys):
    opening_file = write(tmp_path, "opening.abc", OPENING)
    assert "already 2 bars long" in refused(tmp_path, capsys, "--from", str(opening_file), "--bars", "2")


def test_an_opening_longer_than_the_limit_is_refused(tmp_path, capsys):
    long = "X:1\nM:2/4\nL:1/8\nK:C\n" + "CDEF | " * 33 + "\n"
    error = refused(tmp_path, capsys, "--from", str(write(tmp_path, "long.abc", long)), "--bars", "32")
    assert "more than the limit of 32 bars" in error


def test_malformed_abc_is_refused(tmp_path, capsys):
    bad = "X:1\nM:4/4\nL:1/4\nK:C\nCDEF | GAB | c4 |]\n"
    assert "bar 2 lasts 12 sixteenths" in refused(tmp_path, capsys, "--from", str(write(tmp_path, "b.abc", bad)))


def test_a_polyphonic_file_is_refused(tmp_path, capsys):
    import mido

    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.extend([mido.Message("note_on", note=60, velocity=80, time=0),
                  mido.Message("note_on", note=64, velocity=80, time=0),
                  mido.Message("note_off", note=60, velocity=0, time=480),
                  mido.Message("note_off", note=64, velocity=0, time=0)])
    path = tmp_path / "chords.mid"
    midi.save(path)
    assert "polyphonic" in refused(tmp_path, capsys, "--from", str(path))
    abc = write(tmp_path, "two.abc", "X:1\nM:4/4\nK:C\nV:1\nCDEF|\nV:2\nEFGA|\n")
    assert "a second voice" in refused(tmp_path, capsys, "--from", str(abc))


def test_a_metre_or_mode_the_model_cannot_take_is_refused(tmp_path, capsys, tiny_prior_dir):
    opening_file = write(tmp_path, "opening.abc", OPENING)
    error = refused(tmp_path, capsys, "--from", str(opening_file), "--model", str(tiny_prior_dir))
    assert "the opening is in 6/8 dorian" in error and "knows only 4/4" in error


def test_a_tuned_policy_continues_only_its_own_metre_and_mode(prior):
    policy = load_prior("prior")
    policy.tuned_condition = MelodyCondition("4/4", "major")
    with pytest.raises(ConditionError, match="tuned for 4/4 major, not 6/8 dorian"):
        continue_melody(policy, Melody.from_abc(OPENING), ContinuationConfig(num_bars=4), np.random.default_rng(0),
                        name="my-policy")
    opening = Melody.from_abc("X:1\nM:4/4\nL:1/8\nK:D\nA2 | d2 f2 a2 f2 |]\n")
    melodies = continue_melody(policy, opening, ContinuationConfig(num_bars=2, num_continuations=2),
                               np.random.default_rng(0), name="my-policy")
    assert all(kept_opening(m, opening) and m.num_steps == 4 + 32 for m in melodies)


def test_best_of_without_a_reward_is_refused(tmp_path, capsys, prior):
    opening_file = write(tmp_path, "opening.abc", OPENING)
    assert "--best-of needs --reward" in refused(tmp_path, capsys, "--from", str(opening_file), "--best-of", "3")
    with pytest.raises(RLComposerError, match="needs --reward"):
        continue_melody(prior, Melody.from_abc(OPENING), ContinuationConfig(best_of=2), np.random.default_rng(0))


@pytest.fixture(scope="module")
def continuation_reward_dir(prior, tmp_path_factory):
    """A small reward model trained on continuations of OPENING (their shape: 6/8 A dorian with
    its pick-up), liking continuations that move in steps, saved as a reward-model directory."""
    from rlcomposer.music.theory import theory_reward
    from rlcomposer.preferences.labels import PairLabel
    from rlcomposer.preferences.reward_model import (
        RewardModelConfig,
        save_reward_model,
        train_reward_model,
    )

    drawn = continue_melody(prior, Melody.from_abc(OPENING), ContinuationConfig(num_bars=3, num_continuations=60),
                            np.random.default_rng(1))
    labels = [PairLabel(a, b, "a" if theory_reward(a) >= theory_reward(b) else "b", "me")
              for a, b in zip(drawn[0::2], drawn[1::2], strict=True)]
    config = RewardModelConfig(epochs=20, ensemble_size=3, head_hidden=8, reference_melodies=32, cv_folds=0,
                               min_comparisons=20)
    ensemble = train_reward_model(labels, [], config, prior, log=None)
    return save_reward_model(ensemble, tmp_path_factory.mktemp("continuation-reward") / "reward_model")


def test_a_reward_model_chooses_a_continuation_by_its_members_mean_less_twice_their_spread(
        tmp_path, continuation_reward_dir):
    """Under a reward model the kept continuation's recorded reward is the pessimistic one
    (members' mean - 2 x their standard deviation, the default); --reward-uncertainty 0 keeps the mean."""
    from rlcomposer.preferences.reward_model import load_reward_model

    ensemble = load_reward_model(continuation_reward_dir)
    opening_file = write(tmp_path, "opening.abc", OPENING)
    for flags, k in (([], 2.0), (["--reward-uncertainty", "0"], 0.0)):
        out = tmp_path / f"k{k:g}"
        assert main(["continue", "--from", str(opening_file), "--bars", "3", "--n", "3", "--out", str(out),
                     "--format", "json", "--best-of", "6", "--reward", str(continuation_reward_dir), "--quiet",
                     *flags]) == 0
        melodies = [Melody.load(out / f"continuation-{i:03d}.json") for i in range(3)]
        members = ensemble.member_scores(melodies)
        expected = members.mean(axis=0) - k * members.std(axis=0)
        assert [m.metadata["reward"] for m in melodies] == pytest.approx(expected, abs=1e-6)
        assert all(kept_opening(m, Melody.from_abc(OPENING)) for m in melodies)


def test_reward_uncertainty_needs_a_reward_model_and_a_sane_value(tmp_path, capsys):
    opening_file = write(tmp_path, "opening.abc", OPENING)
    theory = ["--best-of", "3", "--reward", "rlcomposer.music.theory:theory_reward"]
    assert "needs a reward model" in refused(tmp_path, capsys, "--from", str(opening_file), *theory,
                                             "--reward-uncertainty", "1")
    assert "--reward-uncertainty" in refused(tmp_path, capsys, "--from", str(opening_file), *theory,
                                             "--reward-uncertainty", "-1")
    assert "--reward-uncertainty" in refused(tmp_path, capsys, "--from", str(opening_file), *theory,
                                             "--reward-uncertainty", "nan")
    assert "is used with --best-of" in refused(tmp_path, capsys, "--from", str(opening_file),
                                               "--reward-uncertainty", "1")
