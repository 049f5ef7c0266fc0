"""``python -m minidocker.security``: runs :func:`minidocker.security.stage.main`."""

from minidocker.core.stage import exit_now
from minidocker.security.stage import main

exit_now(main())
