"""``rlcomposer generate`` and ``rlcomposer evaluate``: sample melodies from models, write or score them.

A model is a model directory (a prior or a tuned policy) or one of the names
``prior`` (the shipped prior), ``corpus`` (test-split tunes) and ``random``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rlcomposer.cli.common import (
    CALLABLE_SEARCH_NOTE,
    Commands,
    add_corpus_options,
    add_melody_shape_options,
    add_output_options,
    check_bars,
    check_options,
    disk_errors,
    emit,
    load_corpus,
    melody_condition,
    non_negative_int,
    positive_int,
    say,
    stated_kl,
)
from rlcomposer.errors import RLComposerError
from rlcomposer.rl import DEFAULT_PICK_KL_WEIGHT
from rlcomposer.validation import between

BEST_OF_NEEDS_REWARD = "--best-of needs --reward (module:function) to choose the best"
BEST_OF = between(1, 65_536, whole=True)
"""N of ``--best-of N``: candidates drawn per melody."""


def _generation_config(args: argparse.Namespace):
    from rlcomposer.prior.generation import GenerationConfig

    return GenerationConfig(
        model=args.model, num_melodies=args.n, seed=args.seed, num_bars=args.bars,
        temperature=args.temperature, top_k=args.top_k,
        formats=tuple(f.strip() for f in args.format.split(",") if f.strip()),
        tempo_bpm=args.tempo, metre=args.metre, key=args.key or "C", mode=args.mode,
        pickup_beats=getattr(args, "pickup", None) or 0.0,
    )


def cmd_generate(args: argparse.Namespace) -> None:
    check_bars(args)
    from rlcomposer.prior.generation import (
        check_out_dir,
        export_melodies,
        sample_melodies,
        tuned_condition,
    )
    from rlcomposer.prior.registry import PriorModel, resolve_model
    from rlcomposer.rl.best_of_n import (
        BestOfNModel,
        PolicyBestOfKModel,
        PriorUnavailable,
        policy_best_of_k,
        recorded_pick_weight,
    )

    config = _generation_config(args)
    check_options(args, {"--best-of": BEST_OF})
    check_out_dir(args.out, args.overwrite)  # before sampling: a folder of another run's melodies
    model = resolve_model(config.model, lambda: load_corpus(args).melodies("test"))
    if args.best_of is not None:
        from rlcomposer.preferences.reward_functions import resolve_reward

        if not args.reward:
            raise RLComposerError(BEST_OF_NEEDS_REWARD)
        reward = resolve_reward(args.reward)
        name = args.reward
        if args.rater is not None:
            reward, name = _rater_reward(args, reward)
        pick_kl_weight = DEFAULT_PICK_KL_WEIGHT if args.pick_kl_weight is None else args.pick_kl_weight
        if tuned_condition(model) is not None:  # a tuned policy: best-of-k, with its KL to the prior
            recorded = (recorded_pick_weight(config.model, args.best_of, args.reward)
                        if args.pick_kl_weight is None and Path(config.model).is_dir() else None)
            if recorded is not None:  # the weight the experiment's round found for this policy, k and reward
                pick_kl_weight = recorded[0]
                target = "" if recorded[1] is None else f", found for a KL target of {recorded[1]:g} nats"
                say(args, f"pick weight {pick_kl_weight:.3f}, as the experiment picked with this policy, reward "
                          f"model and k{target} (--pick-kl-weight for another)")
            try:
                model = policy_best_of_k(model.prior, reward, args.best_of, name, model.name, config.model,
                                         pick_kl_weight)
            except PriorUnavailable as error:  # the melodies still come; only their KL is unknown
                say(args, f"note: {error}")
                model = BestOfNModel(model, reward, args.best_of, name)
        else:
            model = BestOfNModel(model, reward, args.best_of, name)
    elif args.reward:
        raise RLComposerError("--reward is used with --best-of N")
    elif args.rater is not None:
        raise RLComposerError("--rater is used with --best-of N --reward RM (a personal reward model)")
    if args.pick_kl_weight is not None and not isinstance(model, PolicyBestOfKModel):
        raise RLComposerError("--pick-kl-weight is used with a tuned policy as --model and --best-of k --reward RM")
    melodies = sample_melodies(model, config)
    kl = None
    if isinstance(model, PolicyBestOfKModel):
        kl = model.kl_estimate(melodies)
    elif (isinstance(model, BestOfNModel) and isinstance(model.base, PriorModel)
          and tuned_condition(model.base) is None):  # best-of-N from a prior (not a policy)
        kl = model.kl_to_base_per_melody
    with disk_errors(f"--out '{args.out}'", None if Path(args.out).exists() else args.out):
        files = export_melodies(melodies, args.out, config.formats, config.tempo_bpm,
                                progress=not args.json and not args.quiet, overwrite=args.overwrite)
    first = melodies[0]
    result = {"out": str(args.out), "model": config.model, "seed": config.seed,
              "metre": first.metre.name, "key": first.key.name, "bars": config.num_bars,
              "melodies": len(melodies), "files": [str(f) for f in files]}
    kl, kl_text = stated_kl(args, kl)
    if kl is not None:
        result["kl_to_prior_per_melody"] = kl
    if args.rater is not None:
        result["rater"] = args.rater
    if isinstance(model, PolicyBestOfKModel):
        result["pick_kl_weight"] = model.kl_weight
    emit(args, result, f"wrote {len(melodies)} melodies of {config.num_bars} bars of {first.metre.name} "
                       f"in {first.key.name} ({len(files)} files) to {args.out}{kl_text}")


def _rater_reward(args: argparse.Namespace, reward):
    """``--rater NAME``: that rater's reward from a personal reward model (a rater it knows without
    answers: the population's, said so), and how messages name it."""
    from rlcomposer.preferences.personal_reward import PersonalRewardModel

    if not isinstance(reward, PersonalRewardModel):
        raise RLComposerError(f"--rater needs a personal reward model (`rlcomposer reward train --per-rater`); "
                              f"--reward '{args.reward}' scores for everyone alike")
    scorer, note = reward.for_rater(args.rater)
    if note:
        say(args, note)
    return scorer, f"{args.reward} for rater {scorer.rater!r}"


