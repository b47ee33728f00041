"""Building the prompt text for the three modes, and truncating a long conversation.

- instruct: the messages through the instruction template.
- chat: the context, the example dialogue, then the history as `Name: text` lines and the
  bot's `Name:` to answer after.
- chat-instruct: that chat prompt (without the final `Name:`) put into the
  `chat_instruct_command`, sent as one user message through the instruction template, and
  the bot's `Name:` after the template's generation prompt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from modules.chat import tools as toolbox
from modules.chat.messages import ChatMessage
from modules.chat.placeholders import fill_placeholders
from modules.chat.reasoning import split_reasoning, strip_reasoning
from modules.chat.templates import InstructionTemplate, TemplateStore
from modules.engines.base import ModelInfo, most_tokens
from modules.errors import ContextOverflow, InvalidRequest

log = logging.getLogger(__name__)

_MARK = "\u2063HEARTH-{}\u2063"  # marker text for finding turn boundaries in a template


@dataclass(frozen=True)
class PromptBuilder:
    """Everything about one request's prompt except which history turns are kept."""

    mode: str
    user_name: str
    bot_name: str
    model: ModelInfo
    template: InstructionTemplate | None  # None in chat mode
    system: str = ""  # instruct: the system message; chat modes: the context
    example_dialogue: str = ""
    chat_instruct_command: str = ""
    tools: tuple[dict, ...] = ()  # given to a template that renders `tools` itself
    continue_: bool = False
    impersonate: bool = False
    bot_prefix: str = ""  # "Name:" as the bot_prefix hook left it (chat modes)
    # Variables for templates that read them: reasoning_effort, enable_thinking.
    template_variables: tuple[tuple[str, Any], ...] = ()

    # --- the whole prompt -----------------------------------------------------------------

    def build(self, history: Sequence[ChatMessage]) -> str:
        """The prompt text. It starts with the BOS token's text when the template writes
        `bos_token`: the engine must then not add another BOS when tokenizing."""
        if self.mode == "instruct":
            return self._instruct(history)
        if self.mode == "chat":
            return self._chat_body(history) + self._chat_prefix(history)
        return self._chat_instruct(history)

    def stops(self) -> tuple[str, ...]:
        """Stop strings: where the model would start the other side's turn."""
        stops: list[str] = []
        if self.mode != "instruct":
            first, second = (
                (self.bot_name, self.user_name)
                if self.impersonate
                else (
                    self.user_name,
                    self.bot_name,
                )
            )
            stops += [f"\n{first}:", f"\n{second}:"]
        if self.template is not None:
            stops += self._template_stops(user_turn=self.impersonate and self.mode == "instruct")
        return tuple(dict.fromkeys(s for s in stops if s.strip()))

    # --- instruct -------------------------------------------------------------------------

    def _template_messages(self, history: Sequence[ChatMessage]) -> list[dict]:
        assert self.template is not None
        messages = list(history)
        if not self.template.renders_tool_messages:
            messages = toolbox.flatten_tool_messages(messages)
        dicts = []
        for m in messages:
            d = toolbox.template_message(m)
            if m.role == "assistant":
                reasoning, d["content"] = split_reasoning(m.content)
                if reasoning:  # under both names, in transformers' order: the template decides
                    d = {"thinking": reasoning, **d, "reasoning_content": reasoning}
            dicts.append(d)
        if self.system:
            dicts.insert(0, {"role": "system", "content": self.system})
        return dicts

    def _render(self, messages: list[dict], *, add_generation_prompt: bool) -> str:
        assert self.template is not None
        return TemplateStore.render(
            self.template,
            messages,
            add_generation_prompt=add_generation_prompt,
            model=self.model,
            tools=self.tools or None,
            extra=dict(self.template_variables),
        )

    def _instruct(self, history: Sequence[ChatMessage]) -> str:
        messages = self._template_messages(history)
        last = history[-1] if history else None
        if self.impersonate:
            partial = ""
            if self.continue_ and last is not None and last.role == "user":
                partial, messages = last.content, messages[:-1]
            return self._cut_before_marker(messages, "user") + partial
        if self.continue_ and last is not None and last.role == "assistant":
            return self._continued(messages)
        return self._render(messages, add_generation_prompt=True)

    def _continued(self, messages: list[dict]) -> str:
        """The prompt ending in the partial last assistant message, without its end-of-turn."""
        partial = messages[-1]["content"]
        if partial.strip():
            rendered = self._render(messages, add_generation_prompt=False)
            at = rendered.rfind(partial)
            if at >= 0:
                return rendered[: at + len(partial)]
        return self._render(messages[:-1], add_generation_prompt=True) + partial

    def _cut_before_marker(self, messages: list[dict], role: str) -> str:
        """The prompt up to where a new `role` message's text would start."""
        mark = _MARK.format("turn")
        rendered = self._render([*messages, {"role": role, "content": mark}], add_generation_prompt=False)
        at = rendered.rfind(mark)
        if at < 0:
            raise InvalidRequest(
                f"The instruction template '{self.template.name if self.template else ''}' "
                "drops message text, so the user's turn cannot be written.",
                param="instruction_template",
            )
        return rendered[:at]

    def _template_stops(self, *, user_turn: bool) -> list[str]:
        """Where the template's next turn begins, from a rendered four-message conversation."""
        names = [_MARK.format(i) for i in range(4)]
        roles = ["user", "assistant", "user", "assistant"]
        try:
            rendered = self._render(
                [{"role": r, "content": n} for r, n in zip(roles, names, strict=True)],
                add_generation_prompt=False,
            )
            ends, starts = (names[2], names[3]) if user_turn else (names[1], names[2])
            between = rendered[rendered.index(ends) + len(ends) : rendered.index(starts)].strip()
        except (InvalidRequest, ValueError):
            return []
        if not between:
            return []
        stops = [between]
        eos = self.model.eos_token
        if eos and eos in between:
            # The model may end its turn with the EOS token (which stops it anyway) and yet
            # write the next turn's header as text: stop on that too, if it is markup.
            rest = between.split(eos)[-1].strip()
            if rest and not rest.replace(" ", "").isalnum():
                stops.append(rest)
        return stops

    # --- chat --------------------------------------------------------------------------

    def _line(self, m: ChatMessage) -> str:
        if m.role == "user":
            return f"{self.user_name}: {m.content}\n"
        if m.role == "assistant":
            return f"{self.bot_name}: {strip_reasoning(m.content)}\n"
        return f"{m.content}\n"  # a system message in the middle of the chat

    def _split_partial(self, history: Sequence[ChatMessage]) -> tuple[list[ChatMessage], str]:
        """The history less the message being continued, and that message's text."""
        turns = list(history)
        role = "user" if self.impersonate else "assistant"
        if self.continue_ and turns and turns[-1].role == role and not turns[-1].tool_calls:
            return turns[:-1], turns[-1].content
        return turns, ""

    def _chat_body(self, history: Sequence[ChatMessage]) -> str:
        turns, _ = self._split_partial(history)
        head = "\n\n".join(p.strip() for p in (self.system, self.example_dialogue) if p.strip())
        lines = [self._line(m) for m in toolbox.flatten_tool_messages(turns)]
        return (head + "\n\n" if head else "") + "".join(lines)

    def _chat_prefix(self, history: Sequence[ChatMessage]) -> str:
        _, partial = self._split_partial(history)
        if self.impersonate:
            return f"{self.user_name}:" + (f" {partial}" if partial else "")
        if partial:
            return f"{self.bot_name}: {partial}"
        return self.bot_prefix or f"{self.bot_name}:"

    def _chat_instruct(self, history: Sequence[ChatMessage]) -> str:
        speaker = self.user_name if self.impersonate else self.bot_name
        command = self.chat_instruct_command.replace("<|character|>", speaker)
        command = command.replace("<|prompt|>", self._chat_body(history).rstrip())
        command = fill_placeholders(command, user=self.user_name, bot=self.bot_name)
        outer = [{"role": "user", "content": command}]
        return self._render(outer, add_generation_prompt=True) + self._chat_prefix(history)


