"""Wait for something another task makes true, with a deadline instead of a fixed sleep."""

import asyncio
from collections.abc import Callable


async def eventually(condition: Callable[[], bool], *, within: float = 5.0) -> None:
    """Return once condition() holds; fail with TimeoutError after `within` seconds."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - the state belongs to another task
            await asyncio.sleep(0.01)
