import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).parent))


def shared_or_skip(*parts) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (it ships beside the repository "
                    f"as ../shared/data on the project's machines)")
    return path


@pytest.fixture
def http_server():
    from httpserver import FixtureServer
    with FixtureServer() as server:
        yield server


@pytest.fixture(scope="session")
def ptbxl_real(tmp_path_factory):
    """The PhysioNet layout of the real PTB-XL copy: all of records100 and records500 (~20 s)."""
    import subprocess
    unpack = shared_or_skip("ptbxl", "unpack.py")
    dest = tmp_path_factory.mktemp("ptbxl")
    subprocess.run([sys.executable, str(unpack), str(dest)], check=True, capture_output=True)
    return dest
