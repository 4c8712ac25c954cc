"""experiment run with personal: true: melodies made for each rater of one study."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlcomposer.cli import main
from rlcomposer.errors import RLComposerError
from rlcomposer.experiments.loop import (
    Experiment,
    ExperimentConfig,
    ExperimentWaiting,
    best_of_n_for_kl,
)
from rlcomposer.prior.model import load_prior

TASTES = '''
def high(melody):
    notes = melody.notes()
    return sum(p for p, _, _ in notes) / max(len(notes), 1)


def low(melody):
    return -high(melody)
'''

SMALL = dict(pool_size=60, comparisons_per_round=60, evaluation_pairs=24, export_melodies=6,
             reward_model={"epochs": 5, "min_comparisons": 10, "ensemble_size": 3, "cv_folds": 0},
             tune={"num_bars": 1, "kl_target": 2.0})


def _mean_pitch(folder) -> float:
    """Mean pitch of the exported melodies (JSON) in ``folder``: the tastes' own score."""
    pitches = [note[0] for path in sorted(folder.glob("*.json"))
               for note in json.loads(path.read_text())["notes"]]
    assert pitches, folder
    return float(np.mean(pitches))


@pytest.mark.slow  # about 30 s on a shared core
def test_each_rater_gets_melodies_of_their_own_taste(tmp_path, tiny_prior_dir):
    (tmp_path / "tastes.py").write_text(TASTES)
    raters = [f"{tmp_path / 'tastes.py'}:high", f"{tmp_path / 'tastes.py'}:low"]
    config = ExperimentConfig(name="two", personal=True, raters=raters, **SMALL)
    run = tmp_path / "two"
    (result,) = Experiment(config, run, log=lambda _: None, progress=False,
                           prior=load_prior(tiny_prior_dir)).run()
    assert set(result.raters) == {"sim:high", "sim:low"}
    assert all(row["answers"] == 60 for row in result.raters.values())
    for path in ("round-0/reward_model/population/model.pt", "round-0/reward_model/model.pt",
                 "round-0/melodies/tuned-000.mid", "round-0/raters/sim-high/melodies/tuned-000.wav",
                 "round-0/raters/sim-low/melodies/tuned-005.musicxml"):
        assert (run / path).exists(), path
    # what a user would notice: the melodies made for the one who likes high notes are higher
    # than those made for the one who likes low notes (each listener's own score: mean pitch)
    assert _mean_pitch(run / "round-0/raters/sim-high/melodies") > _mean_pitch(run / "round-0/raters/sim-low/melodies")
    for row in result.raters.values():
        assert row["vs_prior"] > 0.5 and row["best_of"] == best_of_n_for_kl(2.0)  # N for a 2-nat KL target
    report = (run / "report.md").read_text()
    table = [line for line in report.splitlines() if line.startswith("| sim:")]
    assert len(table) == 2 and "Made for each rater" in report
    row = result.raters["sim:high"]
    assert f"| sim:high | 60 | {100 * row['vs_prior']:.1f}% | {100 * row['vs_population']:.1f}% |" in report
    assert f"`{row['examples'][0]}`" in report
    # the state resumes: the round's result reads back
    state = json.loads((run / "state.json").read_text())
    assert state["round"] == 1 and state["results"][0]["raters"]["sim:low"]["folder"] == "raters/sim-low"


def _people_run(tmp_path, prior):
    """A people run whose first rater (ada) has answered every comparison the round asks for."""
    from rlcomposer.feedback.store import new_client_id, open_store

    config = ExperimentConfig(name="folk", listener="people", personal=True, **SMALL)
    experiment = Experiment(config, tmp_path / "folk", log=lambda _: None, progress=False, prior=prior)
    with pytest.raises(ExperimentWaiting, match="from at least 2 raters"):
        experiment.run()
    store = open_store(experiment.db_url)
    ada = store.sign_in("ada")
    ids = store.melody_ids([config.tag(0)])
    for index in range(60):
        store.submit_comparison(new_client_id(), ada.id, ids[index % 10], ids[10 + index % 10], "a",
                                shown_left="a")
    return config, experiment.db_url, store, ids


