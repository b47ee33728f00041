"""Models on other machines: upstream OpenAI-compatible servers behind the engine interface.

config.py     `--upstream` flags and user_data/upstreams.yaml
http.py       a small HTTP client: keep-alive, streamed answers, abort from anywhere
dialects.py   what each kind of server speaks (llama-server, vLLM, Ollama, Hearth, ...)
pool.py       upstreams, the models they serve, and which one a request goes to
fleet.py      the service on the app: probing, health checks, ejection and re-admission
engine.py     `RemoteEngine`: the TextEngine interface over a pool, with retries

See docs/deployment.md ("A fleet of inference servers").
"""
