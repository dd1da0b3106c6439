"""Run the Pulumi program under Pulumi's own mock engine and record what it declares.

This is how `catwatcher-infra render` and the tests run the program without the Pulumi CLI, a
cluster or Helm: the same `infra/__main__.py` that `pulumi up` runs, with the stack's config
loaded from stacks/Pulumi.<stack>.yaml as `pulumi up -s <stack>` would load it.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import hashlib
import json
import runpy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from infra import engine_config
from infra.config_rules import clear_text_secrets, stack_file_problems
from infra.errors import ConfigError
from infra.pulumi_internals import Mocks, ObservingMockMonitor, RegisteredResource, run_under_mocks, stack_exports

SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG_VALUE = "1b47061264138c4ac30d75fd1eb44270"
MASK = "[secret]"
PROGRAM = Path(__file__).with_name("__main__.py")


class RenderError(Exception):
    """The program refused the stack (bad config) or the stack does not exist."""


# A registration as recorded: the monitor's own record, inputs named and secrets masked.
Registration = RegisteredResource


@dataclass
class Recording:
    stack: str
    resources: list[Registration] = field(default_factory=list)
    # The stack's exports (`pulumi stack output`), secrets masked.
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]

    def by_urn(self) -> dict[str, Registration]:
        return {r.urn: r for r in self.resources}


def mask_secrets(value: Any) -> Any:
    """Replace Pulumi secret envelopes in serialized inputs with a fixed mask."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG_VALUE:
            secret = value.get("value")
            # Keep a secret map's keys (a Secret's stringData stays a valid object).
            return {key: MASK for key in secret} if isinstance(secret, dict) else MASK
        return {key: mask_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_secrets(item) for item in value]
    return value


def _integral(value: Any) -> Any:
    """protobuf Struct carries every number as a double; give whole numbers back as int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral(item) for item in value]
    return value


def placeholder_auto_name(logical_name: str) -> str:
    """Stands in for the provider's `<name>-<random suffix>`; the same on every render."""
    return f"{logical_name}-{hashlib.sha256(logical_name.encode()).hexdigest()[:8]}"


