"""
The files and folders a config names, and whether they are where their reader looks.

    config_references(config)        every path or URI the config names, and who reads it
    reference_errors(loaded, ...)    a ConfigError for each one that cannot be read as named
    files_to_publish(loaded, ...)    the files CI publishes beside mlops.yaml
    checks_data_freshness(config)    whether the retrain decision reads the training data's age

Who reads what:

- the local backend runs ``training.entrypoint`` and ``evaluation.entrypoint`` from
  ``training.source_dir`` and links its data channels from the Airflow worker's disk;
- local serving imports ``deployment.inference_entrypoint`` from ``training.source_dir``;
- the deploy task reads ``deployment.smoke_test.payload_file`` on the worker, whatever the backend;
- SageMaker and Kubernetes run the entrypoints inside ``image`` and read their data from
  ``s3://`` (or ``pvc://``): nothing of theirs is looked for on the worker.
- the retrain decision (``schedule.retrain_on_new_data``) reads when the training channels last
  changed: the files of a local channel, the objects under an ``s3://`` prefix (through the
  model's AWS connection). It cannot read ``pvc://`` or any other scheme.

Relative paths resolve from the folder of ``mlops.yaml`` (:meth:`LoadedConfig.resolve`). When CI
publishes a config (``mlops validate --publish``), every path the worker reads must stay inside
that folder, because that folder is what is published.

Pure: reads the file system, never Airflow, boto3 or the network.
"""

from __future__ import annotations

import difflib
import os
import posixpath
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from airflow_provider_mlops.config.loader import (
    CONFIG_FILENAME,
    DEFAULTS_FILENAME,
    LoadedConfig,
    field_location,
)
from airflow_provider_mlops.config.models import MlopsConfig
from airflow_provider_mlops.exceptions import ConfigError, ConfigErrors

#: Who reads a reference from the Airflow worker's disk: the local backend, or the deploy task.
WORKER_READERS = ("local", "airflow")
#: Names the published folder keeps for itself (``release.json``: scripts/ci/publish.sh).
RESERVED_NAMES = (CONFIG_FILENAME, DEFAULTS_FILENAME)
RESERVED_TOP_LEVEL = ("release.json",)
DEFAULT_PUBLISH_LIMIT_BYTES = 50 * 1024 * 1024

Kind = Literal["file", "folder", "data"]
_WHAT = {"file": "file", "folder": "folder", "data": "file or folder"}
_READER = {
    "local": "the local backend",
    "airflow": "the deploy task (on the Airflow worker)",
    "sagemaker": "SageMaker",
    "kubernetes": "the Kubernetes pod",
}


@dataclass(frozen=True)
class Reference:
    """
    One path or URI that a config names.

    :param field: the dotted field that names it, for example ``training.channels.train``.
    :param value: the value as written, or None when the field is unset and a default applies.
    :param location: where it is: relative to the config's folder (an entrypoint joined to
        ``training.source_dir``), absolute, or a URI such as ``s3://bucket/prefix``.
    :param kind: ``file`` (an entrypoint, the payload), ``folder`` (the source folder) or
        ``data`` (a channel: a file or a folder).
    :param reader: who reads it: ``local``, ``sagemaker``, ``kubernetes`` (a backend) or
        ``airflow`` (the deploy task's smoke test).
    """

    field: str
    value: str | None
    location: str
    kind: Kind
    reader: str

    @property
    def remote(self) -> bool:
        """A URI (``s3://``, ``pvc://``, ...), not a path; ``file://`` is a path."""
        return "://" in self.location and not self.location.startswith("file://")

    @property
    def on_worker(self) -> bool:
        """Read from the Airflow worker's disk, so it must exist there (and be published)."""
        return self.reader in WORKER_READERS

    @property
    def path(self) -> str:
        """The location as a path (``file://`` removed); only meaningful when not :attr:`remote`."""
        return self.location.removeprefix("file://")


def _script(entrypoint: str) -> str | None:
    """The file an entrypoint runs (``train.py --fast`` → ``train.py``); None for a command."""
    try:
        parts = shlex.split(entrypoint)
    except ValueError:
        return None
    return parts[0] if parts and parts[0].endswith(".py") else None


def _under(folder: str, name: str) -> str:
    return posixpath.normpath(posixpath.join(folder, name))


