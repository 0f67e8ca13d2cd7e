from __future__ import annotations

import gymnasium as gym
import pytest

import clarify_gym as cg
from clarify_gym.dialogue import Turn
from clarify_gym.writing import LexicalJudge, TemplateWriter, make_judge, make_writer

TASK = cg.mask(cg.load_tasks("sample", split="test")[0])


def test_outline_from_visible_and_answers_only_never_questions():
    writer = TemplateWriter()
    stuffed = " ".join(item.text for item in TASK.checklist)[:400]
    turns = [Turn(question=stuffed, answer="I don't think I have anything to add on that.")]
    outline = writer.write(TASK, turns)
    assert stuffed not in outline
    assert (
        LexicalJudge().judge(TASK, outline).score
        == LexicalJudge().judge(TASK, writer.write(TASK, [])).score
    )


def test_judge_scores_what_the_user_said():
    env = gym.make("ProactiveGather-v0", tasks=[TASK.task])
    env.reset(seed=0)
    checklist_sentences = [s for s in TASK.hidden_sentences if s.field != "procedure"]
    for s in checklist_sentences[:5]:
        *_, info = env.step(f"Could you tell me about this: {s.text}")
    assert info["eval/checklist_score"] > 0.3
    passive = gym.make("ProactiveGather-v0", tasks=[TASK.task])
    passive.reset(seed=0)
    *_, stop_info = passive.step("STOP")
    assert info["eval/checklist_score"] > stop_info["eval/checklist_score"]


def test_judge_item_met_exactly_when_enough_words_present():
    judge = LexicalJudge(threshold=0.6)
    item = TASK.checklist[0]
    assert judge.judge(TASK, item.text).met[0]
    assert not judge.judge(TASK, "Nothing relevant here at all.").met[0]
    verdict = judge.judge(TASK, "\n".join(i.text for i in TASK.checklist))
    assert verdict.score == 1.0 and all(verdict.met)
    with pytest.raises(ValueError, match="threshold"):
        LexicalJudge(threshold=0)


def test_factories():
    assert isinstance(make_writer("template"), TemplateWriter)
    assert isinstance(make_judge("lexical"), LexicalJudge)
    with pytest.raises(ValueError, match="unknown writer"):
        make_writer("shakespeare")
    with pytest.raises(ValueError, match="unknown judge"):
        make_judge("jury")
