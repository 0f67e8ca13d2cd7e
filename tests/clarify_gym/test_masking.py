from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import clarify_gym as cg
from clarify_gym.masking import (
    FIELDS,
    MaskPolicy,
    parse_bullets,
    parse_input_sections,
    split_sentences,
)

SAMPLE = cg.load_tasks("sample")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two.", ["One.", "Two."]),
        ("Give 3.5 mg twice daily. Then stop.", ["Give 3.5 mg twice daily.", "Then stop."]),
        (
            "See Section 4.2 and Table 3. It matters.",
            ["See Section 4.2 and Table 3.", "It matters."],
        ),
        ("Ask Dr. Smith. Then Mr. J. Jones.", ["Ask Dr. Smith.", "Then Mr. J. Jones."]),
        (
            "Use e.g. The Lancet, i.e. A journal, vs. Nature.",
            ["Use e.g. The Lancet, i.e. A journal, vs. Nature."],
        ),
        ("Made in the U.S. Army labs.", ["Made in the U.S. Army labs."]),
        ("Is it safe? Yes! Sure.", ["Is it safe?", "Yes!", "Sure."]),
        ('He said "stop." Then left.', ['He said "stop."', "Then left."]),
        ("version 2.0.1 is out. ok then", ["version 2.0.1 is out. ok then"]),
        ("* Budget: 4 pages\n- Risks: two items", ["Budget: 4 pages", "Risks: two items"]),
        ("**Note:** keep it short.", ["Note: keep it short."]),
        ("1. First step\n2) Second step", ["First step", "Second step"]),
        ("Line one\n\n\nLine two", ["Line one", "Line two"]),
        ("Wait . . . Then go.", ["Wait . . .", "Then go."]),
        ("", []),
        ("  \n * \n", []),
    ],
)
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


@given(st.text(max_size=400))
@settings(max_examples=300, deadline=None)
def test_split_sentences_never_empty_and_deterministic(text):
    out = split_sentences(text)
    assert out == split_sentences(text)
    assert all(s and s == s.strip() for s in out)
    assert all(any(ch.isalnum() for ch in s) or s == out[0] for s in out[1:] or out)


def test_parse_bullets_and_input_sections():
    assert parse_bullets("* Facts: Two paragraphs.\n* Holding: One sentence.") == [
        ("Facts", "Two paragraphs."),
        ("Holding", "One sentence."),
    ]
    assert parse_bullets("- Cost table: rows per item; totals in EUR.") == [
        ("Cost table", "rows per item; totals in EUR.")
    ]
    assert parse_input_sections("**Input Sections**\n\n**A:** x\ny\n\n**B**: z") == [
        ("A", "x\ny"),
        ("B", "z"),
    ]


def test_policy_validation_and_hidden_input_sections():
    with pytest.raises(ValueError, match="unknown field"):
        MaskPolicy(hidden_fields=("procedure", "conclusion"))
    with pytest.raises(ValueError, match="objective cannot be hidden"):
        MaskPolicy(hidden_fields=("objective",))
    task = SAMPLE[0]
    first_section = parse_input_sections(task.example_input)[0][0]
    harder = cg.mask(task, MaskPolicy(hidden_input_sections=(first_section,)))
    plain = cg.mask(task)
    assert harder.hidden_ids > plain.hidden_ids
    assert f"**{first_section}:**" not in harder.visible_text
    assert f"**{first_section}:**" in plain.visible_text


def test_nothing_hidden_is_an_error():
    task = SAMPLE[0]
    empty = cg.Task(**{**task.__dict__, "procedure": "", "output_spec": "", "notes": ""})
    with pytest.raises(ValueError, match="hides nothing"):
        cg.mask(empty)


@pytest.mark.parametrize("task", SAMPLE, ids=lambda t: t.id)
def test_masking_invariants(task: cg.Task):
    masked = cg.mask(task)
    ids = [s.id for s in masked.sentences]
    assert ids == list(range(len(ids)))
    assert all(s.field in FIELDS and s.text.strip() for s in masked.sentences)
    hidden_fields = set(masked.policy.hidden_fields)
    assert masked.hidden_ids == {s.id for s in masked.sentences if s.field in hidden_fields}
    assert masked.hidden_ids, "H is non-empty"
    for s in masked.sentences:
        if s.hidden:
            assert s.text not in masked.visible_text, f"hidden sentence {s.id} leaks: {s.text}"
        else:
            assert s.text in masked.visible_text, f"visible sentence {s.id} missing"
    assert masked.checklist
    assert {i for item in masked.checklist for i in item.sentence_ids} <= masked.hidden_ids
    assert len([c for c in masked.checklist if c.field == "output_spec"]) == len(
        parse_bullets(task.output_spec)
    )
    assert cg.mask(task) == masked  # deterministic
