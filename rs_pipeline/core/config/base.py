"""Config building blocks: the strict Section base, ConfigError and credential-free options."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the key and what is allowed."""


# Option names that hold credentials; exact names, then substrings of longer names.
_SECRET_NAMES = {"key", "secret", "token", "password", "passwd", "connection_string"}
_SECRET_PARTS = (
    "secret",
    "password",
    "token",
    "access_key",
    "account_key",
    "private_key",
    "api_key",
    "credential",
)


def _secret_keys(options: dict[str, Any], prefix: str = "") -> list[str]:
    found = []
    for name, value in options.items():
        low = str(name).lower()
        if low in _SECRET_NAMES or any(part in low for part in _SECRET_PARTS):
            found.append(f"{prefix}{name}")
        elif isinstance(value, dict):  # client_kwargs, config_kwargs, ...
            found += _secret_keys(value, f"{prefix}{name}.")
    return found


def _no_secrets(options: dict[str, Any]) -> dict[str, Any]:
    # Config files end up in git, in Dagster's UI and in logs; credentials live in the env.
    if found := _secret_keys(options):
        raise ValueError(
            f"storage_options must not hold credentials (found {found}); remove them and set "
            "the environment variables instead: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(AWS_SESSION_TOKEN) for s3://, or your filesystem's own variables"
        )
    return options


# fsspec options (endpoint_url, client_kwargs, ...), never credentials.
StorageOptions = Annotated[dict[str, Any], AfterValidator(_no_secrets)]


class Section(BaseModel):
    """Base for config sections: frozen, and unknown keys fail naming the allowed ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(cls.model_fields))
            if unknown:
                allowed = ", ".join(sorted(cls.model_fields))
                raise ValueError(f"unknown key(s) {unknown}; allowed keys here: {allowed}")
        return data
