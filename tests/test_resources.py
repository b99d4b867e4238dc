from __future__ import annotations

import pytest

from webhook.resources import ResourceError, canonical_id, parse_resource

GUID = "57dab8b1-894c-409a-b240-bd8beae78896"


@pytest.mark.parametrize(
    "url",
    [
        f"/communications/calls/{GUID}",
        f"communications/calls/{GUID}",
        f"/app/calls/{GUID}",
        "/communications/calls/57DAB8B1894C409AB240BD8BEAE78896",
        f"/communications/calls/{GUID.upper()}/",
        f"https://graph.microsoft.com/v1.0/communications/calls/{GUID}",
        f"/Communications/Calls/{GUID}",
    ],
)
def test_every_spelling_of_a_call_url_names_one_call(url: str) -> None:
    ref = parse_resource(url)
    assert (ref.call_id, ref.kind) == (GUID, "call")


def test_sub_resources() -> None:
    assert parse_resource(f"/app/calls/{GUID}/participants").kind == "participants"
    op = parse_resource(f"communications/calls/{GUID}/operations/0FE0623FD62842EDB4BD8AC290072CC5")
    assert (op.kind, op.sub_id) == ("operation", "0fe0623f-d628-42ed-b4bd-8ac290072cc5")
    other = parse_resource(f"/communications/calls/{GUID}/audioRoutingGroups/abc")
    assert (other.kind, other.sub_id) == ("other", "audioRoutingGroups/abc")


@pytest.mark.parametrize(
    "url",
    [
        "",
        "/",
        "/communications/calls",
        "/communications/calls/",
        "/communications/meetings/x",
        "/calls/x",
        "/communications/calls//participants",
        "/communications/calls/a b",
        "/communications/calls/x\ny",
    ],
)
def test_urls_that_name_no_call_are_refused(url: str) -> None:
    with pytest.raises(ResourceError):
        parse_resource(url)


def test_non_guid_ids_are_kept_as_sent() -> None:
    assert canonical_id("Call-Abc") == "Call-Abc"
