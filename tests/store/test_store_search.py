"""Full-text search: kept in sync with the messages, and safe for any typed text."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from desktop.store import ChatStore, ReplyStats, Repro
from desktop.store.search import fts_query

HOSTILE = ['"', '""', "'", "*", "-", "--", "NEAR", "NEAR(", "NEAR(a b, 3)", "a AND", "OR",
           "NOT x", "AND OR NOT", "(", ")", "()", "{text}", ":", "text:hello", "^start",
           "a + b", '"unbalanced', "foo*bar", "-foo", "*foo", "\\", "%", "_", "\x00",
           "a\x00b", "🙂", "ÄÖÜ ß", "日本語", "   ", "", "near\tthe\nend", "x" * 5000,
           '" OR "" AND *', "messages_fts", "rank:1"]


def test_finds_words_prefixes_and_all_words(store: ChatStore) -> None:
    chat = store.create_conversation()
    penguins = store.add_message(chat.id, "user", "Where do penguins live?")
    both = store.add_message(chat.id, "assistant", "Penguins live south, puffins live north.")
    assert {h.message_id for h in store.search("penguins")} == {penguins.id, both.id}
    assert {h.message_id for h in store.search("pengu")} == {penguins.id, both.id}
    assert [h.message_id for h in store.search("puffin penguin")] == [both.id]
    assert store.search("walrus") == []
    (hit,) = store.search("north", marks=("<b>", "</b>"))
    assert hit.conversation_id == chat.id
    assert "<b>north</b>" in hit.snippet


def test_index_follows_edits_replies_and_deletes(store: ChatStore, repro: Repro) -> None:
    chat = store.create_conversation()
    question = store.add_message(chat.id, "user", "tell me about otters")
    writer = store.begin_reply(chat.id, repro, commit_interval_s=0.0)
    writer.append("Otters hold hands ")
    assert store.get_message(writer.message_id).text == "Otters hold hands "
    assert store.search("hands") == []  # indexed once it stops streaming, not at each commit
    writer.append("while sleeping.")
    writer.finish(_stats(), "eos")
    assert [h.message_id for h in store.search("sleeping")] == [writer.message_id]
    assert [h.message_id for h in store.search("hands")] == [writer.message_id]

    edited = store.edit_message(question.id, "tell me about beavers")
    # Branches not on screen are still found.
    assert {h.message_id for h in store.search("otters")} == {question.id, writer.message_id}
    assert [h.message_id for h in store.search("beavers")] == [edited.id]
    store.delete_message(question.id)
    assert store.search("otters") == []
    assert store.search("sleeping") == []
    store.delete_conversation(chat.id)
    assert store.search("beavers") == []


def test_search_syntax_is_taken_literally(store: ChatStore) -> None:
    chat = store.create_conversation()
    near = store.add_message(chat.id, "user", "the shop near the station")
    plus = store.add_message(chat.id, "user", "I write C++ and NOT-a-language stuff")
    assert [h.message_id for h in store.search("NEAR")] == [near.id]
    assert [h.message_id for h in store.search("NEAR(the")] == [near.id]
    assert [h.message_id for h in store.search('"c++"')] == [plus.id]
    assert [h.message_id for h in store.search("NOT-a")] == [plus.id]
    assert [h.message_id for h in store.search("-language")] == [plus.id]
    for text in HOSTILE:
        store.search(text)  # never raises


def test_hostile_queries_never_raise_even_on_an_empty_store(store: ChatStore) -> None:
    for text in HOSTILE:
        assert store.search(text) == []
        query = fts_query(text)
        assert query is None or query.endswith("*")


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=40))
def test_any_text_is_a_valid_query(store: ChatStore, text: str) -> None:
    store.search(text)


def _stats() -> ReplyStats:
    return ReplyStats(completion_tokens=4, first_token_s=0.1, total_s=0.4)
