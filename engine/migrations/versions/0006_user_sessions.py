"""Server-side sign-in sessions; demo accounts marked so production can refuse them.

Demo users seeded before this revision are recognised by their seeded username and password
(`<username>-demo`) and marked too.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op
from werkzeug.security import check_password_hash

from engine.db import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SEEDED_DEMO_USERNAMES = ("asiantuntija", "expert2", "esimies", "suunnittelija", "tarkastaja", "admin")


def _mark_seeded_demo_users() -> None:
    users = sa.table("user_account", sa.column("id", sa.Integer), sa.column("username", sa.String),
                     sa.column("password_hash", sa.String), sa.column("demo", sa.Boolean))
    conn = op.get_bind()
    rows = conn.execute(sa.select(users.c.id, users.c.username, users.c.password_hash)
                        .where(users.c.username.in_(SEEDED_DEMO_USERNAMES))).all()
    for user_id, username, password_hash in rows:
        if check_password_hash(password_hash, f"{username}-demo"):
            conn.execute(sa.update(users).where(users.c.id == user_id).values(demo=True))


def upgrade() -> None:
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("demo", sa.Boolean(), nullable=False, server_default=sa.false()))
    _mark_seeded_demo_users()
    op.create_table(
        "user_session",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("ended_reason", sa.String(length=40), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.Column("address", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("user_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_session_user_id"), ["user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_user_session_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_table("user_session")
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.drop_column("demo")
