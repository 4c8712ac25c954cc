"""rlcomposer tune: a run writes a usable policy, logs, plots and checkpoints; bad input is refused."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from rlcomposer.checkpoints import read_model_dir
from rlcomposer.cli import main
from rlcomposer.config import ConfigError, load_config
from rlcomposer.errors import RLComposerError
from rlcomposer.music.theory import theory_reward
from rlcomposer.prior.generation import GenerationConfig, sample_melodies
from rlcomposer.prior.model import load_prior
from rlcomposer.prior.registry import resolve_model
from rlcomposer.rl.best_of_n import BestOfNModel
from rlcomposer.rl.dpo import DPOConfig
from rlcomposer.rl.environment import MelodyEnvConfig
from rlcomposer.rl.sequence_ppo import SequencePPO
from rlcomposer.rl.tuning import TuneConfig, build_model, tune
from rlcomposer.rl.tuning_callbacks import KLPenaltyCallback, TuningLogCallback
from rlcomposer.validation import ValidationError

SMALL = dict(env=MelodyEnvConfig(num_bars=1, theory_motif=1.0, theory_in_key=1.0), n_envs=8,
             minibatch_episodes=4, total_timesteps=8 * 16 * 3, checkpoint_every=8 * 16)


def test_tuning_writes_policy_logs_plots_and_checkpoints(tmp_path, tiny_prior_dir):
    config = TuneConfig(prior=str(tiny_prior_dir), **SMALL)
    metrics = tune(config, tmp_path / "run", progress=False, log=lambda _: None)
    run = tmp_path / "run"
    files = read_model_dir(run)
    assert files.kind == "policy" and files.config["training"]["env"]["theory_motif"] == 1.0
    assert files.config["env"]["num_bars"] == 1
    for plot in ("reward.png", "kl.png"):
        assert (run / "plots" / plot).read_bytes()[:4] == b"\x89PNG"
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert len(history) == 3 and history[0]["kl_per_melody"] == pytest.approx(0.0, abs=1e-6)
    assert {"reward_theory_motif", "reward_kl", "kl_beta", "reward_total", "style_overlap",
            "longest_repeated_pitch_run", "one_pitch_repeated"} <= set(history[-1])
    assert any((run / "tb").rglob("events.out.tfevents.*"))
    assert sorted(p.name for p in (run / "checkpoints").iterdir())[-1] == "ppo_384_steps.zip"
    assert metrics["timesteps"] == 384
    # the policy samples like a prior
    model = resolve_model(str(run))
    melodies = sample_melodies(model, GenerationConfig(num_melodies=3, num_bars=1))
    assert len(melodies) == 3 and load_prior(run).config.vocab_size == 39


def test_resume_continues_from_a_checkpoint(tmp_path, tiny_prior_dir, monkeypatch):
    config = TuneConfig(prior=str(tiny_prior_dir), **SMALL)
    tune(config, tmp_path / "run", progress=False, log=lambda _: None)
    checkpoint = tmp_path / "run" / "checkpoints" / "final.zip"
    saved = SequencePPO.load(checkpoint, device="cpu").policy.state_dict()
    started_from = {}
    original_learn = SequencePPO.learn

    def spy_learn(self, total_timesteps, **kwargs):
        started_from["step"] = self.num_timesteps
        started_from["weights"] = {k: v.clone() for k, v in self.policy.state_dict().items()}
        return original_learn(self, total_timesteps, **kwargs)

    monkeypatch.setattr(SequencePPO, "learn", spy_learn)
    longer = TuneConfig(prior=str(tiny_prior_dir), **{**SMALL, "total_timesteps": 8 * 16 * 5})
    metrics = tune(longer, tmp_path / "run", resume=checkpoint, progress=False, log=lambda _: None)
    # training went on from the checkpoint: its step count and its (tuned, not the prior's) weights
    assert started_from["step"] == 8 * 16 * 3
    assert all(torch.equal(started_from["weights"][k], v) for k, v in saved.items())
    prior_weights = load_prior(tiny_prior_dir).state_dict()
    assert any(not torch.equal(saved[f"actor.{k}"], v) for k, v in prior_weights.items())
    assert metrics["timesteps"] == 8 * 16 * 5
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert [h["timesteps"] for h in history] == [8 * 16 * i for i in range(1, 6)]


class _RewardSpy(BaseCallback):
    """Copies the rollout's rewards when its rollout ends (placed before or after the KL callback)."""

    def __init__(self):
        super().__init__()
        self.rewards = self.log_probs = self.actions = None

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        buffer = self.model.rollout_buffer
        self.rewards, self.log_probs = buffer.rewards.copy(), buffer.log_probs.copy()
        self.actions = buffer.actions.copy()


