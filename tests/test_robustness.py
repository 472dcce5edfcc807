"""The robustness suite: each degradation at three strengths, and `emoscope evaluate --robustness`
end to end on a small fixture."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import synthetic_split_folders, write_tree
from emoscope.evaluate.robustness import DEGRADATIONS, STRENGTHS, degraded, robustness


@pytest.mark.parametrize("kind", DEGRADATIONS)
@pytest.mark.parametrize("shape", [(6, 48, 48), (6, 40, 40, 3)])
def test_each_degradation_keeps_shape_and_grows_with_strength(kind, shape):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    images = (images // 2 + 64).astype(np.uint8)  # room to darken and brighten
    changes = []
    for strength in STRENGTHS:
        out = degraded(images, kind, strength)
        assert out.shape == images.shape and out.dtype == np.uint8
        changes.append(np.abs(out.astype(int) - images).mean())
        assert np.array_equal(out, degraded(images, kind, strength))  # seeded: every model sees the same faces
    assert changes[0] > 0 and changes[-1] >= changes[0] * 0.9, changes


def test_the_suite_scores_every_degradation():
    images = np.stack([np.full((16, 16), 40 + 170 * (i % 2), np.uint8) for i in range(20)])
    labels = np.arange(20) % 2
    bright = lambda x: np.stack([-(x.reshape(len(x), -1).mean(1) - 128), x.reshape(len(x), -1).mean(1) - 128], 1)  # noqa: E731
    r = robustness(bright, images, labels, ["dark", "bright"], 10.0)
    assert len(r["rows"]) == len(DEGRADATIONS) * len(STRENGTHS)
    by = {(row["degradation"], row["strength"]): row for row in r["rows"]}
    assert by[("blur", 0.333)]["accuracy"] == 1.0  # a flat image stays what it was
    assert by[("light", 1.0)]["accuracy"] < 1.0     # dim light makes bright faces read as dark
    assert 0 < r["mean"]["macro_f1"] <= 1


def test_evaluate_robustness_end_to_end(tmp_path):
    import emoscope
    model = os.path.join(os.path.dirname(emoscope.__file__), "assets", "expression-int8.onnx")
    data = write_tree(str(tmp_path / "data"), synthetic_split_folders(n_per_class=3))
    r = subprocess.run([sys.executable, "-m", "emoscope.cli", "evaluate", "--model", model, "--data", data,
                        "--split", "test", "--robustness", "--out", str(tmp_path / "eval")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["robustness"]["rows"]) == len(DEGRADATIONS) * len(STRENGTHS)
    assert out["intervals"]["macro_f1"][0] <= out["macro_f1"] <= out["intervals"]["macro_f1"][1]
    report = (tmp_path / "eval" / "report.html").read_text()
    assert "Robustness suite" in report and "95% bootstrap intervals" in report
