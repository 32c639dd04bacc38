"""Helpers shared by test modules: an HTML tag/source collector and a CLI runner capturing output."""
from __future__ import annotations

from html.parser import HTMLParser

from trustkit.cli import run


class HtmlCollector(HTMLParser):
    """Records every start tag and every src/href value of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.sources += [v for k, v in attrs if k in ("src", "href") and v]


def run_cli(capsys, *args):
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
