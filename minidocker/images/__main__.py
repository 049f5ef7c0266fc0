"""``python -m minidocker.images``: runs :func:`minidocker.images.cli.main`."""

from minidocker.core.stage import exit_now
from minidocker.images.cli import main

exit_now(main())
