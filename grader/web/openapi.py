"""The OpenAPI document of the JSON API, served at /api/v1/openapi.json and used
by the schemathesis tests, so the documentation cannot drift from the code."""

from __future__ import annotations

from typing import Any

_nullable_num = {"type": "number", "nullable": True}
_nullable_str = {"type": "string", "nullable": True}

ERROR = {
    "type": "object",
    "required": ["error", "status"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "status": {"type": "integer"},
    },
}

ASSIGNMENT = {
    "type": "object",
    "required": ["id", "title", "attempts_left_today", "counts"],
    "properties": {
        "id": {"type": "string"},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "deadline": _nullable_str,
        "submissions_per_day": {"type": "integer", "nullable": True},
        "attempts_left_today": {"type": "integer", "nullable": True},
        "counts": {"type": "string", "enum": ["best", "last"]},
        "best_score": _nullable_num,
        "latest_score": _nullable_num,
        "latest_state": _nullable_str,
    },
}

STATES = ["queued", "inspecting", "evaluating", "graded", "failed", "not_gradable", "error"]

SUBMISSION = {
    "type": "object",
    "required": ["id", "assignment_id", "state", "finished", "file_sha256"],
    "properties": {
        "id": {"type": "integer"},
        "assignment_id": {"type": "string"},
        "state": {"type": "string", "enum": STATES},
        "finished": {"type": "boolean"},
        "file_sha256": {"type": "string"},
        "file_size": {"type": "integer"},
        "created_at": _nullable_str,
        "finished_at": _nullable_str,
        "status": {
            "type": "string",
            "nullable": True,
            "enum": ["passed", "failed", "not_gradable", None],
        },
        "score": _nullable_num,
        "raw_score": _nullable_num,
        "max_score": _nullable_num,
        "accuracy": _nullable_num,
        "reason": _nullable_str,
        "late_days": {"type": "integer"},
        "penalty": {"type": "number"},
        "uses_attempt": {"type": "boolean"},
        "queue_position": {
            "type": "integer",
            "nullable": True,
            "description": "Submissions ahead of this one in its queue; null unless queued.",
        },
        "phase": {"type": "string", "description": "Where the submission is now, in words."},
        "url": {"type": "string"},
    },
}


def _resp(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _resp(description, {"$ref": "#/components/schemas/Error"})


_auth_errors = {
    "400": _err("Unknown query parameter"),
    "401": _err("Missing or invalid token"),
}
_assignment_id = {
    "name": "assignment_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}
_submission_id = {
    "name": "submission_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "Keras grader API",
        "version": "1",
        "description": "Submit Keras model files and read their grades. Authenticate with "
        "'Authorization: Bearer <token>' (create a token on your account page).",
    },
    "security": [{"bearer": []}],
    "paths": {
        "/me": {
            "get": {
                "summary": "The token's owner",
                "operationId": "me",
                "responses": {
                    "200": _resp(
                        "The user",
                        {
                            "type": "object",
                            "required": ["username", "role"],
                            "properties": {
                                "username": {"type": "string"},
                                "name": {"type": "string"},
                                "role": {"type": "string", "enum": ["student", "instructor"]},
                            },
                        },
                    ),
                    **_auth_errors,
                },
            }
        },
        "/assignments": {
            "get": {
                "summary": "Open assignments with your standing",
                "operationId": "listAssignments",
                "responses": {
                    "200": _resp(
                        "Assignments",
                        {"type": "array", "items": {"$ref": "#/components/schemas/Assignment"}},
                    ),
                    **_auth_errors,
                },
            }
        },
        "/assignments/{assignment_id}": {
            "get": {
                "summary": "One assignment",
                "operationId": "getAssignment",
                "parameters": [_assignment_id],
                "responses": {
                    "200": _resp("The assignment", {"$ref": "#/components/schemas/Assignment"}),
                    "404": _err("No such assignment"),
                    **_auth_errors,
                },
            }
        },
        "/assignments/{assignment_id}/submissions": {
            "post": {
                "summary": "Upload a model file for grading",
                "operationId": "submit",
                "parameters": [_assignment_id],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["model"],
                                "properties": {"model": {"type": "string", "format": "binary"}},
                            }
                        }
                    },
                },
                "responses": {
                    **_auth_errors,
                    "201": _resp("Queued", {"$ref": "#/components/schemas/Submission"}),
                    "400": _err("No file, not a .keras/.h5 file, or unknown query parameter"),
                    "404": _err("No such assignment"),
                    "413": _err("File too large"),
                    "429": _err("No submissions left today"),
                },
            }
        },
        "/submissions": {
            "get": {
                "summary": "Your submissions, newest first",
                "operationId": "listSubmissions",
                "parameters": [{"name": "assignment", "in": "query", "schema": {"type": "string"}}],
                "responses": {
                    "200": _resp(
                        "Submissions",
                        {"type": "array", "items": {"$ref": "#/components/schemas/Submission"}},
                    ),
                    **_auth_errors,
                },
            }
        },
        "/submissions/{submission_id}": {
            "get": {
                "summary": "One of your submissions",
                "operationId": "getSubmission",
                "parameters": [_submission_id],
                "responses": {
                    "200": _resp("The submission", {"$ref": "#/components/schemas/Submission"}),
                    "404": _err("Not found (or not yours)"),
                    **_auth_errors,
                },
            }
        },
        "/submissions/{submission_id}/report": {
            "get": {
                "summary": "The full grading report",
                "operationId": "getReport",
                "parameters": [_submission_id],
                "responses": {
                    "200": _resp("The report (grader.report.Report)", {"type": "object"}),
                    "404": _err("Not found, not yours, or not graded yet"),
                    **_auth_errors,
                },
            }
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Error": ERROR, "Assignment": ASSIGNMENT, "Submission": SUBMISSION},
    },
}
