"""``python -m minidocker.overlay``: runs :func:`minidocker.overlay.stage.main`."""

from minidocker.core.stage import exit_now
from minidocker.overlay.stage import main

exit_now(main())
