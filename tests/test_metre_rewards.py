"""Melodies everywhere: a 6/8 and a 3/4 melody (with a pick-up, in another key) keep their metre,
key and pick-up from the store through the labels, the reward model, its descriptors and best-of-N,
and score there as they score directly; the refusals of what does not fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rlcomposer.feedback.simulated_raters import simulate_ratings
from rlcomposer.feedback.storage import FeedbackError
from rlcomposer.feedback.store import new_client_id, open_store
from rlcomposer.music.keys import Key
from rlcomposer.music.melody import Melody, MelodyError
from rlcomposer.preferences.descriptors import describe, standardise
from rlcomposer.preferences.listeners import ListenerError, ListenerNoise, SimulatedListener
from rlcomposer.preferences.metre_panel import metre_member
from rlcomposer.preferences.reward_functions import score_melodies
from rlcomposer.preferences.reward_model import (
    PairLabel,
    RewardModelConfig,
    RewardModelError,
    StarLabel,
    load_reward_model,
    load_training_data,
    save_reward_model,
    train_reward_model,
)
from rlcomposer.preferences.training import reference_melodies
from rlcomposer.prior.model import MelodyCondition, load_prior
from rlcomposer.rl.best_of_n import BestOfNModel

FAST = RewardModelConfig(epochs=30, ensemble_size=3, head_hidden=16, reference_melodies=64, cv_folds=0,
                         prior="unused")
SHAPES = {  # metre: (steps, pick-up, key)
    "6/8": (96, 2, Key("D", "major")),
    "3/4": (96, 4, Key("F", "major")),
}


@pytest.fixture(scope="module")
def prior():
    return load_prior("prior")


def pool_of(prior, metre: str, count: int, seed: int) -> list[Melody]:
    """Prior melodies of ``metre`` with the shape's pick-up (sampled a bar longer, cut before the
    pick-up, as the reward model's reference melodies are), moved to its key."""
    steps, pickup, key = SHAPES[metre]
    shape = Melody(np.ones(steps, dtype=int), metre=metre, pickup_steps=pickup)
    melodies = []
    for melody in reference_melodies(prior, [shape], count * 2, torch.Generator().manual_seed(seed)):
        try:
            melodies.append(melody.in_key(key))
        except MelodyError:  # no octave fits the range: leave it out
            continue
    return melodies[:count]


def fresh(melody: Melody) -> Melody:
    """The same melody made anew from its tokens, metre, key and pick-up (scored directly)."""
    return Melody(np.array(melody.tokens), metre=melody.metre.name, key=Key(melody.key.tonic, melody.key.mode),
                  pickup_steps=melody.pickup_steps)


@pytest.fixture(scope="module", params=sorted(SHAPES))
def trained(request, prior, tmp_path_factory):
    """A pool of one metre in a store, rated by a metre-hearing panel member, a reward model trained
    on the labels read back, saved and loaded."""
    metre = request.param
    folder = tmp_path_factory.mktemp(metre.replace("/", "-"))
    melodies = pool_of(prior, metre, 80, seed=3)
    store = open_store(f"sqlite:///{folder / 'ratings.sqlite'}")
    ids = store.add_melodies(melodies, "pool", model="prior").ids
    listener = SimulatedListener(metre_member(25), "panel:25", ListenerNoise(), rng=np.random.default_rng(0))
    listener.calibrate(melodies)
    simulate_ratings(store, listener, pairs=120, stars=10, tag="pool", rng=np.random.default_rng(1))
    data = load_training_data(store, tag="pool")
    ensemble = train_reward_model(data.comparisons, data.stars, FAST, prior, log=None)
    loaded = load_reward_model(save_reward_model(ensemble, folder / "reward_model"))
    return {"metre": metre, "melodies": dict(zip(ids, melodies, strict=True)), "data": data,
            "ensemble": ensemble, "loaded": loaded, "listener": listener, "store": store}


def test_labels_carry_the_melodies_metre_key_and_pickup(trained):
    melodies, data = trained["melodies"], trained["data"]
    assert len(data.comparisons) == 120 and len(data.stars) == 10
    for label in data.comparisons:
        for melody, melody_id in ((label.melody_a, label.melody_a_id), (label.melody_b, label.melody_b_id)):
            assert melody == melodies[melody_id]  # tokens, metre, key and pick-up
            assert melody.pickup_steps == SHAPES[trained["metre"]][1]
        assert np.array_equal(label.tokens_a, label.melody_a.tokens)
    for star in data.stars:
        assert star.melody == melodies[star.melody_id]


