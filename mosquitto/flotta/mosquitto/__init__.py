"""Mosquitto configuration and ACL for the Flotta contract."""
