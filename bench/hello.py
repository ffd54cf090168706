"""The baseline: the smallest Flask app, served exactly like Consent Center (`bench/run.py`)."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "Hello, World!"
