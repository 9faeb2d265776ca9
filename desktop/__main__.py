from desktop.cli import run

raise SystemExit(run())
