"""visrag_client's catalogue methods against the app with fakes (TestClient's transport)."""

from __future__ import annotations

import httpx
import pytest
from api_fakes import jpeg, png

from visrag_client import VisragAPIError, VisragClient


@pytest.fixture
def clients(make_client):
    app = make_client(write_keys="w-key", api_keys="r-key", reload_interval_s=0)

    def forward(request: httpx.Request) -> httpx.Response:
        answer = app.request(
            request.method, str(request.url), content=request.read(), headers=request.headers
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    def connect(key: str) -> VisragClient:
        transport = httpx.MockTransport(forward)
        return VisragClient("http://testserver", api_key=key, transport=transport)

    return connect("w-key"), connect("r-key")


def test_the_feedback_loop_through_the_client(clients):
    writer, reader = clients
    written = writer.add_items(
        [
            {"image": jpeg((150, 20, 160)), "id": "case-1", "labels": {"dent": 2}, "zone": "7"},
            {"image": png((20, 160, 150)), "labels": ["crack"]},
        ]
    )
    assert written.ids[0] == "case-1" and written.ids[1].startswith("item-")
    assert [(lb.id, lb.count) for lb in reader.get_item("case-1").labels] == [("dent", 2)]
    assert reader.retrieve(jpeg((150, 20, 160)), k=1).hits[0].id == "case-1"
    assert "case-1" not in [h.id for h in reader.retrieve(item="case-1", k=6).hits]
    page = reader.list_items(label=["dent"], limit=2)
    assert [it.id for it in page.items] == ["case-1", "green-2"] and page.next_after == "green-2"
    assert writer.put_item("case-1", image=jpeg((150, 20, 160)), labels=["crack"]).count == 7
    writer.delete_item("case-1")
    with pytest.raises(VisragAPIError) as missing:
        reader.get_item("case-1")
    assert missing.value.status_code == 404
    with pytest.raises(VisragAPIError) as forbidden:
        reader.add_items([{"image": jpeg()}])
    assert forbidden.value.status_code == 403 and forbidden.value.error_type == "forbidden"
