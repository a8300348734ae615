"""Message texts: money from minor units, and outside text escaped for HTML."""

from datetime import UTC, datetime

import pytest

from notifications_service.domain import templates
from notifications_service.domain.templates import ReceiptLine


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (0, "EUR", "0.00 EUR"),
        (5, "USD", "0.05 USD"),
        (123456, "eur", "1,234.56 EUR"),
        (123456789, "GBP", "1,234,567.89 GBP"),
        (500, "JPY", "500 JPY"),
        (1234, "KWD", "1.234 KWD"),
        (-250, "EUR", "-2.50 EUR"),
    ],
)
def test_money_is_formatted_from_minor_units(amount: int, currency: str, expected: str) -> None:
    assert templates.format_money(amount, currency) == expected


def test_names_with_html_and_markdown_characters_are_shown_as_written() -> None:
    text = templates.order_created(
        order_id="o<1>",
        lines=[
            ReceiptLine(sku="A&B", name="<script>alert(1)</script>", qty=1, unit_price=100),
            ReceiptLine(sku="C_D", name="*_[x](y)_*", qty=3, unit_price=999),
        ],
        total=3097,
        currency="EUR",
    )

    assert "<script>" not in text
    assert "• &lt;script&gt;alert(1)&lt;/script&gt; (<code>A&amp;B</code>)" in text
    assert "• *_[x](y)_* (<code>C_D</code>)\n   3 x 9.99 EUR = 29.97 EUR" in text
    assert "<code>o&lt;1&gt;</code>" in text
    assert "<b>Total: 30.97 EUR</b>" in text


def test_a_receipt_lists_lines_totals_and_the_paid_time() -> None:
    text = templates.receipt(
        order_id="0193-abc",
        lines=[ReceiptLine(sku="MUG", name="Mug", qty=2, unit_price=1250)],
        subtotal=2500,
        total=2990,
        currency="USD",
        paid_at=datetime(2026, 11, 25, 9, 30, 12, tzinfo=UTC),
    )

    assert text.splitlines() == [
        "🧾 <b>Receipt</b>",
        "Order <code>0193-abc</code>",
        "Paid: 2026-11-25 09:30 UTC",
        "",
        "• Mug (<code>MUG</code>)",
        "   2 x 12.50 USD = 25.00 USD",
        "",
        "Subtotal: 25.00 USD",
        "<b>Total paid: 29.90 USD</b>",
    ]


def test_a_huge_order_is_summed_up_and_fits_one_message() -> None:
    lines = [ReceiptLine(sku=f"SKU-{i}", name="A" * 150, qty=1, unit_price=100) for i in range(60)]

    text = templates.receipt(
        order_id="o",
        lines=lines,
        subtotal=6000,
        total=6000,
        currency="EUR",
        paid_at=datetime(2026, 1, 1, tzinfo=UTC),
    )

    assert len(text) <= 4096
    assert "SKU-0<" in text
    assert "SKU-59" not in text


def test_statuses_reasons_and_tracking_numbers_are_escaped() -> None:
    shipped = templates.order_status(order_id="o", status="SHIPPED", tracking_number="1Z<&>")
    cancelled = templates.order_status(order_id="o", status="CANCELLED", reason="out_of_stock")
    refund = templates.payment_refunded(order_id="o", amount=1999, currency="EUR", reason="<admin>")

    assert "Tracking number: <code>1Z&lt;&amp;&gt;</code>" in shipped
    assert "Reason: out of stock" in cancelled
    assert "Amount: 19.99 EUR" in refund
    assert "Reason: &lt;admin&gt;" in refund


def test_the_otp_text_names_the_code_and_its_validity() -> None:
    assert templates.otp("123456", valid_minutes=5).splitlines()[0] == (
        "Your Storefront code: 123456 (valid 5 min)"
    )
