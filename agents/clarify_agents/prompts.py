"""One prompt format for every LLM questioner (API chat models, local models, the PPO policy).

:func:`observation_to_messages` turns the env's observation (see :mod:`clarify_gym.dialogue`)
into chat messages: the system prompt, the task as the first user message, then the dialogue as
alternating assistant questions and user answers. A policy trained with PPO therefore sees, at
benchmark time, exactly the chat it was trained on. :func:`parse_reply` turns what a model
really emits into one question or ``STOP``.
"""

from __future__ import annotations

import re

from clarify_gym.dialogue import STOP, parse_observation, strip_thinking

__all__ = [
    "SMOLLM2_REPLY_PREFIX",
    "SYSTEM_PROMPT",
    "observation_to_messages",
    "parse_reply",
    "task_message",
]

SYSTEM_PROMPT = (
    "You are an assistant about to write a document for a person. Their request leaves out much "
    "of what they know: how experts do this task, which sections the document must have, and "
    "their constraints. Before writing, ask the person questions to find out what they know "
    "but did not say. Ask exactly one short, specific question per turn, about something that "
    "is not already in the request. Do not repeat a question. When you know enough, or no "
    "questions are left, reply with the single word STOP. Reply with the question only."
)

#: The reply prefill (the text every reply starts with, ending the prompt) of the ``smollm2``
#: agent and the ``smollm2-135m`` PPO preset. Without it, greedy SmolLM2-135M answers instead of
#: asking: 58 of its 60 test replies were "I'm ready to help. What's your first question?" or
#: the like. With it, its replies are questions about the task (docs/training.md).
SMOLLM2_REPLY_PREFIX = "To write this well, I need to know: what"


def task_message(visible_task: str, max_questions: int | None = None) -> str:
    """The first user message: the request as the person typed it, plus the budget."""
    budget = f" You may ask at most {max_questions} questions." if max_questions else ""
    return f"{visible_task}\n\nAsk me your first question, or reply STOP.{budget}"


def observation_to_messages(
    observation: str, *, system_prompt: str = SYSTEM_PROMPT
) -> list[dict[str, str]]:
    """Chat messages for an env observation.

    >>> obs = ("## Task\\nWrite a memo.\\n\\n## Conversation\\nAssistant: Who reads it?\\n"
    ...        "User: The partner.\\n\\n## Status\\nQuestions asked: 1 of 5. Ask one question, or reply STOP.")
    >>> [m["role"] for m in observation_to_messages(obs)]
    ['system', 'user', 'assistant', 'user']
    >>> observation_to_messages(obs)[-1]["content"]
    'The partner.'
    """
    parsed = parse_observation(observation)
    messages = [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": task_message(parsed.visible_task, parsed.max_questions)},
    ]
    for question, answer in parsed.exchanges():
        messages.append({"role": "assistant", "content": question})
        messages.append({"role": "user", "content": answer})
    return messages


_PREFIX = re.compile(
    r"^\s*(?:[-*#>\d.)\s]*)?(?:\*\*)?(?:question|q|assistant|clarifying question)\s*\d*\s*(?:\*\*)?\s*[:.)-]\s*(?:\*\*)?",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^\s*(?:[-*•>]+|\(?\d{1,2}[.)]|#+)\s+")
# "Here's my question: ...", "My next question is: ..."
_LEAD_IN = re.compile(
    r"^(?!(?:what|which|who|whom|how|when|where|why|do|does|did|is|are|should|could|can|would|will)\b)"
    r"[^?:]{0,60}\bquestions?\b[^?:]{0,20}:\s*",
    re.IGNORECASE,
)
_DONE = re.compile(
    r"\b(?:enough information|enough to (?:start|begin|write)|ready to (?:start|begin|write)"
    r"|no (?:more|further) questions)\b",
    re.IGNORECASE,
)
_STOP_WORD = re.compile(r"^\W*stop\W*$", re.IGNORECASE)


def parse_reply(text: str, *, max_chars: int = 500) -> str:
    """One question (or ``"STOP"``) from a raw model reply.

    Drops thinking blocks (also an unclosed one, and everything before a lone closing tag),
    quotes, markdown, bullets and lead-ins like ``Question:`` or ``Here's my question:``; keeps
    the first question when the reply asks several. An empty reply, a bare "stop", a reply
    ending in STOP, or a statement without a question saying it has enough information gives
    ``STOP``.

    >>> parse_reply("<think>They want sections.</think>Question 1: Which sections do you need? Also, who reads it?")
    'Which sections do you need?'
    >>> parse_reply("  **STOP**  "), parse_reply(""), parse_reply("I have enough information now. STOP")
    ('STOP', 'STOP', 'STOP')
    >>> parse_reply('"What tone should I use?"')
    'What tone should I use?'
    >>> parse_reply("The user left out the audience.</think>\\n\\n- Who will read the report?")
    'Who will read the report?'
    >>> parse_reply("1. What is the audience?\\n2. How long should it be?")
    'What is the audience?'
    >>> parse_reply("Thanks, that helps. Here's my next question: are there constraints?")
    'are there constraints?'
    >>> parse_reply("<think>cut off by max_tokens"), parse_reply("I have enough to start writing.")
    ('STOP', 'STOP')
    """
    text = strip_thinking(text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or _STOP_WORD.match(text) or re.search(r"\bSTOP\W*$", text):
        return STOP
    if "?" not in text and _DONE.search(text):
        return STOP
    candidate = next((line for line in lines if "?" in line), lines[0])
    candidate = _BULLET.sub("", candidate)
    candidate = _PREFIX.sub("", candidate).strip().strip("\"'`*").strip()
    if "?" in candidate:
        candidate = candidate[: candidate.index("?") + 1]
        # keep only the last sentence before the question mark ("Thanks. Which tone?" -> "Which tone?")
        sentences = re.split(r"(?<=[.!])\s+(?=[A-Z])", candidate)
        candidate = _LEAD_IN.sub("", sentences[-1])
    candidate = candidate.strip().strip("\"'`*").strip()
    if not candidate or _STOP_WORD.match(candidate):
        return STOP
    return candidate[:max_chars]
