"""Inference speed and memory: classifier faces/s (batched), end-to-end FPS on a 640x480 video
with one face, and peak RSS — all in one process, torch never imported.
Usage: python benchmarks/bench_inference.py [--threads 2] [--model PATH]
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


def classifier_rate(model: str | None, threads: int, batch: int = 256, rounds: int = 8) -> float:
    clf = ExpressionClassifier(model, threads)
    crops = np.random.default_rng(0).integers(0, 256, (batch, 48, 48), dtype=np.uint8)
    clf.predict(crops)
    t = time.perf_counter()
    for _ in range(rounds):
        clf.predict(crops)
    return rounds * batch / (time.perf_counter() - t)


def video_frames(n: int = 300) -> list[np.ndarray]:
    """640x480 frames with one face: the sample photo of one person, panned slightly over time."""
    img = cv2.imread(os.path.join(SHARED, "samples", "facerec_obama.jpg"))
    img = cv2.resize(img, (int(img.shape[1] * 560 / img.shape[0]), 560))
    frames = []
    for i in range(n):
        dx, dy = int(20 * np.sin(i / 15)), int(15 * np.cos(i / 20))
        x0 = max(0, (img.shape[1] - 640) // 2 + dx)
        frames.append(np.ascontiguousarray(img[40 + dy:520 + dy, x0:x0 + 640]))
    return frames


def end_to_end_fps(analyzer: Analyzer, frames: list[np.ndarray]) -> tuple[float, int]:
    from emoscope.analyze.tracking import Tracker
    tracker = Tracker()
    found = 0
    analyzer.analyze(frames[0])
    t = time.perf_counter()
    for i, f in enumerate(frames):
        dets, probs, _ = analyzer._faces(f)
        tracker.update(i, [d.box for d in dets], probs)
        found += len(dets) > 0
    return len(frames) / (time.perf_counter() - t), found


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", help="expression ONNX (default: embedded)")
    p.add_argument("--detect-side", type=int, default=320, help="detector input's longer side")
    args = p.parse_args()
    yunet = os.environ.get("EMOSCOPE_YUNET_MODEL") or os.path.join(SHARED, "models", "face_detection_yunet.onnx")
    cv2.setNumThreads(args.threads)
    result = {"threads": args.threads, "classifier_faces_per_s": round(classifier_rate(args.model, args.threads), 1)}
    frames = video_frames()
    for side in (640, args.detect_side):
        a = Analyzer(args.model, detector_model=yunet, threads=args.threads, detect_max_side=side)
        fps, found = end_to_end_fps(a, frames)
        result[f"end_to_end_fps_detect{side}"] = round(fps, 1)
        result[f"frames_with_face_detect{side}"] = f"{found}/{len(frames)}"
        result[f"ms_per_frame_detect{side}"] = round(1000 / fps, 2)
    result["peak_rss_mb"] = round(rss_mb(), 1)
    result["torch_imported"] = "torch" in sys.modules
    print(json.dumps(result, indent=1))
