"""minidocker: a container engine in Python, built chapter by chapter from chroot to a Docker-style daemon.

Each chapter's module is a stage of the engine and can be run on its own::

    python -m minidocker.chroot     ROOTFS -- CMD      # chapter 01
    python -m minidocker.namespaces ROOTFS -- CMD      # chapter 02

The package imports nothing at start-up: ``import minidocker`` stays instant, and each stage
imports only what it uses.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
