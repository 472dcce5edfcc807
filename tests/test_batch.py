"""`emoscope batch` (local and Ray engines, resume after kill -9, failures recorded) and
`emoscope campaign` (aggregation with a known answer, the report)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile

import cv2
import numpy as np
import pandas as pd
import pytest

from conftest import REPO, shared_path
from emoscope.analyze.inputs import expand_inputs
from emoscope.batch.campaign import aggregate, find_peaks, t95, write_campaign
from emoscope.cli import main

pytest.importorskip("pyarrow")
KEY = ["source", "frame", "track", "x", "y", "w", "h"]


def write_clip(src: str, dst: str, start: int, frames: int) -> None:
    cap = cv2.VideoCapture(src)
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    out = None
    for _ in range(frames):
        ok, frame = cap.read()
        if not ok:
            break
        if out is None:
            out = cv2.VideoWriter(dst, cv2.VideoWriter_fourcc(*"MJPG"), 29.97, (frame.shape[1], frame.shape[0]))
        out.write(frame)
    out.release()
    cap.release()


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> str:
    """~50 photos (the samples + web_faces), 3 short videos cut from the sample clip, a corrupt
    photo and a truncated video, in nested folders."""
    samples = shared_path("samples")
    web = shared_path("datasets", "web_faces.zip")
    root = tmp_path_factory.mktemp("collection")
    photos, videos = root / "photos" / "web", root / "videos"
    photos.mkdir(parents=True)
    videos.mkdir()
    for name in ("facerec_obama.jpg", "facerec_two_people.jpg", "skimage_astronaut.png"):
        (root / "photos" / name).write_bytes(open(os.path.join(samples, name), "rb").read())
    with zipfile.ZipFile(web) as z:
        names = sorted(n for n in z.namelist() if n.lower().endswith(".jpg"))[::150][:46]
        for i, n in enumerate(names):
            (photos / f"{i:03d}-{os.path.basename(n)}").write_bytes(z.read(n))
    (photos / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    clip = os.path.join(samples, "facerec_short_hamilton_clip.mp4")
    for i, start in enumerate((0, 90, 180)):
        write_clip(clip, str(videos / f"viewer{i}.avi"), start, 36)
    write_clip(clip, str(root / "whole.avi"), 0, 36)
    data = (root / "whole.avi").read_bytes()
    (videos / "truncated.avi").write_bytes(data[: int(len(data) * 0.6)])
    (root / "whole.avi").unlink()
    return str(root)


def detector() -> list[str]:
    return ["--detector-model", shared_path("models", "face_detection_yunet.onnx")]


def batch(args: list[str]) -> None:
    assert main(["batch", *args, *detector()]) == 0


@pytest.fixture(scope="module")
def local_run(collection, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("local") / "out")
    batch([collection, "--out", out, "--workers", "2", "--commit-every", "10"])
    return out


def test_inputs_expand_folders_globs_and_lists(collection, tmp_path):
    files = expand_inputs([collection])
    assert len(files) == 49 + 1 + 4 and all(os.path.isfile(f) for f in files)
    (tmp_path / "notes.txt").write_text("not a photo")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two photos\n{files[0]}\n{files[1]}\n\nmissing.jpg\n")
    table = tmp_path / "list.csv"
    table.write_text(f"id,path\n1,{files[2]}\n2,{files[0]}\n")
    missing: list[str] = []
    got = expand_inputs([str(listing), str(table), os.path.join(collection, "videos", "*.avi")], missing=missing)
    assert got[:3] == [files[0], files[1], files[2]] and len(got) == 3 + 4
    assert missing == [str(tmp_path / "missing.jpg")]


def test_batch_writes_faces_videos_and_manifest(local_run, collection):
    manifest = pd.read_parquet(os.path.join(local_run, "manifest"))
    faces = pd.read_parquet(os.path.join(local_run, "faces"))
    videos = pd.read_parquet(os.path.join(local_run, "videos"))
    assert len(manifest) == 54 and manifest["source"].is_unique
    failed = manifest[manifest["status"] == "failed"].set_index("source")["reason"]
    assert sorted(os.path.basename(s) for s in failed.index) == ["corrupt.jpg", "truncated.avi"]
    assert "truncated" in failed[os.path.join(collection, "videos", "truncated.avi")]
    assert not faces.duplicated(KEY).any()
    assert set(faces["source"]) <= set(manifest.loc[manifest["status"] == "done", "source"])
    per_source = faces.groupby("source").size()
    done = manifest[manifest["status"] == "done"].set_index("source")
    assert (per_source == done.loc[per_source.index, "faces"]).all()
    assert (faces.loc[faces["kind"] == "image", "track"] == -1).all()
    video_faces = faces[faces["kind"] == "video"]
    assert video_faces["source"].nunique() == 3 and (video_faces["track"] >= 0).all()
    assert np.allclose(faces[["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]].sum(axis=1), 1, atol=1e-3)
    assert set(videos["source"]) <= set(video_faces["source"]) and videos["thumbnail_png"].notna().all()
    assert (manifest.loc[manifest["kind"] == "video", "worker_rss_mb"] > 50).all()


def test_rerun_skips_what_is_done_and_refuses_other_settings(local_run, collection, capsys):
    before = pd.read_parquet(os.path.join(local_run, "faces"))
    batch([collection, "--out", local_run, "--workers", "2"])
    out = capsys.readouterr().out  # the two broken files are tried again and fail again
    assert '"already_recorded": 52' in out and '"retried": 2' in out and '"failed": 2' in out
    pd.testing.assert_frame_equal(pd.read_parquet(os.path.join(local_run, "faces")), before)
    manifest = pd.read_parquet(os.path.join(local_run, "manifest"))
    assert len(manifest) == 54 and manifest["source"].is_unique
    assert main(["batch", collection, "--out", local_run, "--every", "2", *detector()]) == 2
    assert "other settings" in capsys.readouterr().err


def sorted_rows(out: str) -> pd.DataFrame:
    df = pd.read_parquet(os.path.join(out, "faces"))
    return df.sort_values(KEY).reset_index(drop=True)


@pytest.mark.slow
def test_ray_engine_gives_the_same_rows(local_run, collection, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    try:
        out = str(tmp_path / "ray")
        batch([collection, "--out", out, "--engine", "ray", "--workers", "2"])
    finally:
        ray.shutdown()
    pd.testing.assert_frame_equal(sorted_rows(out), sorted_rows(local_run))
    status = lambda o: pd.read_parquet(os.path.join(o, "manifest")).set_index("source").sort_index()[["status", "faces"]]
    pd.testing.assert_frame_equal(status(out), status(local_run))


@pytest.mark.slow
def test_resume_after_kill_9_leaves_nothing_missing_or_doubled(local_run, collection, tmp_path):
    out = str(tmp_path / "killed")
    cmd = [sys.executable, "-m", "emoscope.cli", "batch", collection, "--out", out, "--workers", "1",
           "--commit-every", "3", *detector()]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    manifest_dir = os.path.join(out, "manifest")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if os.path.isdir(manifest_dir) and len([n for n in os.listdir(manifest_dir) if not n.startswith(".")]) >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the job ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, at once
    proc.wait()
    partial = pd.read_parquet(manifest_dir)
    assert 0 < len(partial) < 54
    # a write cut short: a faces part without its manifest, and a temporary file
    faces_dir = os.path.join(out, "faces")
    first = sorted(n for n in os.listdir(faces_dir) if not n.startswith("."))[0]
    open(os.path.join(faces_dir, "part-orphan.parquet"), "wb").write(open(os.path.join(faces_dir, first), "rb").read())
    open(os.path.join(faces_dir, ".part-x.parquet.tmp"), "wb").write(b"half")
    batch([collection, "--out", out, "--workers", "2"])
    manifest = pd.read_parquet(manifest_dir)
    assert len(manifest) == 54 and manifest["source"].is_unique
    pd.testing.assert_frame_equal(sorted_rows(out), sorted_rows(local_run))


def viewers_faces(valence: dict[int, list[float]], seconds: int = 20, fps: int = 5) -> pd.DataFrame:
    """Synthetic batch rows: viewer i's valence in each second is valence[i][second]."""
    classes = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    rows = []
    for viewer, curve in valence.items():
        for frame in range(seconds * fps):
            v = curve[frame // fps]
            label = "happy" if v > 0.3 else "sad" if v < -0.3 else "neutral"
            rows.append({"source": f"viewer{viewer}.mp4", "kind": "video", "frame": frame, "time_s": frame / fps,
                         "track": 1, "x": 0, "y": 0, "w": 40, "h": 40, "score": 0.9,
                         **{c: float(c == label) for c in classes}, "label": label, "valence": "",
                         "valence_score": v, "short_track": False})
            # a smaller face in the background never counts as the viewer
            rows.append({**rows[-1], "track": 2, "w": 10, "h": 10, "valence_score": -1.0})
    return pd.DataFrame(rows)


def scripted_campaign() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    valence = {}
    for i in range(3):
        v = list(rng.normal(0, 0.02, 20))
        v[5] = 0.8 + 0.05 * i     # everybody likes second 5
        v[12] = -0.6              # everybody dislikes second 12
        if i == 0:
            v[8] = 0.9            # one viewer's spike: not a moment of the audience
        valence[i] = v
    faces = viewers_faces(valence)
    faces = faces[~((faces["source"] == "viewer2.mp4") & (faces["time_s"] >= 15))]  # viewer 2 looks away
    manifest = pd.DataFrame([{"source": f"viewer{i}.mp4", "kind": "video", "status": "done", "reason": "",
                              "duration_s": 20.0} for i in range(3)])
    return faces, manifest


def test_campaign_has_the_scripted_answer():
    faces, manifest = scripted_campaign()
    res = aggregate(faces, manifest, {"viewer0": "A", "viewer1.mp4": "A", "viewer2": "B"})
    curve = res["per_second"].set_index("second")
    assert len(curve) == 20 and curve.loc[3, "viewers"] == 3 and curve.loc[16, "viewers"] == 2
    assert curve.loc[5, "valence"] == pytest.approx(0.85)
    sd = np.std([0.8, 0.85, 0.9], ddof=1)
    assert curve.loc[5, "ci_high"] - curve.loc[5, "valence"] == pytest.approx(t95(2) * sd / np.sqrt(3))
    assert curve.loc[12, "ci_low"] == pytest.approx(-0.6) and curve.loc[12, "share_sad"] == 1.0
    peaks = res["peaks"]
    assert list(peaks.loc[peaks["kind"] == "positive", "second"]) == [5]
    assert list(peaks.loc[peaks["kind"] == "negative", "second"]) == [12]
    viewers = res["viewers"].set_index("viewer")
    assert viewers.loc["viewer2.mp4", "engagement"] == pytest.approx(15 / 20)
    assert viewers.loc["viewer0.mp4", "best_second"] == 8 and list(viewers["group"]) == ["A", "A", "B"]
    by_group = res["per_second_by_group"]
    assert set(by_group["group"]) == {"A", "B"} and len(by_group) == 40
    assert set(res["peaks_by_group"]["group"]) == {"A"}  # group B has one viewer: no moment holds across viewers


def test_find_peaks_needs_enough_viewers():
    curve = pd.DataFrame({"second": [0, 1], "viewers": [1, 3], "valence": [0.9, 0.5], "change": [0.9, 0.4],
                          "change_ci_low": [0.5, 0.1], "change_ci_high": [1.2, 0.7], "agree_up": [1.0, 1.0]})
    assert list(find_peaks(curve, min_viewers=2)["second"]) == [1]


def test_campaign_report_embeds_its_charts(tmp_path):
    pytest.importorskip("matplotlib")
    faces, manifest = scripted_campaign()
    batch_dir = tmp_path / "batch"
    for name, df in (("faces", faces), ("manifest", manifest)):
        (batch_dir / name).mkdir(parents=True)
        df.to_parquet(batch_dir / name / "part-0.parquet")
    report = write_campaign(str(batch_dir), str(tmp_path), {"viewer0": "A", "viewer1": "A", "viewer2": "B"}, "Ad 1")
    text = open(report).read()
    assert text.count("data:image/png;base64,") == 3
    assert "At 0:05, valence rose above" in text and "At 0:12, valence fell below" in text
    for name in ("per_second", "peaks", "viewers", "per_second_by_group", "peaks_by_group"):
        assert os.path.exists(tmp_path / f"{name}.csv")


@pytest.mark.slow
def test_campaign_command_end_to_end(collection, tmp_path):
    groups = tmp_path / "groups.csv"
    groups.write_text("video,group\nviewer0,north\nviewer1.avi,north\nviewer2,south\n")
    out = tmp_path / "campaign"
    videos = os.path.join(collection, "videos")
    assert main(["campaign", videos, "--out", str(out), "--groups", str(groups), "--workers", "2",
                 *detector()]) == 0
    text = open(out / "report.html").read()
    assert "3 recordings analysed (1 could not be read)" in text and "truncated.avi" in text
    viewers = pd.read_csv(out / "viewers.csv")
    assert len(viewers) == 3 and (viewers["engagement"] > 0.5).all()
    assert set(pd.read_csv(out / "per_second_by_group.csv")["group"]) == {"north", "south"}


def worker_pids(parent: int) -> list[int]:
    """The pool's worker processes (spawned children of `parent`)."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"spawn_main" in cmdline:
            pids.append(int(entry))
    return pids


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_its_work_redone(local_run, collection, tmp_path):
    out = str(tmp_path / "worker-killed")
    cmd = [sys.executable, "-m", "emoscope.cli", "batch", collection, "--out", out, "--workers", "2", *detector()]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # Units are submitted before the pool spawns its workers, so the first worker seen already
    # has work in flight; it is killed at once (the whole job takes only a few seconds).
    deadline, pids = time.time() + 60, []
    while time.time() < deadline and proc.poll() is None and not pids:
        pids = worker_pids(proc.pid)
        time.sleep(0.01)
    assert pids, f"no worker process seen; the job exited with {proc.poll()}"
    os.kill(pids[0], signal.SIGKILL)
    assert proc.wait(timeout=300) == 0
    assert "a worker process died" in proc.stderr.read()
    manifest = pd.read_parquet(os.path.join(out, "manifest"))
    assert len(manifest) == 54 and manifest["source"].is_unique
    pd.testing.assert_frame_equal(sorted_rows(out), sorted_rows(local_run))


@pytest.fixture
def few_photos(tmp_path) -> str:
    folder = tmp_path / "few"
    folder.mkdir()
    for name in ("facerec_obama.jpg", "facerec_two_people.jpg"):
        (folder / name).write_bytes(open(os.path.join(shared_path("samples"), name), "rb").read())
    (folder / "later.jpg").write_bytes(b"\xff\xd8\xff\xe0 not yet a photo")
    return str(folder)


def test_a_second_job_on_the_same_folder_refuses(few_photos, tmp_path, capsys):
    from emoscope.batch.store import BatchStore
    out = str(tmp_path / "out")
    held = BatchStore.lock(out)
    try:
        assert main(["batch", few_photos, "--out", out, "--workers", "1", *detector()]) == 2
        assert "being written by another batch job" in capsys.readouterr().err
    finally:
        held.close()
    batch([few_photos, "--out", out, "--workers", "1"])


def test_sources_keyed_by_real_path_and_failures_tried_again(few_photos, tmp_path, monkeypatch, capsys):
    import json
    out = str(tmp_path / "out")
    batch([few_photos, "--out", out, "--workers", "1"])
    first = json.loads(capsys.readouterr().out)
    assert first["done"] == 2 and first["failed"] == 1
    manifest = pd.read_parquet(os.path.join(out, "manifest"))
    assert "damaged" in manifest.set_index("source").loc[os.path.join(few_photos, "later.jpg"), "reason"]
    # the same files named from another working folder, relatively and through a link
    os.symlink(few_photos, tmp_path / "link")
    monkeypatch.chdir(tmp_path)
    batch(["link", "--out", out, "--workers", "1", "--keep-failed"])
    kept = json.loads(capsys.readouterr().out)
    assert kept["already_recorded"] == 3 and kept["failed_before"] == 1 and kept["done"] == 0
    # the failed file is mended: a plain re-run analyses it again and replaces its failed row
    (tmp_path / "few" / "later.jpg").write_bytes(open(os.path.join(few_photos, "facerec_obama.jpg"), "rb").read())
    batch([os.path.join("few", "."), "--out", out, "--workers", "1"])
    again = json.loads(capsys.readouterr().out)
    assert again["retried"] == 1 and again["done"] == 1 and again["failed"] == 0
    manifest = pd.read_parquet(os.path.join(out, "manifest"))
    assert len(manifest) == 3 and manifest["source"].is_unique and (manifest["status"] == "done").all()
    faces = pd.read_parquet(os.path.join(out, "faces"))
    assert faces.groupby("source").size().to_dict() == {os.path.join(few_photos, n): k for n, k in
                                                         (("facerec_obama.jpg", 1), ("facerec_two_people.jpg", 2),
                                                          ("later.jpg", 1))}


def test_damaged_parts_and_stray_files_are_named(few_photos, tmp_path, capsys):
    out = str(tmp_path / "out")
    batch([few_photos, "--out", out, "--workers", "1"])
    faces_dir = os.path.join(out, "faces")
    part = sorted(os.listdir(faces_dir))[0]
    good = open(os.path.join(faces_dir, part), "rb").read()
    open(os.path.join(faces_dir, part), "wb").write(good[: len(good) // 2])
    assert main(["batch", few_photos, "--out", out, *detector()]) == 2
    err = capsys.readouterr().err
    assert part in err and "damaged" in err and "Traceback" not in err and "Parquet" not in err
    open(os.path.join(faces_dir, part), "wb").write(good)
    (tmp_path / "out" / "manifest" / "notes.txt").write_text("hello")
    assert main(["batch", few_photos, "--out", out, *detector()]) == 2
    assert "notes.txt is not a part" in capsys.readouterr().err


def test_files_are_judged_by_their_first_bytes(tmp_path):
    from emoscope.images import ImageDecodeError, read_image
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as f:
        f.truncate(1 << 30)  # sparse: 1 GB that takes no disk
    with pytest.raises(ImageDecodeError, match="over the 512 MB limit"):
        read_image(str(huge))
    (tmp_path / "text.jpg").write_text("just text " * 1000)
    with pytest.raises(ImageDecodeError, match="not an image file"):
        read_image(str(tmp_path / "text.jpg"))


@pytest.mark.slow
def test_workers_exit_when_the_driver_is_killed(collection, tmp_path):
    out = str(tmp_path / "out")
    cmd = [sys.executable, "-m", "emoscope.cli", "batch", collection, "--out", out, "--workers", "2", *detector()]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def children() -> list[int]:
        try:
            return [int(p) for p in open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()]
        except OSError:
            return []
    deadline = time.time() + 60
    while time.time() < deadline and len(children()) < 2:
        time.sleep(0.1)
    workers = children()
    assert workers, "no worker process started"
    proc.send_signal(signal.SIGKILL)  # the driver alone
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(os.path.exists(f"/proc/{w}") and
                                         "Z" not in open(f"/proc/{w}/stat").read().split()[2] for w in workers):
        time.sleep(0.2)
    alive = [w for w in workers if os.path.exists(f"/proc/{w}") and "Z" not in open(f"/proc/{w}/stat").read().split()[2]]
    assert not alive


@pytest.mark.slow
def test_a_ray_started_by_the_driver_ends_with_it(collection, tmp_path):
    """kill -9 of a driver that started Ray itself: every process below it (Ray's own, its two
    agents that otherwise wait a minute, the workers) has ended within 15 s."""
    pytest.importorskip("ray")
    from emoscope.batch.reaper import descendants, started
    cmd = [sys.executable, "-m", "emoscope.cli", "batch", collection, "--out", str(tmp_path / "out"), "--engine", "ray",
           "--workers", "1", *detector()]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)

    def names(pids) -> list[str]:
        found = []
        for p in pids:
            try:
                found.append(" ".join(open(f"/proc/{p}/cmdline").read().split("\0")[:3]).strip())
            except OSError:
                pass
        return [n for n in found if n]  # an exiting process has an empty command line
    agents = {"ray::DashboardAgent", "ray::RuntimeEnvAgent"}
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        running = names(descendants(proc.pid))
        if agents <= {n.split()[0] for n in running} and any(n.startswith("ray::") and n.split()[0] not in agents for n in running):
            break  # the agents and a worker are up
        time.sleep(0.2)
    time.sleep(1.5)  # the driver tells its reaper about its processes every second
    below = descendants(proc.pid)
    assert proc.poll() is None and agents <= {n.split()[0] for n in names(below)}, (names(below), proc.poll())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 15
    while time.time() < deadline and any(started(p) for p in below):
        time.sleep(0.2)
    assert not [p for p in below if started(p)], names(p for p in below if started(p))


def test_campaigns_without_faces_or_videos_end_in_a_report(tmp_path, capsys):
    blank = str(tmp_path / "blank.avi")
    writer = cv2.VideoWriter(blank, cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for _ in range(20):
        writer.write(np.full((120, 160, 3), 90, np.uint8))
    writer.release()
    assert main(["campaign", blank, "--out", str(tmp_path / "c1"), *detector()]) == 0
    assert "No face was found in any recording" in (tmp_path / "c1" / "report.html").read_text()
    photo = os.path.join(shared_path("samples"), "facerec_obama.jpg")
    assert main(["campaign", photo, "--out", str(tmp_path / "c2"), *detector()]) == 0
    assert "a campaign needs videos" in (tmp_path / "c2" / "report.html").read_text()
    (tmp_path / "groups.csv").write_bytes(bytes(range(256)) * 4)
    assert main(["campaign", blank, "--out", str(tmp_path / "c3"), "--groups", str(tmp_path / "groups.csv"),
                 *detector()]) == 2
    err = capsys.readouterr().err
    assert "not a text CSV file" in err and "codec" not in err


def test_group_test_and_baseline_curve_have_the_scripted_answer():
    """Two groups that react opposite ways at second 5: the permutation test tells them apart; the
    baseline-corrected curve is each viewer's valence minus their own average."""
    from emoscope.batch.campaign import permutation_p
    rng = np.random.default_rng(1)
    valence = {}
    for i in range(8):
        v = list(rng.normal(0.1 * i, 0.02, 12))
        v[5] = v[5] + (0.8 if i < 4 else -0.8)
        valence[i] = v
    faces = viewers_faces(valence, seconds=12)
    manifest = pd.DataFrame([{"source": f"viewer{i}.mp4", "kind": "video", "status": "done", "reason": "",
                              "duration_s": 12.0} for i in range(8)])
    groups = {f"viewer{i}": ("up" if i < 4 else "down") for i in range(8)}
    groups["nobody"] = "ghost"
    res = aggregate(faces, manifest, groups)
    own = {i: np.mean(v) for i, v in valence.items()}
    expected = np.mean([valence[i][3] - own[i] for i in range(8)])
    assert res["per_second"].set_index("second").loc[3, "change"] == pytest.approx(expected, abs=1e-6)
    assert any("'nobody'" in w for w in res["warnings"])
    assert dict(zip(res["group_sizes"]["group"], res["group_sizes"]["viewers"])) == {"down": 4, "up": 4}
    assert permutation_p([0.8, 0.7, 0.9, 0.85], [-0.8, -0.7, -0.9, -0.75]) < 0.05
    assert permutation_p([0.1, -0.1, 0.05, 0.0], [0.08, -0.05, 0.02, -0.01]) > 0.3
    by_group = res["per_second_by_group"].set_index(["group", "second"])
    assert by_group.loc[("up", 5), "change"] > 0.5 > -0.5 > by_group.loc[("down", 5), "change"]


def write_frames(path: str, frames: list[np.ndarray], fps: float) -> None:
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (frames[0].shape[1], frames[0].shape[0]))
    for f in frames:
        writer.write(f)
    writer.release()


