"""``python -m minidocker.chroot``: runs :func:`minidocker.chroot.stage.main`."""

from minidocker.chroot.stage import main
from minidocker.core.stage import exit_now

exit_now(main())
