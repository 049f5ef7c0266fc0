"""Fixtures the tests and notebooks share: a real registry on 127.0.0.1 and an OCI image layout.

Not a chapter: no stage imports it at run time except chapter 07's ``images seed`` (the demo's registry)."""
