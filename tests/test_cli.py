"""The command line end to end: help on every verb, data inspect/audit, analyze on files and videos."""

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPO, face_like, jpeg_bytes, synthetic_split_folders, write_tree
from emoscope.cli import VERBS as VERB_TABLE

# the root, each group of verbs ("data") and every verb of the CLI's own table
GROUPS = sorted({verb.split()[0] for verb, *_ in VERB_TABLE if " " in verb})
VERBS = [[]] + [[g] for g in GROUPS] + [verb.split() for verb, *_ in VERB_TABLE]


def cli(*args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "emoscope.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("verb", VERBS, ids=lambda v: " ".join(v) or "root")
def test_help_on_every_verb(verb):
    r = cli(*verb, "--help")
    assert r.returncode == 0 and "usage: emoscope" in r.stdout


@pytest.mark.slow
def test_data_inspect_json_and_report(tmp_path):
    root = write_tree(str(tmp_path / "d"), synthetic_split_folders(5))
    r = cli("data", "inspect", root, "--json", "--out", str(tmp_path / "rep"))
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["splits"] == {"train": 15, "test": 15} and st["counts"]["train"]["happy"] == 5
    assert st["imbalance_ratio"]["train"] == 1.0
    for name in ("report.html", "class_distribution.png", "samples.png"):
        assert os.path.getsize(tmp_path / "rep" / name) > 1000
    assert "data:image/png;base64" in (tmp_path / "rep" / "report.html").read_text()


def test_data_inspect_bad_path_is_a_clear_error(tmp_path):
    r = cli("data", "inspect", str(tmp_path / "missing"))
    assert r.returncode != 0 and "no such file" in r.stderr and "Traceback" not in r.stderr


def test_analyze_folder_with_broken_file(samples, yunet, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("facerec_obama.jpg", "facerec_two_people.jpg"):
        shutil.copy(os.path.join(samples, name), folder / name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (folder / "blank.png").write_bytes(jpeg_bytes(face_like(0, 0) * 0, fmt="PNG"))
    (folder / "a_broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 4000)  # no moov atom
    (folder / "z").mkdir()
    shutil.copy(os.path.join(samples, "facerec_obama.jpg"), folder / "z" / "facerec_obama.jpg")  # same name
    out = tmp_path / "out"
    r = cli("analyze", str(folder), "--out", str(out), "--annotate", "--detector-model", yunet)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["images"] == 4 and summary["image_faces"] == 4 and summary["videos"] == 0
    assert sorted(os.path.basename(s["file"]) for s in summary["skipped"]) == ["a_broken.mp4", "broken.jpg"]
    assert "moov" not in r.stderr and "Error" not in r.stderr
    res = json.load(open(out / "results.json"))
    faces = {os.path.relpath(f["file"], folder): len(f["faces"]) for f in res["files"]}
    assert faces == {"facerec_obama.jpg": 1, "facerec_two_people.jpg": 2, "blank.png": 0, "z/facerec_obama.jpg": 1}
    assert (out / "facerec_two_people.annotated.jpg").exists()
    assert (out / "facerec_obama.annotated.jpg").exists() and (out / "facerec_obama-2.annotated.jpg").exists()
    r = cli("analyze", str(folder / "*.jpg"), "--out", str(tmp_path / "csv"), "--format", "csv",
            "--detector-model", yunet, "--max-faces", "1")
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(tmp_path / "csv" / "results.csv")
    assert len(df) == 2 and {"file", "label", "happy", "valence_score"} <= set(df.columns)


@pytest.mark.slow
def test_analyze_video_writes_timeline_report_and_annotated_video(samples, yunet, tmp_path):
    out = tmp_path / "out"
    r = cli("analyze", os.path.join(samples, "facerec_short_hamilton_clip.mp4"), "--out", str(out), "--every", "3",
            "--annotate", "--detector-model", yunet, "--format", "parquet")
    assert r.returncode == 0, r.stderr
    stem = out / "facerec_short_hamilton_clip"
    tl = pd.read_csv(f"{stem}.timeline.csv")
    assert len(tl) > 0 and (tl["frame"] % 3 == 0).all()
    assert pd.read_parquet(f"{stem}.timeline.parquet").shape == tl.shape
    assert os.path.getsize(f"{stem}.timeline.png") > 5000
    assert "data:image/png;base64" in open(f"{stem}.report.html").read()
    assert os.path.getsize(f"{stem}.annotated.mp4") > 10000
    av = pytest.importorskip("av")
    with av.open(f"{stem}.annotated.mp4") as annotated:  # the source's sound is kept
        assert {s.type for s in annotated.streams} == {"video", "audio"}


@pytest.mark.slow
def test_webcam_headless_on_a_file(samples, yunet, tmp_path):
    r = cli("webcam", "--source", os.path.join(samples, "facerec_short_hamilton_clip.mp4"), "--no-window",
            "--max-frames", "10", "--record", str(tmp_path / "t.csv"), "--detector-model", yunet)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == 10 and "fps" in lines[0]
    assert len(pd.read_csv(tmp_path / "t.csv")) >= 1


@pytest.mark.slow
def test_every_n_keeps_every_face_and_person(samples, yunet):
    """--every N analyses 1/N of the frames and keeps about 1/N of the face rows and the same
    persons: the tracker counts analysed frames, not source frames."""
    from emoscope import Analyzer
    analyzer = Analyzer(detector_model=yunet)
    clip = os.path.join(samples, "facerec_short_hamilton_clip.mp4")
    rows = {}
    for n in (1, 2, 3, 5, 10):
        tl = analyzer.analyze_video(clip, every=n, progress=False)
        rows[n] = len(tl)
        assert len(tl.summary()) >= 8, (n, len(tl.summary()))
        assert abs(rows[n] - rows[1] / n) <= 0.15 * rows[1] / n, rows
