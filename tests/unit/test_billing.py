"""How amounts of money read in every view: as decimals people write."""

from decimal import Decimal

from chalicelib.wire.billing import usd


def test_a_tiny_amount_reads_as_a_decimal_not_in_exponent_form():
    assert usd(Decimal("0.00000011")) == "0.00000011 USD"
    assert usd(Decimal("0E-8")) == "0.00000000 USD"
    assert usd(0) == "0 USD"
    assert usd(Decimal("12.50")) == "12.50 USD"