def cmd_evaluate(args: argparse.Namespace) -> None:
    check_bars(args)
    import numpy as np

    from rlcomposer.experiments.evaluation import evaluate_models, format_evaluation
    from rlcomposer.prior.generation import BARS, MELODY_COUNT
    from rlcomposer.prior.registry import resolve_model

    check_options(args, {"--n": MELODY_COUNT, "--bars": BARS, "--best-of": BEST_OF})
    specs = list(args.model or ["prior"])
    if args.baseline:
        specs.append(args.baseline)
    corpus_sequences = None

    def corpus_loader():
        nonlocal corpus_sequences
        if corpus_sequences is None:
            corpus_sequences = load_corpus(args).melodies("test")
        return corpus_sequences

    models = [resolve_model(spec, corpus_loader) for spec in specs]
    for model, spec in zip(models, specs, strict=True):
        model.name = spec
    reward_fn = None
    if args.reward:
        from rlcomposer.preferences.reward_functions import resolve_reward

        reward_fn = resolve_reward(args.reward)
    if args.best_of is not None:
        from rlcomposer.rl.best_of_n import BestOfNModel

        if reward_fn is None:
            raise RLComposerError(BEST_OF_NEEDS_REWARD)
        models.append(BestOfNModel(models[0], reward_fn, args.best_of, args.reward))
    condition = melody_condition(args)
    num_steps = args.bars * condition.metre.steps_per_bar
    say(args, f"sampling {args.n} melodies of {args.bars} bars of {condition.metre.name} "
              f"{condition.mode} from {', '.join(m.name for m in models)}")
    listener_fn = None
    if args.listener:
        from rlcomposer.preferences.listeners import load_listener

        listener_fn, _ = load_listener(args.listener)
    reference = len(specs) - 1 if args.baseline else 0  # win-rates are against --baseline, else the first --model
    results = evaluate_models(models, args.n, num_steps, np.random.default_rng(args.seed),
                              reward_fn=reward_fn, listener_fn=listener_fn, reference_index=reference,
                              condition=condition)
    emit(args, {"num_melodies": args.n, "num_steps": num_steps, "seed": args.seed,
                "metre": condition.metre.name, "mode": condition.mode,
                "models": [r.as_dict() for r in results]}, format_evaluation(results))


