"""Receiving a multipart upload as a stream, straight into a temp file in the data folder.

Starlette's own form parser spools files to the system temp folder, which is outside the data folder and
would hold a copy of sensitive data; it also reads the whole body before any size check. This parser
writes the file part to DATA_DIR/tmp while hashing it, and stops at the size cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from app.core.errors import DomainError
from app.datasets.storage import HashingWriter, UploadTooLarge

MAX_FORM_FIELDS = 16
MAX_FIELD_BYTES = 64 * 1024
# Headers and boundaries add a little to the file; a Content-Length beyond the cap plus this is refused unread.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


@dataclass
class ReceivedUpload:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    size: int = 0
    sha256: str = ""


def too_large(limit: int) -> DomainError:
    return DomainError(
        413, "upload_too_large", f"the upload is larger than the limit of {limit} bytes", {"max_bytes": limit}
    )


class _StreamingForm:
    """python-multipart callbacks: small text fields in memory, the one file part to `writer`."""

    def __init__(self, writer: HashingWriter) -> None:
        self.writer = writer
        self.result = ReceivedUpload()
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._is_file = False
        self._field_data = bytearray()

    def on_part_begin(self) -> None:
        self._disposition = b""
        self._field_data = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise DomainError(400, "invalid_multipart", "a multipart part has no field name")
        self._name = options[b"name"].decode("utf-8", "replace")
        self._is_file = b"filename" in options
        if self._is_file:
            if self._name != "file" or self.result.filename is not None:
                raise DomainError(
                    422,
                    "validation_error",
                    "send exactly one file, in the field 'file'",
                    {"errors": [{"loc": ["body", self._name], "msg": "unexpected file", "type": "unexpected_file"}]},
                )
            self.result.filename = options[b"filename"].decode("utf-8", "replace")
        elif len(self.result.fields) >= MAX_FORM_FIELDS:
            raise DomainError(400, "invalid_multipart", f"more than {MAX_FORM_FIELDS} form fields")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self.writer.write(data[start:end])
            return
        self._field_data += data[start:end]
        if len(self._field_data) > MAX_FIELD_BYTES:
            raise DomainError(413, "field_too_large", f"form field '{self._name}' is over {MAX_FIELD_BYTES} bytes")

    def on_part_end(self) -> None:
        if not self._is_file:
            self.result.fields[self._name] = self._field_data.decode("utf-8", "replace")

    def on_end(self) -> None:
        pass


async def receive_upload(request: Request, handle: BinaryIO, max_bytes: int) -> ReceivedUpload:
    """Stream a multipart/form-data body; the file part goes to `handle`. Raises DomainError (4xx)."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        raise DomainError(415, "unsupported_media_type", "send the data set as multipart/form-data")
    boundary = params.get(b"boundary")
    if not boundary:
        raise DomainError(400, "invalid_multipart", "the multipart body has no boundary")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + MULTIPART_OVERHEAD_BYTES:
        raise too_large(max_bytes)

    writer = HashingWriter(handle, max_bytes)
    form = _StreamingForm(writer)
    callbacks = {
        name: getattr(form, name)
        for name in (
            "on_part_begin",
            "on_part_data",
            "on_part_end",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_end",
        )
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except UploadTooLarge:
        raise too_large(max_bytes) from None
    except ClientDisconnect:
        raise DomainError(400, "client_disconnected", "the upload was interrupted") from None
    except DomainError:
        raise
    except Exception:  # python-multipart's parse errors
        raise DomainError(400, "invalid_multipart", "the multipart body cannot be parsed") from None
    form.result.size = writer.size
    form.result.sha256 = writer.sha256
    return form.result


def clean_filename(name: str | None) -> str | None:
    """The uploaded name without any folder part; only shown back and used for its extension."""
    if name is None:
        return None
    base = Path(name.replace("\\", "/")).name.strip()
    return base[:255] or None
