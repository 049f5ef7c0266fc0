"""``python -m minidocker.desktop``: the dashboard, as ``minidocker desktop``.

Example::

    $ python -m minidocker.desktop --addr 127.0.0.1:7015
"""

import sys

from minidocker.desktop.cli import main

sys.exit(main(None, sys.argv[1:]))
