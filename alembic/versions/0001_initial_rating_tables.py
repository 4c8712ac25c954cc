"""initial rating tables

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('models',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('path', sa.Text(), nullable=True),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_models')),
    sa.UniqueConstraint('name', name=op.f('uq_models_name'))
    )
    op.create_table('raters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('consented_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('person', 'simulated')", name=op.f('ck_raters_kind')),
    sa.CheckConstraint('length(name) >= 1', name=op.f('ck_raters_name_not_empty')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_raters')),
    sa.UniqueConstraint('name', name=op.f('uq_raters_name'))
    )
    op.create_table('melodies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tokens', sa.JSON(), nullable=False),
    sa.Column('tokens_sha1', sa.String(length=40), nullable=False),
    sa.Column('num_steps', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=True),
    sa.Column('seed', sa.Integer(), nullable=True),
    sa.Column('sample_index', sa.Integer(), nullable=True),
    sa.Column('tag', sa.String(length=100), nullable=False),
    sa.Column('experiment', sa.String(length=200), nullable=True),
    sa.Column('extra', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('length(tag) >= 1', name=op.f('ck_melodies_tag_not_empty')),
    sa.CheckConstraint('num_steps >= 1', name=op.f('ck_melodies_num_steps_positive')),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_melodies_model_id_models')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_melodies')),
    sa.UniqueConstraint('tag', 'tokens_sha1', name=op.f('uq_melodies_tag_tokens_sha1'))
    )
    with op.batch_alter_table('melodies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_melodies_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_melodies_tag'), ['tag'], unique=False)

    op.create_table('rating_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rater_id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('client', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['rater_id'], ['raters.id'], name=op.f('fk_rating_sessions_rater_id_raters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rating_sessions'))
    )
    with op.batch_alter_table('rating_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rating_sessions_rater_id'), ['rater_id'], unique=False)

    op.create_table('comparisons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('rater_id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=True),
    sa.Column('melody_a_id', sa.Integer(), nullable=False),
    sa.Column('melody_b_id', sa.Integer(), nullable=False),
    sa.Column('shown_left', sa.String(length=1), nullable=False),
    sa.Column('choice', sa.String(length=4), nullable=False),
    sa.Column('is_repeat', sa.Boolean(), nullable=False),
    sa.Column('listened_ms', sa.Integer(), nullable=True),
    sa.Column('answer_ms', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("choice IN ('a', 'b', 'tie', 'skip')", name=op.f('ck_comparisons_choice')),
    sa.CheckConstraint("shown_left IN ('a', 'b')", name=op.f('ck_comparisons_shown_left')),
    sa.CheckConstraint('answer_ms IS NULL OR answer_ms >= 0', name=op.f('ck_comparisons_answer_ms_positive')),
    sa.CheckConstraint('length(client_id) >= 8', name=op.f('ck_comparisons_client_id_length')),
    sa.CheckConstraint('listened_ms IS NULL OR listened_ms >= 0', name=op.f('ck_comparisons_listened_ms_positive')),
    sa.CheckConstraint('melody_a_id <> melody_b_id', name=op.f('ck_comparisons_two_melodies')),
    sa.ForeignKeyConstraint(['melody_a_id'], ['melodies.id'], name=op.f('fk_comparisons_melody_a_id_melodies')),
    sa.ForeignKeyConstraint(['melody_b_id'], ['melodies.id'], name=op.f('fk_comparisons_melody_b_id_melodies')),
    sa.ForeignKeyConstraint(['rater_id'], ['raters.id'], name=op.f('fk_comparisons_rater_id_raters')),
    sa.ForeignKeyConstraint(['session_id'], ['rating_sessions.id'], name=op.f('fk_comparisons_session_id_rating_sessions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comparisons')),
    sa.UniqueConstraint('client_id', name=op.f('uq_comparisons_client_id'))
    )
    with op.batch_alter_table('comparisons', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_comparisons_melody_a_id'), ['melody_a_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_comparisons_melody_b_id'), ['melody_b_id'], unique=False)
        batch_op.create_index('ix_comparisons_rater', ['rater_id'], unique=False)

    op.create_table('star_ratings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('rater_id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=True),
    sa.Column('melody_id', sa.Integer(), nullable=False),
    sa.Column('stars', sa.SmallInteger(), nullable=False),
    sa.Column('is_repeat', sa.Boolean(), nullable=False),
    sa.Column('listened_ms', sa.Integer(), nullable=True),
    sa.Column('answer_ms', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('answer_ms IS NULL OR answer_ms >= 0', name=op.f('ck_star_ratings_answer_ms_positive')),
    sa.CheckConstraint('length(client_id) >= 8', name=op.f('ck_star_ratings_client_id_length')),
    sa.CheckConstraint('listened_ms IS NULL OR listened_ms >= 0', name=op.f('ck_star_ratings_listened_ms_positive')),
    sa.CheckConstraint('stars BETWEEN 1 AND 5', name=op.f('ck_star_ratings_stars_range')),
    sa.ForeignKeyConstraint(['melody_id'], ['melodies.id'], name=op.f('fk_star_ratings_melody_id_melodies')),
    sa.ForeignKeyConstraint(['rater_id'], ['raters.id'], name=op.f('fk_star_ratings_rater_id_raters')),
    sa.ForeignKeyConstraint(['session_id'], ['rating_sessions.id'], name=op.f('fk_star_ratings_session_id_rating_sessions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_star_ratings')),
    sa.UniqueConstraint('client_id', name=op.f('uq_star_ratings_client_id'))
    )
    with op.batch_alter_table('star_ratings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_star_ratings_melody_id'), ['melody_id'], unique=False)
        batch_op.create_index('ix_star_ratings_rater_melody', ['rater_id', 'melody_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('star_ratings', schema=None) as batch_op:
        batch_op.drop_index('ix_star_ratings_rater_melody')
        batch_op.drop_index(batch_op.f('ix_star_ratings_melody_id'))

    op.drop_table('star_ratings')
    with op.batch_alter_table('comparisons', schema=None) as batch_op:
        batch_op.drop_index('ix_comparisons_rater')
        batch_op.drop_index(batch_op.f('ix_comparisons_melody_b_id'))
        batch_op.drop_index(batch_op.f('ix_comparisons_melody_a_id'))

    op.drop_table('comparisons')
    with op.batch_alter_table('rating_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rating_sessions_rater_id'))

    op.drop_table('rating_sessions')
    with op.batch_alter_table('melodies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_melodies_tag'))
        batch_op.drop_index(batch_op.f('ix_melodies_model_id'))

    op.drop_table('melodies')
    op.drop_table('raters')
    op.drop_table('models')

