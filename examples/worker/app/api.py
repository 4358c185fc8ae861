"""HTTP API: `uvicorn app.api:app`."""
from fastapi import FastAPI

app = FastAPI(title="worker")


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}
