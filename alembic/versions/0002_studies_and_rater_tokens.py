"""studies, rater tokens and case-folded rater names

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

* ``studies``: a listening study (pool tags, mode, items per rater, texts,
  selection, completion code, listening requirement, open/closed);
* ``study_id`` on rating sessions, star ratings and comparisons;
* ``raters.name_key`` (trimmed, one space between words, case-folded; unique) and
  ``raters.token_sha256`` (the hash of the rater's secret sign-in token).

Existing raters whose names differ only in case or spacing keep their rows; the
later ones get ``#<id>`` appended to their key, so nothing is merged silently.
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()[:80]


def upgrade() -> None:
    op.create_table('studies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('pool_tags', sa.JSON(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('items_per_rater', sa.Integer(), nullable=False),
    sa.Column('instructions', sa.Text(), nullable=False),
    sa.Column('consent_text', sa.Text(), nullable=False),
    sa.Column('selection', sa.String(length=16), nullable=False),
    sa.Column('reward_model', sa.Text(), nullable=True),
    sa.Column('completion_code', sa.String(length=64), nullable=True),
    sa.Column('listen_fraction', sa.Float(), nullable=False),
    sa.Column('repeat_share', sa.Float(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("mode IN ('stars', 'pairs', 'mixed-tags')", name=op.f('ck_studies_mode')),
    sa.CheckConstraint("selection IN ('random', 'active')", name=op.f('ck_studies_selection')),
    sa.CheckConstraint("status IN ('open', 'closed')", name=op.f('ck_studies_status')),
    sa.CheckConstraint('items_per_rater >= 1', name=op.f('ck_studies_items_positive')),
    sa.CheckConstraint('listen_fraction >= 0 AND listen_fraction <= 1', name=op.f('ck_studies_listen_fraction_range')),
    sa.CheckConstraint('repeat_share >= 0 AND repeat_share <= 0.5', name=op.f('ck_studies_repeat_share_range')),
    sa.CheckConstraint('length(name) >= 1', name=op.f('ck_studies_name_not_empty')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_studies')),
    sa.UniqueConstraint('name', name=op.f('uq_studies_name'))
    )
    with op.batch_alter_table('raters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name_key', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('token_sha256', sa.String(length=64), nullable=True))
    connection = op.get_bind()
    raters = sa.table('raters', sa.column('id', sa.Integer), sa.column('name', sa.String),
                      sa.column('name_key', sa.String))
    taken: set[str] = set()
    for rater_id, name in connection.execute(sa.select(raters.c.id, raters.c.name).order_by(raters.c.id)).all():
        key = _name_key(name)
        if key in taken:
            key = f"{key[:70]}#{rater_id}"
        taken.add(key)
        connection.execute(raters.update().where(raters.c.id == rater_id).values(name_key=key))
    with op.batch_alter_table('raters', schema=None) as batch_op:
        batch_op.alter_column('name_key', existing_type=sa.String(length=80), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_raters_name_key'), ['name_key'])
        batch_op.create_unique_constraint(batch_op.f('uq_raters_token_sha256'), ['token_sha256'])
    with op.batch_alter_table('rating_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('study_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_rating_sessions_study_id_studies'), 'studies', ['study_id'], ['id'])
    for table in ('star_ratings', 'comparisons'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('study_id', sa.Integer(), nullable=True))
            batch_op.create_index(batch_op.f(f'ix_{table}_study_id'), ['study_id'], unique=False)
            batch_op.create_foreign_key(batch_op.f(f'fk_{table}_study_id_studies'), 'studies', ['study_id'], ['id'])


def downgrade() -> None:
    for table in ('comparisons', 'star_ratings'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(batch_op.f(f'fk_{table}_study_id_studies'), type_='foreignkey')
            batch_op.drop_index(batch_op.f(f'ix_{table}_study_id'))
            batch_op.drop_column('study_id')
    with op.batch_alter_table('rating_sessions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_rating_sessions_study_id_studies'), type_='foreignkey')
        batch_op.drop_column('study_id')
    with op.batch_alter_table('raters', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_raters_token_sha256'), type_='unique')
        batch_op.drop_constraint(batch_op.f('uq_raters_name_key'), type_='unique')
        batch_op.drop_column('token_sha256')
        batch_op.drop_column('name_key')
    op.drop_table('studies')
