"""``rlcomposer continue``: continue a musician's own opening with a prior or a tuned policy.

The opening (ABC, MIDI, MusicXML or melody JSON) is kept note for note, in its own metre,
key and pick-up; the model runs through it and samples the rest, up to ``--bars`` full bars
in all. ``--best-of M --reward RM`` keeps the best of M continuations of the opening each (among
those that keep to the opening's key, unless ``--any-key``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rlcomposer.cli.common import (
    CALLABLE_SEARCH_NOTE,
    Commands,
    add_output_options,
    check_bars,
    check_options,
    disk_errors,
    emit,
    say,
    stated_kl,
)
from rlcomposer.errors import RLComposerError

CONTINUATION_STEM = "continuation"
"""Files are ``continuation-NNN.<suffix>``."""
NOT_A_SAMPLER = "continue needs a prior or a tuned policy (--model prior or a model directory), not '{}'"


def _formats(text: str) -> tuple[str, ...]:
    from rlcomposer.prior.generation import FORMAT_SUFFIXES

    formats = tuple(f.strip() for f in text.split(",") if f.strip())
    unknown = [f for f in formats if f not in FORMAT_SUFFIXES]
    if unknown or not formats:
        raise RLComposerError(f"--format: unknown format '{unknown[0] if unknown else ''}' "
                              f"(choose from {', '.join(FORMAT_SUFFIXES)})")
    return formats


def cmd_continue(args: argparse.Namespace) -> None:
    check_bars(args)
    formats = _formats(args.format)
    from rlcomposer.prior.generation import TEMPO_BPM, check_out_dir, export_melodies

    check_options(args, {"--tempo": TEMPO_BPM})
    import numpy as np

    from rlcomposer.prior.continuation import (
        REWARD_UNCERTAINTY,
        ContinuationConfig,
        continue_melody,
        read_opening,
    )
    from rlcomposer.prior.model import load_prior, prior_directory

    config = ContinuationConfig(num_bars=args.bars, num_continuations=args.n, seed=args.seed,
                                temperature=args.temperature, top_k=args.top_k, best_of=args.best_of or 1,
                                reward_uncertainty=REWARD_UNCERTAINTY if args.reward_uncertainty is None
                                else args.reward_uncertainty, keep_key=not args.any_key)
    if args.best_of is not None and not args.reward:
        raise RLComposerError("--best-of needs --reward (module:function or a reward-model directory) "
                              "to choose the best continuation")
    if args.reward and args.best_of is None:
        raise RLComposerError("--reward is used with --best-of M")
    if args.reward_uncertainty is not None and args.best_of is None:
        raise RLComposerError("--reward-uncertainty is used with --best-of M --reward RM")
    if args.any_key and args.best_of is None:
        raise RLComposerError("--any-key is used with --best-of M --reward RM (it widens the choice)")
    check_out_dir(args.out, args.overwrite, CONTINUATION_STEM)
    opening = read_opening(args.from_file)
    if args.model in ("corpus", "random"):
        raise RLComposerError(NOT_A_SAMPLER.format(args.model))
    if args.model != "prior" and not Path(args.model).is_dir():
        raise RLComposerError(f"unknown model '{args.model}': not a model directory, nor 'prior'")
    model = load_prior(prior_directory(args.model))
    name = "prior" if args.model == "prior" else Path(args.model).name
    scorer = None
    reward_uncertainty = 0.0  # what the pick counted against the reward model's spread
    if args.reward:
        from rlcomposer.preferences.reward_functions import (
            ConservativeReward,
            resolve_reward,
            score_melodies,
        )

        reward = resolve_reward(args.reward)
        if config.reward_uncertainty > 0 and hasattr(reward, "member_scores"):  # a reward model: pessimistic
            reward = ConservativeReward(reward, config.reward_uncertainty)
            reward_uncertainty = config.reward_uncertainty
        elif args.reward_uncertainty:
            raise RLComposerError(f"--reward-uncertainty needs a reward model (an ensemble) as --reward, not the "
                                  f"function {args.reward}")

        def scorer(melodies):
            return score_melodies(reward, melodies, args.reward)

    melodies = continue_melody(model, opening, config, np.random.default_rng(args.seed), scorer, name)
    from rlcomposer.rl.best_of_n import PriorUnavailable, continuation_kl

    try:
        kl = continuation_kl(model, opening, melodies, config.best_of, args.model)
    except PriorUnavailable as error:  # the continuations still come; only their KL is unknown
        say(args, f"note: {error}")
        kl = None
    with disk_errors(f"--out '{args.out}'", None if Path(args.out).exists() else args.out):
        files = export_melodies(melodies, args.out, formats, args.tempo, stem=CONTINUATION_STEM,
                                progress=not args.json and not args.quiet, overwrite=args.overwrite)
    dropped = opening.metadata.get("abc_dropped") or {}
    result = {"out": str(args.out), "from": str(args.from_file), "model": args.model, "seed": args.seed,
              "metre": opening.metre.name, "key": opening.key.name, "pickup_steps": opening.pickup_steps,
              "opening_bars": (opening.num_steps - opening.pickup_steps) / opening.metre.steps_per_bar,
              "bars": args.bars, "continuations": len(melodies), "files": [str(f) for f in files],
              "dropped_from_opening": dropped}
    if args.best_of:
        result["best_of"] = args.best_of
        result["reward_uncertainty"] = reward_uncertainty
        result["keep_key"] = config.keep_key
    kl, kl_text = stated_kl(args, kl)
    if kl is not None:
        result["kl_to_prior_per_melody"] = kl
    note = ""
    if dropped:
        note = " (dropped from the opening: " + ", ".join(f"{n} {k}" for k, n in sorted(dropped.items())) + ")"
    emit(args, result, f"wrote {len(melodies)} continuations of {result['opening_bars']:g} bars of "
                       f"{opening.metre.name} in {opening.key.name} to {args.bars} bars ({len(files)} files) "
                       f"to {args.out}{kl_text}{note}")


def register(commands: Commands) -> None:
    """Add ``continue``."""
    from rlcomposer.music.metre import MAX_BARS

    parser = commands.add_parser(
        "continue", help="continue your own opening (ABC, MIDI, MusicXML or JSON) with the model",
        description="Keep the opening's notes exactly (its metre, key and pick-up read from the file), run "
                    "the model through them and sample --n continuations up to --bars full bars in all.")
    add_output_options(parser)
    parser.add_argument("--from", dest="from_file", required=True, metavar="FILE",
                        help="the opening: .abc, .mid, .musicxml/.xml/.mxl or .json (one melody)")
    parser.add_argument("--bars", type=int, default=8,
                        help=f"the whole melody's length in full bars after the pick-up, the opening "
                             f"included, 1..{MAX_BARS} (default 8)")
    parser.add_argument("--n", type=int, default=4, help="number of continuations (default 4)")
    parser.add_argument("--out", required=True, help="folder to write the files into")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the continuation files already in --out (else that is an error)")
    parser.add_argument("--model", default="prior",
                        help="prior (default, the shipped prior) or a prior / tuned policy directory")
    parser.add_argument("--seed", type=int, default=0, help="random seed, 0 or more (default 0)")
    parser.add_argument("--format", default="abc,midi,musicxml,json",
                        help="comma-separated formats: abc, midi, musicxml, wav, json "
                             "(default abc,midi,musicxml,json)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="sampling temperature (default 0.9 from the prior alone, 1 with --best-of or "
                             "from a tuned policy, whose KL to the prior is then stated)")
    parser.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest tokens")
    parser.add_argument("--tempo", type=float, default=120.0, help="quarter notes per minute (default 120)")
    parser.add_argument("--best-of", type=int, default=None, metavar="M",
                        help="draw M continuations per one written and keep the one --reward scores highest")
    parser.add_argument("--reward-uncertainty", type=float, default=None, metavar="K",
                        help="with a reward model: score by its members' mean less K times their spread "
                             "(default 2: a continuation is not chosen for the model's guess alone where "
                             "the answers say little; 0: the mean)")
    parser.add_argument("--any-key", action="store_true",
                        help="with --best-of: choose among every candidate; by default only among those that "
                             "bring in no note outside the opening's key that the opening did not use itself")
    parser.add_argument("--reward", default=None, metavar="RM",
                        help="reward for --best-of: a reward-model directory or module:function; "
                             + CALLABLE_SEARCH_NOTE)
    parser.set_defaults(handler=cmd_continue)
