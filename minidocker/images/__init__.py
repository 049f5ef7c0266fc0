"""Chapter 07: images and registries: references, manifests, the distribution protocol, pull, push, the
image store, save/load, and ``run`` by image name."""
