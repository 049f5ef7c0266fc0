"""minidocker side by side with runc, crun, Docker and podman: one run, same machine, same image, ratios.

Not part of the test suite (a full run takes about 10 minutes). As root, from the repository::

    .venv/bin/python -m tests.bench                  # every scenario; saves tests/bench/results.md
    .venv/bin/python -m tests.bench runtime cli      # some scenarios
    .venv/bin/python -m tests.bench run --only minidocker,docker --runs 5

It installs the peers it needs from Debian when they are missing (``peers.install``), runs
everything inside a network and mount namespace of its own (``sandbox``), starts dockerd,
minidockerd and a registry on private paths, runs each scenario (``scenarios``, ``many``) with
warm-up and alternating order (``timing``), prints the Markdown table (``report``) and saves it.
Everything it started is stopped and removed at the end, also on Ctrl-C or a failure.
``tests/test_bench.py`` runs it on one tiny scenario, so it cannot rot.

It lives in ``tests/`` because it is made of the tests' own fixtures (the private daemon of
chapter 07, the registries of chapters 06 and 10) and, like them, is a tool for the project's
developers, not part of the engine users install.
"""
