"""`StudyStore`: every query of the studies database, over SQLAlchemy Core. Opening a store brings
its schema to the newest migration (Alembic; under an advisory lock on PostgreSQL, so servers
that start together migrate once). Nothing about a study lives anywhere but in the database: any
number of servers can share one and serve the same studies."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
import tempfile
import time
from contextlib import contextmanager

import pandas as pd
from sqlalchemy import Integer, create_engine, delete, event, func, insert, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..labels import EXPRESSIONS
from ..presentation import whole_seconds
from . import schema

MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
MIN_READABLE_SHARE = 0.7     # a viewer read in fewer of the ad's seconds is excluded from the statistics
MAX_AD_BYTES = 100 * 2**20   # an ad is kept in the database: every server can play it
MAX_QUESTIONS, MAX_CHOICES, MAX_TEXT = 10, 20, 200
RETENTION_DAYS = 90
MIGRATION_LOCK = 7_311_2026  # PostgreSQL advisory lock id while migrating


class StudyError(ValueError):
    """A request about studies that cannot be done, in plain words."""


def default_db_url() -> str:
    """A SQLite file in the user's data folder ($XDG_DATA_HOME/emoscope/studies.db)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return "sqlite:///" + os.path.join(base, "emoscope", "studies.db")


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def clean_questions(raw) -> list[dict]:
    """Viewer questions as [{"name", "choices"}] (a list of choices, or [] for free text), checked."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else []
        except ValueError:
            raise StudyError("questions must be JSON: a list of {\"name\": ..., \"choices\": [...]}") from None
    if not isinstance(raw, list) or len(raw) > MAX_QUESTIONS:
        raise StudyError(f"questions must be a list of at most {MAX_QUESTIONS}")
    out = []
    for q in raw:
        if not isinstance(q, dict) or not isinstance(q.get("name"), str) or not q["name"].strip():
            raise StudyError("each question needs a name")
        choices = q.get("choices") or []
        if not isinstance(choices, list) or len(choices) > MAX_CHOICES or not all(isinstance(c, str) for c in choices):
            raise StudyError(f"a question's choices must be a list of at most {MAX_CHOICES} texts")
        out.append({"name": q["name"].strip()[:MAX_TEXT], "choices": [c.strip()[:MAX_TEXT] for c in choices]})
    if len({q["name"] for q in out}) != len(out):
        raise StudyError("two questions have the same name")
    return out


def ad_length(data: bytes, name: str) -> tuple[float, float]:
    """(seconds, frames per second) of an ad given as bytes, or a StudyError when it is no video."""
    from ..batch.campaign import check_stimulus, stimulus_info
    suffix = os.path.splitext(name)[1].lower()[:8] or ".mp4"
    with tempfile.NamedTemporaryFile(suffix=suffix) as f:
        f.write(data)
        f.flush()
        try:
            check_stimulus(f.name)
            seconds, fps = stimulus_info(f.name)
        except ValueError:
            raise StudyError(f"the ad {os.path.basename(name)} cannot be read as a video") from None
    if not seconds > 0:
        raise StudyError(f"the ad {os.path.basename(name)} has no frames")
    return seconds, fps


class StudyStore:
    def __init__(self, url: str | None = None):
        self.url = url or default_db_url()
        if self.url.startswith("sqlite:///"):
            folder = os.path.dirname(os.path.abspath(self.url[len("sqlite:///"):]))
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as exc:  # e.g. a read-only container: say so; the server runs without studies
                raise StudyError(f"cannot create {folder} for the studies database ({exc.strerror or exc}); "
                                 f"give --db a writable place") from None
        try:
            self.engine = make_engine(self.url)
            self._migrate()
        except (SQLAlchemyError, ModuleNotFoundError) as exc:
            if isinstance(exc, ModuleNotFoundError):
                raise StudyError(f"this database needs its driver: pip install 'emoscope[postgres]' ({exc.name})") from None
            raise StudyError(f"cannot open the studies database {safe_url(self.url)} "
                             f"({getattr(exc, 'orig', None) or exc.__class__.__name__})") from None

    def _migrate(self) -> None:
        from alembic import command
        from alembic.config import Config
        cfg = Config()
        cfg.set_main_option("script_location", MIGRATIONS)
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def begin(self):
        with self.engine.begin() as conn:
            yield conn

    # -- studies ------------------------------------------------------------------------------
    def create_study(self, name: str, ad: bytes, ad_name: str, questions=None, retention_days: int = RETENTION_DAYS,
                     ad_mime: str = "video/mp4") -> dict:
        name = (name or "").strip()
        if not name or len(name) > MAX_TEXT:
            raise StudyError(f"a study needs a name of 1 to {MAX_TEXT} characters")
        if not 1 <= int(retention_days) <= 3650:
            raise StudyError("retention must be 1 to 3650 days")
        if len(ad) > MAX_AD_BYTES:
            raise StudyError(f"the ad is over the {MAX_AD_BYTES // 2**20} MB limit")
        qs = clean_questions(questions or [])
        seconds, fps = ad_length(ad, ad_name)
        row = {"id": secrets.token_hex(6), "token": secrets.token_urlsafe(24), "name": name,
               "questions": json.dumps(qs), "retention_days": int(retention_days), "created_at": time.time(),
               "closed_at": None, "ad_name": os.path.basename(ad_name)[:MAX_TEXT], "ad_mime": ad_mime[:100],
               "ad_seconds": seconds, "ad_fps": fps, "ad_bytes": ad}
        with self.begin() as conn:
            conn.execute(insert(schema.studies), row)
        return self.get_study(row["id"])

    def _study_row(self, conn, study_id: str):
        cols = [c for c in schema.studies.c if c.name != "ad_bytes"]
        row = conn.execute(select(*cols).where(schema.studies.c.id == study_id)).mappings().first()
        if row is None:
            raise StudyError(f"no study {study_id}")
        return row

    def get_study(self, study_id: str) -> dict:
        """The study (without the ad's bytes) and its viewer counts."""
        self.purge_expired()
        with self.begin() as conn:
            row = dict(self._study_row(conn, study_id))
        row["questions"] = json.loads(row["questions"])
        table = self.viewer_table(study_id, row)
        row["viewers"] = {"started": int(len(table)), "completed": int((table["status"] == "completed").sum()),
                          "excluded": int(table["excluded"].sum()) if len(table) else 0,
                          "included": int((~table["excluded"]).sum()) if len(table) else 0}
        row["status"] = "closed" if row["closed_at"] else "open"
        return row

    def list_studies(self) -> list[dict]:
        self.purge_expired()
        with self.begin() as conn:
            rows = conn.execute(select(schema.studies.c.id, schema.studies.c.name, schema.studies.c.created_at,
                                       schema.studies.c.closed_at, schema.studies.c.ad_seconds,
                                       func.count(schema.viewers.c.id).label("viewers"))
                                .select_from(schema.studies.outerjoin(schema.viewers))
                                .group_by(schema.studies.c.id).order_by(schema.studies.c.created_at)).mappings().all()
        return [{**dict(r), "status": "closed" if r["closed_at"] else "open"} for r in rows]

    def study_by_token(self, token: str) -> dict | None:
        """The public face of a study for its viewers' link, or None for an unknown token."""
        if not token or len(token) > 64:
            return None
        with self.begin() as conn:
            row = conn.execute(select(schema.studies.c.id, schema.studies.c.token, schema.studies.c.name,
                                      schema.studies.c.questions, schema.studies.c.retention_days,
                                      schema.studies.c.closed_at, schema.studies.c.ad_seconds,
                                      schema.studies.c.ad_mime)
                               .where(schema.studies.c.token == token)).mappings().first()
        if row is None or not hmac.compare_digest(row["token"], token):
            return None
        return {**dict(row), "questions": json.loads(row["questions"])}

    def ad(self, study_id: str) -> tuple[bytes, str, str]:
        with self.begin() as conn:
            row = conn.execute(select(schema.studies.c.ad_bytes, schema.studies.c.ad_name, schema.studies.c.ad_mime)
                               .where(schema.studies.c.id == study_id)).first()
        if row is None:
            raise StudyError(f"no study {study_id}")
        return bytes(row[0]), row[1], row[2]

    def delete_study(self, study_id: str) -> None:
        with self.begin() as conn:
            self._study_row(conn, study_id)
            for table in (schema.frames, schema.viewers, schema.norms):
                conn.execute(delete(table).where(table.c.study_id == study_id))
            conn.execute(delete(schema.studies).where(schema.studies.c.id == study_id))

    def close_study(self, study_id: str, summary: dict, curve: list[dict]) -> None:
        """Close a study to new viewers and keep its per-second curve summary for the norms."""
        now = time.time()
        with self.begin() as conn:
            self._study_row(conn, study_id)
            conn.execute(update(schema.studies).where(schema.studies.c.id == study_id).values(closed_at=now))
            conn.execute(delete(schema.norms).where(schema.norms.c.study_id == study_id))
            conn.execute(insert(schema.norms), {"study_id": study_id, "closed_at": now,
                                                "summary": json.dumps(summary), "curve": json.dumps(curve)})

    def norms(self, except_study: str) -> list[dict]:
        with self.begin() as conn:
            rows = conn.execute(select(schema.norms).where(schema.norms.c.study_id != except_study)).mappings().all()
        return [{"study_id": r["study_id"], "summary": json.loads(r["summary"]), "curve": json.loads(r["curve"])}
                for r in rows]

    def purge_expired(self) -> int:
        """Delete the studies whose retention period has passed; returns how many."""
        now = time.time()
        with self.begin() as conn:
            expired = [r[0] for r in conn.execute(select(schema.studies.c.id).where(
                schema.studies.c.created_at + schema.studies.c.retention_days * 86400.0 < now))]
        for study_id in expired:
            self.delete_study(study_id)
        return len(expired)

    # -- viewers ------------------------------------------------------------------------------
    def add_viewer(self, study_id: str, answers: dict, questions: list[dict], source: str = "browser") -> tuple[int, str]:
        """A new viewer of an open study: (viewer id, the viewer's secret key)."""
        clean = {}
        for q in questions:
            value = str((answers or {}).get(q["name"], "")).strip()[:MAX_TEXT]
            if q["choices"] and value and value not in q["choices"]:
                raise StudyError(f"{q['name']}: choose one of {', '.join(q['choices'])}")
            clean[q["name"]] = value
        key = secrets.token_urlsafe(24)
        with self.begin() as conn:
            if self._study_row(conn, study_id)["closed_at"]:
                raise StudyError("this study is closed")
            viewer = conn.execute(insert(schema.viewers).values(
                study_id=study_id, key_hash=_hash(key), source=source, answers=json.dumps(clean), status="started",
                started_at=time.time(), watched_s=0.0)).inserted_primary_key[0]
        return int(viewer), key

    def viewer(self, study_id: str, viewer_id, key: str) -> bool:
        """Whether `key` is the key of viewer `viewer_id` of this study (and the viewer still exists)."""
        try:
            viewer_id = int(viewer_id)
        except (TypeError, ValueError):
            return False
        with self.begin() as conn:
            row = conn.execute(select(schema.viewers.c.key_hash).where(
                (schema.viewers.c.id == viewer_id) & (schema.viewers.c.study_id == study_id))).first()
        return row is not None and hmac.compare_digest(row[0], _hash(key or ""))

    def add_frames(self, study_id: str, viewer_id: int, rows: list[dict]) -> None:
        """Store analysed frames: each {ad_time, face (a Face or None)}."""
        if not rows:
            return
        now = time.time()
        values = []
        for r in rows:
            face = r["face"]
            v = {"viewer_id": viewer_id, "study_id": study_id, "ad_time": float(r["ad_time"]), "received_at": now,
                 "face": face is not None, "readable": bool(face is not None and face.readable is not False),
                 "quality": None, "unreadable": None, "w": None, "h": None, "label": None, "valence": None,
                 "valence_score": None, **{c: None for c in EXPRESSIONS}}
            if face is not None:
                v.update(quality=face.quality, unreadable=face.unreadable, w=int(face.box[2]), h=int(face.box[3]),
                         label=face.label, valence=face.valence, valence_score=float(face.valence_score),
                         **{c: float(face.probs.get(c, 0.0)) for c in EXPRESSIONS})
            values.append(v)
        furthest = max(float(r["ad_time"]) for r in rows)
        with self.begin() as conn:
            conn.execute(insert(schema.frames), values)
            conn.execute(update(schema.viewers).where(schema.viewers.c.id == viewer_id).values(
                watched_s=func.max(schema.viewers.c.watched_s, furthest) if conn.dialect.name == "sqlite"
                else func.greatest(schema.viewers.c.watched_s, furthest)))

    def finish_viewer(self, viewer_id: int) -> None:
        with self.begin() as conn:
            conn.execute(update(schema.viewers).where(schema.viewers.c.id == viewer_id).values(
                status="completed", finished_at=time.time()))

    def withdraw(self, viewer_id: int) -> None:
        """A viewer withdraws: their frames and their answers are deleted."""
        with self.begin() as conn:
            conn.execute(delete(schema.frames).where(schema.frames.c.viewer_id == viewer_id))
            conn.execute(delete(schema.viewers).where(schema.viewers.c.id == viewer_id))

    def frames(self, study_id: str) -> pd.DataFrame:
        with self.begin() as conn:
            rows = conn.execute(select(schema.frames).where(schema.frames.c.study_id == study_id)
                                .order_by(schema.frames.c.viewer_id, schema.frames.c.ad_time)).mappings().all()
        return pd.DataFrame([dict(r) for r in rows], columns=[c.name for c in schema.frames.c])

    def viewer_table(self, study_id: str, study: dict | None = None) -> pd.DataFrame:
        """One row per viewer: status, answers, frames, the share of the ad's seconds in which the
        face was found and readable, and whether (and why) the viewer is excluded."""
        with self.begin() as conn:
            study = study or dict(self._study_row(conn, study_id))
            viewers = conn.execute(select(schema.viewers).where(schema.viewers.c.study_id == study_id)
                                   .order_by(schema.viewers.c.id)).mappings().all()
            per_second = conn.execute(select(
                schema.frames.c.viewer_id, func.floor(schema.frames.c.ad_time).label("second"),
                func.max(schema.frames.c.face.cast(Integer)).label("face"),
                func.max(schema.frames.c.readable.cast(Integer)).label("readable"),
                func.count().label("frames"))
                .where(schema.frames.c.study_id == study_id)
                .group_by(schema.frames.c.viewer_id, func.floor(schema.frames.c.ad_time))).mappings().all()
        seconds = max(1, whole_seconds(study["ad_seconds"]))
        ps = pd.DataFrame([dict(r) for r in per_second], columns=["viewer_id", "second", "face", "readable", "frames"])
        ps = ps[(ps["second"] >= 0) & (ps["second"] < seconds)]
        rows = []
        for v in viewers:
            mine = ps[ps["viewer_id"] == v["id"]]
            face_share = float(mine["face"].sum()) / seconds
            readable_share = float(mine["readable"].sum()) / seconds
            reason = ""
            if readable_share < MIN_READABLE_SHARE:
                reason = (f"face found and readable in {readable_share:.0%} of the ad's seconds "
                          f"(under {MIN_READABLE_SHARE:.0%})")
            rows.append({"viewer": int(v["id"]), "source": v["source"], "status": v["status"],
                         "answers": json.loads(v["answers"]), "started_at": v["started_at"],
                         "watched_s": round(float(v["watched_s"]), 2), "frames": int(mine["frames"].sum()),
                         "face_share": round(face_share, 3), "readable_share": round(readable_share, 3),
                         "excluded": bool(reason), "reason": reason})
        return pd.DataFrame(rows, columns=["viewer", "source", "status", "answers", "started_at", "watched_s", "frames",
                                           "face_share", "readable_share", "excluded", "reason"])


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite in WAL mode with foreign keys and a busy timeout, so several
    threads and processes can write one file."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url




def import_recording(store: StudyStore, study: dict, analyzer, path: str, offset: float = 0.0,
                     fps: float = 5.0) -> dict:
    """A recording of a viewer made outside the browser (the `campaign` way), analysed at `fps`
    frames per second from where the ad starts in it (`offset` seconds) to the ad's end, stored as
    a finished viewer of the study. Raises ValueError when it is no video or the offset is off."""
    from ..analyze.video import VideoReader
    if not math.isfinite(offset) or offset < 0:
        raise ValueError(f"the offset must be a number of seconds of 0 or more, not {offset}")
    reader = VideoReader(path)  # ValueError when it cannot be opened
    length = reader.frame_count / reader.fps if reader.frame_count else None
    if length is not None and offset >= length:
        reader.close()
        raise ValueError(f"the offset {offset:g} s is past the recording's end ({length:.1f} s)")
    reader.every = max(1, round(reader.fps / fps))
    viewer, _ = store.add_viewer(study["id"], {}, [], source="recording")
    rows = []
    with reader:
        for index, frame in reader:
            t = index / reader.fps - offset
            if t > study["ad_seconds"]:
                break
            if t >= 0:
                faces = analyzer.analyze(frame)
                rows.append({"ad_time": t, "face": max(faces, key=lambda f: f.box[2] * f.box[3]) if faces else None})
    store.add_frames(study["id"], viewer, rows)
    store.finish_viewer(viewer)
    return {"recording": os.path.basename(path), "viewer": viewer, "frames": len(rows)}
