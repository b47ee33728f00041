"""Tools that run: built-in ones, the user's single-file Python tools and MCP servers.

`tool.py` holds the types, `registry.py` the one place that lists and runs the tools of
every source, `agent.py` the loop that lets a model call them (the API's and, later, the
chat UI's). Nothing here knows Flask or an API's wire format.
"""
