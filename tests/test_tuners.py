"""Tuners as peers: the quantile reward (vBoN), leave-one-out advantages (RLOO), best-of-N as a
tuner, policy + best-of-k, and one prior reaching every role of an experiment."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from rlcomposer.cli import main
from rlcomposer.errors import RLComposerError
from rlcomposer.experiments.loop import Experiment, ExperimentConfig
from rlcomposer.music.melody import Melody
from rlcomposer.music.note_list import note_list
from rlcomposer.prior.model import MelodyCondition, load_prior
from rlcomposer.prior.registry import PriorModel
from rlcomposer.rl.best_of_n_distillation import DistillationConfig
from rlcomposer.rl.environment import MelodyEnvConfig
from rlcomposer.rl.kl import best_of_n_for_kl, best_of_n_kl, policy_best_of_k_kl
from rlcomposer.rl.leave_one_out import leave_one_out_advantages
from rlcomposer.rl.quantile_reward import QuantileReward, fit_quantile_reward
from rlcomposer.rl.tuners import BestOfNTuner, make_tuner
from rlcomposer.rl.tuning import TuneConfig, tune_policy

ONE_BAR = MelodyEnvConfig(num_bars=1)


def count_onsets(melody: Melody) -> float:
    return float(len(melody.notes()))


def test_quantile_reward_is_the_rank_among_reference_scores():
    reward = QuantileReward(lambda m: 0.0, np.arange(20.0))
    levels = reward.quantiles(np.array([-5.0, 0.0, 0.5, 19.0, 99.0])) * 21
    # below all: ½; the smallest: 1; halfway to the next: 1.5; the largest: 20; above all: 20.5
    assert levels.tolist() == pytest.approx([0.5, 1.0, 1.5, 20.0, 20.5])
    tied = QuantileReward(lambda m: 0.0, np.array([0.0] * 10 + [1.0] * 10))
    assert (tied.quantiles(np.array([0.0, 1.0])) * 21).tolist() == pytest.approx([5.5, 15.5])
    with pytest.raises(RLComposerError, match="at least 16 reference samples"):
        QuantileReward(lambda m: 0.0, np.arange(15.0))


def test_fitted_quantile_reward_scores_prior_melodies_near_uniform():
    prior = load_prior()
    condition = MelodyCondition("4/4", "major", 16)
    reward = fit_quantile_reward(count_onsets, prior, condition, 256, torch.Generator().manual_seed(0))
    fresh = PriorModel(prior, "prior").sample(512, 16, np.random.default_rng(1), condition=condition)
    levels = np.exp(reward.score_batch(fresh))
    # fresh prior melodies are spread over (0, 1) as the reference was (F̂(r) of prior draws ~ uniform)
    assert 0.4 < levels.mean() < 0.6 and levels.min() > 0 and levels.max() < 1


def test_leave_one_out_advantages_by_hand():
    assert leave_one_out_advantages(np.array([1.0, 2.0, 3.0])).tolist() == [-1.5, 0.0, 1.5]
    assert leave_one_out_advantages(np.array([4.0])).tolist() == [0.0]


def test_kl_helpers():
    n = best_of_n_for_kl(3.0)
    assert best_of_n_kl(n) >= 3.0 > best_of_n_kl(n - 1) and n == 54
    assert policy_best_of_k_kl(1.25, 4) == pytest.approx(1.25 + math.log(4) - 0.75)


@pytest.mark.parametrize("algorithm", ["vbon-rloo", pytest.param("vbon", marks=pytest.mark.slow),
                                       pytest.param("rloo", marks=pytest.mark.slow)])
def test_new_algorithms_raise_the_reward_and_hold_a_policy(tmp_path, algorithm):
    config = TuneConfig(algorithm=algorithm, reward="tests:count_onsets", env=ONE_BAR, n_envs=32,
                        minibatch_episodes=8, total_timesteps=32 * 16 * 16, checkpoint_every=0,
                        learning_rate=3e-4, quantile_samples=256, kl_target=3.0)
    prior = load_prior()
    result = tune_policy(config, tmp_path / algorithm, count_onsets, progress=False, log=lambda _: None,
                         prior=prior)
    condition = config.env.condition
    rng = np.random.default_rng(0)
    tuned = PriorModel(result.policy, algorithm).sample(400, 16, rng, condition=condition)
    base = PriorModel(prior, "prior").sample(400, 16, rng, condition=condition)
    # more notes than the prior writes, and not collapsed: 3 nats is a lot for one bar of 16 steps,
    # but a quarter of the melodies or more stay distinct
    assert np.mean([count_onsets(m) for m in tuned]) > np.mean([count_onsets(m) for m in base]) + 0.3
    assert len({m.tokens.tobytes() for m in tuned}) > 100
    assert result.history and math.isfinite(result.history[-1]["kl_per_melody"])
    if algorithm.startswith("vbon"):
        assert result.metrics["quantile_reward"] == {"reference_samples": 256, "best_of": 54}
        assert result.history[0]["kl_beta"] == pytest.approx(1 / 53)


def test_bad_tuner_settings_are_one_line():
    with pytest.raises(RLComposerError, match="kl_target"):
        TuneConfig(kl_target=0)
    with pytest.raises(RLComposerError, match="kl_target"):
        TuneConfig(kl_target=float("nan"))
    with pytest.raises(RLComposerError, match="quantile_samples"):
        TuneConfig(algorithm="vbon", quantile_samples=8)
    with pytest.raises(RLComposerError, match="kl_target or quantile_best_of"):
        TuneConfig(algorithm="vbon", kl_target=None)
    with pytest.raises(RLComposerError, match="tuner must be one of"):
        make_tuner("magic", TuneConfig())
    with pytest.raises(RLComposerError, match="'magic' is not a tuner"):
        ExperimentConfig(tuners=["sequence", "magic"])
    with pytest.raises(RLComposerError, match="kl_target"):
        BestOfNTuner(kl_target=-1)


def test_tune_command_refuses_an_unknown_algorithm(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["tune", "--algorithm", "magic", "--out", "nowhere"])
    assert stopped.value.code == 2 and "invalid choice: 'magic'" in capsys.readouterr().err


def test_best_of_n_tuner_picks_n_from_its_own_kl_target(tmp_path):
    prior = load_prior()
    tuned = BestOfNTuner(kl_target=2.0).tune(prior, count_onsets, [], MelodyCondition("4/4", "major", 16),
                                             tmp_path, log=lambda _: None)
    assert tuned.model.n == best_of_n_for_kl(2.0) and tuned.kl_per_melody == pytest.approx(best_of_n_kl(tuned.model.n))
    melodies = tuned.model.sample(4, 16, np.random.default_rng(0), condition=MelodyCondition("4/4", "major", 16))
    assert all(m.metadata["best_of"] == tuned.model.n for m in melodies)


TINY = dict(pool_size=24, comparisons_per_round=24, evaluation_pairs=16, export_melodies=2,
            reward_model={"epochs": 5, "min_comparisons": 10},
            tune={"num_bars": 1, "n_envs": 8, "minibatch_episodes": 4, "total_timesteps": 256,
                  "checkpoint_every": 0})


class _CountingPrior(PriorModel):
    """The experiment's prior, counting the melodies it is asked for."""

    def __init__(self, prior):
        super().__init__(prior, "tiny prior")
        self.sampled = 0

    def sample(self, num_melodies, *args, **kwargs):
        self.sampled += num_melodies
        return super().sample(num_melodies, *args, **kwargs)


