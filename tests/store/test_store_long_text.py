"""Reading a chat whose messages are megabytes long: the branch comes back in order, and the
"2/3" switch learns a message's alternatives without reading any text."""

from __future__ import annotations

import pytest

from desktop.store import ChatStore, NotFoundError


def test_a_branch_of_huge_messages_reads_back_in_order(store: ChatStore) -> None:
    chat = store.create_conversation("Huge")
    texts = ["7" * 3_000_000, "short", "line\n" * 200_000, "end"]
    for n, text in enumerate(texts):
        store.add_message(chat.id, "user" if n % 2 == 0 else "assistant", text)
    edited = store.edit_message(store.messages(chat.id)[2].id, "x" * 1_000_000)
    branch = store.messages(chat.id)
    assert [m.text for m in branch] == [texts[0], texts[1], "x" * 1_000_000]
    assert [m.parent_id for m in branch] == [None, branch[0].id, branch[1].id]
    assert store.sibling_ids(edited.id) == [m.id for m in store.siblings(edited.id)]
    assert len(store.sibling_ids(edited.id)) == 2
    assert store.sibling_ids(branch[0].id) == [branch[0].id]
    with pytest.raises(NotFoundError):
        store.sibling_ids("no-such-message")
