"""mirror rules fingerprint

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The rules the mirror's last sync applied (a fingerprint): a delta run compares only
    # the groups its delta touched when the rules are the same. Stores from before have
    # none, so their first delta run compares everything.
    with op.batch_alter_table('mirror_state') as batch:
        batch.add_column(sa.Column('rules', sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('mirror_state') as batch:
        batch.drop_column('rules')