def register(commands: Commands) -> None:
    """Add ``generate`` and ``evaluate``."""
    generate = commands.add_parser(
        "generate", help="sample melodies and write MIDI / MusicXML / WAV / JSON / ABC files",
        description="Sample melodies from a model and write one file per melody per format. "
                    "The same seed gives byte-identical JSON.")
    add_output_options(generate)
    add_corpus_options(generate)
    generate.add_argument("--model", default="prior",
                          help="model directory, or prior (default) / corpus / random")
    generate.add_argument("--n", type=int, default=8, help="number of melodies (default 8)")
    generate.add_argument("--seed", type=int, default=0, help="random seed, 0 or more (default 0)")
    generate.add_argument("--out", required=True, help="folder to write the files into")
    generate.add_argument("--overwrite", action="store_true",
                          help="replace the melody files already in --out (else that is an error)")
    generate.add_argument("--format", default="midi,musicxml,wav,json",
                          help="comma-separated formats: midi, musicxml, wav, json, abc "
                               "(default midi,musicxml,wav,json)")
    add_melody_shape_options(generate)
    generate.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1)")
    generate.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest tokens")
    generate.add_argument("--tempo", type=float, default=120.0, help="quarter notes per minute (default 120)")
    generate.add_argument("--pickup", type=float, default=0.0, metavar="BEATS",
                          help="a pick-up of BEATS quarter notes before the first of the --bars full bars "
                               "(default 0: start on the downbeat), e.g. 1 in 4/4, 1.5 in 6/8")
    generate.add_argument("--best-of", type=int, default=None, metavar="N",
                          help="sample N melodies per output and keep the one --reward scores highest")
    generate.add_argument("--reward", default=None, metavar="MODULE:FUNCTION",
                          help="reward function for --best-of (any callable Melody -> float), or a "
                               "reward-model directory; "
                               + CALLABLE_SEARCH_NOTE)
    generate.add_argument("--rater", default=None, metavar="NAME",
                          help="with --best-of N and a personal --reward RM (`reward train --per-rater`): "
                               "melodies made for this rater, chosen by the rater's own reward")
    generate.add_argument("--pick-kl-weight", type=float, default=None, metavar="C",
                          help="from a tuned policy with --best-of k: keep the candidate with the highest "
                               "standardised reward minus C x its log pi/p (default "
                               f"{DEFAULT_PICK_KL_WEIGHT:g}; 0: the highest reward)")
    generate.set_defaults(handler=cmd_generate)

    evaluate = commands.add_parser(
        "evaluate", help="music metrics of models side by side (corpus and random are models too)",
        description="Sample melodies from each model and print the Sequence Tutor music metrics "
                    "and the shipped prior's log-likelihood per step, side by side.")
    add_output_options(evaluate)
    add_corpus_options(evaluate)
    evaluate.add_argument("--model", action="append",
                          help="model directory or prior / corpus / random (repeatable; default prior)")
    evaluate.add_argument("--baseline", default=None, help="a model to compare against")
    evaluate.add_argument("--n", type=int, default=1000, help="melodies per model (default 1000)")
    evaluate.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    add_melody_shape_options(evaluate, key=False)
    evaluate.add_argument("--reward", default=None, metavar="MODULE:FUNCTION",
                          help="also report the mean of this reward function; " + CALLABLE_SEARCH_NOTE)
    evaluate.add_argument("--best-of", type=positive_int, default=None, metavar="N",
                          help="add a column: best-of-N sampling from the first --model under --reward")
    evaluate.add_argument("--listener", default=None, metavar="SPEC",
                          help="a listener (lyrical, rhythmic, adventurous or module:function): its mean "
                               "score and each model's win-rate against --baseline (else the first "
                               "--model), pair by pair, noiselessly; " + CALLABLE_SEARCH_NOTE)
    evaluate.set_defaults(handler=cmd_evaluate)
