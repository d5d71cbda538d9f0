"""Fleet simulator: many devices with real TLS MQTT connections and their own certificates."""
