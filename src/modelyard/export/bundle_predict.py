"""Predict with a modelyard edge bundle, offline. Needs only numpy and onnxruntime.

This file is ``predict.py`` inside a bundle written by ``modelyard export bundle``, next to
``model.onnx``, ``signature.json``, ``model.json`` and ``checksums.sha256``. Every listed file
is checked against its SHA-256 before the model loads; a changed byte stops everything.

As a command (CSV or JSON lines in, JSON lines out; columns the model does not take, such as
an id, are passed through)::

    python predict.py input.csv -o predictions.jsonl
    python predict.py input.jsonl            # to standard output

As a module::

    import predict
    model = predict.Model("path/to/bundle")          # default: the folder of predict.py
    model.predict({"age": [31, 40], "income": [52000.0, 61000.0]})
    model.predict({"age": 31, "income": 52000.0})    # one row
    model.predict_proba([{"age": 31, "income": 52000.0}])

Inputs are checked against the model's signature and fed to onnxruntime exactly as
``modelyard serve`` feeds them, so predictions equal the server's.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np

__all__ = ["ChecksumError", "Model", "main", "verify"]

CHECKSUMS = "checksums.sha256"
_REQUIRED = ("model.onnx", "signature.json")
_CHUNK_ROWS = 10_000
_ORT_DTYPES = {"float": "float32", "double": "float64", "float16": "float16", "string": "object"}


class ChecksumError(RuntimeError):
    """A bundle file is missing or does not match the checksum recorded when it was made."""


def verify(folder: str | Path) -> dict[str, str]:
    """Check every file listed in ``checksums.sha256``; return ``{file: sha256}``."""
    root = Path(folder)
    listing = root / CHECKSUMS
    if not listing.is_file():
        raise ChecksumError(f"{listing} is missing, so the bundle cannot be verified. "
                            "Unpack the complete bundle again.")
    digests: dict[str, str] = {}
    for number, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        rel = PurePosixPath(name.strip())
        if not sep or len(digest) != 64 or rel.is_absolute() or ".." in rel.parts:
            raise ChecksumError(f"Line {number} of {listing} is not '<sha256>  <file>'.")
        path = root.joinpath(*rel.parts)
        if not path.is_file():
            raise ChecksumError(f"{rel} is listed in {CHECKSUMS} but missing from {root}.")
        actual = _sha256(path)
        if actual != digest.lower():
            raise ChecksumError(
                f"{rel} does not match its checksum (expected {digest[:12]}..., got "
                f"{actual[:12]}...): the bundle was changed or damaged. Use an intact copy.")
        digests[str(rel)] = actual
    missing = [name for name in _REQUIRED if name not in digests]
    if missing:
        raise ChecksumError(f"{CHECKSUMS} does not cover {missing}; the bundle is incomplete.")
    return digests


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Model:
    """The bundled model, verified and loaded into an onnxruntime session."""

    def __init__(self, folder: str | Path | None = None, *, threads: int = 1) -> None:
        import onnxruntime as ort

        self.folder = Path(folder) if folder is not None else Path(__file__).resolve().parent
        verify(self.folder)
        self.signature: dict[str, Any] = json.loads(
            (self.folder / "signature.json").read_text(encoding="utf-8"))
        info = self.folder / "model.json"
        self.info: dict[str, Any] = (json.loads(info.read_text(encoding="utf-8"))
                                     if info.is_file() else {})
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session: Any = ort.InferenceSession(str(self.folder / "model.onnx"),
                                                 sess_options=options,
                                                 providers=["CPUExecutionProvider"])
        self.inputs = [(i.name, _ort_dtype(i.type), len(i.shape))
                       for i in self.session.get_inputs()]
        outputs = self.session.get_outputs()
        self.outputs = [o.name for o in outputs]
        self.is_classifier = _is_classifier([o.type for o in outputs])
        schema = self.signature["inputs"]
        self.kind: str = schema["kind"]
        self.columns: list[dict[str, Any]] = list(schema.get("columns") or [])
        self.tensors: list[dict[str, Any]] = list(schema.get("tensors") or [])

    @property
    def input_names(self) -> list[str]:
        """The columns (or tensor) the model takes, in order."""
        specs = self.columns if self.kind == "columns" else self.tensors
        return [str(s["name"]) for s in specs]

    def predict(self, data: Any) -> np.ndarray:
        """Predictions for ``data``: a dict of columns, one row as a dict, a list of row
        dicts, or a 2-D array with the columns in signature order."""
        (labels,) = self.session.run(self.outputs[:1], self._feeds(self._prepare(data)))
        return np.asarray(labels)

    def predict_proba(self, data: Any) -> np.ndarray:
        """Class probabilities (classifiers only), one column per class in label order."""
        if not self.is_classifier:
            raise ValueError("This model is not a classifier: it has no probabilities.")
        (proba,) = self.session.run(self.outputs[1:2], self._feeds(self._prepare(data)))
        if isinstance(proba, list):  # ZipMap: one {label: probability} dict per row
            labels = sorted(proba[0]) if proba else []
            return np.array([[row[k] for k in labels] for row in proba], dtype=np.float32)
        return np.asarray(proba)

    # -- input ----------------------------------------------------------------------------
    def _prepare(self, data: Any) -> dict[str, np.ndarray] | np.ndarray:
        if self.kind == "tensors":
            return self._prepare_tensor(data)
        columns = _as_columns(data, self.input_names)
        missing = [name for name in self.input_names if name not in columns]
        if missing:
            raise ValueError(f"Missing input column(s) {missing}; the model takes "
                             f"{self.input_names}.")
        return {spec["name"]: _conform(columns[spec["name"]], spec)
                for spec in self.columns}

    def _prepare_tensor(self, data: Any) -> np.ndarray:
        spec = self.tensors[0]
        if isinstance(data, Mapping):
            data = data.get(spec["name"], list(data.values()))
        dtype = np.dtype(str(spec["dtype"]).replace("string", "object"))
        array = np.asarray(data, dtype=dtype)
        shape = list(spec["shape"])
        if array.ndim == len(shape) - 1:
            array = array.reshape(1, *array.shape)
        if array.ndim != len(shape) or any(w not in (-1, g) for w, g in zip(shape, array.shape,
                                                                            strict=True)):
            raise ValueError(f"The input tensor must have shape {shape} (-1: any). Got "
                             f"{list(array.shape)}.")
        return array

    def _feeds(self, data: dict[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        if len(self.inputs) == 1:
            name, dtype, _ = self.inputs[0]
            if isinstance(data, np.ndarray):
                return {name: data.astype(dtype, copy=False)}
            matrix = np.column_stack(list(data.values())) if data else np.empty((0, 0))
            return {name: matrix.astype(dtype, copy=False)}
        if isinstance(data, np.ndarray):
            columns = [data[:, i] for i in range(data.shape[1])]
        elif all(name in data for name, _, _ in self.inputs):
            columns = [data[name] for name, _, _ in self.inputs]
        else:  # converters may rename columns ("mean radius" -> "mean_radius") in order
            columns = list(data.values())
        feeds = {}
        for (name, dtype, rank), column in zip(self.inputs, columns, strict=True):
            array = np.asarray(column)
            if array.ndim == 1 and rank == 2:
                array = array.reshape(-1, 1)
            feeds[name] = array.astype(dtype, copy=False)
        return feeds


def _as_columns(data: Any, names: Sequence[str]) -> dict[str, Any]:
    if isinstance(data, np.ndarray):
        array = data.reshape(1, -1) if data.ndim == 1 else data
        if array.ndim != 2 or array.shape[1] != len(names):
            raise ValueError(f"An array input must have {len(names)} columns ({list(names)}). "
                             f"Got shape {list(data.shape)}.")
        return {name: array[:, i] for i, name in enumerate(names)}
    if isinstance(data, Mapping):
        values = list(data.values())
        if values and all(np.ndim(v) == 0 for v in values):  # one row
            return {str(k): [v] for k, v in data.items()}
        return {str(k): v for k, v in data.items()}
    rows = list(data)
    if rows and all(isinstance(r, Mapping) for r in rows):
        return {name: [r.get(name) for r in rows] for name in names if
                any(name in r for r in rows)}
    raise ValueError("Pass a dict of columns, one row as a dict, a list of row dicts or a "
                     f"2-D array. Got {type(data).__name__}.")


def _conform(values: Any, spec: Mapping[str, Any]) -> np.ndarray:
    name, dtype = spec["name"], str(spec["dtype"])
    if dtype == "string":
        return np.asarray(["" if v is None else str(v) for v in np.asarray(values, dtype=object)
                           .ravel()], dtype=object)
    raw = np.asarray(values, dtype=object).ravel()
    if dtype == "bool":
        raw = np.array([_boolean(v) for v in raw], dtype=object)
    try:
        numbers = np.array([math.nan if _missing(v) else float(v) for v in raw],
                           dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"The column {name!r} must hold {dtype} numbers.") from None
    if np.isnan(numbers).any():
        if not spec.get("nullable", False):
            raise ValueError(f"The column {name!r} holds missing values, which the model's "
                             "signature does not allow.")
        if np.dtype(dtype).kind != "f":
            raise ValueError(f"The integer column {name!r} cannot hold missing values.")
    target = np.dtype(dtype)
    if target.kind in "iub" and not np.array_equal(numbers, np.round(numbers)):
        raise ValueError(f"The column {name!r} must hold whole numbers ({dtype}).")
    return numbers.astype(target)


def _boolean(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def _missing(value: Any) -> bool:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return True
    return isinstance(value, float) and math.isnan(value)


def _ort_dtype(ort_type: str) -> np.dtype[Any]:
    name = ort_type.removeprefix("tensor(").removesuffix(")")
    return np.dtype(_ORT_DTYPES.get(name, name))


def _is_classifier(output_types: list[str]) -> bool:
    if len(output_types) < 2:
        return False
    labels, scores = output_types[:2]
    return labels.startswith(("tensor(int", "tensor(string")) and (
        scores.startswith("seq(map(") or scores in ("tensor(float)", "tensor(double)"))


# -- the command -----------------------------------------------------------------------------
def _read_rows(stream: IO[str], fmt: str) -> Iterator[dict[str, Any]]:
    if fmt == "csv":
        yield from csv.DictReader(stream)
        return
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"Line {number} is not valid JSON: {exc}.") from None
        if not isinstance(row, dict):
            row = {"input": row}
        yield row


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _score(model: Model, chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = set(model.input_names)
    if model.kind == "tensors":
        key = model.input_names[0]
        data: Any = [_tensor_row(row, key) for row in chunk]
        passthrough: list[dict[str, Any]] = [{} for _ in chunk]
    else:
        data = chunk
        passthrough = [{k: v for k, v in row.items() if k not in names} for row in chunk]
    labels = model.predict(data).tolist()
    probabilities = model.predict_proba(data).tolist() if model.is_classifier else None
    out = []
    for i, extra in enumerate(passthrough):
        record = dict(extra)
        record["prediction"] = labels[i]
        if probabilities is not None:
            record["probabilities"] = probabilities[i]
        out.append(record)
    return out


def _tensor_row(row: dict[str, Any], key: str) -> Any:
    """One example of a tensor model: ``{"input": [...]}``, or every field in order (CSV)."""
    value = row.get(key, row.get("input"))
    return list(row.values()) if value is None else value


def main(argv: Sequence[str] | None = None) -> int:
    """``python predict.py INPUT [-o OUTPUT]``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="predict.py", description="Predict with a modelyard edge bundle (offline).")
    parser.add_argument("input", help="CSV or JSON lines file of inputs ('-': standard input).")
    parser.add_argument("-o", "--output", default="-",
                        help="JSON lines file to write (default: standard output).")
    parser.add_argument("--format", choices=["csv", "jsonl"],
                        help="Input format (default: from the file suffix).")
    parser.add_argument("--model", default=None,
                        help="Bundle folder (default: the folder of predict.py).")
    args = parser.parse_args(argv)
    fmt = args.format or ("csv" if str(args.input).lower().endswith(".csv") else "jsonl")
    try:
        model = Model(args.model)
        source = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8",  # noqa: SIM115
                                                           newline="")
        target = sys.stdout if args.output == "-" else open(args.output, "w",  # noqa: SIM115
                                                             encoding="utf-8")
        try:
            for chunk in _chunks(_read_rows(source, fmt), _CHUNK_ROWS):
                for record in _score(model, chunk):
                    target.write(json.dumps(record) + "\n")
        finally:
            if source is not sys.stdin:
                source.close()
            if target is not sys.stdout:
                target.close()
    except (ChecksumError, ValueError, OSError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
