"""deploy/: TF Serving's config files, the Docker script, the image and the Kubernetes
manifests agree with one another and with the shipped models. Offline: no Docker, no
cluster, no TensorFlow; every file is parsed as TF Serving or Kubernetes would."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path, PurePosixPath

import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from seq2seq.serving.config import batching_parameters_message

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
SAVED_MODELS = REPO / "saved_models"
# Where the container sees saved_models/ and deploy/'s configs.
CONTAINER_MODELS = PurePosixPath("/models")
CONTAINER_CONFIG = PurePosixPath("/config")

# The flags that deploy/docker-run.sh, deploy/Dockerfile and deploy/kubernetes.yaml
# all give tensorflow_model_server.
SERVER_FLAGS = {
    "--port": "8500",
    "--rest_api_port": "8501",
    "--model_config_file": "/config/models.config",
    "--model_config_file_poll_wait_seconds": "60",
    "--allow_version_labels_for_unavailable_models": "true",
    "--enable_batching": "true",
    "--batching_parameters_file": "/config/batching.config",
    "--monitoring_config_file": "/config/monitoring.config",
}


def read_model_server_config() -> model_server_config_pb2.ModelServerConfig:
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((DEPLOY / "models.config").read_text(encoding="utf-8"), config)
    return config


def configured_models() -> list[model_server_config_pb2.ModelConfig]:
    return list(read_model_server_config().model_config_list.config)


def shipped_versions(base: Path) -> list[int]:
    """The versions of a TF Serving base path: numeric subdirectories with a SavedModel."""
    return sorted(
        int(child.name)
        for child in base.iterdir()
        if child.is_dir() and child.name.isdigit() and (child / "saved_model.pb").is_file()
    )


def host_path(container_path: str) -> Path:
    """The repository directory that the container sees at `container_path`."""
    relative = PurePosixPath(container_path).relative_to(CONTAINER_MODELS)
    return SAVED_MODELS.joinpath(*relative.parts)


def served_versions(model: model_server_config_pb2.ModelConfig) -> list[int]:
    """The versions the model's `specific` policy serves (the only policy deploy/ uses)."""
    return list(model.model_version_policy.specific.versions)


def flag_values(arguments: list[str]) -> dict[str, str]:
    """`--name=value` arguments as a dict (last one wins, as for the server)."""
    return dict(argument.split("=", 1) for argument in arguments if argument.startswith("--"))


def kubernetes_objects() -> dict[str, dict]:
    text = (DEPLOY / "kubernetes.yaml").read_text(encoding="utf-8")
    objects = [document for document in yaml.safe_load_all(text) if document]
    kinds = [document["kind"] for document in objects]
    assert len(kinds) == len(set(kinds)), f"one object of each kind, got {kinds}"
    return {document["kind"]: document for document in objects}


