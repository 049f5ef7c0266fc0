"""The pieces every part of minidocker shares: the syscall seam, the exit-status contract, atomic files,
state paths, the stage command line, watchdogs, console formatting and the stream framing.

Nothing here imports any other part of minidocker; every chapter may import it."""
