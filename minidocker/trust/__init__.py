"""Chapter 16: trust: signed images (sigstore's format), a policy that refuses unsigned ones, and
credential helpers."""
