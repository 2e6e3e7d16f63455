"""The small agent tasks of ``bench/agents.py``: each one tool, one question, one checkable answer."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jsonschema


@dataclass(frozen=True)
class Task:
    name: str
    question: str
    tool: str
    description: str
    parameters: dict[str, Any]
    run: Callable[..., str]
    answer: str  # what a correct final answer mentions (reported, not part of the goal)


@dataclass
class Outcome:
    """One run of one task in one framework."""

    turns: int = 0  # model requests the framework made
    text: str = ""  # the final text answer, empty when the run ended without one
    calls: list[tuple[str, Any]] = field(default_factory=list)  # every call the model made
    error: str = ""

    def ended(self, within: int) -> bool:
        return bool(self.text.strip()) and not self.error and self.turns <= within


def _weather(city: str) -> str:
    return f"It is sunny and 21 C in {city}."


_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
}  # fmt: skip


def _calculate(expression: str) -> str:
    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return float(_OPS[type(node.op)](value(node.left), value(node.right)))
        raise ValueError("only + - * / on numbers")

    try:
        result = value(ast.parse(expression, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError) as exc:
        return f"error: {exc}"
    return f"{result:g}"


_UNITS = {
    ("km", "miles"): 0.621371,
    ("miles", "km"): 1.609344,
    ("kg", "lb"): 2.204623,
    ("lb", "kg"): 0.453592,
}


def _convert(value: float, from_unit: str, to_unit: str) -> str:
    factor = _UNITS.get((from_unit.strip().lower(), to_unit.strip().lower()))
    if factor is None:
        return f"error: cannot convert {from_unit} to {to_unit}; known: km, miles, kg, lb"
    return f"{value} {from_unit} = {value * factor:.2f} {to_unit}"


_CAPITALS = {"australia": "Canberra", "canada": "Ottawa", "japan": "Tokyo", "brazil": "Brasília"}


def _capital(country: str) -> str:
    return _CAPITALS.get(country.strip().lower(), f"unknown country: {country}")


def _object(**properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


TASKS = (
    Task("weather", "What is the weather in Paris?", "get_weather", "Get the current weather in a city.",
         _object(city={"type": "string", "description": "The city"}), _weather, "sunny"),
    Task("arithmetic", "What is 23 times 47? Use the calculator.", "calculate",
         "Evaluate an arithmetic expression such as 2 * (3 + 4).",
         _object(expression={"type": "string", "description": "The expression"}), _calculate, "1081"),
    Task("conversion", "How many miles are 42 km?", "convert_units", "Convert a value between units (km, miles, kg, lb).",
         _object(value={"type": "number"}, from_unit={"type": "string"}, to_unit={"type": "string"}), _convert, "26"),
    Task("lookup", "What is the capital of Australia?", "lookup_capital", "Look up the capital city of a country.",
         _object(country={"type": "string", "description": "The country"}), _capital, "Canberra"),
)  # fmt: skip


def valid_call(task: Task, name: str, arguments: Any) -> bool:
    """The right tool, with arguments its schema accepts."""
    if name != task.tool or not isinstance(arguments, dict):
        return False
    return jsonschema.Draft202012Validator(task.parameters).is_valid(arguments)


def call_tool(task: Task, arguments: dict[str, Any]) -> str:
    try:
        return task.run(**arguments)
    except TypeError as exc:  # arguments the schema would refuse: the tool says so, as a real one would
        return f"error: {exc}"


def recorded(task: Task, outcome: Outcome) -> Callable[..., str]:
    """The task's tool as a framework calls it with keyword arguments, each call noted."""

    def invoke(**arguments: Any) -> str:
        outcome.calls.append((task.tool, arguments))
        return call_tool(task, arguments)

    return invoke
