"""The local OpenAI-compatible server (``onnxchat serve`` and the window's switch).

``command`` (the CLI, light to import) → ``serving`` (socket, uvicorn) → ``app`` (Starlette
routes) → ``protocol`` (request checks, response shapes) and ``worker`` (the one thread that
drives the engine); ``status`` reports events on stdout, ``history`` saves requests when asked.
"""
