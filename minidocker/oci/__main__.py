"""``python -m minidocker.oci``: the OCI runtime's command line, as ``minidocker-runtime``."""

import sys

from minidocker.oci.cli import main

if __name__ == "__main__":
    sys.exit(main())
