"""The base of every configuration model: frozen, strict, one-line errors.

Its own module so that each adapter kind can define its config beside its code (``adapters/<kind>/config.py``)
without importing :mod:`lift_memory.config`, which composes them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from lift_memory.errors import ConfigError


class ConfigModel(BaseModel):
    """Frozen, strict, and failing with one :class:`ConfigError` line that names the field and its range."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)
    section: ClassVar[str] = ""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(exc, type(self)) from exc

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any):
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise config_error(exc, cls) from exc

    def updated(self, **changes: Any):
        """A validated copy with ``changes`` (those not None) applied: call-time arguments are checked like
        the configuration (``model_copy`` would not check them)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return type(self).model_validate({**self.model_dump(), **changes}) if changes else self


def config_error(exc: ValidationError, cls: type[BaseModel]) -> ConfigError:
    """One line for a pydantic error: the field's dotted name, the value given, what is wrong, what is allowed."""
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"] if not isinstance(part, int)]
    name = ".".join(p for p in [getattr(cls, "section", ""), *loc] if p) or cls.__name__
    message = error["msg"].removeprefix("Value error, ")
    if not loc or error["type"] == "value_error":  # a nested config's error, or a check that names its fields
        cause = error.get("ctx", {}).get("error")
        return cause if isinstance(cause, ConfigError) else ConfigError(message)
    allowed = _allowed(cls, loc)
    given = f"={error['input']!r}" if error["type"] != "missing" and not isinstance(error["input"], dict) else ""
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return ConfigError(f"{name}{given}: {message}" + (f"; allowed: {allowed}" if allowed else "") + more)


def _allowed(cls: type[BaseModel], loc: list[str]) -> str:
    """The range a field accepts, from its constraints (``1 <= value <= 65535``), or ''."""
    field = None
    for part in loc:
        field = getattr(cls, "model_fields", {}).get(part)
        if field is None:
            return ""
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            cls = field.annotation
    bounds = {type(m).__name__: getattr(m, type(m).__name__.lower(), None) for m in field.metadata} if field else {}
    low = f"{bounds['Ge']} <= " if "Ge" in bounds else f"{bounds['Gt']} < " if "Gt" in bounds else ""
    high = f" <= {bounds['Le']}" if "Le" in bounds else f" < {bounds['Lt']}" if "Lt" in bounds else ""
    return f"{low}value{high}" if low or high else ""
