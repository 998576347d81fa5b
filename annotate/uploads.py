"""An upload handler that stops an upload over IMPORT_MAX_BYTES as it arrives, before it fills the disk."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload


class SizeLimitedUploadHandler(FileUploadHandler):
    """First in FILE_UPLOAD_HANDLERS: counts every file's bytes and drops the upload once they pass the limit.

    The rest of the request is read and thrown away (no connection reset, so the browser sees the answer);
    the view finds `request.upload_refused` set and says why, naming the limit and its setting.
    """

    received = 0

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None) -> None:
        # Django does not catch StopUpload here: the first file chunk stops the upload instead.
        self.received = content_length if content_length > settings.IMPORT_MAX_BYTES else 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > settings.IMPORT_MAX_BYTES:
            if self.request is not None:
                self.request.upload_refused = True
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None
