"""Chapter 06: hardening: capabilities, seccomp, masked paths, devices, user namespaces. The runtime is
complete here."""