@pytest.mark.slow
def test_campaign_with_a_stimulus_offsets_and_groups(tmp_path, capsys):
    """A 4 s ad; one recording on time, one starting 2 s late (offset file), one running 3 s past
    the ad; a groups file naming an unknown recording."""
    cap = cv2.VideoCapture(shared_path("samples", "facerec_short_hamilton_clip.mp4"))
    clip = []
    while len(clip) < 120:
        ok, frame = cap.read()
        if not ok:
            break
        clip.append(frame)
    fps = 30.0
    blank = [np.full_like(clip[0], 40)] * 60
    write_frames(str(tmp_path / "ad.avi"), clip, fps)
    rec = tmp_path / "recordings"
    rec.mkdir()
    write_frames(str(rec / "ontime.avi"), clip, fps)
    write_frames(str(rec / "late.avi"), blank + clip, fps)
    write_frames(str(rec / "long.avi"), clip + clip[:90], fps)
    (tmp_path / "offsets.csv").write_text("video,offset_s\nlate.avi,2.0\n")
    (tmp_path / "groups.csv").write_text("video,group\nontime,a\nlate,a\nmissing-viewer,b\n")
    out = tmp_path / "campaign"
    assert main(["campaign", str(rec), "--out", str(out), "--stimulus", str(tmp_path / "ad.avi"),
                 "--offsets", str(tmp_path / "offsets.csv"), "--groups", str(tmp_path / "groups.csv"),
                 "--workers", "1", *detector()]) == 0
    err = capsys.readouterr().err
    assert "missing-viewer" in err and "long.avi" in err  # unknown name; a recording without a group
    per_second = pd.read_csv(out / "per_second.csv")
    assert list(per_second["second"]) == [0, 1, 2, 3]
    viewers = pd.read_csv(out / "viewers.csv").set_index("viewer")
    assert list(viewers.loc[[v for v in viewers.index if v.endswith(("ontime.avi", "late.avi", "long.avi"))],
                            "seconds"]) == [4, 4, 4]
    faces = pd.read_parquet(out / "batch" / "faces")
    from emoscope.batch.campaign import offset_of, prob_columns, viewer_seconds
    vs = viewer_seconds(faces, prob_columns(faces), {"late.avi": 2.0}, 4.0).set_index(["viewer", "second"])
    late = vs.xs(next(v for v in vs.index.levels[0] if v.endswith("late.avi")))["valence"]
    ontime = vs.xs(next(v for v in vs.index.levels[0] if v.endswith("ontime.avi")))["valence"]
    assert list(late.index) == [0, 1, 2, 3] and np.abs(late - ontime).max() < 0.1
    assert offset_of("/x/late.avi", {"late": 2.0}) == 2.0
    text = (out / "report.html").read_text()
    assert "id='stimulus'" in text and (out / "stimulus.mp4").exists() and "data-seek" in text
    assert "missing-viewer" in text and (out / "report.pdf").stat().st_size > 10_000
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")


