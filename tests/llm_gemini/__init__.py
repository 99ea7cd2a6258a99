"""Tests of the Gemini backend against a loopback fake of the Gemini API."""
