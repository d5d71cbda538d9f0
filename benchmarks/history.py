"""Results files keep their history: the newest run on top, every earlier one below it."""

from __future__ import annotations

from pathlib import Path


def earlier_runs(path: Path) -> str:
    """What ``path`` holds now, without its title, to go below a new report."""
    if not path.exists():
        return ""
    lines = path.read_text().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    body = "\n".join(lines).strip()
    return f"\n\n## Earlier runs\n\n{body}\n" if body else ""


def record(path: Path, report: str, earlier: str) -> None:
    """Write ``report`` (which starts with the file's title) above ``earlier``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.rstrip() + "\n" + earlier)
