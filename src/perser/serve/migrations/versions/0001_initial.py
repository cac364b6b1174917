"""The first schema: models, listeners, ratings and their features, profiles per model, keys.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "models",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("space", sa.JSON, nullable=False),
        sa.Column("feature_key", sa.String(64), nullable=False),
        sa.Column("feature_spec", sa.JSON),
        sa.Column("path", sa.Text),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", sa.Float),
    )
    op.create_table(
        "listeners",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
    )
    op.create_table(
        "ratings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("listener_id", sa.Integer, sa.ForeignKey("listeners.id", ondelete="CASCADE"), nullable=False),
        sa.Column("clip_id", sa.Text, nullable=False),
        sa.Column("label", sa.JSON, nullable=False),
        sa.Column("audio_digest", sa.String(64)),
        sa.Column("created_at", tz, nullable=False),
        sa.UniqueConstraint("listener_id", "clip_id", name="uq_ratings_listener_clip"),
    )
    op.create_table(
        "rating_features",
        sa.Column("rating_id", sa.Integer, sa.ForeignKey("ratings.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("feature_key", sa.String(64), primary_key=True),
        sa.Column("shape", sa.JSON, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "profiles",
        sa.Column("listener_id", sa.Integer, sa.ForeignKey("listeners.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("k", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("data", sa.JSON),
        sa.Column("tensors", sa.LargeBinary),
        sa.Column("updated_at", tz, nullable=False),
    )
    op.create_index("ix_profiles_model", "profiles", ["model_id", "status"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("revoked_at", tz),
    )


def downgrade() -> None:
    for t in ("api_keys", "profiles", "rating_features", "ratings", "listeners", "models"):
        op.drop_table(t)
