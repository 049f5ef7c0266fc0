"""Chapter 04: overlayfs: images as shared read-only layers, a copy-on-write layer per container."""
