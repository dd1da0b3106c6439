"""What `pulumi up` does with Pulumi.yaml and a stack file before the program runs.

Ported from the Pulumi engine (pulumi/pulumi: sdk/go/common/workspace/project.go `Validate`,
`RewriteShorthandConfigValues`, `ValidateConfigValue`; pkg/workspace/config.go `mergeConfig`;
sdk/go/common/resource/config value.go) and from go-yaml v3 (resolve.go), which the engine parses
both files with. Pure functions of text and dicts: no engine, no files except where a path is given.

The result is the config the engine hands a program: `project:key` -> text, where a scalar keeps
its text as written and a structure is JSON encoded as Go would encode it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# --- YAML as go-yaml v3 reads it (YAML 1.2 core schema, with v3's own leniencies) -----------


class YamlError(ValueError):
    """A file the engine's YAML parser (or our stricter reading of it) refuses; one line."""


_PLAIN = "tag:catwatcher,plain"  # an untagged plain scalar: resolved later, as go-yaml does
_STR, _INT, _FLOAT, _BOOL, _NULL = (f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null"))
_SEQ, _MAP = "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"
_ALLOWED_TAGS = {_STR, _INT, _FLOAT, _BOOL, _NULL, _SEQ, _MAP}
# go-yaml refuses documents that expand aliases into more nodes than this ("excessive aliasing").
MAX_NODES = 100_000
# Deeper than any stack file needs; keeps a hostile document from exhausting the stack.
MAX_DEPTH = 64

_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_TIMESTAMP_START = re.compile(r"^[0-9]{4}-")
_CONSTANTS: dict[str, Any] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
INT64 = (-(2**63), 2**63 - 1)
UINT64_MAX = 2**64 - 1


class _Loader(
    yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer, yaml.resolver.BaseResolver
):
    """PyYAML's scanner and parser (the YAML syntax is the same), but no YAML 1.1 resolution:
    untagged plain scalars keep a marker tag and are resolved with go-yaml v3's rules."""

    def __init__(self, stream: str):
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        yaml.resolver.BaseResolver.__init__(self)

    def resolve(self, kind, value, implicit):  # PyYAML's resolver hook
        if kind is yaml.ScalarNode:
            return _PLAIN if implicit[0] else _STR
        return _SEQ if kind is yaml.SequenceNode else _MAP


def _go_parse_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64) then ParseUint: sign, 0x/0o/0b prefixes, a leading 0 is octal."""
    match = re.fullmatch(r"([+-]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)", text)
    if not match:
        return None
    sign, digits = match.groups()
    lowered = digits.lower()
    if lowered.startswith(("0x", "0o", "0b")):
        value = int(lowered, 0)
    elif len(digits) > 1 and digits.startswith("0"):
        value = int(digits, 8)
    else:
        value = int(digits)
    value = -value if sign == "-" else value
    if INT64[0] <= value <= INT64[1] or (sign != "-" and value <= UINT64_MAX):
        return value
    return None


def resolve_plain_scalar(text: str) -> Any:
    """An untagged plain scalar as go-yaml v3 decodes it into an `interface{}`."""
    if text in _CONSTANTS:
        return _CONSTANTS[text]
    if not text or text[0] not in "+-0123456789.":
        return text
    if text[0] == ".":
        try:
            return float(text) if re.fullmatch(r"\.[0-9]+([eE][-+]?[0-9]+)?", text) else text
        except ValueError:
            return text
    # A date stays a string when decoded into interface{} (go-yaml keeps it for compatibility).
    if _TIMESTAMP_START.match(text):
        return text
    plain = text.replace("_", "")
    integer = _go_parse_int(plain)
    if integer is not None:
        return integer
    if _YAML_FLOAT.match(plain):
        number = float(plain)
        return number if math.isfinite(number) else text
    return text


def _where(source: str, node: yaml.Node) -> str:
    return f"{source}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


class _Builder:
    def __init__(self, source: str):
        self.source = source
        self.nodes = 0

    def build(self, node: yaml.Node, active: frozenset[int] = frozenset(), depth: int = 0) -> Any:
        if id(node) in active:
            raise YamlError(f"{_where(self.source, node)}: an alias refers to the node that contains it")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise YamlError(f"{_where(self.source, node)}: document contains excessive aliasing")
        if depth > MAX_DEPTH:
            raise YamlError(f"{_where(self.source, node)}: nested more than {MAX_DEPTH} levels deep")
        tag = node.tag
        if tag not in _ALLOWED_TAGS and tag != _PLAIN and tag != "!":
            shown = tag.replace("tag:yaml.org,2002:", "!!")
            raise YamlError(
                f"{_where(self.source, node)}: YAML tag {shown} is not allowed in a stack file (plain values only)"
            )
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        inner = active | {id(node)}
        if isinstance(node, yaml.SequenceNode):
            if tag not in (_SEQ, "!"):
                raise YamlError(f"{_where(self.source, node)}: a sequence cannot be tagged {tag}")
            return [self.build(item, inner, depth + 1) for item in node.value]
        if tag not in (_MAP, "!") or not isinstance(node, yaml.MappingNode):
            raise YamlError(f"{_where(self.source, node)}: a mapping cannot be tagged {tag}")
        return self._mapping(node, inner, depth)

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag == _PLAIN:
            return resolve_plain_scalar(node.value)
        if node.tag in (_STR, "!"):
            return node.value
        value = resolve_plain_scalar(node.value)
        kinds: dict[str, type | tuple[type, ...]] = {_INT: int, _FLOAT: (int, float), _BOOL: bool, _NULL: type(None)}
        expected = kinds[node.tag]
        if isinstance(value, bool) and node.tag != _BOOL or not isinstance(value, expected):
            shown = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise YamlError(f"{_where(self.source, node)}: cannot decode `{node.value}` as a {shown}")
        if node.tag == _FLOAT and isinstance(value, int | float):
            return float(value)
        return value

    def _mapping(self, node: yaml.MappingNode, active: frozenset[int], depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        seen_at: dict[str, int] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _PLAIN and key_node.value == "<<":
                merged.update(self._merge_sources(value_node, active, depth))
                continue
            key = self.build(key_node, active, depth + 1)
            if not isinstance(key, str):
                shown = repr(key_node.value) if isinstance(key_node, yaml.ScalarNode) else f"of type {_kind(key)}"
                raise YamlError(f"{_where(self.source, key_node)}: mapping key {shown} is not a string (quote it)")
            if key in seen_at:
                raise YamlError(
                    f'{_where(self.source, key_node)}: mapping key "{key}" already defined at line {seen_at[key]}'
                )
            seen_at[key] = key_node.start_mark.line + 1
            result[key] = self.build(value_node, active, depth + 1)
        return {**merged, **result}

    def _merge_sources(self, node: yaml.Node, active: frozenset[int], depth: int) -> dict[str, Any]:
        value = self.build(node, active, depth + 1)
        sources = value if isinstance(value, list) else [value]
        if not all(isinstance(source, dict) for source in sources):
            raise YamlError(f"{_where(self.source, node)}: map merge requires map or sequence of maps as the value")
        merged: dict[str, Any] = {}
        for source in reversed(sources):
            merged.update(source)
        return merged


def parse_yaml(text: str | bytes, source: str) -> Any:
    """One YAML document, read as the engine reads it: YAML 1.2 scalars (`on`, `yes` stay strings),
    duplicate keys refused, no language tags, string keys only, aliases bounded."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise YamlError(f"{source}: not UTF-8 text (byte {error.start})") from None
    text = text.removeprefix("\ufeff")
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = " ".join(" ".join(part for part in (error.context, error.problem) if part).split()) or "invalid YAML"
        raise YamlError(f"{where}: not valid YAML: {problem}") from None
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
        raise YamlError(f"{source}:{line}:{column}: character #x{error.character:04x} is not allowed in YAML") from None
    except yaml.YAMLError as error:
        raise YamlError(f"{source}: not valid YAML: {' '.join(str(error).split())}") from None
    except RecursionError:
        raise YamlError(f"{source}: nested too deeply") from None
    if node is None:
        return None
    return _Builder(source).build(node)


