"""The one settings object, and the one function that builds it.

model.py      `Settings`: every setting is one field, declared once
reference.py  the table of fields that --help and docs/configuration.md are made from
layers.py     `load_settings`: flag > OPENEDAI_* environment > settings.yaml > default
"""

from .layers import EXTENSION_PARAM_KEY, SettingsError, build_parser, load_settings
from .model import PROJECT_ROOT, YAML_ALIASES, Settings, parse_ui_auth
from .reference import all_fields, env_names, field_meta, reference_table

__all__ = [
    "EXTENSION_PARAM_KEY",
    "PROJECT_ROOT",
    "YAML_ALIASES",
    "Settings",
    "SettingsError",
    "all_fields",
    "build_parser",
    "env_names",
    "field_meta",
    "load_settings",
    "parse_ui_auth",
    "reference_table",
]
