"""The listener service: enrollment, prediction, ratings kept, listeners across model updates."""

from __future__ import annotations

import shutil
import warnings
from urllib.parse import quote

import numpy as np
import pytest
from fastapi.testclient import TestClient

from perser.errors import PerserWarning
from perser.methods import make_method
from perser.serve import Limits, PredictRequest, RatingsRequest, Service, create_app, model_identity
from .conftest import CAT, DIM, FAST, D, make_data, ratings_json


def client(models, store, **kw):
    service = Service(models, store, **kw)
    return TestClient(create_app(service)), service  # no `with`: the background thread stays off; tests drive it


def path(listener: str, tail: str = "") -> str:
    return f"/listeners/{quote(listener, safe='')}{tail}"


def test_enroll_predict_like_the_python_api_in_both_databases(trained, store):
    m1, _, rs, W, label = trained
    http, service = client([m1], store)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((20, D)).astype(np.float32)
    who = "msp-podcast/听众-二十八个字符的中文标识符测试用例就是这样的长度了吧"  # Unicode, '/', well over 28 characters
    r = http.post(path(who, "/ratings"), json={"ratings": ratings_json(X, label(X, W["a2"]))})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["listener"] == who and body["ratings"] == 20 and body["revision"] == 1
    assert body["profiles"][m1.name]["status"] == "ready" and body["profiles"][m1.name]["profile"]["heads"] == ["a2"]
    assert http.get("/listeners").json()["listeners"][0]["listener"] == who
    got = http.get(path(who, "/ratings")).json()["ratings"]
    assert [g["clip_id"] for g in got] == sorted(f"e{i}" for i in range(20)) and got[0]["label"] in CAT.classes

    Xt = rng.standard_normal((5, D)).astype(np.float32)
    r = http.post("/predict", json={"listener": who, "clips": [{"id": f"t{i}", "features": x.tolist()} for i, x in enumerate(Xt)]})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    direct = service.models[m1.name].model
    want = direct.predict(direct.enroll(X, label(X, W["a2"]), annotator=who), Xt)
    np.testing.assert_allclose([[p["proba"][c] for c in CAT.classes] for p in preds], want.proba, rtol=1e-5, atol=1e-6)
    assert [p["label"] for p in preds] == want.labels and r.json()["model"] == m1.name
    anon = http.post("/predict", json={"clips": [{"features": Xt[0].tolist()}]}).json()["predictions"][0]
    np.testing.assert_allclose([anon["proba"][c] for c in CAT.classes], direct.predict(None, Xt[:1]).proba[0], rtol=1e-5)

    # a restarted service (another process would be the same) finds the listener and predicts the same
    http2, _ = client([m1], store)
    again = http2.post("/predict", json={"listener": who, "clips": [{"features": Xt[0].tolist()}]}).json()["predictions"][0]
    assert again["label"] == preds[0]["label"]
    np.testing.assert_allclose(list(again["proba"].values()), list(preds[0]["proba"].values()), rtol=1e-5, atol=1e-6)
    assert http2.delete(path(who)).json() == {"deleted": who}
    assert http2.get(path(who)).status_code == 404 and http2.get("/listeners").json()["listeners"] == []


def test_model_identity_is_weights_and_config_only(trained, tmp_path):
    m1, m2, *_ = trained
    copy = tmp_path / "copy"
    shutil.copytree(m1, copy)
    (copy / "README.md").write_text("notes about this model")
    (copy / "checkpoints").mkdir()
    assert model_identity(copy) == model_identity(m1) != model_identity(m2)


