"""`uv-worker-api` (the `api` extra): enqueue checks over HTTP."""

import sys


def main() -> int:
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI(title="uv-worker")

    @app.get("/health")
    def health() -> dict:
        return {"ok": True}

    uvicorn.run(app, host="0.0.0.0", port=8000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
