"""Model names and prices.

Aliases map to the newest non-deprecated model of each family known to the pinned SDK
(anthropic 2.11.0: `anthropic.types.Model`, minus `DEPRECATED_MODELS`). A workflow's `models:`
mapping overrides them; full model ids pass through unchanged.

Prices are USD per million tokens, by family, from Anthropic's published list prices for the
current generation. Cache writes (5-minute TTL) cost 1.25x input and cache reads 0.1x input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_MODEL = "sonnet"

ALIASES = {
    "haiku": "claude-haiku-5-5",
    "sonnet": "claude-sonnet-5-5",
    "opus": "claude-opus-5-5",
}


@dataclass(frozen=True)
class Price:
    input: float
    output: float

    @property
    def cache_write(self) -> float:
        return self.input * 1.25

    @property
    def cache_read(self) -> float:
        return self.input * 0.1


_FAMILY_PRICES = {
    "opus": Price(5.0, 25.0),
    "sonnet": Price(3.0, 15.0),
    "haiku": Price(1.0, 5.0),
}


def resolve_model(name: str | None, overrides: Mapping[str, str] | None = None) -> str:
    """`sonnet` -> a full model id; `inherit`/None -> the default; full ids unchanged."""
    if not name or name == "inherit":
        name = DEFAULT_MODEL
    if overrides and name in overrides:
        return overrides[name]
    return ALIASES.get(name, name)


def model_problem(name: str, overrides: Mapping[str, str]) -> str | None:
    """Why `name` cannot be a Claude model (a typo, most likely), or None when it can be.

    Aliases, `models:` keys and anything naming Claude pass: full ids, dated ids, and the ids of
    Bedrock and Vertex (`anthropic.claude-...`, `claude-...@2025...`) all contain "claude".
    """
    if name == "inherit" or name in ALIASES or name in overrides or "claude" in name.lower():
        return None
    from runner.workflow import did_you_mean

    return (
        f"model '{name}' is not a Claude model{did_you_mean(name, [*ALIASES, *overrides])}: use "
        f"{', '.join(ALIASES)}, a full id such as {ALIASES['sonnet']}, or a name under `models:` in the workflow"
    )


def price_of(model: str) -> Price:
    """The price of a model id; unknown models are priced as sonnet so budgets still bite."""
    for family, price in _FAMILY_PRICES.items():
        if family in model:
            return price
    return _FAMILY_PRICES["sonnet"]


def cost_usd(model: str, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int) -> float:
    p = price_of(model)
    return (
        input_tokens * p.input
        + output_tokens * p.output
        + cache_read * p.cache_read
        + cache_write * p.cache_write
    ) / 1_000_000
