"""Token verifications per second in jwt_core_lib on one core (issue 3).

Side by side in one run: the full ``TokenVerifier.verify`` (header checks, key lookup,
signature, claims, ``TokenClaims``) against the raw ceiling, a bare PyJWT ``decode`` of
the same token with the same key. Run: ``.venv/bin/python bench/bench_jwt_verify.py``.
"""

import argparse
import asyncio
import os
import statistics
import time
from datetime import timedelta

import jwt

from jwt_core_lib import SigningKey, StaticKeySource, TokenIssuer, TokenVerifier


def _pin_to_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


async def _verify_rate(verifier: TokenVerifier, token: str, seconds: float) -> float:
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(200):
            await verifier.verify(token)
        count += 200
    return count / elapsed


def _raw_rate(key: SigningKey, token: str, seconds: float) -> float:
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(200):
            jwt.decode(
                token, key.public_key, algorithms=["EdDSA"], audience="storefront", issuer="auth"
            )
        count += 200
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    _pin_to_one_core()
    key = SigningKey.generate()
    token = TokenIssuer(signing_key=key, issuer="auth").issue(
        subject="user-1", audience="storefront", ttl=timedelta(minutes=15), roles=("customer",)
    )
    verifier = TokenVerifier(
        key_source=StaticKeySource([key]), issuer="auth", audience="storefront"
    )
    library, raw = [], []
    for _ in range(args.rounds):
        library.append(asyncio.run(_verify_rate(verifier, token, args.seconds)))
        raw.append(_raw_rate(key, token, args.seconds))
    lib_rate, raw_rate = statistics.median(library), statistics.median(raw)
    print(f"jwt_core_lib verify: {lib_rate:,.0f}/s (median of {args.rounds})")
    print(f"bare PyJWT decode:   {raw_rate:,.0f}/s")
    print(f"ratio:               {lib_rate / raw_rate:.0%} of the raw ceiling")


if __name__ == "__main__":
    main()
