from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from civic.kernel import migrations
from civic.kernel.db import create_engine
from civic.kernel.models import metadata


async def test_revisions_are_date_prefixed_and_each_has_a_downgrade() -> None:
    files = sorted((migrations.MIGRATIONS_DIR / "versions").glob("*.py"))
    assert files
    for file in files:
        assert file.name[:10].replace("_", "").isdigit(), file.name
        assert "def downgrade() -> None:" in file.read_text()


async def test_schema_matches_the_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
        assert diff == []
        assert await migrations.at_head(engine)
    finally:
        await engine.dispose()


async def test_downgrade_to_base_and_upgrade_again(tmp_path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'round.db'}")
    try:
        await migrations.upgrade(engine)
        await migrations.downgrade(engine, "base")
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        assert set(tables) <= {"alembic_version"}
        assert await migrations.current_revisions(engine) == set()
        await migrations.upgrade(engine)
        assert await migrations.at_head(engine)
    finally:
        await engine.dispose()
