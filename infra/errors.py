"""The one error a bad stack config produces: the key path, what is wrong, what would be valid."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

PROJECT = "catwatcher"


def key_path(*parts: str | int) -> str:
    """`("gpu", "replicas")` -> `catwatcher:gpu.replicas`; list indices render as `[1]`."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not part or any(not char.isprintable() or char.isspace() for char in part):
            # A key with spaces, control or line-separator characters stays on its line, quoted.
            text += f"[{json.dumps(part)}]"
        else:
            text += f".{part}" if text else part
    return f"{PROJECT}:{text}"


class ConfigError(ValueError):
    """One or more problems in a stack's config, one per line, each naming its key path."""

    def __init__(self, problems: Sequence[tuple[str, str]]):
        if not problems:
            raise ValueError("ConfigError needs at least one problem")
        self.problems = list(problems)
        super().__init__("\n".join(f"{key}: {' '.join(str(message).split())}" for key, message in self.problems))

    @property
    def keys(self) -> list[str]:
        return [key for key, _ in self.problems]

    @classmethod
    def one(cls, key: str, message: str) -> ConfigError:
        return cls([(key, message)])

    @classmethod
    def merge(cls, errors: Iterable[ConfigError]) -> ConfigError:
        return cls([problem for error in errors for problem in error.problems])
