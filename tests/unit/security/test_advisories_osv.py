"""OSV advisories matched against installed distributions, offline: range events, explicit
versions, the export shapes people have, severities from ratings and CVSS vectors."""

from __future__ import annotations

import importlib.metadata
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.security.advisories import (
    AffectedPackage,
    check_installed,
    cvss3_base_score,
    is_affected,
    load_advisories,
)

NUMPY = importlib.metadata.version("numpy")


def _record(vid: str, name: str, *, ranges: list[dict[str, Any]] | None = None,
            versions: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    affected: dict[str, Any] = {"package": {"ecosystem": "PyPI", "name": name}}
    if ranges is not None:
        affected["ranges"] = ranges
    if versions is not None:
        affected["versions"] = versions
    return {"id": vid, "modified": "2024-01-01T00:00:00Z", "summary": f"{vid} summary",
            "affected": [affected], **extra}


def _ecosystem(*events: dict[str, str]) -> dict[str, Any]:
    return {"type": "ECOSYSTEM", "events": list(events)}


RANGES = [
    ("introduced-0-fixed", [_ecosystem({"introduced": "0"}, {"fixed": "2.0"})],
     {"1.9.9": True, "2.0": False, "2.0.1": False, "0.1": True}),
    ("window", [_ecosystem({"introduced": "1.2"}, {"fixed": "1.4.1"})],
     {"1.1": False, "1.2": True, "1.4.0": True, "1.4.1": False}),
    ("last-affected", [_ecosystem({"introduced": "1.0"}, {"last_affected": "1.5"})],
     {"1.5": True, "1.5.0.post1": False, "0.9": False}),
    ("reintroduced", [_ecosystem({"introduced": "1.0"}, {"fixed": "1.1"},
                                 {"introduced": "2.0"}, {"fixed": "2.1"})],
     {"1.0.5": True, "1.5": False, "2.0.0": True, "2.1": False}),
    ("unsorted-events", [_ecosystem({"fixed": "3.0"}, {"introduced": "2.5"})],
     {"2.4": False, "2.7rc1": True, "3.0": False}),
    ("prerelease", [_ecosystem({"introduced": "0"}, {"fixed": "1.0"})],
     {"1.0rc1": True, "1.0": False}),
]


@pytest.mark.parametrize(("label", "ranges", "cases"), RANGES, ids=[r[0] for r in RANGES])
def test_range_events(tmp_path: Path, label: str, ranges: list[dict[str, Any]],
                      cases: dict[str, bool]) -> None:
    advisories = load_advisories_from([_record("X-1", "pkg", ranges=ranges)], tmp_path)
    package = advisories[0].affected[0]
    assert {v: is_affected(v, package) for v in cases} == cases


def load_advisories_from(records: list[dict[str, Any]], folder: Path) -> Any:
    path = folder / "osv.json"
    path.write_text(json.dumps(records))
    return load_advisories(path)


def test_explicit_versions_compare_as_pep440() -> None:
    package = AffectedPackage("pkg", versions=("1.0", "2.3.1"))
    assert is_affected("1.0.0", package)
    assert is_affected("2.3.1", package)
    assert not is_affected("2.3.2", package)


SHAPES = [
    ("single-record", lambda recs: recs[0]),
    ("list", lambda recs: recs),
    ("vulns", lambda recs: {"vulns": recs}),
    ("osv-scanner", lambda recs: {"results": [{"packages": [
        {"package": {"name": "numpy"}, "vulnerabilities": recs}]}]}),
]


@pytest.mark.parametrize(("label", "shape"), SHAPES, ids=[s[0] for s in SHAPES])
def test_an_advisory_for_the_installed_numpy_matches(tmp_path: Path, label: str,
                                                     shape: Any) -> None:
    record = _record("GHSA-test-numpy", "NumPy", versions=[NUMPY],
                     aliases=["CVE-2099-0001"], database_specific={"severity": "MODERATE"})
    path = tmp_path / "osv.json"
    path.write_text(json.dumps(shape([record])))
    findings = check_installed(load_advisories(path))
    matches = [f for f in findings if f.rule == "advisory.vulnerable-package"]
    assert [(f.severity, f.location) for f in matches] == [("medium", f"numpy=={NUMPY}")]
    assert "GHSA-test-numpy (CVE-2099-0001)" in matches[0].message
    assert "No fixed version" in matches[0].hint


def test_advisories_that_do_not_match(tmp_path: Path) -> None:
    records = [
        _record("OLD-numpy", "numpy", ranges=[_ecosystem({"introduced": "0"},
                                                         {"fixed": "1.0"})]),
        _record("NOT-INSTALLED", "surely-not-installed-pkg", versions=["1.0"]),
        {**_record("WITHDRAWN", "numpy", versions=[NUMPY]), "withdrawn": "2024-02-01"},
        {"id": "NPM-1", "modified": "x", "affected": [
            {"package": {"ecosystem": "npm", "name": "numpy"}, "versions": [NUMPY]}]},
    ]
    findings = check_installed(load_advisories_from(records, tmp_path))
    assert [(f.severity, f.rule) for f in findings] == [("info", "advisory.checked")]
    assert "2 advisory record(s); 0 match(es)" in findings[0].message


def test_folder_and_zip_exports(tmp_path: Path) -> None:
    record = _record("PYSEC-x", "numpy", ranges=[_ecosystem({"introduced": "0"},
                                                            {"fixed": "999.0"})])
    folder = tmp_path / "db" / "PyPI"
    folder.mkdir(parents=True)
    (folder / "PYSEC-x.json").write_text(json.dumps(record))
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("PYSEC-x.json", json.dumps(record))
    for source in (tmp_path / "db", archive):
        findings = check_installed(load_advisories(source))
        match = next(f for f in findings if f.rule == "advisory.vulnerable-package")
        assert match.severity == "high"  # no rating at all: treated as high
        assert match.hint == "Upgrade numpy to 999.0 or later."


def test_installed_mapping_can_be_given(tmp_path: Path) -> None:
    advisories = load_advisories_from([_record("X-2", "Scikit_Learn", versions=["1.0.2"])],
                                      tmp_path)
    findings = check_installed(advisories, {"scikit-learn": "1.0.2"})
    assert findings[0].location == "scikit-learn==1.0.2"


CVSS = [
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8, "critical"),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0, "critical"),
    ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", 6.5, "medium"),
    ("CVSS:3.0/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.8, "low"),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1, "medium"),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5, "high"),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0, "info"),
]


