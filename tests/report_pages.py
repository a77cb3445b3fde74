"""Checks of a rendered report page shared by the unit tests of ``miaudit.report`` and the
integration tests that render a real run: self-contained (nothing requested from another host),
and the verdict box as text."""

from __future__ import annotations

import base64
from html.parser import HTMLParser

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.src: list[str] = []
        self.href: list[str] = []
        self.tags: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag, attrs):  # noqa: ANN001
        self.tags.append(tag)
        a = dict(attrs)
        if "src" in a:
            self.src.append(a["src"])
        if "href" in a:
            self.href.append(a["href"])
        if "id" in a:
            self.ids.append(a["id"])


def parse_page(html: str) -> _Links:
    p = _Links()
    p.feed(html)
    return p


def verdict_box(html: str) -> str:
    """The verdict box (everything above the contents line), whitespace collapsed."""
    return " ".join(html.split('<nav class="toc">')[0].split())


def assert_self_contained(html: str) -> _Links:
    p = parse_page(html)
    assert "script" not in p.tags and "link" not in p.tags and "iframe" not in p.tags
    for src in p.src:
        assert src.startswith("data:image/png;base64,"), src[:60]
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
    for href in p.href:
        assert "://" not in href and not href.startswith("//") and ":" not in href.split("/")[0], href
    assert "http://" not in html and "https://" not in html and "url(" not in html and "@import" not in html
    assert 'http-equiv="Content-Security-Policy"' in html and "default-src 'none'" in html
    return p
