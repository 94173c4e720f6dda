"""Strict YAML loading: safe types only, and a duplicate key is an error, never a silent win."""
from __future__ import annotations

from pathlib import Path

import yaml


class YamlError(Exception):
    """A YAML file that cannot be read, parsed, or has duplicate keys."""


class _StrictLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise YamlError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
        seen.add(key)
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: Path):
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise YamlError(f"cannot read {path}: {err}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as err:
        raise YamlError(f"{path}: not valid YAML: {err}") from None
    except YamlError as err:
        raise YamlError(f"{path}: {err}") from None


def load_yaml_text(text: str, max_chars: int = 65536):
    """Strict YAML from untrusted text: bounded, and without aliases (an alias bomb would
    make comparisons of the result exponential)."""
    if len(text) > max_chars:
        raise YamlError(f"{len(text):,} characters, over the {max_chars:,} allowed")
    try:
        if any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, Loader=_StrictLoader)):
            raise YamlError("aliases (*name) are not allowed")
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as err:
        raise YamlError(f"not valid YAML: {err}") from None