# --- Go's JSON encoding (what the engine stores for a structured config value) ---------------


def go_json(value: Any) -> str:
    """json.Marshal as Go does it for a value decoded by go-yaml: sorted keys, no spaces,
    whole floats below 1e21 written without a fraction, NaN and infinities refused."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return (
            json.dumps(value, ensure_ascii=False)
            .replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
        )
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"json: unsupported value: {value}")
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        text = repr(value)
        if "e" in text:
            mantissa, exponent = text.split("e")
            sign = "-" if exponent.startswith("-") else "+"
            text = f"{mantissa}e{sign}{exponent.lstrip('+-').rjust(2, '0')}"
        return text
    if isinstance(value, list):
        return "[" + ",".join(go_json(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{go_json(key)}:{go_json(value[key])}" for key in sorted(value)) + "}"
    raise ValueError(f"json: unsupported type: {type(value).__name__}")


def go_format(value: Any) -> str:
    """fmt.Sprintf("%v") of a primitive project default (string, int, bool)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- config keys and values -----------------------------------------------------------------


class EngineError(ValueError):
    """`pulumi up` would stop here, before the program runs; the message is the engine's."""


@dataclass(frozen=True)
class ConfigValue:
    """One stack config value as the engine holds it: text (a scalar as written, a structure as
    JSON), whether it is a structure, whether it is (or holds) a `secure:` value."""

    text: str
    is_object: bool = False
    secure: bool = False

    def content(self) -> Any:
        return json.loads(self.text) if self.is_object else self.text


