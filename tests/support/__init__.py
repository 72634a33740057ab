"""Helpers shared by the test modules: waiting, scratch services, importable tasks, the engine journal.

Each module holds one concept; test files import what they use from here instead of keeping copies.
"""
