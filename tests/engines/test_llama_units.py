"""Pieces of the llama.cpp engine that need no model: stop strings, UTF-8 streaming, chat
templates, prefix matching and the GGUF assembly marker."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from hearth.engines.llama.chat_template import ChatTemplate, normalise
from hearth.engines.llama.detokenize import IncrementalDetokenizer, PieceTable
from hearth.engines.llama.model_file import resolve_gguf
from hearth.engines.llama.sequence import common_prefix
from hearth.engines.llama.stops import StopFilter
from hearth.errors import InvalidRequest

# ---- stop strings -----------------------------------------------------------------------------


def _stream(stops: tuple[str, ...], pieces: list[str]) -> tuple[str, bool]:
    f = StopFilter(stops)
    out = "".join(f.push(p) for p in pieces)
    return (out if f.stopped else out + f.flush()), f.stopped


def test_stop_string_split_across_pieces_is_never_emitted() -> None:
    f = StopFilter(("</answer>",))
    assert f.push("The result</an") == "The result"  # "</an" might start the stop: held back
    assert f.push("swer> trailing") == ""
    assert f.stopped


def test_held_text_is_released_when_it_is_not_a_stop() -> None:
    f = StopFilter(("STOP",))
    assert f.push("a ST") == "a "
    assert f.push("ART") == "START"
    assert not f.stopped
    assert f.push("x ST") == "x "
    assert f.flush() == "ST"


@pytest.mark.parametrize(
    ("stops", "pieces", "expected"),
    [
        (("\n\n",), ["one\n", "\ntwo"], ("one", True)),
        (("ab", "b"), ["xab"], ("x", True)),  # earliest match wins
        (("bc", "abcd"), ["a", "b", "c"], ("a", True)),
        ((), ["free ", "text"], ("free text", False)),
        (("",), ["empty stops are ignored"], ("empty stops are ignored", False)),
        (("ll",), ["he", "l", "l", "o"], ("he", True)),
    ],
)
def test_stop_filter_cases(stops: tuple[str, ...], pieces: list[str], expected: tuple[str, bool]) -> None:
    assert _stream(stops, pieces) == expected


# ---- incremental UTF-8 ------------------------------------------------------------------------


class _Pieces(PieceTable):
    def __init__(self, table: dict[int, bytes]) -> None:
        self._table = table

    def piece(self, token: int) -> bytes:
        return self._table[token]


def test_detokenizer_holds_partial_characters() -> None:
    emoji = "😀".encode()  # 4 bytes, split over three tokens
    pieces = _Pieces({1: b"hi ", 2: emoji[:1], 3: emoji[1:3], 4: emoji[3:] + b"!", 5: "é".encode()[:1]})
    d = IncrementalDetokenizer(pieces)
    assert [d.push(t) for t in (1, 2, 3, 4)] == ["hi ", "", "", "😀!"]
    assert d.push(5) == ""
    assert d.flush() == "\ufffd"  # a character cut off at the end is replaced, not dropped


# ---- chat templates ---------------------------------------------------------------------------

GEMMA3 = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif -%}"
    "{%- if (message['role'] == 'assistant') -%}{%- set role = 'model' -%}"
    "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)
GEMMA2 = (  # rejects the system role outright
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Bye"},
]
EXPECTED_GEMMA = (
    "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n"
    "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
)


@pytest.mark.parametrize("template", [GEMMA3, GEMMA2], ids=["gemma3", "gemma2"])
def test_gemma_templates_render_system_user_assistant(template: str) -> None:
    chat = ChatTemplate(template, "config", bos_token="<bos>", eos_token="<eos>")
    assert chat.origin == "config"
    assert chat.render(CONVERSATION) == EXPECTED_GEMMA


def test_template_errors_become_invalid_requests() -> None:
    chat = ChatTemplate(GEMMA2, "gguf", bos_token="<bos>", eos_token="<eos>")
    # Two assistant turns in a row get merged by the retry; a conversation that is only an
    # assistant turn still breaks the alternation rule.
    with pytest.raises(InvalidRequest, match="alternate"):
        chat.render([{"role": "assistant", "content": "x"}])


def test_fallback_template() -> None:
    chat = ChatTemplate(None, "gguf", bos_token="<bos>", eos_token="<eos>")
    assert chat.origin == "fallback"
    assert chat.render(CONVERSATION[:2]) == "system: Be brief.\nuser: Hi\nassistant:"


def test_sandbox_blocks_unsafe_templates() -> None:
    chat = ChatTemplate("{{ messages.__class__.__mro__ }}", "gguf", bos_token="", eos_token="")
    with pytest.raises(InvalidRequest):
        chat.render(CONVERSATION)


def test_broken_configured_template_fails_at_load() -> None:
    with pytest.raises(ValueError, match="does not compile"):
        ChatTemplate("{% if %}", "config", bos_token="", eos_token="")


def test_normalise_merges_and_folds() -> None:
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "c"},
    ]
    assert normalise(messages) == [
        {"role": "user", "content": "S\n\na\n\nb"},
        {"role": "assistant", "content": "c"},
    ]


# ---- prefix matching --------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b", "n"), [([], [1], 0), ([1, 2, 3], [1, 2, 4], 2), ([1, 2], [1, 2, 3], 2)])
def test_common_prefix_small(a: list[int], b: list[int], n: int) -> None:
    assert common_prefix(a, b) == n


def test_common_prefix_long() -> None:
    a = list(range(5000))
    b = [*a[:3001], -1, *a[3002:]]
    assert common_prefix(a, b) == 3001
    assert common_prefix(a, list(a)) == 5000


# ---- GGUF assembly ----------------------------------------------------------------------------


def test_pypi_model_is_assembled_once_then_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []

    def assemble(output_path: Path) -> Path:
        calls.append(Path(output_path))
        Path(output_path).write_bytes(b"GGUF" + bytes(100))
        return Path(output_path)

    package = types.ModuleType("fake_gguf_pkg")
    package.assemble = assemble  # type: ignore[attr-defined]
    package.MODEL_NAME = "fake.gguf"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_gguf_pkg", package)

    path = resolve_gguf("pypi:fake-gguf-pkg", tmp_path)
    assert path == tmp_path / "models" / "fake.gguf" and path.read_bytes().startswith(b"GGUF")
    assert len(calls) == 1 and calls[0] != path  # assembled beside the target, then renamed
    assert resolve_gguf("pypi:fake-gguf-pkg", tmp_path) == path
    assert len(calls) == 1  # the marker matched: no second assemble (no re-hash)
    path.write_bytes(b"GGUF" + bytes(50))  # changed behind our back: verify again
    resolve_gguf("pypi:fake-gguf-pkg", tmp_path)
    assert len(calls) == 2 and calls[1] == path
    assert not list((tmp_path / "models").glob("*.partial"))


def test_concurrent_assemblies_in_one_data_dir_do_not_collide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers with the same PID (threads here; PID 1 in every container on a shared
    volume) assembling one model: each writes its own partial file, and both succeed."""
    import threading

    started = threading.Barrier(2)

    def assemble(output_path: Path) -> Path:
        out = Path(output_path)
        if out.name.endswith(".partial"):
            if out.exists():  # the package refuses a file it did not write (as gemma3's does)
                raise FileExistsError(out)
            with out.open("wb") as handle:
                handle.write(b"GGUF")
                started.wait(5)  # both writers are mid-file at once
                handle.write(bytes(100))
        return out

    package = types.ModuleType("fake_gguf_race")
    package.assemble = assemble  # type: ignore[attr-defined]
    package.MODEL_NAME = "race.gguf"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_gguf_race", package)
    results: list[Path | BaseException] = []

    def resolve() -> None:
        try:
            results.append(resolve_gguf("pypi:fake-gguf-race", tmp_path))
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=resolve) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    target = tmp_path / "models" / "race.gguf"
    assert results == [target, target]
    assert target.read_bytes() == b"GGUF" + bytes(100)
    assert not list((tmp_path / "models").glob("*.partial"))


def test_local_gguf_path(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_gguf(str(gguf), tmp_path) == gguf
    with pytest.raises(Exception, match="not found"):
        resolve_gguf(str(tmp_path / "missing.gguf"), tmp_path)