def config_references(config: MlopsConfig) -> list[Reference]:
    """Every file, folder and URI ``config`` names, in the order of the file."""
    training, evaluation, deployment = config.training, config.evaluation, config.deployment
    source = training.source_dir
    code_readers = (config.training_backend, config.evaluation_backend, config.serving_backend)
    refs = [
        Reference("training.source_dir", source, source, "folder",
                  "local" if "local" in code_readers else config.training_backend)
    ]
    for field, entrypoint, reader in (
        ("training.entrypoint", training.entrypoint, config.training_backend),
        ("evaluation.entrypoint", evaluation.entrypoint, config.evaluation_backend),
        ("deployment.inference_entrypoint", deployment.inference_entrypoint, config.serving_backend),
    ):
        script = entrypoint if field.startswith("deployment") else _script(entrypoint)
        if script:
            refs.append(Reference(field, entrypoint, _under(source, script), "file", reader))
    for name, location in training.channels.items():
        refs.append(Reference(f"training.channels.{name}", location, location, "data", config.training_backend))
    held_out = evaluation.channel
    if evaluation.data is not None:
        refs.append(Reference("evaluation.data", evaluation.data, evaluation.data, "data", config.evaluation_backend))
    elif held_out in training.channels:
        if config.evaluation_backend != config.training_backend:
            location = training.channels[held_out]
            refs.append(Reference(f"training.channels.{held_out}", location, location, "data", config.evaluation_backend))
    else:
        refs.append(Reference("evaluation.data", None, f"data/{held_out}", "data", config.evaluation_backend))
    if deployment.smoke_test.payload_file:
        payload = deployment.smoke_test.payload_file
        refs.append(Reference("deployment.smoke_test.payload_file", payload, payload, "file", "airflow"))
    return refs


def escapes(path: str) -> bool:
    """True when a relative ``path`` leaves its folder (``..``), or when it is absolute."""
    return posixpath.isabs(path) or posixpath.normpath(path).split("/")[0] == ".."


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _suggestion(target: Path, folder: Path) -> str | None:
    """A near name beside ``target`` (``trian.py`` → ``train.py``), relative to ``folder``."""
    parent = target.parent
    if not parent.is_dir():
        return None
    close = difflib.get_close_matches(target.name, sorted(p.name for p in parent.iterdir()), n=1, cutoff=0.6)
    return os.path.relpath(parent / close[0], folder).replace(os.sep, "/") if close else None


def _error(loaded: LoadedConfig, ref: Reference, problem: str, fix: str) -> ConfigError:
    path, line = field_location(loaded, ref.field)
    value = ref.value if ref.value is not None else f"(unset: {ref.location})"
    return ConfigError(problem, path=path, line=line, field=ref.field, value=value, fix=fix)


def _placement_error(loaded: LoadedConfig, ref: Reference, folder: Path, publish: bool) -> ConfigError | None:
    """Why ``ref`` cannot be read as named, or None when it can."""
    reader, what = _READER.get(ref.reader, ref.reader), _WHAT[ref.kind]
    if not ref.on_worker:
        if publish and ref.kind == "data" and not ref.remote:
            return _error(loaded, ref, f"is a path on the Airflow worker, but {reader} reads its data from s3:// "
                          "(or pvc:// on Kubernetes), never from files published beside the config",
                          "upload the data and name its s3:// URI")
        return None
    if ref.remote:
        return _error(loaded, ref, f"is a URI, but {reader} reads this {what} from the Airflow worker's disk",
                      f"name a path relative to {CONFIG_FILENAME}, or run the step on a backend that reads URIs "
                      "(backend: sagemaker or kubernetes)")
    if publish and escapes(ref.path):
        return _error(loaded, ref, f"is outside the model's folder ({folder}); CI publishes only that folder, "
                      "and the DAG loader resolves paths from it",
                      f"move the {what} under the folder of {CONFIG_FILENAME} and name it relative to it")
    target = folder / ref.path
    if not target.exists():
        near = _suggestion(target, folder)
        hint = f"did you mean '{near}'? Else " if near else ""
        return _error(loaded, ref, f"{target} does not exist, and {reader} reads this {what} from the Airflow worker's disk",
                      f"{hint}create it, or correct the path (relative to the folder of {CONFIG_FILENAME})")
    if ref.kind == "file" and not target.is_file():
        return _error(loaded, ref, f"{target} is a folder, but {reader} reads a file here", "name the file")
    if ref.kind == "folder" and not target.is_dir():
        return _error(loaded, ref, f"{target} is a file, but {reader} needs a folder here", "name the folder")
    if publish and not _inside(target, folder):
        return _error(loaded, ref, f"{target} is a link to {target.resolve()}, outside the model's folder ({folder})",
                      "replace the link with the file or folder itself")
    return None


def reference_errors(loaded: LoadedConfig, *, publish: bool = False, folder: Path | None = None) -> list[ConfigError]:
    """
    A :class:`ConfigError` for each reference of ``loaded`` that its reader cannot read as named.

    :param publish: also refuse what cannot be published beside the config: a path that leaves
        the config's folder (``..``, absolute, a link out), and local data for a remote backend.
    :param folder: where relative paths resolve (default: the config's folder; CI passes the
        model repository's folder when it checks a staged copy of the config).
    """
    folder = Path(folder or loaded.base_dir)
    errors: list[ConfigError] = []
    missing_source = False
    for ref in config_references(loaded.config):
        if missing_source and ref.field.endswith("entrypoint") and ref.on_worker:
            continue  # the source folder's own error says it all
        error = _placement_error(loaded, ref, folder, publish)
        if error is not None:
            errors.append(error)
            missing_source = missing_source or ref.field == "training.source_dir"
    return errors


# --- what CI publishes ------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedFile:
    """One file published beside ``mlops.yaml``: its path there (POSIX) and where it is read from."""

    relative: str
    source: Path
    size: int


