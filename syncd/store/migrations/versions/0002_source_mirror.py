"""source mirror

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import syncd.store.schema


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mirror_state',
    sa.Column('connector', sa.String(length=64), nullable=False),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.Column('groups', sa.Integer(), nullable=False),
    sa.Column('users', sa.Integer(), nullable=False),
    sa.Column('updated_at', syncd.store.schema.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('connector', name=op.f('pk_mirror_state'))
    )
    op.create_table('mirror_groups',
    sa.Column('connector', sa.String(length=64), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('digest', sa.String(length=32), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('connector', 'external_id', name=op.f('pk_mirror_groups'))
    )
    op.create_table('mirror_users',
    sa.Column('connector', sa.String(length=64), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('digest', sa.String(length=32), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('connector', 'external_id', name=op.f('pk_mirror_users'))
    )


def downgrade() -> None:
    op.drop_table('mirror_state')
    op.drop_table('mirror_users')
    op.drop_table('mirror_groups')
