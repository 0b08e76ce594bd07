"""Installed packages checked against vulnerability advisories the user supplies, offline.

The advisories are OSV records (https://ossf.github.io/osv-schema/), in any of the shapes
people export them in:

* one record per JSON file, or a folder of them (``osv-vulnerabilities`` bucket, a git clone
  of an advisory database);
* a zip of records, as OSV's bulk export ``PyPI/all.zip``;
* a list of records, ``{"vulns": [...]}`` (OSV's query API), or osv-scanner's
  ``{"results": [{"packages": [{"vulnerabilities": [...]}]}]}``.

Only ``PyPI`` entries are used. A distribution is affected when its version is listed in
``versions``, or falls in one of the ``ranges`` (``ECOSYSTEM`` or ``SEMVER``), evaluated as
the OSV schema says: events sorted by version; ``introduced`` opens, ``fixed`` closes at its
version, ``last_affected`` closes after its version. Versions compare as PEP 440
(:mod:`packaging.version`); names compare normalized (PEP 503).

Severity: the record's own rating (GitHub's ``database_specific.severity``: LOW, MODERATE,
HIGH, CRITICAL), else the CVSS v3 base score of its ``severity`` vector, else ``high``: a
known vulnerability without a rating is not assumed to be harmless.

>>> advisories = load_advisories("osv-pypi.zip")                  # doctest: +SKIP
>>> [f.location for f in check_installed(advisories)]             # doctest: +SKIP
['numpy==1.21.0']
"""

from __future__ import annotations

import importlib.metadata
import math
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from packaging.version import InvalidVersion, Version

from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.security.findings import Finding, Severity

__all__ = [
    "Advisory",
    "AffectedPackage",
    "check_installed",
    "cvss3_base_score",
    "installed_distributions",
    "is_affected",
    "load_advisories",
    "normalize_name",
]

_MAX_MEMBER_BYTES = 64 * 1024**2  # one advisory record in a zip; the largest are ~1 MB
_GHSA_SEVERITY: dict[str, Severity] = {
    "LOW": "low", "MODERATE": "medium", "MEDIUM": "medium", "HIGH": "high",
    "CRITICAL": "critical",
}