def test_the_reward_model_records_its_shape_and_scores_labels_as_melodies_scored_directly(trained):
    metre = trained["metre"]
    steps, pickup, _ = SHAPES[metre]
    ensemble, loaded, data = trained["ensemble"], trained["loaded"], trained["data"]
    assert ensemble.shapes == loaded.shapes == ((metre, steps, pickup),)
    assert metre in loaded.trained_on() and "pick-up" in loaded.trained_on()
    through_labels = [label.melody_a for label in data.comparisons] + [label.melody_b for label in data.comparisons]
    direct = [fresh(m) for m in through_labels]
    scores = loaded.score_batch(through_labels)
    assert np.allclose(scores, loaded.score_batch(direct), atol=1e-6)
    assert np.allclose(scores, ensemble.score_batch(direct), atol=1e-5)  # saved and loaded: the same model
    assert np.allclose(scores, [loaded(m) for m in direct[:5]] + list(scores[5:]), atol=1e-5)
    assert np.allclose(score_melodies(loaded, direct), scores, atol=1e-6)


def test_the_descriptors_use_the_melodys_own_metre_key_and_pickup(trained):
    loaded, data = trained["loaded"], trained["data"]
    melodies = [label.melody_a for label in data.comparisons[:30]]
    inputs = loaded.inputs(melodies).numpy()
    expected = standardise(describe([fresh(m) for m in melodies]), loaded.input_mean.numpy(),
                           loaded.input_std.numpy())
    assert np.allclose(inputs, expected, atol=1e-5)
    # read as bare tokens (4/4 in C from a downbeat) the same melodies describe differently
    assert not np.allclose(describe(melodies), describe([np.array(m.tokens) for m in melodies]))
    # the reference the inputs are standardised on is of the same shape: its means are the pool's, roughly
    assert np.all(np.abs(inputs.mean(axis=0)) < 2.5)


class FixedModel:
    """A model that hands out given melodies in order (the candidates of best-of-N)."""

    name = "fixed"

    def __init__(self, melodies):
        self.melodies = list(melodies)

    def sample(self, num_melodies, num_steps, rng, temperature=1.0, top_k=None, condition=None):
        assert condition is not None and condition.metre == self.melodies[0].metre
        chosen, self.melodies = self.melodies[:num_melodies], self.melodies[num_melodies:]
        return [fresh(m) for m in chosen]


def test_best_of_n_keeps_the_melodies_and_picks_by_their_direct_scores(trained, prior):
    loaded = trained["loaded"]
    metre = trained["metre"]
    steps = SHAPES[metre][0]
    candidates = pool_of(prior, metre, 24, seed=11)
    best = BestOfNModel(FixedModel(candidates), loaded, 4, "reward model").sample(
        6, steps, np.random.default_rng(0), condition=MelodyCondition(metre, "major", steps))
    direct = loaded.score_batch([fresh(m) for m in candidates]).reshape(6, 4)
    for row, melody in enumerate(best):
        column = int(np.argmax(direct[row]))
        assert melody == candidates[row * 4 + column]  # metre, key and pick-up kept
        assert melody.metadata["reward"] == pytest.approx(direct[row, column], abs=1e-6)
        assert loaded(melody) == pytest.approx(direct[row, column], abs=1e-6)


# ------------------------------------------------------------------ refusals
def one_line(error) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


def test_a_reward_model_refuses_shapes_it_was_not_trained_on(trained, prior):
    loaded = trained["loaded"]
    metre = trained["metre"]
    steps, pickup, key = SHAPES[metre]
    melody = next(iter(trained["melodies"].values()))
    others = {
        "another metre": Melody(np.array(melody.tokens), metre="4/4" if metre != "4/4" else "3/4"),
        "another length": Melody(np.array(melody.tokens[:-12]), metre=metre, key=key, pickup_steps=pickup),
        "another pick-up": Melody(np.array(melody.tokens), metre=metre, key=key),
        "a bare token array (4/4)": np.array(melody.tokens),
    }
    for what, other in others.items():
        with pytest.raises(RewardModelError, match="trained on") as error:
            loaded.score_batch([melody, other])
        text = one_line(error)
        assert f"of {metre} ({steps} steps) with a pick-up of {pickup} steps" in text, what
        assert "reward_model" in text  # names the loaded model
    with pytest.raises(RewardModelError):
        BestOfNModel(FixedModel([others["another length"]] * 2), loaded, 2).sample(
            1, steps - 12, np.random.default_rng(0), condition=MelodyCondition(metre, "major", steps - 12))