def parse_config_key(project: str, key: str) -> tuple[str, str]:
    """`ns:name` -> (ns, name); a key without a namespace belongs to the project; the legacy
    `ns:config:name` is accepted, as by config.ParseKey."""
    if ":" not in key:
        return project, key
    parts = key.split(":")
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    if len(parts) == 3 and parts[1] == "config" and parts[0] and parts[2]:
        return parts[0], parts[2]
    raise EngineError(
        f"could not parse {key} as a configuration key (configuration keys should be of the form `<namespace>:<name>`)"
    )


def _is_secure(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"} and isinstance(value["secure"], str)


def _holds_secure(value: Any) -> bool:
    if _is_secure(value):
        return True
    if isinstance(value, dict):
        return any(_holds_secure(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_secure(item) for item in value)
    return False


def stack_value(raw: Any, raw_text: str | None = None) -> ConfigValue:
    """config.Value.UnmarshalYAML: a scalar keeps its text, `{secure: ...}` is secure, anything
    else becomes a JSON object value."""
    if _is_secure(raw):
        return ConfigValue(raw["secure"], secure=True)
    if isinstance(raw, (dict, list)):
        try:
            return ConfigValue(go_json(raw), is_object=True, secure=_holds_secure(raw))
        except ValueError as error:
            raise EngineError(str(error)) from None
    if raw_text is not None:
        return ConfigValue(raw_text)
    return ConfigValue("" if raw is None else go_format(raw) if not isinstance(raw, float) else go_json(raw))


# --- Pulumi.yaml: shorthand, Validate(), typed values -----------------------------------------

SIMPLE_TYPES = ("string", "integer", "boolean", "array", "object")
DECLARATION_ATTRIBUTES = ("type", "items", "description", "secret", "default", "value")


def _namespaced_by_project(project: str, key: str) -> bool:
    return ":" not in key or key.startswith(f"{project}:")


def rewrite_shorthand(project: str, config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """`key: value` becomes `{default: value}` for project keys, `{value: value}` for others."""
    rewritten: dict[str, dict[str, Any]] = {}
    for key, declaration in config.items():
        if isinstance(declaration, (str, int, bool, list)):
            attribute = "default" if _namespaced_by_project(project, key) else "value"
            rewritten[key] = {attribute: declaration}
        else:
            rewritten[key] = dict(declaration)
    return rewritten


def project_shape_problems(project: Mapping[str, Any]) -> list[str]:
    """What project.schema.json refuses under `config:`, derived from it (used when the schema
    file itself is not beside the project)."""
    problems = []
    name = project.get("name")
    if not isinstance(name, str) or not name:
        problems.append("project is missing a non-empty string 'name' attribute")
    config = project.get("config")
    if config is None or isinstance(config, str):
        return problems
    if not isinstance(config, dict):
        return [*problems, "#/config: expected object, string or null"]
    for key, declaration in config.items():
        where = f"#/config/{key}"
        if isinstance(declaration, (str, int, list)) and not (isinstance(declaration, float)):
            continue
        if not isinstance(declaration, dict):
            problems.append(f"{where}: expected string, integer, boolean, array or a declaration")
            continue
        for attribute in declaration:
            if attribute not in DECLARATION_ATTRIBUTES:
                problems.append(f"{where}: additionalProperties '{attribute}' not allowed")
        if "type" in declaration and declaration["type"] not in SIMPLE_TYPES:
            problems.append(f"{where}/type: value must be one of {', '.join(repr(t) for t in SIMPLE_TYPES)}")
        if "description" in declaration and not isinstance(declaration["description"], str):
            problems.append(f"{where}/description: expected string")
        if "secret" in declaration and not isinstance(declaration["secret"], bool):
            problems.append(f"{where}/secret: expected boolean")
        if "items" in declaration:
            problems.extend(_items_problems(declaration["items"], f"{where}/items"))
    return problems


def _items_problems(items: Any, where: str) -> list[str]:
    if not isinstance(items, dict) or "type" not in items:
        return [f"{where}: missing properties: 'type'"]
    problems = []
    if items["type"] not in SIMPLE_TYPES:
        problems.append(f"{where}/type: value must be one of {', '.join(repr(t) for t in SIMPLE_TYPES)}")
    if items["type"] == "array" and "items" not in items:
        problems.append(f"{where}: missing properties: 'items'")
    if "items" in items:
        problems.extend(_items_problems(items["items"], f"{where}/items"))
    return problems


def type_name(type_: str, items: Mapping[str, Any] | None) -> str:
    """InferFullTypeName: `array<string>`, `array<array<integer>>`."""
    if items is not None:
        return f"array<{type_name(items.get('type', ''), items.get('items'))}>"
    return type_


def value_has_type(type_: str, items: Mapping[str, Any] | None, value: Any) -> bool:
    """ValidateConfigValue: integers may be whole floats or integer strings, booleans the strings
    "true"/"false"; only the top level of an object is checked."""
    if type_ == "string":
        return isinstance(value, str)
    if type_ == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        if isinstance(value, float):
            return math.isfinite(value) and value == math.trunc(value)
        if isinstance(value, str):
            return re.fullmatch(r"[+-]?[0-9]+", value) is not None and INT64[0] <= int(value) <= INT64[1]
        return False
    if type_ == "boolean":
        return value in ("true", "false") or isinstance(value, bool)
    if type_ == "object":
        return isinstance(value, dict)
    if not isinstance(value, list) or items is None:
        return False
    return all(value_has_type(items.get("type", ""), items.get("items"), item) for item in value)


def validate_project(project: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Project.Validate() on the shorthand-rewritten config; returns the declarations."""
    problems = project_shape_problems(project)
    if problems:
        raise EngineError("; ".join(problems))
    name = project["name"]
    config = project.get("config")
    declarations = rewrite_shorthand(name, config if isinstance(config, dict) else {})
    for key, declaration in declarations.items():
        default, value = declaration.get("default"), declaration.get("value")
        if default is not None and value is not None:
            raise EngineError(f"project config '{key}' cannot have both a 'default' and 'value' attribute")
        type_ = declaration.get("type")
        if _namespaced_by_project(name, key):
            if type_ == "array" and declaration.get("items") is None:
                raise EngineError(
                    f"The configuration key '{key}' declares an array "
                    "but does not specify the underlying type via the 'items' attribute"
                )
            if (
                type_ is not None
                and default is not None
                and not value_has_type(type_, declaration.get("items"), default)
            ):
                raise EngineError(
                    f"The default value specified for configuration key '{key}' is not of the expected "
                    f"type '{type_name(type_, declaration.get('items'))}'"
                )
        else:
            if type_ is not None:
                raise EngineError(
                    f"Configuration key '{key}' is not namespaced by the project and should not define a type"
                )
            if default is not None:
                raise EngineError(
                    f"Configuration key '{key}' is not namespaced by "
                    "the project and should not define a default value. "
                    "Did you mean to use the 'value' attribute instead of 'default'?"
                )
            if value is None:
                raise EngineError(f"Configuration key '{key}' is namespaced and must provide an attribute 'value'")
    return declarations


def _default_value(value: Any) -> ConfigValue:
    """createConfigValue: strings, integers and booleans as text, anything else as JSON."""
    if isinstance(value, (str, bool, int)):
        return ConfigValue(go_format(value))
    try:
        return ConfigValue(go_json(value), is_object=True)
    except ValueError as error:
        raise EngineError(str(error)) from None


def _missing_error(stack: str, keys: list[str]) -> EngineError:
    keys = sorted(keys)
    if len(keys) == 1:
        listed, noun = f"'{keys[0]}'", "value"
    else:
        listed = ", ".join(f"'{key}'" for key in keys[:-1]) + f" and '{keys[-1]}'"
        noun = "values"
    return EngineError(f"Stack '{stack}' is missing configuration {noun} {listed}")


def merge_config(
    stack: str, project: Mapping[str, Any], stack_config: Mapping[str, ConfigValue]
) -> dict[str, ConfigValue]:
    """mergeConfig: validate the stack's values against the project's declarations and add the
    declared values and defaults the stack does not set. Keys are `ns:name`."""
    declarations = validate_project(project)
    name = project["name"]
    merged = dict(stack_config)
    missing: list[str] = []
    for key in sorted(declarations):
        declaration = declarations[key]
        namespace, short = parse_config_key(name, key)
        full_key = f"{namespace}:{short}"
        has_default, has_value = declaration.get("default") is not None, declaration.get("value") is not None
        if full_key not in merged:
            if not has_default and not has_value:
                if namespace == name:
                    missing.append(key)
                continue
            merged[full_key] = _default_value(declaration["default"] if has_default else declaration["value"])
            continue
        type_ = declaration.get("type")
        if type_ is None:
            continue
        value = merged[full_key]
        if declaration.get("secret") and not (value.secure and not value.is_object):
            raise EngineError(f"Stack '{stack}' with configuration key '{key}' must be encrypted as it's secret")
        if value.secure and not value.is_object:
            continue  # ciphertext: the engine checks the decrypted value, which we cannot see offline
        if not value_has_type(type_, declaration.get("items"), value.content()):
            raise EngineError(
                f"Stack '{stack}' with configuration key '{key}' must be "
                f"of type '{type_name(type_, declaration.get('items'))}'"
            )
    if missing:
        raise _missing_error(stack, missing)
    return merged


# --- stack files ----------------------------------------------------------------------------

STACK_FILE_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")


@dataclass
class StackFile:
    path: Path
    document: dict[str, Any]
    config: dict[str, ConfigValue] = field(default_factory=dict)
    # `catwatcher:credentials` -> the key as written in the file (for messages)
    written_keys: dict[str, str] = field(default_factory=dict)


def read_stack_file(path: Path, project_name: str) -> StackFile:
    """A stack file as LoadProjectStack reads it: a mapping whose `config:` maps config keys to
    values. Top-level scalars keep their text as written (go-yaml decodes them into a string)."""
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise YamlError(f"{source}: {error.strerror}") from None
    document = parse_yaml(data, source)
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise YamlError(
            f"{source}: a stack file is a mapping (config:, secretsprovider:, ...), not a {_kind(document)}"
        )
    config = document.get("config")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise YamlError(
            f"{source}: `config:` must be a mapping of `{project_name}:<key>` to values, not a {_kind(config)}"
        )
    texts = _top_level_scalar_texts(data.decode("utf-8", "replace").removeprefix("\ufeff"))
    stack = StackFile(path=path, document=document)
    for key, raw in config.items():
        namespace, short = parse_config_key(project_name, key)
        full_key = f"{namespace}:{short}"
        if full_key in stack.config:
            raise EngineError(
                f"{source}: config key '{full_key}' is set twice ('{stack.written_keys[full_key]}' and '{key}')"
            )
        stack.config[full_key] = stack_value(raw, texts.get(key) if not isinstance(raw, (dict, list)) else None)
        stack.written_keys[full_key] = key
    return stack


def _kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def _top_level_scalar_texts(text: str) -> dict[str, str]:
    """The text of each scalar directly under `config:` (go-yaml hands a string target the
    scalar as written: `on` stays `on`, `0x10` stays `0x10`, `True` stays `True`)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    texts: dict[str, str] = {}
    if not isinstance(node, yaml.MappingNode):
        return texts
    for key_node, value_node in node.value:
        if (
            isinstance(key_node, yaml.ScalarNode)
            and key_node.value == "config"
            and isinstance(value_node, yaml.MappingNode)
        ):
            for inner_key, inner_value in value_node.value:
                if isinstance(inner_key, yaml.ScalarNode) and isinstance(inner_value, yaml.ScalarNode):
                    null = inner_value.tag == _PLAIN and resolve_plain_scalar(inner_value.value) is None
                    texts[inner_key.value] = "" if null else inner_value.value
    return texts


def read_project(root: Path) -> dict[str, Any]:
    """Pulumi.yaml, parsed as the engine parses it."""
    path = root / "Pulumi.yaml"
    try:
        data = path.read_bytes()
    except OSError as error:
        raise YamlError(f"{path}: {error.strerror}") from None
    project = parse_yaml(data, str(path))
    if not isinstance(project, dict):
        raise EngineError(f"expected project to be an object, was '{_kind(project)}'")
    return project


def load_stack_config(root: Path, stack: str, stack_dir: Path | None = None) -> dict[str, ConfigValue]:
    """The config `pulumi up -s STACK` hands the program, or the engine's error."""
    project = read_project(root)
    validate_project(project)
    folder = stack_dir or root / str(project.get("stackConfigDir") or ".")
    stack_file = read_stack_file(folder / f"Pulumi.{stack}.yaml", project["name"])
    return merge_config(stack, project, stack_file.config)
