"""`emoscope analyze` and `emoscope webcam`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import cv2
import pandas as pd

from ..images import DEFAULT_MAX_PIXELS, ImageDecodeError
from ..report import PlottingUnavailable, png_tag, table, write_html
from .analyzer import CLASSIFY_EVERY, DETECT_EVERY
from .inputs import expand_inputs, is_video

def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="expression ONNX model, or `fast` for the two-CNN ensemble that was the "
                   "default until 2026-12-06 (default: the embedded EfficientNet-Lite0 + CNN ensemble, "
                   "faster and more robust)")
    p.add_argument("--detector", default="yunet", choices=["yunet", "full-frame"],
                   help="face detector; full-frame treats each image as one face crop")
    p.add_argument("--detector-model", help="YuNet ONNX path (else $EMOSCOPE_YUNET_MODEL, cache, download)")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: default)")
    p.add_argument("--tta", action="store_true", help="average with the mirrored face (slower, a bit more accurate)")
    p.add_argument("--align", action="store_true", help="rotate faces upright using the eye landmarks")
    p.add_argument("--gender", action="store_true", help="also estimate apparent gender (see the model card)")
    p.add_argument("--max-faces", type=int, help="keep at most K faces per image/frame (largest scores)")
    p.add_argument("--mesh", action="store_true",
                   help="also measure each face with MediaPipe's face landmarker: 478-point mesh, 52 blendshapes, head "
                        "pose, gaze, eyes open, attention and approximate action units (about 10 ms a face); the "
                        "shipped model then reads the expression from the image and the blendshapes together, which "
                        "recalls the rarer expressions better (README, The model)")
    p.add_argument("--mesh-model", help="face_landmarker.task (else $EMOSCOPE_LANDMARKER_MODEL, cache, download)")
    p.add_argument("--detect-every", type=every_arg, default=DETECT_EVERY,
                   help=f"videos and cameras: full-frame face detection every N source frames (at least every analysed "
                        f"frame) and on scene cuts, tracked faces re-detected in small windows in between (default "
                        f"{DETECT_EVERY}; 1: every frame)")
    p.add_argument("--classify-every", type=every_arg, default=CLASSIFY_EVERY,
                   help=f"videos and cameras: read a tracked face's expression every N source frames (at least every "
                        f"analysed frame) and carry its last reading in between; new faces are always read, and the "
                        f"research table's `classified` column says which frames were (default {CLASSIFY_EVERY})")


def every_arg(value: str) -> int:
    """argparse type for frame steps (--every, --detect-every, --classify-every): a whole number >= 1."""
    try:
        step = int(value)
    except ValueError:
        step = 0
    if step < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of frames, 1 or more, not {value!r}")
    return step


def add_analyze_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="images, videos, folders (recursive), glob patterns, or .txt/.csv files "
                                              "listing paths")
    p.add_argument("--out", default="emoscope-out", help="output folder (default: emoscope-out)")
    p.add_argument("--format", default="json", choices=["json", "csv", "parquet"],
                   help="per-face results format (default: json; parquet needs the 'batch' extra)")
    p.add_argument("--annotate", action="store_true", help="write annotated images / videos")
    p.add_argument("--every", type=every_arg, default=1, help="analyse every N-th video frame (default: 1)")
    p.add_argument("--max-pixels", type=float, default=DEFAULT_MAX_PIXELS / 1e6, metavar="MP",
                   help=f"photos larger than this many megapixels are refused (default: {DEFAULT_MAX_PIXELS / 1e6:.0f}); "
                        f"raise it for very large photos (memory grows with it)")
    p.add_argument("--coding", type=coding_formats, default=[],
                   help="videos: also write the coding for a coder's tools, comma-separated: elan (NAME.eaf: an "
                        "expression and a valence tier per person) and/or boris (NAME.boris.tsv: state events)")
    add_common(p)


def coding_formats(value: str) -> list[str]:
    """argparse type of --coding: a comma list of elan, boris."""
    from ..coding import CODING_FORMATS
    chosen = [v.strip().lower() for v in value.split(",") if v.strip()]
    bad = [v for v in chosen if v not in CODING_FORMATS]
    if bad or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(CODING_FORMATS)} (comma-separated), not {value!r}")
    return chosen


def analyzer_options(args) -> dict:
    """The `Analyzer` keyword arguments given by the options of `add_common` (plain data, so
    worker processes and Ray actors can build their own analyzer from it)."""
    return {"model": args.model, "detector": args.detector, "detector_model": args.detector_model,
            "threads": args.threads, "flip_tta": args.tta, "align": args.align, "gender": args.gender,
            "max_faces": args.max_faces, "detect_every": args.detect_every, "mesh": args.mesh,
            "mesh_model": args.mesh_model, "classify_every": args.classify_every}


def make_analyzer(args):
    from .analyzer import Analyzer
    return Analyzer(**analyzer_options(args))


def write_table(df: pd.DataFrame, stem: str, fmt: str) -> str:
    if fmt == "csv":
        df.to_csv(stem + ".csv", index=False)
        return stem + ".csv"
    if fmt == "parquet":
        df.to_parquet(stem + ".parquet", index=False)
        return stem + ".parquet"
    df.to_json(stem + ".json", orient="records", indent=1)
    return stem + ".json"


def output_names(paths: list[str]) -> dict[str, str]:
    """A distinct output name for each input: its file name without extension, and for inputs
    whose names collide (a/clip.mp4, b/clip.mp4) the name with -2, -3, ... in input order."""
    names, seen = {}, {}
    for path in paths:
        base = os.path.splitext(os.path.basename(path))[0]
        seen[base] = seen.get(base, 0) + 1
        name = base if seen[base] == 1 else f"{base}-{seen[base]}"
        while name in names.values():
            seen[base] += 1
            name = f"{base}-{seen[base]}"
        names[path] = name
    return names


def analyze_video(analyzer, video, path: str, args, name: str) -> dict:
    """One opened video (`VideoReader`) analysed into the timeline, frame table, summary, report,
    codings and annotated video of `args`."""
    from .annotate import AnnotatedVideo, draw_faces, timecode
    from .frames import FrameTableWriter
    stem = os.path.join(args.out, name)
    writer = AnnotatedVideo(stem + ".annotated.mp4", video.fps / video.every, audio_from=path) if args.annotate else None
    frame_writer = FrameTableWriter(stem, analyzer.classes, args.mesh)  # written in parts: memory flat in video length

    def on_frame(index, t, frame, faces):
        frame_writer.add(index, t, faces)
        if writer is not None:
            writer.write(draw_faces(frame, faces, mesh=args.mesh, stamp=f"{timecode(t)}  frame {index}"))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            tl = analyzer.analyze_video(video, on_frame=on_frame)
        finally:
            if writer is not None:
                writer.close()
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    if writer is not None and writer.codec != "h264":
        print("note: the annotated video is MPEG-4 Part 2, which browsers do not play; "
              "pip install 'emoscope[video]' for H.264", file=sys.stderr)
    frame_writer.close()
    if not frame_writer.has_parquet:
        print("note: no frames.parquet without pyarrow (pip install 'emoscope[batch]'); frames.csv has the same "
              "table", file=sys.stderr)
    codings = []
    if args.coding:
        from ..coding import write_codings
        from ..coding.segments import CODING_COLUMNS
        frames = pd.read_csv(frame_writer.csv_path, usecols=lambda c: c in CODING_COLUMNS)
        codings = write_codings(frames, path, stem, args.coding, video.fps / video.every)
    tl.to_csv(stem + ".timeline.csv", index=False)
    if args.format != "csv":
        write_table(pd.DataFrame(tl), stem + ".timeline", args.format)
    summary = tl.summary(thumbnail_dir=stem + ".persons")
    summary.to_csv(stem + ".summary.csv", index=False)
    plot = stem + ".timeline.png"
    try:
        tl.plot(plot)
        chart = png_tag(plot, "expression timeline")
    except PlottingUnavailable as exc:
        print(f"note: no timeline chart: {exc}", file=sys.stderr)
        chart = f"<p>No chart: {exc}.</p>"
    longest = summary.sort_values("frames", ascending=False).head(REPORT_PERSONS) if len(summary) else summary
    shown = readable_summary(longest, tl, analyzer.classes)
    faces = "".join(f"<figure style='display:inline-block;margin:4px;text-align:center'>{png_tag(p, f'person {k}')}"
                    f"<figcaption>person {k}</figcaption></figure>"
                    for k, p in zip(longest.get("track", []), longest.get("thumbnail", [])) if isinstance(p, str))
    if len(summary) > REPORT_PERSONS:
        faces += f"<p>The {REPORT_PERSONS} persons seen longest of {len(summary)}; every one is in the summary.</p>"
    short = int(tl.loc[tl["short_track"], "track"].nunique()) if len(tl) else 0
    write_html(stem + ".report.html", f"emoscope: {os.path.basename(path)}", [
        ("People", faces or "<p>No faces found.</p>"),
        ("Summary per person", table(shown) if len(summary) else "<p>No faces found.</p>"),
        ("Expressions over time", chart),
        ("Files", f"<p>Timeline: <code>{os.path.basename(stem)}.timeline.csv</code> "
                  f"({len(tl)} rows, {tl['frame'].nunique() if len(tl) else 0} frames with faces; "
                  f"{short} short tracks flagged <code>short_track</code> and left out of the summary); every "
                  f"column of the summary in <code>{os.path.basename(stem)}.summary.csv</code>"
                  + (f"; <a href='{os.path.basename(stem)}.annotated.mp4'>the annotated video</a>" if writer else "")
                  + "</p>"),
    ])
    return {"file": path, "kind": "video", "frames": frame_writer.frames, "rows": len(tl),
            "frames_without_face": frame_writer.without_face,
            "people": int(summary.shape[0]), "timeline": stem + ".timeline.csv", "frame_table": stem + ".frames.csv",
            "report": stem + ".report.html", **({"codings": codings} if codings else {})}


def run_analyze(args) -> int:
    from tqdm import tqdm

    from ..images import read_image
    from .annotate import draw_faces
    from .video import VideoReader
    from ..cli import CLIError, writable_folder
    files = expand_inputs(args.inputs)
    if not files:
        raise CLIError("nothing to analyse: no photo or video found in the inputs")
    if args.format == "parquet":
        import pyarrow  # noqa: F401  (missing: the 'batch' extra is named before any work is done)
    if args.max_pixels <= 0:
        raise CLIError("--max-pixels must be above 0", 2)
    from PIL import Image
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, int(args.max_pixels * 1e6))  # Pillow's own guard too
    writable_folder(args.out)
    analyzer = make_analyzer(args)
    images = [f for f in files if not is_video(f)]
    videos = [f for f in files if is_video(f)]
    rows, per_file, skipped = [], [], []
    names = output_names(files)
    for path in tqdm(images, desc="images", unit="img", disable=None if len(images) > 1 else True, file=sys.stderr):
        try:
            img = read_image(path, "bgr", int(args.max_pixels * 1e6))
        except (ImageDecodeError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            if "pixel limit" in reason:
                reason += " (--max-pixels raises it)"
            skipped.append({"file": path, "reason": reason})
            print(f"warning: skipped {path}: {reason}", file=sys.stderr)
            continue
        faces = analyzer.analyze(img)
        per_file.append({"file": path, "faces": [f.to_dict() for f in faces]})
        if not faces:  # the table says so too, rather than leaving the photo out
            rows.append({"file": path, "face": None, "label": "no face"})
        for i, f in enumerate(faces):
            rows.append({"file": path, "face": i, "x": f.box[0], "y": f.box[1], "w": f.box[2], "h": f.box[3],
                         "score": f.score, "label": f.label, **f.probs, "valence": f.valence,
                         "valence_score": f.valence_score, "quality": f.quality, "readable": f.readable,
                         "unreadable": f.unreadable or "",
                         **({"gender": max(f.gender, key=f.gender.get)} if f.gender else {})})
        if args.annotate:
            cv2.imwrite(os.path.join(args.out, names[path] + ".annotated.jpg"), draw_faces(img, faces))
    outputs = {}
    if images:
        if args.format == "json":
            with open(os.path.join(args.out, "results.json"), "w") as f:
                json.dump({"files": per_file, "skipped": skipped, "classes": analyzer.classes}, f, indent=1)
            outputs["results"] = os.path.join(args.out, "results.json")
        else:
            outputs["results"] = write_table(pd.DataFrame(rows), os.path.join(args.out, "results"), args.format)
    video_results = []
    for path in videos:
        try:
            video = VideoReader(path, args.every)
        except (ValueError, OSError) as exc:  # a broken video is skipped; the others are analysed
            skipped.append({"file": path, "reason": str(exc)})
            print(f"warning: skipped {path}: {exc}", file=sys.stderr)
            continue
        video_results.append(analyze_video(analyzer, video, path, args, names[path]))
    image_faces = sum(len(p["faces"]) for p in per_file)
    print(json.dumps({"images": len(per_file), "image_faces": image_faces, "videos": len(video_results),
                      "video_frames": sum(v["frames"] for v in video_results),
                      "video_face_rows": sum(v["rows"] for v in video_results),
                      "persons": sum(v["people"] for v in video_results), "skipped": skipped,
                      "video_results": video_results, **outputs}, indent=1))
    if not per_file and not video_results:
        print(f"emoscope analyze: nothing could be analysed ({len(skipped)} input(s) skipped)", file=sys.stderr)
        return 1
    return 0


REPORT_PERSONS = 24  # persons the HTML report shows (the ones seen longest); the CSV summary has all


def readable_summary(summary: pd.DataFrame, tl, classes: list[str]) -> pd.DataFrame:
    """The per-person summary as a reader wants it: a few named columns, times in m:ss, the main
    expressions as words, the face-mesh measures when they were taken, and a most positive or
    negative moment only where the person's valence really went that way."""
    from ..mesh import ACTION_UNITS
    from ..presentation import clock, share
    if not len(summary):
        return summary
    rows = []
    for r in summary.itertuples():
        row = {"person": f"#{r.track}", "on screen": f"{clock(r.first_s, True)}–{clock(r.last_s, True)}",
               "frames (unreadable)": f"{r.frames} ({r.unreadable_frames})", "main expression": r.dominant}
        if r.dominant != "unreadable":
            shares = sorted(((getattr(r, f"share_{c}"), c) for c in classes), reverse=True)
            row["expressions"] = ", ".join(f"{c} {share(v)}" for v, c in shares[:3] if v >= 0.05)
            row["mean valence"] = f"{r.mean_valence:+.2f}"
            row["most positive at"] = clock(r.peak_positive_s, True) if r.peak_positive > 0.15 else "–"
            row["most negative at"] = clock(r.peak_negative_s, True) if r.peak_negative < -0.15 else "–"
        if "attention" in tl:
            mine = tl[(tl["track"] == r.track) & tl["attention"].notna()]
            row["facing the screen"] = share(mine["attention"].astype(float).mean()) if len(mine) else "–"
            row["head turn (median yaw)"] = f"{mine['yaw'].median():+.0f}°" if len(mine) else "–"
            units = mine[[c for c in ACTION_UNITS if c in mine]].astype(float).mean().sort_values(ascending=False)
            row["strongest action units (mean)"] = (", ".join(f"{au} {v:.2f}" for au, v in units.head(2).items())
                                                    if len(mine) else "–")
        rows.append(row)
    return pd.DataFrame(rows).fillna("–")


