"""Chapter 12: user-defined networks: many bridges as objects, their isolation, and embedded DNS."""
