"""Which learner on the reward model's descriptors ranks a listener's taste best from 300 noisy answers.

For each listener of the panel's choosing half (``--listeners``, default members 0-10 even, as
``reward_calibration.py``), ``--labels`` noisy comparisons of random pairs from ``--pool`` prior
melodies (the :class:`~rlcomposer.preferences.listeners.ListenerNoise` defaults) train four
learners on the same standardised descriptors (:mod:`rlcomposer.preferences.descriptors`,
z-scored on 512 other prior melodies):

* ``mlp``: the reward model as ``reward train`` trains it (:class:`RewardModelConfig` defaults);
* ``linear``: Bradley-Terry logistic regression on the descriptors, L2 penalty;
* ``quadratic``: the same on the descriptors and their squares (a band is a square);
* ``kernel``: a Gaussian-process preference model, r = K alpha with an RBF kernel over the melodies
  answered about, MAP with the penalty alpha' K alpha / 2 (lengthscale and penalty together).

Each penalty (and the kernel's lengthscale) is chosen by 5-fold cross-validated log-loss on the
listener's own answers, never on the test pairs. The figure is accuracy against the listener's
*noiseless* preference on ``--test-pairs`` pairs of fresh prior melodies (pairs inside the tie band
left out), as ``reward_calibration.py`` measures it.

    python experiments/reward_learners.py [--listeners panel:0,panel:2,...] [--labels 300] [--seed 0]

Measured (seed 0, 2 minutes): mean over the six 0.756 (mlp), 0.754 (linear), 0.760 (quadratic),
0.758 (kernel): every learner within half a point, so the descriptors and the answers set the
accuracy, not the model on them (experiments/README.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reward_calibration import DEFAULT_LISTENERS, calibrated_listener, noiseless_truth, noisy_pairs  # noqa: E402

from rlcomposer.preferences.choices import CHOICE_SCORE  # noqa: E402
from rlcomposer.preferences.descriptors import describe, reference_statistics, standardise  # noqa: E402
from rlcomposer.preferences.reward_model import PairLabel, RewardModelConfig, train_reward_model  # noqa: E402
from rlcomposer.prior.model import load_prior  # noqa: E402
from rlcomposer.prior.registry import PriorModel  # noqa: E402

LEARNERS = ("mlp", "linear", "quadratic", "kernel")
PENALTIES = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
KERNEL_PENALTIES = (0.3, 1.0, 3.0, 10.0)
LENGTHSCALES = (0.5, 1.0, 2.0)
"""Kernel lengthscales, in units of the square root of the number of descriptors."""


def log_loss(margins: np.ndarray, targets: np.ndarray) -> float:
    return float(torch.nn.functional.binary_cross_entropy_with_logits(
        torch.as_tensor(margins), torch.as_tensor(targets), reduction="sum"))


def fit_linear(differences: np.ndarray, targets: np.ndarray, penalty: float) -> np.ndarray:
    """MAP weights of P(A beats B) = sigmoid((phi(A) - phi(B)) . w) under an L2 penalty."""
    x, y = torch.as_tensor(differences), torch.as_tensor(targets)
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w, y, reduction="sum") + 0.5 * penalty * w @ w
        loss.backward()
        return loss

    optimiser.step(closure)
    return w.detach().numpy()


def fit_kernel(kernel: np.ndarray, a: np.ndarray, b: np.ndarray, targets: np.ndarray, penalty: float) -> np.ndarray:
    """MAP alpha of r = K alpha with P(A beats B) = sigmoid(r(A) - r(B)) and penalty alpha' K alpha / 2."""
    k, y = torch.as_tensor(kernel), torch.as_tensor(targets)
    alpha = torch.zeros(k.shape[0], dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([alpha], max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        r = k @ alpha
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(r[a] - r[b], y, reduction="sum")
                + 0.5 * penalty * alpha @ (k @ alpha))
        loss.backward()
        return loss

    optimiser.step(closure)
    return alpha.detach().numpy()


def rbf(x: np.ndarray, z: np.ndarray, lengthscale: float) -> np.ndarray:
    squared = (x * x).sum(1)[:, None] + (z * z).sum(1)[None] - 2 * x @ z.T
    return np.exp(-np.maximum(squared, 0.0) / (2 * lengthscale ** 2))


def cross_validated(fit_and_score, n: int, folds: int = 5) -> float:
    """Summed held-out log-loss of ``fit_and_score(train_index, test_index)`` over ``folds`` folds."""
    order = np.random.default_rng(0).permutation(n)
    return sum(fit_and_score(np.setdiff1d(order, order[f::folds]), order[f::folds]) for f in range(folds))


def noiseless_accuracy(predicted: np.ndarray, delta: np.ndarray, decided: np.ndarray) -> float:
    """Share of decided test pairs whose order the scores ``predicted`` (pairs side by side) get right."""
    margin = predicted[0::2] - predicted[1::2]
    return float(np.mean((margin[decided] > 0) == (delta[decided] > 0)))


def linear_scores(f_pool: np.ndarray, f_test: np.ndarray, a: np.ndarray, b: np.ndarray,
                  y: np.ndarray) -> tuple[np.ndarray, float]:
    """Test scores of Bradley-Terry logistic regression on features, its penalty chosen by 5-fold CV."""
    def loss(penalty: float) -> float:
        def held_out(train: np.ndarray, held: np.ndarray) -> float:
            w = fit_linear(f_pool[a[train]] - f_pool[b[train]], y[train], penalty)
            return log_loss((f_pool[a[held]] - f_pool[b[held]]) @ w, y[held])
        return cross_validated(held_out, len(y))

    penalty = min(PENALTIES, key=loss)
    return f_test @ fit_linear(f_pool[a] - f_pool[b], y, penalty), penalty


def kernel_scores(x_pool: np.ndarray, x_test: np.ndarray, a: np.ndarray, b: np.ndarray,
                  y: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Test scores of the GP preference model, its lengthscale and penalty chosen by 5-fold CV."""
    used = np.unique(np.concatenate([a, b]))
    position = {melody: k for k, melody in enumerate(used)}
    ia, ib = np.array([position[i] for i in a]), np.array([position[i] for i in b])
    root = np.sqrt(x_pool.shape[1])

    def loss(kernel: np.ndarray, penalty: float) -> float:
        def held_out(train: np.ndarray, held: np.ndarray) -> float:
            r = kernel @ fit_kernel(kernel, ia[train], ib[train], y[train], penalty)
            return log_loss(r[ia[held]] - r[ib[held]], y[held])
        return cross_validated(held_out, len(y))

    kernels = {scale: rbf(x_pool[used], x_pool[used], scale * root) for scale in LENGTHSCALES}
    _, scale, penalty = min((loss(kernels[s], p), s, p) for s in LENGTHSCALES for p in KERNEL_PENALTIES)
    alpha = fit_kernel(kernels[scale], ia, ib, y, penalty)
    return rbf(x_test, x_pool[used], scale * root) @ alpha, scale, penalty


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", default=DEFAULT_LISTENERS, help="panel:K of the choosing half, or built-in names")
    parser.add_argument("--labels", type=int, default=300, help="noisy comparisons per listener")
    parser.add_argument("--pool", type=int, default=1000, help="prior melodies the pairs are drawn from")
    parser.add_argument("--test-pairs", type=int, default=1000, help="pairs of fresh prior melodies")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.monotonic()
    prior = load_prior("prior")
    sampler = PriorModel(prior, "prior")
    rng = np.random.default_rng(args.seed)
    pool = sampler.sample(args.pool, 64, rng)
    test = sampler.sample(2 * args.test_pairs, 64, rng)
    mean, std = reference_statistics(describe(sampler.sample(512, 64, np.random.default_rng(args.seed + 7))))
    x_pool, x_test = standardise(describe(pool), mean, std), standardise(describe(test), mean, std)
    squares = (np.concatenate([x_pool, x_pool ** 2], 1), np.concatenate([x_test, x_test ** 2], 1))
    results: dict[str, dict[str, float]] = {}
    print("| listener | " + " | ".join(LEARNERS) + " | chosen penalties (linear; quadratic; kernel lengthscale, penalty) |")
    print("|---|" + "---:|" * len(LEARNERS) + "---|")
    for g, spec in enumerate(s.strip() for s in args.listeners.split(",") if s.strip()):
        listener, function = calibrated_listener(spec, pool, args.seed, g)
        name = listener.name
        a, b, choices = noisy_pairs(listener, function, pool, args.labels, args.seed, g)
        delta, decided = noiseless_truth(listener, function, test)
        labels = [PairLabel(pool[i], pool[j], c, listener.rater_name) for i, j, c in zip(a, b, choices, strict=True)]
        mlp = train_reward_model(labels, [], RewardModelConfig(seed=args.seed, cv_folds=2), prior, log=None)
        kept = np.array([c in CHOICE_SCORE for c in choices])
        a, b = a[kept], b[kept]
        y = np.array([CHOICE_SCORE[c] for c, k in zip(choices, kept, strict=True) if k], dtype=np.float64)
        linear, linear_penalty = linear_scores(x_pool, x_test, a, b, y)
        quadratic, quadratic_penalty = linear_scores(*squares, a, b, y)
        kernel, scale, kernel_penalty = kernel_scores(x_pool, x_test, a, b, y)
        row = {learner: noiseless_accuracy(predicted, delta, decided) for learner, predicted in
               (("mlp", mlp.score_batch(test)), ("linear", linear), ("quadratic", quadratic), ("kernel", kernel))}
        results[name] = row
        print(f"| {name} | " + " | ".join(f"{row[k]:.3f}" for k in LEARNERS)
              + f" | {linear_penalty:g}; {quadratic_penalty:g}; {scale:g}, {kernel_penalty:g} |", flush=True)
    print()
    for learner in LEARNERS:
        print(f"{learner}_noiseless_accuracy: {float(np.mean([r[learner] for r in results.values()])):.3f}")
    print(f"seconds: {time.monotonic() - started:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
