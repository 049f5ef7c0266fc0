"""Chapter 03: cgroups: how much memory, CPU and how many processes a container may use."""
