"""``python -m minidocker.build``: runs :func:`minidocker.build.builder.main`."""

import contextlib
import sys

from minidocker.build.builder import main
from minidocker.core.process import EXIT_ENGINE

with contextlib.suppress(BrokenPipeError):
    sys.exit(main())
sys.exit(EXIT_ENGINE)
