"""Every text the bot sends, in one place, for Telegram's HTML parse mode (the bot
client, ``clients/telegram.py``, sends every text as HTML).

Whatever comes from outside (product names, skus, reasons, tracking numbers) goes
through :func:`html.escape`, so a name like ``<Tom & Jerry>`` or ``*_bold_*`` is shown as
written and never breaks the message ("can't parse entities"). Money arrives as integer
minor units with an ISO 4217 currency and is formatted here.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from telegram.constants import MessageLimit

__all__ = [
    "CONTACT_BUTTON",
    "ReceiptLine",
    "chat_taken",
    "code_sent",
    "contact_not_own",
    "contact_phone_invalid",
    "contact_phone_mismatch",
    "contact_request",
    "contact_required",
    "format_money",
    "help_text",
    "link_burned",
    "link_invalid",
    "link_not_allowed",
    "no_pending_link",
    "order_created",
    "order_failed",
    "order_status",
    "otp",
    "payment_refunded",
    "receipt",
    "start_unavailable",
    "welcome",
]

#: Receipt lines listed one by one; the rest are summed up in one line.
MAX_LINES = 40
_MAX_TEXT = MessageLimit.MAX_TEXT_LENGTH

# ISO 4217 currencies whose minor unit is not the cent.
_EXPONENTS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"), 0),
    **dict.fromkeys(("RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


@dataclass(frozen=True)
class ReceiptLine:
    """One priced line of an order: unit price in minor units."""

    sku: str
    name: str
    qty: int
    unit_price: int


def format_money(amount: int, currency: str) -> str:
    """``123456, "EUR"`` -> ``1,234.56 EUR``; ``500, "JPY"`` -> ``500 JPY``."""
    code = currency.upper()
    exponent = _EXPONENTS.get(code, 2)
    sign = "-" if amount < 0 else ""
    whole, minor = divmod(abs(amount), 10**exponent)
    text = f"{whole:,}" if exponent == 0 else f"{whole:,}.{minor:0{exponent}d}"
    return f"{sign}{text} {escape(code)}"


def _order(order_id: str) -> str:
    return f"<code>{escape(order_id)}</code>"


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _fit(text: str) -> str:
    # Telegram refuses longer messages; a receipt that long is cut, never lost.
    if len(text) <= _MAX_TEXT:
        return text
    return text[: _MAX_TEXT - 2].rsplit("\n", 1)[0] + "\n…"


def otp(code: str, *, valid_minutes: int) -> str:
    """The login code."""
    return (
        f"Your Storefront code: {escape(code)} (valid {valid_minutes} min)\n"
        "Never share it: Storefront staff will never ask you for it."
    )


def welcome() -> str:
    """``/start`` without a login link."""
    return (
        "Welcome to <b>Storefront</b>!\n"
        "To sign in, enter your phone number on the site and tap the Telegram link it shows."
        " Your login codes and order updates will arrive here."
    )


def help_text() -> str:
    """Anything the bot does not understand."""
    return (
        "I send Storefront login codes and order updates.\n"
        "To sign in, use the Telegram link shown on the site."
    )


#: The reply-keyboard button that shares the user's own contact (``request_contact``).
CONTACT_BUTTON = "📱 Share my phone number"


def contact_request() -> str:
    """A Start press on a valid link: the chat must prove the number first."""
    return (
        "To sign in, confirm that this Telegram account has the phone number you entered:"
        f" tap <b>{CONTACT_BUTTON}</b> below."
    )


def code_sent() -> str:
    """The chat proved the number: auth sends the code separately."""
    return (
        "Thanks, your number is confirmed and this chat is connected."
        " Your login code is on its way."
    )


def _retry(left: int | None) -> str:
    if left is None:
        return ""
    return f" ({left} attempt{'s' if left != 1 else ''} left)"


def contact_required(*, attempts_left: int | None = None) -> str:
    """Anything but the shared contact while a login waits for it (a typed number...)."""
    return (
        f"Please tap <b>{CONTACT_BUTTON}</b> below; typed numbers and other messages are"
        f" not accepted{_retry(attempts_left)}."
    )


def contact_not_own(*, attempts_left: int | None = None) -> str:
    """Someone else's contact card (or one with no Telegram account)."""
    return (
        "That is not your own contact, so nothing was connected. Tap"
        f" <b>{CONTACT_BUTTON}</b> below to share this account's number{_retry(attempts_left)}."
    )


def contact_phone_invalid(*, attempts_left: int | None = None) -> str:
    """A contact whose number cannot be read as an international number."""
    return (
        "We could not read that phone number, so nothing was connected. Tap"
        f" <b>{CONTACT_BUTTON}</b> below{_retry(attempts_left)}."
    )


def contact_phone_mismatch(*, attempts_left: int | None = None) -> str:
    """The sender's own number, but not the one the login link was asked for."""
    return (
        "This Telegram account's phone number is not the number you entered on the site,"
        " so nothing was connected. Sign in on the site with this account's number"
        f"{_retry(attempts_left)}."
    )