def with_auto_name(type_: str, logical_name: str, properties: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes object without `metadata.name` gets the name the provider would give it."""
    metadata = properties.get("metadata")
    if type_.startswith("kubernetes:") and isinstance(metadata, dict) and not metadata.get("name"):
        return {**properties, "metadata": {**metadata, "name": placeholder_auto_name(logical_name)}}
    return properties


class _EchoMocks(Mocks):
    """Every resource's state is its inputs, plus the auto-name the provider would assign."""

    def new_resource(self, args: Any) -> tuple[str, dict]:
        return f"{args.name}-id", with_auto_name(args.typ, args.name, dict(args.inputs))

    def call(self, args: Any) -> dict:
        return {}


class RecordingMonitor(ObservingMockMonitor):
    """A mock monitor that also keeps each registration's parent and dependencies."""

    def __init__(self, stack: str):
        super().__init__(_EchoMocks())
        self.recording = Recording(stack=stack)

    def observe(self, resource: RegisteredResource) -> None:
        if resource.type != "pulumi:pulumi:Stack":
            # The inputs as sent (secrets still wrapped, so they can be masked), named as the
            # provider would name them.
            inputs = with_auto_name(resource.type, resource.name, resource.inputs)
            self.recording.resources.append(dataclasses.replace(resource, inputs=_integral(mask_secrets(inputs))))


# --- stack files ----------------------------------------------------------------------------


def project_root(start: Path | None = None) -> Path:
    """The folder holding Pulumi.yaml (searched upward from `start` or the working directory)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "Pulumi.yaml").is_file():
            return folder
    raise RenderError(f"no Pulumi.yaml in {here} or above: run from the project")


def project_settings(root: Path) -> dict[str, Any]:
    """Pulumi.yaml as the engine reads and validates it."""
    try:
        project = engine_config.read_project(root)
        engine_config.validate_project(project)
    except (engine_config.YamlError, engine_config.EngineError) as error:
        raise RenderError(f"{root / 'Pulumi.yaml'}: {error}") from None
    return project


def stacks_dir(root: Path) -> Path:
    return root / project_settings(root).get("stackConfigDir", ".")


def available_stacks(root: Path) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in stacks_dir(root).glob("Pulumi.*.yaml"))


def _strip_secure(value: Any) -> tuple[Any, bool]:
    """`{secure: <ciphertext>}` cannot be decrypted offline: stand in the mask, flag the key."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return MASK, True
        found = False
        result = {}
        for key, item in value.items():
            result[key], secret = _strip_secure(item)
            found = found or secret
        return result, found
    if isinstance(value, list):
        items = [_strip_secure(item) for item in value]
        return [item for item, _ in items], any(secret for _, secret in items)
    return value, False


def load_stack_config(root: Path, stack: str) -> tuple[dict[str, str], list[str]]:
    """The stack's config as `pulumi up -s STACK` hands it to the program (infra/engine_config.py):
    flat keys, scalars as written, structures as JSON, Pulumi.yaml's values and defaults merged in."""
    project = project_settings(root)
    path = stacks_dir(root) / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise RenderError(
            f"no stack '{stack}' ({path} is missing); stacks: {', '.join(available_stacks(root)) or 'none'}"
        )
    try:
        stack_file = engine_config.read_stack_file(path, project["name"])
        if problems := _stack_file_problems(stack_file, project["name"]):
            raise RenderError(str(ConfigError(problems)))
        merged = engine_config.merge_config(stack, project, stack_file.config)
    except engine_config.YamlError as error:
        raise RenderError(str(error).replace(str(path), _shown(path))) from None
    except engine_config.EngineError as error:
        raise RenderError(f"{error}{_missing_hints(project, str(error))}") from None
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in merged.items():
        if value.secure and not value.is_object:
            config[key] = MASK
            secret_keys.append(key)
        elif value.is_object:
            content, secret = _strip_secure(value.content())
            config[key] = json.dumps(content) if secret else value.text
            if secret:
                secret_keys.append(key)
        else:
            config[key] = value.text
    return config, secret_keys


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _stack_file_problems(stack_file: engine_config.StackFile, project: str) -> list[tuple[str, str]]:
    """What the engine accepts silently but we refuse: unknown top-level keys, clear-text passwords."""
    problems = [
        (f"{stack_file.path.name}: {key}", message) for key, message in stack_file_problems(stack_file.document)
    ]
    for key, value in stack_file.config.items():
        if key.startswith(f"{project}:") and value.is_object:
            problems += clear_text_secrets(value.content(), (key[len(project) + 1 :],))
    return problems


def _missing_hints(project: Mapping[str, Any], message: str) -> str:
    """After the engine's "missing configuration value 'k'": what each missing key is for."""
    if "is missing configuration" not in message:
        return ""
    declarations = project.get("config") or {}
    hints = [
        f"{project['name']}:{key}: {declarations[key].get('description', 'required')}"
        for key in sorted(declarations)
        if f"'{key}'" in message and isinstance(declarations[key], dict)
    ]
    return "".join(f"; {hint}" for hint in hints)


# --- running ---------------------------------------------------------------------------------


def run_program(
    root: Path, stack: str, config: Mapping[str, str] | None = None, secret_keys: list[str] | None = None
) -> Recording:
    """Run infra/__main__.py under mocks for `stack` (its stack file, or `config` if given)."""
    if config is None:
        config, secret_keys = load_stack_config(root, stack)
    project = project_settings(root)["name"]

    def program() -> None:
        runpy.run_path(str(PROGRAM), run_name="__main__")

    # A fresh context: no root resource, config or outputs left over from an earlier run.
    return contextvars.Context().run(_run_isolated, project, stack, dict(config), list(secret_keys or []), program)


def record(program: Callable[[], Any], stack: str = "test", project: str = "catwatcher") -> Recording:
    """Run any Pulumi code (one component with hand-made args, say) under the mock engine."""
    return contextvars.Context().run(_run_isolated, project, stack, {}, [], program)


def _run_isolated(
    project: str, stack: str, config: dict[str, str], secret_keys: list[str], program: Callable[[], Any]
) -> Recording:
    # Our own event loop: the SDK needs a current one, and a caller (asyncio.run, a test
    # client) may have left the thread without any.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    monitor = RecordingMonitor(stack)
    try:
        run_under_mocks(monitor, project=project, stack=stack, config=config, secret_keys=secret_keys, program=program)
        monitor.recording.outputs = {
            name: MASK if secret else _integral(value) for name, (value, secret) in stack_exports().items()
        }
    except (pulumi.RunError, ConfigError) as error:
        raise RenderError(str(error)) from None
    finally:
        asyncio.set_event_loop(None)
        loop.close()  # shuts its executor down: no thread uses its loop any more
        monitor.close_thread_loops()
    return monitor.recording
