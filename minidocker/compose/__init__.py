"""Chapter 13: Compose: another client of the daemon, a whole application from one file.

Compose is nothing more than a file format and a client. ``minidocker compose up`` reads
``compose.yaml`` (:mod:`.loader`: YAML, ``.env``, ``${VAR:-default}``, several ``-f`` files merged,
profiles), checks it against the Compose Specification's JSON schema (:mod:`.schema`), resolves it
into a project of services in dependency order with a hash of each one's config (:mod:`.model`),
and then makes the daemon's state match it through the API alone (:mod:`.apply`): networks,
volumes and containers, each carrying Compose's own labels (``com.docker.compose.project`` ...),
so that the real Compose sees our objects as its own and we see its.

The package imports only ``core`` and ``client``: it is a client of the API, like docker's CLI.
"""
