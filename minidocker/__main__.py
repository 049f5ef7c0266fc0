"""``python -m minidocker``: the same as the ``minidocker`` command."""

import sys

from minidocker.client.cli import main

sys.exit(main())
