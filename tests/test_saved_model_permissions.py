"""A saved model folder's files get the mode the umask gives new files, so a serving account can read the weights."""

from __future__ import annotations

import os
import stat

import pytest

from hn_plugins.training.model_folder import install_folder, save_staged


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_saved_weights_follow_the_umask(static_model, tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        out = install_folder(save_staged(static_model, tmp_path / "model"), tmp_path / "model")
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*") if p.is_file()}
    assert "model.safetensors" in modes
    assert modes == dict.fromkeys(modes, mode)
