"""The UI's pages: chat, notebook, characters, model, settings, and the login page.

Pages are Jinja templates (autoescaped) that hand their start-up data to the page's script
as a JSON data block (`<script type="application/json">`, never executed). Everything else
the scripts fetch from /ui/api/ or stream over /ui/ws.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, redirect, render_template, request, session, url_for

from modules.app import services

from .api import instruction_tuned, status_json, template_switches
from .characters import character_json
from .notebook import notebook_json
from .security import safe_next, same_origin
from .state import web_state

log = logging.getLogger(__name__)

LOGIN_FAILURE_DELAY = 1.0  # seconds; slows down password guessing


def page(name: str, title: str, **extra):
    hearth, web = services(), web_state()
    boot = {
        "page": name,
        "choices": web.choices.model_dump(),
        "status": status_json(hearth),
        "auth": web.guard.login_required,
        **extra,
    }
    return render_template(
        f"{name}.html",
        page=name,
        title=title,
        boot=boot,
        auth=web.guard.login_required,
        user=session.get("user"),
        theme=web.choices.theme,
    )


def start_mode(hearth) -> str:
    """The mode a newcomer's page opens in (one that has chosen keeps its choice, in the
    browser): the settings' mode when it was chosen; else instruct for an instruction-tuned
    model, whose answers are best there, and chat for a base model."""
    web = web_state()
    if web.mode_chosen:
        return web.choices.mode
    return "instruct" if instruction_tuned(hearth) else "chat"


def register_pages(bp: Blueprint) -> None:
    @bp.get("/")
    def chat_page():
        hearth, web = services(), web_state()
        return page(
            "chat",
            "Chat",
            characters=[character_json(c) for c in hearth.chat.characters.list()],
            presets=[p.to_json() for p in web.presets.list()],
            templates=hearth.chat.templates.names(),
            template_switches=template_switches(hearth),
            start_mode=start_mode(hearth),
        )

    @bp.get("/notebook")
    def notebook_page():
        web = web_state()
        return page(
            "notebook",
            "Notebook",
            presets=[p.to_json() for p in web.presets.list()],
            notebooks=[notebook_json(n, text=False) for n in web.notebooks.list()],
        )

    @bp.get("/characters")
    def characters_page():
        return page("characters", "Characters")

    @bp.get("/models")
    def models_page():
        return page("models", "Model")

    @bp.get("/settings")
    def settings_page():
        hearth, web = services(), web_state()
        return page(
            "settings",
            "Settings",
            characters=[{"key": c.key, "name": c.name} for c in hearth.chat.characters.list()],
            presets=[p.name for p in web.presets.list()],
            templates=hearth.chat.templates.names(),
            listen=hearth.settings.listen,
        )

    @bp.get("/login")
    def login():
        web = web_state()
        if not web.guard.login_required or web.guard.logged_in_user():
            return redirect(safe_next(request.args.get("next")))
        return render_template(
            "login.html",
            page="login",
            title="Log in",
            error=None,
            next=safe_next(request.args.get("next")),
            theme=web.choices.theme,
        )

    @bp.post("/login")
    def login_submit():
        web = web_state()
        target = safe_next(request.form.get("next"))
        if not web.guard.login_required:
            return redirect(target)
        user = request.form.get("username", "")[:200]
        password = request.form.get("password", "")[:1000]
        if same_origin() and web.guard.check_password(user, password):
            web.guard.log_in(user)
            return redirect(target)
        log.warning("UI login failed for user %r from %s", user, request.remote_addr)
        time.sleep(LOGIN_FAILURE_DELAY)
        return render_template(
            "login.html",
            page="login",
            title="Log in",
            next=target,
            error="That user name and password do not match.",
            theme=web.choices.theme,
        ), 401

    @bp.post("/logout")
    def logout():
        if web_state().guard.login_required:  # without a login there is no session to end
            session.clear()
        return redirect(url_for("web.login"))
