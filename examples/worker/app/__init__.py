"""Example worker for kiln: an arq worker with a FastAPI API and MCP tools."""
