"""A bank of generic clarifying questions: what experts usually leave unsaid.

Used by the generic and random baselines and, as a discrete action set, by the
``QuestionBankActions`` wrapper. Each question targets one kind of unstated knowledge: the
procedure, the required output sections, length, format, audience, constraints, sources,
evaluation criteria. None mentions anything specific to a task.
"""

from __future__ import annotations

__all__ = ["GENERIC_QUESTIONS", "TOP_GENERIC_QUESTIONS"]

GENERIC_QUESTIONS: tuple[str, ...] = (
    # procedure
    "What steps or procedure should I follow to do this task?",
    "Which method, framework or standard should the analysis use?",
    "What should I check or verify first, before writing?",
    "Are there thresholds, scores or criteria I should apply?",
    "In what order should the work be done?",
    # output structure
    "What sections must the output contain, and in what order?",
    "What should the first section of the output cover?",
    "Should any part of the output be a table or a numbered list?",
    "How long should the document be, in words or pages?",
    "How long should each section be?",
    "What format or template should the output follow?",
    "Should the output end with recommendations or next steps?",
    "Should the output include a summary, and how long?",
    # notes, constraints
    "Who is the audience, and what reading level or tone should I use?",
    "Are there constraints or things I must avoid?",
    "Are there legal, ethical or confidentiality rules to respect?",
    "Which sources, references or data should I cite?",
    "How will the result be evaluated or judged?",
    "What mistakes do people usually make with this kind of document?",
    "Is there a house style or naming convention to follow?",
    # less useful generic questions (a random policy has to learn to skip them)
    "Is there a deadline for this?",
    "Do you have any other preferences?",
    "Is there anything else I should know?",
    "Can you tell me more about the background?",
    "What is the main goal of this task?",
    "Who will sign off on the final version?",
    "Should I use British or American spelling?",
    "Do you want a draft first or the final version directly?",
)

#: The generic baseline's fixed order: one question per kind of unstated knowledge, best first.
TOP_GENERIC_QUESTIONS: tuple[str, ...] = (
    GENERIC_QUESTIONS[5],  # sections
    GENERIC_QUESTIONS[0],  # procedure
    GENERIC_QUESTIONS[13],  # audience, tone
    GENERIC_QUESTIONS[14],  # constraints
    GENERIC_QUESTIONS[8],  # length
    GENERIC_QUESTIONS[1],  # method
    GENERIC_QUESTIONS[7],  # tables, lists
    GENERIC_QUESTIONS[16],  # sources
)
