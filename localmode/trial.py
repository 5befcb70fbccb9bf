"""The local mode's license: it plays the issuer too. Each run makes an issuer key pair of its
own, deploys the stack trusting its public key, and applies a trial license signed with it,
so that a new user's jobs start at once. The private key lives only in this process."""

from __future__ import annotations

import functools
import json
from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chalicelib.runtime import Runtime
from chalicelib.store import LicenseRecord, Store
from infra.license import issue, public_key_text

TRIAL_DAYS = 30
TRIAL_CORE_HOURS = 100_000


@functools.cache
def issuer() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_key() -> str:
    """The trial issuer's key, for the stack's LicenseIssuerKey."""
    return public_key_text(issuer())


def trial_license(opcenter_id: str, runtime: Runtime) -> dict:
    now = runtime.clock().replace(microsecond=0)
    stamp = now.strftime("%Y%m%d%H%M%S")
    return issue(issuer(), id=f"trial-{stamp}", customer="local trial", plan="pro",
                 coreHourQuota=TRIAL_CORE_HOURS, pricePerCoreHour="0",
                 start=(now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                 end=(now + timedelta(days=TRIAL_DAYS)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                 opcenter=opcenter_id, issued=now.strftime("%Y-%m-%dT%H:%M:%SZ"))


def apply_trial(runtime: Runtime, store: Store) -> dict:
    """Apply a new trial license to the OpCenter; its terms."""
    document = trial_license(runtime.config.opcenter_id, runtime)
    store.put_license(LicenseRecord(document=json.dumps(document), appliedTime=runtime.now_iso(),
                                    appliedBy="local mode"))
    return document["license"]
