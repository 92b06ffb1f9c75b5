"""Sibyl, the City of Lecce's citizen assistant: settings, CLI and the pieces shared by every channel."""

__version__ = "0.1.0"
