"""Chapter 13: a Compose file checked against the Compose Specification's own JSON schema.

``compose-spec.json`` beside this module is a copy of ``schema/compose-spec.json`` from
https://github.com/compose-spec/compose-spec (commit 170098ba07d9f53c383a41bfd4c5166b0a4529a6),
distributed under the Apache License 2.0 (the copyright is The Compose Specification Authors'; the
licence's text is at https://www.apache.org/licenses/LICENSE-2.0). It is the schema ``docker
compose`` itself validates with, so a file we accept Compose accepts, and a key we do not know is
refused as Compose refuses it, rather than silently ignored.

The validator is ``jsonschema`` (Draft 7, the schema's ``$schema``). Its errors are rewritten as one
line that names the place as Compose's users know it: ``services.web.ports[0]: ...``.

Example::

    >>> validate({"services": {"web": {"image": "busybox", "bogus": 1}}})
    Traceback (most recent call last):
    ComposeError: services.web: additional property 'bogus' is not allowed
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

from minidocker.compose.errors import ComposeError

__all__ = ["SCHEMA", "place", "validate"]

SCHEMA = Path(__file__).with_name("compose-spec.json")


@functools.cache
def _validator() -> Any:
    import jsonschema

    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))


def place(path: Any) -> str:
    """``['services', 'web', 'ports', 0]`` -> ``services.web.ports[0]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(root)"


def _message(error: Any) -> str:
    """One error of the validator as a line: the deepest cause of a ``oneOf`` is the useful one."""
    while error.context:  # oneOf/anyOf: the alternative that got furthest explains best
        error = max(error.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
    where = place(error.absolute_path)
    if error.validator == "additionalProperties":
        extra = re.findall(r"'([^']+)'", error.message)
        allowed = set(error.schema.get("properties") or {})
        unknown = [k for k in extra if k not in allowed and not k.startswith("x-")]
        if unknown:
            return f"{where}: additional property {unknown[0]!r} is not allowed"
    if error.validator == "enum":
        return f"{where}: must be one of {', '.join(map(str, error.validator_value))}, not {error.instance!r}"
    if error.validator == "type":
        kinds = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return f"{where}: must be a {' or '.join(kinds)}"
    return f"{where}: {error.message}"


def validate(document: dict[str, Any]) -> None:
    """Raise :class:`ComposeError` with the first error of ``document`` (the one nearest the top)."""
    errors = sorted(_validator().iter_errors(document), key=lambda e: (list(map(str, e.absolute_path))))
    if errors:
        raise ComposeError(_message(errors[0]))
