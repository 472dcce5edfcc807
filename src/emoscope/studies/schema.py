"""The studies database, as SQLAlchemy Core tables. Changing it means a new migration in
`migrations/versions/` (the tables here are what the newest migration leaves)."""

from __future__ import annotations

from sqlalchemy import (Boolean, Column, Float, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Table,
                        Text)

from ..labels import EXPRESSIONS

metadata = MetaData()

studies = Table(
    "studies", metadata,
    Column("id", String(32), primary_key=True),             # short random id, used by the analyst
    Column("token", String(64), nullable=False, unique=True),  # the viewers' link: unguessable, this study only
    Column("name", Text, nullable=False),
    Column("questions", Text, nullable=False, default="[]"),  # JSON: [{"name": ..., "choices": [...]}]
    Column("retention_days", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("closed_at", Float),
    Column("ad_name", Text, nullable=False),
    Column("ad_mime", String(100), nullable=False),
    Column("ad_seconds", Float, nullable=False),
    Column("ad_fps", Float, nullable=False),
    Column("ad_bytes", LargeBinary, nullable=False),         # in the database: every server can play it
)

viewers = Table(
    "viewers", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study_id", String(32), ForeignKey("studies.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("key_hash", String(64), nullable=False),           # SHA-256 of the viewer's own secret key
    Column("source", String(20), nullable=False, default="browser"),  # browser | recording (imported)
    Column("answers", Text, nullable=False, default="{}"),    # JSON: question name -> answer
    Column("status", String(20), nullable=False),             # started | completed
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("watched_s", Float, nullable=False, default=0.0),  # the furthest ad time a frame came from
)

frames = Table(
    "frames", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("viewer_id", Integer, ForeignKey("viewers.id", ondelete="CASCADE"), nullable=False),
    Column("study_id", String(32), ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
    Column("ad_time", Float, nullable=False),                 # the ad's currentTime when the frame was taken
    Column("received_at", Float, nullable=False),
    Column("face", Boolean, nullable=False),
    Column("readable", Boolean, nullable=False),
    Column("quality", Float),
    Column("unreadable", Text),
    Column("w", Integer), Column("h", Integer),
    *[Column(c, Float) for c in EXPRESSIONS],
    Column("label", String(20)), Column("valence", String(20)), Column("valence_score", Float),
    Index("frames_by_study", "study_id", "viewer_id", "ad_time"),
)

norms = Table(
    "norms", metadata,
    Column("study_id", String(32), ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True),
    Column("closed_at", Float, nullable=False),
    Column("summary", Text, nullable=False),  # JSON: the study's headline numbers
    Column("curve", Text, nullable=False),    # JSON: per-second mean valence and its viewers
)
