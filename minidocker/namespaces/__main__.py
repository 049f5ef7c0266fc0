"""``python -m minidocker.namespaces``: runs :func:`minidocker.namespaces.stage.main`."""

from minidocker.core.stage import exit_now
from minidocker.namespaces.stage import main

exit_now(main())
