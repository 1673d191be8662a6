"""The playground's page answers only its own page on this machine: another site cannot act in it."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from playground.web import _own_page_only


async def handler(request):
    return web.Response(text="done")


@pytest.mark.parametrize(("host", "origin", "served"), [
    ("127.0.0.1:8765", "http://127.0.0.1:8765", True),
    ("127.0.0.1:8765", None, True),  # a command-line client sends no Origin
    ("localhost:8765", "http://localhost:8765", True),
    ("127.0.0.1:8765", "http://example.com", False),  # another site's form posting to the playground
    ("rebound.example.com:8765", "http://rebound.example.com:8765", False),  # a name made to resolve here
    ("192.168.1.5:8765", "http://192.168.1.5:8765", True),  # --host 0.0.0.0, opened by its address from outside
    ("[::1]:8765", None, True),
    ("192.168.1.5:8765", "http://rebound.example.com:8765", False),
])
async def test_only_its_own_page_may_act(host, origin, served):
    headers = {"Host": host, **({"Origin": origin} if origin else {})}
    request = make_mocked_request("POST", "/send", headers=headers)
    if served:
        assert (await _own_page_only(request, handler)).status == 200
    else:
        with pytest.raises(web.HTTPForbidden):
            await _own_page_only(request, handler)
