"""A listener enrolls through the web page in a real headless browser (Chromium + selenium)."""

from __future__ import annotations

import shutil
import socket
import threading
import time

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


def _browser():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


CHROME = _browser()
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROME is None or DRIVER is None,
                                reason="needs a Chromium browser and chromedriver (Debian: apt-get install chromium "
                                       "chromium-driver); none found on PATH")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _page_server(tmp_path, pagekit, target_k: int, **build):
    """Serve the enrollment page over a pagekit model on a real uvicorn on 127.0.0.1; yield
    ``(url, service, X, W, pagekit)`` and stop the server afterwards."""
    import uvicorn

    from perser.serve import Service, create_app
    from perser.serve.enroll_page import EnrollmentPool, include_enroll_page

    model_dir, pool_csv, feats, X, W = pagekit.build(tmp_path, **build)
    service = Service([model_dir], tmp_path / "s.db", key_cache_seconds=0)
    pool = EnrollmentPool.from_source(pool_csv, service.model_for(None).model, features=feats)
    app = create_app(service, start_background=False)
    include_enroll_page(app, service, pool, target_k=target_k)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", service, X, W, pagekit
    srv.should_exit = True
    th.join(timeout=10)


@pytest.fixture
def server(tmp_path, pagekit):
    yield from _page_server(tmp_path, pagekit, target_k=5)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROME
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--autoplay-policy=no-user-gesture-required"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=DriverService(DRIVER), options=opts)
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()


