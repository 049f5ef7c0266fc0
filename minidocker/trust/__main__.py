"""``python -m minidocker.trust``: chapter 16's commands (``minidocker trust``)."""

import sys

from minidocker.trust.cli import main

if __name__ == "__main__":
    sys.exit(main())
