"""Every failure a user can cause on the command line ends in one plain line and the stated exit
status (1: nothing could be done, 2: the command line is wrong), never a traceback or a library's
log line; and nothing is analysed before the inputs and the output folder are known to work."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

BLOCKER = (
    "import sys\n"
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in BLOCKED:\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, Block())\n"
    "from emoscope.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n")


def emoscope(*args: str, blocked: tuple[str, ...] = (), timeout: int = 180) -> subprocess.CompletedProcess:
    code = f"BLOCKED = {set(blocked)!r}\n" + BLOCKER
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in r.stderr and "WARN" not in r.stderr and "Error:" not in r.stderr, r.stderr
    return r


@pytest.fixture
def not_a_folder(tmp_path) -> str:
    """An --out that cannot be created: its parent is a file (root can write anywhere else)."""
    (tmp_path / "file").write_text("x")
    return str(tmp_path / "file" / "out")


def test_an_unwritable_out_is_refused_before_any_work(samples, yunet, not_a_folder):
    for verb, source in (("analyze", "facerec_obama.jpg"), ("analyze", "facerec_short_hamilton_clip.mp4"),
                         ("batch", "facerec_obama.jpg"), ("campaign", "facerec_short_hamilton_clip.mp4")):
        r = emoscope(verb, os.path.join(samples, source), "--out", not_a_folder, "--detector-model", yunet)
        assert r.returncode == 1 and f"emoscope {verb}: cannot write to --out" in r.stderr, (verb, r.stderr)
        assert "skipped" not in r.stderr  # the input is not blamed


def test_a_missing_camera_is_said_plainly():
    r = emoscope("webcam", "--source", "7", "--no-window")
    assert r.returncode == 1 and "cannot open camera 7" in r.stderr


@pytest.mark.parametrize("args, blocked, extra", [
    (("models",), ("torch",), "train"),
    (("export", "nowhere", "--out", "x.onnx"), ("torch",), "train"),
    (("serve", "--port", "0"), ("fastapi", "uvicorn"), "serve"),
    (("agree", "h.csv", "--with", "f.csv"), ("sklearn", "krippendorff"), "research"),
    (("study", "list"), ("sqlalchemy", "alembic"), "serve"),
    (("analyze", "--help"), ("sqlalchemy", "pyarrow", "torch", "fastapi", "sklearn"), None),
])
def test_a_missing_extra_is_named_in_one_line(args, blocked, extra, tmp_path):
    if args[0] == "agree":
        (tmp_path / "h.csv").write_text("start_s,end_s,label\n0,1,happy\n")
        (tmp_path / "f.csv").write_text("frame,timestamp,face_id,success,x,y,w,h,label,valence\n"
                                        "0,0.0,1,1,0,0,9,9,happy,positive\n1,0.5,1,1,0,0,9,9,happy,positive\n")
        args = ("agree", str(tmp_path / "h.csv"), "--with", str(tmp_path / "f.csv"))
    r = emoscope(*args, blocked=blocked)
    if extra is None:  # a core install: the command line itself needs no extra
        assert r.returncode == 0 and "usage: emoscope analyze" in r.stdout
        return
    assert r.returncode == 1 and f"pip install 'emoscope[{extra}]'" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_parquet_without_pyarrow_is_named_before_the_analysis(samples, yunet, tmp_path):
    out = tmp_path / "out"
    r = emoscope("analyze", os.path.join(samples, "facerec_obama.jpg"), "--format", "parquet", "--out", str(out),
                 "--detector-model", yunet, blocked=("pyarrow",))
    assert r.returncode == 1 and "emoscope[batch]" in r.stderr and not out.exists()


def test_empty_or_missing_inputs_exit_1(tmp_path, yunet):
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk.jpg").write_text("not a photo")
    cases = [("batch", str(tmp_path / "nope")), ("batch", str(tmp_path / "empty")),
             ("campaign", str(tmp_path / "empty")), ("analyze", str(tmp_path / "junk.jpg")),
             ("analyze", str(tmp_path / "empty"))]
    for verb, source in cases:
        r = emoscope(verb, source, "--out", str(tmp_path / f"out-{verb}"), "--detector-model", yunet)
        assert r.returncode == 1 and "nothing" in r.stderr, (verb, source, r.stderr)


def test_a_bad_stimulus_is_refused_before_the_recordings_are_analysed(samples, yunet, tmp_path):
    (tmp_path / "ad.mp4").write_text("not a video")
    out = tmp_path / "c"
    r = emoscope("campaign", os.path.join(samples, "facerec_short_hamilton_clip.mp4"), "--stimulus",
                 str(tmp_path / "ad.mp4"), "--out", str(out), "--detector-model", yunet)
    assert r.returncode == 2 and "cannot be read as a video" in r.stderr and not (out / "batch").exists()


def test_large_photos_are_refused_with_the_way_round_it(samples, yunet, tmp_path):
    photo = os.path.join(samples, "facerec_obama.jpg")  # 910 x 1137: about 1.03 megapixels
    r = emoscope("analyze", photo, "--max-pixels", "1", "--out", str(tmp_path / "a"), "--detector-model", yunet)
    assert r.returncode == 1 and "--max-pixels raises it" in r.stderr
    r = emoscope("analyze", photo, "--max-pixels", "1.1", "--out", str(tmp_path / "b"), "--detector-model", yunet,
                 "--format", "csv")
    assert r.returncode == 0
    r = emoscope("analyze", photo, "--max-pixels", "0", "--out", str(tmp_path / "c"))
    assert r.returncode == 2


def test_results_table_keeps_photos_without_a_face(samples, yunet, tmp_path):
    import numpy as np
    import pandas as pd
    from PIL import Image
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(tmp_path / "blank.png")
    out = tmp_path / "out"
    r = emoscope("analyze", str(tmp_path / "blank.png"), os.path.join(samples, "facerec_obama.jpg"), "--format",
                 "csv", "--out", str(out), "--detector-model", yunet)
    assert r.returncode == 0
    table = pd.read_csv(out / "results.csv")
    assert "no face" in set(table["label"]) and len(table) == 2
    assert {"quality", "readable"} <= set(table.columns)


@pytest.mark.slow
def test_a_huge_photo_names_its_size_and_max_pixels_lets_it_through(yunet, tmp_path):
    from PIL import Image
    Image.new("L", (12000, 12000), 128).save(tmp_path / "huge.png")  # 144 megapixels
    r = emoscope("analyze", str(tmp_path / "huge.png"), "--out", str(tmp_path / "a"), "--detector-model", yunet)
    assert r.returncode == 1 and "12000x12000" in r.stderr and "--max-pixels raises it" in r.stderr
    r = emoscope("analyze", str(tmp_path / "huge.png"), "--max-pixels", "150", "--out", str(tmp_path / "b"),
                 "--detector-model", yunet, timeout=300)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("verb", ["analyze", "evaluate"])
def test_a_model_that_is_missing_broken_or_not_ours_is_named_plainly(verb, samples, yunet, tmp_path):
    """--model naming no file, a file that is not ONNX, or an ONNX file without emoscope's metadata
    (YuNet's): one line naming it, exit 2."""
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    target = ([f"{samples}/facerec_obama.jpg", "--detector-model", yunet, "--out", str(tmp_path / "out")]
              if verb == "analyze" else ["--data", f"{samples}"])
    for model, words in ((tmp_path / "missing.onnx", "does not exist"), (broken, "not an ONNX model"),
                         (yunet, "metadata")):
        r = emoscope(verb, *target, "--model", str(model))
        assert r.returncode == 2 and words in r.stderr and str(model) in r.stderr and len(r.stderr.splitlines()) == 1


@pytest.mark.parametrize("option, value", [("--every", "0"), ("--detect-every", "-2"), ("--classify-every", "x")])
def test_a_frame_step_below_one_is_refused_in_words(option, value, tmp_path):
    r = emoscope("analyze", str(tmp_path / "clip.mp4"), option, value)
    assert r.returncode == 2
    assert f"argument {option}: must be a whole number of frames, 1 or more, not '{value}'" in r.stderr
