"""Chapter 01: chroot(2), a jail for a command, and why a jail is not a container."""
