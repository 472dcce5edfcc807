"""Codings for researchers: ELAN and BORIS export, human codings read back, and `emoscope agree`
(known-answer statistics, round trips on the sample clip)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from emoscope.coding.agree import Alignment, agreement, align
from emoscope.coding.boris import COLUMNS
from emoscope.coding.segments import (CodingError, frame_step, frames_segments, read_coding, read_frames,
                                      read_label_map)

DATA = os.path.join(os.path.dirname(__file__), "data")


def _alignment(humans: dict[str, list], emoscope: list) -> Alignment:
    n = len(emoscope)
    arr = lambda v: np.array(v, dtype=object)  # noqa: E731
    return Alignment(np.arange(n) * 0.1, arr(emoscope), {k: arr(v) for k, v in humans.items()},
                     np.full(n, 0.9), 0.1, "1", False, arr(["neutral"] * n))


def test_kappa_f1_and_alpha_match_hand_computed_cases():
    # human a a b b, emoscope a b b b: p_o = 0.75, p_e = 0.5 * 0.25 + 0.5 * 0.75 = 0.5 -> kappa 0.5
    s = agreement(_alignment({"coder": ["happy", "happy", "sad", "sad"]}, ["happy", "sad", "sad", "sad"]))
    assert s["kappa"] == pytest.approx(0.5) and s["agreement"] == pytest.approx(0.75)
    assert s["per_class"]["happy"]["f1"] == pytest.approx(2 / 3, abs=1e-4)    # precision 1, recall 1/2
    assert s["per_class"]["sad"]["f1"] == pytest.approx(0.8, abs=1e-4)        # precision 2/3, recall 1
    assert s["confusion"]["rows_human_cols_emoscope"] == [[1, 1], [0, 2]]
    # Krippendorff's alpha, nominal, two coders a a b b / a b b b: coincidences o_aa 2, o_ab = o_ba 1,
    # o_bb 4; n_a 3, n_b 5, n 8; D_o = 2/8, D_e = 2 * 3 * 5 / (8 * 7); alpha = 1 - D_o / D_e = 0.5333
    s = agreement(_alignment({"one": ["happy", "happy", "sad", "sad"], "two": ["happy", "sad", "sad", "sad"]},
                             ["happy", "happy", "sad", "sad"]))
    assert s["coders"]["alpha_humans"] == pytest.approx(1 - (2 / 8) / (30 / 56), abs=1e-4)
    assert s["coders"]["mean_kappa_with_others"]["emoscope"] == pytest.approx((1.0 + 0.5) / 2)


def test_unreadable_and_uncoded_frames_are_counted_apart():
    s = agreement(_alignment({"coder": ["happy", "happy", None, "sad", "sad"]},
                             ["happy", "unreadable", "sad", "sad", None]))
    assert s["compared"] == 2 and s["kappa"] == 1.0
    assert s["unreadable_frames"] == 1 and s["uncoded_frames"] == 1 and s["no_face_frames"] == 1


def test_plain_csv_label_maps_and_errors(tmp_path):
    (tmp_path / "seg.csv").write_text("start_s,end_s,label\n0,1.5,joy\n1.5,3,Anger\n3,4,AU99\n")
    (tmp_path / "map.csv").write_text("from,to\nAU99,surprise\n")
    seg = read_coding(str(tmp_path / "seg.csv"), label_map=read_label_map(str(tmp_path / "map.csv")))
    assert list(seg["label"]) == ["happy", "angry", "surprise"]
    (tmp_path / "pts.csv").write_text("time_s,label\n0,positive\n2,negative\n3,neutral\n")
    pts = read_coding(str(tmp_path / "pts.csv"))
    assert list(pts["end_s"]) == [2, 3, 4.5] and list(pts["label"]) == ["positive", "negative", "neutral"]
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(CodingError, match="start_s,end_s,label"):
        read_coding(str(tmp_path / "bad.csv"))
    (tmp_path / "alien.csv").write_text("start_s,end_s,label\n0,1,xyz\n")
    with pytest.raises(CodingError, match="label map"):
        read_coding(str(tmp_path / "alien.csv"))


@pytest.fixture(scope="module")
def clip_frames(tmp_path_factory):
    """The sample clip analysed once with ELAN and BORIS codings."""
    shared = os.environ.get("EMOSCOPE_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
    clip = os.path.join(shared, "samples", "facerec_short_hamilton_clip.mp4")
    yunet = os.path.join(shared, "models", "face_detection_yunet.onnx")
    if not os.path.exists(clip) or not os.path.exists(yunet):
        pytest.skip(f"{clip} not found: set EMOSCOPE_SHARED to the shared data folder")
    out = tmp_path_factory.mktemp("coding")
    r = subprocess.run([sys.executable, "-m", "emoscope.cli", "analyze", clip, "--coding", "elan,boris", "--out", str(out),
                        "--detector-model", yunet, "--format", "csv"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return str(out / "facerec_short_hamilton_clip")


def agree(*args) -> dict:
    r = subprocess.run([sys.executable, "-m", "emoscope.cli", "agree", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return json.loads(r.stdout)


def _longest_person(stem: str) -> str:
    faces = read_frames(stem + ".frames.csv")
    return str(int(faces["face_id"].value_counts().idxmax()))


def test_elan_export_validates_and_round_trips_to_kappa_1(clip_frames, tmp_path):
    xmlschema = pytest.importorskip("xmlschema")
    schema = xmlschema.XMLSchema(os.path.join(DATA, "eaf-3.0-subset.xsd"))
    schema.validate(clip_frames + ".eaf")
    broken = open(clip_frames + ".eaf").read().replace('TIME_SLOT_REF2="ts2"', 'TIME_SLOT_REF2="ts999999"', 1)
    assert not schema.is_valid(broken)  # the schema checks what it should
    person = _longest_person(clip_frames)
    s = agree(clip_frames + ".eaf", "--with", clip_frames + ".frames.csv", "--tier", f"person {person} expression",
              "--person", person, "--out", str(tmp_path))
    assert s["kappa"] == 1.0 and s["agreement"] == 1.0 and s["compared"] > 50
    assert s["valence"]["kappa"] is None or s["valence"]["agreement"] == 1.0
    text = (tmp_path / "agreement.html").read_text()
    assert "<svg" in text and "Confusion matrix" in text and "NaN" not in text
    pympi = pytest.importorskip("pympi")
    eaf = pympi.Elan.Eaf(clip_frames + ".eaf")  # an independent ELAN reader opens it
    assert f"person {person} expression" in eaf.get_tier_names()


@pytest.mark.slow
def test_video_and_agreement_reports_fit_a_phone(clip_frames, tmp_path):
    """The video report `analyze` writes and the agreement report, in Chromium at 1400 and 400 px:
    nothing widens the page and the console stays clean."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from test_browser import CHROMIUM, launch
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (.ci/run installs Debian's package)")
    person = _longest_person(clip_frames)
    agree(clip_frames + ".eaf", "--with", clip_frames + ".frames.csv", "--tier", f"person {person} expression",
          "--person", person, "--out", str(tmp_path))
    errors = []
    with sync_api.sync_playwright() as p:
        browser = launch(p, os.devnull)
        for width in (1400, 400):
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            for report in (clip_frames + ".report.html", str(tmp_path / "agreement.html")):
                page.goto("file://" + os.path.abspath(report))
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 1, (report, width, overflow)
            page.close()
        browser.close()
    assert not errors, errors


def test_boris_export_has_boris_columns_and_round_trips(clip_frames):
    table = pd.read_csv(clip_frames + ".boris.tsv", sep="\t")
    assert list(table.columns) == COLUMNS and set(table["Behavior type"]) == {"START", "STOP"}
    person = _longest_person(clip_frames)
    s = agree(clip_frames + ".boris.tsv", "--with", clip_frames + ".frames.csv", "--tier", f"person {person}",
              "--person", person)
    assert s["kappa"] == 1.0


def test_shuffled_labels_give_kappa_near_0_and_a_shift_gives_onsets(clip_frames, tmp_path):
    frames = read_frames(clip_frames + ".frames.csv")
    person = _longest_person(clip_frames)
    faces = frames[(frames["face_id"].astype("Int64").astype(str) == person) & (frames["readable"] == True)]  # noqa: E712
    step = frame_step(frames)
    kappas = []
    for seed in range(20):
        shuffled = np.random.default_rng(seed).permutation(faces["label"].to_numpy())
        pd.DataFrame({"start_s": faces["timestamp"], "end_s": faces["timestamp"] + step, "label": shuffled}).to_csv(
            tmp_path / "shuffled.csv", index=False)
        al = align(frames, {"coder": read_coding(str(tmp_path / "shuffled.csv"))}, person)
        kappas.append(agreement(al)["kappa"])
    assert abs(np.mean(kappas)) <= 0.05 and max(abs(k) for k in kappas) < 0.25, kappas
    seg = frames_segments(frames)
    seg = seg[seg["person"] == person]
    seg.assign(start_s=seg["start_s"] + 5 * step, end_s=seg["end_s"] + 5 * step)[["start_s", "end_s", "label"]].to_csv(
        tmp_path / "late.csv", index=False)
    s = agree(str(tmp_path / "late.csv"), "--with", clip_frames + ".frames.csv", "--person", person)
    # emoscope starts events 5 frames before the coder; a run that unreadable frames split in two
    # can match the coder's run by its later part (the coder's run spans the gap), so a class
    # whose runs are short and split reads a little less than 5, never later than the coder
    assert s["events"]["median_onset_frames"] == -5 and s["events"]["median_offset_frames"] == -5
    onsets = [v["median_onset_frames"] for v in s["events"]["per_class"].values() if v["matched"]]
    assert sum(o == -5 for o in onsets) >= len(onsets) / 2 and all(-5 <= o < 0 for o in onsets), onsets


def test_agree_says_what_is_wrong_in_plain_words(tmp_path):
    r = subprocess.run([sys.executable, "-m", "emoscope.cli", "agree", str(tmp_path / "none.eaf"), "--with",
                        str(tmp_path / "none.frames.csv")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "not found" in r.stderr and "Traceback" not in r.stderr
