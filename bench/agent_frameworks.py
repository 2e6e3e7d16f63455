"""One run of one task through each agent framework of ``bench/agents.py``, as its docs show it,
with only the base URL (and the key) pointing at Hearth. Each returns the run's ``Outcome``: the
model turns it took, its final text, and every call the model made, as the tool received it.

The first turn requires a tool call where the framework has its own way to say so (the Agents
SDK's ``tool_choice`` with its reset to ``auto`` after a call, the AI SDK's ``prepareStep``, a
LangGraph model chosen per state); later turns are ``auto``, so the run ends only when the model
chooses to answer. The Anthropic tool runner and pydantic-ai run with their defaults (``auto``
throughout) and the instructions alone."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from bench.agent_tasks import Outcome, Task, call_tool, recorded

MODEL = "default"
MAX_TOKENS = 256  # per model turn, in every framework (the Anthropic API requires one)
INSTRUCTIONS = "Call the tool to get the facts, then answer the question in one short sentence."
AISDK_DIR = Path.home() / ".cache" / "hearth" / "bench-aisdk"
AISDK_PACKAGES = ("ai@6", "@ai-sdk/openai-compatible@2", "zod@4")


def openai_agents(task: Task, seed: int, base: str, key: str, turns: int) -> Outcome:
    """The OpenAI Agents SDK on the Responses API (its default model class), default settings."""
    import openai
    from agents import Agent, FunctionTool, ModelSettings, OpenAIResponsesModel, Runner, set_tracing_disabled
    from agents.exceptions import MaxTurnsExceeded

    set_tracing_disabled(True)
    outcome = Outcome()

    async def invoke(_context: Any, arguments: str) -> str:
        parsed = json.loads(arguments)
        outcome.calls.append((task.tool, parsed))
        return call_tool(task, parsed)

    tool = FunctionTool(task.tool, task.description, task.parameters, invoke)
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    agent = Agent(
        name=task.name,
        instructions=INSTRUCTIONS,
        tools=[tool],
        model=OpenAIResponsesModel(model=MODEL, openai_client=client),
        model_settings=ModelSettings(
            tool_choice="required", max_tokens=MAX_TOKENS, extra_body={"seed": seed}
        ),
    )
    try:
        result = asyncio.run(Runner.run(agent, task.question, max_turns=turns))
        outcome.turns, outcome.text = len(result.raw_responses), str(result.final_output or "")
    except MaxTurnsExceeded as exc:
        outcome.turns, outcome.error = turns + 1, f"MaxTurnsExceeded: {exc}"
    return outcome


def anthropic_runner(task: Task, seed: int, base: str, key: str, turns: int) -> Outcome:
    """The Anthropic SDK's tool runner (``client.beta.messages.tool_runner``), which runs the
    tools and calls the model again until it stops asking for tools."""
    import anthropic
    from anthropic import beta_tool

    outcome = Outcome()
    invoke = recorded(task, outcome)
    tool = beta_tool(invoke, name=task.tool, description=task.description, input_schema=task.parameters)
    client = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
    runner = client.beta.messages.tool_runner(
        model=MODEL,
        max_tokens=MAX_TOKENS,
        system=INSTRUCTIONS,
        messages=[{"role": "user", "content": task.question}],
        tools=[tool],
        max_iterations=turns + 1,
    )
    last: Any = None
    for message in runner:
        outcome.turns, last = outcome.turns + 1, message
        if outcome.turns > turns:
            break
    if last is not None and last.stop_reason != "tool_use":
        outcome.text = "".join(block.text for block in last.content if block.type == "text")
    return outcome


def pydantic_ai(task: Task, seed: int, base: str, key: str, turns: int) -> Outcome:
    """pydantic-ai with its defaults: an OpenAI chat model at Hearth's URL, one tool from a schema."""
    from pydantic_ai import Agent, Tool
    from pydantic_ai.exceptions import AgentRunError
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider
    from pydantic_ai.usage import UsageLimits

    outcome = Outcome()
    invoke = recorded(task, outcome)
    model = OpenAIChatModel(MODEL, provider=OpenAIProvider(base_url=base + "/v1", api_key=key))
    tool = Tool.from_schema(invoke, name=task.tool, description=task.description, json_schema=task.parameters)
    agent = Agent(model, instructions=INSTRUCTIONS, tools=[tool])
    try:
        result = agent.run_sync(
            task.question,
            usage_limits=UsageLimits(request_limit=turns),
            model_settings={"seed": seed, "max_tokens": MAX_TOKENS},
        )
        outcome.turns, outcome.text = result.usage.requests, str(result.output)
    except AgentRunError as exc:
        outcome.turns, outcome.error = turns + 1, f"{type(exc).__name__}: {exc}"
    return outcome


