"""The model files a render needs: the built-in manifest (``data/models.yaml``), the optional sets
``wanclip setup --with NAME`` adds (``data/models_i2v.yaml``, ``models_interpolation.yaml``,
``models_upscale.yaml``, ``models_lightx2v_1217.yaml``), and a user's ``--manifest``.

Render, doctor and the graph checks read it to name the setup command for a missing file, so it
imports nothing of the download side (no huggingface_hub: see ``install.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from wanclip.errors import EXIT_BAD_INPUT, AssetError


class ModelFile(BaseModel):
    """One file: where it is on the hub, where it goes under models/, what its bytes must be.

    ``sha256`` is always pinned; ``bytes`` may be left out (or null) when no source states the exact size:
    setup then takes the size from the hub's metadata (or from the local file with ``--from-dir``) before
    the transfers start, and the sha256 alone decides whether the bytes are the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    path: str = Field(min_length=1)
    dest: str
    bytes: int | None = Field(default=None, gt=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    revision: str = "main"

    @field_validator("dest")
    @classmethod
    def _dest_stays_in_models(cls, value: str) -> str:
        parts = PurePosixPath(value).parts
        if value.startswith("/") or "\\" in value or ".." in parts or len(parts) < 2:
            raise ValueError("dest must be <folder>/<file name> under models/, e.g. vae/wan_2.1_vae.safetensors")
        return value

    @property
    def folder(self) -> str:
        return self.dest.split("/")[0]

    @property
    def name(self) -> str:
        return self.dest.split("/", 1)[1]


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    files: list[ModelFile] = Field(min_length=1)


# `wanclip setup --with NAME`: the built-in manifests of optional file sets, beside data/models.yaml.
EXTRAS = {
    "i2v": "models_i2v.yaml",  # image-to-video: the I2V experts and their LightX2V LoRA pair
    "interpolation": "models_interpolation.yaml",  # the post stage's frame interpolation model (RIFE)
    "upscale": "models_upscale.yaml",  # the post stage's upscalers: a 2x model and SeedVR2 3B + its VAE
    "lightx2v-1217": "models_lightx2v_1217.yaml",  # the newer LightX2V LoRAs of `lightx2v: 1217`
}
EXTRA_PURPOSE = {
    "i2v": "image-to-video shots (`image:`, `end_image:`, `continue:`)",
    "interpolation": "`post: interpolate:` (more frames per second)",
    "upscale": "`post: upscale:` (a bigger picture)",
    "lightx2v-1217": "`lightx2v: 1217` (the newer LightX2V LoRAs)",
}


def extra_manifest_path(name: str) -> Path:
    """The built-in manifest of one ``--with`` set; an unknown name is refused with the known ones."""
    if name not in EXTRAS:
        raise AssetError(f"there is no file set {name!r} to add with --with",
                         "known sets: " + "; ".join(f"{k}, for {EXTRA_PURPOSE[k]}" for k in EXTRAS),
                         exit_code=EXIT_BAD_INPUT)
    return Path(str(resources.files("wanclip") / "data" / EXTRAS[name]))


def load_manifest(path: Path | None = None, extras: Iterable[str] = ()) -> list[ModelFile]:
    """The built-in manifest, or a user's file of the same format (exit 2 when it does not validate),
    followed by the files of each ``extras`` set (``--with i2v``) that it does not already list."""
    files = _read_manifest(path)
    for name in dict.fromkeys(extras):
        have = {f.dest for f in files}
        files += [f for f in _read_manifest(extra_manifest_path(name), f"the built-in {name} manifest")
                  if f.dest not in have]
    return files


def extra_set_of(dest: str) -> str | None:
    """The ``--with`` set that installs ``dest`` (``folder/name``); None for a base file or an unknown one."""
    return _extra_dests().get(dest)


def setup_command(dest: str) -> str:
    """The `wanclip setup` line that installs ``dest``: with ``--with SET`` for a file of a set."""
    name = extra_set_of(dest)
    return f"wanclip setup --with {name}" if name else "wanclip setup"


@cache
def _extra_dests() -> dict[str, str]:
    """dest -> the ``--with`` set whose built-in manifest lists it (and the base manifest does not)."""
    base = {f.dest for f in _read_manifest(None)}
    return {f.dest: name for name, file in EXTRAS.items()
            for f in _read_manifest(Path(str(resources.files("wanclip") / "data" / file)))
            if f.dest not in base}


def _read_manifest(path: Path | None, label: str | None = None) -> list[ModelFile]:
    where = label or (str(path) if path else "the built-in manifest")
    try:
        text = Path(path).read_text("utf-8") if path else \
            resources.files("wanclip").joinpath("data/models.yaml").read_text("utf-8")
        files = Manifest.model_validate(yaml.safe_load(text)).files
    except OSError as exc:
        raise AssetError(f"cannot read the manifest {where}: {exc.strerror}", "check the --manifest path",
                         exit_code=EXIT_BAD_INPUT) from exc
    except (yaml.YAMLError, ValidationError) as exc:
        raise AssetError(f"{where} is not a valid manifest: {_first_line(exc)}",
                         "each entry needs repo, path, dest, sha256 (bytes and revision are optional)",
                         exit_code=EXIT_BAD_INPUT) from exc
    dests = [f.dest for f in files]
    if len(set(dests)) != len(dests):
        raise AssetError(f"{where} names the same dest twice", "give each file its own dest",
                         exit_code=EXIT_BAD_INPUT)
    return files


def _first_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    return str(exc).splitlines()[0]

