"""LLM writer, checklist judge and checklist builder against the fake server."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

import clarify_gym as cg
from clarify_gym.dialogue import Turn
from clarify_gym.writing import LexicalJudge, make_judge, make_writer
from clarify_gym.writing.llm import (
    LLMChecklistBuilder,
    LLMJudge,
    LLMWriter,
    judge_messages,
    writer_messages,
)

pytest.importorskip("openai")

TASK = cg.mask(cg.load_tasks("sample", split="test")[0])


def spoken_turns(n: int = 4) -> list[Turn]:
    """Turns whose answers say output-spec and notes sentences, as the offline user would."""
    env = gym.make("ProactiveGather-v0", tasks=[TASK.task])
    env.reset(seed=0)
    for s in [s for s in TASK.hidden_sentences if s.field != "procedure"][:n]:
        env.step(f"Could you tell me about this: {s.text}")
    return list(env.unwrapped.state.turns)


def test_factories_build_llm_parts(fake_llm):
    assert isinstance(make_writer("llm"), LLMWriter) and isinstance(make_judge("llm"), LLMJudge)
    assert make_judge("llm:judge-model").client.model() == "judge-model"
    with pytest.raises(ValueError, match="unknown checklist"):
        LLMJudge(checklist="vibes")


def test_writer_uses_the_answers_and_not_the_questions(fake_llm):
    turns = spoken_turns()
    stuffed = Turn(question="Include a section called Zebra Quokka Xylophone?", answer="No.")
    writer = LLMWriter()
    outline = writer.write(TASK, [*turns, stuffed])
    assert outline.startswith("# Outline:") and "Zebra Quokka" not in outline
    assert writer.last_usage["calls"] == 1
    prompt = writer_messages(TASK, turns)[1]["content"]
    assert TASK.visible_text in prompt and turns[0].answer in prompt
    said = " ".join(f"{t.question} {t.answer}" for t in turns)
    for s in TASK.hidden_sentences:  # nothing hidden reaches the writer unless it was said
        if s.text.split(": ", 1)[-1].rstrip(".") not in said:
            assert s.text.split(": ", 1)[-1] not in prompt


def test_judge_one_call_per_outline_and_agrees_with_its_checklist(fake_llm):
    outline = LLMWriter().write(TASK, spoken_turns())
    fake_llm.reset_stats()
    verdict = LLMJudge().judge(TASK, outline)
    assert fake_llm.stats.by_role == {"judge": 1}
    assert verdict.met == LexicalJudge().judge(TASK, outline).met  # the fake judges lexically
    assert verdict.score == sum(verdict.met) / len(TASK.checklist) > 0
    assert verdict.usage["calls"] == 1 and verdict.error is None
    content = judge_messages([i.text for i in TASK.checklist], outline)[1]["content"]
    n, last = len(TASK.checklist), " ".join(TASK.checklist[-1].text.split())
    assert content.startswith("Checklist:\n1. ") and f"\n{n}. {last}\n\nOutline:\n<<<\n" in content


def test_judge_reply_unusable_after_repair_is_a_zero_verdict_with_error(fake_llm):
    env = gym.make("ProactiveGather-v0", tasks=[TASK.task], writer="llm", judge="llm")
    env.reset(seed=0)
    fake_llm.inject("malformed_json", times=2, role="judge")
    *_, info = env.step("STOP")
    assert (
        info["judge_error"] and info["eval/checklist_score"] == 0.0 and info["checklist_met"] == ()
    )
    assert info["llm/calls"] == 3  # the writer, the judge and its repair


def test_wrong_number_of_verdicts_is_repaired(fake_llm, monkeypatch):
    n = len(TASK.checklist)
    replies = iter([json.dumps({"met": [True] * (n + 2)}), json.dumps({"met": [True] * n})])
    monkeypatch.setattr(fake_llm.responder, "reply", lambda messages: ("judge", next(replies)))
    verdict = LLMJudge().judge(TASK, "anything")
    assert verdict.score == 1.0 and verdict.usage["calls"] == 2


def test_checklist_builder_makes_atomic_items_with_sources(fake_llm):
    builder = LLMChecklistBuilder()
    items = builder.build(TASK)
    allowed = {s.id for s in TASK.sentences if s.field in ("output_spec", "notes")}
    assert len(items) >= len(TASK.checklist)
    assert all(item.sentence_ids and set(item.sentence_ids) <= allowed for item in items)
    assert [i.id for i in items] == list(range(len(items)))
    fake_llm.reset_stats()
    assert builder.build(TASK) == items and fake_llm.stats.requests == 0  # built once per task
    judge = LLMJudge(checklist=builder)
    verdict = judge.judge(TASK, "\n".join(item.text for item in items))
    assert len(verdict.met) == len(items) and verdict.score == 1.0
    # the verdict names the items it judged (they are not the task's), the env passes them on
    assert verdict.items == tuple(item.text for item in items)
    assert LLMJudge().judge(TASK, "anything").items is None  # the task's own checklist
    env = gym.make("ProactiveGather-v0", tasks=[TASK.task], judge=judge)
    env.reset(seed=0)
    *_, info = env.step("STOP")
    assert info["checklist_items"] == list(verdict.items)


def test_llm_env_end_to_end_scores_like_the_offline_parts(fake_llm):
    questions = [t.question for t in spoken_turns(5)]
    scores = {}
    for parts in (("template", "lexical"), ("llm", "llm")):
        env = gym.make("ProactiveGather-v0", tasks=[TASK.task], writer=parts[0], judge=parts[1])
        env.reset(seed=0)
        for q in questions:
            *_, info = env.step(q)
        scores[parts] = info["eval/checklist_score"]
    assert scores[("llm", "llm")] == pytest.approx(scores[("template", "lexical")], abs=0.15)
    assert scores[("llm", "llm")] > 0.2
