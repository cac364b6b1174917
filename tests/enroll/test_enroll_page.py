"""The enrollment endpoints and page over HTTP (FastAPI's test client)."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import torch

from perser.enroll import make_strategy
from perser.methods import load_model
from perser.serve import Service, create_app
from perser.serve.enroll_page import EnrollmentPool, include_enroll_page

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def built(tmp_path_factory, pagekit):
    root = tmp_path_factory.mktemp("page")
    return (*pagekit.build(root), pagekit)


@pytest.fixture
def client(built, tmp_path):
    from fastapi.testclient import TestClient

    model_dir, pool_csv, feats, X, W, kit = built
    service = Service([model_dir], tmp_path / "s.db", key_cache_seconds=0)
    pool = EnrollmentPool.from_source(pool_csv, service.model_for(None).model, features=feats)
    app = create_app(service, start_background=False)
    page = include_enroll_page(app, service, pool, target_k=4)
    return TestClient(app), service, page


def test_page_and_files_are_served(client):
    c, _, _ = client
    r = c.get("/")
    assert r.status_code == 200 and "listener key" in r.text and "/page/enroll.js" in r.text
    assert c.get("/page/enroll.js").headers["content-type"].startswith("text/javascript")
    assert c.get("/page/../app.py").status_code == 404
    cfg = c.get("/page-config").json()
    assert cfg["pool"] == 40 and cfg["space"]["classes"] == ["ang", "hap", "neu", "sad"] and cfg["heads"]
    wav = c.get("/pool/c003/audio")
    assert wav.status_code == 200 and wav.content[:4] == b"RIFF"


def test_next_answers_and_closest_listener(client, built):
    c, service, page = client
    model_dir, pool_csv, feats, X, W, kit = built
    first = c.get("/listeners/lena/next?n=3").json()
    assert first["answered"] == 0 and len(first["clips"]) == 3
    # the same choice as the strategy through the Python API
    model = load_model(model_dir)
    sel = make_strategy("active").fit(model).select(X[:40], 3)
    assert [x["clip_id"] for x in first["clips"]] == [f"c{i:03d}" for i in sel.indices]
    assert c.get("/listeners/lena/enrollment").status_code == 404
    # lena labels like seen listener a2
    asked = []
    for _ in range(6):
        nxt = c.get("/listeners/lena/next").json()["clips"][0]["clip_id"]
        assert nxt not in asked
        asked.append(nxt)
        i = int(nxt[1:])
        lab = kit.CAT.classes[int(kit.label(kit.CAT, X[i:i + 1], W["a2"])[0])]
        st = c.post("/listeners/lena/answers", json={"clip_id": nxt, "label": lab}).json()
    assert st["answered"] == 6 and sorted(a["clip_id"] for a in st["answers"]) == sorted(asked)
    assert st["closest"][0]["annotator"] == "a2" and st["confidence"] > 0.5
    assert st["profile"]["status"] == "ready" and st["profile"]["profile"]["heads"] == ["a2"]
    # the stored profile is the one of all the answers: the service predicts with it
    cmp = c.post("/listeners/lena/compare", json={"clip_id": "c039"}).json()
    assert set(cmp) >= {"personal", "consensus"}
    model = service.model_for(None).model
    y = np.array([kit.CAT.classes.index(a["label"]) for a in st["answers"]])
    direct = model.predict(model.enroll(X[[int(a["clip_id"][1:]) for a in st["answers"]]], y), X[39:40])
    assert cmp["personal"]["label"] == kit.CAT.classes[int(np.argmax(direct.proba[0]))]
    # the answers are the listener's ratings in the service's database
    assert sorted(r["clip_id"] for r in service.ratings("lena")) == sorted(asked)
    # the pool runs out
    for cid in page.pool.ids:
        if cid not in asked:
            c.post("/listeners/lena/answers", json={"clip_id": cid, "label": "neu"})
    assert c.get("/listeners/lena/next").json()["clips"] == []


def test_uploaded_audio_is_compared(client, built, tmp_path):
    c, _, _ = client
    kit = built[-1]
    r = c.post("/listeners/max/compare", json={"clip_id": "c001"})
    assert r.status_code == 404  # no ratings yet: no such listener
    for cid, lab in (("c001", "hap"), ("c002", "sad"), ("c003", "neu"), ("c004", "hap")):  # the service's minimum K
        c.post("/listeners/max/answers", json={"clip_id": cid, "label": lab})
    kit.tone(tmp_path / "mine.wav", 220.0)
    b64 = base64.b64encode((tmp_path / "mine.wav").read_bytes()).decode()
    r = c.post("/listeners/max/compare", json={"audio": b64})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["clip"] == "upload" and abs(sum(doc["personal"]["proba"].values()) - 1) < 1e-6


def test_bad_requests_name_the_culprit(client):
    c, _, _ = client
    r = c.post("/listeners/zoe/answers", json={"clip_id": "nope", "label": "hap"})
    assert r.status_code == 422 and "'nope' is not in the enrollment pool" in r.json()["detail"]
    r = c.post("/listeners/zoe/answers", json={"clip_id": "c001", "label": "furious"})
    assert r.status_code == 422 and "furious" in r.json()["detail"]
    assert c.get("/listeners/zoe/enrollment").status_code == 404  # nothing was stored
    r = c.post("/listeners/zoe/answers", json={"clip_id": "c001", "values": {"arousal": 3}})
    assert r.status_code == 422 and "give 'label'" in r.json()["detail"]
    assert c.get("/listeners/zoe/next?n=0").status_code == 422
    r = c.post("/listeners/zoe/compare", json={})
    assert r.status_code == 422


def test_pool_sources_are_checked(built, tmp_path):
    model_dir, pool_csv, feats, X, W, kit = built
    model = load_model(model_dir)
    (tmp_path / "bad.csv").write_text("clip_id\nc001\n")
    with pytest.raises(Exception, match="needs a 'path' column"):
        EnrollmentPool.from_source(tmp_path / "bad.csv", model, features=feats)
    (tmp_path / "gone.csv").write_text("clip_id,path\nc001,/nowhere/c001.wav\n")
    with pytest.raises(Exception, match="does not exist"):
        EnrollmentPool.from_source(tmp_path / "gone.csv", model, features=feats)
    # without a features file the model's extractor (eGeMAPS) computes the pool's features
    pool = EnrollmentPool.from_source(pool_csv, model, cache_dir=tmp_path / "cache")
    assert pool.X.shape == (40, 88) and np.isfinite(pool.X).all()
