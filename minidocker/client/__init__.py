"""Chapter 11: the client: HTTP over a UNIX socket, the ``minidocker`` commands, streams and the terminal."""
