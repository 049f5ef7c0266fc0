"""Chapter 10: the daemon's routes, one module per part of Docker's Engine API."""
