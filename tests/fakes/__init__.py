"""Loopback fakes of provider HTTP APIs: real servers on 127.0.0.1, never the internet."""