def test_a_child_process_reports_its_own_peak_memory_not_its_parents():
    """`peak_rss_mb` (workers' `worker_rss_mb`, the benchmarks' pipeline RSS): a process started
    by a parent that holds 400 MB reports its own peak, not the parent's."""
    import subprocess
    import sys
    from emoscope.memory import peak_rss_mb
    held = np.ones(100_000_000, np.float32)  # 400 MB, touched
    parent = peak_rss_mb()
    child = float(subprocess.run([sys.executable, "-c", "from emoscope.memory import peak_rss_mb; print(peak_rss_mb())"],
                                 capture_output=True, text=True, check=True).stdout)
    assert parent > 400 and 5 < child < parent - 300, (parent, child)
    del held


@pytest.mark.parametrize("missing", ["detector", "landmarker"])
def test_a_missing_model_is_said_once_in_plain_words_before_any_worker(few_photos, tmp_path, monkeypatch, capfd,
                                                                         missing):
    from emoscope.cli import main
    variable = "EMOSCOPE_YUNET_MODEL" if missing == "detector" else "EMOSCOPE_LANDMARKER_MODEL"
    monkeypatch.setenv(variable, str(tmp_path / "gone.onnx"))
    args = [] if missing == "detector" else detector()
    assert main(["batch", few_photos, "--out", str(tmp_path / "out"), "--workers", "1", "--mesh", *args]) == 2
    err = capfd.readouterr().err
    assert f"emoscope batch: {variable}=" in err and "does not exist" in err
    assert "Traceback" not in err and "Error" not in err and "died" not in err


