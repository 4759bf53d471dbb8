"""The TOML parser, chosen once: the standard library's tomllib from Python 3.11, the tomli
backport on 3.10. Reading a project file (size cap, encoding, a readable error) is
`workbook/tomlfile.py`'s job; this module only names the parser, for the pure core and for it."""
from __future__ import annotations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

loads = tomllib.loads
TOMLDecodeError = tomllib.TOMLDecodeError

__all__ = ["TOMLDecodeError", "loads", "tomllib"]
