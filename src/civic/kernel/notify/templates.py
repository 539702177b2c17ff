"""Message templates: one Jinja2 file per kind and language, with a block per channel.

A template `<kind>.<language>.j2` holds blocks: `text` (required: the message), `title` (push
title, e-mail subject), `link` (where a tap goes), `button` (messenger button label), and
optionally a block per channel that replaces `text` there: `sms`, `push`, `messenger`, `email`.
An e-mail's HTML comes from `<kind>.<language>.html.j2` when it exists (autoescaped), else from
the text with its links made clickable. Korean (`ko`) is the language every kind must have.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from jinja2 import (
    ChoiceLoader,
    DictLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    select_autoescape,
)
from markupsafe import Markup, escape

log = structlog.get_logger("civic.notify")
BUILT_IN = Path(__file__).parent / "templates"
DEFAULT_LANGUAGE = "ko"
SMS_MAX_BYTES = 90
LMS_MAX_BYTES = 2000
LMS_TITLE_BYTES = 40
_KIND = re.compile(r"^[a-z][a-z0-9_.-]{0,119}$")
_URL = re.compile(r"https?://[^\s<>\"']+")
_CHANNEL_BLOCKS = {"sms": "sms", "push": "push", "messenger": "messenger", "email": "email"}


class NotifyTemplateError(ValueError):
    """A template is missing or does not render; the message names it and the cause."""


@dataclass(frozen=True)
class Rendered:
    """A message rendered for one channel."""

    title: str
    body: str
    html: str | None = None
    link: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def euc_kr_bytes(text: str) -> int:
    """Return the length of text as Korean carriers count it (EUC-KR/CP949: Hangul is 2)."""
    return len(text.encode("cp949", errors="replace"))


def _cut_bytes(text: str, limit: int) -> str:
    while euc_kr_bytes(text) > limit:
        text = text[:-1]
    return text


def linkify(text: str) -> Markup:
    """Escape text and make its http(s) links clickable; newlines become line breaks."""
    parts: list[str] = []
    last = 0
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(".,);:!?")
        end = match.start() + len(url)
        parts.append(str(escape(text[last : match.start()])))
        parts.append(f'<a href="{escape(url)}">{escape(url)}</a>')
        last = end
    parts.append(str(escape(text[last:])))
    return Markup("".join(parts).replace("\n", "<br>\n"))  # noqa: S704 - every piece escaped


class TemplateCatalog:
    """The notification templates: built-in ones, folders services add, and in-memory ones."""

    def __init__(self, folders: list[Path] | None = None) -> None:
        """Look in folders (after any added later), then in the built-in templates."""
        self._memory: dict[str, str] = {}
        self._files = FileSystemLoader([*(folders or []), BUILT_IN])
        self.env = Environment(
            loader=ChoiceLoader([DictLoader(self._memory), self._files]),
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def add_folder(self, folder: Path) -> None:
        """Add a folder of `<kind>.<language>.j2` files, searched before the built-in ones."""
        self._files.searchpath.insert(0, str(folder))

    def add(self, name: str, source: str) -> None:
        """Add one template from a string, named like a file (`alarm.ko.j2`)."""
        # DictLoader reports a changed source as stale, so a replaced template is reloaded.
        self._memory[name] = source

    def has(self, kind: str) -> bool:
        """Whether kind has its Korean template."""
        return self._load(f"{kind}.{DEFAULT_LANGUAGE}.j2") is not None

    def _load(self, name: str) -> Template | None:
        try:
            return self.env.get_template(name)
        except TemplateNotFound:
            return None
        except TemplateSyntaxError as exc:
            raise NotifyTemplateError(
                f"알림 템플릿 '{name}' {exc.lineno}행 문법 오류 (syntax error): {exc.message}"
            ) from exc

    def render(
        self, kind: str, *, channel: str, language: str | None, context: dict[str, Any]
    ) -> Rendered:
        """Render kind for channel in language (Korean when that language has no template)."""
        if not _KIND.match(kind):
            raise NotifyTemplateError(f"알림 종류 이름이 올바르지 않습니다: {kind!r}")
        chosen = language or DEFAULT_LANGUAGE
        template: Template | None = None
        for candidate in dict.fromkeys((chosen, DEFAULT_LANGUAGE)):
            template = self._load(f"{kind}.{candidate}.j2")
            if template is not None:
                chosen = candidate
                break
        if template is None:
            raise NotifyTemplateError(
                f"알림 템플릿이 없습니다 (no template): '{kind}.{DEFAULT_LANGUAGE}.j2' "
                "in the notify templates"
            )
        name = f"{kind}.{chosen}.j2"
        try:
            rendered = self._render(template, name, kind, chosen, channel, context)
        except TemplateError as exc:
            raise NotifyTemplateError(
                f"알림 템플릿 '{name}' 렌더링 실패 (rendering failed): {exc.message or exc!r}"
            ) from exc
        if channel == "sms":
            return _as_sms(rendered, name)
        return rendered

    def _render(
        self,
        template: Template,
        name: str,
        kind: str,
        language: str,
        channel: str,
        context: dict[str, Any],
    ) -> Rendered:
        blocks = template.blocks
        variables = template.new_context(dict(context))

        def block(block_name: str) -> str | None:
            if block_name not in blocks:
                return None
            return "".join(blocks[block_name](variables)).strip()

        if "text" not in blocks:
            raise NotifyTemplateError(f"알림 템플릿 '{name}'에 text 블록이 없습니다 (no text)")
        own = _CHANNEL_BLOCKS.get(channel)
        body = (block(own) if own else None) or block("text") or ""
        title = block("title") or body.split("\n", 1)[0][:80]
        link = block("link") or None
        html: str | None = None
        if channel == "email":
            html_template = self._load(f"{kind}.{language}.html.j2")
            html = (
                html_template.render(dict(context))
                if html_template is not None
                else str(linkify(body))
            )
        meta: dict[str, Any] = {"language": language}
        if channel == "messenger":
            meta["button"] = block("button") or "자세히 보기"
        return Rendered(title=title, body=body, html=html, link=link, meta=meta)


def _as_sms(rendered: Rendered, name: str) -> Rendered:
    size = euc_kr_bytes(rendered.body)
    if size > LMS_MAX_BYTES:
        raise NotifyTemplateError(
            f"알림 템플릿 '{name}'의 문자가 {size}바이트입니다: LMS는 {LMS_MAX_BYTES}바이트까지 "
            f"(SMS text of {size} EUC-KR bytes exceeds the LMS limit)"
        )
    kind = "SMS" if size <= SMS_MAX_BYTES else "LMS"
    if kind == "LMS":
        log.warning("sms_over_90_bytes", template=name, bytes=size, sent_as="LMS")
    meta = {**rendered.meta, "sms_type": kind, "bytes": size}
    title = _cut_bytes(rendered.title, LMS_TITLE_BYTES) if kind == "LMS" else ""
    return Rendered(title=title, body=rendered.body, html=None, link=rendered.link, meta=meta)
