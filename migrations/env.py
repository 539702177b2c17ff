"""Alembic environment: runs on the connection Civic hands over, or on the configured URL."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from civic.kernel.db import create_engine
from civic.kernel.models import metadata

config = context.config


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_on_url(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(run_on)
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    run_on(connection)
else:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from civic.settings import Settings

        url = Settings().database.url
    asyncio.run(run_on_url(url))