def add_webcam_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", default="0", help="camera index, video file or stream URL (default 0)")
    p.add_argument("--no-window", action="store_true", help="run headless (print per-frame results)")
    p.add_argument("--record", help="write the timeline CSV here when the stream ends")
    p.add_argument("--max-frames", type=int, help="stop after N frames")
    add_common(p)


def run_webcam(args) -> int:
    from .annotate import draw_faces
    from .timeline import Timeline
    from .video import VideoReader
    from ..cli import CLIError
    analyzer = make_analyzer(args)
    try:
        video = VideoReader(args.source, max_frames=args.max_frames)
    except ValueError:
        what = f"camera {args.source}" if str(args.source).isdigit() else args.source
        raise CLIError(f"cannot open {what}" + (" (no camera there, or another program is using it)"
                                                 if str(args.source).isdigit() else "")) from None
    tracker = analyzer.new_tracker(video.fps)
    rows, t_last, fps = [], time.perf_counter(), 0.0
    window = not args.no_window
    frames = analyzer.iter_video(video, tracker=tracker, progress=False, live=True)
    try:
        while True:
            t0 = time.perf_counter()
            item = next(frames, None)  # waits for the next decoded frame, then analyses it
            if item is None:
                break
            index, t, frame, faces = item
            now = time.perf_counter()
            latency_ms = (now - t0) * 1000
            fps = 0.9 * fps + 0.1 / max(now - t_last, 1e-6) if fps else 1 / max(now - t_last, 1e-6)
            t_last = now
            rows.extend(Timeline.row(index, t, f) for f in faces)
            if window:
                try:
                    cv2.imshow("emoscope", draw_faces(frame, faces, fps=fps))
                    if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                        break
                except cv2.error:
                    print("no display support in this OpenCV build (headless); continuing with --no-window",
                          file=sys.stderr)
                    window = False
            else:
                print(json.dumps({"frame": index, "fps": round(fps, 1), "latency_ms": round(latency_ms, 2),
                                  "faces": [{"track": f.track_id, "label": f.label, "box": list(f.box),
                                             **({"head_pose": f.head_pose, "gaze": f.gaze, "attention": f.attention}
                                                if f.head_pose else {})} for f in faces]}))
    except KeyboardInterrupt:
        pass
    finally:
        frames.close()
    if args.record:
        Timeline.from_rows(rows, analyzer.classes, video.fps, tracker.thumbnails()).to_csv(args.record, index=False)
        print(f"timeline written to {args.record}", file=sys.stderr)
    return 0