def normalize_name(name: str) -> str:
    """A distribution name as PEP 503 compares it: ``Scikit_Learn`` is ``scikit-learn``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True, slots=True)
class AffectedPackage:
    """One PyPI package an advisory affects: version ranges (lists of OSV events) and an
    explicit list of versions."""

    name: str
    ranges: tuple[tuple[tuple[str, str], ...], ...] = ()
    versions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Advisory:
    """An OSV record, reduced to what matching needs."""

    id: str
    summary: str
    aliases: tuple[str, ...]
    severity: Severity
    severity_source: str
    affected: tuple[AffectedPackage, ...]


# -- loading -----------------------------------------------------------------------------------
def load_advisories(path: str | Path) -> list[Advisory]:
    """Read every OSV record under ``path`` (a JSON file, a folder of them, or a zip).

    Raises InvalidInputError when nothing in it is an OSV record with PyPI packages.
    """
    source = Path(path)
    if not source.exists():
        raise NotFoundError(f"There is no advisory file or folder at {str(source)!r}.",
                            hint="Export advisories from OSV (for example PyPI/all.zip from "
                                 "https://osv.dev) and pass that file.")
    records: list[Advisory] = []
    seen = 0
    for name, doc in _documents(source):
        for raw in _records(doc):
            seen += 1
            advisory = _advisory(raw, name)
            if advisory is not None:
                records.append(advisory)
    if not records:
        raise InvalidInputError(
            f"{str(source)!r} holds no OSV advisory for PyPI packages ({seen} record(s) read, "
            "none with 'affected' PyPI packages).",
            hint="Pass full OSV records (osv.dev exports, osv-scanner --format json output); "
                 "OSV's querybatch answer lists only ids.")
    return records


def _documents(source: Path) -> Iterator[tuple[str, Any]]:
    if source.is_dir():
        for file in sorted(source.rglob("*.json")):
            yield str(file), _parse(file.read_bytes(), str(file))
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            for info in archive.infolist():
                if info.is_dir() or not info.filename.endswith(".json"):
                    continue
                if info.file_size > _MAX_MEMBER_BYTES:
                    raise InvalidInputError(
                        f"{info.filename!r} in {str(source)!r} is {info.file_size} bytes; an "
                        f"advisory record is at most {_MAX_MEMBER_BYTES}.")
                label = f"{source}:{info.filename}"
                yield label, _parse(archive.read(info), label)
    else:
        yield str(source), _parse(source.read_bytes(), str(source))


def _parse(data: bytes, label: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"{label!r} is not valid JSON: {exc}.",
                                hint="Pass OSV JSON records.") from None


def _records(doc: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(doc, list):
        for item in doc:
            yield from _records(item)
    elif isinstance(doc, dict):
        if "affected" in doc or ("id" in doc and "modified" in doc):
            yield doc
        if isinstance(doc.get("vulns"), list):
            yield from _records(doc["vulns"])
        if isinstance(doc.get("results"), list):
            for result in doc["results"]:
                if not isinstance(result, dict):
                    continue
                for package in result.get("packages") or []:
                    if isinstance(package, dict):
                        yield from _records(package.get("vulnerabilities") or [])
                if isinstance(result.get("vulns"), list):
                    yield from _records(result["vulns"])


def _advisory(raw: Mapping[str, Any], label: str) -> Advisory | None:
    if raw.get("withdrawn"):
        return None
    affected = []
    for entry in raw.get("affected") or []:
        package = entry.get("package") if isinstance(entry, dict) else None
        if not isinstance(package, dict) or str(package.get("ecosystem", "")).split(":")[0] != (
                "PyPI") or not package.get("name"):
            continue
        ranges = tuple(
            tuple((str(k), str(v)) for event in r.get("events") or [] if isinstance(event, dict)
                  for k, v in event.items())
            for r in entry.get("ranges") or []
            if isinstance(r, dict) and r.get("type") in ("ECOSYSTEM", "SEMVER"))
        versions = tuple(str(v) for v in entry.get("versions") or [])
        affected.append(AffectedPackage(normalize_name(str(package["name"])), ranges, versions))
    if not affected:
        return None
    severity, source = _severity(raw)
    return Advisory(
        id=str(raw.get("id") or label), summary=str(raw.get("summary") or raw.get("details")
                                                    or "").strip().split("\n")[0][:200],
        aliases=tuple(str(a) for a in raw.get("aliases") or []), severity=severity,
        severity_source=source, affected=tuple(affected))


def _severity(raw: Mapping[str, Any]) -> tuple[Severity, str]:
    places: list[Any] = [raw.get("database_specific")]
    for entry in raw.get("affected") or []:
        if isinstance(entry, dict):
            places += [entry.get("database_specific"), entry.get("ecosystem_specific")]
    for place in places:
        if isinstance(place, dict) and isinstance(place.get("severity"), str):
            rating = _GHSA_SEVERITY.get(place["severity"].upper())
            if rating is not None:
                return rating, f"rated {place['severity']}"
    for item in raw.get("severity") or []:
        if isinstance(item, dict) and item.get("type") == "CVSS_V3":
            try:
                score = cvss3_base_score(str(item.get("score", "")))
            except ValueError:
                continue
            return _cvss_severity(score), f"CVSS {score:.1f}"
    return "high", "no rating in the advisory"


# -- CVSS v3 -----------------------------------------------------------------------------------
_WEIGHTS: dict[str, dict[str, float]] = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}
_PRIVILEGES = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.5}}


def _roundup(value: float) -> float:
    # CVSS 3.1's Roundup: the smallest one-decimal number >= value, free of float noise.
    scaled = round(value * 100_000)
    if scaled % 10_000 == 0:
        return scaled / 100_000
    return (math.floor(scaled / 10_000) + 1) / 10.0


def cvss3_base_score(vector: str) -> float:
    """The CVSS v3.0/v3.1 base score of a vector such as
    ``CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H`` (9.8).

    >>> cvss3_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
    9.8
    """
    parts = vector.strip().split("/")
    if not parts or not parts[0].startswith("CVSS:3"):
        raise ValueError(f"not a CVSS v3 vector: {vector!r}")
    metrics = dict(p.split(":", 1) for p in parts[1:] if ":" in p)
    try:
        scope = metrics["S"]
        weights = {k: _WEIGHTS[k][metrics[k]] for k in _WEIGHTS}
        privileges = _PRIVILEGES[scope][metrics["PR"]]
    except KeyError as exc:
        raise ValueError(f"incomplete CVSS v3 vector {vector!r}: {exc}") from None
    iss = 1 - (1 - weights["C"]) * (1 - weights["I"]) * (1 - weights["A"])
    impact = 6.42 * iss if scope == "U" else 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15
    exploitability = 8.22 * weights["AV"] * weights["AC"] * privileges * weights["UI"]
    if impact <= 0:
        return 0.0
    total = impact + exploitability if scope == "U" else 1.08 * (impact + exploitability)
    return _roundup(min(total, 10.0))


def _cvss_severity(score: float) -> Severity:
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low" if score > 0 else "info"


# -- matching ----------------------------------------------------------------------------------
def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _in_range(version: Version, events: tuple[tuple[str, str], ...]) -> bool:
    # OSV's evaluation: sort the events by version ("introduced": "0" first), then walk them.
    parsed: list[tuple[Version | None, int, str]] = []
    order = {"introduced": 0, "fixed": 1, "last_affected": 1}
    for kind, value in events:
        if kind not in order:
            continue  # "limit" bounds git ranges only
        at = None if (kind == "introduced" and value == "0") else _version(value)
        if at is None and value != "0":
            continue
        parsed.append((at, order[kind], kind))
    parsed.sort(key=lambda e: (e[0] is not None, e[0] or Version("0"), e[1]))
    affected = False
    for at, _, kind in parsed:
        if kind == "introduced":
            if at is None or version >= at:
                affected = True
        elif kind == "fixed":
            if at is not None and version >= at:
                affected = False
        elif at is not None and version > at:  # last_affected
            affected = False
    return affected


def is_affected(version: str, package: AffectedPackage) -> bool:
    """Whether ``version`` of ``package.name`` is affected (listed, or within a range).

    >>> pkg = AffectedPackage("numpy", ranges=((("introduced", "0"), ("fixed", "1.22.0")),))
    >>> is_affected("1.21.6", pkg), is_affected("1.22.0", pkg)
    (True, False)
    """
    parsed = _version(version)
    if parsed is None:
        return version in package.versions
    for listed in package.versions:
        other = _version(listed)
        if other == parsed or listed == version:
            return True
    return any(_in_range(parsed, events) for events in package.ranges)


def _fixed_after(version: str, package: AffectedPackage) -> str | None:
    parsed = _version(version)
    candidates = sorted(
        (v, text) for events in package.ranges for kind, text in events
        if kind == "fixed" and (v := _version(text)) is not None
        and (parsed is None or v > parsed))
    return candidates[0][1] if candidates else None


def installed_distributions() -> dict[str, str]:
    """Every distribution installed in this environment: normalized name -> version."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name and dist.version:
            found.setdefault(normalize_name(name), dist.version)
    return found


