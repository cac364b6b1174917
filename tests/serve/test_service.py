"""The enrollment service: Service in Python, its HTTP API, the profile store, ``perser serve``."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from perser.corpus.model import LabelSpace
from perser.errors import ConfigError, PerserWarning
from perser.methods import RatingSet, make_method
from perser.serve import PredictRequest, ProfileStore, Service, create_app
from perser.serve.store import model_fingerprint

torch.set_num_threads(1)

D = 88  # eGeMAPS-sized features, so that uploaded audio goes through real openSMILE extraction
CAT = LabelSpace("emotion", "categorical", classes=("ang", "hap", "neu", "sad"))
DIM = LabelSpace("avd", "dimensional", dimensions=("arousal", "valence"), scale=(1, 5))
FAST = dict(hidden=(16,), dropout=0.0, epochs=15, batch_size=64, lr=3e-3, patience=0, progress=False, seed=0)


def _data(space: LabelSpace, n_clips: int = 150, n_ann: int = 4, seed: int = 0):
    """Annotators who label features through their own weight matrices (a planted signal)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_clips, D)).astype(np.float32)
    W = {f"a{i}": rng.standard_normal((D, space.n_outputs)) for i in range(n_ann)}

    def label(x, w):
        s = x @ w / np.sqrt(D) * 2
        if space.kind == "categorical":
            return s.argmax(1).astype(np.int64)
        return (3 + 2 * np.tanh(s)).astype(np.float32)

    ys = [label(X, w) for w in W.values()]
    rs = RatingSet(X=X, clip_ids=np.array([f"c{i}" for i in range(n_clips)], dtype=object),
                   clip_index=np.concatenate([np.arange(n_clips)] * n_ann),
                   annotator_ids=np.concatenate([[a] * n_clips for a in W]).astype(object),
                   y=np.concatenate(ys), space=space)
    return rs, W, label


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small `similar` model (categorical) saved as a folder, with its data."""
    rs, W, label = _data(CAT)
    model = make_method("similar", **FAST).fit(rs)
    model.feature_spec = {"spec": "egemaps", "shape": [D]}
    path = tmp_path_factory.mktemp("model") / "similar"
    model.save(path)
    return path, rs, W, label


def _ratings(X, y, space=CAT):
    if space.kind == "categorical":
        return [{"id": f"e{i}", "features": x.tolist(), "label": space.classes[int(t)]} for i, (x, t) in enumerate(zip(X, y))]
    return [{"id": f"e{i}", "features": x.tolist(), "values": dict(zip(space.dimensions, map(float, t)))}
            for i, (x, t) in enumerate(zip(X, y))]


@pytest.fixture
def client(trained, tmp_path):
    from fastapi.testclient import TestClient

    path = trained[0]
    service = Service(path, tmp_path / "profiles", cache_dir=tmp_path / "cache")
    return TestClient(create_app(service)), service


def test_enroll_picks_the_source_annotator_and_predicts_like_the_python_api(client, trained):
    http, service = client
    _, rs, W, label = trained
    rng = np.random.default_rng(5)
    X = rng.standard_normal((20, D)).astype(np.float32)
    y = label(X, W["a2"])  # a new listener who hears like seen annotator a2
    r = http.post("/enroll", json={"annotator": "alice", "ratings": _ratings(X, y)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["annotator"] == "alice" and body["k"] == 20 and body["method"] == "similar"
    assert body["profile"]["heads"] == ["a2"]
    assert http.get("/profiles").json() == {"annotators": ["alice"]}
    assert http.get("/profiles/alice").json()["profile"]["heads"] == ["a2"]

    Xt = rng.standard_normal((5, D)).astype(np.float32)
    r = http.post("/predict", json={"annotator": "alice", "clips": [{"id": f"t{i}", "features": x.tolist()} for i, x in enumerate(Xt)]})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    direct = service.model.predict(service.store.get("alice"), Xt)
    np.testing.assert_allclose([[p["proba"][c] for c in CAT.classes] for p in preds], direct.proba, rtol=1e-5, atol=1e-6)
    assert [p["label"] for p in preds] == direct.labels and [p["id"] for p in preds] == [f"t{i}" for i in range(5)]
    # without a listener: the model's listener-independent prediction (the consensus head)
    anon = http.post("/predict", json={"clips": [{"features": Xt[0].tolist()}]}).json()["predictions"][0]
    np.testing.assert_allclose([anon["proba"][c] for c in CAT.classes], service.model.predict(None, Xt[:1]).proba[0], rtol=1e-5)
    assert anon["id"] == "0"


def test_profiles_persist_and_the_store_belongs_to_one_model(trained, tmp_path):
    path, rs, W, label = trained
    s1 = Service(path, tmp_path / "p")
    X = np.random.default_rng(1).standard_normal((10, D)).astype(np.float32)
    from perser.serve import EnrollRequest

    s1.enroll(EnrollRequest(annotator="msp-podcast/WORKER7", ratings=_ratings(X, label(X, W["a1"]))))
    s2 = Service(path, tmp_path / "p")  # a restarted service finds the profile
    assert s2.store.annotators() == ["msp-podcast/WORKER7"]
    assert (tmp_path / "p" / "profiles" / "msp-podcast%2FWORKER7" / "profile.json").is_file()
    a = s1.predict(PredictRequest(annotator="msp-podcast/WORKER7", clips=[{"features": X[0].tolist()}]))
    b = s2.predict(PredictRequest(annotator="msp-podcast/WORKER7", clips=[{"features": X[0].tolist()}]))
    assert a == b
    # another model's store is refused, naming the folder
    other = tmp_path / "other-model"
    m = make_method("similar", **{**FAST, "seed": 1}).fit(rs)
    m.save(other)
    assert model_fingerprint(other) != model_fingerprint(path)
    with pytest.raises(ConfigError, match="belongs to another model"):
        Service(other, tmp_path / "p")


def test_bad_requests_name_the_culprit_and_write_nothing(client, trained):
    http, service = client
    _, rs, W, label = trained
    X = np.random.default_rng(2).standard_normal((6, D)).astype(np.float32)
    good = _ratings(X, label(X, W["a0"]))

    def enroll(ratings, annotator="bob", **kw):
        return http.post("/enroll", json={"annotator": annotator, "ratings": ratings, **kw})

    r = enroll(good[:2] + [{**good[2], "label": "joy"}])
    assert r.status_code == 422 and "'joy'" in r.json()["detail"] and "ratings[2]" in r.json()["detail"]
    r = enroll([{**good[0], "features": [0.0] * 10}] + good[1:])
    assert r.status_code == 422 and "ratings[0]" in r.json()["detail"] and "[10]" in r.json()["detail"]
    r = http.post("/enroll", content=json.dumps({"annotator": "bob", "ratings": [{**good[0], "features": [float("nan")] * D}]}),
                  headers={"content-type": "application/json"})  # Python's json writes NaN; the service refuses it
    assert r.status_code == 422 and "NaN" in r.json()["detail"]
    r = enroll([{"id": "x", "label": "hap"}])
    assert r.status_code == 422 and "exactly one of 'features' and 'audio'" in r.json()["detail"]
    r = enroll([{"id": "x", "audio": "not base64!!", "label": "hap"}])
    assert r.status_code == 422 and "base64" in r.json()["detail"]
    r = enroll([{**good[0], "values": {"arousal": 3}}])
    assert r.status_code == 422 and "not 'values'" in r.json()["detail"]
    r = enroll(good, annotator=" ")
    assert r.status_code == 422 and "annotator" in r.json()["detail"]
    r = http.post("/enroll", json={"annotator": "bob", "ratings": good, "colour": "red"})
    assert r.status_code == 422 and "colour" in r.text
    r = http.post("/enroll", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = enroll([])
    assert r.status_code == 422 and "ratings" in r.text
    assert http.get("/profiles").json() == {"annotators": []}  # nothing half-written
    # an unknown listener, an existing profile, deletion
    assert http.post("/predict", json={"annotator": "carol", "clips": [{"features": X[0].tolist()}]}).status_code == 404
    assert enroll(good).status_code == 200
    r = enroll(good)
    assert r.status_code == 409 and "already enrolled" in r.json()["detail"]
    assert enroll(good[:3], overwrite=True).json()["k"] == 3
    assert http.delete("/profiles/bob").json() == {"deleted": "bob"}
    assert http.delete("/profiles/bob").status_code == 404
    assert http.get("/profiles/bob").status_code == 404


def test_enroll_and_predict_from_uploaded_audio(client):
    http, service = client
    sr = 16000
    rng = np.random.default_rng(0)

    def wav(f0: float, seconds: float = 1.0) -> str:
        t = np.arange(int(seconds * sr)) / sr
        x = 0.2 * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6)) + 0.005 * rng.standard_normal(len(t))
        buf = io.BytesIO()
        sf.write(buf, x.astype(np.float32), sr, format="WAV", subtype="PCM_16")
        return base64.b64encode(buf.getvalue()).decode("ascii")

    ratings = [{"id": f"w{i}", "audio": wav(110 + 20 * i), "label": CAT.classes[i % 4]} for i in range(4)]
    r = http.post("/enroll", json={"annotator": "dana", "ratings": ratings})
    assert r.status_code == 200, r.text
    clip = wav(150)
    r = http.post("/predict", json={"annotator": "dana", "clips": [{"id": "q", "audio": clip}]})
    assert r.status_code == 200, r.text
    p = r.json()["predictions"][0]
    assert p["id"] == "q" and abs(sum(p["proba"].values()) - 1) < 1e-5 and p["label"] in CAT.classes
    # the same clip sent as its eGeMAPS features gives the same prediction
    from perser.features import extract

    path = service.store.root.parent / "q.wav"
    path.write_bytes(base64.b64decode(clip))
    x = extract([str(path)], "egemaps", cache_dir=service.cache_dir, progress=False).X[0]
    q = http.post("/predict", json={"annotator": "dana", "clips": [{"features": x.tolist()}]}).json()["predictions"][0]
    np.testing.assert_allclose(list(q["proba"].values()), list(p["proba"].values()), rtol=1e-5)
    # silent audio is refused, naming the clip
    buf = io.BytesIO()
    sf.write(buf, np.zeros(sr, dtype=np.float32), sr, format="WAV")
    r = http.post("/predict", json={"clips": [{"id": "quiet", "audio": base64.b64encode(buf.getvalue()).decode()}]})
    assert r.status_code == 422 and "clips[0] ('quiet')" in r.json()["detail"]


def test_dimensional_service_checks_the_scale(tmp_path):
    from fastapi.testclient import TestClient

    rs, W, label = _data(DIM)
    m = make_method("similar", **FAST).fit(rs)
    m.save(tmp_path / "m")
    http = TestClient(create_app(Service(tmp_path / "m", tmp_path / "p")))
    assert http.get("/model").json()["space"]["dimensions"] == ["arousal", "valence"]
    X = np.random.default_rng(3).standard_normal((8, D)).astype(np.float32)
    ratings = _ratings(X, label(X, W["a3"]), DIM)
    bad = [dict(r) for r in ratings]
    bad[4] = {**bad[4], "values": {"arousal": 6.0, "valence": 3.0}}
    r = http.post("/enroll", json={"annotator": "eve", "ratings": bad})
    assert r.status_code == 422 and "ratings[4]" in r.json()["detail"] and "scale" in r.json()["detail"]
    bad[4] = {**ratings[4], "values": {"arousal": 3.0}}
    r = http.post("/enroll", json={"annotator": "eve", "ratings": bad})
    assert r.status_code == 422 and "missing ['valence']" in r.json()["detail"]
    r = http.post("/enroll", json={"annotator": "eve", "ratings": ratings})
    assert r.status_code == 200 and r.json()["profile"]["heads"] == ["a3"]
    v = http.post("/predict", json={"annotator": "eve", "clips": [{"features": X[0].tolist()}]}).json()
    assert set(v["predictions"][0]["values"]) == {"arousal", "valence"}


def test_multilabel_service_takes_lists_of_classes(tmp_path):
    from fastapi.testclient import TestClient

    tags = LabelSpace("tags", "multilabel", classes=("ang", "hap", "neu", "sad"))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, D)).astype(np.float32)
    W = {f"a{i}": rng.standard_normal((D, 4)) for i in range(3)}
    ys = [(X @ w / np.sqrt(D) > 0.3).astype(np.float32) for w in W.values()]
    rs = RatingSet(X=X, clip_ids=np.array([f"c{i}" for i in range(150)], dtype=object),
                   clip_index=np.concatenate([np.arange(150)] * 3),
                   annotator_ids=np.concatenate([[a] * 150 for a in W]).astype(object), y=np.concatenate(ys), space=tags)
    make_method("similar", **FAST).fit(rs).save(tmp_path / "m")
    http = TestClient(create_app(Service(tmp_path / "m", tmp_path / "p")))
    Xe = rng.standard_normal((12, D)).astype(np.float32)
    ye = Xe @ W["a1"] / np.sqrt(D) > 0.3
    ratings = [{"features": x.tolist(), "label": [c for c, on in zip(tags.classes, row) if on]} for x, row in zip(Xe, ye)]
    bad = [dict(r) for r in ratings]
    bad[7] = {**bad[7], "label": ["hap", "bored"]}
    r = http.post("/enroll", json={"annotator": "gil", "ratings": bad})
    assert r.status_code == 422 and "'bored'" in r.json()["detail"]
    r = http.post("/enroll", json={"annotator": "gil", "ratings": ratings})
    assert r.status_code == 200 and r.json()["profile"]["heads"] == ["a1"]
    p = http.post("/predict", json={"annotator": "gil", "clips": [{"features": Xe[0].tolist()}]}).json()["predictions"][0]
    assert p["label"] == [c for c in tags.classes if p["proba"][c] >= p["threshold"]]


@pytest.mark.parametrize("method", ["finetune", "meta", "consensus", "mean-annotator"])
def test_every_method_enrolls_and_predicts_through_the_service(tmp_path, method):
    """Profiles with adapted weights (finetune, meta) are stored and used; listener-independent
    methods enroll too (their profile is empty) and predict the same for everyone."""
    from fastapi.testclient import TestClient

    rs, W, label = _data(CAT, n_clips=120)
    params = {**FAST, "epochs": 4}
    if method == "meta":
        params.update(meta_epochs=1, iters_per_epoch=3, k_support=5, k_query=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PerserWarning)  # meta: four annotators, none left for validation
        m = make_method(method, **params).fit(rs)
    m.save(tmp_path / "m")
    service = Service(tmp_path / "m", tmp_path / "p")
    http = TestClient(create_app(service))
    X = np.random.default_rng(7).standard_normal((10, D)).astype(np.float32)
    r = http.post("/enroll", json={"annotator": "hal", "ratings": _ratings(X, label(X, W["a0"]))})
    assert r.status_code == 200, r.text
    stored = service.store.get("hal")
    assert r.json()["adapted_tensors"] == sorted(stored.tensors)
    if method in ("finetune", "meta"):
        assert stored.tensors  # adapted head weights, in profile.safetensors
        assert (tmp_path / "p" / "profiles" / "hal" / "profile.safetensors").is_file()
    q = [{"features": x.tolist()} for x in X[:3]]
    got = http.post("/predict", json={"annotator": "hal", "clips": q}).json()["predictions"]
    want = Service(tmp_path / "m", tmp_path / "p").model.predict(stored, X[:3]).proba  # a fresh load agrees
    np.testing.assert_allclose([[p["proba"][c] for c in CAT.classes] for p in got], want, rtol=1e-5, atol=1e-6)


def test_store_keys_are_safe_folder_names(tmp_path):
    store = ProfileStore(tmp_path, {"fingerprint": "x"})
    for a in ["..", ".hidden", "a/b", "x y", "ünïcode"]:
        p = store.path(a)
        assert p.parent == tmp_path / "profiles" and not p.name.startswith(".") and "/" not in p.name
    with pytest.raises(ConfigError):
        store.path("bad\nid")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_perser_serve_answers_over_http(trained, tmp_path):
    """``perser serve`` in a child process on the loopback address; bounded waits, then stopped."""
    path, rs, W, label = trained
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", "from perser.cli import main; main()", "serve", str(path), "--profiles", str(tmp_path / "p"),
                             "--port", str(port), "--cache", str(tmp_path / "cache")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    health = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.2)
        assert health == {"status": "ok", "method": "similar", "space": "emotion", "profiles": 0}, proc.stderr.read1().decode() if proc.poll() is not None else health
        X = np.random.default_rng(4).standard_normal((8, D)).astype(np.float32)
        req = urllib.request.Request(url + "/enroll", data=json.dumps({"annotator": "fay", "ratings": _ratings(X, label(X, W["a0"]))}).encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert json.loads(r.read())["profile"]["heads"] == ["a0"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert (tmp_path / "p" / "profiles" / "fay" / "profile.json").is_file()


def test_perser_serve_without_the_serve_extra_says_what_to_install(trained, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from perser.cli import serve_cmd
    from perser.testing.cli import command_app

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if `pip install perser` without [serve]
    r = CliRunner().invoke(command_app(serve_cmd), ["serve", str(trained[0]), "--profiles", str(tmp_path / "p")])
    assert isinstance(r.exception, ConfigError) and "perser[serve]" in str(r.exception)
    assert not (tmp_path / "p").exists()  # refused before anything was made
