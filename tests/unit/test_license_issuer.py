"""The issuer's tool: a key pair whose private half only its owner reads, and licenses whose
signature covers every term, as the OpCenter checks them."""

from __future__ import annotations

import base64
import json
import stat

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from chalicelib.wire.licenses import canonical
from infra import license as issuer


def _public(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text))


def test_keygen_writes_a_private_key_only_its_owner_reads_and_prints_the_public(
        tmp_path, capsys):
    assert issuer.main(["keygen", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.strip()
    key = tmp_path / issuer.PRIVATE_NAME
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (tmp_path / issuer.PUBLIC_NAME).read_text().strip() == printed
    assert len(base64.b64decode(printed)) == 32
    with pytest.raises(SystemExit, match="exists; keep it"):
        issuer.main(["keygen", "--out", str(tmp_path)])


def test_an_issued_license_verifies_and_any_change_breaks_it(tmp_path, capsys):
    issuer.main(["keygen", "--out", str(tmp_path)])
    public = _public(capsys.readouterr().out.strip())
    out = tmp_path / "lic.json"
    assert issuer.main(["issue", "--key", str(tmp_path / issuer.PRIVATE_NAME),
                        "--opcenter", "123456789012:us-east-1:openfloat",
                        "--customer", "Genome Lab", "--plan", "pro", "--quota", "500",
                        "--price", "0.012", "--start", "2026-12-01T00:00:00Z", "--days", "30",
                        "--id", "lic-7", "--out", str(out)]) == 0
    document = json.loads(out.read_text())
    terms = document["license"]
    assert (terms["id"], terms["plan"], terms["end"]) == ("lic-7", "pro", "2026-12-31T00:00:00Z")
    signature = base64.b64decode(document["signature"])
    public.verify(signature, canonical(terms))
    for field, value in (("coreHourQuota", 501), ("end", "2027-12-31T00:00:00Z"),
                         ("opcenter", "other")):
        with pytest.raises(InvalidSignature):
            public.verify(signature, canonical({**terms, field: value}))


@pytest.mark.parametrize(("extra", "complaint"), [
    (["--plan", "pro", "--price", "0.01"], "a pro license names its coreHourQuota"),
    (["--plan", "enterprise"], "an enterprise license names its contract"),
    (["--plan", "enterprise", "--contract", "C-1", "--quota", "5"], "has no coreHourQuota"),
    (["--plan", "pro", "--quota", "5", "--price", "cheap"], "decimal number of USD"),
    (["--plan", "pro", "--quota", "5", "--price", "1", "--days", "-1"], "before it starts"),
])
def test_a_license_that_cannot_be_issued_says_why(tmp_path, capsys, extra, complaint):
    issuer.main(["keygen", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match=complaint):
        issuer.main(["issue", "--key", str(tmp_path / issuer.PRIVATE_NAME), "--opcenter", "o",
                     "--customer", "c", *extra])
