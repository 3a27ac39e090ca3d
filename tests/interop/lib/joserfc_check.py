"""Second opinion on logout tokens, with joserfc (a Python JOSE stack independent of both
deprov's and the node receiver's).

Input (a JSON file named on the command line):
  {"issuer": ..., "jwks": {...},
   "tokens": [{"token": ..., "alg": ..., "aud": ..., "sub": ..., "received_at": SECONDS}]}
Time claims are checked as of when the receiver got the token.
Prints one line per token and exits 1 if any token fails.
"""

import json
import sys
import time

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

BCL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def check(spec, keyset, issuer):
    token = spec["token"]
    alg = spec["alg"]
    # EdDSA is not in joserfc's "recommended" set: allow exactly the registered alg.
    registry = JWSRegistry(algorithms=[alg])
    decoded = jwt.decode(token, keyset, algorithms=[alg], registry=registry)
    header, claims = decoded.header, decoded.claims
    problems = []
    if header.get("typ") != "logout+jwt":
        problems.append(f"typ {header.get('typ')!r}")
    if header.get("alg") != alg:
        problems.append(f"alg {header.get('alg')!r} != {alg}")
    registry = jwt.JWTClaimsRegistry(
        now=int(spec.get("received_at", time.time())),
        leeway=5,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": spec["aud"]},
        iat={"essential": True},
        exp={"essential": True},
        jti={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as e:
        problems.append(f"claims: {e.error}: {e.description}")
    if claims.get("events") != {BCL_EVENT: {}}:
        problems.append(f"events {claims.get('events')!r}")
    if "nonce" in claims:
        problems.append("nonce present")
    if claims.get("sub") != spec["sub"]:
        problems.append(f"sub {claims.get('sub')!r} != {spec['sub']!r}")
    if not 0 < claims["exp"] - claims["iat"] <= 120:
        problems.append(f"exp-iat {claims['exp'] - claims['iat']}")
    return problems


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        data = json.load(f)
    keyset = KeySet.import_key_set(data["jwks"])
    failed = 0
    for spec in data["tokens"]:
        try:
            problems = check(spec, keyset, data["issuer"])
        except JoseError as e:
            problems = [f"{type(e).__name__}: {e.error}: {e.description}"]
        except Exception as e:  # noqa: BLE001 - report anything as a failure of that token
            problems = [f"{type(e).__name__}: {e}"]
        status = "ok" if not problems else "FAIL " + "; ".join(problems)
        print(f"joserfc {spec['alg']:5} aud={spec['aud']} sub={spec['sub']}: {status}")
        failed += bool(problems)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
