"""The HTTP layer: keys and scopes, rate limits, size limits, bad input, audio, metrics, logs, pages."""

from __future__ import annotations

import base64
import io
import json
import logging
from urllib.parse import quote

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from perser.serve import Limits, Service, create_app
from perser.serve.service import add_key

from .conftest import CAT, D, ratings_json


@pytest.fixture
def svc(trained, tmp_path):
    m1, _, rs, W, label = trained
    service = Service([m1], tmp_path / "s.db", key_cache_seconds=0)
    return TestClient(create_app(service)), service, (W, label)


def path(listener: str, tail: str = "") -> str:
    return f"/listeners/{quote(listener, safe='')}{tail}"


def enroll_body(W, label, who="a1", n=6, seed=0):
    X = np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)
    return {"ratings": ratings_json(X, label(X, W[who]))}, X


def wav(f0: float = 150.0, seconds: float = 1.0, sr: int = 16000, channels: int = 1, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.2 * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6)) + 0.005 * rng.standard_normal(len(t))
    if channels > 1:
        x = np.stack([x] + [0.5 * x] * (channels - 1), axis=1)
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def test_keys_and_scopes(svc):
    http, service, (W, label) = svc
    body, X = enroll_body(W, label)
    assert http.post(path("alice", "/ratings"), json=body).status_code == 200  # no keys yet: open (loopback only)
    admin = add_key(service.db, "ops", "admin")
    alice = add_key(service.db, "alice-app", "listener:alice")
    assert admin.startswith("perser_") and len(admin) > 40 and admin != alice
    assert admin not in repr(service.db.list_keys())  # only the hash is stored

    def h(key):
        return {"Authorization": f"Bearer {key}"}

    r = http.get(path("alice"))
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert http.get(path("alice"), headers=h("perser_wrong")).status_code == 401
    assert http.get("/health").status_code == 200  # health needs no key
    assert http.get(path("alice"), headers=h(alice)).status_code == 200
    assert http.post(path("alice", "/ratings"), json=body, headers=h(alice)).status_code == 200
    q = {"listener": "alice", "clips": [{"features": X[0].tolist()}]}
    assert http.post("/predict", json=q, headers=h(alice)).status_code == 200
    # a listener key reaches nobody else, and nothing of the admin's
    assert http.post(path("bob", "/ratings"), json=body, headers=h(alice)).status_code == 403
    assert http.post("/predict", json={**q, "listener": "bob"}, headers=h(alice)).status_code == 403
    assert http.post("/predict", json={"clips": q["clips"]}, headers=h(alice)).status_code == 403
    assert http.get("/listeners", headers=h(alice)).status_code == 403
    assert http.get("/metrics", headers=h(alice)).status_code == 403
    assert http.delete(path("bob"), headers=h(alice)).status_code == 403
    # the admin key reaches everything
    assert http.post(path("bob", "/ratings"), json=body, headers=h(admin)).status_code == 200
    assert [x["listener"] for x in http.get("/listeners", headers=h(admin)).json()["listeners"]] == ["alice", "bob"]
    assert http.get("/metrics", headers=h(admin)).status_code == 200
    service.db.revoke_key("alice-app")
    assert http.get(path("alice"), headers=h(alice)).status_code == 401


