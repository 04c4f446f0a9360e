"""mirror index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Each connector's mirror as the engine indexes it, in one value: a delta run reads it
    # instead of every mirror row. Stores from before have none: their first run writes it.
    op.create_table('mirror_index',
    sa.Column('connector', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('connector', name=op.f('pk_mirror_index'))
    )


def downgrade() -> None:
    op.drop_table('mirror_index')
