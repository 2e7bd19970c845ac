"""Field types shared by the settings groups."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

Seconds = Annotated[float, Field(gt=0)]
"""A duration in seconds, strictly positive (the ``_s`` suffix of a field's name)."""
CommandLine = list[str]
"""A command line: a string in the environment, split like a shell (see Settings)."""