def test_rate_limit_answers_429_with_retry_after(trained, tmp_path):
    service = Service([trained[0]], tmp_path / "s.db", limits=Limits(rate=0.5, burst=2), key_cache_seconds=0)
    key = add_key(service.db, "k", "admin")
    other = add_key(service.db, "k2", "admin")
    http = TestClient(create_app(service))
    codes = [http.get("/models", headers={"Authorization": f"Bearer {key}"}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    r = http.get("/models", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "rate limit" in r.json()["detail"]
    assert http.get("/models", headers={"Authorization": f"Bearer {other}"}).status_code == 200  # per key


def test_size_limits_answer_413_before_parsing_and_echo_nothing(trained, tmp_path):
    service = Service([trained[0]], tmp_path / "s.db", limits=Limits(max_body_bytes=20_000, max_clips=3))
    http = TestClient(create_app(service))
    marker = "Q" * 30_000
    r = http.post("/predict", content=json.dumps({"clips": [{"id": marker}]}), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over the limit of 20000 bytes" in r.json()["detail"] and "QQQ" not in r.text

    def chunks():  # no Content-Length: counted while it streams
        yield b'{"clips": [{"id": "'
        for _ in range(10):
            yield b"Q" * 5000
        yield b'"}]}'

    r = http.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "QQQ" not in r.text
    x = [0.0] * D
    r = http.post("/predict", json={"clips": [{"features": x}] * 4})
    assert r.status_code == 413 and r.json()["detail"] == "clips: 4 clips; at most 3 per request"
    assert http.get("/health").status_code == 200


def test_bad_input_names_the_field_and_never_echoes_it(svc):
    http, service, (W, label) = svc
    body, X = enroll_body(W, label)
    good = body["ratings"]
    secret = "S3CR3T-" + "z" * 60

    def post(ratings, who="bob"):
        return http.post(path(who, "/ratings"), json={"ratings": ratings})

    cases = [
        (post(good[:2] + [{**good[2], "label": secret}]), "ratings[2]: 'label' a class is not a class of space 'emotion'"),
        (post(good[:2] + [{**good[2], "label": "joy"}]), "ratings[2]: 'label' 'joy' is not a class"),
        (post([{**good[0], "features": [0.0] * 10}] + good[1:]), "ratings[0].features: shape [10], the model expects [88]"),
        (post([{"id": "x", "label": "hap"}] + good[1:]), "ratings[0]: give exactly one of 'features' and 'audio'"),
        (post([{**good[0], "features": None, "audio": "not base64!!"}] + good[1:]), "ratings[0].audio: not valid base64"),
        (post([{**good[0], "values": {"arousal": 3}}] + good[1:]), "ratings[0]: space 'emotion' is categorical: give 'label', not 'values'"),
        (post([{**good[0], "id": None}] + good[1:]), "ratings[0].id: every rating needs the clip's id"),
        (post(good + [{**good[1], "label": "sad"}, {**good[3]}]), "ratings: clip ids sent more than once: 'e1', 'e3'"),
        (post([{**good[0], secret: 1}] + good[1:]), "ratings[0]." + secret + ": Extra inputs are not permitted"),
        (post([]), "ratings: List should have at least 1 item after validation, not 0"),
        (post(good, who=" padded"), "listener id has leading or trailing white space"),
        (post(good, who="x" * 300), "listener id is 300 bytes of UTF-8; at most 256"),
        (post(good, who="听" * 100), "listener id is 300 bytes of UTF-8; at most 256"),
        (http.post("/predict", content=json.dumps({"clips": [{"features": [0.0] * (D - 1) + [float("nan")]}]}),
                   headers={"content-type": "application/json"}), "clips[0].features: contain NaN or infinite values"),
        (http.post("/predict", content=b"{not json", headers={"content-type": "application/json"}), "body: Invalid JSON"),
        (http.post("/predict", json={"model": "nope", "clips": [{"features": [0.0] * D}]}), "no model named 'nope'"),
        (http.get("/listeners?limit=0"), "limit: Input should be greater than or equal to 1"),
    ]
    for r, want in cases:
        assert r.status_code in (404, 422) and want in r.json()["detail"], (want, r.status_code, r.text)
        if "Extra inputs" not in want:  # an unknown field is named by its name; no value is ever shown
            assert secret not in r.text and "zzzzzzzzzz" not in r.text
    assert http.get("/listeners").json()["listeners"] == []  # nothing half-written
    assert http.get(path("carol")).status_code == 404


def test_audio_is_downmixed_resampled_and_cached_per_process_then_forgotten(svc):
    http, service, _ = svc
    fz = service.models[next(iter(service.models))].featurizer
    assert fz.sample_rate == 16000
    stereo8k = wav(150, sr=8000, channels=2)
    x = fz.decode(stereo8k, "clip")
    assert x.ndim == 1 and len(x) == 16000  # one second at the model's rate, one channel
    ratings = [{"id": f"w{i}", "audio": b64(wav(110 + 20 * i, seed=i)), "label": CAT.classes[i % 4]} for i in range(4)]
    r = http.post(path("dana", "/ratings"), json={"ratings": ratings})
    assert r.status_code == 200, r.text
    assert len(fz) == 4 and fz._extractor is not None
    extractor = fz._extractor
    q = http.post("/predict", json={"listener": "dana", "clips": [{"id": "q", "audio": b64(stereo8k)}]})
    assert q.status_code == 200 and len(fz) == 5 and fz._extractor is extractor  # one extractor per process
    # the 8 kHz stereo upload predicts like its features computed at 16 kHz mono
    from perser.audio import resample
    from perser.features import extract

    mono, sr = sf.read(io.BytesIO(stereo8k), dtype="float32")
    f = service.db.url.replace("sqlite:///", "") + ".wav"
    sf.write(f, resample(mono.mean(axis=1), sr, 16000), 16000, subtype="FLOAT")
    feats = extract([f], "egemaps", cache_dir=service.db.url.replace("sqlite:///", "") + ".cache", progress=False).X[0]
    p = http.post("/predict", json={"listener": "dana", "clips": [{"features": feats.tolist()}]}).json()["predictions"][0]
    np.testing.assert_allclose(list(p["proba"].values()), list(q.json()["predictions"][0]["proba"].values()), rtol=1e-4, atol=1e-5)
    stored = http.get(path("dana", "/ratings")).json()["ratings"]
    assert all(len(s["audio_digest"]) == 64 for s in stored)
    assert http.delete(path("dana")).status_code == 200
    assert len(fz) == 1  # the listener's clips left the cache; the predicted clip stays
    # long, silent and undecodable audio: named, no server path shown
    long = http.post("/predict", json={"clips": [{"id": "l", "audio": b64(wav(seconds=31))}]})
    assert long.status_code == 422 and long.json()["detail"] == "clips[0]: audio is 31.0 s long; at most 30 s per clip"
    buf = io.BytesIO()
    sf.write(buf, np.zeros(16000, dtype=np.float32), 16000, format="WAV")
    quiet = http.post("/predict", json={"clips": [{"audio": b64(buf.getvalue())}]})
    assert quiet.status_code == 422 and quiet.json()["detail"].startswith("clips[0]: silent audio") and "/tmp" not in quiet.text
    junk = http.post("/predict", json={"clips": [{"audio": b64(b"RIFF1234 not audio at all")}]})
    assert junk.status_code == 422 and "clips[0]: 'audio' is not a readable audio file" in junk.json()["detail"]


def test_listeners_are_paginated(svc):
    http, service, (W, label) = svc
    body, _ = enroll_body(W, label)
    names = [f"p{i:02d}" for i in range(25)]
    for n in names:
        assert http.post(path(n, "/ratings"), json=body).status_code == 200
    seen, after, pages = [], None, 0
    while True:
        page = http.get("/listeners", params={"limit": 10, **({"after": after} if after else {})}).json()
        seen += [x["listener"] for x in page["listeners"]]
        pages += 1
        after = page["next"]
        if after is None:
            break
    assert seen == names and pages == 3
    assert http.get("/listeners", params={"limit": 5000}).status_code == 422


def test_metrics_and_access_log_with_request_ids(svc, caplog):
    http, service, (W, label) = svc
    body, _ = enroll_body(W, label)
    with caplog.at_level(logging.INFO, logger="perser.serve.access"):
        r = http.post(path("m1", "/ratings"), json=body, headers={"X-Request-ID": "req-abc.1"})
        r2 = http.get("/health")
    assert r.headers["x-request-id"] == "req-abc.1" and len(r2.headers["x-request-id"]) == 32
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "perser.serve.access"]
    assert any(line.startswith("req-abc.1 ") and '"POST /listeners/{listener}/ratings" 200' in line for line in lines)
    text = http.get("/metrics").text
    assert 'perser_requests_total{method="POST",route="/listeners/{listener}/ratings",status="200"}' in text
    assert 'perser_request_seconds_bucket{le="0.001",route="/health"}' in text
    assert 'perser_model_listeners{model="similar-0",state="ready"} 1.0' in text
    assert "perser_enrollments_total" in text


def test_openapi_documents_the_request_bodies(svc):
    http, *_ = svc
    doc = http.get("/openapi.json").json()
    assert "RatingsRequest" in doc["components"]["schemas"] and "RatedClip" in doc["components"]["schemas"]
    assert "/listeners/{listener}/ratings" in doc["paths"]


def test_an_ssl_encoder_is_loaded_once_per_process_and_reused(tmp_path):
    """Audio through a (tiny) SSL encoder: one encoder object for every request, features
    equal to perser extract's of the same audio at the model's rate."""
    from perser.corpus.model import LabelSpace
    from perser.features import extract
    from perser.methods import RatingSet, make_method
    from perser.testing.ssl import save_tiny_model

    enc = save_tiny_model(tmp_path / "wavlm")
    space = LabelSpace("emotion", "categorical", classes=CAT.classes)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3, 32)).astype(np.float32)  # [layers, dim] of the tiny encoder
    rs = RatingSet(X=X, clip_ids=np.array([f"c{i}" for i in range(60)], dtype=object), clip_index=np.concatenate([np.arange(60)] * 2),
                   annotator_ids=np.array(["a"] * 60 + ["b"] * 60, dtype=object), y=rng.integers(0, 4, 120), space=space)
    m = make_method("similar", hidden=(8,), epochs=2, progress=False, seed=0).fit(rs)
    m.feature_spec = {"spec": f"ssl:{enc}", "shape": [3, 32]}
    m.save(tmp_path / "m")
    service = Service([tmp_path / "m"], tmp_path / "s.db")
    http = TestClient(create_app(service))
    fz = service.models["m"].featurizer
    outs = []
    for seed in range(3):
        r = http.post("/predict", json={"clips": [{"id": "a", "audio": b64(wav(120 + 30 * seed, sr=8000, seed=seed))}]})
        assert r.status_code == 200, r.text
        outs.append(r.json()["predictions"][0])
        if seed == 0:
            encoder = fz._extractor._model
        assert fz._extractor._model is encoder  # not loaded again
    mono, sr = sf.read(io.BytesIO(wav(120, sr=8000, seed=0)), dtype="float32")
    f = tmp_path / "a.wav"
    sf.write(f, mono, sr)
    x = extract([str(f)], f"ssl:{enc}", cache_dir=tmp_path / "cache", progress=False).X[0]  # resampled by the extractor
    p = http.post("/predict", json={"clips": [{"features": x.tolist()}]}).json()["predictions"][0]
    np.testing.assert_allclose(list(p["proba"].values()), list(outs[0]["proba"].values()), rtol=1e-3, atol=1e-4)


def test_concurrent_requests_for_one_new_clip_extract_it_once(svc):
    import threading

    from perser.serve import PredictRequest

    http, service, _ = svc
    fz = service.models[next(iter(service.models))].featurizer
    ex = fz.extractor
    calls = []
    run = ex.run
    ex.run = lambda jobs, sink, workers=1: (calls.append(len(jobs)), run(jobs, sink, workers))
    clip = b64(wav(133, seed=9))
    outs = []
    threads = [threading.Thread(target=lambda: outs.append(service.predict(PredictRequest(clips=[{"audio": clip}]))))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outs) == 4 and calls == [1] and len(fz) == 1
    assert len({json.dumps(o["predictions"]) for o in outs}) == 1


def test_the_background_thread_reenrolls_listeners_when_the_app_runs(trained, tmp_path):
    import time

    m1, m2, rs, W, label = trained
    store = tmp_path / "s.db"
    s1 = Service([m1], store)
    body, _ = enroll_body(W, label)
    from perser.serve import RatingsRequest

    for i in range(5):
        s1.add_ratings(f"b{i}", RatingsRequest(**body))
    s2 = Service([m2, m1], store)
    with TestClient(create_app(s2)) as http:  # the app's start-up starts the thread
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            prog = http.get("/models").json()["models"][0]["reenrollment"]
            if prog["pending"] == 0:
                break
            time.sleep(0.2)
        assert prog == {"listeners": 5, "ready": 5, "failed": 0, "pending": 0}
    assert s2._thread is None  # stopped with the app