def serving_container(objects: dict[str, dict]) -> dict:
    (container,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def dockerfile_instructions() -> list[tuple[str, str]]:
    """deploy/Dockerfile as (INSTRUCTION, arguments), continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, arguments = line.strip().partition(" ")
            instructions.append((instruction.upper(), arguments.strip()))
    return instructions


def docker_run(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(DEPLOY / "docker-run.sh"), *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        env={key: value for key, value in os.environ.items() if key != "TF_SERVING_IMAGE"},
    )


# --- deploy/models.config ------------------------------------------------------------


def test_models_config_serves_the_translators():
    names = [model.name for model in configured_models()]
    assert "translate-en-fr" in names and "translate-fr-en" in names
    assert len(names) == len(set(names)), f"a model configured twice: {names}"


@pytest.mark.parametrize("model", configured_models(), ids=lambda model: model.name)
def test_base_path_is_a_shipped_model(model):
    assert model.model_platform == "tensorflow"
    assert model.base_path == str(CONTAINER_MODELS / model.name), (
        f"{model.name}: base_path {model.base_path!r} is not /models/{model.name}, "
        "where docker-run.sh mounts and the Dockerfile copies saved_models/NAME"
    )
    base = host_path(model.base_path)
    assert base.is_dir(), f"{model.name}: {base} does not exist"
    versions = served_versions(model)
    assert versions, f"{model.name}: no `specific` versions to serve"
    missing = set(versions) - set(shipped_versions(base))
    assert not missing, f"{model.name}: versions {sorted(missing)} have no saved_model.pb"


@pytest.mark.parametrize("model", configured_models(), ids=lambda model: model.name)
def test_stable_label_names_a_served_version(model):
    labels = dict(model.version_labels)
    assert "stable" in labels, f"{model.name}: no `stable` label"
    for label, version in labels.items():
        assert version in served_versions(model), (
            f"{model.name}: label {label!r} -> {version}, which is not served"
        )
        assert (host_path(model.base_path) / str(version) / "saved_model.pb").is_file()


def test_every_shipped_model_is_configured():
    """A model that ships in saved_models/ is served too."""
    shipped = {base.name for base in SAVED_MODELS.iterdir() if base.is_dir()}
    shipped = {name for name in shipped if shipped_versions(SAVED_MODELS / name)}
    configured = {model.name for model in configured_models()}
    assert shipped <= configured, (
        f"shipped but not in deploy/models.config: {sorted(shipped - configured)} "
        "(uncomment its block there and add its COPY line to deploy/Dockerfile)"
    )


def test_shipped_models_readme_names_the_shipped_versions():
    """saved_models/README.md's table names each model at the version that ships."""
    table = (SAVED_MODELS / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([\w-]+)/(\d+)` \|", table, flags=re.MULTILINE))
    shipped = {
        (base.name, str(version))
        for base in SAVED_MODELS.iterdir()
        if base.is_dir()
        for version in shipped_versions(base)
    }
    assert listed == shipped


def test_labels_at_start_up_need_the_unavailable_models_flag():
    """TF Serving assigns labels before loading; without the flag it refuses to start."""
    assert any(model.version_labels for model in configured_models())
    assert SERVER_FLAGS["--allow_version_labels_for_unavailable_models"] == "true"


# --- deploy/batching.config and deploy/monitoring.config ------------------------------


def test_batching_parameters_are_tf_servings():
    params = batching_parameters_message()()
    text_format.Parse((DEPLOY / "batching.config").read_text(encoding="utf-8"), params)
    for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches"):
        assert params.HasField(name), f"batching.config does not set {name}"
        assert getattr(params, name).value > 0, f"{name} must be positive"
    assert params.HasField("num_batch_threads") and params.num_batch_threads.value >= 1
    # asr-en's audio differs in length between requests: batching them needs padding.
    assert params.pad_variable_length_inputs is True
    sizes = list(params.allowed_batch_sizes)
    if sizes:
        assert sizes == sorted(set(sizes)) and sizes[-1] == params.max_batch_size.value


def test_batching_parameters_message_matches_the_proto():
    fields = batching_parameters_message().DESCRIPTOR.fields_by_name
    assert {name: field.number for name, field in fields.items()} == {
        "max_batch_size": 1,
        "batch_timeout_micros": 2,
        "max_enqueued_batches": 3,
        "num_batch_threads": 4,
        "thread_pool_name": 5,
        "allowed_batch_sizes": 6,
        "pad_variable_length_inputs": 7,
    }
    with pytest.raises(text_format.ParseError):
        text_format.Parse("max_batch_size: 32", batching_parameters_message()())
    with pytest.raises(text_format.ParseError):
        text_format.Parse("no_such_field { value: 1 }", batching_parameters_message()())


def test_batch_threads_match_the_pod_cpu_limit():
    params = batching_parameters_message()()
    text_format.Parse((DEPLOY / "batching.config").read_text(encoding="utf-8"), params)
    container = serving_container(kubernetes_objects())
    cpu_limit = int(container["resources"]["limits"]["cpu"])
    assert params.num_batch_threads.value == cpu_limit
    flags = flag_values(container["args"])
    assert flags["--tensorflow_intra_op_parallelism"] == str(cpu_limit)
    assert flags["--tensorflow_inter_op_parallelism"] == str(cpu_limit)


def test_monitoring_config_exports_prometheus_metrics_where_pods_are_scraped():
    text = (DEPLOY / "monitoring.config").read_text(encoding="utf-8")
    assert re.search(r"prometheus_config\s*{[^}]*enable:\s*true", text)
    path = re.search(r'path:\s*"([^"]+)"', text).group(1)
    annotations = kubernetes_objects()["Deployment"]["spec"]["template"]["metadata"]
    assert annotations["annotations"]["prometheus.io/path"] == path
    assert annotations["annotations"]["prometheus.io/port"] == "8501"


# --- deploy/kubernetes.yaml ----------------------------------------------------------


def test_kubernetes_objects():
    objects = kubernetes_objects()
    assert set(objects) == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    deployment, service, autoscaler = (
        objects["Deployment"],
        objects["Service"],
        objects["HorizontalPodAutoscaler"],
    )
    assert deployment["apiVersion"] == "apps/v1"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"

    container = serving_container(objects)
    assert ":" in container["image"] and not container["image"].endswith(":latest")
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"grpc": 8500, "http": 8501}
    targets = {port["port"]: port["targetPort"] for port in service["spec"]["ports"]}
    assert targets == {8500: "grpc", 8501: "http"}

    assert autoscaler["apiVersion"] == "autoscaling/v2"
    target = autoscaler["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert 1 <= autoscaler["spec"]["minReplicas"] <= autoscaler["spec"]["maxReplicas"]
    (metric,) = autoscaler["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    assert 0 < metric["resource"]["target"]["averageUtilization"] <= 100
    # Utilization is a share of the request, so the container must request CPU.
    assert container["resources"]["requests"]["cpu"]


def test_kubernetes_container_runs_the_server_on_deploys_configs():
    container = serving_container(kubernetes_objects())
    assert container["command"] == ["tensorflow_model_server"]
    flags = flag_values(container["args"])
    assert flags.items() >= SERVER_FLAGS.items()
    # The config files it names are deploy/'s, which deploy/Dockerfile copies to /config.
    for flag in ("--model_config_file", "--batching_parameters_file", "--monitoring_config_file"):
        path = PurePosixPath(flags[flag])
        assert path.parent == CONTAINER_CONFIG and (DEPLOY / path.name).is_file()


@pytest.mark.parametrize("probe", ["startupProbe", "readinessProbe", "livenessProbe"])
def test_kubernetes_probes_ask_tf_serving_for_model_status(probe):
    container = serving_container(kubernetes_objects())
    check = container[probe]["httpGet"]
    assert check["port"] == 8501
    model = check["path"].removeprefix("/v1/models/")
    assert check["path"].startswith("/v1/models/")
    assert model in {model.name for model in configured_models()}


# --- deploy/Dockerfile ---------------------------------------------------------------


def test_dockerfile_copies_exactly_the_served_versions():
    copies = {
        tuple(arguments.split())
        for instruction, arguments in dockerfile_instructions()
        if instruction == "COPY"
    }
    expected = {
        (f"saved_models/{model.name}/{version}", f"{model.base_path}/{version}")
        for model in configured_models()
        for version in served_versions(model)
    }
    model_copies = {copy for copy in copies if copy[0].startswith("saved_models/")}
    assert model_copies == expected
    configs = ("models.config", "batching.config", "monitoring.config")
    assert (*(f"deploy/{name}" for name in configs), f"{CONTAINER_CONFIG}/") in copies


def test_dockerfile_runs_the_server_with_the_shared_flags():
    instructions = dict(dockerfile_instructions())
    assert json.loads(instructions["ENTRYPOINT"]) == ["tensorflow_model_server"]
    assert flag_values(json.loads(instructions["CMD"])) == SERVER_FLAGS


# --- deploy/docker-run.sh ------------------------------------------------------------


def test_docker_run_script_is_valid_bash():
    script = DEPLOY / "docker-run.sh"
    assert os.access(script, os.X_OK), "deploy/docker-run.sh is not executable"
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)


def test_docker_run_help(tmp_path):
    result = docker_run("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: deploy/docker-run.sh")
    assert docker_run("--no-such-option", cwd=tmp_path).returncode == 2


def test_docker_run_mounts_the_repository_from_any_directory(tmp_path):
    result = docker_run("--dry-run", "--", "--tensorflow_intra_op_parallelism=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    command = shlex.split(result.stdout)
    assert command[:2] == ["docker", "run"]
    mounts = [command[index + 1] for index, word in enumerate(command) if word == "--mount"]
    assert f"type=bind,source={SAVED_MODELS},target={CONTAINER_MODELS},readonly" in mounts
    assert f"type=bind,source={DEPLOY},target={CONTAINER_CONFIG},readonly" in mounts
    assert {"8500:8500", "8501:8501"} <= {
        command[index + 1] for index, word in enumerate(command) if word == "-p"
    }
    image = command[command.index("--entrypoint") + 2]
    assert image == dict(dockerfile_instructions())["ARG"].split("=", 1)[1]
    server_arguments = command[command.index(image) + 1 :]
    assert flag_values(server_arguments).items() >= SERVER_FLAGS.items()
    assert server_arguments[-1] == "--tensorflow_intra_op_parallelism=2"
