"""The end of an episode: a fixed writer drafts the outline, a judge scores it on the checklist.

* :mod:`clarify_gym.writing.base`: the :class:`Writer` and :class:`Judge` protocols and
  :class:`JudgeResult`;
* :mod:`clarify_gym.writing.template`: the offline :class:`TemplateWriter` and
  :class:`LexicalJudge` (the defaults);
* :mod:`clarify_gym.writing.llm`: the paper's LLM writer, judge and checklist builder.

:func:`make_writer` and :func:`make_judge` build them from the env's arguments.
"""

from __future__ import annotations

from clarify_gym.writing.base import Judge, JudgeResult, Writer
from clarify_gym.writing.template import LexicalJudge, TemplateWriter, render_outline

__all__ = [
    "Judge",
    "JudgeResult",
    "LexicalJudge",
    "TemplateWriter",
    "Writer",
    "make_judge",
    "make_writer",
    "render_outline",
]


def _llm_model(spec: str) -> str | None:
    """The model named in ``"llm:<model>"`` (``None`` for plain ``"llm"``)."""
    return spec.partition(":")[2] or None


def make_writer(spec: Writer | str) -> Writer:
    """``"template"``, ``"llm"`` / ``"llm:<model>"`` (:class:`~clarify_gym.writing.llm.LLMWriter`,
    configured from the environment), or a :class:`Writer` instance."""
    if isinstance(spec, str):
        if spec == "template":
            return TemplateWriter()
        if spec == "llm" or spec.startswith("llm:"):
            from clarify_gym.writing.llm import LLMWriter

            return LLMWriter(model=_llm_model(spec))
        raise ValueError(
            f"unknown writer {spec!r}; use 'template', 'llm', 'llm:<model>' or a Writer instance"
        )
    return spec


def make_judge(spec: Judge | str) -> Judge:
    """``"lexical"``, ``"llm"`` / ``"llm:<model>"`` (:class:`~clarify_gym.writing.llm.LLMJudge`
    on the task's checklist, configured from the environment), or a :class:`Judge` instance."""
    if isinstance(spec, str):
        if spec == "lexical":
            return LexicalJudge()
        if spec == "llm" or spec.startswith("llm:"):
            from clarify_gym.writing.llm import LLMJudge

            return LLMJudge(model=_llm_model(spec))
        raise ValueError(
            f"unknown judge {spec!r}; use 'lexical', 'llm', 'llm:<model>' or a Judge instance"
        )
    return spec
