"""Background jobs (teach, batch inspections): state, progress, result or error, owner process.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("stage", sa.String(32)),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("detail", sa.String(255)),
        sa.Column("result", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("token_id", sa.String(64)),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_jobs_state_owner", "jobs", ["state", "owner"])


def downgrade() -> None:
    op.drop_index("ix_jobs_state_owner", table_name="jobs")
    op.drop_table("jobs")
