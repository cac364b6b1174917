"""The method contract: Personalizer's abstract interface, capabilities, registry and model folder."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from perser.errors import ConfigError
from perser.methods import Personalizer, Predictions, Profile, get_method, make_method
from perser.methods import base as mbase


def test_personalizer_is_abstract_and_declares_its_capabilities():
    with pytest.raises(TypeError, match="abstract"):
        Personalizer()

    class Minimal(Personalizer):
        def fit(self, train, valid=None):
            return self

        def enroll(self, X, y, annotator=None):
            return Profile("minimal", annotator)

        def predict(self, profile, X):
            return Predictions(self.space_, values=np.zeros((len(X), 1)))

    m = Minimal()
    assert not any(m.has(c) for c in Personalizer.CAPABILITIES) and m.feature_spec is None
    with pytest.raises(ConfigError, match="cannot be saved"):
        m.save("nowhere")
    with pytest.raises(ValueError, match="unknown capability"):
        m.has("fly")
    sim = make_method("similar")
    assert sim.has("seen_profile") and sim.has("fit_signature") and sim.has("adopt_fit")
    assert make_method("consensus").has("fit_signature") and not make_method("consensus").has("seen_profile")


def test_param_names_follow_kwargs_to_the_bases():
    names = get_method("similar").param_names()
    assert {"hidden", "epochs", "seed", "device"} <= set(names) and "self" not in names and "kwargs" not in names
    assert set(make_method("similar").get_params()) == set(names)


def test_an_alias_does_not_rename_the_class(monkeypatch):
    monkeypatch.setattr(mbase, "_REGISTRY", dict(mbase._REGISTRY))
    mbase.register("similar-annotator", "perser.methods.similar:SimilarAnnotator")
    klass = get_method("similar-annotator")
    assert klass is get_method("similar") and klass.name == "similar"
    assert make_method("similar-annotator").name == "similar"


def test_load_model_reads_the_folder_format_without_the_neural_methods(tmp_path):
    code = (
        "import sys, json, pathlib\n"
        "from perser.methods import load_model\n"
        "from perser.methods.persist import read_config\n"
        f"p = pathlib.Path({str(tmp_path)!r})\n"
        "(p / 'config.json').write_text(json.dumps({'method': 'consensus', 'params': {}, 'space': {}, 'input_shape': [2]}))\n"
        "(p / 'model.safetensors').write_bytes(b'')\n"
        "assert read_config(p)['method'] == 'consensus'\n"
        "assert 'perser.methods.neural' not in sys.modules, 'read_config imported the neural methods'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    from perser.methods.persist import read_config

    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ConfigError, match="model.safetensors is missing"):
        read_config(tmp_path)
