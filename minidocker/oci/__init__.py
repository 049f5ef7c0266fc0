"""Chapter 14: the OCI runtime: chapters 01 to 06 as ``minidocker-runtime``, a runc for containerd."""