def test_a_custom_prior_reaches_every_role(tmp_path, tiny_prior_dir):
    from rlcomposer.checkpoints import read_model_dir
    from rlcomposer.preferences.reward_model import load_reward_model

    tiny = load_prior(tiny_prior_dir)
    prior = _CountingPrior(tiny)
    config = ExperimentConfig(name="custom", listener="lyrical", tuners=["sequence", "best-of-n"],
                              policy_best_of_k=4, **TINY)
    experiment = Experiment(config, tmp_path / "custom", log=lambda _: None, progress=False, prior=prior)
    (result,) = experiment.run()
    run = tmp_path / "custom" / "round-0"
    # PPO tuned the tiny prior (its shape), and the reward model's encoder came from it
    assert read_model_dir(run / "policy").config["model"]["hidden_size"] == tiny.config.hidden_size == 16
    assert load_reward_model(run / "reward_model", expected_prior=tiny_prior_dir).prior_hash
    # best-of-N at the policy's KL and the best-of-n tuner drew their candidates from it
    assert prior.sampled >= 24 + 16 + result.best_of_n * min(16, 65_536 // result.best_of_n)
    assert set(result.tuners) == {"sequence", "best-of-n", "sequence+best-of-4"}
    best = result.tuners["best-of-n"]
    assert best["kl"] == pytest.approx(best_of_n_kl(best_of_n_for_kl(3.0)))
    policy_k = result.tuners["sequence+best-of-4"]
    assert policy_k["win_rate"] is not None and math.isfinite(policy_k["kl"])
    report = (tmp_path / "custom" / "report.md").read_text()
    assert "## Tuners side by side" in report and "sequence+best-of-4" in report


def test_note_list_reads_a_melody():
    melody = Melody.from_notes([(67, 3.0, 1.0), (72, 4.0, 0.5)], num_steps=24)
    assert note_list(melody) == "r/3 G4/1 C5/0.5 r/1.5"


def test_policy_best_of_k_in_another_metre_is_refused_before_sampling(tmp_path, tiny_prior_dir, capsys):
    config = TuneConfig(prior=str(tiny_prior_dir), env=MelodyEnvConfig(num_bars=1, theory_motif=1.0),
                        n_envs=8, minibatch_episodes=4, total_timesteps=8 * 16 * 2, checkpoint_every=0)
    tune_policy(config, tmp_path / "policy", progress=False, log=lambda _: None)
    code = main(["generate", "--model", str(tmp_path / "policy"), "--best-of", "4", "--reward",
                 "rlcomposer.music.theory:theory_reward", "--metre", "6/8", "--n", "2",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "tuned for 4/4 major, not 6/8" in err[0]
    assert not (tmp_path / "out").exists()


def test_policy_best_of_k_says_how_far_from_the_prior_its_melodies_are(tmp_path, tiny_prior_dir, capsys):

    from rlcomposer.rl.kl import log_ratio_per_melody

    config = TuneConfig(prior=str(tiny_prior_dir), env=MelodyEnvConfig(num_bars=1, theory_motif=1.0),
                        n_envs=8, minibatch_episodes=4, total_timesteps=8 * 16 * 2, checkpoint_every=0)
    tune_policy(config, tmp_path / "policy", progress=False, log=lambda _: None)
    code = main(["generate", "--model", str(tmp_path / "policy"), "--best-of", "4", "--reward",
                 "rlcomposer.music.theory:theory_reward", "--n", "6", "--bars", "1", "--format", "json",
                 "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0 and "KL to the prior about" in out
    stated = float(out.split("KL to the prior about ")[1].split()[0])
    # the written melodies (in C, as sampled) under the policy and the prior it was tuned from
    melodies = [Melody.from_json(f.read_text()) for f in sorted((tmp_path / "out").glob("*.json"))]
    assert len(melodies) == 6 and all(m.metadata["best_of"] == 4 for m in melodies)
    tokens = torch.as_tensor(np.stack([m.tokens for m in melodies])).long()
    ratios = log_ratio_per_melody(load_prior(tmp_path / "policy"), load_prior(tiny_prior_dir), tokens,
                                  MelodyCondition("4/4", "major", 16))
    assert stated == pytest.approx(float(ratios.mean()) + best_of_n_kl(4), abs=0.006)


def test_policy_best_of_k_whose_prior_is_gone_still_writes_its_melodies(tmp_path, tiny_prior_dir, capsys):
    import shutil

    prior_copy = shutil.copytree(tiny_prior_dir, tmp_path / "prior-copy")
    config = TuneConfig(prior=str(prior_copy), env=MelodyEnvConfig(num_bars=1, theory_motif=1.0),
                        n_envs=8, minibatch_episodes=4, total_timesteps=8 * 16 * 2, checkpoint_every=0)
    tune_policy(config, tmp_path / "policy", progress=False, log=lambda _: None)
    shutil.rmtree(prior_copy)  # the prior it was tuned from was moved away
    code = main(["generate", "--model", str(tmp_path / "policy"), "--best-of", "2", "--reward",
                 "rlcomposer.music.theory:theory_reward", "--n", "2", "--bars", "1", "--format", "json",
                 "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0 and "the KL of its best-of-2 melodies is not stated" in out
    assert len(list((tmp_path / "out").glob("*.json"))) == 2 and "KL to the prior about" not in out


def test_tuned_melodies_from_policy_best_of_k_write_the_exports_and_the_next_pool(tmp_path, tiny_prior_dir):
    import json

    from rlcomposer.feedback.store import open_store

    prior = PriorModel(load_prior(tiny_prior_dir), "tiny prior")
    config = ExperimentConfig(name="cheap", listener="lyrical", tuners=["sequence"], rounds=2,
                              policy_best_of_k=3, tuned_melodies="policy-best-of-k", **TINY)
    db = f"sqlite:///{tmp_path / 'ratings.db'}"
    first, _ = Experiment(config, tmp_path / "cheap", db_url=db, log=lambda _: None, progress=False,
                          prior=prior).run()
    # the round's headline is the melodies it exports: the policy's best of 3, beside the policy alone
    row, policy = first.tuners["sequence+best-of-3"], first.tuners["sequence"]
    assert (first.kl_tuned, first.win_rate, first.best_of_n) == (row["kl"], row["win_rate"], row["best_of_n"])
    assert first.kl_tuned > policy["kl"] and policy["best_of_n"] is not None
    exported = [json.loads(f.read_text()) for f in sorted((tmp_path / "cheap" / "round-0" / "melodies").glob("*.json"))]
    assert len(exported) == 2 and all(m["metadata"]["best_of"] == 3 for m in exported)
    store = open_store(db)
    second = store.pool_melodies("cheap/round-1")  # the next round's pool: the best of 3 of the policy's
    assert len(second) > 12 and {m.model for m in second} == {"cheap/round-0/policy+best-of-3"}
    assert "the best of 3 of the tuned policy's melodies" in (tmp_path / "cheap" / "report.md").read_text()


def test_policy_best_of_k_as_tuned_melodies_needs_a_policy_and_a_k():
    with pytest.raises(RLComposerError, match="needs 'policy_best_of_k' of at least 2, got 0"):
        ExperimentConfig(policy_best_of_k=0)  # policy + best-of-8 writes the tuned melodies by default
    with pytest.raises(RLComposerError, match="needs a policy as the first tuner, not best-of-n"):
        ExperimentConfig(tuned_melodies="policy-best-of-k", policy_best_of_k=4, tuners=["best-of-n", "rloo"])
    with pytest.raises(RLComposerError, match="must be one of best-of-n, policy, policy-best-of-k, got 'best'"):
        ExperimentConfig(tuned_melodies="best")


def test_a_policy_off_its_kl_target_goes_back_to_the_last_one_within_it(tiny_prior_dir):
    from rlcomposer.rl.tuning import build_model
    from rlcomposer.rl.tuning_callbacks import KLPenaltyCallback, hold_kl_target

    prior = load_prior(tiny_prior_dir)
    config = TuneConfig(prior=str(tiny_prior_dir), env=MelodyEnvConfig(num_bars=1, theory_motif=1.0),
                        n_envs=8, minibatch_episodes=4, total_timesteps=256, checkpoint_every=0, kl_target=3.0)
    model = build_model(config, prior, None)
    kl_penalty = KLPenaltyCallback(prior, 0.1, 3.0)
    in_band = {name: value.clone() for name, value in model.policy.actor.state_dict().items()}
    kl_penalty.in_band = (128, 2.9, in_band)
    with torch.no_grad():  # the policy ran far from the prior at the end
        model.policy.actor.head.weight.add_(torch.randn_like(model.policy.actor.head.weight) * 20)
    record = hold_kl_target(model, prior, config, kl_penalty, log=lambda _: None)
    assert record["final_kl"] > 3.3 and record["restored_step"] == 128
    assert record["restored_kl"] == pytest.approx(0.0, abs=1e-4)  # the kept weights are the prior's here
    assert torch.equal(model.policy.actor.head.weight, in_band["head.weight"])


def test_best_of_n_distillation_learns_best_of_ns_taste_near_its_kl(tmp_path):
    config = TuneConfig(algorithm="bond", reward="tests:count_onsets", env=ONE_BAR, kl_target=2.0,
                        distill=DistillationConfig(targets=512, epochs=6, check_every=2))
    prior = load_prior()
    result = tune_policy(config, tmp_path / "bond", count_onsets, progress=False, log=lambda _: None,
                         prior=prior)
    condition = config.env.condition
    rng = np.random.default_rng(0)
    tuned = PriorModel(result.policy, "bond").sample(400, 16, rng, condition=condition)
    base = PriorModel(prior, "prior").sample(400, 16, rng, condition=condition)
    assert np.mean([count_onsets(m) for m in tuned]) > np.mean([count_onsets(m) for m in base]) + 0.3
    assert 0 < result.metrics["kl_per_melody"] <= 1.1 * best_of_n_kl(result.metrics["best_of"])
    assert len({note_list(m) for m in tuned}) > 100  # learnt a taste, not a handful of melodies
    assert load_prior(tmp_path / "bond").tuned_condition is not None  # `generate --model` samples it


@pytest.mark.slow
def test_iterated_distillation_moves_its_anchor_until_the_kl_target(tmp_path):
    config = TuneConfig(algorithm="bond", reward="tests:count_onsets", env=ONE_BAR, kl_target=1.5,
                        distill=DistillationConfig(targets=256, epochs=3, check_every=2, rounds=6, best_of=2))
    prior = load_prior()
    result = tune_policy(config, tmp_path / "ibond", count_onsets, progress=False, log=lambda _: None,
                         prior=prior)
    rounds = result.metrics["rounds"]
    assert result.metrics["best_of"] == 2 and 2 <= rounds <= 6  # one best-of-2 round is 0.31 nats
    # each round's fitting starts where the last one ended: the KL grows round by round
    starts = [h["kl_per_melody"] for h in result.history if h["epoch"] == (h["round"] - 1) * 3]
    assert len(starts) == rounds and all(b > a for a, b in zip(starts, starts[1:], strict=False))
    assert 0.3 < result.metrics["kl_per_melody"] <= 1.1 * 1.5
    rng = np.random.default_rng(0)
    condition = config.env.condition
    tuned = PriorModel(result.policy, "ibond").sample(400, 16, rng, condition=condition)
    base = PriorModel(prior, "prior").sample(400, 16, rng, condition=condition)
    assert np.mean([count_onsets(m) for m in tuned]) > np.mean([count_onsets(m) for m in base]) + 0.3


@pytest.mark.slow
def test_tune_bond_from_the_command_line_writes_a_policy_generate_samples(tmp_path, capsys):
    main(["tune", "--algorithm", "bond", "--reward", "tests.test_tuners:count_onsets", "--bars", "1",
          "--set", "distill_targets=32", "--set", "distill_epochs=1", "--out", str(tmp_path / "bond"), "--quiet"])
    assert "distilled from 32 targets" in capsys.readouterr().out
    main(["generate", "--model", str(tmp_path / "bond"), "--n", "2", "--bars", "1", "--out", str(tmp_path / "m"),
          "--format", "json", "--quiet"])
    assert len(list((tmp_path / "m").glob("*.json"))) == 2


def test_policies_followed_by_best_of_k_are_tuned_to_a_share_of_the_kl_target(tmp_path):
    config = ExperimentConfig(tuners=["rloo", "best-of-n"], tune={"kl_target": 3.0})
    experiment = Experiment(config, tmp_path / "run", log=lambda _: None, progress=False)
    rloo, best = experiment.tuners(0)
    assert rloo.config.kl_target == pytest.approx(1.2)  # best-of-8 from the policy moves the rest
    assert best.kl_target == pytest.approx(3.0) and best.tune(load_prior(), lambda m: 0.0, [], MelodyCondition(
        "4/4", "major", 64), tmp_path, lambda _: None).kl_per_melody == pytest.approx(best_of_n_kl(54))
    alone = ExperimentConfig(tuners=["rloo"], tune={"kl_target": 3.0}, tuned_melodies="policy")
    assert Experiment(alone, tmp_path / "alone", log=lambda _: None).tuners(0)[0].config.kl_target == 3.0


def test_a_kl_weighted_pick_keeps_policy_best_of_k_nearer_the_prior(tiny_prior_dir):
    """Picking by standardised reward minus c·log π/p: with a large c the chosen melodies are
    the candidates the policy moved least (their mean log π/p well below the plain pick's), and
    every chosen melody records its reward and log-ratio for the KL estimate."""
    from rlcomposer.rl.best_of_n import PolicyBestOfKModel

    prior = load_prior(tiny_prior_dir)
    policy = load_prior(tiny_prior_dir)
    with torch.no_grad():  # a policy that has moved: it favours the first pitches it can write
        policy.head.bias[:20] += torch.linspace(2.0, 0.0, 20)
    condition = MelodyCondition("4/4", "major", 16)

    def sample(weight):
        model = PolicyBestOfKModel(policy, prior, count_onsets, 8, kl_weight=weight)
        melodies = model.sample(64, 16, np.random.default_rng(0), condition=condition)
        return melodies, model.kl_estimate(melodies)

    plain, plain_kl = sample(0.0)
    near, near_kl = sample(50.0)
    assert all({"reward", "log_ratio", "best_of"} <= set(m.metadata) for m in plain + near)
    assert np.mean([m.metadata["log_ratio"] for m in near]) < np.mean([m.metadata["log_ratio"] for m in plain]) - 0.5
    assert near_kl < plain_kl
    with pytest.raises(RLComposerError, match="KL weight must be 0 or more, got -1"):
        PolicyBestOfKModel(policy, prior, count_onsets, 8, kl_weight=-1)


def test_pick_kl_weight_needs_a_policy_with_best_of(tmp_path, capsys):
    code = main(["generate", "--n", "2", "--pick-kl-weight", "0.5", "--out", str(tmp_path / "out")])
    assert code != 0 and not (tmp_path / "out").exists()
    assert "--pick-kl-weight is used with a tuned policy as --model and --best-of k --reward RM" in capsys.readouterr().err


def test_the_pick_weight_found_for_a_kl_target_meets_it(tiny_prior_dir):
    """pick_kl_weight_for_target: the weight at which policy + best-of-k's KL is the target (the
    KL falls as the weight grows); 0 when even the plain pick stays below the target."""
    from rlcomposer.rl.best_of_n import PolicyBestOfKModel, pick_kl_weight_for_target

    prior = load_prior(tiny_prior_dir)
    policy = load_prior(tiny_prior_dir)
    with torch.no_grad():
        policy.head.bias[:20] += torch.linspace(2.0, 0.0, 20)
    condition = MelodyCondition("4/4", "major", 16)

    def mean_token(melody):  # a reward with few ties
        return float(np.mean(melody.tokens))

    plain_kl = pick_kl_weight_for_target(policy, prior, mean_token, 8, 100.0, 16, np.random.default_rng(0),
                                         condition, num_melodies=256)
    assert plain_kl[0] == 0.0
    target = plain_kl[1] - 0.15
    weight, kl = pick_kl_weight_for_target(policy, prior, mean_token, 8, target, 16, np.random.default_rng(0),
                                           condition, num_melodies=256)
    assert 0 < weight < 8 and kl == pytest.approx(target, abs=0.05)
    chosen = PolicyBestOfKModel(policy, prior, mean_token, 8, kl_weight=weight).sample(
        1024, 16, np.random.default_rng(1), condition=condition)
    assert PolicyBestOfKModel(policy, prior, mean_token, 8).kl_estimate(chosen) == pytest.approx(target, abs=0.25)
    with pytest.raises(RLComposerError, match="'policy_pick_holds_kl' must be true or false, got 'yes'"):
        ExperimentConfig(policy_pick_holds_kl="yes")


def test_policy_best_of_k_holds_the_kl_target_through_its_pick_weight(tmp_path, tiny_prior_dir, capsys):
    """With ``policy_pick_holds_kl`` (the default) the round finds the pick weight that puts policy +
    best-of-k at the KL target and records it; without, the configured weight is used as given."""
    prior = PriorModel(load_prior(tiny_prior_dir), "tiny prior")
    tiny = {**TINY, "tune": {**TINY["tune"], "kl_target": 0.5}}
    results = {}
    for holds in (True, False):
        config = ExperimentConfig(name=f"held-{holds}", listener="lyrical", tuners=["sequence"], policy_best_of_k=4,
                                  policy_pick_holds_kl=holds, policy_pick_kl_weight=0.0, **tiny)
        (results[holds],) = Experiment(config, tmp_path / str(holds), log=lambda _: None, progress=False,
                                       prior=prior).run()
    held, plain = results[True], results[False]
    assert plain.tuned_pick_kl_weight == 0.0 and plain.kl_tuned > 0.5 * 1.1  # best-of-4 alone overshoots
    assert held.tuned_pick_kl_weight > 0 and held.kl_tuned < plain.kl_tuned
    assert held.kl_tuned == pytest.approx(0.5, abs=0.2)

    # generate picks from the round's policy as the round did: the weight it found is recorded beside it
    round_dir = tmp_path / "True" / "round-0"

    def generate(out: str, k: str = "4", *extra: str) -> int:
        return main(["generate", "--model", str(round_dir / "policy"), "--bars", "1", "--n", "4", "--best-of", k,
                     "--reward", str(round_dir / "reward_model"), "--format", "json", "--json",
                     "--out", str(tmp_path / out), *extra])

    assert generate("recorded") == 0
    assert json.loads(capsys.readouterr().out)["pick_kl_weight"] == pytest.approx(held.tuned_pick_kl_weight)
    assert generate("given", "4", "--pick-kl-weight", "0") == 0
    assert json.loads(capsys.readouterr().out)["pick_kl_weight"] == 0.0
    assert generate("other-k", "2") == 0
    assert json.loads(capsys.readouterr().out)["pick_kl_weight"] == pytest.approx(0.25)  # no record for k 2
    (round_dir / "policy" / "pick.json").write_text("{not json")
    assert generate("broken") != 0
    assert "pick.json' is not a pick record" in capsys.readouterr().err
    assert not (tmp_path / "broken").exists()


def test_rater_without_best_of_is_still_refused(tmp_path, capsys):
    code = main(["generate", "--n", "2", "--rater", "ada", "--out", str(tmp_path / "out")])
    assert code != 0 and not (tmp_path / "out").exists()
    assert "--rater is used with --best-of N --reward RM" in capsys.readouterr().err
