"""Telegram adapter (python-telegram-bot): a thin adapter over retrieval.pipeline."""
