"""audit batches

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import syncd.store.schema

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
BATCH_COLUMNS = ('ts', 'run_id', 'actor', 'op', 'source')
SHARED_COLUMNS = ('rule', 'before', 'after', 'extra')


def upgrade() -> None:
    # What a batch of audit records shares is kept once (syncd.store.schema.AuditBatch).
    op.create_table('audit_batches',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('ts', syncd.store.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=True),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('op', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=True),
    sa.Column('rule', sa.String(length=255), nullable=True),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.Column('extra', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_batches'))
    )
    with op.batch_alter_table('audit_batches', schema=None) as batch_op:
        batch_op.create_index('ix_audit_batches_run_id', ['run_id'], unique=False)
        batch_op.create_index('ix_audit_batches_ts', ['ts'], unique=False)

    # A record of an older store becomes a batch of its own, with the record's id.
    columns = ', '.join(BATCH_COLUMNS)
    op.execute(f'INSERT INTO audit_batches (id, {columns}) SELECT id, {columns} FROM audit')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("SELECT setval(pg_get_serial_sequence('audit_batches', 'id'), "
                   "COALESCE(MAX(id), 0) + 1, false) FROM audit_batches")
    with op.batch_alter_table('audit', schema=None) as batch_op:
        batch_op.add_column(sa.Column('batch_id', ID, nullable=True))
    op.execute('UPDATE audit SET batch_id = id')
    with op.batch_alter_table('audit', schema=None) as batch_op:
        batch_op.alter_column('batch_id', existing_type=ID, nullable=False)
        batch_op.create_foreign_key(op.f('fk_audit_batch_id_audit_batches'), 'audit_batches',
                                    ['batch_id'], ['id'])
        batch_op.drop_index('ix_audit_run_id')
        batch_op.drop_index('ix_audit_ts')
        for column in BATCH_COLUMNS:
            batch_op.drop_column(column)
        batch_op.create_index('ix_audit_batch_id', ['batch_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ts', syncd.store.schema.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('run_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('actor', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('op', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('source', sa.String(length=64), nullable=True))
    for column in (*BATCH_COLUMNS, *SHARED_COLUMNS):
        # a shared column is the batch's where the record leaves it empty
        keep = f' WHERE "{column}" IS NULL' if column in SHARED_COLUMNS else ''
        op.execute(f'UPDATE audit SET "{column}" = (SELECT b."{column}" FROM audit_batches b '
                   f'WHERE b.id = audit.batch_id){keep}')
    with op.batch_alter_table('audit', schema=None) as batch_op:
        for column, kind in (('ts', syncd.store.schema.UTCDateTime(timezone=True)),
                             ('actor', sa.String(length=255)), ('op', sa.String(length=32))):
            batch_op.alter_column(column, existing_type=kind, nullable=False)
        batch_op.drop_index('ix_audit_batch_id')
        batch_op.drop_constraint(op.f('fk_audit_batch_id_audit_batches'), type_='foreignkey')
        batch_op.drop_column('batch_id')
        batch_op.create_index('ix_audit_run_id', ['run_id'], unique=False)
        batch_op.create_index('ix_audit_ts', ['ts'], unique=False)
    with op.batch_alter_table('audit_batches', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_batches_ts')
        batch_op.drop_index('ix_audit_batches_run_id')
    op.drop_table('audit_batches')
