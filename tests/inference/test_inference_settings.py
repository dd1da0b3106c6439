"""Settings from CAT_WATCHER__* variables: defaults, parsing, and one-line errors naming the variable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from inference.cli import main as cli_main
from inference.settings import SettingsError, load_settings, unknown_variables


def test_defaults_are_memory_safe_and_match_the_contract(clean_env: Callable[..., None]) -> None:
    settings = load_settings()
    inference = settings.inference
    assert (inference.device, inference.gpu_memory_limit, inference.gpu_memory_limit_bytes) == ("auto", None, 0)
    assert (inference.arena_extend_strategy, inference.cudnn_conv_algo_search) == ("kSameAsRequested", "HEURISTIC")
    assert inference.detector_model_path == Path("/models/detector.onnx")
    assert inference.identifier_model_path is None
    assert inference.max_concurrent_runs == 1
    assert (settings.server.host, settings.server.port) == ("0.0.0.0", 8000)


def test_values_are_read_from_nested_variables(clean_env: Callable[..., None]) -> None:
    clean_env(
        INFERENCE__DEVICE="cuda",
        INFERENCE__GPU_MEMORY_LIMIT="2048",
        INFERENCE__ARENA_EXTEND_STRATEGY="kNextPowerOfTwo",
        INFERENCE__CUDNN_CONV_ALGO_SEARCH="EXHAUSTIVE",
        INFERENCE__INTRA_OP_THREADS="2",
        INFERENCE__CONFIDENCE_THRESHOLD="0.6",
        INFERENCE__IDENTIFIER_MODEL_PATH="/models/identifier.onnx",
        SERVER__PORT="9000",
        MQTT__HOST="mqtt.local",
        MQTT__PASSWORD="hunter2",
        FRIGATE__URL="http://frigate:5000",
    )
    settings = load_settings()
    assert settings.inference.device == "cuda"
    assert settings.inference.gpu_memory_limit_bytes == 2048 * 1024 * 1024
    assert settings.inference.arena_extend_strategy == "kNextPowerOfTwo"
    assert settings.inference.cudnn_conv_algo_search == "EXHAUSTIVE"
    assert settings.inference.intra_op_threads == 2
    assert settings.inference.confidence_threshold == 0.6
    assert settings.inference.identifier_model_path == Path("/models/identifier.onnx")
    assert settings.server.port == 9000
    assert settings.mqtt.password is not None and settings.mqtt.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())


def test_empty_variables_mean_unset(clean_env: Callable[..., None]) -> None:
    """The image sets IDENTIFIER_MODEL_PATH; a Deployment clears it with an empty value."""
    clean_env(INFERENCE__IDENTIFIER_MODEL_PATH="", INFERENCE__GPU_MEMORY_LIMIT="")
    assert (load_settings().inference.identifier_model_path, load_settings().inference.gpu_memory_limit) == (None, None)


@pytest.mark.parametrize("value", ["Tom, Kitty ,Felix", '["Tom", "Kitty", "Felix"]'])
def test_cat_names_accept_comma_and_json_lists(clean_env: Callable[..., None], value: str) -> None:
    clean_env(INFERENCE__CAT_NAMES=value)
    assert load_settings().inference.cat_names == ("Tom", "Kitty", "Felix")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("INFERENCE__DEVICE", "gpu", "CAT_WATCHER__INFERENCE__DEVICE: must be one of auto, cuda, cpu"),
        ("INFERENCE__GPU_MEMORY_LIMIT", "0", "CAT_WATCHER__INFERENCE__GPU_MEMORY_LIMIT: must be greater than 0"),
        ("INFERENCE__GPU_MEMORY_LIMIT", "2GB", "CAT_WATCHER__INFERENCE__GPU_MEMORY_LIMIT: must be a valid integer"),
        (
            "INFERENCE__ARENA_EXTEND_STRATEGY",
            "grow",
            "CAT_WATCHER__INFERENCE__ARENA_EXTEND_STRATEGY: must be one of kNextPowerOfTwo, kSameAsRequested",
        ),
        (
            "INFERENCE__CUDNN_CONV_ALGO_SEARCH",
            "FAST",
            "CAT_WATCHER__INFERENCE__CUDNN_CONV_ALGO_SEARCH: must be one of EXHAUSTIVE, HEURISTIC, DEFAULT",
        ),
        (
            "INFERENCE__CONFIDENCE_THRESHOLD",
            "1.5",
            "CAT_WATCHER__INFERENCE__CONFIDENCE_THRESHOLD: must be less than or equal to 1",
        ),
        (
            "INFERENCE__PRESENCE_THRESHOLD",
            "0.9",
            "CAT_WATCHER__INFERENCE__PRESENCE_THRESHOLD: must not exceed CAT_WATCHER__INFERENCE__CONFIDENCE_THRESHOLD",
        ),
        ("INFERENCE__MAX_CONCURRENT_RUNS", "0", "CAT_WATCHER__INFERENCE__MAX_CONCURRENT_RUNS: must be greater than 0"),
        ("INFERENCE__CAT_NAMES", '["Tom", ', "CAT_WATCHER__INFERENCE__CAT_NAMES: invalid JSON list"),
        ("INFERENCE__CAT_NAMES", "Tom,Tom", "CAT_WATCHER__INFERENCE__CAT_NAMES: cat names must be unique"),
        ("SERVER__PORT", "70000", "CAT_WATCHER__SERVER__PORT: must be less than or equal to 65535"),
        (
            "SERVER__MAX_PENDING_REQUESTS",
            "0",
            "CAT_WATCHER__SERVER__MAX_PENDING_REQUESTS: must be greater than or equal to 1",
        ),
        ("INFERENCE__DEVCE", "cpu", "CAT_WATCHER__INFERENCE__DEVCE: unknown variable"),
        ("LOG_LEVEL", "debug", "CAT_WATCHER__LOG_LEVEL: unknown variable"),
    ],
)
def test_bad_values_fail_with_one_line_naming_the_variable(
    clean_env: Callable[..., None], variable: str, value: str, message: str
) -> None:
    clean_env(**{variable: value})
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_errors_never_echo_secret_values(clean_env: Callable[..., None]) -> None:
    clean_env(
        MQTT__PASSWORD="hunter2", MQTT__PORT="not-a-port", FRIGATE__PASSWORD="s3cret", FRIGATE__PASSWORDD="typo-s3cret"
    )
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "CAT_WATCHER__FRIGATE__PASSWORDD: unknown variable" in str(raised.value)
    assert "hunter2" not in str(raised.value) and "s3cret" not in str(raised.value)


def test_unknown_variables_is_case_insensitive_and_ignores_other_prefixes() -> None:
    environ = {"cat_watcher__server__port": "1", "CAT_WATCHER__SERVER__PROT": "1", "CATWATCHER_X": "1", "PATH": "/bin"}
    assert unknown_variables(environ) == ["CAT_WATCHER__SERVER__PROT"]


def test_serve_exits_non_zero_with_the_message_on_bad_settings(
    clean_env: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env(INFERENCE__DEVICE="tpu")
    assert cli_main(["serve"]) == 2
    error_lines = capsys.readouterr().err.strip().splitlines()
    assert error_lines == ["catwatcher-inference: CAT_WATCHER__INFERENCE__DEVICE: must be one of auto, cuda, cpu"]