def test_report_cover_names_date_model_settings_and_n_and_small_groups_get_no_test(tmp_path):
    """A 6.84 s ad with two groups of 2 viewers: per-second rows are its whole seconds (0 to 6, no
    empty last one), the groups get no test and the report says why, no NaN in the HTML, and the
    PDF's first page names the date, the model, the settings and n."""
    pypdf = pytest.importorskip("pypdf")
    import re
    from emoscope.batch.campaign import write_report
    rng = np.random.default_rng(0)
    curves = {i: list(rng.normal(0.1 * i, 0.02, 7)) for i in range(4)}
    for i in range(4):
        curves[i][3] += 0.8  # everybody reacts at 0:03: a moment to compare the groups at
    faces = viewers_faces(curves, seconds=7)
    faces = faces[faces["time_s"] < 6.84]
    manifest = pd.DataFrame([{"source": f"viewer{i}.mp4", "kind": "video", "status": "done", "reason": "",
                              "duration_s": 6.84} for i in range(4)])
    groups = {"viewer0": "a", "viewer1": "a", "viewer2": "b", "viewer3": "b"}
    path = write_report(faces, manifest, str(tmp_path), groups, "Spot", about={"model": "expression-int8.onnx",
                                                                                 "settings": "every 1 frame"})
    per_second = pd.read_csv(tmp_path / "per_second.csv")
    assert list(per_second["second"]) == [0, 1, 2, 3, 4, 5, 6]
    tests = pd.read_csv(tmp_path / "group_tests.csv")
    assert len(tests) and tests["p_value"].isna().all() and tests["note"].str.contains("needs 4 viewers").all()
    text = re.sub(r"data:[^'\"]+", "", open(path).read())
    assert "NaN" not in text and "needs 4 viewers" in text
    pages = [p.extract_text() for p in pypdf.PdfReader(str(tmp_path / "report.pdf")).pages]
    for words in ("Spot", "date", "expression-int8.onnx", "every 1 frame", "viewers (n)", "4"):
        assert words in pages[0], (words, pages[0])
    # then an overview, the groups with the reason they were not tested, the viewers; no NaN anywhere
    assert "overview" in pages[1] and "4 recordings analysed" in pages[1] and "At 0:03" in pages[1], pages[1]
    groups = next(p for p in pages if "groups compared" in p)
    assert "needs 4 viewers" in groups.replace("\n", " ") and "–" in groups
    assert "viewer0.mp4" in pages[-1] and "100%" in pages[-1] and "most positive at" in pages[-1]
    assert not any("nan" in p.lower().split() for p in pages)
