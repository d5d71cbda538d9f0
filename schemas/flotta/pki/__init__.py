"""The fleet PKI: CA, broker, internal, bootstrap and device certificates, CRL."""
