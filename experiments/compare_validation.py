"""The table a candidate expression model is chosen by: its scores on the validation parts beside
the shipped default's and `fast`'s (FER+ PublicTest model-only with flip, web_faces val end to
end, the robustness suite and the mesh-made head turn on FER+ PublicTest), each folder's results
as `experiments/validate_candidate.sh` writes them. Test parts are never read here.

Usage: python experiments/compare_validation.py [NAME=FOLDER ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import os

RESULTS = os.path.join(os.path.dirname(__file__), "results")
PARTS = ("ferplus-val-flip", "web-val-pipeline", "ferplus-val-robustness")
# the shipped files' scores on the same parts, measured on the same host (2026-12-07; the default
# was that folder's candidate)
SHIPPED_RESULTS = os.path.join(RESULTS, "lite0-cnn")
SHIPPED = {name: (os.path.join(SHIPPED_RESULTS, recorded, "ferplus-val-flip.json"),
                  os.path.join(SHIPPED_RESULTS, recorded, "web-val-pipeline.json"),
                  os.path.join(SHIPPED_RESULTS, f"{suite}.ferplus-val-robustness.json"))
           for name, recorded, suite in (("default", "recorded", "candidate"), ("fast", "recorded-fast", "fast"))}


def load(path: str) -> dict | None:
    if not (os.path.isfile(path) and os.path.getsize(path)):
        return None
    with open(path) as f:
        return json.load(f)


def row(files: tuple[str, str, str]) -> dict:
    """One model's headline numbers (percent; None where its result is missing)."""
    fer, web, rob = (load(f) for f in files)
    pct = lambda d, k: round(100 * d[k], 1) if d else None  # noqa: E731
    turn = rob["robustness"].get("mesh_turn") if rob else None
    return {"ferplus_val": {k: pct(fer, k) for k in ("accuracy", "macro_f1", "balanced_accuracy")},
            "ferplus_val_recall": {c: round(100 * r, 1) for c, r in fer["recall"].items()} if fer else None,
            "web_val": {k: pct(web, k) for k in ("accuracy", "macro_f1", "balanced_accuracy", "neutral_read_negative")},
            "suite_macro_f1": pct(rob["robustness"]["mean"], "macro_f1") if rob else None,
            "mesh_turn_macro_f1": pct(turn, "mean_macro_f1")}


def text(rows: dict[str, dict]) -> str:
    fmt = lambda *v: "/".join("-" if x is None else f"{x:.1f}" for x in v)  # noqa: E731
    lines = [f"{'model':14s} {'FER+ val acc/mF1/bal':>21s} {'web val acc/mF1/bal':>20s} {'n->neg':>6s} "
             f"{'suite':>5s} {'turn':>5s}  FER+ val recall (angry..surprise)"]
    for name, r in rows.items():
        f, w = r["ferplus_val"], r["web_val"]
        recall = "/".join(f"{v:.0f}" for v in r["ferplus_val_recall"].values()) if r["ferplus_val_recall"] else "-"
        lines.append(f"{name:14s} {fmt(f['accuracy'], f['macro_f1'], f['balanced_accuracy']):>21s} "
                     f"{fmt(w['accuracy'], w['macro_f1'], w['balanced_accuracy']):>20s} "
                     f"{fmt(w['neutral_read_negative']):>6s} {fmt(r['suite_macro_f1']):>5s} "
                     f"{fmt(r['mesh_turn_macro_f1']):>5s}  {recall}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("candidates", nargs="*", metavar="NAME=FOLDER",
                    help="a folder of NAME.{" + ",".join(PARTS) + "}.json results")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args()
    rows = {name: row(files) for name, files in SHIPPED.items()}
    for spec in args.candidates:
        name, sep, folder = spec.partition("=")
        if not sep:
            ap.error(f"{spec!r}: expected NAME=FOLDER")
        rows[name] = row(tuple(os.path.join(folder, f"{name}.{part}.json") for part in PARTS))
    print(json.dumps(rows, indent=1) if args.json else text(rows))


if __name__ == "__main__":
    main()
