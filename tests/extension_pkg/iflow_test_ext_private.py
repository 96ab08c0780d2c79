"""Registered as a monitor but never allowed by the tests: importing it is a test failure."""

raise RuntimeError("iflow_test_ext_private must never be imported")
