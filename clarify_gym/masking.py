"""Masking: split a task document into numbered sentences and hide some fields from the assistant.

The paper's split (Huang et al. 2025, §3): the assistant sees the task objective, the input
specification and the concrete input (what a lazy user would type); the person also knows the
task procedure, the output specification and the notes. The whole task document is one list of
numbered sentences, each tagged with its field; the hidden set H is the ids of sentences in hidden
fields. The checklist used to judge the final outline has one item per output-spec bullet and one
per notes sentence.

>>> from clarify_gym.errors import TaskFormatError
>>> from clarify_gym.tasks import Task
>>> task = Task(id="t", field="Law", objective="Write a memo for the partner.",
...             procedure="Read the contract first. Then check the 2019 amendment.",
...             input_spec="* Facts: what happened", output_spec="* Issue: One sentence.",
...             notes="Use plain English.", example_input="**Input Sections**\\n\\n**Facts:** Dr. Lee sold 3.5 t of steel.")
>>> masked = mask(task)
>>> [(s.id, s.field, s.hidden) for s in masked.sentences]  # doctest: +NORMALIZE_WHITESPACE
[(0, 'objective', False), (1, 'procedure', True), (2, 'procedure', True),
 (3, 'input_spec', False), (4, 'output_spec', True), (5, 'notes', True), (6, 'example_input', False)]
>>> sorted(masked.hidden_ids), [item.text for item in masked.checklist]
([1, 2, 4, 5], ['Issue: One sentence.', 'Use plain English.'])
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

from clarify_gym.errors import TaskFormatError
from clarify_gym.tasks import Task

__all__ = [
    "DEFAULT_POLICY",
    "FIELDS",
    "ChecklistItem",
    "MaskPolicy",
    "MaskedTask",
    "Sentence",
    "mask",
    "parse_bullets",
    "parse_input_sections",
    "split_sentences",
]

#: Document order of the task fields (sentence ids follow it).
FIELDS = ("objective", "procedure", "input_spec", "output_spec", "notes", "example_input")
#: Fields that are bullet lists of ``* Section: description``.
BULLET_FIELDS = frozenset({"input_spec", "output_spec"})
#: Order in which visible fields are shown to the assistant.
VISIBLE_ORDER = ("objective", "input_spec", "example_input", "procedure", "output_spec", "notes")
FIELD_TITLES = {
    "objective": "Task objective",
    "procedure": "Task procedure",
    "input_spec": "Input sections",
    "output_spec": "Output sections",
    "notes": "Notes",
    "example_input": "Input",
}

# Words that end with a period but do not end a sentence when a capital follows.
ABBREVIATIONS = frozenset(
    [
        "dr",
        "mr",
        "mrs",
        "ms",
        "prof",
        "sr",
        "jr",
        "st",
        "mt",
        "vs",
        "etc",
        "al",
        "approx",
        "cf",
        "fig",
        "figs",
        "no",
        "nos",
        "vol",
        "pp",
        "ed",
        "eds",
        "inc",
        "ltd",
        "co",
        "corp",
        "dept",
        "univ",
        "est",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "sec",
        "art",
        "ch",
        "para",
        "ref",
        "refs",
        "eq",
        "eqs",
        "min",
        "max",
        "avg",
        "govt",
        "gen",
        "col",
        "lt",
        "sgt",
        "capt",
        "rev",
        "hon",
    ]
)
_BOUNDARY = re.compile(r"[.!?]+[\"'”’)\]]*\s+")
_BULLET = re.compile(r"^\s*(?:[*\-•‣◦]|\d{1,2}[.)])\s+")
_INPUT_HEADER = re.compile(
    r"^\s*\*\*(?P<name>[^*\n]+?)\s*:\s*\*\*\s*|^\s*\*\*(?P<name2>[^*\n]+?)\*\*\s*:\s*"
)
_INITIALISM = re.compile(r"^(?:[A-Za-z]\.){2,}$")
_SECTION_PREFIX = re.compile(r"^(?P<name>[^:.!?]{1,80}?)\s*:\s+(?P<rest>\S.*)$", re.DOTALL)


def _is_abbreviation(token: str) -> bool:
    word = token.rstrip(".").lstrip("(\"'“‘[")
    if not word:
        return False
    if _INITIALISM.match(word + "."):  # e.g. i.e. U.S.
        return True
    if len(word) == 1 and word.isalpha():  # an initial, "J. Smith"
        return True
    return word.lower() in ABBREVIATIONS


def _split_line(line: str) -> list[str]:
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(line):
        end = match.end()
        if end >= len(line):
            break
        following = line[end]
        if not (following.isupper() or following.isdigit() or following in "\"'“‘([*"):
            continue
        punct_at = match.start()
        if line[punct_at] == ".":
            token = line[start:punct_at].split()[-1] if line[start:punct_at].split() else ""
            if _is_abbreviation(token + "."):
                continue
        sentences.append(line[start : match.end()].strip())
        start = end
    sentences.append(line[start:].strip())
    return sentences


def split_sentences(text: str) -> list[str]:
    """Split text into sentences; deterministic and never returns an empty sentence.

    Line breaks always end a sentence; bullet markers and markdown bold are removed; periods
    in abbreviations, initials, decimals and section numbers do not end a sentence.

    >>> split_sentences("Give 3.5 mg (see Section 4.2). Dr. Smith, i.e. the lead, signs it. Done!")
    ['Give 3.5 mg (see Section 4.2).', 'Dr. Smith, i.e. the lead, signs it.', 'Done!']
    >>> split_sentences("* First item\\n\\n- Second item. Third")
    ['First item', 'Second item.', 'Third']
    >>> split_sentences("  ...  ")
    []
    """
    out: list[str] = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = _BULLET.sub("", raw.replace("**", "")).strip()
        if not line:
            continue
        for sentence in _split_line(line):
            if not sentence:
                continue
            if not any(ch.isalnum() for ch in sentence):
                if out:  # stray punctuation belongs to the sentence before it
                    out[-1] = f"{out[-1]} {sentence}"
                continue
            out.append(sentence)
    return out


def parse_bullets(text: str) -> list[tuple[str, str]]:
    """Parse ``* Section: description`` bullets into ``(section, description)`` pairs.

    Lines without a bullet marker continue the bullet before them. A bullet without a
    ``Name:`` prefix gets the section name ``""``.

    >>> parse_bullets("* Summary: Two paragraphs.\\n  Plain words.\\n* Budget table")
    [('Summary', 'Two paragraphs. Plain words.'), ('', 'Budget table')]
    """
    items: list[list[str]] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        if not raw.strip():
            continue
        if _BULLET.match(raw) or not items:
            items.append([_BULLET.sub("", raw).replace("**", "").strip()])
        else:
            items[-1].append(raw.replace("**", "").strip())
    pairs: list[tuple[str, str]] = []
    for parts in items:
        body = " ".join(p for p in parts if p)
        match = _SECTION_PREFIX.match(body)
        if match:
            pairs.append((match["name"].strip(), match["rest"].strip()))
        elif body.endswith(":") and len(body) <= 81:
            pairs.append((body[:-1].strip(), ""))
        else:
            pairs.append(("", body))
    return [(name, desc) for name, desc in pairs if name or desc]


def parse_input_sections(text: str) -> list[tuple[str, str]]:
    """Parse a DOLOMITES ``example_input`` into ``(section, text)`` blocks.

    The leading ``**Input Sections**`` title is dropped; text before the first header gets
    the section name ``""``.

    >>> parse_input_sections("**Input Sections**\\n\\n**Facts:** A sold B a car.\\n\\n**Date:** 3 May")
    [('Facts', 'A sold B a car.'), ('Date', '3 May')]
    """
    blocks: list[tuple[str, list[str]]] = [("", [])]
    for raw in text.replace("\r\n", "\n").split("\n"):
        stripped = raw.strip()
        if stripped.replace("*", "").strip().lower() in {"input sections", "input sections:"}:
            continue
        match = _INPUT_HEADER.match(raw)
        if match:
            name = (match["name"] or match["name2"]).strip()
            blocks.append((name, [raw[match.end() :]]))
        else:
            blocks[-1][1].append(raw)
    result = []
    for name, lines in blocks:
        body = "\n".join(lines).strip()
        if name or body:
            result.append((name, body))
    return result


@dataclass(frozen=True)
class Sentence:
    """One numbered sentence of the task document.

    ``group`` numbers the bullet (input/output spec) or input block (example input) the
    sentence belongs to within its field; prose fields use group 0.
    """

    id: int
    text: str
    field: str
    section: str = ""
    hidden: bool = False
    group: int = 0


@dataclass(frozen=True)
class ChecklistItem:
    """One thing the final outline must contain (an output-spec bullet or a notes sentence)."""

    id: int
    text: str
    field: str
    sentence_ids: tuple[int, ...]


@dataclass(frozen=True)
class MaskPolicy:
    """Which parts of the task document the assistant does not see.

    Attributes:
        hidden_fields: Whole fields to hide. The paper's split hides the procedure, the output
            spec and the notes.
        hidden_input_sections: Names of ``example_input`` sections to hide as well (a harder
            variant: the person also holds back part of the input).
    """

    hidden_fields: tuple[str, ...] = ("procedure", "output_spec", "notes")
    hidden_input_sections: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [f for f in self.hidden_fields if f not in FIELDS]
        if unknown:
            raise ValueError(
                f"unknown field(s) {unknown} in MaskPolicy.hidden_fields; choose from {FIELDS}"
            )
        if "objective" in self.hidden_fields:
            raise ValueError(
                "the task objective cannot be hidden: the assistant must know what to write"
            )

    def hides(self, field_name: str, section: str = "") -> bool:
        """Whether a sentence of this field (and input section) is hidden."""
        if field_name in self.hidden_fields:
            return True
        return field_name == "example_input" and section in self.hidden_input_sections


DEFAULT_POLICY = MaskPolicy()


@dataclass(frozen=True)
class MaskedTask:
    """A task split into numbered sentences, with the hidden set H and the checklist."""

    task: Task
    sentences: tuple[Sentence, ...]
    hidden_ids: frozenset[int]
    visible_text: str
    checklist: tuple[ChecklistItem, ...]
    policy: MaskPolicy = field(default=DEFAULT_POLICY)

    def __hash__(self) -> int:  # cheap: equal masked tasks share their task id and policy
        return hash((self.task.id, self.policy.hidden_fields, self.policy.hidden_input_sections))

    @property
    def visible_ids(self) -> frozenset[int]:
        """Ids of the sentences the assistant sees."""
        return frozenset(s.id for s in self.sentences if not s.hidden)

    @cached_property
    def hidden_sentences(self) -> tuple[Sentence, ...]:
        """The hidden sentences in document order."""
        return tuple(s for s in self.sentences if s.hidden)

    def numbered_document(self, *, mark_hidden: bool = True) -> str:
        """The whole document as ``[id] (field) text`` lines, as the LLM user oracle sees it."""
        lines = []
        for s in self.sentences:
            tag = f"{s.field}, hidden" if (mark_hidden and s.hidden) else s.field
            section = f" {s.section}:" if s.section else ""
            lines.append(f"[{s.id}] ({tag}){section} {s.text}")
        return "\n".join(lines)


def _field_units(task: Task, name: str) -> list[tuple[int, str, str]]:
    """(group, section, sentence) units of one field, in document order."""
    text = getattr(task, name)
    units: list[tuple[int, str, str]] = []
    if name in BULLET_FIELDS:
        for group, (section, desc) in enumerate(parse_bullets(text)):
            parts = split_sentences(desc)
            if section:  # the bullet's name opens its first sentence: "Timeline: A table ..."
                parts = [f"{section}: {parts[0]}" if parts else section, *parts[1:]]
            units.extend((group, section, part) for part in parts)
    elif name == "example_input":
        for group, (section, body) in enumerate(parse_input_sections(text)):
            units.extend((group, section, s) for s in split_sentences(body))
    else:
        units.extend((0, "", s) for s in split_sentences(text))
    return units


def _groups(sentences: tuple[Sentence, ...], name: str) -> list[list[Sentence]]:
    groups: dict[int, list[Sentence]] = {}
    for s in sentences:
        if s.field == name:
            groups.setdefault(s.group, []).append(s)
    return list(groups.values())


def _render_visible(sentences: tuple[Sentence, ...]) -> str:
    blocks: list[str] = []
    for name in VISIBLE_ORDER:
        lines: list[str] = []
        for group in _groups(sentences, name):
            shown = [s for s in group if not s.hidden]
            if not shown:
                continue
            body = " ".join(s.text for s in shown)
            if name in BULLET_FIELDS:
                lines.append(f"* {body}")
            elif name == "example_input" and shown[0].section:
                lines.append(f"**{shown[0].section}:** {body}")
            else:
                lines.append(body)
        if lines:
            separator = "\n\n" if name == "example_input" else "\n"
            blocks.append(f"{FIELD_TITLES[name]}:\n{separator.join(lines)}")
    return "\n\n".join(blocks)


def mask(task: Task, policy: MaskPolicy = DEFAULT_POLICY) -> MaskedTask:
    """Split ``task`` into numbered sentences and hide what ``policy`` says.

    Raises:
        TaskFormatError: (a ``ValueError``) the policy hides nothing in this task (H would be
            empty), or the output spec and notes give no checklist item.
    """
    sentences: list[Sentence] = []
    for name in FIELDS:
        for group, section, text in _field_units(task, name):
            hidden = policy.hides(name, section)
            sentences.append(Sentence(len(sentences), text, name, section, hidden, group))
    frozen = tuple(sentences)
    hidden_ids = frozenset(s.id for s in frozen if s.hidden)
    if not hidden_ids:
        raise TaskFormatError(
            f"task {task.id!r}: the mask policy hides nothing (fields {policy.hidden_fields} are "
            "empty), so there is nothing to ask about; fill them in or hide other fields"
        )
    checklist: list[ChecklistItem] = []
    for bullet in _groups(frozen, "output_spec"):
        text = " ".join(s.text for s in bullet)
        checklist.append(
            ChecklistItem(len(checklist), text, "output_spec", tuple(s.id for s in bullet))
        )
    for s in frozen:
        if s.field == "notes":
            checklist.append(ChecklistItem(len(checklist), s.text, "notes", (s.id,)))
    if not checklist:
        raise TaskFormatError(
            f"task {task.id!r} has no output-spec bullet and no notes, so there is no checklist "
            "to judge the outline against"
        )
    return MaskedTask(
        task=task,
        sentences=frozen,
        hidden_ids=hidden_ids,
        visible_text=_render_visible(frozen),
        checklist=tuple(checklist),
        policy=policy,
    )
