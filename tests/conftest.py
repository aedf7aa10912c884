"""Shared fixtures; service markers skip without the service unless CI requires it."""

from __future__ import annotations
