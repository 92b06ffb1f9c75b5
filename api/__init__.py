"""HTTP API and web chat (FastAPI): a thin adapter over retrieval.pipeline."""
