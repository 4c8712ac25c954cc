"""a rater's current item and the melodies they heard in full

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-09

* ``current_items``: the item on a rater's screen in a study (its submission id,
  melodies, sides, deliberate repeat or not) and how long each of its melodies has
  played, so a reload shows the same item with its listening kept;
* ``heard_melodies``: the melodies a rater has heard in full (they need no listening
  when they come back).
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('current_items',
    sa.Column('rater_id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('melody_ids', sa.JSON(), nullable=False),
    sa.Column('shown_left', sa.String(length=1), nullable=True),
    sa.Column('is_repeat', sa.Boolean(), nullable=False),
    sa.Column('played_ms', sa.JSON(), nullable=False),
    sa.Column('shown_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('single', 'pair')", name=op.f('ck_current_items_kind')),
    sa.CheckConstraint('length(client_id) >= 8', name=op.f('ck_current_items_client_id_length')),
    sa.ForeignKeyConstraint(['rater_id'], ['raters.id'], name=op.f('fk_current_items_rater_id_raters')),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_current_items_study_id_studies')),
    sa.PrimaryKeyConstraint('rater_id', 'study_id', name=op.f('pk_current_items'))
    )
    op.create_table('heard_melodies',
    sa.Column('rater_id', sa.Integer(), nullable=False),
    sa.Column('melody_id', sa.Integer(), nullable=False),
    sa.Column('heard_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['melody_id'], ['melodies.id'], name=op.f('fk_heard_melodies_melody_id_melodies')),
    sa.ForeignKeyConstraint(['rater_id'], ['raters.id'], name=op.f('fk_heard_melodies_rater_id_raters')),
    sa.PrimaryKeyConstraint('rater_id', 'melody_id', name=op.f('pk_heard_melodies'))
    )


def downgrade() -> None:
    op.drop_table('heard_melodies')
    op.drop_table('current_items')
