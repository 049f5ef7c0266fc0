"""``python -m minidocker.networks``: runs :func:`minidocker.networks.stage.main`."""

from minidocker.core.stage import exit_now
from minidocker.networks.stage import main

exit_now(main())
