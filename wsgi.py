"""WSGI entry point: `gunicorn wsgi:app`."""

from consent_center import create_app

app = create_app()
