"""Test support shared by the components' tests, the end-to-end tests and the benchmarks:
platform instances on free ports, private servers, isolated data. A development-only package:
no component depends on it and no image installs it."""
