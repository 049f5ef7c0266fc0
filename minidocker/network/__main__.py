"""``python -m minidocker.network``: runs :func:`minidocker.network.stage.main`."""

from minidocker.core.stage import exit_now
from minidocker.network.stage import main

exit_now(main())
