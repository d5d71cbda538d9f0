"""flotta.bridge"""
