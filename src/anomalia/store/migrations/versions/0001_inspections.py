"""Inspection records: one row per verdict, with the operator's review.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "inspections",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("role_id", sa.String(64)),
        sa.Column("roi_id", sa.String(64)),
        sa.Column("model_version", sa.String(128)),
        sa.Column("bank_version", sa.String(128)),
        sa.Column("backbone", sa.String(64)),
        sa.Column("weights", sa.String(255)),
        sa.Column("weights_fingerprint", sa.String(80)),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("area_mm2_thr", sa.Float),
        sa.Column("mode", sa.String(16)),
        sa.Column("verdict", sa.String(2), nullable=False),
        sa.Column("n_regions", sa.Integer, nullable=False),
        sa.Column("regions", sa.JSON, nullable=False),
        sa.Column("image_width", sa.Integer, nullable=False),
        sa.Column("image_height", sa.Integer, nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("image_name", sa.String(80)),
        sa.Column("overlay", sa.String(255)),
        sa.Column("filename", sa.String(255)),
        sa.Column("request_id", sa.String(128)),
        sa.Column("duration_ms", sa.Float),
        sa.Column("part_id", sa.String(128)),
        sa.Column("station_id", sa.String(128)),
        sa.Column("operator_id", sa.String(128)),
        sa.Column("token_id", sa.String(64)),
        sa.Column("review_label", sa.String(2)),
        sa.Column("review_comment", sa.Text),
        sa.Column("reviewer", sa.String(128)),
        sa.Column("reviewed_us", sa.BigInteger),
        sa.Column("dataset_image", sa.String(80)),
    )
    op.create_index("ix_inspections_created", "inspections", ["created_us", "id"])
    op.create_index("ix_inspections_product", "inspections", ["role_id", "roi_id", "created_us", "id"])
    op.create_index("ix_inspections_verdict", "inspections", ["verdict", "created_us", "id"])
    op.create_index("ix_inspections_part", "inspections", ["part_id", "created_us", "id"])
    op.create_index("ix_inspections_station", "inspections", ["station_id", "created_us", "id"])
    op.create_index("ix_inspections_review", "inspections", ["review_label", "created_us", "id"])
    op.create_index("ix_inspections_request", "inspections", ["request_id"])


def downgrade() -> None:
    op.drop_table("inspections")
