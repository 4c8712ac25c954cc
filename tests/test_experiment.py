"""experiment run / resume: the whole loop on a tiny budget, with a simulated listener and with people."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlcomposer.cli import main
from rlcomposer.config import ConfigError
from rlcomposer.errors import RLComposerError
from rlcomposer.experiments.loop import (
    Experiment,
    ExperimentConfig,
    ExperimentWaiting,
    best_of_n_for_kl,
)
from rlcomposer.validation import ValidationError

TINY = dict(pool_size=24, comparisons_per_round=24, evaluation_pairs=16, export_melodies=2,
            reward_model={"epochs": 5, "min_comparisons": 10},
            tune={"num_bars": 1, "n_envs": 8, "minibatch_episodes": 4, "total_timesteps": 256,
                  "checkpoint_every": 0})


def test_simulated_loop_writes_report_plots_models_and_melodies(tmp_path):
    config = ExperimentConfig(name="tiny", listener="lyrical", **TINY)
    results = Experiment(config, tmp_path / "tiny", log=lambda _: None, progress=False).run()
    run = tmp_path / "tiny"
    assert len(results) == 1 and results[0].comparisons == 24
    report = (run / "report.md").read_text()
    # the report's table carries this round's figures, as measured
    assert "| 0 | 24 | " in report and f"{100 * results[0].win_rate:.1f}%" in report
    assert f"{results[0].kl_tuned:.2f}" in report and "Notes not in key" in report
    for path in ("plots/proxy_vs_gold.png", "plots/win_rate.png", "round-0/policy/plots/kl.png",
                 "round-0/policy/model.pt", "round-0/reward_model/model.pt", "config.yaml",
                 "round-0/melodies/tuned-000.mid", "round-0/melodies/tuned-001.wav", "feedback.sqlite"):
        assert (run / path).exists(), path
    assert json.loads((run / "state.json").read_text())["round"] == 1


def test_people_mode_waits_then_resumes_after_ratings_through_the_store(tmp_path):
    from rlcomposer.feedback.store import new_client_id, open_store

    config = ExperimentConfig(name="people", listener="people", **TINY)
    experiment = Experiment(config, tmp_path / "people", log=lambda _: None, progress=False)
    with pytest.raises(ExperimentWaiting, match="0 of 24 comparisons"):
        experiment.run()
    store = open_store(experiment.db_url)
    rater = store.sign_in("ada")
    ids = store.melody_ids([config.tag(0)])
    rng = np.random.default_rng(0)
    for index in range(24):
        a, b = rng.choice(ids, size=2, replace=False)
        store.submit_comparison(new_client_id(), rater.id, int(a), int(b), "a" if index % 3 else "b",
                                shown_left="a")
    resumed = Experiment(config, tmp_path / "people", experiment.db_url, log=lambda _: None, progress=False)
    results = resumed.run()
    assert results[0].comparisons == 24 and results[0].win_rate is None  # people: no gold listener
    assert 0 < len(store.melody_ids([config.tag(1)])) <= 24  # the tuned policy's melodies (duplicates kept once)
    assert (tmp_path / "people" / "report.md").exists()


@pytest.mark.parametrize("key", ["rounds", "pool_size", "comparisons_per_round", "evaluation_pairs"])
def test_an_experiment_count_of_0_is_refused_with_its_range(key):
    with pytest.raises(ValidationError, match=f"experiment key {key} must be from 1 to [0-9]+, got 0"):
        ExperimentConfig(**{key: 0})


def test_bad_experiment_configs(tmp_path):
    with pytest.raises(RLComposerError, match="strategy"):
        ExperimentConfig(strategy="clever")
    with pytest.raises(ConfigError, match="unknown key 'lr'"):
        ExperimentConfig(tune={"lr": 1})
    with pytest.raises(RLComposerError, match="set by the loop"):
        ExperimentConfig(tune={"reward": "x:y"})
    (tmp_path / "bad.yaml").write_text("name: x\nlistenr: lyrical\n")
    assert main(["experiment", "run", str(tmp_path / "bad.yaml"), "--runs-dir", str(tmp_path)]) == 2
    (tmp_path / "nolistener.yaml").write_text("name: y\nlistener: nowhere:nothing\n")
    assert main(["experiment", "run", str(tmp_path / "nolistener.yaml"), "--runs-dir", str(tmp_path)]) == 2


def test_best_of_n_for_kl_matches_the_closed_form():
    assert best_of_n_for_kl(0.0) == 1
    n = best_of_n_for_kl(2.0)
    assert np.log(n) - (n - 1) / n >= 2.0 > np.log(n - 1) - (n - 2) / (n - 1)


class _PriorAsPolicyTuner:
    """A tuner that "tunes" nothing: the prior it is handed is the round's policy."""

    name = "untuned"

    def __init__(self):
        self.calls = []

    def tune(self, prior, reward, labels, shape, out_dir, log, gold_fn=None):
        from rlcomposer.prior.registry import PriorModel
        from rlcomposer.rl.tuners import TunedModel

        self.calls.append((len(labels), gold_fn, prior, reward, shape))
        return TunedModel(self.name, PriorModel(prior, "untuned"), policy=prior)


class _CountingTrainer:
    def __init__(self, config):
        from rlcomposer.experiments.loop import EnsembleRewardTrainer

        self.inner, self.seen = EnsembleRewardTrainer(config), []

    def train(self, comparisons, stars, out_dir, log):
        self.seen.append(len(comparisons))
        return self.inner.train(comparisons, stars, out_dir, log)


def test_roles_are_passed_in(tmp_path):
    from rlcomposer.preferences.listeners import ListenerNoise, SimulatedListener

    def likes_high_notes(melody):
        notes = melody.notes()
        return sum(p for p, _, _ in notes) / max(len(notes), 1)

    config = ExperimentConfig(name="roles", tuned_melodies="policy", **TINY)
    listener = SimulatedListener(likes_high_notes, "high", ListenerNoise(), rng=np.random.default_rng(0))
    tuner, trainer = _PriorAsPolicyTuner(), _CountingTrainer(config.reward_model_config())
    experiment = Experiment(config, tmp_path / "roles", log=lambda _: None, progress=False,
                            listener=listener, tuners=[tuner], reward_trainer=trainer)
    from rlcomposer.prior.registry import resolve_model

    listener.calibrate(resolve_model("prior").sample(200, 16, np.random.default_rng(1)))
    (result,) = experiment.run()
    assert trainer.seen == [24] and tuner.calls[0][0] == 24
    assert tuner.calls[0][1] is likes_high_notes  # the listener's own taste is the gold score
    assert tuner.calls[0][2] is experiment.prior_model.prior  # the experiment's prior network
    assert tuner.calls[0][4].num_steps == 16  # the melodies' shape: 1 bar of 4/4
    # the "tuned" policy is the prior: no distance from it, and best-of-N at that KL is N = 1
    assert result.kl_tuned == pytest.approx(0.0, abs=1e-5) and result.best_of_n == 1
    from rlcomposer.feedback.store import open_store

    raters = {r.name for r in open_store(experiment.db_url).raters()}
    assert raters == {"sim:high"}


def test_corrupt_state_is_one_line_naming_the_file(tmp_path, capsys):
    run = tmp_path / "broken"
    run.mkdir()
    (run / "config.yaml").write_text("name: broken\n")
    (run / "state.json").write_text("{not json")
    assert main(["experiment", "resume", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "state.json: not a readable experiment state" in err
