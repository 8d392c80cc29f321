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
    """The PhysioNet layout of the real PTB-XL copy: records100 folders 0-1 and all of records500."""
    import subprocess
    unpack = shared_or_skip("ptbxl", "unpack.py")
    dest = tmp_path_factory.mktemp("ptbxl")
    subprocess.run([sys.executable, str(unpack), str(dest), "--rate", "100", "--folders", "0", "1"],
                   check=True, capture_output=True)
    subprocess.run([sys.executable, str(unpack), str(dest), "--rate", "500"], check=True,
                   capture_output=True)
    return dest
