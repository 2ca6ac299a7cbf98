"""The trainer's exceptions: one base, :class:`TrainerError`, that every error it defines subclasses."""

from __future__ import annotations


class TrainerError(Exception):
    """Base of every error the trainer defines."""


class RecipeError(TrainerError, ValueError):
    """A model's training recipe cannot be used as written; the message names the part."""


class RegistryCallFailed(TrainerError, RuntimeError):
    """The registry refused or could not be reached; the message carries its answer."""


class RegistryUnavailable(TrainerError, RuntimeError):
    """The registry answers but cannot serve a run now (its database or artifact store is away)."""