def test_incremental_ratings_min_k_and_replacement(trained, tmp_path):
    m1, _, rs, W, label = trained
    http, service = client([m1], tmp_path / "s.db")
    X = np.random.default_rng(1).standard_normal((8, D)).astype(np.float32)
    good = ratings_json(X, label(X, W["a1"]))
    r = http.post(path("ann", "/ratings"), json={"ratings": good[:2]})
    assert r.status_code == 200 and r.json()["profiles"][m1.name]["status"] == "failed"
    assert "needs at least 4" in r.json()["profiles"][m1.name]["error"] and "'similar'" in r.json()["profiles"][m1.name]["error"]
    p = http.post("/predict", json={"listener": "ann", "clips": [{"features": X[0].tolist()}]})
    assert p.status_code == 409 and "'similar' needs at least 4" in p.json()["detail"]
    r = http.post(path("ann", "/ratings"), json={"ratings": good[2:6]})
    assert r.json()["ratings"] == 6 and r.json()["profiles"][m1.name] | {"profile": None} == {
        "status": "ready", "k": 6, "stale": False, "method": "similar", "profile": None}
    # re-rating a clip replaces it; the profile is recomputed from all six ratings
    relabel = {**good[0], "label": "sad" if good[0]["label"] != "sad" else "ang"}
    r = http.post(path("ann", "/ratings"), json={"ratings": [relabel]})
    assert (r.json()["replaced"], r.json()["added"], r.json()["ratings"], r.json()["revision"]) == (1, 0, 6, 3)
    stored = {g["clip_id"]: g["label"] for g in http.get(path("ann", "/ratings")).json()["ratings"]}
    assert stored["e0"] == relabel["label"] and len(stored) == 6
    model = service.models[m1.name].model
    ys = [CAT.classes.index(stored[f"e{i}"]) for i in range(6)]
    want = model.enroll(X[:6], np.array(ys), annotator="ann").data["heads"]
    assert http.get(path("ann")).json()["profiles"][m1.name]["profile"]["heads"] == want
    # PUT replaces everything and needs the minimum K up front, naming the method
    r = http.put(path("ann", "/ratings"), json={"ratings": good[:3]})
    assert r.status_code == 422 and "method 'similar' needs at least 4" in r.json()["detail"]
    r = http.put(path("ann", "/ratings"), json={"ratings": good[4:8]})
    assert r.status_code == 200 and r.json()["ratings"] == 4 and r.json()["replaced"] == 0


def test_a_new_model_reenrolls_every_listener_and_old_profiles_serve_meanwhile(trained, tmp_path):
    m1, m2, rs, W, label = trained
    store = tmp_path / "s.db"
    http1, s1 = client([m1], store)
    rng = np.random.default_rng(2)
    X = rng.standard_normal((6, D)).astype(np.float32)
    for i in range(12):
        assert http1.post(path(f"L{i}", "/ratings"), json={"ratings": ratings_json(X, label(X, W[f"a{i % 4}"]))}).status_code == 200
    assert http1.post(path("few", "/ratings"), json={"ratings": ratings_json(X[:2], label(X[:2], W["a0"]))}).status_code == 200
    # the retrained model is served beside the old one and made the default
    http, s = client([m2, m1], store, default=m2.name)
    prog = {m["name"]: m["reenrollment"] for m in http.get("/models").json()["models"]}
    assert prog[m2.name] == {"listeners": 13, "ready": 0, "failed": 0, "pending": 13}
    assert prog[m1.name] == {"listeners": 13, "ready": 12, "failed": 1, "pending": 0}
    q = {"listener": "L3", "clips": [{"features": X[0].tolist()}]}
    before = http.post("/predict", json=q).json()
    assert before["model"] == m1.name  # the old profile answers until the new one is ready
    s.reenroll_step(s.models[m2.name], batch=5)
    assert http.get("/models").json()["models"][0]["reenrollment"]["pending"] == 8
    s.reenroll_all()
    prog = http.get("/models").json()["models"][0]["reenrollment"]
    assert prog == {"listeners": 13, "ready": 12, "failed": 1, "pending": 0}  # none lost; 'few' says why
    after = http.post("/predict", json=q).json()
    assert after["model"] == m2.name
    m = s.models[m2.name].model
    want = m.predict(m.enroll(X, label(X, W["a3"]), annotator="L3"), X[:1]).proba[0]
    np.testing.assert_allclose([after["predictions"][0]["proba"][c] for c in CAT.classes], want, rtol=1e-5, atol=1e-6)
    assert "needs at least 4" in http.get(path("few")).json()["profiles"][m2.name]["error"]
    # a model named in the request answers for itself
    assert http.post("/predict", json={**q, "model": m1.name}).json()["model"] == m1.name
    assert http.post("/predict", json={**q, "model": "nope"}).status_code == 404


