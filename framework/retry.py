"""Retry policy as a value, and the one backoff function every retrying part uses."""

from __future__ import annotations

import random

import attrs

from framework.errors import ConfigurationError


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How often to try and how long to wait between tries.

    The delay before try ``n + 1`` is ``initial_delay * multiplier ** (n - 1)``,
    capped at ``max_delay``; with ``jitter`` it is drawn uniformly from
    ``[0, that]`` ("full jitter") so that competing retriers spread out.
    """

    max_attempts: int = 5
    initial_delay: float = 0.002
    max_delay: float = 0.2
    multiplier: float = 2.0
    jitter: bool = True

    def __attrs_post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError(
                f"RetryPolicy.max_attempts must be at least 1, got {self.max_attempts}"
            )
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ConfigurationError(
                "RetryPolicy needs initial_delay >= 0, max_delay >= 0 and "
                f"multiplier >= 1, got {self!r}"
            )


def compute_backoff(
    attempt: int, policy: RetryPolicy, rng: random.Random | None = None
) -> float:
    """Seconds to wait after failed try number ``attempt`` (counting from 1)."""
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    ceiling = min(
        policy.max_delay, policy.initial_delay * policy.multiplier ** (attempt - 1)
    )
    if not policy.jitter:
        return ceiling
    return (rng or random).uniform(0.0, ceiling)
