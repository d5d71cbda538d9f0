"""Defaults shared by the operator's settings and its command line (kept free of imports)."""

# EdgeDevice writes a second: desiredVersion, finalizers and labels of a whole fleet reach the
# API server over N/rate seconds (100 s for 10,000 devices) instead of at once.
DEFAULT_DEVICE_WRITE_RATE = 100.0