def check_installed(advisories: Iterable[Advisory],
                    installed: Mapping[str, str] | None = None) -> list[Finding]:
    """A finding per installed distribution and advisory that affects it, plus an ``info``
    summary of what was checked. ``installed`` defaults to this environment's distributions.
    """
    packages = dict(installed) if installed is not None else installed_distributions()
    packages = {normalize_name(k): v for k, v in packages.items()}
    advisories = list(advisories)
    findings: list[Finding] = []
    for advisory in advisories:
        for package in advisory.affected:
            version = packages.get(package.name)
            if version is None or not is_affected(version, package):
                continue
            fixed = _fixed_after(version, package)
            aliases = f" ({', '.join(advisory.aliases)})" if advisory.aliases else ""
            summary = f": {advisory.summary}" if advisory.summary else ""
            findings.append(Finding(
                advisory.severity, "advisory.vulnerable-package", f"{package.name}=={version}",
                f"{package.name} {version} is affected by {advisory.id}{aliases}{summary} "
                f"[{advisory.severity_source}].",
                f"Upgrade {package.name} to {fixed} or later." if fixed else
                f"No fixed version is listed; see {advisory.id} for a workaround."))
            break  # one finding per advisory, even if it lists the package twice
    findings.append(Finding(
        "info", "advisory.checked", "environment",
        f"Checked {len(packages)} installed distribution(s) against {len(advisories)} "
        f"advisory record(s); {len(findings)} match(es).", ""))
    return findings
