"""Inference speed and memory, all in one run on the same frames, torch never imported:
- the classifier's faces/s (batched);
- end to end on a 640x480 video with one face: default settings (detect-then-track) against
  full-frame detection on every frame, with the face found in how many frames and the mean IoU of
  the default boxes against the per-frame ones; the detector at 320 px too, and a tracked face's
  expression read every other frame (`--classify-every 2`; what that changes in the readings:
  experiments/classify_every.py);
- a 1280x720 video tiled from the samples (at least 5 faces): FPS at default settings;
- the webcam path (`emoscope webcam --no-window` on a file source): per-frame latency p50/p95;
- peak RSS of the video pipeline;
- the face landmarker (`--mesh`): its cost per face alone, and FPS on the one-face video with it,
  tracking faces by their previous mesh (the default) and re-detecting them in every frame, with
  how far apart the two paths put the landmarks there and on the sample clip (`--no-with-mesh`
  leaves it out);
- with --fer-python, the `fer` package's own pipeline (Haar cascade + its CNN) on the same frames
  in its own virtual environment, and the ratios (`speedup_vs_fer_default`).
Each pipeline runs in a child process of its own, so its peak RSS is its own. Every timing is the
fastest of `--repeats` runs (each side warmed up first), because the spread between runs on a
shared 2-core host is larger than the effects measured.
Usage: python benchmarks/bench_inference.py [--threads 2] [--model NAME|PATH] [--fer-python PATH] [--repeats 3]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

from emoscope.analyze import Analyzer
from emoscope.analyze.analyzer import CLASSIFY_EVERY, DETECT_EVERY
from emoscope.analyze.tracking import iou
from emoscope.memory import peak_rss_mb
from emoscope.runtime import ExpressionClassifier

SHARED = os.environ.get("EMOSCOPE_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
YUNET = os.environ.get("EMOSCOPE_YUNET_MODEL") or os.path.join(SHARED, "models", "face_detection_yunet.onnx")
LANDMARKER = os.environ.get("EMOSCOPE_LANDMARKER_MODEL") or os.path.join(SHARED, "models", "face_landmarker.task")


def classifier_rate(model: str | None, threads: int, batch: int = 256, rounds: int = 24) -> float:
    clf = ExpressionClassifier(model, threads)
    shape = (batch, *clf.meta.input_size) + ((3,) if clf.meta.color == "rgb" else ())  # the model's own input
    crops = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    clf.predict(crops)
    t = time.perf_counter()
    for _ in range(rounds):
        clf.predict(crops)
    return rounds * batch / (time.perf_counter() - t)


def write_video(path: str, n: int = 300) -> str:
    """A 640x480 MJPEG video with one face: the sample photo of one person, panned slowly."""
    img = cv2.imread(os.path.join(SHARED, "samples", "facerec_obama.jpg"))
    img = cv2.resize(img, (int(img.shape[1] * 560 / img.shape[0]), 560))
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 480))
    for i in range(n):
        dx, dy = int(20 * np.sin(i / 15)), int(15 * np.cos(i / 20))
        x0 = max(0, (img.shape[1] - 640) // 2 + dx)
        frame = np.ascontiguousarray(img[40 + dy:520 + dy, x0:x0 + 640])
        writer.write(cv2.copyMakeBorder(frame, 0, 0, 0, 640 - frame.shape[1], cv2.BORDER_REPLICATE))
    writer.release()
    return path


def hamilton_frame(index: int = 262) -> np.ndarray:
    cap = cv2.VideoCapture(os.path.join(SHARED, "samples", "facerec_short_hamilton_clip.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = cap.read()
    cap.release()
    return frame


def write_tiled_video(path: str, n: int = 300) -> str:
    """A 1280x720 MJPEG video of four 640x360 tiles from the samples (the one-person portrait, the
    two-person photo, the astronaut and the audience shot of the clip: 8 or more faces), each
    panned slowly so the faces move."""
    tiles = [cv2.imread(os.path.join(SHARED, "samples", name)) for name in
             ("facerec_obama.jpg", "facerec_two_people.jpg", "skimage_astronaut.png")] + [hamilton_frame()]
    big = []
    for t in tiles:
        s = max(700 / t.shape[1], 400 / t.shape[0])
        big.append(cv2.resize(t, (int(np.ceil(t.shape[1] * s)), int(np.ceil(t.shape[0] * s)))))
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 30, (1280, 720))
    for i in range(n):
        parts = []
        for k, t in enumerate(big):
            dx = int((t.shape[1] - 640) / 2 * (1 + np.sin(i / 25 + k)))
            dy = int((t.shape[0] - 360) / 2 * (1 + np.cos(i / 30 + k)))
            parts.append(t[dy:dy + 360, dx:dx + 640])
        writer.write(np.vstack([np.hstack(parts[:2]), np.hstack(parts[2:])]))
    writer.release()
    return path


def child(args) -> None:
    """One pipeline on one video: FPS, frames with a face, the largest box per frame, peak RSS."""
    a = Analyzer(args.model, detector_model=YUNET, threads=args.threads, detect_max_side=args.detect_side,
                 detect_every=args.detect_every, mesh=args.mesh, mesh_model=LANDMARKER if args.mesh else None,
                 seed_mesh=args.seed_mesh, classify_every=args.classify_every)
    for _ in a.iter_video(args.video, max_frames=10, progress=False):  # warm-up, as fer gets below
        pass
    boxes, frames, found, faces = [], 0, 0, 0
    t = time.perf_counter()
    for _, _, _, fs in a.iter_video(args.video, progress=False, live=args.live):
        frames += 1
        found += len(fs) > 0
        faces += len(fs)
        boxes.append(list(max(fs, key=lambda f: f.box[2] * f.box[3]).box) if fs else None)
    fps = frames / (time.perf_counter() - t)
    print(json.dumps({"fps": fps, "found": found, "frames": frames, "faces_per_frame": faces / max(frames, 1),
                      "boxes": boxes, "rss": peak_rss_mb(), "torch": "torch" in sys.modules}))


def run_child(video: str, args, side: int, every: int, mesh: bool = False, seed_mesh: bool = True,
              classify_every: int = CLASSIFY_EVERY, live: bool = False) -> dict:
    """The fastest of `args.repeats` child runs (the peak RSS: the largest)."""
    cmd = [sys.executable, __file__, "--video", video, "--threads", str(args.threads), "--detect-side", str(side),
           "--detect-every", str(every), "--classify-every", str(classify_every)]
    cmd += (["--model", args.model] if args.model else []) + (["--mesh"] if mesh else [])
    cmd += ([] if seed_mesh else ["--no-seed-mesh"]) + (["--live"] if live else [])
    runs = [json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
            for _ in range(args.repeats)]
    return {**max(runs, key=lambda r: r["fps"]), "rss": max(r["rss"] for r in runs)}


def mesh_ms_per_face(repeats: int = 50) -> float:
    """The face landmarker alone (landmarks, blendshapes and the derived measures) on one face."""
    from emoscope.runtime.detector import YuNetDetector
    from emoscope.runtime.landmarker import Landmarker
    img = cv2.imread(os.path.join(SHARED, "samples", "facerec_obama.jpg"))
    det = YuNetDetector(YUNET).detect(img)[0]
    lm = Landmarker(LANDMARKER, threads=1)  # as the Analyzer runs it
    for _ in range(5):
        lm.measure(img, det.box, det.landmarks[:2])
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(repeats):
            lm.measure(img, det.box, det.landmarks[:2])
        best = min(best, (time.perf_counter() - t) / repeats * 1000)
    return best


def fit_flag_ms_per_face(video: str, repeats: int = 500) -> float:
    """The fit flag (`emoscope.analyze.quality.assess`: light, contrast, sharpness, head turn from
    the five points) on the benchmark video's face, as the video path runs it once a face a frame."""
    from emoscope.analyze.quality import assess
    from emoscope.runtime.detector import YuNetDetector
    cap = cv2.VideoCapture(video)
    _, frame = cap.read()
    cap.release()
    det = YuNetDetector(YUNET).detect(frame)[0]
    for _ in range(20):
        assess(frame, det.box, det.landmarks, det.score)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(repeats):
            assess(frame, det.box, det.landmarks, det.score)
        best = min(best, (time.perf_counter() - t) / repeats * 1000)
    return best


