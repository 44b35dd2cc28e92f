"""chatrepl: a terminal chat client for any OpenAI-compatible API."""

__version__ = "0.1.0"
