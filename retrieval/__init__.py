"""Sibyl's pipeline: corpus -> chunks -> index -> language -> hybrid retrieval -> grounded answer."""
