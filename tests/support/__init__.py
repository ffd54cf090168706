"""Test-support servers: a real SMTP sink and a Twilio Messages API stand-in."""
