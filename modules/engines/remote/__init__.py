"""Models on other machines: upstream OpenAI-compatible servers behind the engine interface.

config.py     `--upstream` flags and user_data/upstreams.yaml
http.py       a small HTTP client: keep-alive, streamed answers, abort from anywhere
dialects.py   what Hearth asks of any upstream, and how it reads the answers
kinds.py      what each kind speaks besides (llama-server, vLLM, Ollama, Hearth, ...)
pool.py       upstreams, the models they serve, and which one a request goes to
fleet.py      the service on the app: probing, health checks, ejection and re-admission
engine.py     `RemoteEngine`: the TextEngine interface over a pool
generation.py one generation on an upstream: retry before the first byte, cancel

See docs/deployment.md ("A fleet of inference servers").
"""
