"""``python -m minidocker.daemon``: runs :func:`minidocker.daemon.server.main`."""

from minidocker.core.stage import exit_now
from minidocker.daemon.server import main

exit_now(main())