def mesh_agreement(video: str, args) -> dict:
    """How far the landmarks of faces tracked by their previous mesh lie from those of faces
    re-detected in every frame: per face, the mean distance of the 478 points in pixels (faces
    paired by IoU > 0.5 in the same frame); the median and 90th percentile over faces."""
    meshes = []
    for seed in (True, False):
        a = Analyzer(args.model, detector_model=YUNET, threads=args.threads, mesh=True, mesh_model=LANDMARKER,
                     seed_mesh=seed)
        meshes.append({i: [f for f in faces if f.mesh is not None] for i, _, _, faces in a.iter_video(video, progress=False)})
    seeded, redetected = meshes
    gaps = [float(np.linalg.norm(np.asarray(f.mesh)[:, :2] - np.asarray(g.mesh)[:, :2], axis=1).mean())
            for i, faces in redetected.items() for f in faces for g in seeded.get(i, []) if iou(f.box, g.box) > 0.5]
    return {"faces": len(gaps), "median_px": round(float(np.median(gaps)), 2),
            "p90_px": round(float(np.percentile(gaps, 90)), 2)}


def webcam_latency(video: str, args) -> dict:
    """`emoscope webcam --no-window` on a file: its per-frame latency (the wait for the next frame
    plus its analysis), as it prints it."""
    cmd = [sys.executable, "-m", "emoscope.cli", "webcam", "--source", video, "--no-window", "--threads",
           str(args.threads), "--detector-model", YUNET] + (["--model", args.model] if args.model else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    ms = np.array([json.loads(line)["latency_ms"] for line in out.splitlines() if line.startswith("{")][10:])
    return {"webcam_latency_ms_p50": round(float(np.percentile(ms, 50)), 2),
            "webcam_latency_ms_p95": round(float(np.percentile(ms, 95)), 2), "webcam_frames": int(len(ms) + 10)}


FER_CODE = """
import sys, time, cv2
from fer.fer import FER
cap = cv2.VideoCapture(sys.argv[1])
frames = []
while len(frames) < 100:
    ok, f = cap.read()
    if not ok:
        break
    frames.append(f)
detector = FER(mtcnn=False)
detector.detect_emotions(frames[0])
best = float("inf")
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    found = sum(len(detector.detect_emotions(f)) > 0 for f in frames)
    best = min(best, (time.perf_counter() - t) / len(frames) * 1000)
print(best, found)
"""


def fer_ms_per_frame(python: str, video: str, repeats: int) -> tuple[float, int]:
    """fer's own pipeline (Haar + its CNN) on the first 100 frames, decoded before timing; the
    fastest of `repeats` passes."""
    out = subprocess.run([python, "-c", FER_CODE, video, str(repeats)], capture_output=True, text=True, check=True,
                         env=dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3"))
    ms, found = out.stdout.split()[-2:]
    return float(ms), int(found)


def mean_iou(boxes: list, reference: list) -> float:
    """Mean IoU with the reference boxes over the frames that have one (a missed face counts 0)."""
    pairs = [iou(b, r) if b is not None else 0.0 for b, r in zip(boxes, reference) if r is not None]
    return float(np.mean(pairs)) if pairs else 0.0


def main(args) -> dict:
    cv2.setNumThreads(args.threads)
    result = {"threads": args.threads, "repeats": args.repeats, "detect_every_default": DETECT_EVERY,
              "classifier_faces_per_s": round(classifier_rate(args.model, args.threads), 1)}
    tmp = tempfile.mkdtemp()
    video = write_video(os.path.join(tmp, "one_face_640x480.avi"))
    tiled = write_tiled_video(os.path.join(tmp, "tiled_1280x720.avi"))
    per_frame = run_child(video, args, 640, 1)
    default = run_child(video, args, 640, DETECT_EVERY)
    small = run_child(video, args, 320, DETECT_EVERY)
    halved = run_child(video, args, 640, DETECT_EVERY, classify_every=2)
    frame_by_frame = run_child(video, args, 640, DETECT_EVERY, live=True)
    n = default["frames"]
    result.update({
        "fps_default": round(default["fps"], 1), "ms_per_frame_default": round(1000 / default["fps"], 2),
        "frames_with_face_default": f"{default['found']}/{n}", "face_found_share_default": round(default["found"] / n, 4),
        "mean_iou_default_vs_per_frame_detection": round(mean_iou(default["boxes"], per_frame["boxes"]), 4),
        "fps_per_frame_detection": round(per_frame["fps"], 1),
        "ms_per_frame_per_frame_detection": round(1000 / per_frame["fps"], 2),
        "frames_with_face_per_frame_detection": f"{per_frame['found']}/{per_frame['frames']}",
        "fps_default_detect320": round(small["fps"], 1),
        "fps_classify_every2": round(halved["fps"], 1),
        # each frame read as it comes (a window, a live stream), not FRAMES_PER_READ at a time
        "fps_default_frame_by_frame": round(frame_by_frame["fps"], 1),
        "pipeline_peak_rss_mb": round(max(c["rss"] for c in (per_frame, default, small)), 1),
        "fit_flag_ms_per_face": round(fit_flag_ms_per_face(video), 3),
        "torch_imported": any(c["torch"] for c in (per_frame, default, small, halved, frame_by_frame)),
    })
    # its share of the default path's time a frame (it runs inside it: target < 5%)
    result["fit_flag_share_of_default_frame"] = round(
        result["fit_flag_ms_per_face"] * default["faces_per_frame"] / result["ms_per_frame_default"], 4)
    if args.with_mesh:
        meshed = run_child(video, args, 640, DETECT_EVERY, mesh=True)
        redetected = run_child(video, args, 640, DETECT_EVERY, mesh=True, seed_mesh=False)
        clip = os.path.join(SHARED, "samples", "facerec_short_hamilton_clip.mp4")
        result.update({"mesh_ms_per_face": round(mesh_ms_per_face(), 2),
                       "fps_mesh": round(meshed["fps"], 1), "ms_per_frame_mesh": round(1000 / meshed["fps"], 2),
                       "fps_mesh_redetected": round(redetected["fps"], 1),
                       "mesh_tracked_vs_redetected_px": mesh_agreement(video, args),
                       "mesh_tracked_vs_redetected_px_sample_clip": mesh_agreement(clip, args),
                       "frames_with_face_mesh": f"{meshed['found']}/{meshed['frames']}",
                       "mesh_pipeline_peak_rss_mb": round(meshed["rss"], 1), "mesh_torch_imported": meshed["torch"]})
    tiled_default = run_child(tiled, args, 640, DETECT_EVERY)
    tiled_per_frame = run_child(tiled, args, 640, 1)
    result.update({"tiled_1280x720_fps_default": round(tiled_default["fps"], 1),
                   "tiled_1280x720_faces_per_frame_default": round(tiled_default["faces_per_frame"], 2),
                   "tiled_1280x720_fps_per_frame_detection": round(tiled_per_frame["fps"], 1),
                   "tiled_1280x720_faces_per_frame_per_frame_detection": round(tiled_per_frame["faces_per_frame"], 2),
                   "tiled_1280x720_peak_rss_mb": round(max(tiled_default["rss"], tiled_per_frame["rss"]), 1)})
    result.update(webcam_latency(video, args))
    if args.fer_python:
        ms, found = fer_ms_per_frame(args.fer_python, video, args.repeats)
        result.update({"fer_ms_per_frame": round(ms, 2), "fer_frames_with_face": f"{found}/100",
                       "speedup_vs_fer_default": round(ms / result["ms_per_frame_default"], 1),
                       "speedup_vs_fer_per_frame_detection": round(ms / result["ms_per_frame_per_frame_detection"], 1),
                       "speedup_vs_fer_default_detect320": round(ms * small["fps"] / 1000, 1),
                       "speedup_vs_fer_classify_every2": round(ms * halved["fps"] / 1000, 1),
                       "speedup_vs_fer_default_frame_by_frame": round(ms * frame_by_frame["fps"] / 1000, 1)})
        if args.with_mesh:
            result["speedup_vs_fer_mesh"] = round(ms / result["ms_per_frame_mesh"], 1)
        ms, found = fer_ms_per_frame(args.fer_python, tiled, args.repeats)
        result.update({"fer_tiled_ms_per_frame": round(ms, 2), "fer_tiled_frames_with_face": f"{found}/100",
                       "tiled_speedup_vs_fer_default": round(ms * tiled_default["fps"] / 1000, 1)})
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", help="expression model name or ONNX path (default: embedded int8)")
    p.add_argument("--fer-python", help="python of a virtual environment with the `fer` package, for the ratio")
    p.add_argument("--repeats", type=int, default=3, help="runs of each timing; the fastest is kept")
    p.add_argument("--detect-side", type=int, default=640, help=argparse.SUPPRESS)   # child mode
    p.add_argument("--detect-every", type=int, default=DETECT_EVERY, help=argparse.SUPPRESS)
    p.add_argument("--classify-every", type=int, default=CLASSIFY_EVERY, help=argparse.SUPPRESS)
    p.add_argument("--with-mesh", action=argparse.BooleanOptionalAction, default=True,
                   help="also time the face landmarker (--mesh) alone and on the one-face video")
    p.add_argument("--video", help=argparse.SUPPRESS)  # child mode: one pipeline, report its own peak RSS
    p.add_argument("--mesh", action="store_true", help=argparse.SUPPRESS)  # child mode: the pipeline with --mesh
    p.add_argument("--seed-mesh", action=argparse.BooleanOptionalAction, default=True, help=argparse.SUPPRESS)
    p.add_argument("--live", action="store_true", help=argparse.SUPPRESS)  # child mode: each frame read as it comes
    args = p.parse_args()
    if args.video:
        child(args)
    else:
        print(json.dumps(main(args), indent=1))
