"""Geography: PostGIS and the geo_points table of the spatial store, where PostGIS is available.

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-25 14:30:00+00:00

Only PostgreSQL with the postgis extension available gets anything: the schema `civic_geo`, the
extension (installed there unless it is installed already), and `civic_geo.geo_points` with a
geography(Point, 4326) column and a GiST index. Keeping all of it out of the default schema is
what keeps the ORM models (which have no spatial table) identical to the migrated schema on
SQLite, on PostgreSQL and on PostgreSQL with PostGIS; PostGIS's own `spatial_ref_sys` table
stays out of it too. Where PostGIS is missing, or the role may not create it, nothing is done
and the platform keeps its spatial index in memory (the store creates the table later if PostGIS
comes). The statements mirror civic.kernel.geo.postgis.geo_table_ddl at the time of writing.
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

SCHEMA = "civic_geo"
EXTENSION_SCHEMA = sa.text(
    "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
    " WHERE e.extname = 'postgis'"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    available = bind.execute(
        sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'")
    ).scalar()
    if not available:
        log.warning("PostGIS is not installed on this server: the spatial store runs in memory")
        return
    try:
        with bind.begin_nested():
            bind.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
            extension = bind.execute(EXTENSION_SCHEMA).scalar()
            if extension is None:
                bind.execute(sa.text(f"CREATE EXTENSION IF NOT EXISTS postgis SCHEMA {SCHEMA}"))
                extension = SCHEMA
            bind.execute(
                sa.text(
                    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.geo_points (
                    layer varchar(60) NOT NULL,
                    key varchar(120) NOT NULL,
                    lat double precision NOT NULL,
                    lon double precision NOT NULL,
                    geog "{extension}".geography(Point, 4326) NOT NULL,
                    attributes jsonb NOT NULL DEFAULT '{{}}'::jsonb,
                    updated_at timestamptz NOT NULL DEFAULT now(),
                    CONSTRAINT pk_geo_points PRIMARY KEY (layer, key))"""
                )
            )
            bind.execute(
                sa.text(
                    f"CREATE INDEX IF NOT EXISTS ix_geo_points_geog ON {SCHEMA}.geo_points"
                    " USING gist (geog)"
                )
            )
    except sa.exc.DBAPIError as exc:
        # Typically a role that may not create extensions: leave the database as it was.
        log.warning("PostGIS could not be set up (%s): the spatial store runs in memory", exc.orig)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    bind.execute(sa.text(f"DROP TABLE IF EXISTS {SCHEMA}.geo_points"))
    # PostGIS goes only if it was installed in our schema (by upgrade), never someone else's.
    if bind.execute(EXTENSION_SCHEMA).scalar() == SCHEMA:
        bind.execute(sa.text("DROP EXTENSION postgis"))
    bind.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA}"))