def test_a_model_trained_on_a_mixture_says_so_and_accepts_each_shape(prior):
    six, three = pool_of(prior, "6/8", 30, seed=5), pool_of(prior, "3/4", 30, seed=6)
    listener = SimulatedListener(metre_member(27), "panel:27", ListenerNoise(), rng=np.random.default_rng(0))
    listener.calibrate(six + three)
    rng = np.random.default_rng(2)
    labels = []
    for pool in (six, three):
        for _ in range(30):
            i, j = rng.choice(len(pool), 2, replace=False)
            labels.append(PairLabel(pool[i], pool[j], listener.compare(pool[i], pool[j])))
    ensemble = train_reward_model(labels, [StarLabel(six[0], 4)], FAST, prior, log=None)
    assert len(ensemble.shapes) == 2 and "a mixture of 2 shapes" in ensemble.trained_on()
    assert np.all(np.isfinite(ensemble.score_batch(six[:3] + three[:3])))
    with pytest.raises(RewardModelError, match="a mixture of 2 shapes") as error:
        ensemble.score_batch([Melody(np.array(six[0].tokens), metre="6/8")])  # no pick-up
    one_line(error)


def test_a_comparison_of_different_metres_or_lengths_is_refused(prior, tmp_path):
    six, three = pool_of(prior, "6/8", 2, seed=7), pool_of(prior, "3/4", 2, seed=8)
    for a, b in ((six[0], three[0]), (six[0], Melody(np.array(six[1].tokens[:-12]), metre="6/8"))):
        with pytest.raises(RewardModelError, match="one metre and one length") as error:
            PairLabel(a, b, "a")
        one_line(error)
        listener = SimulatedListener(metre_member(25), "panel:25", spread=1.0)
        with pytest.raises(ListenerError, match="one metre and one length"):
            listener.compare(a, b)
    # the store writes nothing
    store = open_store(f"sqlite:///{tmp_path / 'r.sqlite'}")
    ids = store.add_melodies([six[0], three[0], six[1]], "t", model="m").ids
    rater = store.sign_in("Ann")
    with pytest.raises(FeedbackError, match="differ in metre or length") as error:
        store.submit_comparison(new_client_id(), rater.id, ids[0], ids[1], "a", "a")
    assert "nothing stored" in one_line(error)
    assert store.comparisons(None) == []
    store.submit_comparison(new_client_id(), rater.id, ids[0], ids[2], "b", "a")  # one metre and length: fine
    assert len(store.comparisons(None)) == 1
    # a pick-up survives the store
    assert store.get_melody(ids[0]).melody == six[0] and six[0].pickup_steps == 2


def test_an_old_reward_model_loads_as_a_4_4_only_model(tmp_path):
    from test_listeners import prior_like_melodies

    melodies = prior_like_melodies(60, seed=3)  # 4/4 in C
    rng = np.random.default_rng(0)
    labels = [PairLabel(melodies[i].tokens, melodies[i + 30].tokens, "a" if rng.random() < 0.6 else "b")
              for i in range(30)]
    tiny = load_prior("prior")
    ensemble = train_reward_model(labels, [], FAST, tiny, log=None)
    assert ensemble.shapes == (("4/4", 64, 0),)
    out = save_reward_model(ensemble, tmp_path / "old")
    config = json.loads((out / "config.json").read_text())
    del config["shapes"]  # as saved before the shapes were recorded
    (out / "config.json").write_text(json.dumps(config))
    old = load_reward_model(out)
    assert old.shapes is None and "read as 4/4" in old.trained_on()
    assert np.allclose(old.score_batch(melodies[:5]), ensemble.score_batch(melodies[:5]), atol=1e-6)
    assert np.all(np.isfinite(old.score_batch([melodies[0].tokens[:32]])))  # any length of 4/4
    with pytest.raises(RewardModelError, match="retrain") as error:
        old.score_batch([Melody(np.array(melodies[0].tokens[:48]), metre="6/8")])
    one_line(error)
