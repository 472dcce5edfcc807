"""`emoscope tune`: Optuna search (TPE sampler, median pruning) over the residual family's width
and depth, learning rate, weight decay, dropout and augmentation strength. The study lives in
SQLite, so running the same command again continues it; the best trial is written as a config
file that `emoscope train --config` takes."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, replace

from .config import AugmentConfig, TrainConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset folder, .zip or .csv")
    p.add_argument("--out", default="runs/tune", help="folder for the study database, trials and best config")
    p.add_argument("--trials", type=int, default=20, help="trials to run in this invocation")
    p.add_argument("--epochs", type=int, default=8, help="epochs per trial")
    p.add_argument("--study", default="emoscope", help="study name inside the database")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)


def suggest(trial, base: TrainConfig, out: str) -> TrainConfig:
    strength = trial.suggest_float("aug_strength", 0.0, 1.5)
    return replace(
        base, out=os.path.join(out, f"trial-{trial.number:04d}"), model="resnet_fer",
        model_kwargs={"width": trial.suggest_categorical("width", [16, 24, 32, 48]),
                      "depth": trial.suggest_int("depth", 1, 2),
                      "drop": trial.suggest_float("dropout", 0.0, 0.5)},
        lr=trial.suggest_float("lr", 0.01, 0.3, log=True),
        weight_decay=trial.suggest_float("weight_decay", 1e-5, 2e-3, log=True),
        augment=AugmentConfig().scaled(strength))


def run(args) -> int:
    import optuna

    from .trainer import Trainer

    os.makedirs(args.out, exist_ok=True)
    storage = f"sqlite:///{os.path.abspath(os.path.join(args.out, 'study.db'))}"
    study = optuna.create_study(study_name=args.study, storage=storage, direction="maximize", load_if_exists=True,
                                sampler=optuna.samplers.TPESampler(seed=args.seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2))
    base = TrainConfig(data=args.data, epochs=args.epochs, threads=args.threads, seed=args.seed)

    def objective(trial) -> float:
        cfg = suggest(trial, base, args.out)
        trainer = Trainer(cfg, progress=False)

        def report(row: dict) -> None:
            trial.report(row["val_acc"], row["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()

        history = trainer.fit(resume=True, on_epoch_end=report)
        return max(h["val_acc"] for h in history)

    study.optimize(objective, n_trials=args.trials)
    best = study.best_trial
    cfg = suggest(optuna.trial.FixedTrial(best.params, best.number), base, args.out)
    cfg.out = os.path.join("runs", "tuned")
    path = os.path.join(args.out, "best_config.json")
    with open(path, "w") as f:
        json.dump(asdict(cfg), f, indent=2)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    print(json.dumps({"best_val_acc": best.value, "best_params": best.params, "trials_complete": len(done),
                      "trials_pruned": len(pruned), "best_config": path}, indent=1))
    return 0
