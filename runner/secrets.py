"""Secrets: what counts as one, keeping them out of agents' environments, and out of files.

A variable is secret when its name says so (KEY, TOKEN, SECRET, PASSWORD, CREDENTIAL, AUTH,
COOKIE, SESSION). Agents' shells and `verify` commands get an allow-list of the environment without
secrets (nor values that carry one); transcripts, logs and artifacts are redacted of secret values
and of anything shaped like a key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "COOKIE", "SESSION")
_URL_CREDENTIALS = re.compile(r"://[^/@\s]*:[^/@\s]*@")
_SECRET_SHAPES = re.compile(
    r"sk-ant-[A-Za-z0-9_\-]{8,}"  # Anthropic keys
    r"|\bsk-[A-Za-z0-9]{20,}"  # other sk- style keys
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}"  # GitHub tokens
    r"|\bAKIA[0-9A-Z]{16}\b"  # AWS access key ids
    r"|(?i:bearer\s+)[A-Za-z0-9._\-]{16,}"
)
REDACTED = "[REDACTED]"

_ENV_ALLOWED = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TERM", "SHELL", "TMPDIR", "TEMP", "TMP",
        "TZ", "PWD", "VIRTUAL_ENV", "PYTHONPATH", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "JAVA_HOME",
        "GOPATH", "GOROOT", "GOCACHE", "CARGO_HOME", "RUSTUP_HOME", "NVM_DIR", "NODE_PATH", "PYENV_ROOT",
        "COLUMNS", "LINES", "NO_COLOR", "CI", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
        "http_proxy", "https_proxy", "no_proxy", "all_proxy",
    }
)  # fmt: skip
_ENV_ALLOWED_PREFIXES = ("LC_", "RUNNER_", "XDG_")


def looks_secret(name: str) -> bool:
    upper = name.upper()
    return any(word in upper for word in _SECRET_WORDS)


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of the secret variables (long enough to matter), longest first."""
    env = os.environ if environ is None else environ
    return sorted({v for k, v in env.items() if looks_secret(k) and len(v) >= 8}, key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    for value in secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    return _SECRET_SHAPES.sub(REDACTED, text)


def redact_data(value: Any, secrets: list[str]) -> Any:
    """Plain data (dicts, lists, strings) with every string redacted: before it is encoded, since
    JSON escapes a secret holding a quote or a backslash out of `redact`'s sight."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {k: redact_data(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(v, secrets) for v in value]
    return value


def scrubbed_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of `base` (default: os.environ) that an agent's subprocess may see.

    An allow-list, minus any name that looks secret, minus any value that carries one (a proxy URL
    with a password, or a copy of a secret variable's value under an innocent name).
    """
    base = os.environ if base is None else base
    secrets = secret_values(base)
    out: dict[str, str] = {}
    for name, value in base.items():
        if name not in _ENV_ALLOWED and not name.startswith(_ENV_ALLOWED_PREFIXES):
            continue
        if looks_secret(name) or _URL_CREDENTIALS.search(value):
            continue
        if any(secret in value for secret in secrets):
            continue
        out[name] = value
    return out
