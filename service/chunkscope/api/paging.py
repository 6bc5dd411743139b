"""Offset pages for the List RPCs that page over the store (ListDictionaries, ListPolicies):
the page size a request asks for, and opaque page tokens that carry an offset."""

from __future__ import annotations

import base64

from chunkscope.errors import InvalidArgument
from chunkscope_client.v1 import common_pb2

DEFAULT_PAGE, MAX_PAGE = 50, 1000


def page_window(page: common_pb2.PageRequest) -> tuple[int, int]:
    """(offset, size) of the page asked for: size 0 is the default, larger sizes are capped."""
    if page.page_size < 0:
        raise InvalidArgument.field("page.page_size", "must be >= 0 (0 = server default)")
    return decode_offset(page.page_token), min(page.page_size or DEFAULT_PAGE, MAX_PAGE)


def next_token(offset: int, size: int, total: int) -> str:
    """The token of the page after [offset, offset + size), or "" after the last."""
    return encode_offset(offset + size) if offset + size < total else ""


def encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def decode_offset(token: str) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        if not text.startswith("o:"):
            raise ValueError(text)
        offset = int(text[2:])
        if not 0 <= offset < 2**31:
            raise ValueError(text)
        return offset
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument.field(
            "page.page_token", "not a token this server issued; pass next_page_token unchanged"
        ) from None
