"""The fleet PKI: CA, broker, internal, bootstrap and device certificates, CRL.

- ``keys``: EC P-256 keys, PEM encoding, CSRs
- ``identities``: certificate CNs and their roles (device, operator, bridge, observer, bootstrap)
- ``authority``: create the CA, issue server and client certificates, sign device CSRs (pure)
- ``cert_info``: read device id, namespace and public key out of a certificate (pure)
- ``revocation``: the revoked list and the CRL built from it (pure)
- ``store``: the PKI directory on disk (atomic writes, keys 0600)
- ``cli``: ``flotta pki ...``
"""