def link_burned() -> str:
    """Too many refused replies: the login link is dead."""
    return (
        "Too many failed attempts: this login link no longer works and nothing was connected."
        " Request a new code on the site."
    )


def no_pending_link() -> str:
    """A contact with no login in progress in this chat (or its link expired)."""
    return (
        "There is no login waiting in this chat, or its link has expired."
        " Open the Telegram link shown on the site first."
    )


def link_not_allowed() -> str:
    """A staff account: its chat is set by an administrator, never through the bot."""
    return (
        "This account cannot be connected to a Telegram chat here."
        " Please ask a Storefront administrator."
    )


def link_invalid() -> str:
    """An unknown, used or expired login link."""
    return "This login link has expired or was already used. Request a new code on the site."


def chat_taken() -> str:
    """The chat already belongs to another account."""
    return (
        "This Telegram account is already linked to another Storefront account,"
        " so no code was sent."
    )


def start_unavailable() -> str:
    """Auth could not be reached."""
    return "Sorry, we could not check your login link right now. Please try again in a minute."


def _lines(lines: Sequence[ReceiptLine], currency: str) -> list[str]:
    rendered = []
    for line in lines[:MAX_LINES]:
        total = format_money(line.qty * line.unit_price, currency)
        rendered.append(
            f"• {escape(line.name)} (<code>{escape(line.sku)}</code>)\n"
            f"   {line.qty} x {format_money(line.unit_price, currency)} = {total}"
        )
    if len(lines) > MAX_LINES:
        rest = lines[MAX_LINES:]
        amount = sum(line.qty * line.unit_price for line in rest)
        rendered.append(f"• …and {len(rest)} more items: {format_money(amount, currency)}")
    return rendered


def order_created(*, order_id: str, lines: Sequence[ReceiptLine], total: int, currency: str) -> str:
    """``order.created``: the order is in; payment follows."""
    parts = [
        f"🛒 <b>Order received</b> {_order(order_id)}",
        *_lines(lines, currency),
        f"<b>Total: {format_money(total, currency)}</b>",
        "We will message you once the payment goes through.",
    ]
    return _fit("\n".join(parts))


def receipt(
    *,
    order_id: str,
    lines: Sequence[ReceiptLine],
    subtotal: int,
    total: int,
    currency: str,
    paid_at: datetime,
) -> str:
    """``payment.captured``: the receipt."""
    parts = [
        "🧾 <b>Receipt</b>",
        f"Order {_order(order_id)}",
        f"Paid: {_time(paid_at)}",
        "",
        *_lines(lines, currency),
        "",
        f"Subtotal: {format_money(subtotal, currency)}",
        f"<b>Total paid: {format_money(total, currency)}</b>",
    ]
    return _fit("\n".join(parts))


_STATUS_TEXT = {
    "PROCESSING": "⚙️ <b>Your order is being prepared</b>",
    "SHIPPED": "🚚 <b>Your order has shipped</b>",
    "DELIVERED": "📦 <b>Your order was delivered</b>",
    "CANCELLED": "❌ <b>Your order was cancelled</b>",
}
#: ``order.status_changed`` statuses that reach the customer.
NOTIFIED_STATUSES = frozenset(_STATUS_TEXT)


def order_status(
    *, order_id: str, status: str, tracking_number: str | None = None, reason: str | None = None
) -> str:
    """``order.status_changed`` to one of :data:`NOTIFIED_STATUSES`."""
    parts = [_STATUS_TEXT[status], f"Order {_order(order_id)}"]
    if status == "SHIPPED" and tracking_number:
        parts.append(f"Tracking number: <code>{escape(tracking_number)}</code>")
    if status == "DELIVERED":
        parts.append("Thank you for shopping with Storefront!")
    if status == "CANCELLED":
        if reason:
            parts.append(f"Reason: {escape(_humanize(reason))}")
        parts.append("Any payment taken is refunded; you will get a separate message.")
    return "\n".join(parts)


def order_failed(
    *, order_id: str, reason: str | None, total: int | None, currency: str | None
) -> str:
    """``order.failed``: the order could not be completed."""
    parts = ["⚠️ <b>We could not complete your order</b>", f"Order {_order(order_id)}"]
    if reason:
        parts.append(f"Reason: {escape(_humanize(reason))}")
    if total is not None and currency:
        parts.append(f"Amount: {format_money(total, currency)}")
    parts.append("Nothing was charged, or any charge has been refunded.")
    return "\n".join(parts)


def payment_refunded(*, order_id: str, amount: int, currency: str, reason: str | None) -> str:
    """``payment.refunded``."""
    parts = [
        "💸 <b>Refund issued</b>",
        f"Order {_order(order_id)}",
        f"Amount: {format_money(amount, currency)}",
    ]
    if reason:
        parts.append(f"Reason: {escape(_humanize(reason))}")
    parts.append("It may take a few days to show on your statement.")
    return "\n".join(parts)


def _humanize(reason: str) -> str:
    # Reasons are codes (payment_declined); show them as words.
    return reason.replace("_", " ")
