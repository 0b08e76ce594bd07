"""TorchRuntime: TorchScript, exported programs and plain modules round-trip through save/load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from modelyard.errors import DependencyMissingError, InvalidInputError, UnsupportedModelError
from modelyard.runtimes.base import LoadOptions, SaveOptions
from modelyard.runtimes.torch import TorchRuntime
from modelyard.testing.conformance import check_runtime


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X[:, :8].astype(np.float32), y


def _train(module: torch.nn.Module, X: np.ndarray, y: np.ndarray, loss: str) -> torch.nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    x, t = torch.from_numpy(X), torch.from_numpy(y)
    for _ in range(20):
        opt.zero_grad()
        out = module(x)
        if loss == "nll":
            value = torch.nn.functional.nll_loss(torch.log(out + 1e-7), t.long())
        else:
            value = torch.nn.functional.mse_loss(out[:, 0], t.float())
        torch.autograd.backward(value)
        opt.step()
    return module.eval()


def _mlp(outputs: int, *head: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2),
        torch.nn.Linear(16, outputs), *head,
    )


def _forward(module: torch.nn.Module, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.asarray(module(torch.from_numpy(X)).numpy())


@pytest.fixture(scope="module")
def regressor(data: tuple[np.ndarray, np.ndarray]) -> torch.nn.Module:
    return _train(_mlp(1), *data, loss="mse")


@pytest.fixture(scope="module")
def classifier(data: tuple[np.ndarray, np.ndarray]) -> torch.nn.Module:
    return _train(_mlp(2, torch.nn.Softmax(dim=1)), *data, loss="nll")


def test_plain_module_is_exported_with_free_batch(
    regressor: torch.nn.Module, data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, _ = data
    expected = _forward(regressor, X)[:, 0]
    runtime = TorchRuntime()
    predictor = check_runtime(runtime, regressor, X, expected=expected, atol=1e-5)
    assert not hasattr(predictor, "predict_proba")
    saved = runtime.save(regressor, tmp_path, SaveOptions(sample_input=X))
    assert saved.meta["kind"] == "exported"
    assert saved.meta["batch_size"] is None
    assert (tmp_path / "model.pt2").is_file()
    assert regressor.training is False  # left as we found it
    loaded = runtime.load(tmp_path, saved.meta, LoadOptions())
    assert loaded.predict(X[:1]).shape == (1,)


def test_torchscript(regressor: torch.nn.Module, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = data
    scripted = torch.jit.script(regressor)
    expected = _forward(regressor, X)[:, 0]
    check_runtime(TorchRuntime(), scripted, X, expected=expected, atol=1e-5)


def test_softmax_output_gives_predict_proba(
    classifier: torch.nn.Module, data: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = data
    proba = _forward(classifier, X)
    predictor = check_runtime(
        TorchRuntime(), classifier, X,
        expected=proba.argmax(axis=1), expected_proba=proba, atol=1e-5,
    )
    assert (predictor.predict(X) == y).mean() > 0.8


def test_exported_program_with_fixed_batch_serves_any_size(
    regressor: torch.nn.Module, data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, _ = data
    program = torch.export.export(regressor, (torch.from_numpy(X[:4]),))
    runtime = TorchRuntime()
    saved = runtime.save(program, tmp_path, SaveOptions(sample_input=X))
    assert saved.meta["batch_size"] == 4
    predictor = runtime.load(tmp_path, saved.meta, LoadOptions())
    np.testing.assert_allclose(predictor.predict(X[:11]), _forward(regressor, X[:11])[:, 0],
                               atol=1e-5)


@pytest.mark.parametrize("kind", ["torchscript", "exported"])
def test_save_path(
    kind: str, classifier: torch.nn.Module, data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, _ = data
    if kind == "torchscript":
        source = tmp_path / "clf.pt"
        torch.jit.save(torch.jit.script(classifier), str(source))
    else:
        source = tmp_path / "clf.pt2"
        torch.export.save(torch.export.export(classifier, (torch.from_numpy(X[:5]),)), source)
    runtime = TorchRuntime()
    assert runtime.can_save_path(source)
    target = tmp_path / "stored"
    target.mkdir()
    saved = runtime.save_path(source, target, SaveOptions(sample_input=X))
    assert saved.meta["kind"] == kind
    assert saved.meta["proba"] is True
    predictor = runtime.load(target, saved.meta, LoadOptions())
    np.testing.assert_allclose(predictor.predict_proba(X), _forward(classifier, X), atol=1e-5)


def test_float64_module_with_a_table_sample(data: tuple[np.ndarray, np.ndarray]) -> None:
    X = data[0].astype(np.float64)
    module = _mlp(1).double().eval()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    with torch.no_grad():
        expected = module(torch.from_numpy(X)).numpy()[:, 0]
    check_runtime(TorchRuntime(), module, frame, expected=expected, atol=1e-12)


def test_save_path_refuses_pickled_checkpoint(
    regressor: torch.nn.Module, tmp_path: Path
) -> None:
    source = tmp_path / "weights.pt"
    torch.save(regressor.state_dict(), source)
    with pytest.raises(UnsupportedModelError, match=r"torch\.save checkpoint.*pickle"):
        TorchRuntime().save_path(source, tmp_path, SaveOptions())


def test_plain_module_without_sample_is_refused(
    regressor: torch.nn.Module, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError, match=r"only be registered with sample input.*data="):
        TorchRuntime().save(regressor, tmp_path, SaveOptions())


def test_can_save_recognises_torch_types_only(regressor: torch.nn.Module) -> None:
    runtime = TorchRuntime()
    assert runtime.can_save(regressor)
    assert not runtime.can_save(np.zeros(3))
    assert not runtime.can_save(torch.zeros(3))


def test_torch_is_imported_only_when_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code = "import sys, modelyard, modelyard.runtimes.torch; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
    monkeypatch.setitem(sys.modules, "torch", None)  # as if it were not installed
    with pytest.raises(DependencyMissingError, match=r"pip install 'modelyard\[torch\]'"):
        TorchRuntime().load(tmp_path, {"kind": "exported"}, LoadOptions())


def test_exported_programs_load_from_several_threads_at_once(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from modelyard.runtimes.torch import _load_exported

    program = torch.export.export(torch.nn.Linear(3, 1).eval(), (torch.zeros(2, 3),))
    path = tmp_path / "m.pt2"
    torch.export.save(program, str(path))
    with ThreadPoolExecutor(4) as pool:
        modules = list(pool.map(lambda _: _load_exported(torch, str(path)), range(8)))
    assert len(modules) == 8
