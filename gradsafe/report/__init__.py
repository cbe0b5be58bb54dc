"""Reporters: render a Report. The only part of gradsafe that produces output text."""

from __future__ import annotations

import enum
from collections.abc import Callable

from gradsafe.model.types import Report


class Format(str, enum.Enum):
    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"
    JUNIT = "junit"
    GITHUB = "github"


Renderer = Callable[[Report, bool], str]


def renderer(fmt: Format) -> Renderer:
    """The reporter for a format (every Format member has one; a test checks it).
    Each is imported when chosen: text loads rich, the others need none of it."""
    if fmt is Format.TEXT:
        from gradsafe.report.text import render as text

        return text
    if fmt is Format.JSON:
        from gradsafe.report.json_report import render as js

        return js
    if fmt is Format.SARIF:
        from gradsafe.report.sarif import render as sarif

        return sarif
    if fmt is Format.JUNIT:
        from gradsafe.report.junit import render as junit

        return junit
    if fmt is Format.GITHUB:
        from gradsafe.report.github import render as github

        return github
    raise ValueError(f"no reporter for {fmt}")
