"""Delivery of outbox rows: email (Flask-Mail over SMTP), SMS (twilio) and the dev mailbox."""
