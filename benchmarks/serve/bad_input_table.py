"""The bad-input table: every refused request, its status code and message, as the service answers it.

Runs the application in process (FastAPI's test client, no network) with a small model,
limits of 2,000,000 bytes per body and 6 clips per request, and a rate limit of 1 request/s
(burst 2) for one key. Each row is also a case of ``tests/serve/test_http.py`` or
``tests/serve/test_service.py``.

    python benchmarks/serve/bad_input_table.py
"""

from __future__ import annotations

import base64
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import D, make_model, ratings  # noqa: E402


def main() -> None:
    import soundfile as sf
    from fastapi.testclient import TestClient

    from perser.serve import Limits, Service, create_app
    from perser.serve.service import add_key

    tmp = Path(tempfile.mkdtemp(prefix="perser-bad-input-"))
    model = make_model(tmp / "model")
    s = Service([str(model)], str(tmp / "s.db"), limits=Limits(max_body_bytes=2_000_000, max_clips=6),
                key_cache_seconds=0)
    http = TestClient(create_app(s))
    good = ratings(4, 0)
    first = http.post("/listeners/alice/ratings", json={"ratings": good})
    assert first.status_code == 200, first.text
    assert http.post("/listeners/few/ratings", json={"ratings": good[:2]}).status_code == 200

    def wav(seconds=1.0, silent=False):
        t = np.arange(int(16000 * seconds)) / 16000
        x = np.zeros_like(t) if silent else 0.2 * np.sin(2 * np.pi * 150 * t)
        buf = io.BytesIO()
        sf.write(buf, x.astype(np.float32), 16000, format="WAV")
        return base64.b64encode(buf.getvalue()).decode()

    def r(path, body=None, method="POST", raw=None, headers=None):
        return lambda: http.request(method, path, json=body if raw is None else None, content=raw,
                                    headers={"content-type": "application/json", **(headers or {})})

    x = [0.0] * D
    cases = [
        ("body over the limit (Content-Length)", r("/predict", raw=json.dumps({"clips": [{"id": "Q" * 3_000_000}]}).encode())),
        ("body over the limit (streamed, no length)", r("/predict", raw=iter([b'{"clips": [{"id": "'] + [b"Q" * 700_000] * 4 + [b'"}]}']))),
        ("too many clips", r("/predict", {"clips": [{"features": x}] * 7})),
        ("audio too long", r("/predict", {"clips": [{"audio": wav(31)}]})),
        ("silent audio", r("/predict", {"clips": [{"audio": wav(silent=True)}]})),
        ("not audio", r("/predict", {"clips": [{"audio": base64.b64encode(b"RIFF not audio").decode()}]})),
        ("bad base64", r("/predict", {"clips": [{"audio": "not base64!!"}]})),
        ("features of the wrong shape", r("/predict", {"clips": [{"features": [0.0] * 10}]})),
        ("NaN in features", r("/predict", raw=json.dumps({"clips": [{"features": x[:-1] + [float("nan")]}]}).encode())),
        ("both features and audio", r("/predict", {"clips": [{"features": x, "audio": wav()}]})),
        ("malformed JSON", r("/predict", raw=b"{not json")),
        ("unknown field", r("/predict", {"clips": [{"features": x}], "colour": "red"})),
        ("unknown model", r("/predict", {"model": "nope", "clips": [{"features": x}]})),
        ("unknown listener", r("/predict", {"listener": "carol", "clips": [{"features": x}]})),
        ("listener below the minimum K", r("/predict", {"listener": "few", "clips": [{"features": x}]})),
        ("PUT below the minimum K", r("/listeners/bob/ratings", {"ratings": good[:3]}, method="PUT")),
        ("unknown class", r("/listeners/bob/ratings", {"ratings": good[:3] + [{**good[3], "label": "joy"}]})),
        ("a label of 10,000 characters", r("/listeners/bob/ratings", {"ratings": good[:3] + [{**good[3], "label": "x" * 10000}]})),
        ("values in a categorical space", r("/listeners/bob/ratings", {"ratings": [{**good[0], "label": None, "values": {"a": 1}}]})),
        ("rating without a clip id", r("/listeners/bob/ratings", {"ratings": [{**good[0], "id": None}]})),
        ("duplicate clip ids", r("/listeners/bob/ratings", {"ratings": good + [good[1], good[3]]})),
        ("no ratings", r("/listeners/bob/ratings", {"ratings": []})),
        ("listener id over 256 bytes", r("/listeners/" + "%E5%90%AC" * 100 + "/ratings", {"ratings": good})),
        ("listener id with outer spaces", r("/listeners/%20bob/ratings", {"ratings": good})),
        ("listener id not UTF-8", r("/listeners/%FF/ratings", {"ratings": good})),
        ("page size out of range", r("/listeners?limit=0", method="GET")),
    ]
    rows = [(name, fn()) for name, fn in cases]
    admin = add_key(s.db, "ops", "admin")
    alice = add_key(s.db, "alice-app", "listener:alice")
    rows += [
        ("no key (keys in use)", r("/listeners/alice", method="GET")()),
        ("unknown key", r("/listeners/alice", method="GET", headers={"Authorization": "Bearer perser_wrong"})()),
        ("listener key, another listener", r("/listeners/bob/ratings", {"ratings": good}, headers={"Authorization": f"Bearer {alice}"})()),
        ("listener key, admin-only page", r("/listeners", method="GET", headers={"Authorization": f"Bearer {alice}"})()),
    ]
    from perser.serve.keys import RateLimiter

    s.rate_limiter = RateLimiter(1, 2)
    for _ in range(3):
        last = r("/models", method="GET", headers={"Authorization": f"Bearer {admin}"})()
    rows.append(("over the key's rate limit", last))
    print("| case | status | message |")
    print("|---|---|---|")
    for name, resp in rows:
        detail = resp.json().get("detail")
        extra = f" (Retry-After: {resp.headers['retry-after']})" if "retry-after" in resp.headers else ""
        print(f"| {name} | {resp.status_code} | {str(detail).replace('|', '/')}{extra} |")


if __name__ == "__main__":
    main()
