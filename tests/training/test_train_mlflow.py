"""MLflow round trip: a trained policy logged as pyfunc, registered as nba@challenger,
loads back (pyfunc and training.registry) with the same probabilities; the CLI
drives the whole path. Each test uses its own SQLite store in a tmp dir."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from nba.context import DecisionContext
from nba.domain import Action
from nba.policies.base import PolicyError
from nba.reward import RewardDefinition
from nba_cli.main import main as nba_main
from training.synthetic import write_synthetic_logs
from training.train import train


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("logs")
    write_synthetic_logs(root, n_decisions=800, n_hcps=100, days=6, seed=6)
    return root


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="module")
def store(store_dir: Path, empty_mlflow_store: Path) -> Iterator[str]:
    """One SQLite store for the module, a copy of the session's empty store
    (creating one costs seconds)."""
    shutil.copy(empty_mlflow_store, store_dir / "mlflow.db")
    uri = f"sqlite:///{store_dir / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("NBA_DATA_DIR", str(store_dir / "data"))
        yield uri


def _rows(logs: Path, n: int) -> pd.DataFrame:
    from nba.logs import io

    t = io.read(logs, "decisions").slice(0, n)
    return pd.DataFrame(
        {"context": t["context"].to_pylist(), "action_ids": t["action_ids"].to_pylist()}
    )


def test_registered_model_loads_and_predicts_like_the_in_memory_policy(
    logs: Path, store: str, store_dir: Path
) -> None:
    import mlflow
    from mlflow import MlflowClient

    from training.mlflow_utils import log_training_run
    from training.registry import load_policy, model_version

    result = train(logs, RewardDefinition.default(), holdout_days=2, seed=3)
    logged = log_training_run(result, tracking_uri=store)
    assert logged.version == "1"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    assert str(client.get_model_version_by_alias("nba", "challenger").version) == "1"
    run = client.get_run(logged.run_id)
    assert run.data.params["featurizer_hash"] == result.policy.featurizer_config.content_hash
    assert run.data.params["reward_definition"] == result.reward_definition
    assert "holdout_snips" in run.data.metrics
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.name == "train"
    assert exp.artifact_location.startswith((store_dir / "mlartifacts").as_uri())

    rows = _rows(logs, 25)
    pyfunc = mlflow.pyfunc.load_model("models:/nba@challenger")
    out = pyfunc.predict(rows)
    loaded = load_policy("models:/nba@challenger")
    assert loaded.model_version == "nba/1" == model_version("models:/nba/1")
    for i, (ctx_json, aids) in enumerate(zip(rows["context"], rows["action_ids"], strict=True)):
        ctx = DecisionContext.from_json(ctx_json)
        acts = [Action.parse(a) for a in aids]
        expected = result.policy.probabilities(ctx, acts)
        np.testing.assert_array_equal(np.asarray(out["probabilities"][i]), expected)
        np.testing.assert_array_equal(loaded.probabilities(ctx, acts), expected)

    # a second registration moves the alias; the fixed version still loads
    logged2 = log_training_run(result, tracking_uri=store)
    assert logged2.version == "2"
    assert load_policy("models:/nba@challenger").model_version == "nba/2"
    assert load_policy("models:/nba/1").model_version == "nba/1"


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("models:/nba@nobody", "no such registered model version"),
        ("models:/nba/99", "no such registered model version"),
        ("models:/", "is not 'models:/<name>@<alias>'"),
        ("/does/not/exist", "no such model path"),
    ],
)
def test_bad_model_references_fail_clearly(store: str, uri: str, match: str) -> None:
    from training.registry import load_policy

    with pytest.raises(PolicyError, match=match):
        load_policy(uri)


def test_local_directory_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    from training.registry import load_policy

    with pytest.raises(PolicyError, match="neither a saved VW policy nor an nba MLflow model"):
        load_policy(tmp_path)


def test_cli_train_registers_and_saves(logs: Path, store: str, tmp_path: Path) -> None:
    from training.registry import load_policy

    out = tmp_path / "policy"
    res = CliRunner().invoke(
        nba_main,
        [
            "train",
            "--logs",
            str(logs),
            "--vw-args",
            "--squarecb --gamma_scale 20",
            "--holdout-days",
            "2",
            "--seed",
            "5",
            "--model-out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "SNIPS" in res.output and "registered nba version" in res.output
    local = load_policy(out)
    assert local.config.exploration == "squarecb"
    reg = load_policy("models:/nba@challenger")
    rows = _rows(logs, 5)
    for ctx_json, aids in zip(rows["context"], rows["action_ids"], strict=True):
        np.testing.assert_array_equal(
            local.probabilities_json(ctx_json, aids), reg.probabilities_json(ctx_json, aids)
        )


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--vw-args", "--data x"], "option '--data' is not allowed"),
        (["--vw-args", "--epsilon 0.1", "--config", "__cfg__"], "either --vw-args or --config"),
        (["--holdout-days", "99"], "leaves no training data"),
        (["--passes", "0"], "0 is not in the range x>=1"),
    ],
)
def test_cli_train_refuses_bad_options(
    logs: Path, store: str, tmp_path: Path, args: list[str], match: str
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[vw]\n")
    args = [str(cfg) if a == "__cfg__" else a for a in args]
    res = CliRunner().invoke(nba_main, ["train", "--logs", str(logs), "--no-mlflow", *args])
    assert res.exit_code != 0
    assert match in res.output
