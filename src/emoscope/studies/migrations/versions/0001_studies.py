"""Studies, their viewers, the viewers' frames and the norms of closed studies.

Revision ID: 0001
Revises:
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

EXPRESSIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")  # as of this revision


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("token", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("questions", sa.Text, nullable=False),
        sa.Column("retention_days", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("closed_at", sa.Float),
        sa.Column("ad_name", sa.Text, nullable=False),
        sa.Column("ad_mime", sa.String(100), nullable=False),
        sa.Column("ad_seconds", sa.Float, nullable=False),
        sa.Column("ad_fps", sa.Float, nullable=False),
        sa.Column("ad_bytes", sa.LargeBinary, nullable=False))
    op.create_table(
        "viewers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("study_id", sa.String(32), sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("answers", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("watched_s", sa.Float, nullable=False))
    op.create_table(
        "frames",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("viewer_id", sa.Integer, sa.ForeignKey("viewers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("study_id", sa.String(32), sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("ad_time", sa.Float, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("face", sa.Boolean, nullable=False),
        sa.Column("readable", sa.Boolean, nullable=False),
        sa.Column("quality", sa.Float),
        sa.Column("unreadable", sa.Text),
        sa.Column("w", sa.Integer),
        sa.Column("h", sa.Integer),
        *[sa.Column(c, sa.Float) for c in EXPRESSIONS],
        sa.Column("label", sa.String(20)),
        sa.Column("valence", sa.String(20)),
        sa.Column("valence_score", sa.Float))
    op.create_index("frames_by_study", "frames", ["study_id", "viewer_id", "ad_time"])
    op.create_table(
        "norms",
        sa.Column("study_id", sa.String(32), sa.ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("closed_at", sa.Float, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("curve", sa.Text, nullable=False))


def downgrade() -> None:
    op.drop_index("frames_by_study", "frames")
    for table in ("norms", "frames", "viewers", "studies"):
        op.drop_table(table)
