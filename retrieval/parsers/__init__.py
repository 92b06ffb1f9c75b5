"""Parsers turn one document's raw text into structured chunks; each knows one real document shape."""
