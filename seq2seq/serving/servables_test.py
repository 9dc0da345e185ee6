"""ModelManager against a directory of versions (with a stand-in loader) and the config
files: policies, labels, failed loads that leave the old version serving, errors."""

from __future__ import annotations

import os
import re
import time

import grpc
import pytest

from seq2seq.serving.config import (
    BatchingOptions,
    ModelSource,
    read_batching_parameters,
    read_model_config,
)
from seq2seq.serving.servables import ModelManager, ServingError, State


class FakeServable:
    def __init__(self, name, version, path):
        if (path / "saved_model.pb").read_bytes() == b"broken":
            raise ValueError("Error parsing message")
        self.name, self.version, self.path = name, version, path


def add_version(base, version: int, content: bytes = b"ok") -> None:
    (base / str(version)).mkdir()
    (base / str(version) / "saved_model.pb").write_bytes(content)


def states(manager: ModelManager, name: str = "m") -> dict[int, str]:
    return {number: State.Name(status.state) for number, status in manager.status(name)}


def test_new_versions_replace_old_ones_and_failures_leave_the_old_serving(tmp_path):
    add_version(tmp_path, 1)
    (tmp_path / ".export-tmp").mkdir()  # an export in progress is never seen
    manager = ModelManager([ModelSource("m", tmp_path)], loader=FakeServable)
    manager.poll()
    assert states(manager) == {1: "AVAILABLE"}
    add_version(tmp_path, 2)
    manager.poll()
    assert states(manager) == {2: "AVAILABLE", 1: "END"}
    assert manager.servable("m").version == 2

    add_version(tmp_path, 3, b"broken")
    manager.poll()
    manager.poll()  # a failed version is not retried while unchanged
    assert states(manager) == {3: "END", 2: "AVAILABLE", 1: "END"}
    (_, failed), *_ = manager.status("m", 3)
    assert failed.error_code == grpc.StatusCode.UNKNOWN and "Error parsing" in failed.error_message
    assert manager.servable("m").version == 2

    (tmp_path / "3" / "saved_model.pb").write_bytes(b"fixed")  # rewritten: tried again
    os.utime(tmp_path / "3" / "saved_model.pb", (1, 1))
    manager.poll()
    assert states(manager)[3] == "AVAILABLE" and states(manager)[2] == "END"


def test_policies_labels_and_not_found(tmp_path):
    for version in (1, 2, 3):
        add_version(tmp_path, version)
    sources = [
        ModelSource("all", tmp_path, policy="all", labels={"stable": 1, "canary": 3}),
        ModelSource("two", tmp_path, latest_versions=2),
        ModelSource("pinned", tmp_path, policy="specific", specific_versions=(2,)),
    ]
    manager = ModelManager(sources, loader=FakeServable)
    manager.poll()
    assert set(states(manager, "all")) == {1, 2, 3}
    assert states(manager, "two") == {3: "AVAILABLE", 2: "AVAILABLE"}
    assert states(manager, "pinned") == {2: "AVAILABLE"}
    assert manager.servable("all", label="stable").version == 1
    assert manager.servable("all", version=2).version == 2
    for name, version, label, words in [
        ("nope", None, None, "Latest(nope)"),
        ("pinned", 3, None, "Specific(pinned, 3)"),
        ("all", None, "beta", "label: beta"),
    ]:
        with pytest.raises(ServingError, match=re.escape(words)) as raised:
            manager.servable(name, version, label)
        assert raised.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(ServingError, match="version 7 of model two"):
        manager.status("two", 7)


def test_model_config_file(tmp_path):
    (tmp_path / "a").mkdir()
    config = tmp_path / "models.config"
    config.write_text(
        f"""model_config_list {{
          config {{ name: "a" base_path: "{tmp_path / "a"}" model_platform: "tensorflow"
                   model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
                   version_labels {{ key: "stable" value: 1 }} }}
          config {{ name: "b" base_path: "{tmp_path / "a"}"
                   model_version_policy {{ latest {{ num_versions: 2 }} }} }}
        }}""",
        encoding="utf-8",
    )
    a, b = read_model_config(config)
    assert (a.name, a.policy, a.specific_versions, a.labels) == (
        "a",
        "specific",
        (1, 2),
        {"stable": 1},
    )
    assert (b.policy, b.latest_versions) == ("latest", 2)

    bad = {
        "model_config_list { config { name: 'x' base_path: '/no/such/dir' } }": "not a directory",
        "model_config_list { }": "lists no models",
        "model_config_list { config { nme: 'x' } }": "not a model config file",
        f"model_config_list {{ config {{ name: 'x' base_path: '{tmp_path}' }} "
        f"config {{ name: 'x' base_path: '{tmp_path}' }} }}": "twice",
    }
    for text, words in bad.items():
        config.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=words) as raised:
            read_model_config(config)
        assert str(config) in str(raised.value)


def test_batching_parameters_file(tmp_path):
    path = tmp_path / "batching.config"
    path.write_text(
        "max_batch_size { value: 16 }\nbatch_timeout_micros { value: 500 }\n"
        "num_batch_threads { value: 3 }\npad_variable_length_inputs: true\n",
        encoding="utf-8",
    )
    assert read_batching_parameters(path) == BatchingOptions(
        max_batch_size=16,
        batch_timeout_micros=500,
        num_batch_threads=3,
        pad_variable_length_inputs=True,
    )
    assert read_batching_parameters(None) == BatchingOptions()
    for text, words in {
        "max_batch_size { value: 0 }": "positive",
        "batch_size: 3": "not a batching",
    }.items():
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=words):
            read_batching_parameters(path)


def test_a_reread_config_adds_and_removes_models(tmp_path):
    add_version(tmp_path, 1)
    configs = [[ModelSource("a", tmp_path)], [ModelSource("b", tmp_path, labels={"stable": 1})]]
    manager = ModelManager(configs[0], loader=FakeServable)
    manager.poll()
    manager.start_polling(0.05, read_config=lambda: configs[-1], config_interval_seconds=0.05)
    deadline = time.monotonic() + 30
    while "a" in manager.sources and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    manager.stop()
    assert list(manager.sources) == ["b"]
    assert manager.servable("b", label="stable").version == 1
    with pytest.raises(ServingError, match="Latest"):
        manager.servable("a")
