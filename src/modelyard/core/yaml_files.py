"""Reading the YAML files users write (gates, pipelines, quality thresholds, monitoring and
server configs): one mapping per file, with errors that name the file and what to fix.

PyYAML is imported when a file is read, not with this module (core stays light to import).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.errors import InvalidInputError, ModelyardError, NotFoundError

__all__ = ["read_yaml_mapping"]


def read_yaml_mapping(path: str | Path, *, what: str, contents: str, hint: str,
                      error: type[ModelyardError] = InvalidInputError) -> dict[str, Any]:
    """The mapping a YAML file holds (an empty file is an empty mapping).

    ``what`` names the file in messages ("gates file"), ``contents`` what the mapping holds
    ("gates"), ``hint`` how a valid file looks; ``error`` is raised for an unreadable file, bad
    YAML or a document that is not a mapping (:class:`NotFoundError` for a missing file).

    >>> read_yaml_mapping("gates.yaml", what="gates file", contents="gates",
    ...                   hint="See docs/ci.md.")  # doctest: +SKIP
    {'metrics': {'accuracy': {'min': 0.9}}}
    """
    import yaml

    where = str(path)
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"There is no {what} at {where!r}.",
                            hint="Check the path.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"Cannot read the {what} {where!r}: {exc}.") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())  # one line: PyYAML's messages span several
        raise error(f"{where!r} is not valid YAML: {reason}",
                    hint="Check the indentation; quote values that contain ': '.") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise error(f"{where!r} must hold a mapping of {contents}. Got a "
                    f"{type(doc).__name__} instead.", hint=hint)
    return doc