def langgraph(task: Task, seed: int, base: str, key: str, turns: int) -> Outcome:
    """LangGraph's prebuilt ReAct agent over LangChain's ChatOpenAI."""
    from langchain_core.messages import AIMessage, ToolMessage
    from langchain_core.tools import StructuredTool
    from langchain_openai import ChatOpenAI
    from langgraph.errors import GraphRecursionError
    from langgraph.prebuilt import create_react_agent

    outcome = Outcome()
    invoke = recorded(task, outcome)
    tool = StructuredTool.from_function(
        invoke, name=task.tool, description=task.description, args_schema=task.parameters
    )
    model = ChatOpenAI(
        model=MODEL,
        base_url=base + "/v1",
        api_key=key,
        seed=seed,
        max_retries=0,
        max_tokens=MAX_TOKENS,  # type: ignore[arg-type]
    )
    first, later = model.bind_tools([tool], tool_choice="required"), model.bind_tools([tool])

    def pick(state: Any, _runtime: Any) -> Any:  # a tool call first, the model's choice after
        return later if any(isinstance(m, ToolMessage) for m in state["messages"]) else first

    agent = create_react_agent(pick, [tool], prompt=INSTRUCTIONS)
    try:
        # Each model turn but the last is followed by a tools step: 2 * turns - 1 steps.
        state = agent.invoke({"messages": [("user", task.question)]}, {"recursion_limit": 2 * turns})
    except GraphRecursionError as exc:
        outcome.turns, outcome.error = turns + 1, f"GraphRecursionError: {exc}"
        return outcome
    replies = [m for m in state["messages"] if isinstance(m, AIMessage)]
    outcome.turns = len(replies)
    # The graph's own "Sorry, need more steps" at its step limit is not the model's answer.
    if replies and not replies[-1].tool_calls and replies[-1].response_metadata.get("finish_reason"):
        outcome.text = str(replies[-1].content)
    return outcome


def vercel_ai_sdk(task: Task, seed: int, base: str, key: str, turns: int) -> Outcome:
    """The Vercel AI SDK's multi-step loop (``generateText`` with ``stopWhen: stepCountIs``) in Node."""
    script = AISDK_DIR / "agents_aisdk.mjs"
    script.write_text((Path(__file__).parent / "agents_aisdk.mjs").read_text())
    job = {"base": base + "/v1", "key": key, "model": MODEL, "seed": seed, "turns": turns, "maxTokens": MAX_TOKENS,
           "instructions": INSTRUCTIONS, "question": task.question, "tool": task.tool,
           "description": task.description, "parameters": task.parameters, "task": task.name}  # fmt: skip
    done = subprocess.run(
        ["node", str(script)], input=json.dumps(job), capture_output=True, text=True, timeout=600,
        env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )  # fmt: skip
    if done.returncode != 0:
        return Outcome(error=f"node exited {done.returncode}: {done.stderr[-400:]}")
    reply = json.loads(done.stdout.strip().splitlines()[-1])
    return Outcome(
        turns=reply["steps"],
        text=reply["text"] if reply["finishReason"] != "tool-calls" else "",
        calls=[(c["toolName"], c["input"]) for c in reply["calls"]],
    )


def install_aisdk() -> None:
    """The AI SDK in a folder of its own under ~/.cache (npm, once)."""
    if (AISDK_DIR / "node_modules" / "ai").is_dir():
        return
    AISDK_DIR.mkdir(parents=True, exist_ok=True)
    (AISDK_DIR / "package.json").write_text(
        '{"name": "hearth-bench-aisdk", "private": true, "type": "module"}\n'
    )
    subprocess.run(["npm", "install", "--silent", *AISDK_PACKAGES], cwd=AISDK_DIR, check=True)


FRAMEWORKS = {
    "openai-agents": openai_agents,
    "anthropic-tool-runner": anthropic_runner,
    "pydantic-ai": pydantic_ai,
    "vercel-ai-sdk": vercel_ai_sdk,
    "langgraph": langgraph,
}