def test_kl_penalty_callback_subtracts_beta_log_policy_ratio(tiny_prior_dir):
    beta = 0.5
    config = TuneConfig(prior=str(tiny_prior_dir), **{**SMALL, "total_timesteps": 8 * 16 * 2})
    prior = load_prior(tiny_prior_dir)
    model = build_model(config, prior, reward_fn=None)
    before, after = _RewardSpy(), _RewardSpy()
    kl_penalty = KLPenaltyCallback(prior, beta)
    log = TuningLogCallback(prior, kl_penalty=kl_penalty)
    # two rollouts: in the second the policy has moved from the prior (the spies keep the last)
    model.learn(8 * 16 * 2, callback=CallbackList([before, kl_penalty, after, log]))
    episodes = torch.as_tensor(before.actions[..., 0], dtype=torch.long).T.reshape(-1, 16)  # [8 melodies, 16]
    prior_log = prior.log_likelihood(episodes).detach().reshape(8, -1).T.numpy()  # [16 steps, 8 envs]
    # every step: the environment's reward + beta * (log p_prior - log pi)
    np.testing.assert_allclose(after.rewards, before.rewards - beta * (before.log_probs - prior_log), atol=1e-5)
    assert np.abs(after.rewards - before.rewards).max() > 1e-3
    # the history holds the policy's KL term: -beta * sum_t (log pi - log p_prior) per melody
    expected = -beta * float((before.log_probs - prior_log).sum()) / 8
    assert log.history[-1]["reward_kl"] == pytest.approx(expected, rel=1e-5)
    assert log.history[-1]["kl_beta"] == beta


def test_exact_kl_control_pays_each_states_kl_and_weights_the_loss_by_beta(tiny_prior_dir):
    """``kl_control: exact``: the step into state t pays β·KL(π(·|s_t)‖prior(·|s_t)), so a melody
    pays β times its exact KL; PPO's entropy slot then weighs that KL by β over the advantages' spread."""
    from rlcomposer.rl.kl import kl_to_prior_per_step
    from rlcomposer.rl.tuning_callbacks import ExactKLLossCallback

    beta = 0.5
    config = TuneConfig(prior=str(tiny_prior_dir), **{**SMALL, "total_timesteps": 8 * 16 * 2, "ent_coef": 0.0})
    prior = load_prior(tiny_prior_dir)
    model = build_model(config, prior, reward_fn=None)
    before, after = _RewardSpy(), _RewardSpy()
    kl_penalty = KLPenaltyCallback(prior, beta, exact=True)
    kl_loss = ExactKLLossCallback(kl_penalty)
    actors = []

    class _ActorSpy(_RewardSpy):
        def _on_rollout_end(self) -> None:
            actors.append({k: v.clone() for k, v in self.model.policy.actor.state_dict().items()})

    model.learn(8 * 16 * 2, callback=CallbackList([_ActorSpy(), before, kl_penalty, after, kl_loss]))
    episodes = torch.as_tensor(before.actions[..., 0], dtype=torch.long).T.reshape(-1, 16)
    actor = load_prior(tiny_prior_dir)
    actor.load_state_dict(actors[-1])
    step_kl = kl_to_prior_per_step(actor, prior, episodes).detach().numpy()  # [8 melodies, 16]
    assert step_kl.sum(axis=1).min() > 1e-4  # the second rollout's policy has moved
    paid = (before.rewards - after.rewards).T  # [8 envs, 16 steps]
    np.testing.assert_allclose(paid.sum(axis=1), beta * step_kl.sum(axis=1), rtol=1e-4)
    np.testing.assert_allclose(paid[:, :-1], beta * (step_kl[:, 1:] + np.eye(16)[0, :-1] * step_kl[:, :1]),
                               rtol=1e-4, atol=1e-7)
    spread = float(np.std(model.rollout_buffer.advantages))
    assert model.ent_coef == pytest.approx(beta / spread, rel=1e-6)


