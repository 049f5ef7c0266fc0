"""Chapter 10: the daemon, ``minidockerd``: Docker's REST API, the supervisor, a monitor per container,
state."""
