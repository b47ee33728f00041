"""A long chat for measuring the page in Chromium: the file, and what the page records.

Used by tests/web/test_ui_long_chat.py (bounds) and bench/bench_ui_long_chat.py (figures for
docs/ui.md).
"""

from __future__ import annotations

import itertools
import json
import random
import time
from pathlib import Path

CODE = '''```python
def fibonacci(n: int) -> list[int]:
    """The first n Fibonacci numbers."""
    numbers = [0, 1]
    while len(numbers) < n:
        numbers.append(numbers[-1] + numbers[-2])
    return numbers[:n]


for i, value in enumerate(fibonacci(12)):
    print(f"{i:>2}: {value}")
```'''

PROSE = (
    "Lighthouses guided ships along dangerous coasts for centuries. The **Fresnel lens**, "
    "invented in 1822, let a small flame be seen from far out at sea. Keepers trimmed wicks, "
    "wound clockwork and logged the weather; today most lights are automatic."
)


def write_long_chat(user_data: Path, count: int = 1000, seed: int = 1) -> str:
    """An instruct chat of `count` messages (every third reply has a code block); its id."""
    rng = random.Random(seed)
    now = time.time() - count * 30
    messages = []
    for i in range(count):
        if i % 2 == 0:
            content = f"Question {i // 2}: " + " ".join(rng.sample(PROSE.split(), 12)) + "?"
            messages.append({"role": "user", "content": content, "id": i + 1, "time": now + i * 30})
        else:
            parts = [PROSE, "- one point\n- another point\n- `inline code`"]
            if i % 6 == 1:
                parts.insert(1, CODE)
            messages.append(
                {
                    "role": "assistant",
                    "content": f"Answer {i // 2}.\n\n" + "\n\n".join(parts),
                    "id": i + 1,
                    "time": now + i * 30,
                    "model": "tiny",
                }
            )
    chat_id = f"20250101-000000-{seed:06d}"
    data = {
        "format": 2,
        "id": chat_id,
        "mode": "instruct",
        "character": None,
        "title": "A long chat",
        "created": now,
        "updated": now + count * 30,
        "messages": messages,
        "branches": [],
    }
    folder = user_data / "logs" / "instruct"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{chat_id}.json").write_text(json.dumps(data))
    return chat_id


# Installed before the page loads: long tasks (50 ms and more, the browser's own measure),
# the moment the chat's last message is on the page, and the frames while a reply streams.
RECORDER = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    window.__longTasks.push({start: entry.startTime, duration: entry.duration});
  }
}).observe({type: 'longtask', buffered: true});
window.__opened = null;
const watchOpen = () => {
  const box = document.getElementById('messages');
  if (!box) return requestAnimationFrame(watchOpen);
  new MutationObserver(() => {
    if (window.__opened === null && box.querySelector('.message[data-index="LAST"]')) {
      requestAnimationFrame(() => setTimeout(() => { window.__opened = performance.now(); }));
    }
  }).observe(box, {childList: true});
};
watchOpen();
window.__frames = [];
window.__recordFrames = () => {
  window.__frames = [];
  window.__recording = true;
  const tick = (t) => { window.__frames.push(t); if (window.__recording) requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
};
"""


def recorder(count: int) -> str:
    return RECORDER.replace("LAST", str(count - 1))


def stream_figures(page, since: float) -> dict:
    """The longest task and the longest gap between frames since `since` (page time, ms)."""
    page.evaluate("window.__recording = false")
    tasks = [t["duration"] for t in page.evaluate("window.__longTasks") if t["start"] >= since]
    frames = page.evaluate("window.__frames")
    gaps = [b - a for a, b in itertools.pairwise(frames)]
    return {
        "longest_task_ms": round(max(tasks), 1) if tasks else 0.0,  # 0: none of 50 ms or more
        "long_tasks": len(tasks),
        "longest_frame_gap_ms": round(max(gaps), 1) if gaps else None,
        "frames": len(frames),
    }
