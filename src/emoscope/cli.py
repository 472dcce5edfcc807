"""`emoscope <verb>`: a thin command line over the library. Heavy imports happen per verb, so
the inference verbs run without torch installed."""

from __future__ import annotations

import argparse
import sys


def _train(sub) -> None:
    p = sub.add_parser("train", help="train a model (needs the 'train' extra)",
                       description="Train a registered model on a dataset; checkpoints every epoch, resumable.")
    from .train.cli import add_arguments
    add_arguments(p)
    p.set_defaults(func=lambda a: __import__("emoscope.train.cli", fromlist=["run"]).run(a))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emoscope", description="Facial expression recognition: train, measure, deploy.")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    _train(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
