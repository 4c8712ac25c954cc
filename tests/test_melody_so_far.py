"""A policy that reads what its melody has done so far: the counts, and a policy that samples,
trains, saves and loads like any prior."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlcomposer.config import ConfigError
from rlcomposer.music.tokens import HOLD, REST, pitch_token
from rlcomposer.prior.generation import GenerationConfig, sample_melodies
from rlcomposer.prior.melody_so_far import (
    ACTION_FEATURE_NAMES,
    FEATURE_NAMES,
    MelodySoFar,
    action_features,
)
from rlcomposer.prior.model import MelodyCondition, MelodyPrior, PriorConfig, load_prior
from rlcomposer.prior.registry import resolve_model
from rlcomposer.rl.environment import MelodyEnvConfig
from rlcomposer.rl.tuning import TuneConfig, build_model, tune

BOS = 39


def note(pitch: int, steps: int) -> list[int]:
    return [pitch_token(pitch)] + [HOLD] * (steps - 1)


def features_after(tokens: list[int], bar_steps: int = 16, pickup: int = 0) -> dict[str, float]:
    """The features for the step after ``tokens``, by name."""
    tracker = MelodySoFar(torch.tensor([bar_steps]), torch.tensor([pickup]), torch.tensor([64]))
    previous = torch.tensor([[BOS] + tokens])
    features, _ = tracker.scan(previous, None)
    return dict(zip(FEATURE_NAMES, features[0, -1].tolist(), strict=True))


def test_the_counts_follow_the_melody():
    # bar 1: C4 E4 G4 (quarter, quarter, half); bar 2: the same rhythm, C5 struck twice; a rest
    bar_1 = note(60, 4) + note(64, 4) + note(67, 8)
    bar_2 = note(72, 4) + note(72, 4) + note(65, 4) + [REST] + [HOLD] * 3
    seen = features_after(bar_1 + bar_2)
    assert seen["notes"] == pytest.approx(6 / 16)
    assert seen["distinct_pitches"] == pytest.approx(5 / 12)
    assert seen["highest"] == pytest.approx(1.0) and seen["lowest"] == pytest.approx(0.0)
    assert seen["climax_twice"] == 1.0 and seen["climax_once"] == 0.0
    assert seen["climax_at"] == pytest.approx(16 / 64)
    assert seen["distinct_lengths"] == pytest.approx(2 / 4)  # quarters and a half
    assert seen["rest_share"] == pytest.approx(4 / 32)
    assert seen["sounding"] == 0.0 and seen["held"] == pytest.approx(4 / 16)
    assert seen["bars_done"] == pytest.approx(2 / 4)
    # bar 2's onsets (0, 4, 8) are not bar 1's (0, 4, 8, and none at 12 either): both are 0, 4, 8
    assert seen["rhythm_repeats"] == pytest.approx(1 / 2)
    assert seen["ascending"] == pytest.approx(3 / 4) and seen["last_interval"] == pytest.approx(-7 / 12)
    # a third bar that so far follows bar 1's onsets, and one that does not
    assert features_after(bar_1 + bar_2 + note(60, 4) + note(62, 1))["bar_follows_earlier"] == 1.0
    assert features_after(bar_1 + bar_2 + note(60, 2) + note(62, 1))["bar_follows_earlier"] == 0.0


def test_each_possible_next_token_is_described_from_where_the_melody_stands():
    tracker = MelodySoFar(torch.tensor([16]), torch.tensor([0]), torch.tensor([64]))
    tokens = note(60, 4) + note(64, 4)  # C4, E4: the next token follows E4, the highest so far
    features, _ = tracker.scan(torch.tensor([[BOS] + tokens]), None)
    table = action_features(features[0, -1], 39)

    def of(token: int) -> dict[str, float]:
        return dict(zip(ACTION_FEATURE_NAMES, table[token].tolist(), strict=True))

    assert of(pitch_token(67))["step"] == pytest.approx(3 / 12) and of(pitch_token(67))["new_climax"] == 1.0
    assert of(pitch_token(67))["leap"] == 0.0 and of(pitch_token(69))["leap"] == 1.0
    assert of(pitch_token(64))["repeat"] == 1.0 and of(pitch_token(64))["climax_again"] == 1.0
    assert of(pitch_token(55))["step"] == pytest.approx(-9 / 12) and of(pitch_token(55))["new_lowest"] == 1.0
    assert of(pitch_token(62))["new_climax"] == 0.0 and of(pitch_token(62))["new_lowest"] == 0.0
    assert of(REST)["rest"] == 1.0 and sum(of(REST).values()) == 1.0
    assert not any(of(HOLD).values())  # holding on: the zero of every feature


def test_step_by_step_gives_the_same_numbers_as_a_whole_melody():
    rng = np.random.default_rng(0)
    tokens = torch.as_tensor(rng.integers(0, 39, size=(5, 48)))
    tracker = MelodySoFar(torch.full((5,), 12), torch.tensor([0, 3, 6, 0, 9]), torch.full((5,), 48))
    previous = torch.cat([torch.full((5, 1), BOS), tokens[:, :-1]], dim=1)
    whole, _ = tracker.scan(previous, None)
    state, steps = None, []
    for t in range(48):
        features, state = tracker.scan(previous[:, t:t + 1], state)
        steps.append(features)
    assert torch.equal(torch.cat(steps, dim=1), whole)


@pytest.fixture(scope="module")
def conditioned_prior():
    torch.manual_seed(0)
    return MelodyPrior(PriorConfig(embedding_dim=8, hidden_size=16, metres=("4/4", "6/8"),
                                   modes=("major",), pickups=True)).eval()


def with_so_far(prior: MelodyPrior, actions: bool = False) -> MelodyPrior:
    config = PriorConfig(**{**prior.config.__dict__, "melody_so_far": True, "so_far_actions": actions})
    policy = MelodyPrior(config)
    missing, unexpected = policy.load_state_dict(prior.state_dict(), strict=False)
    assert not unexpected and all(name.startswith("so_far_head.") for name in missing)
    return policy.eval()


@pytest.mark.parametrize("actions", [False, True])
def test_a_new_melody_so_far_policy_is_its_prior(conditioned_prior, actions):
    policy = with_so_far(conditioned_prior, actions)
    condition = MelodyCondition("6/8", "major", 24)
    tokens = torch.randint(0, 39, (3, 24))
    assert torch.allclose(policy.sequence_logits(tokens, condition),
                          conditioned_prior.sequence_logits(tokens, condition), atol=1e-6)
    # sampling carries both states step by step: the same draws as the prior
    policy.tuned_condition = conditioned_prior.tuned_condition = MelodyCondition("6/8", "major")
    draws = [model.sample(4, 24, torch.Generator().manual_seed(1), condition=condition)
             for model in (policy, conditioned_prior)]
    conditioned_prior.tuned_condition = None
    assert np.array_equal(draws[0], draws[1])


def test_melody_so_far_needs_a_conditioned_prior():
    with pytest.raises(ConfigError, match="melody_so_far"):
        PriorConfig(melody_so_far=True)


def test_sequence_evaluation_equals_per_transition_for_a_melody_so_far_policy(tmp_path, metre_prior_dir):
    config = TuneConfig(prior=str(metre_prior_dir), env=MelodyEnvConfig(num_bars=1, metre="6/8", theory_motif=1.0,
                                                                         theory_in_key=1.0),
                        n_envs=8, minibatch_episodes=4, total_timesteps=8 * 12 * 2, melody_so_far=True,
                        algorithm="sequence", checkpoint_every=0)
    model = build_model(config, load_prior(metre_prior_dir), None)
    model.learn(8 * 12)  # one update: the new layer is no longer zero
    assert any(p.abs().sum() > 0 for p in model.policy.actor.so_far_head[2].parameters())
    model.collect_rollouts(model.env, model._init_callback(None), model.rollout_buffer, model.n_steps)
    policy = model.policy
    for batch in model.rollout_buffer.get(48):
        values, log_prob, _ = policy.evaluate_actions(batch.observations, batch.actions)
        policy.sequence_evaluation = False
        values_1, log_prob_1, _ = policy.evaluate_actions(batch.observations, batch.actions)
        policy.sequence_evaluation = True
        assert torch.allclose(log_prob, log_prob_1, atol=1e-5)
        assert torch.allclose(values, values_1, atol=1e-5)
        assert torch.allclose(log_prob, batch.old_log_prob, atol=1e-5)  # the rollout's, with the carried state


@pytest.mark.parametrize("actions", [False, True])
def test_a_tuned_melody_so_far_policy_saves_loads_and_generates(tmp_path, metre_prior_dir, actions):
    config = TuneConfig(prior=str(metre_prior_dir), env=MelodyEnvConfig(num_bars=2, metre="3/4", theory_motif=1.0),
                        n_envs=8, minibatch_episodes=4, total_timesteps=8 * 24 * 2, melody_so_far=True,
                        so_far_actions=actions, so_far_only=actions, checkpoint_every=0)
    tune(config, tmp_path / "run", progress=False, log=lambda _: None)
    policy = load_prior(tmp_path / "run")
    assert policy.config.melody_so_far and any(p.abs().sum() > 0 for p in policy.so_far_head[2].parameters())
    assert policy.config.so_far_actions == actions
    if actions:  # only the new layer was tuned: every weight of the prior is as it was
        prior = load_prior(metre_prior_dir).state_dict()
        assert all(torch.equal(value, prior[name]) for name, value in policy.state_dict().items()
                   if not name.startswith("so_far_head."))
    melodies = sample_melodies(resolve_model(str(tmp_path / "run")), GenerationConfig(num_melodies=3, num_bars=2))
    assert len(melodies) == 3 and all(m.metre.name == "3/4" and len(m.tokens) == 24 for m in melodies)
