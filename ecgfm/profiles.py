"""Installing this workflow's Snakemake profiles under the names users type.

Snakemake looks a profile name up in the working directory, then in the user's profile directory
(``$XDG_CONFIG_HOME/snakemake``, usually ``~/.config/snakemake``), then in the site's
(``/etc/xdg/snakemake``); see ``snakemake --help``, ``--profile``. ``ecgfm profiles install``
puts a symbolic link to each of ``profiles/{slurm,demo,local,ptbxl-cpu,ptbxl-gpu}`` into the user's
directory, so that ``snakemake --profile slurm`` works as written from the repository root, and
stays in step with the repository (edit ``profiles/slurm/config.yaml`` for your site). A profile
of that name that is not ours is left alone unless ``--force``; ``--copy`` copies instead of
linking (for a directory shared by several checkouts, say).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

PROFILES = ("slurm", "demo", "local", "ptbxl-cpu", "ptbxl-gpu")


def user_profile_dir() -> Path:
    """Where Snakemake looks for profiles by name, for this user."""
    try:
        from platformdirs import user_config_dir      # what Snakemake itself uses
        return Path(user_config_dir("snakemake", "snakemake"))
    except ImportError:
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
        return Path(base) / "snakemake"


def repository_profiles(start: Path | None = None) -> Path:
    """The ``profiles/`` folder of this checkout (beside the package, else under ``start``)."""
    for root in (Path(__file__).resolve().parents[1], Path(start or os.getcwd()).resolve()):
        if (root / "profiles" / "slurm" / "config.yaml").exists() and (root / "Snakefile").exists():
            return root / "profiles"
    raise FileNotFoundError("no profiles/ folder of the ecgfm workflow here: run this from the repository root")


def install(dest: Path | None = None, names=PROFILES, copy: bool = False, force: bool = False,
            source: Path | None = None) -> list[tuple[str, str]]:
    """Link (or copy) each profile into ``dest``; returns (name, what was done) per profile.
    Raises ``FileExistsError`` naming the profiles that exist and are not this checkout's."""
    dest = Path(dest) if dest else user_profile_dir()
    source = Path(source) if source else repository_profiles()
    dest.mkdir(parents=True, exist_ok=True)
    taken = [n for n in names if _occupied_by_other(dest / n, source / n)]
    if taken and not force:
        raise FileExistsError(f"{', '.join(str(dest / n) for n in taken)} already exist and are not this "
                              f"checkout's profiles: keep them, or pass --force to replace them")
    done = []
    for name in names:
        target, origin = dest / name, (source / name).resolve()
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        if copy:
            shutil.copytree(origin, target)
            done.append((name, f"copied {origin} to {target}"))
        else:
            target.symlink_to(origin, target_is_directory=True)
            done.append((name, f"{target} -> {origin}"))
    return done


def _occupied_by_other(target: Path, origin: Path) -> bool:
    if not (target.exists() or target.is_symlink()):
        return False
    return not (target.is_symlink() and target.resolve() == origin.resolve())
