"""Settings from the environment (`UV_WORKER_*`), read once."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UV_WORKER_")

    redis_url: str = "redis://localhost:6379/0"
    database_url: str = "postgresql://worker@localhost/worker"
    fetch_timeout: float = Field(default=10.0, gt=0)
    max_jobs: int = Field(default=10, ge=1)