@pytest.mark.parametrize(("vector", "score", "severity"), CVSS, ids=[c[0][9:] for c in CVSS])
def test_cvss3_scores_and_severities(tmp_path: Path, vector: str, score: float,
                                    severity: str) -> None:
    assert cvss3_base_score(vector) == score  # values from the FIRST calculator
    advisories = load_advisories_from([_record("C-1", "numpy", versions=[NUMPY],
                                               severity=[{"type": "CVSS_V3", "score": vector}])],
                                      tmp_path)
    assert check_installed(advisories)[0].severity == severity


@pytest.mark.parametrize(
    ("content", "error", "match"),
    [(None, NotFoundError, r"no advisory file"),
     ("{not json", InvalidInputError, r"not valid JSON"),
     ('{"results": [{"vulns": [{"id": "GHSA-1", "modified": "x"}]}]}', InvalidInputError,
      r"no OSV advisory for PyPI packages \(1 record")],
    ids=["missing", "bad-json", "ids-only"])
def test_bad_advisory_files(tmp_path: Path, content: str | None, error: type[Exception],
                            match: str) -> None:
    path = tmp_path / "osv.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(error, match=match):
        load_advisories(path)


def test_incomplete_cvss_vectors_are_refused() -> None:
    with pytest.raises(ValueError, match=r"incomplete CVSS v3 vector"):
        cvss3_base_score("CVSS:3.1/AV:N/AC:L")
