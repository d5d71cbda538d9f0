"""flotta.agent"""
