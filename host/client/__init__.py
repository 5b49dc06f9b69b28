"""Clients of a running daemon: ``audiohost request`` (the transport every DAW script calls)."""
