"""Signed build provenance and the SBOM inside each wheel.

- `sbom.py`: a CycloneDX document of what a wheel carries and what built it, written into the
  wheel at publish (`.dist-info/sboms/`, PEP 770), with the same bytes for the same build.
- `statement.py`: the in-toto Statement (v1) with a SLSA Provenance (v1) predicate of a build.
- `keys.py`: the operator's Ed25519 signing key and the public keys verify trusts (rotation).
- `envelope.py`: the statement in a DSSE envelope, signed (securesystemslib) and opened.
- `attach.py`: what publish calls: the SBOM into the wheel, the envelope beside it.
- `verify.py`: the checks `wheelwright verify` runs over a wheel and its envelope.
- `stored.py`: a published wheel's envelope as the service checks it (the dashboard).
- `rebuild.py`: `verify --rebuild`: the inputs built again, the bytes compared and recorded.
"""