def test_only_the_new_model_served_enrolls_on_the_spot(trained, tmp_path):
    m1, m2, rs, W, label = trained
    store = tmp_path / "s.db"
    http1, _ = client([m1], store)
    X = np.random.default_rng(3).standard_normal((6, D)).astype(np.float32)
    http1.post(path("z", "/ratings"), json={"ratings": ratings_json(X, label(X, W["a1"]))})
    http, s = client([m2], store)
    r = http.post("/predict", json={"listener": "z", "clips": [{"features": X[0].tolist()}]})
    assert r.status_code == 200 and r.json()["model"] == m2.name
    assert http.get("/models").json()["models"][0]["reenrollment"]["ready"] == 1


def test_a_listener_whose_features_do_not_fit_a_new_model_is_reported_not_dropped(trained, tmp_path):
    m1, _, rs, W, label = trained
    store = tmp_path / "s.db"
    http1, _ = client([m1], store)
    X = np.random.default_rng(3).standard_normal((6, D)).astype(np.float32)
    http1.post(path("y", "/ratings"), json={"ratings": ratings_json(X, label(X, W["a1"]))})
    other = make_method("similar", **FAST).fit(rs)
    other.feature_spec = {"spec": "compare", "shape": [D]}  # another kind of input
    other.save(tmp_path / "other")
    http, s = client([tmp_path / "other"], store)
    s.reenroll_all()
    prof = http.get(path("y")).json()["profiles"]["other"]
    assert prof["status"] == "failed" and "6 of 6 ratings have no features for this model's input (compare" in prof["error"]
    assert http.get("/models").json()["models"][0]["reenrollment"]["failed"] == 1


def test_dimensional_and_multilabel_spaces(tmp_path):
    from perser.corpus.model import LabelSpace
    from perser.methods import RatingSet

    rs, W, label = make_data(DIM)
    make_method("similar", **FAST).fit(rs).save(tmp_path / "dim")
    http, _ = client([tmp_path / "dim"], tmp_path / "d.db")
    X = np.random.default_rng(3).standard_normal((8, D)).astype(np.float32)
    good = ratings_json(X, label(X, W["a3"]), DIM)
    bad = [dict(r) for r in good]
    bad[4] = {**bad[4], "values": {"arousal": 6.0, "valence": 3.0}}
    r = http.post(path("eve", "/ratings"), json={"ratings": bad})
    assert r.status_code == 422 and r.json()["detail"] == "ratings[4]: 'values.arousal' is outside the scale [1, 5]"
    bad[4] = {**good[4], "values": {"arousal": 3.0}}
    r = http.post(path("eve", "/ratings"), json={"ratings": bad})
    assert r.status_code == 422 and "missing ['valence']" in r.json()["detail"]
    r = http.post(path("eve", "/ratings"), json={"ratings": good})
    assert r.status_code == 200 and r.json()["profiles"]["dim"]["profile"]["heads"] == ["a3"]
    v = http.post("/predict", json={"listener": "eve", "clips": [{"features": X[0].tolist()}]}).json()
    assert set(v["predictions"][0]["values"]) == {"arousal", "valence"}

    tags = LabelSpace("tags", "multilabel", classes=("ang", "hap", "neu", "sad"))
    rng = np.random.default_rng(0)
    Xm = rng.standard_normal((150, D)).astype(np.float32)
    Wm = {f"a{i}": rng.standard_normal((D, 4)) for i in range(3)}
    ys = [(Xm @ w / np.sqrt(D) > 0.3).astype(np.float32) for w in Wm.values()]
    rsm = RatingSet(X=Xm, clip_ids=np.array([f"c{i}" for i in range(150)], dtype=object),
                    clip_index=np.concatenate([np.arange(150)] * 3),
                    annotator_ids=np.concatenate([[a] * 150 for a in Wm]).astype(object), y=np.concatenate(ys), space=tags)
    make_method("similar", **FAST).fit(rsm).save(tmp_path / "tags")
    http, _ = client([tmp_path / "tags"], tmp_path / "m.db")
    Xe = rng.standard_normal((12, D)).astype(np.float32)
    ye = Xe @ Wm["a1"] / np.sqrt(D) > 0.3
    ratings = [{"id": f"c{i}", "features": x.tolist(), "label": [c for c, on in zip(tags.classes, row) if on]}
               for i, (x, row) in enumerate(zip(Xe, ye))]
    bad = [dict(r) for r in ratings]
    bad[7] = {**bad[7], "label": ["hap", "bored"]}
    r = http.post(path("gil", "/ratings"), json={"ratings": bad})
    assert r.status_code == 422 and "ratings[7]" in r.json()["detail"] and "'bored'" in r.json()["detail"]
    r = http.post(path("gil", "/ratings"), json={"ratings": ratings})
    assert r.status_code == 200 and r.json()["profiles"]["tags"]["profile"]["heads"] == ["a1"]
    p = http.post("/predict", json={"listener": "gil", "clips": [{"features": Xe[0].tolist()}]}).json()["predictions"][0]
    assert p["label"] == [c for c in tags.classes if p["proba"][c] >= p["threshold"]]


