"""Tests of the Anthropic Messages backend against a loopback fake of the API."""
