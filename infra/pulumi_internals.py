"""Every use of the Pulumi SDK beyond its documented program API, in one place.

Render, diff, the tests and the PR preview run the program under Pulumi's mock engine and read
the engine's raw config; both rest on SDK internals that any release may change. The SDK
version they were checked with is pinned in constraints.txt; tests/test_pulumi_internals.py
names the internal that changed when a new SDK drops or reshapes one. Nothing else in the
project imports `pulumi.runtime`.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from google.protobuf import json_format

# (module, attribute, what we use it for): checked by tests/test_pulumi_internals.py.
INTERNALS: tuple[tuple[str, str, str], ...] = (
    ("pulumi.runtime.sync_await", "_sync_await", "drive the program's coroutine to completion offline"),
    ("pulumi.runtime.stack", "run_pulumi_func", "run the program the way the language host does"),
    ("pulumi.runtime.mocks", "MockMonitor", "the mock resource monitor we subclass to record registrations"),
    ("pulumi.runtime.config", "CONFIG", "the config the engine (or set_all_config) handed the program"),
    ("pulumi.runtime.config", "get_config_env", "config passed through PULUMI_CONFIG"),
    ("pulumi.runtime.config", "get_config_secret_keys_env", "secret keys passed through PULUMI_CONFIG_SECRET_KEYS"),
    ("pulumi.runtime.config", "is_config_secret", "whether the engine marked a key secret"),
    ("pulumi.runtime.config", "set_all_config", "hand the program a stack's config offline"),
    ("pulumi.runtime.mocks", "set_mocks", "install the mock engine"),
    ("pulumi.runtime.mocks", "Mocks", "base class of our resource mocks"),
    (
        "pulumi.runtime.settings",
        "get_root_resource",
        "read the stack's exports, which the mock root stack never registers",
    ),
)


class PulumiInternalChangedError(ImportError):
    """The installed Pulumi SDK lacks an internal this project relies on."""


def _internal(module: str, attribute: str) -> Any:
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        raise PulumiInternalChangedError(
            f"pulumi {metadata.version('pulumi')} has no {module}.{attribute} "
            f"({error}); install the versions in constraints.txt or port infra/pulumi_internals.py"
        ) from error


_sync_await: Callable[[Any], Any] = _internal("pulumi.runtime.sync_await", "_sync_await")
_run_pulumi_func: Callable[[Callable[[], Any]], Any] = _internal("pulumi.runtime.stack", "run_pulumi_func")
MockMonitor: type = _internal("pulumi.runtime.mocks", "MockMonitor")
Mocks: type = _internal("pulumi.runtime.mocks", "Mocks")
_config = importlib.import_module("pulumi.runtime.config")
for _module, _attribute, _ in INTERNALS:
    _internal(_module, _attribute)


# --- the engine's config ------------------------------------------------------------------


def engine_config() -> dict[str, Any]:
    """Every config value the engine passed (`project:key` -> value), set in either way."""
    return {**_config.get_config_env(), **_config.CONFIG.get()}


def engine_secret_keys() -> set[str]:
    """Keys the engine marks secret (listed in the environment, or flagged on set)."""
    listed = set(_config.get_config_secret_keys_env())
    return {key for key in engine_config() if key in listed or _config.is_config_secret(key)}


# --- the mock engine ----------------------------------------------------------------------


@dataclass(frozen=True)
class RegisteredResource:
    """One RegisterResource request as the mock monitor saw it (inputs as sent, secrets wrapped)."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    provider: str
    dependencies: tuple[str, ...]
    inputs: dict[str, Any]


class ObservingMockMonitor(MockMonitor):
    """A mock monitor that hands each registration to `observe` as plain data, and closes the
    event loops it gives the SDK's executor threads (`close_thread_loops`, after the run)."""

    def __init__(self, mocks: Any) -> None:
        super().__init__(mocks)
        self._thread = threading.local()
        self._thread_loops: list[asyncio.AbstractEventLoop] = []

    def _on_thread_loop(self, call: Callable[[Any], Any], request: Any) -> Any:
        """Run a monitor call on this thread's event loop, one we close when the run ends.

        The SDK calls the monitor from executor threads, and MockMonitor gives each such thread
        an event loop that nothing ever closes: at interpreter exit their `__del__` prints
        "Exception ignored in BaseEventLoop.__del__". A loop set here is the one it finds.
        """
        if threading.current_thread() is not threading.main_thread() and getattr(self._thread, "loop", None) is None:
            self._thread.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._thread.loop)
            self._thread_loops.append(self._thread.loop)
        return call(request)

    def close_thread_loops(self) -> None:
        """After the run: the executor threads are idle and go with the run's own loop."""
        for loop in self._thread_loops:
            loop.close()
        self._thread_loops.clear()

    def Invoke(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        return self._on_thread_loop(super().Invoke, request)

    def ReadResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        return self._on_thread_loop(super().ReadResource, request)

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        response = self._on_thread_loop(super().RegisterResource, request)
        self.observe(
            RegisteredResource(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent=request.parent,
                custom=bool(request.custom),
                provider=request.provider,
                dependencies=tuple(sorted(set(request.dependencies))),
                inputs=json_format.MessageToDict(request.object, preserving_proto_field_name=True),
            )
        )
        return response

    def observe(self, resource: RegisteredResource) -> None:
        """Called once per registration, the stack's included."""


def run_under_mocks(
    monitor: ObservingMockMonitor,
    *,
    project: str,
    stack: str,
    config: Mapping[str, str],
    secret_keys: list[str],
    program: Callable[[], Any],
) -> None:
    """Run `program` as the language host would, against `monitor`, with `config`."""
    _internal("pulumi.runtime.mocks", "set_mocks")(
        monitor.mocks, project=project, stack=stack, preview=False, monitor=monitor
    )
    _config.set_all_config(dict(config), secret_keys)
    _sync_await(_run_pulumi_func(program))


def stack_exports() -> dict[str, tuple[Any, bool]]:
    """The running stack's exports, resolved: name -> (value, secret). Under mocks the engine
    never receives them (the mock root stack registers its outputs before the program runs),
    so read them off the root resource once the program is done."""
    import pulumi

    root = _internal("pulumi.runtime.settings", "get_root_resource")()

    async def resolve() -> dict[str, tuple[Any, bool]]:
        exports = {}
        for name, value in sorted((getattr(root, "outputs", None) or {}).items()):
            output = pulumi.Output.from_input(value)
            exports[name] = (await output.future(), bool(await output.is_secret()))
        return exports

    return _sync_await(resolve())
