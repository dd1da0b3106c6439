"""The service's side of the pod budget: arenas get the budget minus the overhead, and EAGER
module loading (which would blow the budget) is refused before anything starts."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from inference.cli import main as cli_main
from inference.engine import ARENA_SHARES_WITH_IDENTIFIER
from inference.runtime import CUDA_PROVIDER, ModelRuntime, cuda_provider_options
from inference.settings import InferenceSettings, SettingsError, load_settings

MIB = 1024 * 1024


def test_the_arenas_get_the_budget_minus_the_overhead(
    clean_env: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUDA_MODULE_LOADING", raising=False)
    clean_env(INFERENCE__GPU_MEMORY_LIMIT="2724", INFERENCE__GPU_MEMORY_OVERHEAD="420")
    inference = load_settings().inference
    assert (inference.gpu_memory_limit, inference.arena_limit_mb) == (2724, 2304)
    shares = [cuda_provider_options(inference, share) for share in ARENA_SHARES_WITH_IDENTIFIER.values()]
    assert sum(int(options["gpu_mem_limit"]) for options in shares) == pytest.approx(2304 * MIB, abs=2)
    assert cuda_provider_options(inference)["gpu_mem_limit"] == str(2304 * MIB)


def test_without_an_overhead_the_arena_is_the_whole_limit_as_before() -> None:
    settings = InferenceSettings(gpu_memory_limit=2048)
    assert settings.arena_limit_mb == 2048 and settings.gpu_memory_overhead == 0
    assert InferenceSettings().arena_limit_mb is None
    assert "gpu_mem_limit" not in cuda_provider_options(InferenceSettings())


def test_the_runtime_splits_the_arena_not_the_budget_between_sessions() -> None:
    seen: dict[bytes, int] = {}

    class CudaSession:
        def get_providers(self) -> list[str]:
            return [CUDA_PROVIDER]

    def factory(model, providers, options):
        seen[model] = int(providers[0][1]["gpu_mem_limit"])
        return CudaSession()

    settings = InferenceSettings(gpu_memory_limit=3492, gpu_memory_overhead=420)
    runtime = ModelRuntime(settings, factory, [CUDA_PROVIDER], arena_shares=ARENA_SHARES_WITH_IDENTIFIER)
    runtime.load("detector", b"d")
    runtime.load("identifier", b"i")
    assert seen == {b"d": int(3072 * MIB * 0.75), b"i": int(3072 * MIB * 0.25)}


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"INFERENCE__GPU_MEMORY_LIMIT": "400", "INFERENCE__GPU_MEMORY_OVERHEAD": "420"},
            "CAT_WATCHER__INFERENCE__GPU_MEMORY_OVERHEAD: 420 MiB leaves "
            "no arena within CAT_WATCHER__INFERENCE__GPU_MEMORY_LIMIT=400",
        ),
        (
            {"INFERENCE__GPU_MEMORY_OVERHEAD": "420"},
            "CAT_WATCHER__INFERENCE__GPU_MEMORY_OVERHEAD: only counts with CAT_WATCHER__INFERENCE__GPU_MEMORY_LIMIT",
        ),
        (
            {"INFERENCE__GPU_MEMORY_LIMIT": "2048", "INFERENCE__GPU_MEMORY_OVERHEAD": "-1"},
            "CAT_WATCHER__INFERENCE__GPU_MEMORY_OVERHEAD: must be greater than or equal to 0",
        ),
    ],
)
def test_an_overhead_that_leaves_no_arena_is_refused_naming_the_variable(
    clean_env: Callable[..., None], variables: dict[str, str], message: str
) -> None:
    clean_env(**variables)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("value", ["EAGER", "eager", " EAGER "])
def test_eager_module_loading_is_refused_in_one_line(
    clean_env: Callable[..., None], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    clean_env(INFERENCE__GPU_MEMORY_LIMIT="2724", INFERENCE__GPU_MEMORY_OVERHEAD="420")
    monkeypatch.setenv("CUDA_MODULE_LOADING", value)
    assert cli_main(["serve"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("catwatcher-inference: CUDA_MODULE_LOADING: EAGER makes each process hold")
    assert "set LAZY" in lines[0]


@pytest.mark.parametrize(("value", "device"), [("LAZY", "auto"), ("", "cuda"), ("EAGER", "cpu")])
def test_lazy_loading_and_cpu_only_serving_start(
    clean_env: Callable[..., None], monkeypatch: pytest.MonkeyPatch, value: str, device: str
) -> None:
    clean_env(INFERENCE__DEVICE=device)
    monkeypatch.setenv("CUDA_MODULE_LOADING", value)
    assert load_settings().inference.device == device
