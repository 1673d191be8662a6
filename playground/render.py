"""A stand-in message as the page shows it: author, text, pictures, buttons and select menus."""

from __future__ import annotations

import html
import mimetypes

from fake_discord import Message
from fake_discord.model import World

from .markdown import to_html

BUTTON, STRING_SELECT, TEXT_INPUT = 2, 3, 4
STYLES = {1: "primary", 2: "secondary", 3: "success", 4: "danger", 5: "link"}


def message_html(message: Message, world: World) -> str:
    def name_of(user_id: int) -> str | None:
        user = world.users.get(user_id)
        return user.name if user else None

    head = []
    if message.interaction is not None and message.interaction.type == 2:
        used = message.interaction
        head.append(f'<div class="used">{_e(used.user.name)} used <b>/{_e(used.name)}</b></div>')
    author = message.author
    head.append(
        f'<div class="author{" bot" if author.bot else ""}">{_e(author.name)}'
        + ('<span class="tag">APP</span>' if author.bot else "")
        + ('<span class="only-you">Only you can see this</span>' if message.ephemeral else "")
        + "</div>"
    )
    body = []
    if message.loading:
        body.append(f'<div class="text thinking">{_e(author.name)} is thinking…</div>')
    elif message.content:
        body.append(f'<div class="text">{to_html(message.content, name_of)}</div>')
    pictures = "".join(_attachment(a.filename, a.url, a.content_type) for a in message.attachments)
    if pictures:
        body.append(f'<div class="files">{pictures}</div>')
    controls = _components(message)
    if controls:
        body.append(controls)
    edited = '<span class="edited">(edited)</span>' if message.edits and not message.loading else ""
    return (
        f'<article class="message" id="m{message.id}" data-id="{message.id}">'
        + "".join(head) + "".join(body) + edited + "</article>"
    )


def note_html(text: str) -> str:
    """A line only the visitor sees, from the playground itself (not from the bot)."""
    return (
        '<article class="message note"><div class="author">playground</div>'
        f'<div class="text">{_e(text)}</div></article>'
    )


def _attachment(filename: str, url: str, content_type: str | None) -> str:
    kind = content_type or mimetypes.guess_type(filename)[0] or ""
    if kind.startswith("image/"):
        return (
            f'<a href="{_e(url)}" target="_blank" rel="noopener"><img src="{_e(url)}" alt="{_e(filename)}" '
            f'title="{_e(filename)}" loading="lazy"></a>'
        )
    return f'<a class="file" href="{_e(url)}" target="_blank" rel="noopener">{_e(filename)}</a>'


def _components(message: Message) -> str:
    rows = []
    for row in message.components:
        items = row.get("components") or [row]
        cells = []
        for item in items:
            if item.get("type") == BUTTON:
                cells.append(_button(item))
            elif item.get("type") == STRING_SELECT:
                cells.append(_select(item))
        if cells:
            rows.append(f'<div class="row">{"".join(cells)}</div>')
    return "".join(rows)


def _button(item: dict) -> str:
    label = " ".join(filter(None, [(item.get("emoji") or {}).get("name"), item.get("label")]))
    style = STYLES.get(item.get("style", 2), "secondary")
    disabled = " disabled" if item.get("disabled") else ""
    if item.get("url"):
        return f'<a class="button link" href="{_e(item["url"])}" target="_blank" rel="noopener">{_e(label)} ↗</a>'
    custom_id = _e(item.get("custom_id", ""))
    return f'<button class="button {style}" data-custom-id="{custom_id}"{disabled}>{_e(label)}</button>'


def _select(item: dict) -> str:
    options = "".join(
        f'<option value="{_e(o["value"])}">{_e(o["label"])}</option>' for o in item.get("options") or []
    )
    placeholder = _e(item.get("placeholder") or "Choose…")
    disabled = " disabled" if item.get("disabled") else ""
    return (
        f'<select class="menu" data-custom-id="{_e(item.get("custom_id", ""))}"{disabled}>'
        f'<option value="" selected disabled>{placeholder}</option>{options}</select>'
    )


def _e(text: object) -> str:
    return html.escape(str(text))


def modal_html(modal: dict, interaction_id: int) -> str:
    """The form of a modal the bot opened; submitting it posts each text input under its custom_id."""
    fields = []
    for row in modal.get("components") or []:
        pairs = [(row.get("label"), row["component"])] if row.get("component") else [
            (c.get("label"), c) for c in row.get("components") or []
        ]
        for label, field in pairs:
            if field.get("type") != TEXT_INPUT:
                continue
            attributes = (
                f'name="{_e(field["custom_id"])}" placeholder="{_e(field.get("placeholder") or "")}"'
                + (" required" if field.get("required", True) else "")
                + (f' minlength="{int(field["min_length"])}"' if field.get("min_length") else "")
                + (f' maxlength="{int(field["max_length"])}"' if field.get("max_length") else "")
            )
            value = _e(field.get("value") or "")
            control = (
                f"<textarea {attributes}>{value}</textarea>" if field.get("style") == 2
                else f'<input {attributes} value="{value}">'
            )
            fields.append(f"<label>{_e(label or field['custom_id'])}{control}</label>")
    return (
        f'<form method="dialog" class="modal" data-interaction="{interaction_id}"><h3>{_e(modal.get("title", ""))}</h3>'
        + "".join(fields)
        + '<div class="row"><button class="button secondary" value="cancel" formnovalidate>Cancel</button>'
        '<button class="button primary" value="submit">Submit</button></div></form>'
    )
