"""Chapter 08: building images: a Dockerfile becomes an image, one cached layer at a time, no daemon
needed."""
