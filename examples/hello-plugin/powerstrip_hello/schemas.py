"""Request and response schemas of the hello plugin."""

from __future__ import annotations

import marshmallow as ma

# The longest name any configuration allows (the MAX_NAME_LENGTH setting is 1 to this; the
# service refuses, with a 422, a name longer than the setting once its whitespace is trimmed).
LONGEST_NAME = 200
# A character that is not whitespace as Python's str.strip() (which the service applies) sees it,
# spelled out so that JSON Schema's regex dialect and Python's read the class alike (their \s
# differ on U+001C-U+001F, U+0085 and U+FEFF).
NOT_ONLY_WHITESPACE = (
    "[^\\t\\n\\v\\f\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000]"
)
NAME_DOC = {
    "example": "Ada",
    "pattern": NOT_ONLY_WHITESPACE,  # not only whitespace: the service trims it
    "description": f"1 to MAX_NAME_LENGTH (default 50, at most {LONGEST_NAME}) characters "
    "once trimmed (else 422)",
}


class GreetingRequestSchema(ma.Schema):
    name = ma.fields.String(
        required=True,
        validate=[
            ma.validate.Length(min=1, max=LONGEST_NAME),
            # Regexp matches at the start: "(?s).*" makes it find the character anywhere.
            ma.validate.Regexp(
                f"(?s).*{NOT_ONLY_WHITESPACE}", error="Give a name, not only whitespace."
            ),
        ],
        metadata=NAME_DOC,
    )


class GreetingSchema(ma.Schema):
    message = ma.fields.String(required=True, metadata={"example": "Hello, Ada!"})
    at = ma.fields.AwareDateTime(required=True)


class StoredGreetingSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    message = ma.fields.String(required=True)
    created_at = ma.fields.AwareDateTime(required=True)