def test_a_listener_enrolls_through_the_page(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url, service, X, W, kit = server
    wait = WebDriverWait(browser, 20)
    browser.get(url + "/")
    browser.find_element(By.ID, "key").send_keys("lena")
    browser.find_element(By.ID, "start").click()
    wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#labels button")))
    labels = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#labels button")]
    assert labels == list(kit.CAT.classes)
    asked = []
    for n in range(6):  # lena labels like seen listener a2
        audio = browser.find_element(By.ID, "clip-audio")
        wait.until(lambda d: audio.get_attribute("data-clip-id") not in (None, "", *asked))
        cid = audio.get_attribute("data-clip-id")
        assert audio.get_attribute("src").endswith(f"/pool/{cid}/audio")
        asked.append(cid)
        i = int(cid[1:])
        lab = kit.CAT.classes[int(kit.label(kit.CAT, X[i:i + 1], W["a2"])[0])]
        browser.find_element(By.CSS_SELECTOR, f'#labels button[data-label="{lab}"]').click()
        wait.until(EC.text_to_be_present_in_element((By.ID, "progress"), f"({n + 1} of 5"))
    assert len(set(asked)) == 6
    assert browser.find_element(By.ID, "closest").text == "a2"
    assert browser.find_element(By.ID, "confidence").text.endswith("%")
    # the stored ratings and profile: the service enrolled lena on her six answers
    assert sorted(r["clip_id"] for r in service.ratings("lena")) == sorted(asked)
    assert service.listener_info("lena")["profiles"]["model"]["profile"]["heads"] == ["a2"]
    # done: compare her prediction with the consensus on a pool clip
    browser.find_element(By.ID, "finish").click()
    wait.until(EC.visibility_of_element_located((By.ID, "compare")))
    Select(browser.find_element(By.ID, "pick")).select_by_value("c039")
    browser.find_element(By.ID, "compare-btn").click()
    wait.until(lambda d: d.find_element(By.ID, "personal").text not in ("", "-"))
    model = service.model_for(None).model
    rated = service.ratings("lena")
    y = np.array([kit.CAT.classes.index(r["label"]) for r in rated])
    prof = model.enroll(X[[int(r["clip_id"][1:]) for r in rated]], y)
    want = kit.CAT.classes[int(np.argmax(model.predict(prof, X[39:40]).proba[0]))]
    assert browser.find_element(By.ID, "personal").text == want
    assert browser.find_element(By.ID, "consensus").text in kit.CAT.classes
    assert len(browser.find_elements(By.CSS_SELECTOR, "#compare-body tr")) == 4
    # reopening the page with the key shows the state so far
    browser.get(url + "/?listener=lena")
    wait.until(EC.text_to_be_present_in_element((By.ID, "progress"), "(6 of 5"))
    assert browser.find_element(By.ID, "closest").text == "a2"


@pytest.fixture
def dim_server(tmp_path, pagekit):
    yield from _page_server(tmp_path, pagekit, target_k=3, space=pagekit.DIM)


def test_a_listener_moves_sliders_in_a_dimensional_space(dim_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    url, service, X, W, kit = dim_server
    wait = WebDriverWait(browser, 20)
    browser.get(url + "/?listener=dora")
    wait.until(EC.visibility_of_element_located((By.ID, "slider-arousal")))
    assert browser.find_elements(By.CSS_SELECTOR, "#labels button") == []
    asked = []
    for n in range(4):  # dora rates like seen listener a1
        audio = browser.find_element(By.ID, "clip-audio")
        wait.until(lambda d: audio.get_attribute("data-clip-id") not in (None, "", *asked))
        cid = audio.get_attribute("data-clip-id")
        asked.append(cid)
        i = int(cid[1:])
        vals = kit.label(kit.DIM, X[i:i + 1], W["a1"])[0]
        for d, v in zip(kit.DIM.dimensions, vals):
            browser.execute_script("document.getElementById(arguments[0]).value = arguments[1];", f"slider-{d}", float(v))
        browser.find_element(By.ID, "submit-values").click()
        wait.until(EC.text_to_be_present_in_element((By.ID, "progress"), f"({n + 1} of 3"))
    assert service.listener_info("dora")["profiles"]["model"]["profile"]["heads"] == ["a1"]
    assert browser.find_element(By.ID, "closest").text == "a1"
    browser.find_element(By.ID, "finish").click()
    browser.find_element(By.ID, "compare-btn").click()
    wait.until(lambda d: "arousal" in d.find_element(By.ID, "personal").text)
    assert "valence" in browser.find_element(By.ID, "consensus").text


def test_an_uploaded_recording_is_compared_through_the_file_input(server, browser, tmp_path):
    """The listener picks a WAV file in the page's file input; the page shows their
    personal prediction next to the consensus one for that recording."""
    import base64
    import json
    import urllib.request

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from perser.serve.service import Clip, PredictRequest

    url, service, X, W, kit = server
    for cid in ("c001", "c002", "c003", "c004", "c005"):  # max labels like seen listener a1
        i = int(cid[1:])
        lab = kit.CAT.classes[int(kit.label(kit.CAT, X[i:i + 1], W["a1"])[0])]
        req = urllib.request.Request(f"{url}/listeners/max/answers", data=json.dumps({"clip_id": cid, "label": lab}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200
    wav = tmp_path / "mine.wav"
    kit.tone(wav, 233.0, seconds=0.8)
    wait = WebDriverWait(browser, 60)
    browser.get(url + "/?listener=max")
    wait.until(EC.text_to_be_present_in_element((By.ID, "progress"), "(5 of 5"))
    browser.find_element(By.ID, "finish").click()
    wait.until(EC.visibility_of_element_located((By.ID, "compare")))
    browser.find_element(By.ID, "upload").send_keys(str(wav))  # the file chooser, as a listener fills it
    browser.find_element(By.ID, "compare-btn").click()
    wait.until(lambda d: d.find_element(By.ID, "personal").text not in ("", "-")
               or d.find_element(By.ID, "compare-error").text)
    assert browser.find_element(By.ID, "compare-error").text == ""
    # what the service predicts for this recording (real eGeMAPS extraction of the upload)
    b64 = base64.b64encode(wav.read_bytes()).decode()
    name = service.model_for(None).name
    clip = Clip(id="upload", audio=b64)
    personal = service.predict(PredictRequest(listener="max", model=name, clips=[clip]))["predictions"][0]
    consensus = service.predict(PredictRequest(model=name, clips=[clip]))["predictions"][0]
    assert browser.find_element(By.ID, "personal").text == personal["label"]
    assert browser.find_element(By.ID, "consensus").text == consensus["label"]
    rows = {r.find_element(By.TAG_NAME, "th").text: [td.text for td in r.find_elements(By.TAG_NAME, "td")]
            for r in browser.find_elements(By.CSS_SELECTOR, "#compare-body tr")}
    assert set(rows) == set(kit.CAT.classes)
    for c in kit.CAT.classes:  # the table shows the upload's probabilities, not a pool clip's
        assert rows[c] == [f"{100 * personal['proba'][c]:.0f}%", f"{100 * consensus['proba'][c]:.0f}%"]
    assert personal["proba"] != consensus["proba"]
