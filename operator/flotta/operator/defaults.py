"""Defaults shared by the operator's settings and its command line (kept free of imports)."""

# EdgeDevice writes a second: desiredVersion, finalizers and labels of a whole fleet reach the
# API server over N/rate seconds (200 s for 10,000 devices) instead of at once. Each write also
# costs every watcher of EdgeDevices (the bridge, the operator itself): at 100/s the writes took
# a quarter of a 2-core machine and slowed the fan-out they follow (benchmarks/results/fleet.md).
DEFAULT_DEVICE_WRITE_RATE = 50.0
# Seconds after the last desired state the broker acknowledged before those writes start: a
# rollout's devices are still answering for a second or two after the last publish, and the
# writes would take their CPU.
DEFAULT_DEVICE_WRITE_SETTLE = 2.0
