"""Published weights by name (--weights georgia): downloaded once through Keras's cache, checked,
and explained when the download fails. Served from a stand-in server on localhost, never the
internet."""
import http.server
import threading

import numpy as np
import pytest
from PIL import Image

import GAinfer
from gacrystal import UserError, load_classifier
from gacrystal import named_weights
from gacrystal.named_weights import NamedWeights


@pytest.fixture(scope="module")
def standin_file(tmp_path_factory):
    """A small Keras full-model .h5 with the published model's input (224 px) and output."""
    import keras
    keras.utils.set_random_seed(1)  # not 0: a global seed of 0 breaks tf.data's seeded shuffle
    inputs = keras.Input((224, 224, 3))
    x = keras.layers.Conv2D(2, 3, strides=8, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    path = tmp_path_factory.mktemp("release") / "standin.h5"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def server(standin_file):
    """http://127.0.0.1:PORT/{good,short,refuse}/standin.h5; counts the requests it answers."""
    data = standin_file.read_bytes()
    served = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            served.append(self.path)
            if self.path.startswith("/refuse/"):
                self.send_error(403, "Forbidden")
                return
            body = data[:len(data) // 2] if self.path.startswith("/short/") else data
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", served
    httpd.shutdown()


def register(monkeypatch, name, url, image_size=224, max_mb=5.0):
    entry = NamedWeights(url, "standin.h5", "a stand-in model", image_size, min_mb=0.001,
                         max_mb=max_mb)
    monkeypatch.setitem(named_weights.NAMED_WEIGHTS, name, entry)
    return entry


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras" / "models"


def test_named_weights_download_once_into_the_keras_cache_and_label(server, cache, monkeypatch,
                                                                    tmp_path, capsys):
    base, served = server
    register(monkeypatch, "standin", f"{base}/good/standin.h5")
    Image.new("RGB", (60, 50), (90, 90, 90)).save(tmp_path / "grey.png")
    assert GAinfer.main(["--weights", "standin", "--images", str(tmp_path)]) == 0
    assert (cache / "standin.h5").is_file() and served.count("/good/standin.h5") == 1
    assert "downloading a stand-in model" in capsys.readouterr().out
    classifier = load_classifier("standin")  # from the cache: no second request
    assert served.count("/good/standin.h5") == 1
    assert classifier.card["preprocessing_inside"] is False  # no card: treated as the original's
    assert classifier.label(np.zeros((1, 224, 224, 3)))[0]["label"] in ("CEX", "PG")


def test_a_truncated_download_is_refused_and_removed(server, cache, monkeypatch):
    base, _ = server
    register(monkeypatch, "standin", f"{base}/short/standin.h5")
    with pytest.raises(UserError, match="is not a stand-in model: not a readable .h5 model"):
        load_classifier("standin")
    assert not (cache / "standin.h5").exists()


def test_a_refusing_server_says_where_to_download_by_hand(server, cache, monkeypatch):
    base, _ = server
    entry = register(monkeypatch, "standin", f"{base}/refuse/standin.h5")
    with pytest.raises(UserError) as error:
        load_classifier("standin")
    message = str(error.value)
    assert "could not download --weights standin" in message and "403" in message
    assert entry.url in message and str(cache / "standin.h5") in message
    assert "\n" not in message and not (cache / "standin.h5").exists()


def test_a_file_of_the_wrong_size_or_input_is_refused(server, cache, monkeypatch):
    base, _ = server
    register(monkeypatch, "standin", f"{base}/good/standin.h5", image_size=299)
    with pytest.raises(UserError, match="its input is 224 px where 299 px was expected"):
        load_classifier("standin")
    register(monkeypatch, "standin", f"{base}/good/standin.h5", max_mb=0.002)
    with pytest.raises(UserError, match="MB were expected"):
        load_classifier("standin")


def test_the_published_entries_point_at_the_original_release():
    for name, suffix in (("georgia", ".h5"), ("georgia-onnx", ".onnx")):
        entry = named_weights.NAMED_WEIGHTS[name]
        assert entry.url.startswith("https://github.com/KatherineMossDeveloper/The-Georgia-Project/"
                                    "releases/download/v1.5.2/")
        assert entry.file_name.endswith(suffix) and entry.image_size == 224
