"""The Bot API's parse_mode checks, so formatting bugs fail here as they would in Telegram.

Telegram refuses a message whose markup it cannot parse ("can't parse entities"); a bot
that forgets to escape a ``.`` in MarkdownV2 or leaves a ``<b>`` open works against a
lenient fake and breaks in production. These checks cover the rules that bite in
practice; they do not render entities.
"""

from html.parser import HTMLParser

__all__ = ["PARSE_MODES", "MarkupError", "check_markup", "normalize_parse_mode"]

PARSE_MODES = {"html": "HTML", "markdown": "Markdown", "markdownv2": "MarkdownV2"}

_HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
        "tg-time",
    }
)
_HTML_ENTITIES = frozenset({"lt", "gt", "amp", "quot"})
# MarkdownV2 characters that never start an entity, so unescaped they are always an error.
_V2_ALWAYS_ESCAPED = frozenset("#+-={}.!")
_V2_PAIRED = {"*": "Bold", "_": "Italic", "~": "Strikethrough", "|": "Spoiler"}


class MarkupError(ValueError):
    """The text does not parse in its parse_mode; the message is Telegram's wording."""


def normalize_parse_mode(value: str | None) -> str | None:
    """The canonical spelling (Telegram accepts any case), ``None`` for none."""
    if not value:
        return None
    canonical = PARSE_MODES.get(value.lower())
    if canonical is None:
        raise MarkupError("unsupported parse_mode")
    return canonical


def _offset(text: str, index: int) -> int:
    # Telegram reports UTF-8 byte offsets.
    return len(text[:index].encode())


class _HtmlChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.problem: str | None = None

    def _fail(self, message: str) -> None:
        if self.problem is None:
            self.problem = message

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HTML_TAGS:
            self._fail(f'Unsupported start tag "{tag}"')
        elif tag == "span" and ("class", "tg-spoiler") not in attrs:
            self._fail('Tag "span" must have class "tg-spoiler"')
        self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack:
            self._fail(f'Unexpected end tag "{tag}"')
        elif self.stack[-1] != tag:
            self._fail(f'Unmatched end tag "{tag}", expected "</{self.stack[-1]}>"')
        else:
            self.stack.pop()

    def handle_entityref(self, name: str) -> None:
        if name not in _HTML_ENTITIES:
            self._fail(f'Unsupported HTML entity "&{name};"')


def _check_html(text: str) -> None:
    checker = _HtmlChecker()
    checker.feed(text)
    checker.close()
    if checker.problem is None and checker.stack:
        checker.problem = f'Can\'t find end tag corresponding to start tag "{checker.stack[-1]}"'
    if checker.problem:
        raise MarkupError(f"can't parse entities: {checker.problem}")


def _check_markdown_v2(text: str) -> None:
    counts = dict.fromkeys(_V2_PAIRED, 0)
    first: dict[str, int] = {}
    in_code = False
    in_url = False
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if in_code:
            in_code = char != "`"
        elif in_url:
            in_url = char != ")"
        elif char == "`":
            in_code = True
        elif char == "(" and i > 0 and text[i - 1] == "]":
            in_url = True
        elif char in _V2_PAIRED:
            counts[char] += 1
            first.setdefault(char, i)
        elif char == ">" and (i == 0 or text[i - 1] == "\n" or text[max(0, i - 2) : i] == "**"):
            pass  # a blockquote
        elif char == "!" and text[i + 1 : i + 2] == "[":
            pass  # a custom emoji
        elif char in _V2_ALWAYS_ESCAPED or char == ">":
            raise MarkupError(
                f"can't parse entities: Character '{char}' is reserved and must be escaped "
                "with the preceding '\\'"
            )
        i += 1
    if in_code:
        raise MarkupError("can't parse entities: Can't find end of Code entity")
    for char, count in counts.items():
        if count % 2:
            raise MarkupError(
                f"can't parse entities: Can't find end of {_V2_PAIRED[char]} entity at byte "
                f"offset {_offset(text, first[char])}"
            )


def _check_markdown(text: str) -> None:
    opened: str | None = None
    start = 0
    for i, char in enumerate(text):
        if opened == "`":
            if char == "`":
                opened = None
        elif char in "*_`":
            if opened is None:
                opened, start = char, i
            elif opened == char:
                opened = None
    if opened is not None:
        raise MarkupError(
            "can't parse entities: Can't find end of the entity starting at byte offset "
            f"{_offset(text, start)}"
        )


def check_markup(text: str, parse_mode: str | None) -> None:
    """Raise :class:`MarkupError` when Telegram would refuse ``text`` in ``parse_mode``."""
    if parse_mode == "HTML":
        _check_html(text)
    elif parse_mode == "MarkdownV2":
        _check_markdown_v2(text)
    elif parse_mode == "Markdown":
        _check_markdown(text)
