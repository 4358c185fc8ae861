"""The arq worker: fetch a URL, record its status in PostgreSQL."""

import httpx
import psycopg2
import structlog
from arq.connections import RedisSettings

from uv_worker.settings import Settings

log = structlog.get_logger()
SETTINGS = Settings()


async def record_status(ctx: dict, url: str) -> int:
    """Fetches `url` and stores its HTTP status; returns the status."""
    async with httpx.AsyncClient(timeout=SETTINGS.fetch_timeout) as client:
        status = (await client.get(url)).status_code
    with psycopg2.connect(SETTINGS.database_url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO checks (url, status) VALUES (%s, %s)", (url, status))
    log.info("recorded", url=url, status=status, job=ctx.get("job_id"))
    return status


class WorkerSettings:
    functions = [record_status]
    redis_settings = RedisSettings.from_dsn(SETTINGS.redis_url)
    max_jobs = SETTINGS.max_jobs
