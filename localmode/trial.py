"""The local mode's license: it plays the issuer too. Each run makes an issuer key pair of its
own (the private key lives only in this process), deploys the stack trusting its public key,
and applies a trial license signed with it, so that a new user's jobs start at once.

OPENFLOAT_LICENSE_ISSUER_KEY names an issuer's private key file instead (as `python -m
infra.license keygen` writes it): the OpCenter then trusts that issuer, and whoever holds the
file can issue licenses for it with `python -m infra.license issue`."""

from __future__ import annotations

import functools
import json
import os
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chalicelib.runtime import Runtime
from chalicelib.store import LicenseRecord, Store
from infra.license import issue, load_key, public_key_text

TRIAL_DAYS = 30
TRIAL_CORE_HOURS = 100_000


ISSUER_KEY_ENV = "OPENFLOAT_LICENSE_ISSUER_KEY"


@functools.cache
def issuer() -> Ed25519PrivateKey:
    path = os.environ.get(ISSUER_KEY_ENV)
    return load_key(Path(path)) if path else Ed25519PrivateKey.generate()


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