def _walk(top: Path) -> Iterable[Path]:
    """The files under ``top``, without dot-files, dot-folders, ``__pycache__`` and ``*.pyc``."""
    if top.is_file():
        yield top
        return
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        for name in sorted(filenames):
            if not name.startswith(".") and not name.endswith(".pyc"):
                yield Path(dirpath) / name


def _reserved(relative: str) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return name in RESERVED_NAMES or relative in RESERVED_TOP_LEVEL


def files_to_publish(
    loaded: LoadedConfig, *, folder: Path | None = None, limit_bytes: int = DEFAULT_PUBLISH_LIMIT_BYTES
) -> list[PublishedFile]:
    """
    The files the Airflow side needs beside ``mlops.yaml``, sorted by path.

    That is the source folder (when any step runs its code on the worker), the local data
    channels and evaluation data, and the smoke-test payload. Dot-files, dot-folders,
    ``__pycache__`` and ``*.pyc`` are left out, and so are other ``mlops.yaml`` and
    ``mlops-defaults.yaml`` files, which the DAG loader would read as configs and defaults.

    :param folder: where relative paths resolve (default: the config's folder).
    :param limit_bytes: the most all files together may weigh.
    :raises ConfigError: a reference that :func:`reference_errors` refuses for publishing, a link
        that leaves the folder, or more than ``limit_bytes`` in all.
    """
    folder = Path(folder or loaded.base_dir).resolve()
    errors = reference_errors(loaded, publish=True, folder=folder)
    if errors:
        raise errors[0] if len(errors) == 1 else ConfigErrors(errors)
    chosen: dict[str, PublishedFile] = {}
    owners: dict[str, Reference] = {}
    for ref in config_references(loaded.config):
        if not ref.on_worker or ref.remote:
            continue
        top = folder / ref.path
        explicit = ref.kind == "file"
        for file in _walk(top):
            relative = os.path.relpath(file, folder).replace(os.sep, "/")
            if _reserved(relative):
                if explicit:
                    raise _error(loaded, ref, f"'{relative}' is a name the published folder keeps for itself",
                                 f"rename the file (not {', '.join(RESERVED_NAMES + RESERVED_TOP_LEVEL)})")
                continue
            if not _inside(file, folder):
                raise _error(loaded, ref, f"{file} is a link to {file.resolve()}, outside the model's folder ({folder})",
                             "replace the link with the file itself, or leave it out of the folder")
            if relative not in chosen:
                chosen[relative] = PublishedFile(relative, file, file.stat().st_size)
                owners[relative] = ref
    total = sum(f.size for f in chosen.values())
    if total > limit_bytes:
        largest = sorted(chosen.values(), key=lambda f: f.size, reverse=True)[:3]
        ref = owners[largest[0].relative]
        listing = ", ".join(f"{f.relative} ({_mb(f.size)})" for f in largest)
        raise _error(loaded, ref, f"the files published beside {CONFIG_FILENAME} weigh {_mb(total)}, over the "
                     f"{_mb(limit_bytes)} limit; the largest: {listing}",
                     "keep large data in s3:// and train on a remote backend, move what the pipeline does not "
                     "need out of the source folder, or ask the platform team to raise MLOPS_PUBLISH_MAX_MB")
    return [chosen[k] for k in sorted(chosen)]


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


# --- what the retrain decision reads ----------------------------------------------------------

#: URI schemes whose freshness the retrain decision reads, besides local paths (and ``file://``).
FRESHNESS_SCHEMES = ("s3",)


def data_scheme(location: str) -> str | None:
    """``s3`` for ``s3://bucket/prefix``, ``pvc`` for ``pvc://...``; None for a path (``file://`` is one)."""
    if "://" not in location or location.startswith("file://"):
        return None
    return location.split("://", 1)[0].lower()


def unreadable_freshness(config: MlopsConfig) -> dict[str, str]:
    """The training channels whose freshness the retrain decision cannot read: field → location."""
    return {f"training.channels.{name}": location for name, location in config.training.channels.items()
            if data_scheme(location) not in (None, *FRESHNESS_SCHEMES)}


def checks_data_freshness(config: MlopsConfig) -> bool:
    """
    Whether the retrain decision reads the training data's freshness.

    ``schedule.retrain_on_new_data`` when set (true is refused at validation when a channel cannot
    be read, :func:`freshness_problem`); unset, true when every training channel can be read.
    """
    wanted = config.schedule.retrain_on_new_data
    return wanted if wanted is not None else not unreadable_freshness(config)


def freshness_problem(config: MlopsConfig) -> str | None:
    """Why ``retrain_on_new_data: true`` cannot work with these channels, as ``field: problem``; None when it can."""
    unreadable = unreadable_freshness(config)
    if config.schedule.retrain_on_new_data is not True or not unreadable:
        return None
    field, location = next(iter(unreadable.items()))
    return (f"schedule.retrain_on_new_data: is true, but {field} is '{location}', and the retrain decision can only "
            f"read when local paths and s3:// prefixes last changed, not {data_scheme(location)}://, so it would never "
            "see new data there. Set retrain_on_new_data: false and let max_model_age_days (or a CI retrain) decide, "
            "or move the channel to s3:// or a local path")
