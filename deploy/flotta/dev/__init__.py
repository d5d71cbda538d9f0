"""The one-machine development stack: local Kubernetes API, server runners, simulator."""
