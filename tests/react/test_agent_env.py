"""The episode environment, driven by hand-written agent steps (real tools, real parser)."""
from reference.react.agent import ReactEnv, cut_step
from reference.model import encode


def test_observations_are_injected_after_actions():
    env = ReactEnv("What is pi times 2?")
    rec = env.step("Thought: I need pi.\nAction: lookup\nAction Input: pi\n")
    assert rec.observation == "3.14159"
    assert env.prompt().endswith("Action Input: pi\nObservation: 3.14159\n")
    rec = env.step("Thought: multiply.\nAction: calculator\nAction Input: 3.14159 * 2\n")
    assert rec.observation == "6.28318"
    env.step("Thought: I have the answer.\nFinal Answer: 6.28318\n")
    assert env.done and env.result.answer == "6.28318"
    assert env.result.stop_reason == "final_answer"


def test_unknown_tool_becomes_error_observation():
    env = ReactEnv("q")
    rec = env.step("Action: web_search\nAction Input: pi\n")
    assert rec.observation.startswith("Error: unknown tool") and not env.done


def test_unparsable_step_becomes_error_observation():
    env = ReactEnv("q")
    rec = env.step("blah blah\n")
    assert rec.observation.startswith("Error:") and not env.done
    assert env.prompt().endswith("blah blah\nObservation: " + rec.observation + "\n")


def test_max_steps_ends_the_episode_with_its_stop_reason():
    env = ReactEnv("q", max_steps=3)
    for _ in range(3):
        env.step("Action: lookup\nAction Input: e\n")
    assert env.done and env.result.stop_reason == "max_steps" and env.result.answer is None


def test_step_cut_mid_line_gets_a_newline_before_the_observation():
    env = ReactEnv("q")
    rec = env.step("Action: lookup\nAction Input: e")
    assert env.injection(rec) == "\nObservation: 2.71828\n"


def test_agent_written_observation_line_is_cut():
    text = "Action: lookup\nAction Input: pi\nObservation: 99\n"
    keep, n = cut_step(encode(text))
    assert keep == "Action: lookup\nAction Input: pi\n" and n == len(encode(keep))