@pytest.mark.parametrize("method", ["finetune", "meta", "consensus", "mean-annotator"])
def test_every_method_enrolls_and_predicts_through_the_service(tmp_path, method):
    """Profiles with adapted weights (finetune, meta) are stored as safetensors bytes and used;
    listener-independent methods enroll too."""
    rs, W, label = make_data(CAT, n_clips=120)
    params = {**FAST, "epochs": 4}
    if method == "meta":
        params.update(meta_epochs=1, iters_per_epoch=3, k_support=5, k_query=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PerserWarning)
        m = make_method(method, **params).fit(rs)
    m.save(tmp_path / "m")
    http, service = client([tmp_path / "m"], tmp_path / "s.db")
    X = np.random.default_rng(7).standard_normal((10, D)).astype(np.float32)
    r = http.post(path("hal", "/ratings"), json={"ratings": ratings_json(X, label(X, W["a0"]))})
    assert r.status_code == 200 and r.json()["profiles"]["m"]["status"] == "ready", r.text
    q = [{"features": x.tolist()} for x in X[:3]]
    got = http.post("/predict", json={"listener": "hal", "clips": q}).json()["predictions"]
    fresh = Service([tmp_path / "m"], tmp_path / "s.db").models["m"].model  # a fresh load agrees
    want = fresh.predict(fresh.enroll(X, label(X, W["a0"]), annotator="hal"), X[:3]).proba
    np.testing.assert_allclose([[p["proba"][c] for c in CAT.classes] for p in got], want, rtol=1e-4, atol=1e-5)


def test_service_api_for_other_routers(trained, tmp_path):
    """The documented service API: model_for, ratings, authenticate/authorize."""
    from perser.serve import UnknownListener, UnknownModel
    from perser.serve.keys import Forbidden, Principal

    m1, m2, rs, W, label = trained
    s = Service([f"new={m2}", f"old={m1}"], tmp_path / "s.db", limits=Limits(min_k={"similar": 2}))
    assert s.model_for().name == "new" and s.model_for("old").path == m1
    with pytest.raises(UnknownModel):
        s.model_for("x")
    X = np.random.default_rng(0).standard_normal((2, D)).astype(np.float32)
    out = s.add_ratings("u1", RatingsRequest(ratings=ratings_json(X, [0, 1])))
    assert out["profiles"]["new"]["status"] == out["profiles"]["old"]["status"] == "ready"  # min K of 2 taken
    assert [r["clip_id"] for r in s.ratings("u1")] == ["e0", "e1"]
    with pytest.raises(UnknownListener):
        s.ratings("nobody")
    assert s.authenticate(None) == Principal("open", "open")  # no keys yet
    s.authorize(Principal("k", "listener:u1"), "u1")
    with pytest.raises(Forbidden):
        s.authorize(Principal("k", "listener:u1"), "u2")
    with pytest.raises(Forbidden):
        s.authorize(Principal("k", "listener:u1"), admin=True)
    assert s.predict(PredictRequest(listener="u1", model="old", clips=[{"features": X[0].tolist()}]))["model"] == "old"
