"""The engine's two exceptions: every problem a user can cause or meet is one of them, with a sentence to show."""

from __future__ import annotations

__all__ = ["DependencyMissing", "Pose2IDError"]


class Pose2IDError(ValueError):
    """A problem with the user's input or with what this installation provides.

    Its message is a complete sentence meant to be shown to the user as is (the UI turns it into
    ``gr.Error``).
    """


class DependencyMissing(Pose2IDError):
    """A part of the project this feature needs is not available in this installation."""
