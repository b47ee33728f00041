"""The shipped instruction templates, the order in which one is chosen, and the sandbox."""

from __future__ import annotations

import logging
import time
import tracemalloc

import pytest

from modules.chat.messages import ChatOptions
from modules.chat.sandbox import render
from modules.chat.templates import InstructionTemplate, TemplateStore, load_model_table
from modules.errors import InvalidRequest, NotFound

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "2+2?"},
]

# (template, bos, eos, the exact prompt for CONVERSATION with the generation prompt)
EXPECTED = {
    "ChatML": (
        "<|im_start|>",
        "<|im_end|>",
        (
            "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
            "<|im_start|>assistant\n"
        ),
    ),
    "Alpaca": (
        "<s>",
        "</s>",
        (
            "You are terse.\n\n### Instruction:\nHi\n\n### Response:\nHello.\n\n"
            "### Instruction:\n2+2?\n\n### Response:\n"
        ),
    ),
    "Llama-2": (
        "<s>",
        "</s>",
        ("<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] 2+2? [/INST]"),
    ),
    "Llama-3": (
        "<|begin_of_text|>",
        "<|eot_id|>",
        (
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n"
        ),
    ),
    "Mistral": (
        "<s>",
        "</s>",
        "<s>[INST] You are terse.\n\nHi [/INST] Hello.</s>[INST] 2+2? [/INST]",
    ),
    "Gemma": (
        "<bos>",
        "<eos>",
        (
            "<bos><start_of_turn>user\nYou are terse.\n\nHi<end_of_turn>\n"
            "<start_of_turn>model\nHello.<end_of_turn>\n<start_of_turn>user\n2+2?<end_of_turn>\n"
            "<start_of_turn>model\n"
        ),
    ),
    "Phi-3": (
        "<s>",
        "<|endoftext|>",
        (
            "<|system|>\nYou are terse.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello.<|end|>\n"
            "<|user|>\n2+2?<|end|>\n<|assistant|>\n"
        ),
    ),
    "Vicuna": (
        "<s>",
        "</s>",
        "You are terse. USER: Hi ASSISTANT: Hello.</s>USER: 2+2? ASSISTANT:",
    ),
    "Zephyr": (
        "<s>",
        "</s>",
        (
            "<|system|>\nYou are terse.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello.</s>\n"
            "<|user|>\n2+2?</s>\n<|assistant|>\n"
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_template_renders_the_exact_prompt(templates, make_model, name):
    bos, eos, expected = EXPECTED[name]
    template = templates.get(name)
    prompt = templates.render(
        template,
        CONVERSATION,
        add_generation_prompt=True,
        model=make_model(bos_token=bos, eos_token=eos),
    )
    assert prompt == expected


def test_every_shipped_template_has_an_exact_prompt_test(templates):
    assert sorted(templates.names()) == sorted(EXPECTED)


def test_names_and_aliases_are_found_case_insensitively(templates):
    assert templates.get("chatml").name == "ChatML"
    assert templates.get("Llama-v3").name == "Llama-3"
    with pytest.raises(NotFound):
        templates.get("No-Such-Template")
    with pytest.raises(InvalidRequest):
        templates.get("../ChatML")


# --- choice order ------------------------------------------------------------------------

GGUF_TEMPLATE = "{% for m in messages %}[{{ m['content'] }}]{% endfor %}"


def test_request_template_text_wins_over_everything(templates, make_model):
    model = make_model(name="llama-3-8b", chat_template=GGUF_TEMPLATE)
    options = ChatOptions(instruction_template_str="X", instruction_template="Vicuna")
    chosen = templates.choose(options, model)
    assert (chosen.name, chosen.source, chosen.trusted) == ("custom", "X", False)


def test_request_template_name_beats_the_model_template(templates, make_model):
    model = make_model(name="llama-3-8b", chat_template=GGUF_TEMPLATE)
    assert templates.choose(ChatOptions(instruction_template="Vicuna"), model).name == "Vicuna"


def test_model_template_beats_the_name_table(templates, make_model):
    model = make_model(name="llama-3-8b", chat_template=GGUF_TEMPLATE)
    chosen = templates.choose(ChatOptions(), model)
    assert (chosen.name, chosen.source, chosen.trusted) == (
        "model",
        GGUF_TEMPLATE,
        False,
    )


def test_name_table_is_used_without_a_model_template(templates, make_model):
    assert templates.choose(ChatOptions(), make_model(name="Meta-Llama-3.1-8B")).name == "Llama-3"
    assert templates.choose(ChatOptions(), make_model(name="dolphin-mistral")).name == "ChatML"
    by_file = make_model(name="x", path="/m/zephyr-7b-beta.Q4.gguf")
    assert templates.choose(ChatOptions(), by_file).name == "Zephyr"


def test_alpaca_with_a_warning_when_nothing_matches(templates, model, caplog):
    with caplog.at_level(logging.WARNING, logger="modules.chat.templates"):
        assert templates.choose(ChatOptions(), model).name == "Alpaca"
    assert "Alpaca" in caplog.text and model.name in caplog.text


def test_user_table_and_templates_win(user_data, templates, make_model):
    (user_data / "models.yaml").write_text("llama-?3: Mine\nbroken(: ChatML\n", encoding="utf-8")
    (user_data / "instruction-templates").mkdir()
    (user_data / "instruction-templates" / "Mine.yaml").write_text(
        "instruction_template: |-\n  MINE{{ messages | length }}\n", encoding="utf-8"
    )
    (user_data / "instruction-templates" / "ChatML.yaml").write_text(
        "instruction_template: |-\n  OVERRIDDEN\n", encoding="utf-8"
    )
    table = load_model_table(templates.dirs[0] / "models.yaml", user_data / "models.yaml")
    store = TemplateStore(dirs=templates.dirs, model_table=table)
    chosen = store.choose(ChatOptions(), make_model(name="llama-3"))
    assert chosen.name == "Mine"
    assert store.get("ChatML").source == "OVERRIDDEN"
    assert [r.template for r in table][:1] == ["Mine"]  # the broken regex was skipped


def test_text_generation_webui_table_form_is_read(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(".*alpaca:\n  instruction_template: 'Alpaca'\n", encoding="utf-8")
    assert [(r.pattern, r.template) for r in load_model_table(path)] == [(".*alpaca", "Alpaca")]


def test_old_turn_template_files_are_refused_clearly(user_data, templates):
    (user_data / "instruction-templates").mkdir()
    (user_data / "instruction-templates" / "Old.yaml").write_text("turn_template: x\n")
    with pytest.raises(InvalidRequest, match="instruction_template"):
        templates.get("Old")


# --- the sandbox -------------------------------------------------------------------------


def _render(source: str, **kw) -> str:
    return render(source, {"messages": CONVERSATION}, **kw)


@pytest.mark.parametrize(
    "source",
    [
        "{{ raise_exception('roles must alternate') }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ 'x' * 100000000 }}",
        "{{ 10 ** 100000 }}",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
        "{{ undefined_thing.attr }}",
        "{% for %}",
        "{% set x = messages.append(1) %}",
        "{% for i in range(99999) %}{% for j in range(99999) %}{{ 'x' * 100 }}{% endfor %}{% endfor %}",
    ],
)
def test_bad_templates_become_invalid_request(source):
    started = time.monotonic()
    with pytest.raises(InvalidRequest) as info:
        _render(source, max_seconds=0.5)
    assert time.monotonic() - started < 5
    assert info.value.param == "instruction_template"


# Templates that would build gigabytes from a few characters: each is refused before the
# memory is taken (a remote client can send one as instruction_template_str).
HUNGRY = [
    "{{ 'x'.zfill(10**9) }}",
    "{{ 'x'.ljust(1000000000) }}",
    "{{ 'x'.center(10**9) }}",
    "{{ '{:>1000000000}'.format(1) }}",
    "{{ '{:.1000000000f}'.format(1.0) }}",
    "{{ '{:{w}}'.format(1, w=10**9) }}",
    "{{ '{x:>1000000000}'.format_map({'x': 1}) }}",
    "{{ '%1000000000d' % 1 }}",
    "{{ '%*d' % (10**9, 1) }}",
    "{{ '%1000000000d'|format(1) }}",
    "{{ 'x'|center(10**9) }}",
    "{{ 'x'|indent(10**9, true) }}",
    "{{ ('a\n' * 100000)|indent(' ' * 100000) }}",
    "{{ [1]|batch(10**9, 'x')|list }}",
    "{{ [1]|slice(10**9)|list }}",
    "{{ {'a': 1}|tojson(indent=10**9) }}",
    "{{ lipsum(10**9) }}",
    "{{ ('\t' * 1000000).expandtabs(1000000) }}",
    "{{ 'abc'.translate({97: 'x' * 1000000}) }}",
    "{% set s = 'x' * 1000000 %}{{ s.replace('', s) }}",
    "{% set s = 'x' * 1000000 %}{{ s|replace('x', s) }}",
    "{% set s = 'x' * 1000000 %}{{ s.join([s, s, s, s, s]) }}",
    "{% set s = 'x' * 1000000 %}{{ [s, s, s, s, s]|join(s) }}",
    "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "{% set ns = namespace(s=[1]) %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "{% set a = 'x' * 1000000 %}{% set b = a~a~a~a~a~a~a~a %}{{ b|length }}",
    "{% macro f(s, n) %}{% if n %}{{ f(s ~ s, n - 1) }}{% endif %}{% endmacro %}{{ f('x', 60) }}",
    "{% set big = 'x' * 1000000 %}{% set c %}{% for i in range(99999) %}{{ big }}{% endfor %}{% endset %}",
    "{% filter upper %}{% for i in range(99999) %}{{ 'x' * 1000000 }}{% endfor %}{% endfilter %}",
    # the same inside a loop, where Jinja passes its own keywords along with every call
    "{% set s = 'x' * 1000000 %}{% for m in messages %}{{ s.replace('', s) }}{% endfor %}",
    "{% for m in messages %}{{ m.content.zfill(10**9) }}{% endfor %}",
    "{% for m in messages %}{{ m|tojson(false, 10**9) }}{% endfor %}",
    "{% generation %}{{ 'x'.ljust(10**9) }}{% endgeneration %}",
]


@pytest.mark.parametrize("source", HUNGRY)
def test_a_template_cannot_take_the_memory(source):
    tracemalloc.start()
    try:
        with pytest.raises(InvalidRequest) as info:
            _render(source, max_seconds=1.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100_000_000, f"{peak / 1e6:.0f} MB"
    assert info.value.param == "instruction_template"


def test_bounded_operations_still_work_at_ordinary_sizes():
    out = _render(
        "{{ 'x'.zfill(5) }}|{{ '%5d' % 3 }}|{{ '{:>5}'.format(1) }}|{{ 'a b'|replace(' ', '_') }}|"
        "{{ ['a', 'b']|join(', ') }}|{{ 'x'|center(5) }}|{{ 'l1\nl2'|indent(2) }}|"
        "{{ {'a': 1}|tojson(indent=2) }}|{{ [1, 2, 3]|batch(2)|list }}|{{ [1, 2, 3]|slice(2)|list }}|"
        "{{ 'a' ~ 1 ~ none }}|{{ 'Year 20250101 %s' % 'ok' }}|{{ 'id 12345678 {}'.format('x') }}|"
        "{% set ns = namespace(t='') %}{% for m in messages %}{% set ns.t = ns.t + m.content[:3] %}"
        "{% endfor %}{{ ns.t }}|{{ 1 + 2 }}{{ [1] + [2] }}{{ 3 * 'ab' }}{{ 7 % 3 }}"
    )
    assert out == (
        '0000x|    3|    1|a_b|a, b|  x  |l1\n  l2|{\n  "a": 1\n}|[[1, 2], [3]]|[[1, 2], [3]]|'
        "a1None|Year 20250101 ok|id 12345678 x|YouHiHel2+2|3[1, 2]ababab1"
    )


def test_a_loop_without_output_hits_the_deadline():
    source = "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
    with pytest.raises(InvalidRequest, match="too long"):
        _render(source, max_seconds=0.2)


def test_raise_exception_message_reaches_the_user():
    with pytest.raises(InvalidRequest, match="roles must alternate"):
        _render("{{ raise_exception('roles must alternate') }}")


def test_hugging_face_helpers_work():
    out = _render(
        "{{ messages[0] | tojson }}|{{ strftime_now('%Y') | length }}"
        "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}!{% endfor %}"
    )
    assert out == '{"role": "system", "content": "You are terse."}|4!'
    assert render("{{ x | tojson }}", {"x": "é<"}) == '"é<"'


def test_template_reading_tools_is_recognised():
    assert InstructionTemplate("a", "{% if tools %}x{% endif %}").renders_tools
    assert not InstructionTemplate("b", "{{ messages }}").renders_tools
    # the whole syntax real templates use is understood, loop controls and generation blocks too
    loops = "{% for t in tools %}{% if loop.index > 2 %}{% break %}{% endif %}{{ t }}{% endfor %}"
    assert InstructionTemplate("c", loops).renders_tools
    assert InstructionTemplate("d", "{% generation %}{{ tools }}{% endgeneration %}").renders_tools


# --- transformers' additions, as real templates use them (GLM, MiniMax, Nemotron, LFM2...) ----


def test_tojson_takes_transformers_arguments():
    value = {"city": "Zürich", "a": [1]}
    out = render(
        "{{ v|tojson(ensure_ascii=False) }}|{{ v|tojson(ensure_ascii=True) }}|{{ v|tojson(true) }}|"
        "{{ v|tojson(indent=1, sort_keys=true, separators=(',', ':')) }}",
        {"v": value},
    )
    assert out == (
        '{"city": "Zürich", "a": [1]}|{"city": "Z\\u00fcrich", "a": [1]}|{"city": "Z\\u00fcrich", "a": [1]}|'
        '{\n "a":[\n  1\n ],\n "city":"Zürich"\n}'
    )


def test_string_methods_work_inside_loops_and_blocks():
    source = (
        "{% for m in messages %}{{ m.content.replace('e', '3').zfill(4) }};{% endfor %}"
        "{% set ns = namespace(t='') %}{% for m in messages %}{% if loop.first %}"
        "{% set ns.t = m.content.replace(' ', '_', 1) %}{% endif %}{% endfor %}{{ ns.t }}"
    )
    assert _render(source) == "You ar3 t3rs3.;00Hi;H3llo.;2+2?;You_are terse."


def test_generation_blocks_render_their_body_and_keep_their_scope():
    source = (
        "{% set x = 'out' %}{% for m in messages[1:3] %}{% generation %}{% set x = 'in' %}"
        "[{{ m.content }}|{{ x }}]{% endgeneration %}{% endfor %}{{ x }}"
    )
    assert _render(source) == "[Hi|in][Hello.|in]out"


def test_namespaces_refuse_underscore_names_as_transformers_does():
    assert _render("{% set ns = namespace(a=1) %}{% set ns.b = 2 %}{{ ns.a + ns.b }}") == "3"
    for source in ("{% set ns = namespace(_a=1) %}", "{% set ns = namespace() %}{% set ns._b = 2 %}"):
        with pytest.raises(InvalidRequest, match="namespace"):
            _render(source)
