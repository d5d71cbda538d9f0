"""A local Kubernetes-compatible API server backed by SQLite.

The development and embedded default for the one-machine stack and the tests; production
uses a real cluster. Clients (the operator, the bridge, kubectl) only see a kubeconfig.
"""
