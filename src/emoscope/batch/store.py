"""`BatchStore`: the output folder of a batch job, written so that it can be resumed after any crash.

    DIR/faces/     one row per face per photo or analysed video frame   (Parquet dataset)
    DIR/videos/    one row per person per video (`Timeline.summary`)    (Parquet dataset)
    DIR/manifest/  one row per source: done or failed (+ reason), faces, frames, seconds

Results are written in parts. A part's faces and videos files are written first and its manifest
file last, each under a hidden temporary name and then renamed, so a part counts only once its
manifest file exists. Opening the store deletes temporary files and the files of parts that have
no manifest file (a write cut short by `kill -9`); the sources of such parts are not in the
manifest, so they are analysed again: nothing is missing and nothing is doubled.

One job at a time writes a folder: `BatchStore.lock` holds an exclusive lock on DIR/.lock for the
whole job (released by the system when the process dies, even by `kill -9`). Every part is
checked when the folder opens; a damaged part or a stray file is named, with how to recover.
"""

from __future__ import annotations

import base64
import errno
import fcntl
import json
import os
import re
import time
import uuid

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TABLES = ("faces", "videos", "manifest")
PART_NAME = re.compile(r"part-\d{8}-\d{6}-[0-9a-f]{10}\.parquet")


class StoreError(ValueError):
    """The output folder is in use by another job, or holds a file that is not a sound part."""


def schemas(classes: list[str], gender_classes: list[str] | None = None, mesh: bool = False) -> dict[str, pa.Schema]:
    """The fixed schema of each table (every part has it, so the datasets always read as one);
    with `mesh`, the faces carry the face-mesh measures of `Timeline` rows."""
    from ..mesh import ACTION_UNITS, BLENDSHAPES
    f64, i64, s = pa.float64(), pa.int64(), pa.string()
    extra = [(f"gender_{c}", f64) for c in gender_classes or []]
    if mesh:
        extra += [("mesh_presence", f64), ("expression_from", s)]
        extra += [(k, f64) for k in ("yaw", "pitch", "roll", "gaze_yaw", "gaze_pitch")]
        extra += [("eyes_open", pa.bool_()), ("attention", pa.bool_())]
        extra += [(k, f64) for k in (*BLENDSHAPES, *ACTION_UNITS)]
    return {
        "faces": pa.schema([("source", s), ("kind", s), ("frame", i64), ("time_s", f64), ("track", i64),
                            ("x", i64), ("y", i64), ("w", i64), ("h", i64), ("score", f64),
                            *[(c, f64) for c in classes], ("label", s), ("valence", s), ("valence_score", f64),
                            ("quality", f64), ("readable", pa.bool_()), ("unreadable", s),
                            ("short_track", pa.bool_()), *extra]),
        "videos": pa.schema([("source", s), ("track", i64), ("frames", i64), ("first_s", f64), ("last_s", f64),
                             ("unreadable_frames", i64), ("dominant", s), *[(f"share_{c}", f64) for c in classes],
                             ("mean_valence", f64),
                             ("peak_positive_s", f64), ("peak_positive", f64), ("peak_negative_s", f64),
                             ("peak_negative", f64), ("thumbnail_png", pa.binary())]),
        "manifest": pa.schema([("source", s), ("kind", s), ("status", s), ("reason", s), ("faces", i64),
                               ("frames", i64), ("duration_s", f64), ("seconds", f64), ("worker", s),
                               ("worker_rss_mb", f64)]),
    }


