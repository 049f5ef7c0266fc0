"""Chapter 02: namespaces: a process with its own PIDs, hostname, mounts, IPC, network and cgroup root."""
