"""``python -m minidocker.oci``: the OCI runtime's command line, as ``minidocker-runtime``."""

from minidocker.oci.cli import command

if __name__ == "__main__":
    command()
