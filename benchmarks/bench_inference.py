"""Inference speed and memory: classifier faces/s (batched), end-to-end FPS on a 640x480 video
with one face, and peak RSS — all in one process, torch never imported. With --fer-python, the
`fer` package's own pipeline (Haar cascade + its CNN) runs on the same frames in the same run, in
its own virtual environment, and the ratio is reported.
Usage: python benchmarks/bench_inference.py [--threads 2] [--model NAME|PATH] [--fer-python PATH]
"""

import argparse
import json
import os
import resource
import sys
import time

import cv2
import numpy as np

from emoscope.analyze import Analyzer
from emoscope.runtime import ExpressionClassifier

SHARED = os.environ.get("EMOSCOPE_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def classifier_rate(model: str | None, threads: int, batch: int = 256, rounds: int = 24) -> float:
    clf = ExpressionClassifier(model, threads)
    crops = np.random.default_rng(0).integers(0, 256, (batch, 48, 48), dtype=np.uint8)
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


def end_to_end_fps(analyzer: Analyzer, video: str) -> tuple[float, int, int]:
    """Decode, detect, classify and track every frame of the video, as `emoscope analyze` does."""
    t = time.perf_counter()
    frames = found = 0
    for _, _, _, faces in analyzer.iter_video(video, progress=False):
        frames += 1
        found += len(faces) > 0
    return frames / (time.perf_counter() - t), found, frames


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
t = time.perf_counter()
found = sum(len(detector.detect_emotions(f)) > 0 for f in frames)
print((time.perf_counter() - t) / len(frames) * 1000, found)
"""


def fer_ms_per_frame(python: str, video: str) -> tuple[float, int]:
    """fer's own pipeline (Haar + its CNN) on the first 100 frames, decoded before timing."""
    import subprocess
    out = subprocess.run([python, "-c", FER_CODE, video], capture_output=True, text=True, check=True,
                         env=dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3"))
    ms, found = out.stdout.split()[-2:]
    return float(ms), int(found)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", help="expression model name or ONNX path (default: embedded int8)")
    p.add_argument("--detect-side", type=int, default=320, help="detector input's longer side")
    p.add_argument("--fer-python", help="python of a virtual environment with the `fer` package, for the ratio")
    p.add_argument("--video", help=argparse.SUPPRESS)  # child mode: one pipeline, report its own peak RSS
    args = p.parse_args()
    if args.video:
        a = Analyzer(args.model, detector_model=os.environ.get("EMOSCOPE_YUNET_MODEL") or os.path.join(
            SHARED, "models", "face_detection_yunet.onnx"), threads=args.threads, detect_max_side=args.detect_side)
        fps, found, n = end_to_end_fps(a, args.video)
        print(json.dumps({"fps": fps, "found": found, "frames": n, "rss": rss_mb(), "torch": "torch" in sys.modules}))
        sys.exit(0)
    yunet = os.environ.get("EMOSCOPE_YUNET_MODEL") or os.path.join(SHARED, "models", "face_detection_yunet.onnx")
    cv2.setNumThreads(args.threads)
    result = {"threads": args.threads, "classifier_faces_per_s": round(classifier_rate(args.model, args.threads), 1)}
    import tempfile
    video = write_video(os.path.join(tempfile.mkdtemp(), "one_face_640x480.avi"))
    import subprocess
    for side in (640, args.detect_side):
        cmd = [sys.executable, __file__, "--video", video, "--threads", str(args.threads), "--detect-side", str(side)]
        child = json.loads(subprocess.run(cmd + (["--model", args.model] if args.model else []), capture_output=True,
                                          text=True, check=True).stdout)
        result[f"end_to_end_fps_detect{side}"] = round(child["fps"], 1)
        result[f"frames_with_face_detect{side}"] = f"{child['found']}/{child['frames']}"
        result[f"ms_per_frame_detect{side}"] = round(1000 / child["fps"], 2)
        result[f"pipeline_peak_rss_mb_detect{side}"] = round(child["rss"], 1)
        result["torch_imported"] = result.get("torch_imported", False) or child["torch"]
    if args.fer_python:
        ms, found = fer_ms_per_frame(args.fer_python, video)
        result["fer_ms_per_frame"] = round(ms, 2)
        result["fer_frames_with_face"] = f"{found}/100"
        for side in (640, args.detect_side):
            result[f"speedup_vs_fer_detect{side}"] = round(ms / result[f"ms_per_frame_detect{side}"], 1)
    print(json.dumps(result, indent=1))
