"""flotta.operator"""
