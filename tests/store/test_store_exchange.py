"""Export to Markdown and JSON, and importing JSON back: lossless, strict, all or nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from desktop.store import (
    ChatStore,
    InvalidImportError,
    ReplyStats,
    Repro,
)


def _rich_history(store: ChatStore, repro: Repro) -> list[str]:
    """Conversations with branches, every state, stats, repro records and odd text."""
    one = store.create_conversation("Penguins 🐧", model="smollm2-135m-instruct",
                                    system_prompt="Answer in one line.\nBe kind.",
                                    sampling={"temperature": 0.3, "top_k": 20, "seed": None})
    question = store.add_message(one.id, "user", "Where do penguins live?")
    first = store.begin_reply(one.id, repro)
    first.append("Mostly in the south")
    first.finish(ReplyStats(completion_tokens=5, first_token_s=0.125, total_s=0.5), "eos")
    second = store.begin_reply(one.id, repro, replacing=first.message_id)
    second.append("In the Southern Hemisphere.")
    second.cancel()
    store.edit_message(question.id, 'Where do "emperor" penguins live?\n\n```\ncode\n```')
    failed = store.begin_reply(one.id, repro)
    failed.append("Antar")
    failed.fail("out of memory")
    streaming = store.begin_reply(one.id, repro, replacing=failed.message_id,
                                  commit_interval_s=0.0)
    streaming.append("still streaming")

    two = store.create_conversation("Leer", system_prompt="")
    store.add_message(two.id, "user", "Grüße, 日本語, \t tabs and \\ backslashes \u2028")
    store.create_conversation("Empty")
    return [one.id, two.id]


def test_round_trip_is_byte_identical(store: ChatStore, repro: Repro, tmp_path: Path) -> None:
    _rich_history(store, repro)
    exported = store.export_json()
    document = json.loads(exported)
    assert (document["format"], document["format_version"]) == ("onnxchat-history", 1)
    assert len(document["conversations"]) == 3

    with ChatStore.open(tmp_path / "other") as other:
        report = other.import_json(exported)
        assert len(report.imported) == 3 and report.skipped == []
        assert other.export_json() == exported
        # Imported conversations behave like native ones.
        for conversation in store.list_conversations():
            assert other.messages(conversation.id) == store.messages(conversation.id)
            assert other.get_conversation(conversation.id) == conversation


def test_json_holds_the_whole_tree(store: ChatStore, repro: Repro) -> None:
    one, _ = _rich_history(store, repro)
    (conversation,) = json.loads(store.export_json([one]))["conversations"]
    messages = conversation["messages"]
    assert len(messages) == 6  # every branch, not only the one on screen
    assert [m["state"] for m in messages] == ["complete", "complete", "cancelled", "complete",
                                              "error", "streaming"]
    assert messages[1]["stats"] == {"completion_tokens": 5, "first_token_s": 0.125,
                                    "total_s": 0.5}
    assert messages[1]["repro"]["stop_reason"] == "eos"
    assert messages[1]["repro"]["manifest_sha256"] == repro.manifest_sha256
    assert messages[1]["repro"]["dropped_messages"] == [0, 1]
    assert messages[2]["parent_id"] == messages[0]["id"]  # the regenerated sibling
    assert messages[3]["parent_id"] is None  # the edited question is a second root
    assert messages[4]["error"] == "out of memory"
    assert messages[5]["parent_id"] == messages[3]["id"]
    assert conversation["active_leaf_id"] == messages[5]["id"]
    assert conversation["sampling"] == {"temperature": 0.3, "top_k": 20, "seed": None}


def test_importing_again_skips_what_is_there(store: ChatStore, repro: Repro) -> None:
    ids = _rich_history(store, repro)
    exported = store.export_json()
    report = store.import_json(exported)
    assert report.imported == [] and len(report.skipped) == 3
    assert store.export_json() == exported
    store.delete_conversation(ids[0])
    report = store.import_json(exported)
    assert report.imported == [ids[0]]
    assert store.export_json() == exported


def test_markdown_is_readable(store: ChatStore, repro: Repro) -> None:
    one, _ = _rich_history(store, repro)
    text = store.export_markdown([one])
    assert text.startswith("# Penguins 🐧\n\nCreated 2")
    assert "UTC · updated" in text and "model smollm2-135m-instruct" in text
    assert "### System\n\nAnswer in one line." in text
    assert '### User\n\nWhere do "emperor" penguins live?' in text
    assert "### Assistant\n\nstill streaming\n\n*(reply streaming)*" in text
    assert "Mostly in the south" not in text  # only the branch on screen
    both = store.export_markdown()
    assert both.count("\n---\n") == 2 and "# Leer" in both and "# Empty" in both


def _valid(store: ChatStore, repro: Repro) -> dict:
    _rich_history(store, repro)
    document = json.loads(store.export_json())
    for conversation in document["conversations"]:
        store.delete_conversation(conversation["id"])
    return document


def _bad_text(d: dict) -> None:
    d["conversations"][1]["messages"][0]["text"] = "x" * 10_000_001


def _bad_title(d: dict) -> None:
    d["conversations"][1]["title"] = "t" * 1001


def _set(path: str, value: object):
    def change(d: dict) -> None:
        *parents, last = path.split(".")
        target = d
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(last) if last.isdigit() else last] = value
    return change


CHANGES = {
    "oversized message": (_bad_text, r"conversations\[1\]\.messages\[0\]\.text is 10\.0 MB, "
                                     "over the 10 MB limit"),
    "oversized title": (_bad_title, r"conversations\[1\]\.title is 1001 characters long"),
    "format version": (_set("format_version", 2), "format_version 2 is not supported"),
    "format": (_set("format", "something-else"), "not an OnnxChat history file"),
    "unknown field": (_set("conversations.0.messages.0.colour", "red"),
                      r"conversations\[0\]\.messages\[0\] has an unknown field 'colour'"),
    "role": (_set("conversations.0.messages.0.role", "robot"), "role must be one of"),
    "state": (_set("conversations.0.messages.1.state", "done"), "state must be one of"),
    "time": (_set("conversations.0.created", "yesterday"), r"conversations\[0\]\.created is "
                                                           "not a time"),
    "id": (_set("conversations.0.id", "../../etc"), r"conversations\[0\]\.id must be"),
    "parent": (_set("conversations.0.messages.0.parent_id", "nowhere"),
               "parent_id must name an earlier message"),
    "leaf": (_set("conversations.1.active_leaf_id", None), "active_leaf_id must name"),
    "stats": (_set("conversations.0.messages.1.stats", {"completion_tokens": "5"}),
              r"messages\[1\]\.stats: unknown field|messages\[1\]\.stats: missing"),
    "repro": (_set("conversations.0.messages.1.repro.seed", 1.5), r"repro: seed has the wrong"),
    "conversations": (_set("conversations", {}), "conversations must be a list"),
    # Sampling settings follow the settings dialog's rules (issue #13: these imported fine
    # and failed only when the next message was sent, or pushed the window layout off).
    "temperature": (_set("conversations.0.sampling.temperature", "hot"),
                    r'conversations\[0\] \("Penguins 🐧"\)\.sampling: temperature must be a '
                    r"number, got 'hot'"),
    "huge seed": (_set("conversations.0.sampling.seed", int("9" * 401)),
                  r"sampling: seed = a 401-digit number is out of range: valid is "
                  r"\[0, 9223372036854775807\]"),
    "negative seed": (_set("conversations.0.sampling.seed", -1), "seed = -1 is out of range"),
    "fractional top_k": (_set("conversations.0.sampling.top_k", 40.0),
                         "top_k must be a whole number, got 40.0"),
    "top_p": (_set("conversations.0.sampling.top_p", 0), r"top_p = 0 is out of range"),
    "unknown setting": (_set("conversations.0.sampling.warmth", 1),
                        "'warmth' is not a sampling setting"),
    "repro sampling": (_set("conversations.0.messages.1.repro.sampling.min_p", 1.0),
                       r'conversations\[0\] \("Penguins 🐧"\)\.messages\[1\]\.repro\.sampling: '
                       r"min_p = 1.0 is out of range"),
    "repro stop strings": (_set("conversations.0.messages.1.repro.sampling.stop_strings", "ab"),
                           "stop_strings must be a list of strings"),
    "repro seed": (_set("conversations.0.messages.1.repro.seed", 2**64),
                   r"messages\[1\]\.repro\.seed = 18446744073709551616 is out of range"),
}


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_rejected_imports_change_nothing(store: ChatStore, repro: Repro, name: str) -> None:
    document = _valid(store, repro)
    change, message = CHANGES[name]
    change(document)
    survivor = store.create_conversation("Already here")
    before = store.export_json()
    with pytest.raises(InvalidImportError, match=message):
        store.import_json(json.dumps(document).encode())
    assert store.export_json() == before
    assert [c.id for c in store.list_conversations()] == [survivor.id]


RAW = {
    "not JSON": (b'{"format": ', "not valid JSON"),
    "empty": (b" \n", "it is empty"),
    "a Markdown export": (b"# Birds\n\nCreated 2026-12-01",
                          "a Markdown export, which is for reading; import a JSON export"),
    "invalid UTF-8": (b'{"format": "onnxchat-history\xff\xfe"}', "not valid UTF-8 .*offset 28"),
    "lone surrogate": (b'{"format": "onnxchat-history", "x": "\\ud800"}', "x holds an invalid"),
    "duplicate key": (b'{"format": "a", "format": "b"}', "'format' appears twice"),
    "NaN": (b'{"format": NaN}', "NaN is not a JSON number"),
    "not an object": (b"[1, 2]", "not an OnnxChat history file"),
    "deep": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
}


@pytest.mark.parametrize("name", sorted(RAW))
def test_rejected_raw_files(store: ChatStore, name: str) -> None:
    data, message = RAW[name]
    store.create_conversation("Already here")
    before = store.export_json()
    with pytest.raises(InvalidImportError, match=message):
        store.import_json(data)
    assert store.export_json() == before


def test_failure_while_writing_rolls_back_everything(store: ChatStore, repro: Repro,
                                                     tmp_path: Path) -> None:
    # The first conversation is fine; the second reuses a message id that is already in
    # the store under another conversation, which is found only while writing.
    document = _valid(store, repro)
    clash = store.create_conversation("Holder")
    held = store.add_message(clash.id, "user", "mine")
    document["conversations"][1]["messages"][0]["id"] = held.id
    document["conversations"][1]["active_leaf_id"] = held.id
    before = store.export_json()
    with pytest.raises(InvalidImportError, match=f"message {held.id} .* already in this "
                                                 "history"):
        store.import_json(json.dumps(document).encode())
    assert store.export_json() == before