@dataclass(frozen=True)
class Fitted:
    prompt: str
    dropped: int  # messages left out from the start of the history


def fit(
    builder: PromptBuilder,
    history: Sequence[ChatMessage],
    *,
    count_tokens: Callable[[str], int],
    budget: int,
) -> Fitted:
    """The prompt with as many recent turns as fit in `budget` tokens.

    Turns are dropped oldest first, whole: the history is only ever cut just before a user
    message, so a tool call never loses its result. The context (system message, character)
    always stays. ContextOverflow when even the last turn alone does not fit.
    """
    cuts = [0] + [i for i in range(1, len(history)) if history[i].role == "user"]

    def attempt(cut: int) -> str | None:
        prompt = builder.build(history[cut:])
        fits = most_tokens(prompt) <= budget or count_tokens(prompt) <= budget
        return prompt if fits else None

    if (whole := attempt(0)) is not None:
        return Fitted(whole, 0)
    # Fewer turns never make a longer prompt: binary search for the first cut that fits.
    lo, hi, best = 1, len(cuts) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        if (prompt := attempt(cuts[mid])) is not None:
            best, hi = (cuts[mid], prompt), mid - 1
        else:
            lo = mid + 1
    if best is None:
        raise ContextOverflow(
            f"The prompt does not fit: even the context and the last message take more than "
            f"the {budget} tokens left (context window {builder.model.n_ctx} minus max_tokens)."
        )
    log.info("Chat history truncated: dropped %d of %d messages", best[0], len(history))
    return Fitted(best[1], best[0])
