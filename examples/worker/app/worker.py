"""arq worker settings: `arq app.worker.WorkerSettings`."""
import os

from arq.connections import RedisSettings


async def resize(ctx, path: str, width: int) -> str:
    """Thumbnail an image (the job the worker exists for)."""
    from PIL import Image

    with Image.open(path) as img:
        img.thumbnail((width, width))
        out = f"{path}.thumb.png"
        img.save(out)
    return out


class WorkerSettings:
    functions = [resize]
    redis_settings = RedisSettings.from_dsn(os.environ.get("REDIS_URL", "redis://localhost:6379"))
