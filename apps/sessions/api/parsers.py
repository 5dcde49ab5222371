"""The API's JSON parser: bounded in depth, and refusing what no database can store.

Python's JSON parser recurses: 100,000 nested brackets end in a RecursionError, a 500, even
on the anonymous token endpoint. This parser parses with ``BoundedJSONDecoder`` (nesting
deeper than JSON_DEPTH_MAX, NaN/Infinity and unpaired surrogates refused with a 400).

The body's size is bounded before this runs: DRF 3.18 hands JSON parsers ``request.body``,
which Django refuses to read beyond DATA_UPLOAD_MAX_MEMORY_SIZE (MAX_REQUEST_BODY_BYTES);
``exceptions.exception_handler`` answers that with a 413 naming the limit.
"""

import json

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding

from apps.sessions.validation import BoundedJSONDecoder


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            text = stream.read().decode(get_encoding(parser_context or {}))
        except UnicodeDecodeError as exc:
            raise ParseError(f"The request body is not valid text: {exc}.") from exc
        try:
            return json.loads(text, cls=BoundedJSONDecoder)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
