"""The physical limit: a bare Flask endpoint that reads the body and answers 202."""

from flask import Flask, request


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/api/calls")
    def receive() -> tuple[str, int]:
        request.get_data()
        return "", 202

    return app
