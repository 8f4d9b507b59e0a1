"""Request and response schemas of the tasks plugin."""

from __future__ import annotations

import marshmallow as ma

STATUSES = ("open", "in_progress", "done")
LABEL = ma.fields.String(validate=ma.validate.Regexp(r"^[a-z0-9][a-z0-9_-]{0,31}$"))


class ProjectInSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    description = ma.fields.String(validate=ma.validate.Length(max=10_000))


class ProjectPatchSchema(ma.Schema):
    name = ma.fields.String(validate=ma.validate.Length(min=1, max=200))
    description = ma.fields.String(validate=ma.validate.Length(max=10_000))


class ProjectSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    description = ma.fields.String(required=True)
    owner = ma.fields.String(required=True)
    created_at = ma.fields.DateTime(required=True)
    updated_at = ma.fields.DateTime(required=True)


class MemberInSchema(ma.Schema):
    role = ma.fields.String(
        required=True, validate=ma.validate.OneOf(["viewer", "editor", "owner"])
    )


class MemberSchema(ma.Schema):
    principal = ma.fields.String(required=True)
    role = ma.fields.String(required=True)
    added_at = ma.fields.DateTime(required=True)


class TaskFieldsSchema(ma.Schema):
    description = ma.fields.String(validate=ma.validate.Length(max=10_000))
    status = ma.fields.String(validate=ma.validate.OneOf(STATUSES))
    priority = ma.fields.Integer(
        validate=ma.validate.Range(1, 5), metadata={"description": "1 is the most urgent"}
    )
    due_date = ma.fields.Date(allow_none=True)
    assignee = ma.fields.String(allow_none=True, validate=ma.validate.Length(min=1, max=64))
    labels = ma.fields.List(LABEL, validate=ma.validate.Length(max=20))


class TaskInSchema(TaskFieldsSchema):
    title = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))


class TaskPatchSchema(TaskFieldsSchema):
    title = ma.fields.String(validate=ma.validate.Length(min=1, max=200))


class TaskSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    project_id = ma.fields.Integer(required=True)
    title = ma.fields.String(required=True)
    description = ma.fields.String(required=True)
    status = ma.fields.String(required=True)
    priority = ma.fields.Integer(required=True)
    due_date = ma.fields.Date(allow_none=True)
    assignee = ma.fields.String(allow_none=True)
    labels = ma.fields.List(ma.fields.String(), required=True)
    created_at = ma.fields.DateTime(required=True)
    updated_at = ma.fields.DateTime(required=True)
    completed_at = ma.fields.DateTime(allow_none=True)


class TaskQuerySchema(ma.Schema):
    status = ma.fields.String(validate=ma.validate.OneOf(STATUSES))
    assignee = ma.fields.String(validate=ma.validate.Length(max=64))
    label = LABEL
    due_before = ma.fields.Date()
    due_after = ma.fields.Date()
    q = ma.fields.String(
        validate=ma.validate.Length(min=1, max=200),
        metadata={"description": "Text in title or description"},
    )
    sort = ma.fields.String(
        metadata={
            "description": "id, created_at, updated_at, priority, title or status; -field reverses"
        }
    )


class ActivitySchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    kind = ma.fields.String(required=True)
    actor = ma.fields.String(required=True)
    detail = ma.fields.Dict(required=True)
    created_at = ma.fields.DateTime(required=True)
