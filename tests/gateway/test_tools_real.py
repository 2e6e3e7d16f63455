"""Tools and structured output on the real default chat model, through each family's official
client, and through LangChain and the OpenAI Agents SDK, against a live ``hearth serve``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import jsonschema
import ollama
import openai
import pytest
from pydantic import BaseModel, Field

from tests.helpers.live import LiveServer

pytestmark = pytest.mark.real

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1, "maxLength": 30},
        "unit": {"enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": WEATHER},
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server of this module's own. Greedy answers depend on where earlier requests left
    their KV cells (the sums' order), so on the session's shared server SmolLM2's tool calls
    would change with the order the suite runs in; here they start from the same state."""
    root = tmp_path_factory.mktemp("tools-real")
    with LiveServer(root / "data", "--no-auth", ready_timeout=300) as server:
        yield server


@pytest.fixture(scope="module")
def sdk(real_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=real_server.url + "/v1", api_key="no-auth", max_retries=0, timeout=120)


def test_openai_tool_calls_parse_and_validate_streaming_or_not(sdk: openai.OpenAI) -> None:
    reply = sdk.chat.completions.create(
        model="default", messages=ASK, tools=[TOOL], tool_choice="required", max_tokens=120
    )  # type: ignore[arg-type,list-item]
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    for call in choice.message.tool_calls:
        assert call.function.name == "get_weather"  # type: ignore[union-attr]
        jsonschema.validate(json.loads(call.function.arguments), WEATHER)  # type: ignore[union-attr]
    stream = sdk.chat.completions.create(
        model="default", messages=ASK, tools=[TOOL], tool_choice="required", max_tokens=120, stream=True
    )  # type: ignore[arg-type,list-item]
    arguments, names, finish = "", [], None
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        for part in delta.tool_calls or []:
            if part.function and part.function.name:
                names.append(part.function.name)
            if part.index == 0 and part.function and part.function.arguments:
                arguments += part.function.arguments
        finish = chunk.choices[0].finish_reason or finish
    assert names and names[0] == "get_weather" and finish == "tool_calls"
    jsonschema.validate(json.loads(arguments), WEATHER)


def test_openai_structured_output_validates_at_temperature_one(sdk: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 20},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "minItems": 1, "maxItems": 3},
            "nickname": {"type": "string", "maxLength": 10},
        },
        "required": ["name", "age", "tags"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}}
    for seed in range(6):
        reply = sdk.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "Invent a person."}], response_format=fmt,  # type: ignore[arg-type]
            temperature=1.0, seed=seed, max_tokens=150,
        )  # fmt: skip
        jsonschema.validate(json.loads(reply.choices[0].message.content or ""), schema)


def test_anthropic_tool_use_streaming(real_server: LiveServer) -> None:
    client = anthropic.Anthropic(base_url=real_server.url, api_key="no-auth", max_retries=0)
    tools = [{"name": "get_weather", "description": "Current weather in a city", "input_schema": WEATHER}]
    with client.messages.stream(
        model="default",
        max_tokens=120,
        messages=ASK,
        tools=tools,
        tool_choice={"type": "any"},  # type: ignore[arg-type]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and "content_block_delta" in kinds
    uses = [b for b in final.content if b.type == "tool_use"]
    assert uses and uses[0].name == "get_weather"
    jsonschema.validate(uses[0].input, WEATHER)


def test_ollama_tools_and_format(real_server: LiveServer) -> None:
    client = ollama.Client(host=real_server.url)
    tool = {
        "type": "function",
        "function": {"name": "get_weather", "description": "Current weather", "parameters": WEATHER},
    }
    reply = client.chat(model="default", messages=ASK, tools=[tool], options={"num_predict": 120})
    for call in reply.message.tool_calls or []:  # auto: the model may answer in text instead
        jsonschema.validate(dict(call.function.arguments), WEATHER)
    structured = client.chat(model="default", messages=[{"role": "user", "content": "A city and its country."}],
                             format={"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}}, "required": ["city"]},
                             options={"num_predict": 60})  # fmt: skip
    assert isinstance(json.loads(structured.message.content or "")["city"], str)


def test_responses_function_call_item(sdk: openai.OpenAI) -> None:
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "Current weather",
        "parameters": WEATHER,
        "strict": True,
    }
    response = sdk.responses.create(
        model="default",
        input="What is the weather in Paris?",
        tools=[tool],
        tool_choice="required",
        max_output_tokens=120,
    )  # type: ignore[list-item]
    calls = [item for item in response.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    jsonschema.validate(json.loads(calls[0].arguments), WEATHER)
    followup = sdk.responses.create(
        model="default", previous_response_id=response.id, max_output_tokens=40,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny, 21 C"}],
    )  # fmt: skip
    assert followup.status == "completed" and followup.output_text


class City(BaseModel):
    name: str = Field(max_length=30)
    country: str = Field(max_length=30)
    population_millions: float = Field(ge=0, le=100)


def test_langchain_with_structured_output(real_server: LiveServer) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        base_url=real_server.url + "/v1", api_key="no-auth", model="default", max_tokens=120, max_retries=0
    )  # type: ignore[arg-type]
    city = llm.with_structured_output(City).invoke("Tell me about Paris.")
    assert isinstance(city, City) and city.name


def _weather_run(
    server: LiveServer, api: str, instructions: str, max_turns: int, **agent_options: Any
) -> tuple[Any, list[str]]:
    """One OpenAI Agents SDK run of a weather agent (a required call first, on the ``api``
    model class), and the cities its tool was called with."""
    from agents import (
        Agent,
        ModelSettings,
        OpenAIChatCompletionsModel,
        OpenAIResponsesModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )

    set_tracing_disabled(True)
    seen: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        seen.append(city)
        return f"It is sunny and 21 C in {city}."

    client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="no-auth", max_retries=0)
    model_class = OpenAIResponsesModel if api == "responses" else OpenAIChatCompletionsModel
    agent = Agent(
        name="weather",
        instructions=instructions,
        tools=[get_weather],
        model=model_class(model="default", openai_client=client),
        model_settings=ModelSettings(tool_choice="required", max_tokens=200),
        **agent_options,
    )
    return asyncio.run(Runner.run(agent, "What is the weather in Paris?", max_turns=max_turns)), seen


USE_THE_TOOL = "Use the get_weather tool to answer questions about the weather."


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_an_openai_agents_sdk_run_calls_a_function_tool(real_server: LiveServer, api: str) -> None:
    # The tool's answer is final here: what is tested is the call on each API.
    result, seen = _weather_run(real_server, api, USE_THE_TOOL, 4, tool_use_behavior="stop_on_first_tool")
    assert seen, "the agent never called its tool"
    assert result.final_output == f"It is sunny and 21 C in {seen[0]}."


def test_an_agents_sdk_tool_loop_ends_with_a_text_answer(real_server: LiveServer) -> None:
    """The loop users run: a required call first, then the SDK's reset to ``auto``, and the run
    ends in text within three model turns (the repeated call is answered instead, the result
    is in the conversation), not in MaxTurnsExceeded."""
    instructions = "Call the tool to get the facts, then answer the question in one short sentence."
    result, seen = _weather_run(real_server, "responses", instructions, 3)
    assert seen, "the agent never called its tool"
    assert (
        len(result.raw_responses) <= 3
        and isinstance(result.final_output, str)
        and result.final_output.strip()
    )
    assert "<tool_call" not in result.final_output