class BatchStore:
    """An output folder of `emoscope batch`: resumable, written in atomically committed parts."""

    def __init__(self, out: str, classes: list[str], gender_classes: list[str] | None = None, mesh: bool = False):
        self.out = out
        self.schemas = schemas(classes, gender_classes, mesh)
        for table in TABLES:
            os.makedirs(os.path.join(out, table), exist_ok=True)
        self._lock_file = self.lock(out)
        self.discarded = self._discard_uncommitted()
        self._check_parts()

    @staticmethod
    def lock(out: str):
        """An exclusive lock on `out` for this process's lifetime (kept as the returned file)."""
        os.makedirs(out, exist_ok=True)
        f = open(os.path.join(out, ".lock"), "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            f.seek(0)
            holder = f.read().strip()
            f.close()
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise StoreError(f"{out} is being written by another batch job{f' ({holder})' if holder else ''}; "
                             f"wait for it to finish or use another --out") from None
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        f.flush()
        return f

    def close(self) -> None:
        """Release the folder for other jobs (the system does this too when the process ends)."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _check_parts(self) -> None:
        """Every file of every table must be a readable part with its table's columns."""
        for table in TABLES:
            for name in sorted(os.listdir(self._dir(table))):
                path = os.path.join(self._dir(table), name)
                if not PART_NAME.fullmatch(name):
                    raise StoreError(f"{path} is not a part of this batch folder; move it elsewhere and run again")
                try:
                    columns = pq.read_schema(path).names
                except (OSError, pa.ArrowException):
                    raise StoreError(f"{path} is damaged; delete {name} from faces/, videos/ and manifest/ and run "
                                     f"again: its sources will be analysed again") from None
                if columns != self.schemas[table].names:
                    raise StoreError(f"{path} has other columns than this job writes (another model or "
                                     f"options?); use another --out")

    def _dir(self, table: str) -> str:
        return os.path.join(self.out, table)

    def _discard_uncommitted(self) -> int:
        """Delete temporary files and parts without a manifest file; returns how many files went."""
        committed = {n for n in os.listdir(self._dir("manifest")) if not n.startswith(".")}
        removed = 0
        for table in TABLES:
            for name in os.listdir(self._dir(table)):
                if name.startswith(".") or (table != "manifest" and name not in committed):
                    os.remove(os.path.join(self._dir(table), name))
                    removed += 1
        return removed

    def manifest(self) -> pd.DataFrame:
        """Every source recorded so far (done or failed)."""
        return read_table(self.out, "manifest", self.schemas["manifest"])

    def forget_failed(self, sources: set[str]) -> int:
        """Remove the `failed` manifest rows of `sources` (so they can be analysed again), part by
        part, each rewritten atomically; a failed source has no face or person rows. Returns how
        many rows went."""
        removed = 0
        for name in sorted(os.listdir(self._dir("manifest"))):
            path = os.path.join(self._dir("manifest"), name)
            table = pq.read_table(path)
            rows = table.to_pylist()
            keep = [r for r in rows if not (r["status"] == "failed" and r["source"] in sources)]
            if len(keep) == len(rows):
                continue
            removed += len(rows) - len(keep)
            if keep or any(os.path.exists(os.path.join(self._dir(t), name)) for t in ("faces", "videos")):
                self._write_file("manifest", name, keep)
            else:
                os.remove(path)
        return removed
    def write(self, results: list[dict]) -> str:
        """Commit one part: the results of some sources (`SourceWorker` rows, decoded). Returns the
        part's file name."""
        name = f"part-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:10]}.parquet"
        faces = [row for r in results for row in r["face_rows"]]
        persons = [{**p, "thumbnail_png": base64.b64decode(p["thumbnail_png"]) if p.get("thumbnail_png") else None}
                   for r in results for p in r["person_rows"]]
        manifest = [{k: r[k] for k in self.schemas["manifest"].names} for r in results]
        for table, rows in (("faces", faces), ("videos", persons), ("manifest", manifest)):
            if rows or table == "manifest":
                self._write_file(table, name, rows)
        return name

    def _write_file(self, table: str, name: str, rows: list[dict]) -> None:
        tmp = os.path.join(self._dir(table), f".{name}.tmp")
        pq.write_table(pa.Table.from_pylist(rows, schema=self.schemas[table]), tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(self._dir(table), name))


def decode_results(df: pd.DataFrame) -> list[dict]:
    """`SourceWorker` output rows with their JSON columns parsed."""
    out = []
    for r in df.to_dict("records"):
        r["face_rows"], r["person_rows"] = json.loads(r["face_rows"]), json.loads(r["person_rows"])
        out.append(r)
    return out


def read_table(out: str, table: str, schema: pa.Schema | None = None) -> pd.DataFrame:
    """One table of a batch output folder as a DataFrame (empty, with its columns, when no part
    has rows yet); the same as `pandas.read_parquet(f"{out}/{table}")` otherwise."""
    folder = os.path.join(out, table)
    if os.path.isdir(folder) and any(not n.startswith(".") for n in os.listdir(folder)):
        return pd.read_parquet(folder)
    if schema is None:
        raise FileNotFoundError(f"{folder}: no results yet")
    return schema.empty_table().to_pandas()

