"""store id and audit exports

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""
from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import syncd.store.schema

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The store's own id, made once: saved plans name the store they were made for.
    info = op.create_table('store_info',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', syncd.store.schema.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_store_info'))
    )
    op.bulk_insert(info, [{'id': str(uuid.uuid4()), 'created_at': datetime.now(UTC)}])
    # How far each host's audit file has caught up with the audit records.
    op.create_table('audit_exports',
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.Column('last_id', sa.BigInteger(), nullable=False),
    sa.Column('inode', sa.BigInteger(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', syncd.store.schema.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('host', 'path', name=op.f('pk_audit_exports'))
    )


def downgrade() -> None:
    op.drop_table('audit_exports')
    op.drop_table('store_info')
