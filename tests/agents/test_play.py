from __future__ import annotations

import io
import subprocess
import sys

import gymnasium as gym
from clarify_bench.cli import main

import clarify_gym as cg
from clarify_gym.human import HumanUser


def scripted(monkeypatch, lines: list[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(f"{line}\n" for line in lines)))


def test_play_as_assistant(monkeypatch, capsys):
    task = cg.mask(next(t for t in cg.load_tasks("sample") if t.id == "cg-software-02"))
    hidden = task.hidden_sentences[0].text
    scripted(monkeypatch, ["What sections must the output contain?", f"Tell me: {hidden}", "STOP"])
    assert main(["play", "--task", "cg-software-02"]) == 0
    out = capsys.readouterr().out
    assert task.visible_text.splitlines()[0] in out
    assert out.count("User: ") == 2
    assert "## Outline the writer drafted" in out and "## Checklist" in out
    assert "env/questions          2" in out
    assert "[x]" in out  # the answers put checklist items in the outline
    # issue 28: no reward or cited id before the end (a reward gives a share of H)
    before_end = out.split("## Outline the writer drafted")[0]
    assert "reward" not in before_end.lower() and "cited" not in before_end.lower()
    assert "## Reward of each question" in out and "cited sentences:" in out


def test_play_as_assistant_end_of_input_is_stop(monkeypatch, capsys):
    scripted(monkeypatch, [])
    assert main(["play", "--task", "cg-law-03"]) == 0
    assert "env/questions          0" in capsys.readouterr().out


def test_play_as_user_answers_an_agent(monkeypatch, capsys):
    task = cg.mask(next(t for t in cg.load_tasks("sample") if t.id == "cg-law-03"))
    section = next(s for s in task.hidden_sentences if s.field == "output_spec")
    scripted(monkeypatch, [section.text, "", "no idea", "nothing", "done"])
    assert main(["play", "--as", "user", "--agent", "generic", "--task", "cg-law-03"]) == 0
    out = capsys.readouterr().out
    assert "What you know but did not say" in out and section.text in out
    assert out.count("Assistant (question ") == 5  # generic asks until the budget ends
    assert "estimated" in out
    new_info = next(line for line in out.splitlines() if "env/new_info" in line)
    assert int(new_info.split()[-1]) >= 1  # the pasted hidden sentence was matched


def test_human_user_cites_what_the_answer_matches():
    shown: list[str] = []
    answer = "The discussion must be organised in IRAC form, a subheading for each clause."
    replies = iter(["", answer])
    user = HumanUser(read=lambda prompt: next(replies), show=shown.append)
    env = gym.make("ProactiveGather-v0", tasks="sample", user=user)
    env.reset(seed=0, options={"task_id": "cg-law-03"})
    _, reward, *_, info = env.step("How should the analysis be structured?")
    turns = env.unwrapped.state.turns
    assert turns[-1].cited_ids == () and reward == 0.0  # an empty answer cites nothing
    assert "How should the analysis be structured?" in shown[0]
    _, reward, *_, info = env.step("Any structure?")
    assert info["answer"] == answer
    task = env.unwrapped.state.task
    discussion = next(s.id for s in task.hidden_sentences if s.text.startswith("Discussion:"))
    assert discussion in turns[-1].cited_ids and reward > 0


def test_play_subprocess_with_piped_stdin():
    result = subprocess.run(
        [sys.executable, "-m", "clarify_bench.cli", "play", "--task", "cg-law-03"],
        input="What steps should I follow?\nSTOP\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "User: " in result.stdout and "eval/checklist_score" in result.stdout
