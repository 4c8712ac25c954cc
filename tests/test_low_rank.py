"""tune --set low_rank=R: the actor trains as low-rank updates of its frozen weights, and the policy
it saves is a plain prior that samples what the trained actor did."""

from __future__ import annotations

import pytest
import torch

from rlcomposer.prior.model import MelodyCondition, MelodyPrior, load_prior
from rlcomposer.rl.environment import MelodyEnvConfig
from rlcomposer.rl.low_rank import add_low_rank_updates, merged_state_dict
from rlcomposer.rl.tuning import TuneConfig, tune

SMALL = dict(env=MelodyEnvConfig(num_bars=1, theory_motif=1.0, theory_in_key=1.0), n_envs=8,
             minibatch_episodes=4, total_timesteps=8 * 16 * 3, checkpoint_every=0, learning_rate=0.05)


def test_a_low_rank_network_starts_as_the_network_and_trains_only_its_updates(tiny_prior_dir):
    prior = load_prior(tiny_prior_dir)
    tokens = torch.as_tensor(prior.sample(4, 16, torch.Generator().manual_seed(0)))
    condition = MelodyCondition().with_length(16)
    before = prior.sequence_logits(tokens, condition)
    whole = sum(p.numel() for p in prior.parameters())
    trained = add_low_rank_updates(prior, 2)
    assert torch.allclose(prior.sequence_logits(tokens, condition), before)
    assert 0 < trained < whole / 2
    assert all(not p.requires_grad for name, p in prior.named_parameters() if not name.endswith(("up", "down")))
    # folded back: plain names, the same numbers
    with torch.no_grad():
        for name, p in prior.named_parameters():
            if name.endswith(".up"):
                p.normal_()
    plain = MelodyPrior(prior.config)
    plain.load_state_dict(merged_state_dict(prior))
    plain.eval()
    prior.eval()
    assert torch.allclose(plain.sequence_logits(tokens, condition), prior.sequence_logits(tokens, condition), atol=1e-5)


def test_tuning_with_low_rank_saves_a_policy_that_moved_and_loads_as_a_prior(tmp_path, tiny_prior_dir):
    prior = load_prior(tiny_prior_dir)
    tune(TuneConfig(prior=str(tiny_prior_dir), low_rank=2, **SMALL), tmp_path / "run", progress=False,
         log=lambda _: None)
    policy = load_prior(tmp_path / "run")
    assert set(policy.state_dict()) == set(prior.state_dict())
    moved = [name for name, value in policy.state_dict().items()
             if not torch.equal(value, prior.state_dict()[name])]
    assert moved and all(name.endswith("weight") or "weight_" in name for name in moved)  # biases stay


def test_a_negative_rank_is_refused():
    with pytest.raises(Exception, match="low_rank"):
        TuneConfig(low_rank=-1)
