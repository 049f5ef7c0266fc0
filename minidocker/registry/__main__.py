"""``python -m minidocker.registry``: runs :func:`minidocker.registry.server.main`."""

from minidocker.core.stage import exit_now
from minidocker.registry.server import main

exit_now(main())