def test_kl_control_must_be_sampled_or_exact():
    with pytest.raises(RLComposerError, match="kl_control must be one of sampled, exact, got 'exactly'"):
        TuneConfig(kl_control="exactly")
    with pytest.raises(RLComposerError, match="set ent_coef to 0"):
        TuneConfig(kl_control="exact", ent_coef=0.01)


def test_kl_target_moves_beta_toward_the_target(tiny_prior_dir):
    prior = load_prior(tiny_prior_dir)
    config = TuneConfig(prior=str(tiny_prior_dir), **{**SMALL, "total_timesteps": 8 * 16 * 3})
    # the first rollout is the prior itself (KL 0: below any target, so beta falls 10%); after it
    # the KL is far above a tiny target (beta rises 10% a rollout) and far below a huge one
    for target, expected in ((1e-6, 0.1 * 0.9 * 1.1 * 1.1), (1e3, 0.1 * 0.9 ** 3)):
        model = build_model(config, prior, reward_fn=None)
        kl_penalty = KLPenaltyCallback(prior, 0.1, kl_target=target, gain=0.5)
        model.learn(8 * 16 * 3, callback=kl_penalty)
        assert kl_penalty.beta == pytest.approx(expected, rel=1e-6)


def test_bad_tuning_input(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'theory_jazz'"):
        load_config(TuneConfig, None, {"theory_jazz": 1.0})
    with pytest.raises(RLComposerError, match="nothing to tune"):
        tune(TuneConfig(total_timesteps=64), tmp_path / "x", progress=False)
    with pytest.raises(RLComposerError, match="algorithm"):
        TuneConfig(algorithm="a2c")
    with pytest.raises(RLComposerError, match=r"kl_target must be above 0 \(or null\), got 0"):
        TuneConfig(kl_target=0)
    with pytest.raises(RLComposerError, match="kl_target"):
        load_config(TuneConfig, None, {"kl_target": -1.0})


@pytest.mark.parametrize("bad, message", [
    ({"total_timesteps": 0}, r"total_timesteps must be from 1 to 1000000000 \(or null\), got 0"),
    ({"total_melodies": 0}, "total_melodies must be from 1 to 1000000000, got 0"),
    ({"minibatch_episodes": 0}, "minibatch_episodes must be from 1 to 65536, got 0"),
    ({"seed": -1}, "seed must be from 0 to 4294967295, got -1"),
    ({"kl_gain": 0.0}, "kl_gain must be above 0, got 0.0"),
    ({"reward_uncertainty": -0.5}, "reward_uncertainty must be 0 or more \\(or null\\), got -0.5"),
])
def test_a_tune_setting_out_of_range_is_refused_with_its_range(bad, message):
    with pytest.raises(ValidationError, match=message):
        TuneConfig(**bad)


@pytest.mark.parametrize("bad, message", [
    ({"beta": 0}, "dpo beta must be above 0, got 0"),
    ({"epochs": 0}, "dpo epochs must be from 1 to 100000, got 0"),
    ({"held_out_fraction": 0.95}, r"dpo held_out_fraction must be in \(0, 0.9\), got 0.95"),
    ({"learning_rate": -1e-4}, r"dpo learning_rate must be in \(0, 1\], got -0.0001"),
])
def test_a_dpo_setting_out_of_range_is_refused_with_its_range(bad, message):
    with pytest.raises(ValidationError, match=message):
        DPOConfig(**bad)


def test_best_of_n_picks_higher_reward_and_knows_its_kl(tiny_prior_dir):
    base = resolve_model(str(tiny_prior_dir))
    rng_a, rng_b = np.random.default_rng(0), np.random.default_rng(0)
    plain = base.sample(50, 16, rng_a)
    best = BestOfNModel(base, theory_reward, 8).sample(50, 16, rng_b)
    assert np.mean([theory_reward(m) for m in best]) > np.mean([theory_reward(m) for m in plain])
    assert BestOfNModel(base, theory_reward, 1).kl_to_base_per_melody == 0.0
    assert BestOfNModel(base, theory_reward, 8).kl_to_base_per_melody == pytest.approx(np.log(8) - 7 / 8)


def test_cli_tune_with_a_reward_from_the_working_directory(tmp_path, tiny_prior_dir, monkeypatch, capsys):
    (tmp_path / "my_taste.py").write_text(
        "def high_notes(melody):\n    notes = melody.notes()\n"
        "    return sum(p for p, _, _ in notes) / max(len(notes), 1) / 84\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["tune", "--reward", "my_taste:high_notes", "--prior", str(tiny_prior_dir),
                 "--set", "num_bars=1", "--set", "n_envs=4", "--set", "minibatch_episodes=2",
                 "--total-timesteps", "128", "--out", str(tmp_path / "run"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "reward_reward" in result["final"]
    assert main(["tune", "--reward", "my_taste:nope", "--out", str(tmp_path / "x")]) == 2
    assert "has no 'nope'" in capsys.readouterr().err


def test_reward_uncertainty_makes_the_environment_pay_the_pessimistic_reward(tmp_path, tiny_prior_dir, monkeypatch):
    class TwoMembers:
        """An 'ensemble' whose members disagree by a known amount on every melody."""

        def member_scores(self, melodies):
            return np.array([[1.0] * len(melodies), [3.0] * len(melodies)])

        def score_batch(self, melodies):
            return self.member_scores(melodies).mean(axis=0)

        def __call__(self, melody):
            return 2.0

    config = TuneConfig(prior=str(tiny_prior_dir), reward="two-members", reward_uncertainty=0.5,
                        **{**SMALL, "total_timesteps": 8 * 16})
    metrics = tune(config, tmp_path / "run", reward_fn=TwoMembers(), progress=False, log=lambda _: None)
    # mean 2, spread 1: the environment paid 2 - 0.5 * 1 per melody
    assert metrics["final"]["reward_reward"] == pytest.approx(1.5)

    # not given: a reward model (an ensemble) pays mean - 2 x spread, and the run's config says so
    said = []
    config = replace(config, reward_uncertainty=None)
    metrics = tune(config, tmp_path / "default", reward_fn=TwoMembers(), progress=False, log=said.append)
    assert metrics["final"]["reward_reward"] == pytest.approx(0.0)
    assert json.loads((tmp_path / "default" / "tune_config.json").read_text())["reward_uncertainty"] == 2.0
    assert any("mean - 2 x its members' spread" in line for line in said)

    # a plain function has no spread: paid as it is, no error
    def constant(melody):
        return 2.0

    metrics = tune(replace(config, reward="constant"), tmp_path / "function", reward_fn=constant,
                   progress=False, log=lambda _: None)
    assert metrics["final"]["reward_reward"] == pytest.approx(2.0)
    assert json.loads((tmp_path / "function" / "tune_config.json").read_text())["reward_uncertainty"] == 0.0


def test_training_is_counted_in_melodies_so_a_longer_melody_gets_as_many_updates():
    four_bars = TuneConfig()
    sixteen_bars = load_config(TuneConfig, None, {"num_bars": 16})
    assert four_bars.training_steps == 16_384 * 64
    assert sixteen_bars.training_steps == 4 * four_bars.training_steps  # the same 16,384 melodies
    assert load_config(TuneConfig, None, {"num_bars": 16, "total_timesteps": 1000}).training_steps == 1000
