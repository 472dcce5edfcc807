"""Data-quality audit: unreadable files, exact and near duplicates (within and across splits),
blank images and likely non-faces. Writes findings.csv and exclude.txt (ids training can drop).

Near duplicates use a 64-bit DCT perceptual hash of the 32x32 grayscale image; two images are
near duplicates when their hashes differ in at most `phash_bits` bits. Non-faces: YuNet runs on the
image padded by 25% of its side with mid-gray and upscaled to 160x160, as FER-style crops are too
tight for a detector; no face at `face_score` or above flags the image. Checked by eye on 3,000
random FER2013 images: 46 flagged, of which about 6 were not faces (signs, text, icons, a black
frame) and about 40 were real faces, mostly tilted, lying down or occluded (docs/data-audit.md).
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass

import cv2
import numpy as np

from .dataset import Dataset
from .readers import FileTree


@dataclass
class Finding:
    id: str
    split: str
    label: str
    kind: str        # unreadable | exact_duplicate | near_duplicate | cross_split_* | blank | non_face
    detail: str
    other: str = ""  # the id it duplicates, if any
    exclude: bool = False


def phash(images: np.ndarray) -> np.ndarray:
    """64-bit perceptual hashes (uint64) of uint8 images (N, H, W[, 3])."""
    out = np.empty(len(images), np.uint64)
    weights = (1 << np.arange(64, dtype=np.uint64))
    for i, img in enumerate(images):
        g = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        d = cv2.dct(cv2.resize(g, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32))[:8, :8].ravel()
        bits = (d > np.median(d[1:])).astype(np.uint64)
        out[i] = np.bitwise_or.reduce(bits * weights)
    return out


def near_pairs(hashes: np.ndarray, max_bits: int, chunk: int = 2048) -> list[tuple[int, int, int]]:
    """All pairs (i < j) whose hashes differ in at most `max_bits` bits, with the distance."""
    pairs = []
    for s in range(0, len(hashes), chunk):
        block = hashes[s:s + chunk]
        dist = np.bitwise_count(block[:, None] ^ hashes[None, :])
        ii, jj = np.nonzero(dist <= max_bits)
        keep = jj > ii + s
        pairs += [(int(i + s), int(j), int(dist[i, j])) for i, j in zip(ii[keep], jj[keep])]
    return pairs


def file_digests(ds: Dataset) -> np.ndarray:
    """SHA-1 of each sample's source bytes (pixels for CSV rows)."""
    if ds.layout == "fer2013-csv":
        return np.array([hashlib.sha1(img.tobytes()).hexdigest() for img in ds.images])
    tree = FileTree(ds.source)
    return np.array([hashlib.sha1(tree.read(sid)).hexdigest() for sid in ds.ids.tolist()])


def looks_like_face(images: np.ndarray, detector_model: str, score: float = 0.05) -> np.ndarray:
    """Max YuNet score per image after 25% mid-gray padding and upscaling to 160x160."""
    from ..runtime.detector import YuNetDetector
    detector = YuNetDetector(detector_model, score_threshold=score, top_k=10)
    best = np.zeros(len(images), np.float32)
    for i, img in enumerate(images):
        g = img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        h, w = g.shape[:2]
        padded = cv2.copyMakeBorder(g, h // 4, h // 4, w // 4, w // 4, cv2.BORDER_CONSTANT, value=(127, 127, 127))
        faces = detector.detect(cv2.resize(padded, (160, 160), interpolation=cv2.INTER_LINEAR))
        best[i] = faces[0].score if faces else 0.0
    return best


def audit(ds: Dataset, phash_bits: int = 2, blank_std: float = 3.0, detector_model: str | None = None,
          face_score: float = 0.1, exclude_non_faces: bool = False) -> tuple[list[Finding], dict]:
    findings: list[Finding] = [Finding(s.id, "", "", "unreadable", s.reason, exclude=True) for s in ds.skipped]
    labels = [ds.classes[i] for i in ds.labels]
    split_rank = {"test": 0, "val": 1, "train": 2}  # the evaluation copy stays, the training copy goes

    def order(i: int) -> tuple:
        return (split_rank.get(ds.splits[i], 3), ds.ids[i])

    # exact duplicates: group identical bytes; keep one (evaluation splits first), flag the rest
    groups = defaultdict(list)
    for i, d in enumerate(file_digests(ds)):
        groups[d].append(i)
    exact_pairs = set()
    for members in groups.values():
        if len(members) < 2:
            continue
        members.sort(key=order)
        keep = members[0]
        for m in members[1:]:
            exact_pairs.add((min(keep, m), max(keep, m)))
            cross = ds.splits[m] != ds.splits[keep]
            kind = "cross_split_exact_duplicate" if cross else "exact_duplicate"
            conflict = labels[m] != labels[keep]
            findings.append(Finding(ds.ids[m], ds.splits[m], labels[m], kind,
                                    f"same bytes as {ds.splits[keep]} sample labelled {labels[keep]}"
                                    + (" (label conflict)" if conflict else ""), ds.ids[keep], exclude=True))
    # near duplicates by perceptual hash
    hashes = phash(ds.images)
    for i, j, dist in near_pairs(hashes, phash_bits):
        if (i, j) in exact_pairs:
            continue
        keep, other = sorted((i, j), key=order)
        cross = ds.splits[i] != ds.splits[j]
        kind = "cross_split_near_duplicate" if cross else "near_duplicate"
        findings.append(Finding(ds.ids[other], ds.splits[other], labels[other], kind,
                                f"perceptual hash within {dist} bits of {ds.splits[keep]} sample labelled "
                                f"{labels[keep]}", ds.ids[keep], exclude=cross and ds.splits[other] == "train"))
    # blank / constant images
    flat = ds.images.reshape(len(ds), -1).astype(np.float32)
    std = flat.std(1)
    for i in np.flatnonzero(std < blank_std):
        findings.append(Finding(ds.ids[i], ds.splits[i], labels[i], "blank",
                                f"pixel std {std[i]:.2f} < {blank_std} (constant or nearly)", exclude=True))
    # likely non-faces
    non_face = 0
    if detector_model:
        scores = looks_like_face(ds.images, detector_model, min(face_score, 0.05))
        blank = set(np.flatnonzero(std < blank_std).tolist())
        for i in np.flatnonzero(scores < face_score):
            if i in blank:
                continue
            non_face += 1
            findings.append(Finding(ds.ids[i], ds.splits[i], labels[i], "non_face",
                                    f"no face found (best YuNet score {scores[i]:.2f} < {face_score})",
                                    exclude=exclude_non_faces))
    summary = defaultdict(int)
    for f in findings:
        summary[f.kind] += 1
    summary = dict(sorted(summary.items()))
    summary["excluded"] = len({f.id for f in findings if f.exclude})
    summary["images"] = len(ds)
    return findings, summary


def write_findings(findings: list[Finding], out: str) -> tuple[str, str]:
    os.makedirs(out, exist_ok=True)
    csv_path, excl_path = os.path.join(out, "findings.csv"), os.path.join(out, "exclude.txt")
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "split", "label", "finding", "detail", "other", "excluded"])
        for x in findings:
            w.writerow([x.id, x.split, x.label, x.kind, x.detail, x.other, int(x.exclude)])
    with open(excl_path, "w") as f:
        f.write("# sample ids to leave out of training (emoscope data audit); pass with --exclude\n")
        for sid in sorted({x.id for x in findings if x.exclude}):
            f.write(sid + "\n")
    return csv_path, excl_path
