"""Settings of the service, read from the environment and validated with pydantic."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "ENV_VARS",
    "TELEGRAM_VARS",
    "ConfigError",
    "Settings",
    "ensure_state_dir",
    "load_settings",
]

#: Telegram credentials: all three or none.
TELEGRAM_VARS = ("TG_API_ID", "TG_API_HASH", "TG_BOT_TOKEN")

#: Every environment variable the service reads.
ENV_VARS = ("HTTP_PORT", "HTTP_HOST", "STATE_DIR", "LOG_LEVEL") + TELEGRAM_VARS

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(Exception):
    """The environment does not describe a valid configuration.

    The message names the variables at fault and never contains a secret value.
    """


class Settings(BaseModel):
    """Validated settings; field aliases are the environment variable names."""

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    http_port: int = Field(alias="HTTP_PORT", ge=1, le=65535)
    http_host: str = Field("127.0.0.1", alias="HTTP_HOST", min_length=1)
    state_dir: Path = Field(alias="STATE_DIR")
    log_level: str = Field("INFO", alias="LOG_LEVEL")
    tg_api_id: int | None = Field(None, alias="TG_API_ID", ge=1)
    tg_api_hash: SecretStr | None = Field(None, alias="TG_API_HASH")
    tg_bot_token: SecretStr | None = Field(None, alias="TG_BOT_TOKEN")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in _LOG_LEVELS:
            raise ValueError("must be one of " + ", ".join(_LOG_LEVELS))
        return level

    @model_validator(mode="after")
    def _telegram_all_or_none(self) -> Settings:
        problem = _telegram_problem(
            {
                "TG_API_ID": self.tg_api_id is not None,
                "TG_API_HASH": self.tg_api_hash is not None,
                "TG_BOT_TOKEN": self.tg_bot_token is not None,
            }
        )
        if problem:
            raise ValueError(problem)
        return self

    @property
    def telegram_enabled(self) -> bool:
        """True when all Telegram credentials are configured."""
        return self.tg_api_id is not None

    @property
    def log_level_number(self) -> int:
        """The log level as a :mod:`logging` number."""
        return logging.getLevelName(self.log_level)

    def secrets(self) -> tuple[str, ...]:
        """The secret values, for masking them out of messages."""
        values = []
        for secret in (self.tg_api_hash, self.tg_bot_token):
            if secret is not None and secret.get_secret_value():
                values.append(secret.get_secret_value())
        return tuple(values)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``environ`` (default: ``os.environ``).

    Empty values count as unset. Raises :class:`ConfigError` with a one-line
    message naming every variable at fault.
    """
    environ = os.environ if environ is None else environ
    raw = {name: environ[name] for name in ENV_VARS if environ.get(name, "") != ""}
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        message = _describe(exc)
        # The all-or-none check runs only once every field is valid: report it anyway.
        problem = _telegram_problem({name: name in raw for name in TELEGRAM_VARS})
        if problem and problem not in message:
            message = f"{message}; {problem}"
        raise ConfigError(message) from None


def ensure_state_dir(settings: Settings) -> Path:
    """Create the state directory (mode 0700) if it is missing; return its path.

    Raises :class:`ConfigError` when it cannot be created or is not a directory.
    """
    path = settings.state_dir
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"STATE_DIR: cannot create {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"STATE_DIR: {path} is not writable")
    return path


def _telegram_problem(given: Mapping[str, bool]) -> str:
    """The all-or-none rule for the Telegram credentials; empty when it holds."""
    if any(given.values()) and not all(given.values()):
        missing = ", ".join(name for name in TELEGRAM_VARS if not given[name])
        return f"{', '.join(TELEGRAM_VARS)} must be set together (missing: {missing})"
    return ""


def _describe(exc: ValidationError) -> str:
    """One line for all errors of ``exc``; input values are never included."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        if error["type"] == "value_error":  # raised here: keep the message as written
            message = str(error.get("ctx", {}).get("error", error["msg"]))
        else:  # pydantic's "Field required" -> "field required"
            message = error["msg"][:1].lower() + error["msg"][1:]
        where = ".".join(str(item) for item in error["loc"])
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
