"""``GET /_local/runbooks``: docs/runbooks.md as a page, for the console's "runbook" links.

An alarm's runbook address is ``runbookBaseUrl#<alarm>``; with the default base (the file's
path in the repository) the console links here instead, and the anchors are the ones GitHub
gives the same headings, so ``/_local/runbooks#server-errors`` opens the alarm's section.
The renderer knows only what docs/runbooks.md uses: headings, paragraphs, lists, fenced
code, inline code, bold and links.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

RUNBOOKS_PATH = "/_local/runbooks"
RUNBOOKS_FILE = Path(__file__).resolve().parents[3] / "docs" / "runbooks.md"
_STYLE = (
    "body{font:14px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
    "color:#16191f}code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px}"
    "pre{background:#f3f5f7;padding:.6rem;overflow:auto}h2,h3{border-top:1px solid #e3e7ec;"
    "padding-top:.8rem}:target{background:#fff8e6}"
)


def anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading (``## `server-errors` `` → server-errors)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _inline(text: str) -> str:
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        escaped = html.escape(part)
        escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
        escaped = re.sub(
            r"\[([^\]]+)\]\(([^)\s]+)\)",
            lambda m: f'<a href="{_href(m.group(2))}">{m.group(1)}</a>',
            escaped,
        )
        out.append(escaped)
    return "".join(out)


def _href(target: str) -> str:
    """Links between the docs stay in the repository; this page serves only the runbooks."""
    return target if target.startswith(("http://", "https://", "#")) else f"#{target}"


def render(markdown: str) -> str:
    """The page: every heading with its GitHub anchor as ``id``."""
    body: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    code: list[str] | None = None

    def flush() -> None:
        if paragraph:
            body.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()
        if items:
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in markdown.splitlines():
        if code is not None:
            if line.startswith("```"):
                body.append(f"<pre>{html.escape(chr(10).join(code))}</pre>")
                code = None
            else:
                code.append(line)
            continue
        if line.startswith("```"):
            flush()
            code = []
        elif heading := re.match(r"^(#{1,4}) (.+)$", line):
            flush()
            level, text = len(heading.group(1)), heading.group(2)
            body.append(f'<h{level} id="{anchor(text)}">{_inline(text)}</h{level}>')
        elif item := re.match(r"^\s*(?:- |\d+\. )(.+)$", line):
            if paragraph:
                flush()
            items.append(item.group(1))
        elif not line.strip():
            flush()
        elif items and line.startswith("  "):
            items[-1] += " " + line.strip()
        else:
            paragraph.append(line.strip())
    flush()
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<link rel="icon" href="/_local/console/favicon.svg" type="image/svg+xml">'
        f"<title>Runbooks · session-management</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>"
    )


def runbooks_page() -> str | None:
    """docs/runbooks.md rendered, or None when this checkout has no such file."""
    try:
        return render(RUNBOOKS_FILE.read_text(encoding="utf-8"))
    except OSError:
        return None
