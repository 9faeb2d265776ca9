"""Entry point of the packaged app: the same ``onnxchat`` command as the pip install.

``freeze_support`` comes first so that a frozen child process (multiprocessing's spawn
start method, the default on Windows and macOS) runs its task instead of a second app.
"""

import multiprocessing

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from desktop.cli import run

    raise SystemExit(run())