def test_people_wait_until_two_raters_have_answered(tmp_path, tiny_prior_dir):
    prior = load_prior(tiny_prior_dir)
    config, db_url, _, _ = _people_run(tmp_path, prior)
    with pytest.raises(ExperimentWaiting, match="60 of 60 comparisons .from at least 2 raters"):
        Experiment(config, tmp_path / "folk", db_url, log=lambda _: None, progress=False, prior=prior).run()


@pytest.mark.slow  # about 25 s on a shared core
def test_people_get_melodies_each_and_rate_them_in_the_app(tmp_path, tiny_prior_dir):
    from rlcomposer.feedback.store import new_client_id

    prior = load_prior(tiny_prior_dir)
    config, db_url, store, ids = _people_run(tmp_path, prior)
    bo = store.sign_in("bo")
    for index in range(10):
        store.submit_comparison(new_client_id(), bo.id, ids[20 + index], ids[index], "b", shown_left="a")
    (result,) = Experiment(config, tmp_path / "folk", db_url, log=lambda _: None, progress=False,
                           prior=prior).run()
    assert {name: row["answers"] for name, row in result.raters.items()} == {"ada": 60, "bo": 10}
    assert all(row["vs_prior"] is None and row["vs_population"] is None for row in result.raters.values())
    assert (tmp_path / "folk" / "round-0" / "raters" / "bo" / "melodies" / "tuned-000.mid").exists()
    report = (tmp_path / "folk" / "report.md").read_text()
    assert "| bo | 10 | n/a | n/a |" in report and "rate them in the app" in report
    assert store.melody_ids([config.tag(1)])  # the population's best-of-N, for people to judge in the app


@pytest.mark.parametrize("keys, message", [
    ({"personal": True, "raters": ["lyrical"]}, "'personal: true' needs at least 2 'raters', got 1"),
    ({"raters": ["lyrical", "rhythmic"]}, "'raters' is only read with 'personal: true'"),
    ({"personal": True, "raters": ["lyrical", "nowhere:nothing"]}, "experiment key 'raters': "),
    ({"personal": True, "raters": ["lyrical", "panel:99"]}, "experiment key 'raters': listener 'panel:99'"),
    ({"personal": True, "raters": ["lyrical", "lyrical"]}, "names a rater twice"),
    ({"personal": True, "raters": ["lyrical", "rhythmic"], "tuners": ["rloo", "best-of-n"]},
     "may name only best-of-n with 'personal: true', got rloo"),
    ({"personal": True, "listener": "people", "raters": ["lyrical", "rhythmic"]}, "must be empty with"),
    ({"personal": True, "raters": ["lyrical", "rhythmic"], "strategy": "active"}, "must be random with"),
])
def test_bad_personal_configs_are_one_line(keys, message):
    with pytest.raises(RLComposerError, match=message) as caught:
        ExperimentConfig(**keys)
    assert "\n" not in str(caught.value)


def test_bad_personal_config_exits_2_before_any_work(tmp_path, capsys):
    (tmp_path / "one.yaml").write_text("name: one\npersonal: true\nraters: [lyrical]\n")
    assert main(["experiment", "run", str(tmp_path / "one.yaml"), "--runs-dir", str(tmp_path / "runs")]) == 2
    error = capsys.readouterr().err.strip()
    assert "needs at least 2 'raters'" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "runs" / "one").exists()


def test_the_example_config_is_valid():
    from pathlib import Path

    from rlcomposer.experiments.loop import load_experiment_config

    config = load_experiment_config(Path(__file__).resolve().parents[1] / "experiments/configs/personal.yaml")
    assert config.personal and len(config.raters) == 3
