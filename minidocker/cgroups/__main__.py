"""``python -m minidocker.cgroups``: runs :func:`minidocker.cgroups.stage.main`."""

from minidocker.cgroups.stage import main
from minidocker.core.stage import exit_now

exit_now(main())
