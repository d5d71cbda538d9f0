"""``flotta dev up`` / ``down``: the whole system on one machine, on loopback."""
